//! Work on the metadata database as a whole: exclusive access for what
//! redb allows only with `&mut Database` (compaction, its integrity
//! check), and the health probe.

use redb::Database;

use super::{Db, guard, migrate};
use crate::error::{Error, StorageContext};

impl Db {
    /// Runs `f` with the database to itself, for what redb allows only
    /// with `&mut Database` (integrity check, compaction): the writes
    /// queued before it commit first, the writer waits while it runs, and
    /// no transaction begins until it returns (reads already open finish;
    /// `f` may meet them as `TransactionInProgress`). A read-only store
    /// refuses with [`Error::ReadOnly`].
    pub(crate) async fn exclusive<T, F>(&self, f: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: FnOnce(&mut Database) -> Result<T, Error> + Send + 'static,
    {
        (self.writer()?.exclusive(f).await).map_err(|e| guard::corrupt_if_damaged(&self.path, e))
    }

    /// Compacts `store.redb` (exclusive): returns whether it shrank, or
    /// [`Error::Busy`] if reads kept it busy for a second.
    pub(crate) async fn compact(&self) -> Result<bool, Error> {
        self.exclusive(|db| {
            for _ in 0..100 {
                match db.compact() {
                    Err(redb::CompactionError::TransactionInProgress) => {
                        std::thread::sleep(std::time::Duration::from_millis(10));
                    }
                    other => return other.ctx("compacting the store"),
                }
            }
            Err(Error::Busy {
                what: "compacting the store",
                detail: "reads stayed in progress for a second".into(),
            })
        })
        .await
    }

    /// redb's integrity check of `store.redb` (exclusive): `true` when
    /// every page verified.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) async fn check_integrity(&self) -> Result<bool, Error> {
        self.exclusive(|db| db.check_integrity().ctx("checking the store's integrity"))
            .await
    }

    /// The database's health: a read probe on a fresh snapshot, and
    /// whether writes are taken.
    pub(crate) fn health(&self) -> crate::health::PartHealth {
        use crate::health::{HealthStatus, PartHealth};
        let probe = guard::guarded(&self.path, || {
            let txn = self.engine.begin_read()?;
            migrate::applied_version_in(&txn)
        });
        let version = match probe {
            Ok(v) => v.unwrap_or(0),
            Err(e) => {
                return PartHealth::new(
                    "database",
                    HealthStatus::Unhealthy,
                    format!("a read failed: {e}"),
                );
            }
        };
        let stats = self.write_stats();
        let figures = format!(
            "schema {version}; {} writes in {} commits, {} refused or failed",
            stats.requests, stats.commits, stats.failed_requests
        );
        match &self.writer {
            None => PartHealth::new(
                "database",
                HealthStatus::Degraded,
                format!("open read-only: writes are refused; {figures}"),
            ),
            Some(w) if !w.is_running() => PartHealth::new(
                "database",
                HealthStatus::Unhealthy,
                format!("the writer has stopped: writes fail; {figures}"),
            ),
            Some(_) => PartHealth::new("database", HealthStatus::Healthy, figures),
        }
    }
}
