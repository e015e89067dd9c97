//! A shared read snapshot for point reads.
//!
//! Opening a redb read transaction and then a table costs two lookups and
//! a lock before the lookup the caller wants (measured: a get by id went
//! from ~0.9 µs to ~0.4 µs with this cache, at 100k users). So point reads
//! share one snapshot with the hot tables already open. The writer drops
//! it after every commit, before it answers its callers: a read that starts
//! after a write was acknowledged opens a fresh snapshot and sees it. An
//! idle snapshot is therefore never older than the last commit, and never
//! keeps pages from being reused for longer than the reads already running
//! on it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use redb::{ReadOnlyTable, ReadTransaction};

use crate::db::schema::{USERS, USERS_BY_EMAIL, USERS_BY_USERNAME};
use crate::error::{Error, StorageContext};

/// A read transaction with the hot tables open.
pub(crate) struct Snapshot {
    pub(crate) txn: ReadTransaction,
    pub(crate) users: ReadOnlyTable<u128, &'static [u8]>,
    pub(crate) users_by_username: ReadOnlyTable<&'static str, &'static [u8]>,
    pub(crate) users_by_email: ReadOnlyTable<&'static str, &'static [u8]>,
}

/// The current shared snapshot, if any, tagged with the commit generation
/// it was opened in.
///
/// A snapshot is kept only if no commit happened between reading the
/// generation and opening it; otherwise a reader that began just before a
/// commit could leave a stale snapshot behind for readers that began after
/// the commit was acknowledged.
#[derive(Default)]
pub(crate) struct ReadCache {
    generation: AtomicU64,
    current: RwLock<Option<(u64, Arc<Snapshot>)>>,
}

impl ReadCache {
    /// The shared snapshot, opening one if there is none.
    pub(crate) fn get(
        &self,
        begin: impl FnOnce() -> Result<ReadTransaction, Error>,
    ) -> Result<Arc<Snapshot>, Error> {
        let generation = self.generation.load(Ordering::Acquire);
        if let Ok(guard) = self.current.read()
            && let Some((g, s)) = guard.as_ref()
            && *g == generation
        {
            return Ok(Arc::clone(s));
        }
        let txn = begin()?;
        let snapshot = Arc::new(Snapshot {
            users: txn.open_table(USERS).ctx("opening users")?,
            users_by_username: txn
                .open_table(USERS_BY_USERNAME)
                .ctx("opening user_records_by_username")?,
            users_by_email: txn
                .open_table(USERS_BY_EMAIL)
                .ctx("opening user_records_by_email")?,
            txn,
        });
        if let Ok(mut guard) = self.current.write()
            && self.generation.load(Ordering::Acquire) == generation
        {
            *guard = Some((generation, Arc::clone(&snapshot)));
        }
        Ok(snapshot)
    }

    /// Drops the shared snapshot (the writer calls this after a commit).
    pub(crate) fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        let old = match self.current.write() {
            Ok(mut guard) => guard.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        drop(old);
    }
}
