//! Reading blobs back: whole (as a stream, decrypting a few chunks ahead on
//! the blocking pool), or a byte range (only the chunks it touches).
//!
//! Nothing unauthenticated is ever returned: every chunk is opened (tag or
//! checksum) before its bytes leave, and a full read ends by comparing the
//! SHA-256 of everything read with the record's; a mismatch is
//! [`Error::Integrity`] instead of a clean end of stream.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, ReadBuf};
use tokio::sync::mpsc;

use crate::blob::backend::{BlobBackend, BlobSource};
use crate::blob::crypto::{ChunkSealer, SecretKey, decode_chunk};
use crate::blob::format::{self, Header};
use crate::error::Error;
use crate::types::BlobAddress;

/// An opened blob file with its chunk index.
pub(crate) struct OpenBlob {
    file: Box<dyn BlobSource>,
    header: Header,
    offsets: Vec<u64>,
    middle: ChunkSealer,
    last: ChunkSealer,
    what: String,
}

impl OpenBlob {
    /// Opens the blob at `address` in `backend`, checks its header against
    /// what the record says, and reads its chunk table; `once` for a read
    /// that will not come back (see [`BlobBackend::open_once`]). Blocking.
    pub(crate) fn open(
        backend: &dyn BlobBackend,
        address: BlobAddress,
        key: Option<&SecretKey>,
        expected_len: u64,
        what: String,
        once: bool,
    ) -> Result<OpenBlob, Error> {
        let opened = if once {
            backend.open_once(address)?
        } else {
            backend.open(address)?
        };
        let Some(file) = opened else {
            return Err(Error::Integrity {
                what,
                detail: "its blob file is missing".into(),
            });
        };
        Self::from_source(file, key, Some(expected_len), what)
    }

    /// Opens a blob from any source; `expected_len` (from the record) must
    /// match the header when given. Blocking.
    pub(crate) fn from_source(
        file: Box<dyn BlobSource>,
        key: Option<&SecretKey>,
        expected_len: Option<u64>,
        what: String,
    ) -> Result<OpenBlob, Error> {
        let file_len = file.len()?;
        let corrupt = |e: Error| match e {
            Error::Corrupt { detail, .. } => Error::Integrity {
                what: what.clone(),
                detail,
            },
            other => other,
        };
        if file_len < (format::HEADER_LEN + format::TRAILER_LEN) as u64 {
            return Err(Error::Integrity {
                what,
                detail: format!("blob file of {file_len} bytes is truncated"),
            });
        }
        let mut head = [0u8; format::HEADER_LEN];
        file.read_exact_at(&mut head, 0)
            .map_err(|e| read_failed(&what, "reading a blob header", e))?;
        let header = Header::parse(&head).map_err(corrupt)?;
        if let Some(expected_len) = expected_len
            && header.plain_len != expected_len
        {
            return Err(Error::Integrity {
                what,
                detail: format!(
                    "blob holds {} bytes, record says {expected_len}",
                    header.plain_len
                ),
            });
        }
        let mut trailer = [0u8; format::TRAILER_LEN];
        file.read_exact_at(&mut trailer, file_len - format::TRAILER_LEN as u64)
            .map_err(|e| read_failed(&what, "reading a blob trailer", e))?;
        let range = format::table_range(&header, file_len, &trailer).map_err(corrupt)?;
        let table_len = usize::try_from(range.end - range.start).map_err(|_| Error::Integrity {
            what: what.clone(),
            detail: "chunk table too large".into(),
        })?;
        let mut table = vec![0u8; table_len];
        file.read_exact_at(&mut table, range.start)
            .map_err(|e| read_failed(&what, "reading a chunk table", e))?;
        let offsets = format::chunk_offsets(&table, file_len).map_err(corrupt)?;
        let middle = ChunkSealer::new(header, key).map_err(corrupt)?;
        let last = ChunkSealer::new(header, key).map_err(corrupt)?;
        Ok(OpenBlob {
            file,
            header,
            offsets,
            middle,
            last,
            what,
        })
    }

    pub(crate) fn chunk_count(&self) -> u64 {
        self.header.chunk_count()
    }

    /// Tells the source that chunks `first..last` are about to be read.
    pub(crate) fn will_read(&self, first: u64, last: u64) {
        let (Some(start), Some(end)) = (
            self.offsets.get(first as usize),
            self.offsets.get(last as usize),
        ) else {
            return;
        };
        if start < end {
            self.file.will_read(*start..*end);
        }
    }

    /// Reads, authenticates and decodes chunk `i`. Blocking.
    pub(crate) fn chunk(&self, i: u64) -> Result<Vec<u8>, Error> {
        let n = self.chunk_count();
        let (start, end) = (self.offsets[i as usize], self.offsets[i as usize + 1]);
        let sealed_len =
            usize::try_from(end - start).map_err(|_| Error::corrupt("blob", "chunk too large"))?;
        if sealed_len > self.header.chunk_size as usize + 1 + format::TAG_LEN {
            return Err(Error::Integrity {
                what: self.what.clone(),
                detail: format!("chunk {i} is {sealed_len} bytes, more than its chunk size allows"),
            });
        }
        let mut sealed = vec![0u8; sealed_len];
        self.file
            .read_exact_at(&mut sealed, start)
            .map_err(|e| read_failed(&self.what, "reading a chunk", e))?;
        let last = i + 1 == n;
        let sealer = if last { &self.last } else { &self.middle };
        let index = u32::try_from(i).map_err(|_| Error::corrupt("blob", "chunk index over u32"))?;
        let body = sealer.open(index, last, sealed).map_err(|e| match e {
            Error::Corrupt { detail, .. } => Error::Integrity {
                what: self.what.clone(),
                detail,
            },
            other => other,
        })?;
        decode_chunk(body, self.header.chunk_plain_len(i), i).map_err(|e| match e {
            Error::Corrupt { detail, .. } => Error::Integrity {
                what: self.what.clone(),
                detail,
            },
            other => other,
        })
    }

    /// Bytes `offset..offset+len` (clipped to the end). Blocking.
    pub(crate) fn range(&self, offset: u64, len: u64) -> Result<Vec<u8>, Error> {
        let end = offset.saturating_add(len).min(self.header.plain_len);
        if offset >= end {
            return Ok(Vec::new());
        }
        let cs = u64::from(self.header.chunk_size);
        let mut out = Vec::with_capacity((end - offset) as usize);
        self.will_read(offset / cs, (end - 1) / cs + 1);
        for i in offset / cs..=(end - 1) / cs {
            let chunk = self.chunk(i)?;
            let base = i * cs;
            let from = (offset.max(base) - base) as usize;
            let to = (end.min(base + chunk.len() as u64) - base) as usize;
            out.extend_from_slice(&chunk[from..to]);
        }
        Ok(out)
    }
}

/// A source's read error. A source that is gone reads as a missing blob,
/// as at the open: an object deleted behind the store's back (a remote
/// source reports `NotFound`; an open local file cannot).
fn read_failed(what: &str, context: &str, e: std::io::Error) -> Error {
    if e.kind() == std::io::ErrorKind::NotFound {
        Error::Integrity {
            what: what.to_string(),
            detail: format!("its blob file is missing ({e})"),
        }
    } else {
        Error::io(context.to_string(), e)
    }
}

/// Reads every chunk in order (a few ahead in parallel), hashing as it goes,
/// and sends plaintext to `tx`; ends with an integrity error if the hash
/// differs from `sha256`.
pub(crate) async fn pump(
    blob: Arc<OpenBlob>,
    sha256: [u8; 32],
    depth: usize,
    tx: mpsc::Sender<Result<Vec<u8>, Error>>,
) {
    let len = blob.header.plain_len;
    pump_range(blob, 0, len, Some(sha256), depth, tx).await
}

/// Sends the plaintext bytes `offset..end` of `blob` to `tx`, a chunk at a
/// time (at most `depth` chunks read ahead, so memory stays bounded by the
/// chunk size whatever the range); every chunk is authenticated, and with
/// `sha256` (the whole file) the digest is checked at the end.
pub(crate) async fn pump_range(
    blob: Arc<OpenBlob>,
    offset: u64,
    end: u64,
    sha256: Option<[u8; 32]>,
    depth: usize,
    tx: mpsc::Sender<Result<Vec<u8>, Error>>,
) {
    let end = end.min(blob.header.plain_len);
    let cs = u64::from(blob.header.chunk_size).max(1);
    let (first, last) = if offset < end {
        (offset / cs, (end - 1) / cs + 1)
    } else if sha256.is_some() {
        // An empty file still has one (empty) chunk to authenticate.
        (0, blob.chunk_count())
    } else {
        (0, 0)
    };
    blob.will_read(first, last);
    let mut hasher = Sha256::new();
    let mut inflight = VecDeque::new();
    let mut next = first;
    loop {
        while next < last && inflight.len() < depth.max(1) {
            let b = Arc::clone(&blob);
            let i = next;
            inflight.push_back((i, tokio::task::spawn_blocking(move || b.chunk(i))));
            next += 1;
        }
        let Some((i, job)) = inflight.pop_front() else {
            break;
        };
        let result = match job.await {
            Ok(r) => r,
            Err(e) => Err(Error::join("reading a chunk", e)),
        };
        match result {
            Ok(mut bytes) => {
                if sha256.is_some() {
                    hasher.update(&bytes);
                }
                let base = i * cs;
                let to = (end.saturating_sub(base) as usize).min(bytes.len());
                bytes.truncate(to);
                let from = (offset.saturating_sub(base) as usize).min(bytes.len());
                if from > 0 {
                    bytes.drain(..from);
                }
                if tx.send(Ok(bytes)).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                let _ = tx.send(Err(e)).await;
                return;
            }
        }
    }
    let Some(sha256) = sha256 else { return };
    let digest: [u8; 32] = hasher.finalize().into();
    if digest != sha256 {
        let _ = tx
            .send(Err(Error::Integrity {
                what: blob.what.clone(),
                detail: "SHA-256 of the data read differs from the record".into(),
            }))
            .await;
    }
}

/// A stored file being read: an [`AsyncRead`] of its plaintext.
///
/// Reading ends with an error of kind `InvalidData` carrying
/// [`Error::Integrity`] if the file was damaged.
pub struct FileReader {
    rx: mpsc::Receiver<Result<Vec<u8>, Error>>,
    current: Vec<u8>,
    pos: usize,
}

impl FileReader {
    pub(crate) fn new(rx: mpsc::Receiver<Result<Vec<u8>, Error>>) -> Self {
        FileReader {
            rx,
            current: Vec::new(),
            pos: 0,
        }
    }

    /// The next piece of plaintext, or `None` at the end.
    pub async fn next_chunk(&mut self) -> Option<Result<Vec<u8>, Error>> {
        if self.pos < self.current.len() {
            let rest = self.current.split_off(self.pos);
            self.current.clear();
            self.pos = 0;
            return Some(Ok(rest));
        }
        self.rx.recv().await
    }
}

impl AsyncRead for FileReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        loop {
            if self.pos < self.current.len() {
                let n = buf.remaining().min(self.current.len() - self.pos);
                let pos = self.pos;
                buf.put_slice(&self.current[pos..pos + n]);
                self.pos += n;
                return Poll::Ready(Ok(()));
            }
            match self.rx.poll_recv(cx) {
                Poll::Ready(Some(Ok(bytes))) => {
                    self.current = bytes;
                    self.pos = 0;
                }
                Poll::Ready(Some(Err(e))) => {
                    let kind = match &e {
                        Error::Io { source, .. } => source.kind(),
                        _ => std::io::ErrorKind::InvalidData,
                    };
                    return Poll::Ready(Err(std::io::Error::new(kind, e)));
                }
                Poll::Ready(None) => return Poll::Ready(Ok(())),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}
