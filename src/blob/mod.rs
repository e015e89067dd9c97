//! Encrypted, compressed, content-addressed file storage.
//!
//! Files are streamed into blob files (see [`format`] for the container)
//! under `blobs/ab/cd/<address>`, where the address is a keyed hash of the
//! content under the owner's address key: the same bytes stored twice by
//! one owner are stored once (a reference count in the `blobs` table), and
//! no file name reveals a plain hash of anyone's audio. Each blob has its
//! own random data key, wrapped under the owner's key (see [`keys`]).
//!
//! Where blobs live is the [`backend`]'s business (today the local
//! `blobs/` tree). Write order, so that a committed record always points
//! to a complete blob: seal into `tmp/`, `fsync`, commit the blob to the
//! backend (locally: rename into place, `fsync` the directory), then
//! commit the record and reference count in one transaction (see `put`).
//! A crash leaves at most an orphan blob; the store's own left-over
//! temporaries in `tmp/` are removed at open (see
//! [`datadir`](crate::datadir)).

pub(crate) mod access;
mod audit_key;
pub(crate) mod backend;
pub(crate) mod bigbuf;
pub(crate) mod crypto;
pub(crate) mod direct;
pub(crate) mod files;
pub(crate) mod format;
pub(crate) mod keys;
pub(crate) mod keys_view;
mod put;
pub(crate) mod reader;
pub(crate) mod reads;
pub(crate) mod rotation;
pub(crate) mod shred;
pub(crate) mod sink;
pub(crate) mod writer;

use std::path::PathBuf;
use std::sync::Arc;

use serde::Serialize;

use crate::ByteSize;
use crate::blob::backend::BlobBackend;
use crate::blob::backend::local::LocalDir;
use crate::db::Db;
use crate::error::Error;
use crate::types::{BlobAddress, SessionId, UserId};

/// Who asks for a file operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Actor {
    /// A user: reaches its own files and those granted to it.
    User(UserId),
    /// The store itself or an operator: reaches everything.
    System,
}

impl std::fmt::Display for Actor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Actor::User(id) => write!(f, "user:{id}"),
            Actor::System => f.write_str("system"),
        }
    }
}

/// How a file's bytes are compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    /// zstd level 1, except for content types that are already compressed
    /// (Opus, MP3, AAC, ...); chunks that do not shrink are stored raw.
    #[default]
    Auto,
    /// Not compressed.
    Off,
    /// zstd at this level (1–19); chunks that do not shrink are stored raw.
    Level(i32),
}

impl std::str::FromStr for Compression {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "auto" => Ok(Compression::Auto),
            "off" | "none" => Ok(Compression::Off),
            n => match n.parse::<i32>() {
                Ok(level) if (1..=19).contains(&level) => Ok(Compression::Level(level)),
                _ => Err(Error::invalid(
                    "compression",
                    format!(
                        "{} is not auto, off or a level 1-19",
                        crate::error::quote(s)
                    ),
                )),
            },
        }
    }
}

/// Options of a stored file.
///
/// ## Defaults
///
/// Encrypted, `Compression::Auto`, `application/octet-stream`, no name,
/// retention from the owner's profile (else the store default), no session,
/// no tags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutOptions {
    /// Seal with AES-256-GCM-SIV (default `true`).
    pub encrypt: bool,
    /// Compression (default auto).
    pub compression: Compression,
    /// MIME type.
    pub content_type: String,
    /// Original file name (kept as metadata only; never used for a path).
    pub name: Option<String>,
    /// Days to keep it; `None` takes the profile's setting or the store default.
    pub retention_days: Option<u32>,
    /// The conversation it belongs to.
    pub session_id: Option<SessionId>,
    /// Free tags.
    pub tags: Vec<String>,
}

impl Default for PutOptions {
    fn default() -> Self {
        PutOptions {
            encrypt: true,
            compression: Compression::Auto,
            content_type: "application/octet-stream".into(),
            name: None,
            retention_days: None,
            session_id: None,
            tags: Vec::new(),
        }
    }
}

impl PutOptions {
    /// Defaults with this content type.
    pub fn content_type(content_type: impl Into<String>) -> Self {
        PutOptions {
            content_type: content_type.into(),
            ..Default::default()
        }
    }

    /// The zstd level to use, if any.
    pub(crate) fn level(&self) -> Option<i32> {
        const PRECOMPRESSED: &[&str] = &[
            "audio/ogg",
            "audio/opus",
            "audio/mpeg",
            "audio/mp3",
            "audio/mp4",
            "audio/aac",
            "audio/webm",
            "audio/flac",
            "video/",
            "image/jpeg",
            "image/png",
            "image/webp",
            "application/zip",
            "application/gzip",
            "application/zstd",
        ];
        match self.compression {
            Compression::Off => None,
            Compression::Level(l) => Some(l),
            Compression::Auto => {
                let ct = self.content_type.to_ascii_lowercase();
                (!PRECOMPRESSED.iter().any(|p| ct.starts_with(p))).then_some(1)
            }
        }
    }
}

/// Which of an owner's files to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListFilter {
    /// Only this content type.
    pub content_type: Option<String>,
    /// Only files of this session.
    pub session_id: Option<SessionId>,
    /// Only files with this tag.
    pub tag: Option<String>,
    /// List the trash instead: only soft-deleted files, which
    /// [`Files::restore`](crate::Files::restore) brings back until the
    /// purge takes them.
    pub deleted: bool,
}

/// What verifying a file found (an error is returned when it fails).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// The file.
    pub file: crate::FileId,
    /// Its blob.
    pub blob: BlobAddress,
    /// Chunks authenticated.
    pub chunks: u64,
    /// Plaintext bytes read and hashed.
    pub plain_bytes: u64,
}

/// A put paused by a test: it says it has placed its blob, then waits.
#[cfg(test)]
pub(crate) type PutPause = (
    tokio::sync::oneshot::Sender<()>,
    tokio::sync::oneshot::Receiver<()>,
);

/// The blob side of an open store: where blobs live, keys and
/// per-address locks.
pub(crate) struct BlobStore {
    pub(crate) backend: Arc<dyn BlobBackend>,
    /// Where puts seal their temporary blobs (always local, on the file
    /// system of `blobs/`: `tmp/`, or `blobs/staging/`).
    pub(crate) tmp_dir: PathBuf,
    pub(crate) keyring: keys::Keyring,
    locks: Vec<tokio::sync::Mutex<()>>,
    pub(crate) chunk_size: u32,
    pub(crate) depth: usize,
    pub(crate) cache_limit: u64,
    pub(crate) default_retention_days: u32,
    /// Limits a put is checked against.
    pub(crate) quota: crate::QuotaConfig,
    /// Whether a put needs the owner's audio-storage consent.
    pub(crate) require_consent: bool,
    /// Tests pause the next put between placing and committing its blob.
    #[cfg(test)]
    pub(crate) pause_after_place: std::sync::Mutex<Option<PutPause>>,
    /// Reads counted, not yet written to the records.
    pub(crate) reads: reads::AccessLog,
    /// Per-user operations and stored-bytes buckets.
    pub(crate) limits: crate::ratelimit::RateLimits,
    /// Held shared by a backup while it copies blob files, exclusively by
    /// whatever takes a blob file away (purge, erasure, orphan
    /// collection): a blob a backup's snapshot names stays until copied.
    pins: tokio::sync::RwLock<()>,
    /// Retired blob files being destroyed behind the purge.
    pub(crate) shredder: shred::Shredder,
}

/// The configured blob backend, ready (an object store has answered a
/// listing).
async fn open_backend(
    db: &Db,
    config: &crate::Config,
    blobs_dir: PathBuf,
) -> Result<Arc<dyn BlobBackend>, Error> {
    match &config.blob_backend {
        crate::BlobBackendConfig::Local => {
            let local = LocalDir::new(blobs_dir);
            if !db.is_read_only() {
                // Before any watch is set up on `blobs/`, which leaves it out.
                local.retired_dir()?;
            }
            Ok(Arc::new(local))
        }
        #[cfg(feature = "s3")]
        crate::BlobBackendConfig::S3(s3) => {
            let backend: Arc<dyn BlobBackend> = Arc::new(
                backend::s3::S3Dir::new(s3)?.refresh_markers(config.lifecycle.orphan_grace),
            );
            let probe = Arc::clone(&backend);
            tokio::task::spawn_blocking(move || probe.list(None, 1))
                .await
                .map_err(|e| Error::join("reaching the object store", e))??;
            Ok(backend)
        }
        #[cfg(not(feature = "s3"))]
        crate::BlobBackendConfig::S3(_) => {
            let _ = (db, blobs_dir);
            // `Config::validate` refuses it before anything is made.
            Err(Error::Config {
                reason: "blob_backend s3 needs a build with the `s3` feature".into(),
            })
        }
    }
}

impl BlobStore {
    /// Prepares `blobs/` and an empty `tmp/` (and an empty staging
    /// directory when `blobs/` is another file system, see
    /// [`blob_staging`](crate::datadir::blob_staging)), and opens the keyring.
    pub(crate) async fn open(db: &Db, config: &crate::Config) -> Result<BlobStore, Error> {
        let blobs_dir = config.data_dir.join("blobs");
        let mut tmp_dir = config.data_dir.join("tmp");
        if !db.is_read_only() {
            crate::fsutil::create_private_dir_all(&blobs_dir)
                .map_err(|e| Error::io(format!("creating {}", blobs_dir.display()), e))?;
            let mut removed = crate::datadir::clean_tmp(&tmp_dir)?;
            if let Some(staging) = crate::datadir::blob_staging(&tmp_dir, &blobs_dir)? {
                tracing::info!(dir = %staging.display(), "blobs/ is on another file system than tmp/: new blobs are written beside them");
                removed += crate::datadir::clean_tmp(&staging)?;
                tmp_dir = staging;
            }
            if removed > 0 {
                tracing::info!(removed, "removed left-over temporary blob files");
            }
        }
        let keyring = keys::Keyring::open(db, config).await?;
        let backend = open_backend(db, config, blobs_dir).await?;
        tracing::debug!(backend = backend.name(), "blob backend");
        Ok(BlobStore {
            backend,
            tmp_dir,
            keyring,
            locks: (0..64).map(|_| tokio::sync::Mutex::new(())).collect(),
            reads: Default::default(),
            chunk_size: config.blob_chunk_bytes,
            depth: 4,
            cache_limit: config.blob_cache_limit_bytes,
            default_retention_days: config.default_retention_days,
            quota: config.quota.clone(),
            require_consent: config.privacy.require_consent,
            limits: crate::ratelimit::RateLimits::new(&config.rate_limits, config.clock.clone()),
            pins: tokio::sync::RwLock::new(()),
            shredder: Default::default(),
            #[cfg(test)]
            pause_after_place: Default::default(),
        })
    }

    /// The blob storage's health: `tmp/` is a directory of the store's,
    /// the backend answers a listing (how long it took is in the detail:
    /// for object storage, one request's round trip), and the disk has more free space
    /// than the floor puts keep (degraded when it has not: puts are
    /// refused).
    pub(crate) async fn health(&self) -> crate::health::PartHealth {
        use crate::health::{HealthStatus, PartHealth};
        let (backend, tmp) = (Arc::clone(&self.backend), self.tmp_dir.clone());
        let floor = self.quota.min_free_bytes;
        let probe = tokio::task::spawn_blocking(move || {
            match std::fs::symlink_metadata(&tmp) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => return Err(format!("{} is not a directory", tmp.display())),
                Err(e) => return Err(format!("{}: {e}", tmp.display())),
            }
            // Puts stage every blob here: a directory that refuses a new
            // file (read-only mount, permissions) refuses every put.
            let probe = tmp.join(format!(
                ".health-probe-{}-{}",
                std::process::id(),
                crate::blob::crypto::random_bytes::<8>()
                    .map(hex::encode)
                    .unwrap_or_default()
            ));
            {
                use std::os::unix::fs::OpenOptionsExt;
                std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&probe)
                    .map_err(|e| format!("cannot create a file in {}: {e}", tmp.display()))?;
                let _ = std::fs::remove_file(&probe);
            }
            let asked = std::time::Instant::now();
            backend
                .probe()
                .map_err(|e| format!("the {} backend does not answer: {e}", backend.name()))?;
            let answered = format!(
                "{} backend answers ({:.1} ms)",
                backend.name(),
                asked.elapsed().as_secs_f64() * 1e3
            );
            let space = crate::quota::disk_space(&tmp, floor).map_err(|e| e.to_string())?;
            Ok((answered, space))
        })
        .await;
        match probe {
            Ok(Ok((name, Some(space)))) if space.available < space.floor => PartHealth::new(
                "blobs",
                HealthStatus::Degraded,
                format!(
                    "{name}, but {} is free on its disk, under the floor of {} that puts keep free: puts are refused",
                    ByteSize(space.available),
                    ByteSize(space.floor)
                ),
            ),
            Ok(Ok((name, Some(space)))) => PartHealth::new(
                "blobs",
                HealthStatus::Healthy,
                format!(
                    "{name}; {} of {} free on its disk (floor {})",
                    ByteSize(space.available),
                    ByteSize(space.total),
                    ByteSize(space.floor)
                ),
            ),
            Ok(Ok((name, None))) => PartHealth::new("blobs", HealthStatus::Healthy, name),
            Ok(Err(why)) => PartHealth::new("blobs", HealthStatus::Unhealthy, why),
            Err(e) => PartHealth::new(
                "blobs",
                HealthStatus::Unhealthy,
                format!("the probe failed: {e}"),
            ),
        }
    }

    /// Keeps every blob file in place until the guard drops (a backup
    /// copying the blobs its snapshot names). Several may be held at once.
    pub(crate) async fn pin_all(&self) -> tokio::sync::RwLockReadGuard<'_, ()> {
        self.pins.read().await
    }

    /// Waits until no backup pins blob files, and keeps new pins out until
    /// the guard drops: taken before a blob file is taken away.
    pub(crate) async fn unpinned(&self) -> tokio::sync::RwLockWriteGuard<'_, ()> {
        self.pins.write().await
    }

    /// Serialises work on one address (puts of the same bytes, purges,
    /// orphan collection).
    pub(crate) async fn lock(&self, address: BlobAddress) -> tokio::sync::MutexGuard<'_, ()> {
        self.locks[self.stripe(address)].lock().await
    }

    /// Locks every address of a batch, stripe by stripe in stripe order (a
    /// put holds one stripe at a time, so this cannot deadlock with it).
    pub(crate) async fn lock_many(
        &self,
        addresses: impl IntoIterator<Item = BlobAddress>,
    ) -> Vec<tokio::sync::MutexGuard<'_, ()>> {
        let mut stripes: Vec<usize> = addresses.into_iter().map(|a| self.stripe(a)).collect();
        stripes.sort_unstable();
        stripes.dedup();
        let mut guards = Vec::with_capacity(stripes.len());
        for s in stripes {
            guards.push(self.locks[s].lock().await);
        }
        guards
    }

    /// Where a test paused the next put (see `pause_after_place`).
    #[cfg(test)]
    pub(crate) async fn paused_after_place(&self) {
        let pause = self
            .pause_after_place
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some((placed, go)) = pause {
            let _ = placed.send(());
            let _ = go.await;
        }
    }

    fn stripe(&self, address: BlobAddress) -> usize {
        usize::from(address.0[0]) % self.locks.len()
    }
}
