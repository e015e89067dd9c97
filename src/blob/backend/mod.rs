//! Where sealed blobs live: the seam between everything that knows what a
//! blob is (format, crypto, keys, access, records) and the storage that
//! only holds its bytes.
//!
//! A put seals into a temporary file under the store's `tmp/` (always
//! local: the direct-I/O sink writes it), then [`BlobBackend::commit`]
//! makes it the blob at its address. Reads open a blob for positioned
//! reads ([`BlobSource`]): a range read touches only the chunks it needs,
//! whatever holds them. Orphan collection lists what a backend holds and
//! deletes what no row names. Today's backend is [`local::LocalDir`] (the
//! `blobs/ab/cd/<address>` tree); another (object storage) implements the
//! same trait and nothing above changes.
//!
//! Every method blocks: callers run them on the blocking pool, as they
//! already must for file I/O. A backend whose client is async enters its
//! runtime there.

pub mod choice;
pub(crate) mod local;
#[cfg(test)]
pub(crate) mod memory;
pub(crate) mod placed;
#[cfg(feature = "s3")]
pub(crate) mod s3;

use std::path::Path;

use crate::error::Error;
use crate::types::{BlobAddress, Timestamp};

/// A stored blob, as a listing shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoredBlob {
    pub(crate) address: BlobAddress,
    /// Its size in bytes.
    pub(crate) bytes: u64,
    /// When it was last written (a grace period keeps puts in flight safe
    /// from orphan collection).
    pub(crate) modified: Timestamp,
}

/// How the overwrites of retired blobs are made durable before the files
/// are unlinked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OverwriteSync {
    /// One `syncfs` for the whole batch: the fewest syncs, but every
    /// writer's next `fsync` on the file system waits for it.
    Together,
    /// One file at a time, each with its own `fdatasync`: more syncs and
    /// slower, but none of them anyone else's, and at most one of the
    /// disk's queue slots taken. The purge's choice while other writes
    /// commit.
    EachFile,
}

/// Where sealed blobs live.
pub(crate) trait BlobBackend: Send + Sync + 'static {
    /// A short name for logs and health checks.
    fn name(&self) -> &'static str;

    /// Gets ready to commit under `address` (the local directory makes the
    /// blob's directory), so that it overlaps the end of the write.
    fn prepare(&self, _address: BlobAddress) -> Result<(), Error> {
        Ok(())
    }

    /// Makes the finished, synced temporary blob at `tmp` the blob at
    /// `address`, durably, replacing nothing that a row may name (the
    /// caller holds the address lock and has checked no row exists).
    /// `tmp` is consumed, on success or failure.
    fn commit(&self, tmp: &Path, address: BlobAddress) -> Result<(), Error>;

    /// Opens a blob for positioned reads; `None` if there is none.
    fn open(&self, address: BlobAddress) -> Result<Option<Box<dyn BlobSource>>, Error>;

    /// [`open`](Self::open) for a read that will not come back (a backup,
    /// a deep verify): a backend that keeps what it reads in a cache of
    /// recent blobs serves what the cache holds but adds nothing to it, so
    /// a pass over every blob does not push the hot ones out.
    fn open_once(&self, address: BlobAddress) -> Result<Option<Box<dyn BlobSource>>, Error> {
        self.open(address)
    }

    /// Whether a blob is stored at `address`.
    fn exists(&self, address: BlobAddress) -> Result<bool, Error>;

    /// Deletes the blob at `address`; `false` if there was none.
    fn delete(&self, address: BlobAddress) -> Result<bool, Error>;

    /// Takes the blob at `address` out of its place for
    /// [`destroy_retired`](Self::destroy_retired) to destroy later; `false`
    /// if there was none. The purge calls it under the address lock, so
    /// that it is quick there, and destroys outside the lock. By default
    /// the blob is deleted at once.
    fn retire(&self, address: BlobAddress) -> Result<bool, Error> {
        self.delete(address)
    }

    /// [`retire`](Self::retire) for each address, in order.
    fn retire_many(&self, addresses: &[BlobAddress]) -> Vec<Result<bool, Error>> {
        addresses.iter().map(|a| self.retire(*a)).collect()
    }

    /// Destroys every retired blob (also those a crash left), making the
    /// overwrites durable as `sync` says; returns how many.
    fn destroy_retired(&self, sync: OverwriteSync) -> Result<u64, Error> {
        let _ = sync;
        Ok(0)
    }

    /// Up to `limit` stored blobs whose address is after `after`, in
    /// address order (a listing resumes from its last address).
    fn list(&self, after: Option<BlobAddress>, limit: usize) -> Result<Vec<StoredBlob>, Error>;

    /// Checks that the backend answers (health checks): one short
    /// request, no retries, for a remote backend.
    fn probe(&self) -> Result<(), Error> {
        self.list(None, 1).map(drop)
    }

    /// Aborts the uploads in flight that a process left when it died
    /// (their parts take space on the server), those begun before
    /// `cutoff`; returns how many (a dry run only counts). A local
    /// directory has none: its temporaries are files in `tmp/`.
    fn collect_uploads(&self, cutoff: Timestamp, dry_run: bool) -> Result<u64, Error> {
        let _ = (cutoff, dry_run);
        Ok(0)
    }

    /// How many GET requests a remote backend has sent (for the tests of
    /// its read pattern); `None` for a local one.
    #[cfg_attr(not(feature = "fuzzing"), allow(dead_code))]
    fn gets_sent(&self) -> Option<u64> {
        None
    }

    /// How many HEAD requests a remote backend has sent; `None` for a
    /// local one.
    #[cfg_attr(not(feature = "fuzzing"), allow(dead_code))]
    fn heads_sent(&self) -> Option<u64> {
        None
    }

    /// The local directory, when this backend is one (only there can a
    /// watch see blob files changed behind the store's back).
    fn as_local(&self) -> Option<&local::LocalDir> {
        None
    }

    /// Where an object-storage backend keeps the blob at `address`: a
    /// backup into the same bucket has the engine copy it there rather
    /// than reading and uploading it. `None` for any other backend.
    #[cfg(feature = "s3")]
    fn object_of(&self, address: BlobAddress) -> Option<s3::ObjectName> {
        let _ = address;
        None
    }
}

/// A blob open for positioned reads.
pub(crate) trait BlobSource: Send + Sync {
    /// Its size in bytes.
    fn len(&self) -> Result<u64, Error>;
    /// Fills `buf` from `offset`; an error if the blob is shorter.
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()>;
    /// Says that the bytes of `range` are about to be read, in order (a
    /// remote source then fetches them in as few requests as it can
    /// rather than one per read).
    fn will_read(&self, range: std::ops::Range<u64>) {
        let _ = range;
    }
}

impl BlobSource for std::fs::File {
    fn len(&self) -> Result<u64, Error> {
        Ok(self
            .metadata()
            .map_err(|e| Error::io("reading blob size", e))?
            .len())
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        std::os::unix::fs::FileExt::read_exact_at(self, buf, offset)
    }
}

impl BlobSource for Vec<u8> {
    fn len(&self) -> Result<u64, Error> {
        Ok(self.as_slice().len() as u64)
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        let start = usize::try_from(offset).map_err(|_| std::io::ErrorKind::UnexpectedEof)?;
        let end = start
            .checked_add(buf.len())
            .ok_or(std::io::ErrorKind::UnexpectedEof)?;
        let src = self
            .get(start..end)
            .ok_or(std::io::ErrorKind::UnexpectedEof)?;
        buf.copy_from_slice(src);
        Ok(())
    }
}
