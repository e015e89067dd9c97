//! Backups: a consistent copy of a store that a restore can check and
//! bring back, taken while the application keeps writing.
//!
//! A backup is one *generation* in a destination directory (see
//! [`destination`]): the metadata, every blob file it names, and a
//! manifest signed under a key derived from the master key ([`manifest`]).
//! Order, so that the generation is one instant of the store:
//!
//! 1. blob deletions are held off (`BlobStore::pin_all`: purge, erasure and
//!    orphan collection wait), then the metadata is copied: `store.redb`
//!    as a file, the whole of it (a *base*) or only the pages written
//!    since the destination's newest generation (a *delta*), ending
//!    between two commits ([`file_copy`]); a store open read-only is
//!    copied table by table from one read snapshot instead
//!    (`db::snapshot_copy`; redb has no online backup);
//! 2. the blob files that instant names are linked or copied, or read
//!    through an object-storage backend, on several threads
//!    ([`blob_files`]; those an earlier generation in the destination
//!    already holds are skipped); then the destination's file system is
//!    synced;
//! 3. the manifest is written and the generation renamed into place;
//!    generations beyond `keep` are deleted, with the blob files and
//!    metadata parts only they named.
//!
//! Writes go on throughout (they wait only while the last pages are
//! copied): rows and blobs written after the instant are simply not in
//! it. What a backup does not hold: `cache.redb` (a cache rebuilds), the
//! master key (keep it apart from the backups: a backup is only as
//! private as the key is), tamper and temporary files.
//!
//! A backup holds what the store held at its instant, a user erased since
//! included: deleting old generations (`keep`) is what makes an erasure
//! reach the backups. `docs/OPERATIONS.md` says so. (A metadata base
//! that a kept generation's chain names stays until no kept generation
//! names it; the deltas after it carry the erasure.)

mod blob_files;
mod copy;
pub(crate) mod delta;
pub(crate) mod destination;
pub(crate) mod file_copy;
pub(crate) mod manifest;
#[cfg(feature = "s3")]
pub(crate) mod remote;
pub(crate) mod restore;
mod target;

pub use target::BackupTarget;

use std::path::PathBuf;
use std::sync::Arc;

use serde::Serialize;

use crate::blob::backend::local::LocalDir;
use crate::error::Error;
use crate::store::Store;
use crate::types::{BlobAddress, Timestamp};
use blob_files::BlobFiles;
use destination::Destination;
use manifest::Manifest;

/// Called as a long operation goes: bytes done, bytes in all.
#[derive(Clone)]
pub struct Progress(Arc<dyn Fn(u64, u64) + Send + Sync>);

impl Progress {
    /// Wraps a callback.
    pub fn new(f: impl Fn(u64, u64) + Send + Sync + 'static) -> Self {
        Progress(Arc::new(f))
    }

    pub(crate) fn tell(&self, done: u64, total: u64) {
        (self.0)(done, total)
    }
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Progress(..)")
    }
}

/// How [`Store::backup`] runs.
///
/// ## Defaults
///
/// Hard links where the destination is on the store's file system, every
/// generation kept, no progress callback, a destination of another data
/// region refused.
#[derive(Debug, Clone, Default)]
pub struct BackupOptions {
    /// Keep only the newest `keep` generations (at least 1) once this one
    /// is complete; `None` keeps all.
    pub keep: Option<usize>,
    /// Always copy blob files, never hard-link them.
    pub no_links: bool,
    /// Back up into a destination that declares another data region.
    pub allow_region_change: bool,
    /// Told the bytes of blob files done so far.
    pub progress: Option<Progress>,
}

/// What [`Store::backup`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct BackupReport {
    /// The destination directory.
    pub destination: PathBuf,
    /// The generation written (1, 2, ...).
    pub generation: u64,
    /// When its snapshot was taken.
    pub created_at: Timestamp,
    /// Rows copied into its metadata snapshot: a row copy is taken of a
    /// store open read-only, and into object storage; 0 when `store.redb`
    /// was copied as a file (a local backup of a store open for writing).
    pub rows: u64,
    /// Bytes of metadata this backup wrote: the row copy; or, for a file
    /// copy, the pages written since the destination's newest generation
    /// (a delta), or the whole file when it took a new base.
    pub metadata_bytes: u64,
    /// The files a restore of this generation rebuilds `store.redb` from:
    /// 1 for a row copy or a new base, one more per delta since its base.
    #[serde(default)]
    pub metadata_parts: u64,
    /// How long writes waited for this backup, in microseconds: the last
    /// pages of a file copy are copied between two commits (the pages
    /// written while the rest was copied). 0 for a row copy.
    #[serde(default)]
    pub writes_paused_us: u64,
    /// Blobs it holds.
    pub blobs: u64,
    /// Blob files copied, and their bytes.
    pub blobs_copied: u64,
    /// Bytes of the blob files copied.
    pub bytes_copied: u64,
    /// Blobs the object-storage engine copied from the store's own bucket
    /// into the backup's (a backup to `s3://` in the bucket the store's
    /// blobs are in): none of their bytes uploaded by the store, each
    /// read back once for the manifest's SHA-256.
    #[serde(default)]
    pub blobs_copied_by_engine: u64,
    /// Bytes of the blobs the engine copied.
    #[serde(default)]
    pub bytes_copied_by_engine: u64,
    /// Blob files hard-linked (no bytes written), and their bytes.
    pub blobs_linked: u64,
    /// Bytes of the blob files linked.
    pub bytes_linked: u64,
    /// Blob files an earlier generation already held, and their bytes.
    pub blobs_skipped: u64,
    /// Bytes of the blob files skipped.
    pub bytes_skipped: u64,
    /// Blobs the snapshot names whose files the store was missing (the
    /// store was damaged there already; `bvstore gc` marks them).
    pub missing: Vec<BlobAddress>,
    /// Older generations deleted by `keep`.
    pub generations_removed: Vec<u64>,
    /// Blob files deleted with them.
    pub blobs_removed: u64,
    /// How long the backup took, in milliseconds.
    pub took_ms: u64,
}

impl Store {
    /// Backs the store up into `dest` as a new generation: a consistent
    /// snapshot of the metadata, every blob it names and a signed
    /// manifest. Writes go on meanwhile; the generation holds the store as
    /// it was when the backup began. A second backup into the same
    /// destination copies only the blobs the destination lacks.
    ///
    /// `dest` is a directory or an `s3://bucket/prefix` (see
    /// [`BackupTarget`]; feature `s3`): there the metadata snapshot is
    /// compressed and sealed under a key derived from the master key
    /// before it is uploaded, and blobs go up as they are (sealed
    /// already). It must be missing, empty, or a destination of this
    /// store's backups; one of another data region is
    /// [`Error::RegionMismatch`] unless allowed. Restore with
    /// [`Store::restore`].
    ///
    /// ```
    /// # use bharatvoice_store::*;
    /// # #[tokio::main] async fn main() -> Result<(), Error> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// let store = Store::open(Config::new(dir.path().join("data"))).await?;
    /// let first = store.backup(dir.path().join("backups"), BackupOptions::default()).await?;
    /// let second = store.backup(dir.path().join("backups"), BackupOptions::default()).await?;
    /// assert_eq!((first.generation, second.generation), (1, 2));
    /// # Ok(()) }
    /// ```
    #[tracing::instrument(skip_all, name = "backup", fields(dest = tracing::field::Empty))]
    pub async fn backup(
        &self,
        dest: impl Into<BackupTarget>,
        options: BackupOptions,
    ) -> Result<BackupReport, Error> {
        let target = dest.into();
        tracing::Span::current().record("dest", tracing::field::display(&target));
        target.check()?;
        crate::telemetry::observe(
            &self.db().telemetry,
            crate::telemetry::op_key!("store.backup"),
            async {
                let dest = match target {
                    BackupTarget::Dir(d) => d,
                    #[cfg(feature = "s3")]
                    BackupTarget::S3(c) => return remote::backup::backup(self, &c, options).await,
                    #[cfg(not(feature = "s3"))]
                    BackupTarget::S3(_) => {
                        return Err(Error::Config {
                            reason: "this build has no object storage (cargo feature `s3`)".into(),
                        });
                    }
                };
                let t0 = std::time::Instant::now();
                let db = self.db();
                let blobs = self.blob_store();
                let source = match blobs.backend.as_local() {
                    Some(local) => BlobFiles::Local(LocalDir::new(local.root().to_path_buf())),
                    None => BlobFiles::Backend(Arc::clone(&blobs.backend)),
                };
                let store_id = db.read(crate::db::snapshot_copy::store_id)?;
                let region = self.region().map(str::to_string);
                let dest2 = dest.clone();
                let (id2, region2, allow) = (
                    store_id.clone(),
                    region.clone(),
                    options.allow_region_change,
                );
                let destination = blocking("opening the backup destination", move || {
                    let d = Destination::open_for_backup(&dest2, &id2, region2.as_deref(), allow)?;
                    // A crashed backup may have left parts in the pool.
                    if d.remove_partials()? {
                        d.sweep_pool()?;
                    }
                    Ok(d)
                })
                .await?;
                let destination = Arc::new(destination);
                let generation = destination.generations()?.last().map_or(1, |g| g + 1);
                let partial = destination.partial_dir(generation);
                crate::fsutil::create_private_dir_all(&partial)
                    .map_err(|e| Error::io(format!("creating {}", partial.display()), e))?;

                // 1. Hold blob deletions off, then take the snapshot under the
                //    master key it was written with; 2. the blob files it
                //    names are placed meanwhile, on other threads (and go
                //    on after the snapshot's read transaction ends).
                let _pinned = blobs.pin_all().await;
                let rotation = blobs.keyring.lock_master_rotation().await;
                let master = blobs.keyring.master();
                let created_at = db.now();
                let link = !options.no_links;
                let progress = options.progress.clone();
                let taken = if db.is_read_only() {
                    let taken =
                        rows_and_blobs(db, &destination, &partial, source, link, progress).await?;
                    drop(rotation);
                    taken
                } else {
                    let prev = destination.generations()?.last().copied();
                    let d2 = Arc::clone(&destination);
                    let master2 = master.clone();
                    let prev_chain = blocking("reading the newest generation", move || {
                        Ok(prev.and_then(|g| newest_chain(&d2, g, &master2)))
                    })
                    .await?;
                    let destroyed = db.read(crate::db::erasures::destructions)?;
                    let since = prev_chain.as_ref().and_then(|c| {
                        file_copy::extends(c, db.tracker(), &destination.root, destroyed)
                    });
                    let mut copied = file_copy::copy(db, since, &partial).await?;
                    let mut since = since;
                    if since.is_some()
                        && crate::db::erasures::destructions(&copied.txn)? != destroyed
                    {
                        // An erasure committed during the copy: its keys
                        // must not stay in the chain's older base.
                        drop(copied);
                        copied = file_copy::copy(db, None, &partial).await?;
                        since = None;
                    }
                    drop(rotation);
                    file_and_blobs(
                        &destination,
                        &partial,
                        copied,
                        prev_chain.filter(|_| since.is_some()),
                        source,
                        link,
                        progress,
                    )
                    .await?
                };
                drop(_pinned);
                copy::sync_all(&destination.root)?;
                let copied = taken.blobs;

                // 3. The manifest, then the generation in place.
                let manifest = Manifest {
                    format: manifest::FORMAT,
                    store_id,
                    schema_version: taken.schema_version,
                    region,
                    generation,
                    created_at,
                    metadata: taken.metadata.clone(),
                    blobs: copied.entries,
                    missing: copied.missing.clone(),
                    chain: taken.chain.clone(),
                };
                manifest::write(&partial, &manifest, &master)?;
                destination.publish(generation)?;
                let (generations_removed, blobs_removed) = match options.keep {
                    Some(keep) => {
                        destination.prune(keep, &LocalDir::new(destination.blobs_dir()))?
                    }
                    None => (Vec::new(), 0),
                };
                let report = BackupReport {
                    destination: dest,
                    generation,
                    created_at,
                    rows: taken.rows,
                    metadata_bytes: taken.metadata_written,
                    metadata_parts: taken
                        .chain
                        .as_ref()
                        .map_or(1, |c| 1 + c.deltas.len() as u64),
                    writes_paused_us: taken.paused_us,
                    blobs: manifest.blobs.len() as u64,
                    blobs_copied: copied.copied.0,
                    bytes_copied: copied.copied.1,
                    blobs_copied_by_engine: 0,
                    bytes_copied_by_engine: 0,
                    blobs_linked: copied.linked.0,
                    bytes_linked: copied.linked.1,
                    blobs_skipped: copied.skipped.0,
                    bytes_skipped: copied.skipped.1,
                    missing: copied.missing,
                    generations_removed,
                    blobs_removed,
                    took_ms: u64::try_from(t0.elapsed().as_millis()).unwrap_or(u64::MAX),
                };
                record_last(db, &report).await;
                tracing::info!(
                    generation,
                    metadata_parts = report.metadata_parts,
                    writes_paused_us = report.writes_paused_us,
                    blobs = report.blobs,
                    copied = report.blobs_copied,
                    linked = report.blobs_linked,
                    skipped = report.blobs_skipped,
                    "backup complete"
                );
                Ok(report)
            },
        )
        .await
    }
}

/// The newest backup, as `meta` keeps it for health checks.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub(crate) struct LastBackup {
    generation: u64,
    at: Timestamp,
    destination: String,
}

const LAST_BACKUP: &str = "last_backup";

/// Records a finished backup for [`health`] (best effort: a store open
/// read-only keeps no record, and the backup stands either way).
async fn record_last(db: &crate::db::Db, report: &BackupReport) {
    let last = LastBackup {
        generation: report.generation,
        at: report.created_at,
        destination: report.destination.display().to_string(),
    };
    if db.is_read_only() {
        return;
    }
    let written = db
        .write(move |txn| crate::db::set_meta(txn, LAST_BACKUP, &last))
        .await;
    if let Err(e) = written {
        tracing::warn!(error = %e, "could not record the backup for health checks");
    }
}

/// The `backup` part of the store's health: when the newest backup was
/// taken, and where. Never worse than healthy: how old is too old is the
/// monitor's policy.
pub(crate) fn health(db: &crate::db::Db) -> crate::health::PartHealth {
    use crate::health::{HealthStatus, PartHealth};
    let last: Result<Option<LastBackup>, Error> =
        db.read(|txn| crate::db::get_meta(txn, LAST_BACKUP, "last backup record"));
    match last {
        Ok(None) => PartHealth::new("backup", HealthStatus::Healthy, "no backup recorded"),
        Ok(Some(b)) => {
            let age = db.now().as_micros().saturating_sub(b.at.as_micros()) / 1_000_000;
            PartHealth::new(
                "backup",
                HealthStatus::Healthy,
                format!(
                    "generation {} taken {} ({age} s ago) into {}",
                    b.generation, b.at, b.destination
                ),
            )
        }
        Err(e) => PartHealth::new(
            "backup",
            HealthStatus::Degraded,
            format!("the last backup record does not read: {e}"),
        ),
    }
}

/// The metadata and blob files a local backup took.
struct Taken {
    schema_version: u32,
    rows: u64,
    /// The row copy, or the chain's base.
    metadata: manifest::FileDigest,
    chain: Option<file_copy::Chain>,
    metadata_written: u64,
    paused_us: u64,
    blobs: blob_files::Copied,
}

/// The chain of generation `g`, if its manifest checks (a chain is only
/// extended from a manifest this store signed).
fn newest_chain(
    dest: &Destination,
    g: u64,
    master: &crate::blob::crypto::SecretKey,
) -> Option<file_copy::Chain> {
    match manifest::read(&dest.generation_dir(g), master) {
        Ok(m) => m.chain,
        Err(e) => {
            tracing::warn!(generation = g, error = %e, "the newest generation's manifest does not check; taking a new base");
            None
        }
    }
}

/// A row copy of the metadata (`db::snapshot_copy`) with the blob files
/// it names placed meanwhile, on other threads (a store open read-only).
async fn rows_and_blobs(
    db: &crate::db::Db,
    destination: &Arc<Destination>,
    partial: &std::path::Path,
    source: BlobFiles,
    link: bool,
    progress: Option<Progress>,
) -> Result<Taken, Error> {
    let snapshot_file = partial.join("store.redb");
    let file2 = snapshot_file.clone();
    let d2 = Arc::clone(destination);
    let (info, blob_copy) = db
        .scan(move |txn| {
            crate::db::snapshot_copy::copy_snapshot_beside(
                txn,
                &file2,
                move |addresses, give_up| {
                    blob_files::copy_blobs(
                        &d2,
                        &source,
                        addresses,
                        link,
                        progress.as_ref(),
                        give_up,
                    )
                },
            )
        })
        .await?;
    let blobs = blocking("copying blob files", move || blob_copy.join()).await?;
    let mut buf = Vec::new();
    let metadata = copy::digest(&snapshot_file, &mut buf)?
        .ok_or_else(|| Error::corrupt("backup", "the snapshot file vanished"))?;
    Ok(Taken {
        schema_version: info.schema_version,
        rows: info.rows,
        metadata_written: metadata.bytes,
        metadata,
        chain: None,
        paused_us: 0,
        blobs,
    })
}

/// The blob files named by the snapshot a file copy ended at, placed on
/// other threads; the copy's parts moved into the destination's pool.
async fn file_and_blobs(
    destination: &Arc<Destination>,
    partial: &std::path::Path,
    copied: file_copy::Copied,
    extends: Option<file_copy::Chain>,
    source: BlobFiles,
    link: bool,
    progress: Option<Progress>,
) -> Result<Taken, Error> {
    let d2 = Arc::clone(destination);
    let txn = copied.txn;
    let (schema_version, destroyed, blobs) = blocking("copying blob files", move || {
        let schema_version = crate::db::snapshot_copy::schema_version(&txn)?;
        let destroyed = crate::db::erasures::destructions(&txn)?;
        let addresses = crate::db::snapshot_copy::blob_addresses(&txn)?;
        // A long read transaction keeps redb from reusing pages.
        drop(txn);
        let never = std::sync::atomic::AtomicBool::new(false);
        let blobs =
            blob_files::copy_blobs(&d2, &source, &addresses, link, progress.as_ref(), &never)?;
        Ok((schema_version, destroyed, blobs))
    })
    .await?;
    let root = &destination.root;
    let tracker = format!("{:032x}", copied.stamp.id);
    let mut written = copied.delta.bytes;
    let chain = match (copied.base, extends) {
        (Some(base), _) => {
            file_copy::into_pool(root, partial, file_copy::BASE_FILE, &base)?;
            written += base.bytes;
            file_copy::Chain {
                base,
                deltas: vec![copied.delta.clone()],
                tracker,
                epoch: copied.stamp.epoch,
                keys_destroyed: destroyed,
            }
        }
        (None, Some(prev)) => {
            let mut deltas = prev.deltas;
            deltas.push(copied.delta.clone());
            file_copy::Chain {
                base: prev.base,
                deltas,
                tracker,
                epoch: copied.stamp.epoch,
                keys_destroyed: prev.keys_destroyed,
            }
        }
        (None, None) => {
            return Err(Error::invalid(
                "backup",
                "a delta was taken without the chain it extends",
            ));
        }
    };
    file_copy::into_pool(root, partial, file_copy::DELTA_FILE, &copied.delta)?;
    Ok(Taken {
        schema_version,
        rows: 0,
        metadata: chain.base.clone(),
        chain: Some(chain),
        metadata_written: written,
        paused_us: u64::try_from(copied.paused.as_micros()).unwrap_or(u64::MAX),
        blobs,
    })
}

/// Runs blocking file work on the blocking pool.
pub(super) async fn blocking<T: Send + 'static>(
    what: &'static str,
    f: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::join(what, e))?
}
