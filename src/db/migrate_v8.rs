//! Schema 7 to 8: the `erasures` table (`db::erasures`), empty.

use redb::WriteTransaction;

use crate::error::{Error, StorageContext};

pub(super) fn v7_to_v8(txn: &WriteTransaction) -> Result<(), Error> {
    txn.open_table(super::schema::ERASURES)
        .ctx("creating erasures")?;
    Ok(())
}
