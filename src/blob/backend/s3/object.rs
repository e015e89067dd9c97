//! A blob object open for ranged reads: the chunks a read announces (a
//! run) come from one ranged GET of the whole run, its body taken in
//! pieces of [`PIECE`] bytes by a task on the client's runtime, at most
//! [`AHEAD`] pieces ahead of the reads, so that the transfer goes on while
//! the chunks are opened and memory stays bounded whatever the run's
//! length. Other reads (the open's header, trailer and chunk table) fetch
//! at least [`MIN_FETCH`] bytes around them. Everything fetched is kept in
//! the backend's read cache (bounded in bytes, in memory, still sealed),
//! so that hot audio is not downloaded again.

use std::ops::Range;
use std::sync::Arc;

use object_store::ObjectStore;
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
    /// HEAD requests sent through this client.
    pub(super) heads: Arc<std::sync::atomic::AtomicU64>,
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

/// What the cache holds of one object: its length and windows of its
/// bytes.
pub(super) struct Cached {
    /// The object's length when these bytes were fetched.
    pub(super) len: u64,
    windows: Vec<(u64, bytes::Bytes)>,
}

impl Cached {
    fn weight(&self) -> u32 {
        let bytes: usize = self.windows.iter().map(|(_, b)| b.len()).sum();
        u32::try_from(bytes.saturating_add(64)).unwrap_or(u32::MAX)
    }

    /// An object of `len` bytes of which nothing is held yet.
    fn empty(len: u64) -> Cached {
        Cached {
            len,
            windows: Vec::new(),
        }
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
        Cached {
            len: self.len,
            windows,
        }
    }
}

/// Fills `buf` with the bytes from `offset` out of `windows` (each a
/// start and its bytes), piecing it together from several when it
/// straddles them; `false` if they do not hold all of it.
fn fill<'a>(
    windows: impl Iterator<Item = &'a (u64, bytes::Bytes)> + Clone,
    buf: &mut [u8],
    offset: u64,
) -> bool {
    let mut done = 0usize;
    while done < buf.len() {
        let at = offset + done as u64;
        let Some((start, bytes)) = windows
            .clone()
            .find(|(start, bytes)| at >= *start && at < start + bytes.len() as u64)
        else {
            return false;
        };
        let from = (at - start) as usize;
        let n = (bytes.len() - from).min(buf.len() - done);
        buf[done..done + n].copy_from_slice(&bytes[from..from + n]);
        done += n;
    }
    true
}

/// The fewest bytes a read outside an announced run fetches (around it):
/// one request then serves the trailer and the chunk table together, and
/// no tiny response is asked for (RADOS Gateway sends one only after the
/// client's delayed ACK, ~40 ms).
const MIN_FETCH: u64 = 64 << 10;

/// Every GET asks for a whole number of these bytes (more than a read
/// needs, where the object has them). RADOS Gateway sends a body in
/// 64 KiB writes; a body that ends with a short one is sent only after
/// the client's delayed ACK, 40 ms later, in 15-20 % of the GETs measured
/// here (65 537 bytes: 80 %; whole multiples: 0-3 %). Sealed chunks are
/// 17 bytes longer than their plaintext, so without this most runs would
/// end short.
const ALIGN: u64 = 64 << 10;

/// Bytes of one piece of a run's body, as the reads take them.
const PIECE: usize = 1 << 20;

/// Pieces received and not yet taken by a read, at most (then the task
/// stops reading the body, and TCP tells the server to wait).
const AHEAD: usize = 8;

/// Bytes of the pieces an open object keeps after the reads took them:
/// chunks are read several at once, so a read can come late. Also the
/// granularity of where a run's GET starts, so that chunks read out of
/// order at the start of a run land in the same GET.
const KEPT: u64 = 8 << 20;

/// An object open for ranged reads. Reads within a run announced by
/// `will_read` are served from the run's GET, streamed (see the module
/// docs); any other read fetches at least [`MIN_FETCH`] bytes around it.
/// A read the cache holds sends nothing, with one exception: an object
/// opened from the cache (no `HEAD`: its length is the cache's) is not
/// known to exist still, so once a run is announced no byte of it is
/// handed out before a request has confirmed it: the run's GET does, or,
/// when the cache holds the run too, one `HEAD`. Only the open's own reads
/// (header, trailer, chunk table) may come from the cache before that.
/// An object found gone reads as [`std::io::ErrorKind::NotFound`].
pub(super) struct Object {
    pub(super) dir: Handle,
    pub(super) key: Key,
    pub(super) address: BlobAddress,
    pub(super) len: u64,
    /// Whether what its reads fetch goes into the read cache (not for a
    /// read that will not come back: a backup, a deep verify).
    pub(super) keep: bool,
    /// Whether a request answered by the server showed the object there,
    /// at `len` bytes, since it was opened.
    pub(super) confirmed: Arc<std::sync::atomic::AtomicBool>,
    pub(super) ahead: std::sync::Mutex<Ahead>,
}

/// A piece of an object's bytes (or why it did not come).
type Piece = std::io::Result<(u64, bytes::Bytes)>;

/// The announced run, the pieces taken from its GET, and the GET.
#[derive(Default)]
pub(super) struct Ahead {
    run: Range<u64>,
    /// Pieces taken, adjacent, oldest first: where each starts, and its
    /// bytes (at most [`KEPT`] bytes, besides the newest).
    pieces: std::collections::VecDeque<(u64, bytes::Bytes)>,
    /// The GET streaming the rest of the run: the range still to come,
    /// and where its pieces arrive.
    body: Option<(Range<u64>, std::sync::mpsc::Receiver<Piece>)>,
}

impl Ahead {
    /// Whether `offset` is in the pieces taken or still to come.
    fn covers(&self, offset: u64) -> bool {
        let first = match (self.pieces.front(), &self.body) {
            (Some((start, _)), _) => *start,
            (None, Some((rest, _))) => rest.start,
            (None, None) => return false,
        };
        let end = match &self.body {
            Some((rest, _)) => rest.end,
            None => self
                .pieces
                .back()
                .map_or(first, |(s, b)| s + b.len() as u64),
        };
        (first..end).contains(&offset)
    }

    fn keep(&mut self, start: u64, bytes: bytes::Bytes) {
        self.pieces.push_back((start, bytes));
        while self.pieces.len() > 1 {
            let total: u64 = self.pieces.iter().map(|(_, b)| b.len() as u64).sum();
            let oldest = self.pieces.front().map_or(0, |(_, b)| b.len() as u64);
            if total - oldest < KEPT {
                break;
            }
            self.pieces.pop_front();
        }
    }
}

impl Object {
    /// One ranged GET, waited for, whole.
    fn fetch(&self, range: Range<u64>) -> std::io::Result<bytes::Bytes> {
        let Some(rt) = &self.dir.runtime else {
            return Err(closed());
        };
        let (store, key) = (Arc::clone(&self.dir.store), self.key.clone());
        let (start, want) = (range.start, range.end - range.start);
        let (what, len) = (self.what(), self.len);
        self.count_get();
        let got = wait_on(rt, async move {
            let options = object_store::GetOptions::default().with_range(Some(range));
            let got = store
                .get_opts(&key, options)
                .await
                .map_err(|e| io(&what, e))?;
            if got.meta.size != len {
                return Err(changed(&what, got.meta.size, len));
            }
            got.bytes().await.map_err(|e| io(&what, e))
        })
        .ok_or_else(stopped)?;
        let got = self.note(got)?;
        if got.len() as u64 != want {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        self.remember(start, &got);
        Ok(got)
    }

    /// Notes what a request found: the object there (confirmed), or gone
    /// or replaced (dropped from the cache, so the next open asks again).
    fn note<T>(&self, got: std::io::Result<T>) -> std::io::Result<T> {
        use std::io::ErrorKind::{InvalidData, NotFound};
        match &got {
            Ok(_) => self
                .confirmed
                .store(true, std::sync::atomic::Ordering::Release),
            Err(e) if matches!(e.kind(), NotFound | InvalidData) => self.forget(),
            Err(_) => {}
        }
        got
    }

    /// Makes sure the object is still there before the cache serves a
    /// run's bytes: one `HEAD` if no request has shown it since the open.
    fn confirm(&self) -> std::io::Result<()> {
        if self.confirmed.load(std::sync::atomic::Ordering::Acquire) {
            return Ok(());
        }
        let Some(rt) = &self.dir.runtime else {
            return Err(closed());
        };
        let sent = super::head_size(&self.dir.store, &self.dir.heads, self.key.clone());
        let (what, len) = (self.what(), self.len);
        let got = wait_on(rt, async move {
            let size = sent.await.map_err(|e| io(&what, e))?;
            if size != len {
                return Err(changed(&what, size, len));
            }
            Ok(())
        })
        .ok_or_else(stopped)?;
        self.note(got)
    }

    /// Drops what the cache holds of this object.
    fn forget(&self) {
        if let Some(cache) = &self.dir.cache {
            cache.invalidate(&self.address);
        }
    }

    /// Sends one ranged GET of `range` and streams its body: a task on
    /// the client's runtime cuts it into pieces of [`PIECE`] bytes and
    /// sends them on the channel returned, at most [`AHEAD`] unread.
    fn stream(&self, range: Range<u64>) -> std::io::Result<std::sync::mpsc::Receiver<Piece>> {
        use futures_util::StreamExt;
        let Some(rt) = &self.dir.runtime else {
            return Err(closed());
        };
        let (store, key) = (Arc::clone(&self.dir.store), self.key.clone());
        let (what, len) = (self.what(), self.len);
        self.count_get();
        let (tx, rx) = std::sync::mpsc::sync_channel::<Piece>(AHEAD);
        rt.spawn(async move {
            let options = object_store::GetOptions::default().with_range(Some(range.clone()));
            let mut body = match store.get_opts(&key, options).await {
                Ok(got) if got.meta.size == len => got.into_stream(),
                Ok(got) => {
                    let _ = tx.send(Err(changed(&what, got.meta.size, len)));
                    return;
                }
                Err(e) => {
                    let _ = tx.send(Err(io(&what, e)));
                    return;
                }
            };
            let (mut at, mut piece) = (range.start, bytes::BytesMut::new());
            loop {
                let next = body.next().await;
                let ready = match &next {
                    Some(Ok(bytes)) => {
                        piece.extend_from_slice(bytes);
                        piece.len() >= PIECE
                    }
                    _ => !piece.is_empty(),
                };
                if ready {
                    let bytes = piece.split().freeze();
                    let start = at;
                    at += bytes.len() as u64;
                    // The channel blocks when the reads are behind: off
                    // the runtime's workers.
                    let sender = tx.clone();
                    let sent = tokio::task::spawn_blocking(move || sender.send(Ok((start, bytes))))
                        .await
                        .is_ok_and(|r| r.is_ok());
                    if !sent {
                        return; // The object was dropped: the GET is cancelled.
                    }
                }
                match next {
                    Some(Ok(_)) => {}
                    Some(Err(e)) => {
                        let _ = tx.send(Err(io(&what, e)));
                        return;
                    }
                    None if at < range.end => {
                        let _ = tx.send(Err(std::io::ErrorKind::UnexpectedEof.into()));
                        return;
                    }
                    None => return,
                }
            }
        });
        Ok(rx)
    }

    fn what(&self) -> String {
        format!("reading blob {} at {}", self.address, self.dir.url)
    }

    fn count_get(&self) {
        self.dir
            .gets
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Puts fetched bytes in the read cache, if it is on and the object is
    /// kept.
    fn remember(&self, start: u64, got: &bytes::Bytes) {
        if !self.keep {
            return;
        }
        if let Some(cache) = &self.dir.cache {
            let old = cache
                .get(&self.address)
                .filter(|c| c.len == self.len)
                .unwrap_or_else(|| Arc::new(Cached::empty(self.len)));
            cache.insert(self.address, Arc::new(old.with(start, got.clone())));
        }
    }

    /// Fills `buf` from the read cache, if it holds all of it.
    fn cached(&self, buf: &mut [u8], offset: u64) -> bool {
        let Some(cached) = self.dir.cache.as_ref().and_then(|c| c.get(&self.address)) else {
            return false;
        };
        fill(cached.windows.iter(), buf, offset)
    }

    /// Takes the next piece of the run's GET into the kept ones.
    fn take_piece(&self, ahead: &mut Ahead) -> std::io::Result<()> {
        let Some((rest, rx)) = ahead.body.as_mut() else {
            return Ok(());
        };
        let got = self.note(rx.recv().map_err(|_| stopped()).and_then(|piece| piece));
        let (start, bytes) = match got {
            Ok(piece) => piece,
            Err(e) => {
                // The next read that needs it sends the GET again.
                ahead.body = None;
                return Err(e);
            }
        };
        rest.start = start + bytes.len() as u64;
        if rest.start >= rest.end {
            ahead.body = None;
        }
        self.remember(start, &bytes);
        ahead.keep(start, bytes);
        Ok(())
    }
}

/// `range` grown to a whole number of [`ALIGN`] bytes (at its end, or at
/// its start where the object of `len` bytes ends first), within the
/// object.
fn aligned(len: u64, range: Range<u64>) -> Range<u64> {
    let want = (range.end - range.start).div_ceil(ALIGN) * ALIGN;
    if range.start + want <= len {
        range.start..range.start + want
    } else {
        len.saturating_sub(want)..len
    }
}

/// An object store's error as a read's: a missing object as
/// [`std::io::ErrorKind::NotFound`].
fn io(what: &str, e: object_store::Error) -> std::io::Error {
    let kind = match e {
        object_store::Error::NotFound { .. } => std::io::ErrorKind::NotFound,
        _ => std::io::ErrorKind::Other,
    };
    std::io::Error::new(kind, format!("{what}: {e}"))
}

/// An object found at another length than it was opened at
/// ([`std::io::ErrorKind::InvalidData`]: what the cache holds of it is
/// stale).
fn changed(what: &str, now: u64, opened: u64) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!("{what}: the object is {now} bytes, it was {opened} when opened (replaced?)"),
    )
}

fn closed() -> std::io::Error {
    std::io::Error::other("the object store client is closed")
}

fn stopped() -> std::io::Error {
    std::io::Error::other("the object store client stopped")
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
        if self.cached(buf, offset) {
            let announced = !self
                .ahead
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .run
                .is_empty();
            if announced {
                self.confirm()?;
            }
            return Ok(());
        }
        if end - offset > KEPT / 2 {
            // Too large to be sure of staying in the kept pieces (a huge
            // chunk size): fetched as it is.
            let asked = aligned(self.len, offset..end);
            let bytes = self.fetch(asked.clone())?;
            let from = (offset - asked.start) as usize;
            buf.copy_from_slice(&bytes[from..from + buf.len()]);
            return Ok(());
        }
        // Held while waiting: reads ahead in parallel wait for their
        // piece rather than each sending a GET.
        let mut ahead = self.ahead.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if fill(ahead.pieces.iter(), buf, offset) {
                return Ok(());
            }
            if ahead.body.is_some() && ahead.covers(offset) {
                // The run's GET brings (the rest of) it.
                self.take_piece(&mut ahead)?;
                continue;
            }
            // Nothing taken or to come holds it: start afresh.
            ahead.body = None;
            ahead.pieces.clear();
            let run = ahead.run.clone();
            if run.start <= offset && end <= run.end {
                let from = run.start + (offset - run.start) / KEPT * KEPT;
                let rest = aligned(self.len, from..run.end);
                ahead.body = Some((rest.clone(), self.stream(rest)?));
            } else {
                let to = end.max(offset.saturating_add(MIN_FETCH)).min(self.len);
                let window = aligned(self.len, offset.min(to.saturating_sub(MIN_FETCH))..to);
                let bytes = self.fetch(window.clone())?;
                ahead.keep(window.start, bytes);
                return if fill(ahead.pieces.iter(), buf, offset) {
                    Ok(())
                } else {
                    Err(std::io::ErrorKind::UnexpectedEof.into())
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{ALIGN, aligned, fill};

    #[test]
    fn every_get_asks_for_whole_multiples_of_64_kib_within_the_object() {
        let len = 10 * ALIGN + 100;
        // A sealed chunk (17 bytes over 256 KiB) grows at its end.
        assert_eq!(
            aligned(len, 1000..1000 + 4 * ALIGN + 17),
            1000..1000 + 5 * ALIGN
        );
        assert_eq!(aligned(len, 0..ALIGN), 0..ALIGN, "already whole");
        // Near the object's end it grows at its start instead.
        assert_eq!(aligned(len, len - 70_000..len), len - 2 * ALIGN..len);
        // An object shorter than the multiple: all of it.
        assert_eq!(aligned(5000, 10..4000), 0..5000);
    }

    fn windows() -> Vec<(u64, bytes::Bytes)> {
        vec![
            (10, bytes::Bytes::from_static(b"abcde")),
            (15, bytes::Bytes::from_static(b"fghij")),
            (30, bytes::Bytes::from_static(b"xyz")),
        ]
    }

    #[test]
    fn a_read_is_pieced_together_from_adjacent_windows_and_not_across_a_gap() {
        let w = windows();
        let mut buf = [0u8; 4];
        assert!(fill(w.iter(), &mut buf, 11));
        assert_eq!(&buf, b"bcde");
        assert!(fill(w.iter(), &mut buf, 13));
        assert_eq!(&buf, b"defg", "straddles the first two windows");
        let mut all = [0u8; 10];
        assert!(fill(w.iter(), &mut all, 10));
        assert_eq!(&all, b"abcdefghij");
        assert!(
            !fill(w.iter(), &mut buf, 18),
            "runs past the second window into a gap"
        );
        assert!(!fill(w.iter(), &mut buf, 8), "starts before any window");
        assert!(!fill(w.iter(), &mut buf, 31), "runs past the end");
        assert!(fill(w.iter(), &mut [], 1000), "nothing to read");
    }
}
