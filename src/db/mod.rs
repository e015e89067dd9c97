//! The metadata database: `store.redb`, its tables, indexes and writer.
//!
//! # Where work runs
//!
//! * **Writes** go to the group-commit [`writer`] thread; a caller's future
//!   resolves once its transaction is durably committed.
//! * **Point reads** (get by id, username, email) run *inline* on the
//!   calling task, on a shared snapshot with the hot tables open
//!   ([`snapshot`]): about 0.4–0.7 µs at 100k users, while a hop to another
//!   thread (`spawn_blocking`) measured 14–25 µs on this 2-vCPU VM
//!   (`benches/db.rs`, group `read_placement`). Blocking a runtime thread
//!   for a microsecond is cheaper than the hop.
//! * **Short listings** (at most 64 items through an index: a user's 20
//!   newest sessions, a page of users) also run inline: a 20-item session
//!   list costs ~10 µs of reads, and through `spawn_blocking` it measured
//!   ~53 µs, almost all of it the hop (`benches/db.rs`).
//! * **Scans** (longer lists, range queries, expiry sweeps, anything that
//!   may touch many rows) run on the blocking pool through [`Db::scan`], so
//!   that a long read never stalls the async threads. redb read transactions are MVCC snapshots:
//!   a long scan never blocks the writer, and the writer never blocks it.
//!
//! # The wall
//!
//! The table definitions (`schema`) are private to this module: every
//! read or write of a table goes through a function of its family module
//! (`db::files`, `db::keys`, `db::grants`, ...) taking a transaction, and
//! `db` imports nothing from `blob`, `cache` or the CLI (wrapped keys are
//! opaque bytes here). Nothing outside `db` can name a table:
//!
//! ```compile_fail
//! use bharatvoice_store::db::schema::FILES;
//! ```
//!
//! # Spans
//!
//! Point reads open their span at `DEBUG`, writes and scans at `INFO`: with
//! a `tracing_subscriber::fmt` subscriber at `INFO` (writing nowhere), an
//! `INFO` span on a get by id took it from ~190 ns to ~590 ns, three
//! times the read itself (2,000 users, 2M gets), while a durable write costs
//! ~200 µs and a span is lost in it.

pub(crate) mod audit;
pub(crate) mod audit_retention;
pub(crate) mod audit_verify;
pub(crate) mod backend_wrap;
pub(crate) mod blobs;
pub(crate) mod codec;
pub(crate) mod erasures;
#[cfg(test)]
mod exclusive_tests;
#[cfg(feature = "fault-injection")]
pub mod fault;
#[cfg(test)]
pub(crate) use schema::{forget_file_record, forget_session_record};
pub(crate) mod files;
pub(crate) mod grants;
pub(crate) mod guard;
pub(crate) mod keys;
pub(crate) mod lifecycle;
pub(crate) mod metrics;
pub(crate) mod migrate;
pub(crate) mod migrate_v10;
mod migrate_v6;
mod migrate_v7;
mod migrate_v8;
pub(crate) mod migrate_v9;
pub(crate) mod opened;
#[cfg(test)]
mod opened_tests;
mod ops;
pub(crate) mod page_tracker;
pub(crate) mod profile_row;
pub(crate) mod profiles;
pub(crate) mod records;
pub(crate) mod removal;
mod reopen;
mod riders;
mod schema;
pub(crate) mod sealing;
pub(crate) mod session_row;
pub(crate) mod sessions;
pub(crate) mod snapshot;
pub(crate) mod snapshot_copy;
pub(crate) mod stats;
mod text;
pub(crate) mod txn;
pub(crate) mod usage;
pub(crate) mod user_record;
pub(crate) mod users;
pub(crate) mod users_index;
pub(crate) mod users_password;
pub(crate) mod verify;
mod verify_records;
mod verify_repair;
mod verify_sessions;
mod verify_users;
pub(crate) mod writer;

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use redb::{Database, ReadTransaction, ReadableDatabase, ReadableTable, WriteTransaction};

use crate::config::Config;
use crate::error::{Error, StorageContext};
use crate::types::Timestamp;
use codec::Record;

/// Listings of at most this many items run inline (see [`Db::list`]).
pub(crate) const INLINE_LIST_LIMIT: usize = 64;

/// Settings the db modules read at run time.
#[derive(Debug, Clone)]
pub(crate) struct DbSettings {
    pub(crate) context: crate::model::session::ContextLimits,
    pub(crate) session_idle: std::time::Duration,
    /// Bytes of opened session contexts kept in memory (`db::opened`).
    pub(crate) session_cache_bytes: u64,
    pub(crate) password_memory_kib: u32,
    pub(crate) password_iterations: u32,
    /// Where every recorded time is read.
    pub(crate) clock: crate::Clock,
    /// How long after an audio-storage consent withdrawal its erasure
    /// falls due.
    pub(crate) consent_notice: std::time::Duration,
    /// Whether the consent gates are on (`privacy.require_consent`).
    pub(crate) require_consent: bool,
    /// Where privacy events go once their change commits.
    pub(crate) privacy_events: tokio::sync::broadcast::Sender<crate::model::privacy::PrivacyEvent>,
}

/// The open metadata database.
pub(crate) struct Db {
    engine: Engine,
    cache: Arc<snapshot::ReadCache>,
    /// `None` when the store was opened read-only.
    writer: Option<writer::Writer>,
    path: PathBuf,
    pub(crate) settings: DbSettings,
    /// The audit log's state: on or off, key, noted reads.
    audit: Arc<audit::Auditor>,
    /// Owners' record keys, once the keyring is loaded (see [`sealing`]).
    sealer: std::sync::OnceLock<sealing::Sealer>,
    /// Every public operation's calls, errors and latency (the store's
    /// own metrics registry; the cache shares it).
    pub(crate) telemetry: Arc<crate::telemetry::Telemetry>,
    /// The pages of `store.redb` this open wrote, by epoch (never started
    /// on a read-only store).
    tracker: Arc<page_tracker::PageTracker>,
}

/// redb opened for writing, or read-only (a data directory the process may
/// not write: reads work, writes are [`Error::ReadOnly`]).
enum Engine {
    /// The database, and whether it is being reopened after an I/O error
    /// (see [`reopen`]): reads fail then.
    Writable(Arc<RwLock<Database>>, Arc<std::sync::atomic::AtomicBool>),
    ReadOnly(redb::ReadOnlyDatabase),
}

impl Engine {
    fn begin_read(&self) -> Result<ReadTransaction, Error> {
        match self {
            Engine::Writable(_, broken) if broken.load(std::sync::atomic::Ordering::SeqCst) => {
                return Err(reopen::reopening());
            }
            Engine::Writable(db, _) => shared(db).begin_read(),
            Engine::ReadOnly(db) => db.begin_read(),
        }
        .ctx("beginning a read transaction")
    }
}

/// Whether an error opening `store.redb` for writing means the process may
/// not write there (read-only file system, or no write permission).
/// What redb's check or repair at open is doing, for the log. Every commit
/// this store makes is two-phase ([`begin_write`]), so a last commit that
/// does not verify is refused as corrupt; only a file last written without
/// two-phase commit (by an older build, or a compaction) falls back to the
/// commit before it, which redb reports at 30 % progress.
fn report_repair(session: &mut redb::RepairSession) {
    let progress = session.progress();
    if (0.29..0.31).contains(&progress) {
        tracing::warn!(
            "store.redb: the last commit (made without two-phase commit) does not verify; \
             rolling back to the commit before it"
        );
    } else if progress == 0.0 {
        tracing::debug!("store.redb: verifying every page");
    }
}

/// Begins a write transaction that commits in two phases: the pages are
/// made durable before the commit slot names them, so a commit that does
/// not verify later is damage (refused), never a crash to roll back.
/// The database as readers and the writer share it: a read lock to begin
/// a transaction; the writer takes the write lock for exclusive work
/// (`Db::exclusive`). A poisoned lock is taken back: nothing is left
/// half-changed under it (redb's own state is guarded separately).
pub(crate) fn shared(db: &RwLock<Database>) -> std::sync::RwLockReadGuard<'_, Database> {
    db.read().unwrap_or_else(|e| e.into_inner())
}

/// A write transaction of `store.redb`: two-phase, and with `quick_repair`
/// it also saves redb's allocator state, so that reopening after a crash
/// reads that state instead of walking the whole file (see
/// [`Config::quick_repair`](crate::Config#structfield.quick_repair)).
pub(crate) fn begin_write(
    db: &Database,
    quick_repair: bool,
) -> Result<WriteTransaction, redb::TransactionError> {
    let mut txn = db.begin_write()?;
    txn.set_two_phase_commit(true);
    txn.set_quick_repair(quick_repair);
    Ok(txn)
}

/// Opens or creates the file, its writes marked in `tracker` (restarted:
/// see [`page_tracker`]); through a fault plan where a test armed one.
fn create(
    builder: &redb::Builder,
    path: &std::path::Path,
    tracker: &Arc<page_tracker::PageTracker>,
) -> Result<Database, redb::DatabaseError> {
    #[cfg(feature = "fault-injection")]
    if let Some(plan) = fault::plan_for(path) {
        let backend = fault::FaultBackend::open(path, plan)?;
        return builder
            .create_with_backend(page_tracker::Tracked::new(backend, Arc::clone(tracker)));
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)?;
    let backend = redb::backends::FileBackend::new(file)?;
    builder.create_with_backend(page_tracker::Tracked::new(backend, Arc::clone(tracker)))
}

fn is_read_only(e: &redb::DatabaseError) -> bool {
    matches!(
        e,
        redb::DatabaseError::Storage(redb::StorageError::Io(io))
            if matches!(io.kind(), std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem)
    )
}

impl Db {
    /// Opens (or creates) `store.redb` in the data directory and migrates
    /// it; where the process may not write (or `config.read_only`), opens
    /// it read-only. Blocking: call from a blocking context.
    pub(crate) fn open(config: &Config) -> Result<Db, Error> {
        let path = config.db_path();
        let reopener = reopen::Reopener::new(config);
        let builder = reopener.builder();
        let opened = guard::guarded(&path, || {
            if config.read_only {
                return Ok(None);
            }
            let mut database = match create(&builder, &path, &reopener.tracker) {
                Ok(db) => db,
                Err(e) if is_read_only(&e) => return Ok(None),
                Err(e) => return Err(guard::open_error(&path, e)),
            };
            let steps = migrate::migrate(&database, &path)?;
            if !steps.is_empty() {
                tracing::info!(steps = steps.len(), "store migrated");
                migrate::compact_after(&mut database, &path);
            }
            Ok(Some(database))
        })?;
        let cache = Arc::new(snapshot::ReadCache::default());
        let tracker = Arc::clone(&reopener.tracker);
        let (engine, writer) = match opened {
            Some(database) => {
                let database = Arc::new(RwLock::new(database));
                let broken = Arc::clone(&reopener.broken);
                let writer = writer::Writer::start(
                    Arc::clone(&database),
                    Arc::clone(&cache),
                    path.clone(),
                    config.max_batch,
                    config.write_queue,
                    config.saves_allocator_state(),
                    Some(reopener),
                )?;
                (Engine::Writable(database, broken), Some(writer))
            }
            None => {
                let database = guard::guarded(&path, || {
                    let db = builder
                        .open_read_only(&path)
                        .map_err(|e| guard::open_error(&path, e))?;
                    migrate::check_current(&db, &path)?;
                    Ok(db)
                })?;
                tracing::info!(path = %path.display(), "opened read-only: writes are refused");
                (Engine::ReadOnly(database), None)
            }
        };
        Ok(Db {
            engine,
            cache,
            writer,
            path,
            settings: DbSettings {
                context: crate::model::session::ContextLimits {
                    max_turns: config.session_max_turns,
                    max_bytes: config.session_max_context_bytes,
                },
                session_idle: config.session_idle_timeout,
                session_cache_bytes: config.session_cache_bytes,
                password_memory_kib: config.password_memory_kib,
                password_iterations: config.password_iterations,
                clock: config.clock.clone(),
                consent_notice: config.privacy.consent_notice,
                require_consent: config.privacy.require_consent,
                privacy_events: tokio::sync::broadcast::channel(256).0,
            },
            audit: Arc::new(audit::Auditor::new(config.audit.enabled)),
            sealer: std::sync::OnceLock::new(),
            telemetry: Arc::new(crate::telemetry::Telemetry::new(config.clock.clone())),
            tracker,
        })
    }

    /// The audit log's state, for write closures to record entries with
    /// (see `crate::audit`).
    pub(crate) fn auditor(&self) -> Arc<audit::Auditor> {
        Arc::clone(&self.audit)
    }

    /// Installs what finds owners' record keys (the keyring, once loaded).
    /// The first install wins.
    pub(crate) fn install_sealer(&self, keys: Arc<dyn sealing::RecordKeys>) {
        let opened = opened::OpenedContexts::new(self.settings.session_cache_bytes);
        let _ = self
            .sealer
            .set(sealing::Sealer::new(keys, Arc::new(opened)));
    }

    /// Drops every opened session context from memory (`db::opened`):
    /// after an erasure, none of the erased user's text stays there.
    pub(crate) fn forget_opened(&self) {
        if let Some(s) = self.sealer.get() {
            s.forget_opened();
        }
    }

    /// What seals and opens personal fields; an error before the keyring
    /// is loaded.
    pub(crate) fn sealer(&self) -> Result<sealing::Sealer, Error> {
        self.sealer.get().cloned().ok_or_else(|| Error::MissingKey {
            reason: "personal fields are read before the store's keys are loaded".into(),
        })
    }

    /// The current time of the store's clock.
    pub(crate) fn now(&self) -> Timestamp {
        self.settings.clock.now()
    }

    /// Whether the store was opened read-only.
    pub(crate) fn is_read_only(&self) -> bool {
        self.writer.is_none()
    }

    fn writer(&self) -> Result<&writer::Writer, Error> {
        self.writer.as_ref().ok_or_else(|| Error::ReadOnly {
            path: self.path.clone(),
            detail: "writes are refused (the data directory is not writable by this process, or the store was opened with read_only)".into(),
        })
    }

    /// The database file.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The shared snapshot for point reads (see [`snapshot`]).
    pub(crate) fn snapshot(&self) -> Result<Arc<snapshot::Snapshot>, Error> {
        guard::guarded(&self.path, || self.cache.get(|| self.engine.begin_read()))
    }

    /// Runs `f` at the engine boundary (see [`guard`]): a panic or a
    /// damaged page inside it is [`Error::Corrupt`] about this file.
    pub(crate) fn guarded<T>(&self, f: impl FnOnce() -> Result<T, Error>) -> Result<T, Error> {
        guard::guarded(&self.path, f)
    }

    /// Every row of every table (see `schema::dump_all`).
    #[cfg(test)]
    pub(crate) fn dump_all(&self) -> Vec<(String, Vec<u8>, Vec<u8>)> {
        self.read(|txn| Ok(schema::dump_all(txn))).expect("dumping")
    }

    /// Runs a short read inline on the shared snapshot.
    pub(crate) fn read<T>(
        &self,
        f: impl FnOnce(&ReadTransaction) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let snapshot = self.snapshot()?;
        self.guarded(|| f(&snapshot.txn))
    }

    /// Runs a scan on the blocking pool on a fresh snapshot.
    pub(crate) async fn scan<T, F>(&self, f: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: FnOnce(&ReadTransaction) -> Result<T, Error> + Send + 'static,
    {
        let txn = guard::guarded(&self.path, || self.engine.begin_read())?;
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || guard::guarded(&path, || f(&txn)))
            .await
            .map_err(|e| Error::join("running a scan", e))?
    }

    /// Runs a listing of at most `limit` items: inline on the shared
    /// snapshot when it is short (at most [`INLINE_LIST_LIMIT`] items, each
    /// read through an index: tens of microseconds), else as a [`scan`].
    ///
    /// [`scan`]: Db::scan
    pub(crate) async fn list<T, F>(&self, limit: usize, f: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: FnOnce(&ReadTransaction) -> Result<T, Error> + Send + 'static,
    {
        if limit <= INLINE_LIST_LIMIT {
            self.read(f)
        } else {
            self.scan(f).await
        }
    }

    /// Queues a write for the next group commit and waits until it is durable.
    pub(crate) async fn write<T, F>(&self, op: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: FnMut(&WriteTransaction) -> Result<T, Error> + Send + 'static,
    {
        (self.writer()?.write(op).await).map_err(|e| guard::corrupt_if_damaged(&self.path, e))
    }

    /// [`write`](Self::write) committed with the next batch of other
    /// writes rather than on its own, or alone after `max_wait` (see
    /// [`riders`]): for background work beside foreground writes.
    pub(crate) async fn write_beside<T, F>(
        &self,
        op: F,
        max_wait: std::time::Duration,
    ) -> Result<T, Error>
    where
        T: Send + 'static,
        F: FnMut(&WriteTransaction) -> Result<T, Error> + Send + 'static,
    {
        (self.writer()?.write_beside(op, max_wait).await)
            .map_err(|e| guard::corrupt_if_damaged(&self.path, e))
    }

    /// [`write`](Self::write) with the audit entries `entries_of(result)`
    /// appended in the same transaction (see `crate::audit`): an
    /// acknowledged write has its entries, a refused one has none.
    pub(crate) async fn write_audited<T, F, E>(&self, mut op: F, entries_of: E) -> Result<T, Error>
    where
        T: Send + 'static,
        F: FnMut(&WriteTransaction) -> Result<T, Error> + Send + 'static,
        E: Fn(&T) -> Vec<audit::Entry> + Send + 'static,
    {
        let auditor = self.auditor();
        self.write(move |txn| {
            let out = op(txn)?;
            for entry in entries_of(&out) {
                audit::record(txn, &auditor, entry)?;
            }
            Ok(out)
        })
        .await
    }

    /// Queues a write for the next group commit without waiting for it:
    /// it is committed durably like any other (and before the store
    /// closes), but the caller goes on at once; a failure is logged.
    /// For records whose commit must not show in the caller's timing (an
    /// audit record of a refusal would otherwise tell a caller that the
    /// file it was refused exists).
    pub(crate) async fn write_detached<F>(&self, what: &'static str, op: F) -> Result<(), Error>
    where
        F: FnMut(&WriteTransaction) -> Result<(), Error> + Send + 'static,
    {
        let answer = self.writer()?.enqueue(op).await?;
        tokio::spawn(async move {
            match answer.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::error!(error = %e, what, "a detached write failed"),
                Err(_) => tracing::error!(what, "a detached write was dropped: the store closed"),
            }
        });
        Ok(())
    }

    /// What the group-commit writer has done so far.
    pub(crate) fn write_stats(&self) -> writer::WriteStats {
        self.writer.as_ref().map(|w| w.stats()).unwrap_or_default()
    }

    /// Stops the writer after the queued writes.
    pub(crate) fn shutdown(&self) {
        if let Some(w) = &self.writer {
            w.shutdown();
        }
    }

    /// The applied schema version.
    pub(crate) fn schema_version(&self) -> Result<Option<u32>, Error> {
        self.read(migrate::applied_version_in)
    }
}

/// Reads and decodes the record under `key` of a `u128 → bytes` table.
pub(crate) fn get_record<T: Record>(
    table: &impl ReadableTable<u128, &'static [u8]>,
    key: u128,
    id: impl std::fmt::Display,
) -> Result<Option<T>, Error> {
    match table.get(key).ctx("reading a record")? {
        Some(v) => codec::decode::<T>(v.value(), id).map(Some),
        None => Ok(None),
    }
}

/// Encodes and writes a record under `key`.
pub(crate) fn put_record<T: Record>(
    table: &mut redb::Table<u128, &'static [u8]>,
    key: u128,
    record: &T,
) -> Result<(), Error> {
    let bytes = codec::encode(record)?;
    table
        .insert(key, bytes.as_slice())
        .ctx("writing a record")?;
    Ok(())
}

/// Reads and decodes the `meta` value `name` (format 1), if present;
/// `what` names it in errors.
pub(crate) fn get_meta<T: serde::de::DeserializeOwned>(
    txn: &impl txn::ReadTxn,
    name: &str,
    what: &'static str,
) -> Result<Option<T>, Error> {
    let meta = txn.table(schema::META)?;
    let found = meta.get(name).ctx("reading meta")?;
    found
        .map(|v| codec::decode_versioned(1, v.value(), || what.to_string()))
        .transpose()
}

/// Encodes `value` (format 1) and writes it as the `meta` value `name`.
pub(crate) fn set_meta<T: serde::Serialize>(
    txn: &WriteTransaction,
    name: &str,
    value: &T,
) -> Result<(), Error> {
    let bytes = codec::encode_versioned(1, value)?;
    txn.open_table(schema::META)
        .ctx("opening meta")?
        .insert(name, bytes.as_slice())
        .ctx("writing meta")?;
    Ok(())
}
