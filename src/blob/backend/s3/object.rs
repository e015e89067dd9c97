//! A blob object open for ranged reads: the chunks a read announces are
//! fetched in windows of at most [`WINDOW`] bytes, one ranged GET each;
//! other reads (the open's header, trailer and chunk table) fetch at least
//! [`MIN_FETCH`] bytes around them. Every window fetched is kept in the
//! backend's read cache (bounded in bytes, in memory, still sealed), so
//! that hot audio is not downloaded again.

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
    /// Recently fetched bytes, if the cache is on.
    pub(super) cache: Option<ReadCache>,
}

/// Recently fetched bytes of objects (sealed, as stored), by address.
pub(super) type ReadCache = moka::sync::Cache<BlobAddress, Arc<Cached>>;

/// A cache bounded to `bytes` (`None` for 0: off).
pub(super) fn read_cache(bytes: u64) -> Option<ReadCache> {
    (bytes > 0).then(|| {
        moka::sync::Cache::builder()
            .max_capacity(bytes)
            .weigher(|_, c: &Arc<Cached>| c.weight())
            .build()
    })
}

/// What the cache holds of one object: windows of its bytes.
#[derive(Default)]
pub(super) struct Cached {
    windows: Vec<(u64, bytes::Bytes)>,
}

impl Cached {
    fn weight(&self) -> u32 {
        let bytes: usize = self.windows.iter().map(|(_, b)| b.len()).sum();
        u32::try_from(bytes.saturating_add(64)).unwrap_or(u32::MAX)
    }

    /// The cached bytes of `offset..end`, if one window holds them.
    fn find(&self, offset: u64, end: u64) -> Option<&[u8]> {
        self.windows.iter().find_map(|(start, bytes)| {
            (offset >= *start && end <= start + bytes.len() as u64).then(|| {
                let from = (offset - start) as usize;
                &bytes[from..from + (end - offset) as usize]
            })
        })
    }

    /// These windows and `(start, bytes)`, without those it covers.
    fn with(&self, start: u64, bytes: bytes::Bytes) -> Cached {
        let end = start + bytes.len() as u64;
        let mut windows: Vec<_> = self
            .windows
            .iter()
            .filter(|(s, b)| !(*s >= start && s + b.len() as u64 <= end))
            .cloned()
            .collect();
        windows.push((start, bytes));
        Cached { windows }
    }
}

/// The fewest bytes a read outside an announced run fetches (around it):
/// one request then serves the trailer and the chunk table together, and
/// no tiny response is asked for (RADOS Gateway sends one only after the
/// client's delayed ACK, ~40 ms).
const MIN_FETCH: u64 = 64 << 10;

/// Bytes fetched ahead at most, within a run announced by
/// [`BlobSource::will_read`]: one ranged GET serves the chunks of up to
/// this many bytes, and no open object holds more.
const WINDOW: u64 = 8 << 20;

/// An object open for ranged reads. Reads within a run announced by
/// `will_read` are served from a window fetched with one ranged GET (of
/// the run, or of [`WINDOW`] bytes of it); any other read fetches at
/// least [`MIN_FETCH`] bytes around it. A read the cache holds sends
/// nothing.
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
        let (start, want) = (range.start, range.end - range.start);
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
        if let Some(cache) = &self.dir.cache {
            let old = cache.get(&self.address).unwrap_or_default();
            cache.insert(self.address, Arc::new(old.with(start, got.clone())));
        }
        Ok(got)
    }

    /// Fills `buf` from the read cache, if it holds `offset..end`.
    fn cached(&self, buf: &mut [u8], offset: u64, end: u64) -> bool {
        let Some(cached) = self.dir.cache.as_ref().and_then(|c| c.get(&self.address)) else {
            return false;
        };
        match cached.find(offset, end) {
            Some(bytes) => {
                buf.copy_from_slice(bytes);
                true
            }
            None => false,
        }
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
        if self.cached(buf, offset, end) {
            return Ok(());
        }
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
        let window = if ahead.run.start <= offset && end <= ahead.run.end {
            offset..ahead.run.end.min(offset.saturating_add(WINDOW)).max(end)
        } else {
            let to = end.max(offset.saturating_add(MIN_FETCH)).min(self.len);
            offset.min(to.saturating_sub(MIN_FETCH))..to
        };
        let bytes = self.fetch(window.clone())?;
        let from = (offset - window.start) as usize;
        buf.copy_from_slice(&bytes[from..from + buf.len()]);
        ahead.window = Some((window.start, bytes));
        Ok(())
    }
}
