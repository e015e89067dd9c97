//! Opening `cache.redb`: create it, check its format, or set it aside.
//!
//! The cache file holds nothing that cannot be rebuilt, so a file that is
//! damaged, or written by an unknown format version, is not an error for
//! the store: it is renamed to `cache.redb.damaged` (replacing an older one,
//! so damaged copies never pile up), logged, and an empty file takes its
//! place. A failure that may pass (permissions, a full disk, an injected
//! fault) is not damage: the file is left alone and the tier starts
//! degraded, to be tried again.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use redb::{Database, DatabaseError, ReadableTable, StorageError};

use crate::cache::tier2::apply::Meta;
use crate::cache::tier2::backend::FaultyBackend;
use crate::cache::tier2::row::{BY_EXPIRY, BY_SEQ, ENTRIES, FORMAT_VERSION, META, TAGS};

/// redb's page cache for `cache.redb`.
const PAGE_CACHE_BYTES: usize = 16 << 20;

/// Why an open failed.
#[derive(Debug)]
pub(crate) enum OpenError {
    /// May pass: leave the file, retry later.
    Transient(String),
    /// The file cannot be used: set it aside.
    Damaged(String),
}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpenError::Transient(s) | OpenError::Damaged(s) => f.write_str(s),
        }
    }
}

fn io_is_transient(e: &std::io::Error) -> bool {
    use std::io::ErrorKind as K;
    matches!(
        e.kind(),
        K::PermissionDenied
            | K::ReadOnlyFilesystem
            | K::StorageFull
            | K::QuotaExceeded
            | K::FileTooLarge
            | K::Other
            | K::Interrupted
            | K::WouldBlock
            | K::OutOfMemory
            | K::NotFound
            | K::ResourceBusy
    )
}

fn storage(e: StorageError, path: &Path) -> OpenError {
    let text = format!("{}: {e}", path.display());
    match e {
        StorageError::Io(io) if io_is_transient(&io) => OpenError::Transient(text),
        StorageError::PreviousIo | StorageError::LockPoisoned(_) => OpenError::Transient(text),
        _ => OpenError::Damaged(text),
    }
}

fn database(e: DatabaseError, path: &Path) -> OpenError {
    match e {
        DatabaseError::Storage(s) => storage(s, path),
        DatabaseError::DatabaseAlreadyOpen
        | DatabaseError::LockProtocolMismatch
        | DatabaseError::TransactionInProgress => {
            OpenError::Transient(format!("{}: {e}", path.display()))
        }
        other => OpenError::Damaged(format!("{}: {other}", path.display())),
    }
}

fn other(e: impl Into<redb::Error>, path: &Path) -> OpenError {
    match e.into() {
        redb::Error::Io(io) if io_is_transient(&io) => {
            OpenError::Transient(format!("{}: {io}", path.display()))
        }
        redb::Error::PreviousIo | redb::Error::DatabaseAlreadyOpen => {
            OpenError::Transient(format!("{}: previous I/O error", path.display()))
        }
        e => OpenError::Damaged(format!("{}: {e}", path.display())),
    }
}

/// Opens the file once, checks (or writes) its format, reads its counters.
pub(crate) fn try_open(
    path: &Path,
    fault: &Arc<AtomicBool>,
) -> Result<(Database, Meta), OpenError> {
    let backend = FaultyBackend::open(path, Arc::clone(fault)).map_err(|e| database(e, path))?;
    let mut builder = Database::builder();
    builder.set_cache_size(PAGE_CACHE_BYTES);
    let db = builder
        .create_with_backend(backend)
        .map_err(|e| database(e, path))?;
    let txn = db.begin_write().map_err(|e| other(e, path))?;
    let meta = {
        let mut meta = txn.open_table(META).map_err(|e| other(e, path))?;
        txn.open_table(ENTRIES).map_err(|e| other(e, path))?;
        txn.open_table(BY_EXPIRY).map_err(|e| other(e, path))?;
        txn.open_table(BY_SEQ).map_err(|e| other(e, path))?;
        txn.open_table(TAGS).map_err(|e| other(e, path))?;
        let read = |meta: &redb::Table<&str, u64>, name: &str| -> Result<Option<u64>, OpenError> {
            Ok(meta
                .get(name)
                .map_err(|e| other(e, path))?
                .map(|v| v.value()))
        };
        match read(&meta, "format_version")? {
            None => {
                meta.insert("format_version", FORMAT_VERSION)
                    .map_err(|e| other(e, path))?;
            }
            Some(FORMAT_VERSION) => {}
            Some(v) => {
                return Err(OpenError::Damaged(format!(
                    "{}: cache format version {v}, this build reads {FORMAT_VERSION}",
                    path.display()
                )));
            }
        }
        Meta {
            generation: read(&meta, "generation")?.unwrap_or(0),
            next_seq: read(&meta, "next_seq")?.unwrap_or(0),
            entries: read(&meta, "entries")?.unwrap_or(0),
            bytes: read(&meta, "bytes")?.unwrap_or(0),
        }
    };
    txn.commit().map_err(|e| other(e, path))?;
    Ok((db, meta))
}

/// Where a damaged file is put.
pub(crate) fn aside_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".damaged");
    PathBuf::from(name)
}

/// Opens `cache.redb`, setting a damaged one aside and starting afresh.
/// Returns the database, its counters, and where a damaged file was put.
pub(crate) fn open(
    path: &Path,
    fault: &Arc<AtomicBool>,
) -> Result<(Database, Meta, Option<PathBuf>), String> {
    match try_open(path, fault) {
        Ok((db, meta)) => Ok((db, meta, None)),
        Err(OpenError::Transient(reason)) => Err(reason),
        Err(OpenError::Damaged(reason)) => {
            let aside = aside_path(path);
            std::fs::rename(path, &aside)
                .map_err(|e| format!("setting aside damaged {}: {e}", path.display()))?;
            tracing::warn!(
                path = %path.display(),
                moved_to = %aside.display(),
                %reason,
                "cache.redb is damaged or from an unknown version; set aside, starting an empty cache"
            );
            let (db, meta) = try_open(path, fault).map_err(|e| e.to_string())?;
            Ok((db, meta, Some(aside)))
        }
    }
}
