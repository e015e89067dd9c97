//! The [`Store`] handle: opens the data directory and hands out views.
//!
//! No logic lives here; every method delegates to its module.

use std::sync::{Arc, Weak};

use crate::blob::BlobStore;
use crate::blob::files::Files;
use crate::blob::keys_view::Keys;
use crate::cache::{Cache, CacheCore};
use crate::config::Config;
use crate::db::Db;
use crate::db::audit::AuditEvent;
use crate::db::files::FileRecords;
use crate::db::metrics::Metrics;
use crate::db::migrate::{self, MigrationStatus};
use crate::db::profiles::Profiles;
use crate::db::sessions::Sessions;
use crate::db::users::Users;
use crate::error::Error;
use crate::jobs::runtime::body_on;
use crate::jobs::{JobRuntime, JobSpec, Jobs};

/// One open store. Cheap to clone; every clone is the same store.
///
/// ```
/// # use bharatvoice_store::*;
/// # #[tokio::main] async fn main() -> Result<(), Error> {
/// # let dir = tempfile::tempdir().unwrap();
/// let store = Store::open(Config::new(dir.path())).await?;
/// let again = Store::open(Config::new(dir.path())).await;
/// assert!(matches!(again, Err(Error::Locked { .. })));
/// store.close().await;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    db: Db,
    blobs: BlobStore,
    cache: Arc<CacheCore>,
    config: Config,
    jobs: JobRuntime,
    cursors: crate::lifecycle::Cursors,
    tamper: Arc<crate::lifecycle::TamperWatch>,
    /// One erasure at a time.
    erasing: tokio::sync::Mutex<()>,
    /// The data region recorded in the store (or configured for it).
    region: Option<String>,
    /// The admin socket, while it serves.
    #[cfg(unix)]
    admin: std::sync::Mutex<Option<crate::admin::server::AdminServer>>,
}

/// A handle that does not keep the store open (the admin socket's).
#[derive(Clone)]
pub(crate) struct WeakStore(Weak<Inner>);

impl WeakStore {
    pub(crate) fn upgrade(&self) -> Option<Store> {
        self.0.upgrade().map(|inner| Store { inner })
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        #[cfg(unix)]
        drop(
            self.admin
                .get_mut()
                .unwrap_or_else(|p| p.into_inner())
                .take(),
        );
        self.tamper.stop();
        self.jobs.cancel();
        self.db.shutdown();
        // Commits the cache's write-behind batch before the file closes.
        self.cache.shutdown();
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("data_dir", &self.inner.config.data_dir)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens the store in `config.data_dir` and migrates an older schema.
    /// By default ([`OpenMode`](crate::OpenMode)) it creates the directory
    /// and the store where no part of a store exists; a `store.redb` missing
    /// or empty beside other parts is [`Error::StoreIncomplete`]. A store
    /// held by another process (or another open `Store`) is
    /// [`Error::Locked`]; one written by a newer version is
    /// [`Error::VersionTooNew`]; a damaged `store.redb` is
    /// [`Error::Corrupt`].
    ///
    /// The cache opens `cache.redb` beside it; a cache file that cannot be
    /// used never stops the store from opening (it is set aside and rebuilt,
    /// or the cache starts with tier 2 degraded).
    #[tracing::instrument(skip_all, fields(data_dir = %config.data_dir.display()))]
    pub async fn open(config: Config) -> Result<Store, Error> {
        config.validate()?;
        let mut config2 = config.clone();
        let (db, cache, region) = tokio::task::spawn_blocking(move || {
            crate::datadir::prepare(&config2)?;
            let db = Db::open(&config2)?;
            let region = crate::privacy::region::settle(&db, config2.region.as_deref())?;
            if db.is_read_only() {
                // cache.redb cannot be written either: memory only.
                config2.cache.tier2 = false;
            }
            let cache = CacheCore::open(&config2, Arc::clone(&db.telemetry))?;
            if !db.is_read_only() {
                crate::datadir::make_private(&config2)?;
            }
            Ok::<_, Error>((db, Arc::new(cache), region))
        })
        .await
        .map_err(|e| Error::join("opening the store", e))??;
        let blobs = match BlobStore::open(&db, &config).await {
            Ok(blobs) => blobs,
            Err(e) => {
                // Nothing started here may outlive a failed open: a retry
                // in this process must find the files free.
                let _ = tokio::task::spawn_blocking(move || {
                    cache.shutdown();
                    db.shutdown();
                })
                .await;
                return Err(e);
            }
        };
        let store = Store {
            inner: Arc::new_cyclic(|weak: &Weak<Inner>| {
                let tamper = Arc::default();
                let jobs = jobs(weak, &cache, &config, &tamper);
                Inner {
                    jobs: JobRuntime::new(config.clock.clone(), jobs),
                    db,
                    blobs,
                    cache,
                    config,
                    cursors: Default::default(),
                    tamper,
                    erasing: Default::default(),
                    region: region.region.clone(),
                    #[cfg(unix)]
                    admin: Default::default(),
                }
            }),
        };
        if region.record
            && let Some(r) = region.region
        {
            crate::privacy::region::record(&store.inner.db, r).await?;
        }
        crate::db::migrate_v10::seal_plain_rows(&store.inner.db).await?;
        store.inner.jobs.start();
        let inner = &store.inner;
        if !inner.db.is_read_only() {
            // Reads noted in memory are written early after a burst.
            let early = |job| inner.jobs.waker(job);
            if let Some(w) = early(crate::audit::READS_JOB) {
                inner.db.auditor().reads_flush.set(w);
            }
            if let Some(w) = early(crate::lifecycle::access::JOB) {
                inner.blobs.reads.flush.set(w);
            }
        }
        (inner.tamper)
            .start(
                &inner.blobs,
                &inner.jobs,
                &inner.config.lifecycle,
                inner.db.is_read_only(),
            )
            .await;
        // A rotation cut off by the last close resumes now; otherwise the
        // job first runs after its interval, so that nothing holds the
        // store's files past the last handle's drop.
        if !store.inner.db.is_read_only()
            && !crate::blob::rotation::unfinished(&store.inner.db)
                .await?
                .is_empty()
        {
            tracing::info!("resuming an owner key rotation");
            store.inner.jobs.trigger(crate::blob::rotation::JOB);
        }
        store.watch_erasures()?;
        store.serve_admin();
        Ok(store)
    }

    /// Starts the admin socket where the configuration asks for it; a
    /// socket that cannot be bound is logged, not fatal.
    fn serve_admin(&self) {
        #[cfg(unix)]
        if self.inner.config.admin_socket && !self.is_read_only() {
            let weak = WeakStore(Arc::downgrade(&self.inner));
            match crate::admin::server::start(&self.inner.config.data_dir, weak) {
                Ok(server) => {
                    *self.inner.admin.lock().unwrap_or_else(|p| p.into_inner()) = Some(server)
                }
                Err(e) => tracing::warn!(error = %e, "the admin socket is off"),
            }
        }
    }

    /// Where the admin socket listens, while it does.
    pub fn admin_socket(&self) -> Option<std::path::PathBuf> {
        #[cfg(unix)]
        {
            let admin = self.inner.admin.lock().unwrap_or_else(|p| p.into_inner());
            admin.as_ref().map(|a| a.path().to_owned())
        }
        #[cfg(not(unix))]
        None
    }

    /// Where a store stands against this build's schema, without opening it
    /// for writing (and without migrating it).
    pub async fn migration_status(config: &Config) -> Result<MigrationStatus, Error> {
        let path = config.db_path();
        tokio::task::spawn_blocking(move || migrate::status(&path))
            .await
            .map_err(|e| Error::join("reading the schema version", e))?
    }

    /// Whether the store was opened read-only: its data directory is not
    /// writable by this process, or [`Config::read_only`] asked for it.
    /// Reads work; writes fail with [`Error::ReadOnly`].
    pub fn is_read_only(&self) -> bool {
        self.inner.db.is_read_only()
    }

    /// The settings this store was opened with.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The metadata database file (`store.redb` in the data directory).
    pub fn db_file(&self) -> &std::path::Path {
        self.inner.db.path()
    }

    /// The data region recorded in the store, if any (see
    /// [`Config::region`](Config#structfield.region)).
    pub fn region(&self) -> Option<&str> {
        self.inner.region.as_deref()
    }

    /// The applied schema version.
    pub fn schema_version(&self) -> Result<u32, Error> {
        Ok(self
            .inner
            .db
            .schema_version()?
            .unwrap_or(migrate::SCHEMA_VERSION))
    }

    /// Counts of the group-commit writer's work since open: requests,
    /// commits, largest batch.
    pub fn write_stats(&self) -> crate::WriteStats {
        self.inner.db.write_stats()
    }

    /// User accounts.
    pub fn users(&self) -> Users<'_> {
        Users { db: &self.inner.db }
    }

    /// User profiles.
    pub fn profiles(&self) -> Profiles<'_> {
        Profiles { db: &self.inner.db }
    }

    /// Conversation sessions.
    pub fn sessions(&self) -> Sessions<'_> {
        Sessions { db: &self.inner.db }
    }

    /// Audio-file metadata records.
    pub fn file_records(&self) -> FileRecords<'_> {
        FileRecords { db: &self.inner.db }
    }

    /// System metric samples.
    pub fn metrics(&self) -> Metrics<'_> {
        Metrics { db: &self.inner.db }
    }

    /// Stored files: encrypted, compressed, content-addressed.
    pub fn files(&self) -> Files<'_> {
        Files {
            db: &self.inner.db,
            blobs: &self.inner.blobs,
        }
    }

    /// Consent and erasure: erase a user, follow scheduled erasures,
    /// subscribe to privacy events.
    pub fn privacy(&self) -> crate::Privacy<'_> {
        self.inner.privacy()
    }

    /// Runs an erasure cut off by the last close at once, and every
    /// erasure scheduled with no notice as soon as it commits (the job's
    /// interval covers the others).
    fn watch_erasures(&self) -> Result<(), Error> {
        if self.is_read_only() {
            return Ok(());
        }
        let Some(waker) = self.inner.jobs.waker(crate::privacy::JOB) else {
            return Ok(());
        };
        if crate::privacy::any_due(&self.inner.db)? {
            tracing::info!("resuming an erasure");
            waker.wake();
        }
        let mut events = self.privacy().subscribe();
        let clock = self.inner.config.clock.clone();
        tokio::spawn(async move {
            use tokio::sync::broadcast::error::RecvError;
            loop {
                match events.recv().await {
                    Ok(crate::PrivacyEvent::ErasureScheduled { due, .. }) if due <= clock.now() => {
                        waker.wake()
                    }
                    Ok(_) => {}
                    Err(RecvError::Lagged(_)) => waker.wake(),
                    Err(RecvError::Closed) => break,
                }
            }
        });
        Ok(())
    }

    /// Storage usage and quotas.
    pub fn quotas(&self) -> crate::Quotas<'_> {
        crate::Quotas {
            db: &self.inner.db,
            config: &self.inner.blobs.quota,
            blob_dir: &self.inner.blobs.tmp_dir,
        }
    }

    /// Key status and rotation.
    pub fn keys(&self) -> Keys<'_> {
        Keys {
            db: &self.inner.db,
            keyring: &self.inner.blobs.keyring,
            data_dir: &self.inner.config.data_dir,
            jobs: &self.inner.jobs,
        }
    }

    /// The background jobs (key rotation, cache housekeeping): their
    /// status, and a pass on demand.
    pub fn jobs(&self) -> Jobs<'_> {
        Jobs {
            runtime: &self.inner.jobs,
        }
    }

    /// Expiry, purge, orphan collection and metric retention: on demand,
    /// or as a dry run.
    pub fn lifecycle(&self) -> crate::Lifecycle<'_> {
        crate::Lifecycle {
            parts: self.inner.lifecycle_parts(),
            jobs: &self.inner.jobs,
        }
    }

    /// Waits until every write queued before this call is durably
    /// committed, including the audit records of refusals, which are
    /// written without their caller waiting for them.
    pub async fn flush(&self) -> Result<(), Error> {
        crate::telemetry::observe(
            &self.inner.db.telemetry,
            crate::telemetry::op_key!("store.flush"),
            self.inner.db.write(|_txn| Ok(())),
        )
        .await
    }

    /// The newest `limit` audit events, newest first. A refusal's record
    /// is committed with the next group commit, and reads are appended by
    /// the `audit-reads` job: [`flush`](Self::flush) and
    /// [`Audit::flush_reads`](crate::Audit::flush_reads) first to be sure
    /// to see them. [`audit`](Self::audit) has verify and filters.
    pub fn audit_events(&self, limit: usize) -> Result<Vec<AuditEvent>, Error> {
        let db = &self.inner.db;
        crate::telemetry::observe_sync(
            &db.telemetry,
            crate::telemetry::op_key!("store.audit_events"),
            || {
                let mut events = db.read(|txn| crate::db::audit::tail(txn, limit, |_| true))?;
                events.reverse();
                Ok(events)
            },
        )
    }

    /// The audit log: verify the chain, read its tail.
    pub fn audit(&self) -> crate::Audit<'_> {
        crate::Audit { db: &self.inner.db }
    }

    pub(crate) fn db(&self) -> &Db {
        &self.inner.db
    }

    pub(crate) fn cache_core(&self) -> &CacheCore {
        &self.inner.cache
    }

    pub(crate) fn blob_store(&self) -> &BlobStore {
        &self.inner.blobs
    }

    /// Each part's health (database, cache, blobs, jobs, integrity) and the worst of
    /// them; the probes write no data (the blobs probe creates and removes
    /// an empty file where puts stage theirs).
    pub async fn health(&self) -> crate::Health {
        // Counted like every public operation; it has no error to count.
        let telemetry = &self.inner.db.telemetry;
        let call = telemetry.start(crate::telemetry::op_key!("store.health"));
        let health = self.probe_parts().await;
        telemetry.finish(call, None);
        health
    }

    async fn probe_parts(&self) -> crate::Health {
        use crate::health::timed;
        let inner = &self.inner;
        crate::Health::of(vec![
            timed(inner.db.health()).await,
            timed(async { inner.cache.health() }).await,
            timed(inner.blobs.health()).await,
            timed(async { inner.jobs.health() }).await,
            timed(async { crate::lifecycle::health(&inner.db, &inner.tamper) }).await,
            timed(async { crate::ops::backup::health(&inner.db) }).await,
            timed(async {
                let anomalies = &inner.db.telemetry.anomalies;
                if let Ok(Some(space)) = self.quotas().disk_space() {
                    anomalies.note_space(space.available);
                }
                anomalies.health(&inner.config.metrics)
            })
            .await,
        ])
    }

    /// The tiered cache (memory, then `cache.redb`).
    pub fn cache(&self) -> Cache<'_> {
        Cache {
            core: &self.inner.cache,
        }
    }

    /// Waits for queued writes (and the cache's write-behind batch) and
    /// stops the writers; later writes fail with [`Error::Closed`]. The
    /// files are released when the last clone of this handle is dropped.
    pub async fn close(&self) {
        // Reads counted (and audited) since the last pass are written
        // before the end.
        if !self.is_read_only() {
            let parts = self.inner.lifecycle_parts();
            while let Ok(out) = parts.pass(crate::lifecycle::access::JOB, false).await {
                if !out.more {
                    break;
                }
            }
            if let Err(e) = self.audit().flush_reads().await {
                tracing::error!(error = %e, "could not append the noted reads to the audit log");
            }
        }
        #[cfg(unix)]
        drop(
            self.inner
                .admin
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take(),
        );
        self.inner.tamper.stop();
        self.inner.jobs.stop().await;
        self.inner.blobs.shredder.settle().await;
        let inner = Arc::clone(&self.inner);
        let _ = tokio::task::spawn_blocking(move || {
            inner.db.shutdown();
            inner.cache.shutdown();
        })
        .await;
    }
}

/// The store's background jobs, each holding a weak handle to the part it
/// works on.
fn jobs(
    store: &Weak<Inner>,
    cache: &Arc<CacheCore>,
    config: &Config,
    tamper: &Arc<crate::lifecycle::TamperWatch>,
) -> Vec<JobSpec> {
    let mut jobs = vec![JobSpec {
        name: crate::blob::rotation::JOB,
        about: "re-wraps the blobs of owners whose key is rotating, then destroys the old key",
        interval: std::time::Duration::from_secs(3600),
        body: body_on(store.clone(), |inner: Arc<Inner>| async move {
            crate::blob::rotation::pass(&inner.db, &inner.blobs.keyring).await
        }),
    }];
    jobs.push(JobSpec {
        name: crate::privacy::JOB,
        about: "runs erasures that fell due (consent withdrawn) and resumes cut-off ones",
        interval: config.privacy.erasure_interval,
        body: body_on(store.clone(), |inner: Arc<Inner>| async move {
            inner.privacy().pass().await
        }),
    });
    jobs.extend(cache.jobs(config.cache.sweep_interval));
    jobs.extend(crate::lifecycle::specs(
        store,
        config,
        Inner::lifecycle_parts,
        tamper,
    ));
    jobs.extend(metrics_jobs(store, &config.metrics));
    jobs
}

/// The metrics jobs: snapshots into the metrics table and, where a path
/// is configured, the Prometheus textfile.
fn metrics_jobs(store: &Weak<Inner>, config: &crate::MetricsConfig) -> Vec<JobSpec> {
    use crate::telemetry::snapshot;
    let baseline = Arc::new(snapshot::Baseline::default());
    let mut jobs = vec![JobSpec {
        name: snapshot::SNAPSHOT_JOB,
        about: "writes each operation's calls, errors and latency since the last pass, and the parts' gauges, into the metrics table",
        interval: config.snapshot_interval,
        body: body_on(store.clone(), move |inner: Arc<Inner>| {
            let baseline = Arc::clone(&baseline);
            async move { snapshot::snapshot(&Store { inner }, &baseline).await }
        }),
    }];
    if let Some(path) = &config.textfile {
        let path = Arc::new(path.clone());
        jobs.push(JobSpec {
            name: snapshot::TEXTFILE_JOB,
            about: "writes the Prometheus text exposition to the configured textfile, atomically",
            interval: config.textfile_interval,
            body: body_on(store.clone(), move |inner: Arc<Inner>| {
                let path = Arc::clone(&path);
                async move { snapshot::textfile(&Store { inner }, &path).await }
            }),
        });
    }
    jobs
}

impl Inner {
    fn privacy(&self) -> crate::Privacy<'_> {
        crate::Privacy {
            db: &self.db,
            blobs: &self.blobs,
            cache: &self.cache,
            lock: &self.erasing,
            region: self.region.as_deref(),
        }
    }

    fn lifecycle_parts(&self) -> crate::lifecycle::Parts<'_> {
        crate::lifecycle::Parts {
            db: &self.db,
            blobs: &self.blobs,
            config: &self.config.lifecycle,
            audit: &self.config.audit,
            cursors: &self.cursors,
        }
    }
}
