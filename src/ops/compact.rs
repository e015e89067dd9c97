//! Compaction: gives the space of freed pages in `store.redb` and
//! `cache.redb` back to the file system.
//!
//! redb is copy-on-write: a deleted or updated row's pages are freed for
//! reuse inside the file, not returned to the disk, so a store that once
//! held much more than it holds now keeps its size. Compaction moves the
//! live pages down and truncates the file. It needs each database to
//! itself: the metadata database compacts on its writer thread between
//! two write batches (writes queue meanwhile), the cache file on the
//! cache's writer thread (lookups wait meanwhile).

use std::path::Path;

use serde::Serialize;

use crate::error::Error;
use crate::store::Store;

/// What compacting one file did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CompactedFile {
    /// The file's name in the data directory: `store.redb` or `cache.redb`.
    pub file: &'static str,
    /// Its size before, in bytes.
    pub before_bytes: u64,
    /// Its size after, in bytes.
    pub after_bytes: u64,
    /// Why it was not compacted (`None`: it was).
    pub skipped: Option<String>,
}

impl CompactedFile {
    /// Bytes given back to the file system.
    pub fn reclaimed_bytes(&self) -> u64 {
        self.before_bytes.saturating_sub(self.after_bytes)
    }
}

/// What [`Store::compact`] did, file by file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CompactReport {
    /// `store.redb`, then `cache.redb`.
    pub files: Vec<CompactedFile>,
    /// Bytes given back in all.
    pub reclaimed_bytes: u64,
}

impl Store {
    /// Compacts `store.redb` and `cache.redb`, returning their sizes before
    /// and after.
    ///
    /// Writes queue while the metadata database compacts, and cache
    /// lookups wait while the cache file does. A store opened read-only is
    /// [`Error::ReadOnly`]; reads that keep `store.redb` busy for a second
    /// are [`Error::Busy`]. A cache file that cannot be compacted (tier 2
    /// off or degraded, lookups in the way) is reported as skipped.
    ///
    /// ```
    /// # use bharatvoice_store::*;
    /// # #[tokio::main] async fn main() -> Result<(), Error> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// let store = Store::open(Config::new(dir.path())).await?;
    /// let report = store.compact().await?;
    /// assert_eq!(report.files[0].file, "store.redb");
    /// assert!(report.files[0].after_bytes <= report.files[0].before_bytes);
    /// # Ok(()) }
    /// ```
    #[tracing::instrument(skip_all)]
    pub async fn compact(&self) -> Result<CompactReport, Error> {
        crate::telemetry::observe(
            &self.db().telemetry,
            crate::telemetry::op_key!("store.compact"),
            async {
                let config = self.config();
                let db_path = config.db_path();
                let before = size_of(&db_path)?;
                self.db().compact().await?;
                let mut files = vec![CompactedFile {
                    file: "store.redb",
                    before_bytes: before,
                    after_bytes: size_of(&db_path)?,
                    skipped: None,
                }];
                let cache_path = config.cache_path();
                let before = size_of(&cache_path)?;
                let skipped = match &self.cache_core().tier2 {
                    None => Some("tier 2 is off".to_string()),
                    Some(t2) => t2.compact().await.err().map(|e| e.to_string()),
                };
                files.push(CompactedFile {
                    file: "cache.redb",
                    before_bytes: before,
                    after_bytes: size_of(&cache_path)?,
                    skipped,
                });
                let reclaimed_bytes = files.iter().map(CompactedFile::reclaimed_bytes).sum();
                tracing::info!(reclaimed_bytes, "compacted");
                Ok(CompactReport {
                    files,
                    reclaimed_bytes,
                })
            },
        )
        .await
    }
}

/// A file's size; 0 if it does not exist.
fn size_of(path: &Path) -> Result<u64, Error> {
    match std::fs::metadata(path) {
        Ok(m) => Ok(m.len()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(Error::io(
            format!("reading the size of {}", path.display()),
            e,
        )),
    }
}
