//! Reading a table in either kind of transaction.
//!
//! A family's read functions (`db::files::get`, `db::keys::get`, ...) are
//! called on a read snapshot by point reads and on a write in progress by
//! commits that must see their own changes. [`ReadTxn`] lets one function
//! serve both, so that no caller outside `db` opens a table.

use redb::{
    Key, ReadTransaction, ReadableTable, TableDefinition, TableHandle, Value, WriteTransaction,
};

use crate::error::Error;

/// A transaction whose tables can be read.
pub(crate) trait ReadTxn {
    /// Opens `def` for reading.
    fn table<K: Key + 'static, V: Value + 'static>(
        &self,
        def: TableDefinition<'static, K, V>,
    ) -> Result<impl ReadableTable<K, V> + '_, Error>;
    /// Whether this is a committed snapshot (a read transaction) rather
    /// than a write in progress, whose changes may still be rolled back.
    fn is_snapshot(&self) -> bool;
}

fn opening(def_name: &str, e: redb::TableError) -> Error {
    Error::storage(format!("opening {def_name}"), e)
}

impl ReadTxn for ReadTransaction {
    fn table<K: Key + 'static, V: Value + 'static>(
        &self,
        def: TableDefinition<'static, K, V>,
    ) -> Result<impl ReadableTable<K, V> + '_, Error> {
        self.open_table(def).map_err(|e| opening(def.name(), e))
    }
    fn is_snapshot(&self) -> bool {
        true
    }
}

impl ReadTxn for WriteTransaction {
    fn table<K: Key + 'static, V: Value + 'static>(
        &self,
        def: TableDefinition<'static, K, V>,
    ) -> Result<impl ReadableTable<K, V> + '_, Error> {
        self.open_table(def).map_err(|e| opening(def.name(), e))
    }
    fn is_snapshot(&self) -> bool {
        false
    }
}
