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

    /// Runs `f` between two commits (see `Writer::between`): every write
    /// acknowledged before it is in the file and none runs while it does;
    /// reads go on. A read-only store refuses with [`Error::ReadOnly`].
    pub(crate) async fn between_commits<T, F>(&self, f: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: FnOnce(&Database) -> Result<T, Error> + Send + 'static,
    {
        (self.writer()?.between(f).await).map_err(|e| guard::corrupt_if_damaged(&self.path, e))
    }

    /// Which pages of `store.redb` were written since when (see
    /// [`page_tracker`](crate::db::page_tracker)).
    pub(crate) fn tracker(&self) -> &std::sync::Arc<crate::db::page_tracker::PageTracker> {
        &self.tracker
    }

    /// Compacts `store.redb` (exclusive): returns whether it shrank, or
    /// [`Error::Busy`] if reads kept it busy for a second.
    pub(crate) async fn compact(&self) -> Result<bool, Error> {
        const WHAT: &str = "compacting the store";
        self.exclusive(|db| {
            after_reads(WHAT, db, Database::compact, |e| {
                matches!(e, redb::CompactionError::TransactionInProgress)
            })?
            .ctx(WHAT)
        })
        .await
    }

    /// redb's integrity check of `store.redb` (exclusive): `true` when
    /// every page verified, or [`Error::Busy`] if reads kept it busy for a
    /// second.
    pub(crate) async fn check_integrity(&self) -> Result<bool, Error> {
        const WHAT: &str = "checking the store's integrity";
        self.exclusive(|db| {
            after_reads(WHAT, db, Database::check_integrity, |e| {
                matches!(e, redb::DatabaseError::TransactionInProgress)
            })?
            .ctx(WHAT)
        })
        .await
    }

    /// The database's health: a read probe on a fresh snapshot, the file's
    /// size, and a round trip through the writer thread (a request queued
    /// like a write, answered between two batches: it shows that writes
    /// are taken and how long one waits for the batch ahead of it).
    pub(crate) async fn health(&self) -> crate::health::PartHealth {
        use crate::health::{HealthStatus, PartHealth};
        /// Longer than this for the writer to answer is degraded.
        const SLOW_WRITER: std::time::Duration = std::time::Duration::from_secs(1);
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
        let size = std::fs::metadata(&self.path)
            .map(|m| crate::bytesize::ByteSize(m.len()).to_string())
            .unwrap_or_else(|e| format!("size unknown ({e})"));
        let stats = self.write_stats();
        let figures = format!(
            "schema {version}; {size}; {} writes in {} commits, {} refused or failed",
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
            Some(_) => {
                let asked = std::time::Instant::now();
                let answer =
                    tokio::time::timeout(SLOW_WRITER, self.between_commits(|_| Ok(()))).await;
                let took = asked.elapsed().as_secs_f64() * 1e3;
                match answer {
                    Ok(Ok(())) => PartHealth::new(
                        "database",
                        HealthStatus::Healthy,
                        format!("writer answered in {took:.2} ms; {figures}"),
                    ),
                    Ok(Err(e)) => PartHealth::new(
                        "database",
                        HealthStatus::Unhealthy,
                        format!("the writer refused a probe: {e}; {figures}"),
                    ),
                    Err(_) => PartHealth::new(
                        "database",
                        HealthStatus::Degraded,
                        format!(
                            "the writer did not answer in {} ms (a long batch ahead, or stuck); {figures}",
                            SLOW_WRITER.as_millis()
                        ),
                    ),
                }
            }
        }
    }
}

/// Runs `op`, which redb refuses while a read transaction is open
/// (`in_progress`). During exclusive work no read begins, so the reads in
/// flight end soon: `op` is tried again every 10 ms, for a second at
/// most, then [`Error::Busy`].
fn after_reads<T, E>(
    what: &'static str,
    db: &mut Database,
    op: impl Fn(&mut Database) -> Result<T, E>,
    in_progress: impl Fn(&E) -> bool,
) -> Result<Result<T, E>, Error> {
    for _ in 0..100 {
        match op(db) {
            Err(e) if in_progress(&e) => std::thread::sleep(std::time::Duration::from_millis(10)),
            other => return Ok(other),
        }
    }
    Err(Error::Busy {
        what,
        detail: "reads stayed in progress for a second".into(),
    })
}
