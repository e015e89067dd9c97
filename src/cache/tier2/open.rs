//! Opening `cache.redb`: create it, check its format, or set it aside.
//!
//! The cache file holds nothing that cannot be rebuilt, so a file that is
//! damaged, or written by an unknown format version, is not an error for
//! the store: it is renamed to `cache.redb.damaged` (replacing an older one,
//! so damaged copies never pile up), logged, and an empty file takes its
//! place. A failure that may pass (permissions, a full disk, an injected
//! fault) is not damage: the file is left alone and the tier starts
//! degraded, to be tried again. The writer sets a file aside the same way
//! ([`set_aside`]) when damage is met after the open.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use redb::{Database, ReadableTable};

use crate::cache::tier2::apply::Meta;
use crate::cache::tier2::backend::FaultyBackend;
use crate::cache::tier2::guard;
use crate::cache::tier2::row::{BY_EXPIRY, BY_SEQ, ENTRIES, FORMAT_VERSION, META, TAGS};
use crate::fsutil;

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

/// Sorts an engine error: damage (set the file aside) or a passing failure.
fn classify(e: impl Into<redb::Error>, path: &Path) -> OpenError {
    let e = e.into();
    let text = format!("{}: {e}", path.display());
    if guard::is_damage(&e) {
        OpenError::Damaged(text)
    } else {
        OpenError::Transient(text)
    }
}

/// Opens the file once, checks (or writes) its format, reads its counters;
/// a panic of the engine on the way is damage.
pub(crate) fn try_open(
    path: &Path,
    fault: &Arc<AtomicBool>,
    quick_repair: bool,
) -> Result<(Database, Meta), OpenError> {
    guard::guard(path, "opening it", || {
        open_checked(path, fault, quick_repair)
    })
    .unwrap_or_else(|corrupt| Err(OpenError::Damaged(corrupt.to_string())))
}

fn open_checked(
    path: &Path,
    fault: &Arc<AtomicBool>,
    quick_repair: bool,
) -> Result<(Database, Meta), OpenError> {
    let backend = FaultyBackend::open(path, Arc::clone(fault)).map_err(|e| classify(e, path))?;
    let mut builder = Database::builder();
    builder.set_cache_size(PAGE_CACHE_BYTES);
    let db = builder
        .create_with_backend(backend)
        .map_err(|e| classify(e, path))?;
    let txn = super::begin_write(&db, quick_repair).map_err(|e| classify(e, path))?;
    let meta = {
        let mut meta = txn.open_table(META).map_err(|e| classify(e, path))?;
        txn.open_table(ENTRIES).map_err(|e| classify(e, path))?;
        txn.open_table(BY_EXPIRY).map_err(|e| classify(e, path))?;
        txn.open_table(BY_SEQ).map_err(|e| classify(e, path))?;
        txn.open_table(TAGS).map_err(|e| classify(e, path))?;
        let read = |meta: &redb::Table<&str, u64>, name: &str| -> Result<Option<u64>, OpenError> {
            Ok(meta
                .get(name)
                .map_err(|e| classify(e, path))?
                .map(|v| v.value()))
        };
        match read(&meta, "format_version")? {
            None => {
                meta.insert("format_version", FORMAT_VERSION)
                    .map_err(|e| classify(e, path))?;
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
    txn.commit().map_err(|e| classify(e, path))?;
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
    quick_repair: bool,
) -> Result<(Database, Meta, Option<PathBuf>), String> {
    match try_open(path, fault, quick_repair) {
        Ok((db, meta)) => Ok((db, meta, None)),
        Err(OpenError::Transient(reason)) => Err(reason),
        Err(OpenError::Damaged(reason)) => {
            let aside = set_aside(path, &reason)?;
            let (db, meta) = try_open(path, fault, quick_repair).map_err(|e| e.to_string())?;
            Ok((db, meta, Some(aside)))
        }
    }
}

/// Renames the damaged file at `path` to [`aside_path`] (replacing an older
/// one), durably; nothing else is touched. Returns where it went.
pub(crate) fn set_aside(path: &Path, reason: &str) -> Result<PathBuf, String> {
    let aside = aside_path(path);
    fsutil::persist(path, &aside)
        .map_err(|e| format!("setting aside damaged {}: {e}", path.display()))?;
    tracing::warn!(
        path = %path.display(),
        moved_to = %aside.display(),
        %reason,
        "cache.redb is damaged or from an unknown version; set aside, starting an empty cache"
    );
    Ok(aside)
}
