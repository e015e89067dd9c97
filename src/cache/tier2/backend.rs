//! The file backend of `cache.redb`, with a switch that makes its writes
//! fail: how the tests prove that the cache keeps serving from tier 1 when
//! the disk fails, reports it, and recovers. Only the `fault-injection`
//! feature (the crate's own tests) can turn it on.
//!
//! With the switch off (always, outside tests) every call goes straight to
//! redb's [`FileBackend`]; the switch costs one atomic load per I/O call.

use std::fs::{File, OpenOptions};
use std::ops::Bound;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use redb::backends::FileBackend;
use redb::{BackendError, DatabaseError, StorageBackend};

/// redb's file backend behind a fault switch.
#[derive(Debug)]
pub(crate) struct FaultyBackend {
    inner: FileBackend,
    fault: Arc<AtomicBool>,
}

impl FaultyBackend {
    /// Opens (or creates) the file at `path`.
    pub(crate) fn open(path: &Path, fault: Arc<AtomicBool>) -> Result<Self, DatabaseError> {
        let file: File = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        Ok(FaultyBackend {
            inner: FileBackend::new(file)?,
            fault,
        })
    }

    fn check(&self) -> Result<(), std::io::Error> {
        if self.fault.load(Ordering::Relaxed) {
            return Err(std::io::Error::other("injected tier-2 write fault"));
        }
        Ok(())
    }
}

impl StorageBackend for FaultyBackend {
    fn len(&self) -> Result<u64, std::io::Error> {
        self.inner.len()
    }
    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), std::io::Error> {
        self.inner.read(offset, out)
    }
    fn set_len(&self, len: u64) -> Result<(), std::io::Error> {
        self.check()?;
        self.inner.set_len(len)
    }
    fn sync_data(&self) -> Result<(), std::io::Error> {
        self.check()?;
        self.inner.sync_data()
    }
    fn write(&self, offset: u64, data: &[u8]) -> Result<(), std::io::Error> {
        self.check()?;
        self.inner.write(offset, data)
    }
    crate::db::backend_wrap::forward_close_and_locks!();
}
