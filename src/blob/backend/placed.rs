//! The blob files this process placed itself, as it left them.
//!
//! A watch on the blob directory (see `lifecycle::tamper`) sees the store's
//! own renames into place as well as changes made behind its back. It
//! could verify every blob it hears of, but that would read back every
//! put (doubling its I/O and pulling large blobs back into the page cache
//! that the sink keeps them out of). Instead the local directory notes a
//! [`FileStamp`] of each file it places, and the watch skips a blob whose
//! file still carries that stamp. Any write, truncation, `touch`, or
//! replacement by another file changes the inode or the change time,
//! which no user-space call can set back.
//!
//! Nothing here is needed for correctness: a blob without a stamp (never
//! noted, evicted, or taken already) is simply verified in full.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::types::BlobAddress;

/// At most this many stamps are kept (about 100 bytes each); a watch
/// takes them within its debounce delay, so the map stays small.
const CAPACITY: usize = 4096;

/// A stamp older than this was never taken (its event was lost): it goes
/// when the map is full.
const STALE: Duration = Duration::from_secs(60);

/// What identifies one version of a file: which inode, how long, when its
/// data and its inode last changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileStamp {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl FileStamp {
    /// The stamp of `path` itself (a symbolic link is not followed and has
    /// none; neither has a missing file).
    pub(crate) fn at(path: &Path) -> Option<FileStamp> {
        let m = std::fs::symlink_metadata(path).ok()?;
        m.file_type().is_file().then(|| FileStamp {
            dev: m.dev(),
            ino: m.ino(),
            len: m.len(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
        })
    }
}

/// The stamps of the files placed since a watch asked for them.
#[derive(Default)]
pub(crate) struct Placements {
    enabled: AtomicBool,
    stamps: Mutex<HashMap<BlobAddress, (FileStamp, Instant)>>,
}

impl Placements {
    fn stamps(&self) -> std::sync::MutexGuard<'_, HashMap<BlobAddress, (FileStamp, Instant)>> {
        // Plain data, whole after any panic.
        self.stamps.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts noting placements (a watch is about to listen).
    pub(crate) fn enable(&self) {
        self.enabled.store(true, Ordering::Relaxed);
    }

    /// Notes the file just placed at `path` for `address`.
    pub(crate) fn note(&self, address: BlobAddress, path: &Path) {
        if !self.enabled.load(Ordering::Relaxed) {
            return;
        }
        let Some(stamp) = FileStamp::at(path) else {
            return;
        };
        let mut stamps = self.stamps();
        if stamps.len() >= CAPACITY {
            stamps.retain(|_, (_, at)| at.elapsed() < STALE);
        }
        if stamps.len() < CAPACITY {
            stamps.insert(address, (stamp, Instant::now()));
        }
    }

    /// Forgets the stamp of a blob the store deletes.
    pub(crate) fn forget(&self, address: BlobAddress) {
        if self.enabled.load(Ordering::Relaxed) {
            self.stamps().remove(&address);
        }
    }

    /// Whether the file at `path` is, untouched, the one placed for
    /// `address`; the stamp is used up either way.
    pub(crate) fn take_if_unchanged(&self, address: BlobAddress, path: &Path) -> bool {
        let Some((noted, _)) = self.stamps().remove(&address) else {
            return false;
        };
        FileStamp::at(path) == Some(noted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stamp_matches_only_the_untouched_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blob");
        let a = BlobAddress([1; 32]);
        let p = Placements::default();
        std::fs::write(&path, b"sealed").unwrap();
        p.note(a, &path);
        assert!(!p.take_if_unchanged(a, &path), "not enabled: nothing noted");

        p.enable();
        p.note(a, &path);
        assert!(p.take_if_unchanged(a, &path));
        assert!(!p.take_if_unchanged(a, &path), "a stamp is used once");

        p.note(a, &path);
        std::fs::write(&path, b"sealed!").unwrap();
        assert!(!p.take_if_unchanged(a, &path), "rewritten");

        p.note(a, &path);
        let other = dir.path().join("other");
        std::fs::write(&other, b"SEALED").unwrap();
        std::fs::rename(&other, &path).unwrap();
        assert!(!p.take_if_unchanged(a, &path), "replaced by a rename");

        p.note(a, &path);
        p.forget(a);
        assert!(!p.take_if_unchanged(a, &path), "forgotten");

        p.note(a, &path);
        std::fs::remove_file(&path).unwrap();
        assert!(!p.take_if_unchanged(a, &path), "removed");
    }
}
