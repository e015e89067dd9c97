//! Taking writes again after an I/O error, without a restart.
//!
//! When a write or fsync of `store.redb` fails, redb refuses every later
//! write transaction with `PreviousIo` ("close and re-open the database"):
//! after a failed fsync it cannot know what reached the disk, and it must
//! not build on a commit that may not be there (the "fsyncgate" lesson).
//! An edge device whose card had a bad moment, or whose disk filled and
//! was freed, should not need its application restarted for that, so the
//! writer does what redb asks: at the next write it closes the database
//! and opens it again, which runs redb's repair and finds the last commit
//! that is really on disk. Every acknowledged write is there: a commit is
//! acknowledged only after its fsync succeeded.
//!
//! The old handle must be dropped before the file can be opened again (it
//! holds the file lock), so for that moment the shared database is an empty
//! in-memory placeholder and [`Reopener::broken`] is set: reads then fail
//! with a clear error instead of reading the placeholder. If the reopen
//! fails (the disk still fails, or a long read still holds the old file),
//! the store stays that way and the next write tries again.

use std::path::PathBuf;
use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use redb::Database;

use super::{create, guard, report_repair};
use crate::db::page_tracker::PageTracker;
use crate::db::snapshot::ReadCache;
use crate::error::{Error, StorageContext};

/// Opens `store.redb` again with the settings of the first open.
pub(crate) struct Reopener {
    path: PathBuf,
    cache_bytes: usize,
    verify: bool,
    /// Set while the shared database is the placeholder.
    pub(crate) broken: std::sync::Arc<AtomicBool>,
    /// Marks the pages every open writes (restarted at each).
    pub(crate) tracker: std::sync::Arc<PageTracker>,
}

/// How many times a reopen waits for reads of the old handle to end.
const ATTEMPTS: u32 = 50;
const PAUSE: Duration = Duration::from_millis(20);

impl Reopener {
    /// Whether the database is the placeholder (reads must fail).
    pub(crate) fn is_broken(&self) -> bool {
        self.broken.load(Ordering::SeqCst)
    }

    /// The settings of every open of `store.redb` (the first one too).
    pub(crate) fn new(config: &crate::config::Config) -> Reopener {
        Reopener {
            path: config.db_path(),
            cache_bytes: config.db_cache_bytes,
            verify: config.verify_on_open,
            broken: std::sync::Arc::new(AtomicBool::new(false)),
            tracker: PageTracker::new(),
        }
    }

    /// A builder with those settings.
    pub(crate) fn builder(&self) -> redb::Builder {
        let mut builder = Database::builder();
        builder
            .set_cache_size(self.cache_bytes)
            .set_check_integrity_on_open(self.verify)
            .set_repair_callback(report_repair);
        builder
    }

    fn open(&self) -> Result<Database, Error> {
        let builder = self.builder();
        guard::guarded(&self.path, || {
            create(&builder, &self.path, &self.tracker)
                .map_err(|e| guard::open_error(&self.path, e))
        })
    }

    /// Replaces the database behind `db` with a fresh open of the file.
    pub(crate) fn reopen(&self, db: &RwLock<Database>, cache: &ReadCache) -> Result<(), Error> {
        let _span = tracing::warn_span!("reopen_after_io_error").entered();
        cache.invalidate();
        let mut shared = db.write().unwrap_or_else(|e| e.into_inner());
        if !self.is_broken() {
            let placeholder = Database::builder()
                .create_with_backend(redb::backends::InMemoryBackend::new())
                .ctx("creating a placeholder database")?;
            self.broken.store(true, Ordering::SeqCst);
            drop(std::mem::replace(&mut *shared, placeholder));
        }
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.open() {
                Ok(fresh) => {
                    *shared = fresh;
                    self.broken.store(false, Ordering::SeqCst);
                    tracing::warn!(
                        path = %self.path.display(),
                        "store.redb reopened after an I/O error; writes are taken again"
                    );
                    return Ok(());
                }
                // Reads of the old handle still hold the file.
                Err(Error::Locked { .. }) if attempt < ATTEMPTS => std::thread::sleep(PAUSE),
                Err(e) => {
                    tracing::error!(error = %e, "store.redb could not be reopened after an I/O error");
                    return Err(e);
                }
            }
        }
    }
}

/// The error reads get while the database is being reopened.
pub(crate) fn reopening() -> Error {
    Error::io(
        "reading store.redb",
        std::io::Error::other(
            "it is being reopened after an I/O error; the next write tries again",
        ),
    )
}

/// Whether beginning a write failed because an earlier write or fsync
/// failed (redb wants the file reopened).
pub(crate) fn is_previous_io(e: &redb::TransactionError) -> bool {
    matches!(
        e,
        redb::TransactionError::Storage(redb::StorageError::PreviousIo)
    )
}
