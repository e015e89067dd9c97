//! A blob object open for ranged reads: the chunks a read announces are
//! fetched in windows of at most [`WINDOW`] bytes, one ranged GET each.

use std::ops::Range;
use std::sync::Arc;

use object_store::ObjectStoreExt;
use object_store::aws::AmazonS3;
use object_store::path::Path as Key;

use super::wait_on;
use crate::blob::backend::BlobSource;
use crate::error::Error;
use crate::types::BlobAddress;

/// The client, shared by the objects opened through it.
#[derive(Clone)]
pub(super) struct Handle {
    pub(super) store: Arc<AmazonS3>,
    /// GET requests sent through this client.
    pub(super) gets: Arc<std::sync::atomic::AtomicU64>,
    pub(super) runtime: Option<tokio::runtime::Handle>,
    pub(super) url: String,
}

/// Bytes fetched ahead at most, within a run announced by
/// [`BlobSource::will_read`]: one ranged GET serves the chunks of up to
/// this many bytes, and no open object holds more.
const WINDOW: u64 = 8 << 20;

/// An object open for ranged reads. Reads within a run announced by
/// `will_read` are served from a window fetched with one ranged GET (of
/// the run, or of [`WINDOW`] bytes of it); any other read is one ranged
/// GET of exactly its bytes.
pub(super) struct Object {
    pub(super) dir: Handle,
    pub(super) key: Key,
    pub(super) address: BlobAddress,
    pub(super) len: u64,
    pub(super) ahead: std::sync::Mutex<Ahead>,
}

/// The announced run and the window fetched from it.
#[derive(Default)]
pub(super) struct Ahead {
    run: Range<u64>,
    /// Where the window starts, and its bytes.
    window: Option<(u64, bytes::Bytes)>,
}

impl Object {
    /// One ranged GET.
    fn fetch(&self, range: Range<u64>) -> std::io::Result<bytes::Bytes> {
        let Some(rt) = &self.dir.runtime else {
            return Err(std::io::Error::other("the object store client is closed"));
        };
        let (store, key) = (Arc::clone(&self.dir.store), self.key.clone());
        let want = range.end - range.start;
        self.dir
            .gets
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let got = wait_on(rt, async move { store.get_range(&key, range).await })
            .ok_or_else(|| std::io::Error::other("the object store client stopped"))?
            .map_err(|e| {
                std::io::Error::other(format!(
                    "reading blob {} at {}: {e}",
                    self.address, self.dir.url
                ))
            })?;
        if got.len() as u64 != want {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        Ok(got)
    }
}

impl BlobSource for Object {
    fn len(&self) -> Result<u64, Error> {
        Ok(self.len)
    }

    fn will_read(&self, range: Range<u64>) {
        let mut ahead = self.ahead.lock().unwrap_or_else(|e| e.into_inner());
        ahead.run = range.start.min(self.len)..range.end.min(self.len);
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        if buf.is_empty() {
            return Ok(());
        }
        let end = offset
            .checked_add(buf.len() as u64)
            .filter(|end| *end <= self.len)
            .ok_or(std::io::ErrorKind::UnexpectedEof)?;
        // Held while fetching: reads ahead in parallel wait for the window
        // rather than each fetching it.
        let mut ahead = self.ahead.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((start, bytes)) = &ahead.window
            && offset >= *start
            && end <= start + bytes.len() as u64
        {
            let from = (offset - start) as usize;
            buf.copy_from_slice(&bytes[from..from + buf.len()]);
            return Ok(());
        }
        if ahead.run.start <= offset && end <= ahead.run.end {
            let to = ahead.run.end.min(offset.saturating_add(WINDOW)).max(end);
            let bytes = self.fetch(offset..to)?;
            buf.copy_from_slice(&bytes[..buf.len()]);
            ahead.window = Some((offset, bytes));
            return Ok(());
        }
        drop(ahead);
        let bytes = self.fetch(offset..end)?;
        buf.copy_from_slice(&bytes);
        Ok(())
    }
}
