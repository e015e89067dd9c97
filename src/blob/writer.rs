//! Streaming a file into a blob in `tmp/`: read a chunk, hash it, hand it
//! to the blocking pool to compress and seal, write sealed chunks in order.
//!
//! Memory stays bounded: at most `depth` chunks are being sealed, plus the
//! one being read and one of lookahead (needed to know which chunk is the
//! last). Hashing and I/O run on the calling task while earlier chunks are
//! compressed and sealed on other threads, so both cores work on a large
//! file.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hmac::{KeyInit, Mac};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::blob::crypto::{ChunkSealer, FRAME_SLACK, SecretKey, encode_chunk, random_bytes};
use crate::blob::format::{self, Cipher, Header};
use crate::blob::sink::Sink;
use crate::error::Error;
use crate::types::BlobAddress;

/// How to write one blob.
pub(crate) struct WriteSpec {
    pub(crate) cipher: Cipher,
    pub(crate) level: Option<i32>,
    pub(crate) chunk_size: u32,
    pub(crate) key_version: u32,
    pub(crate) data_key: Option<SecretKey>,
    pub(crate) depth: usize,
    /// Stored size from which the blob leaves the page cache once written.
    pub(crate) cache_limit: u64,
}

/// A blob whose input was read and hashed; its last chunks may still be on
/// their way to disk. [`finish`](Self::finish) makes it durable. Knowing the
/// hash first lets the caller prepare the blob's directory meanwhile.
pub(crate) struct PendingBlob {
    pub(crate) sha256: [u8; 32],
    pub(crate) plain_len: u64,
    inflight: VecDeque<SealJob>,
    lengths: Vec<u32>,
    sink: Sink,
    header: [u8; format::HEADER_LEN],
    guard: TmpGuard,
}

impl PendingBlob {
    /// Waits for the blob to be written and synced in `tmp/`.
    pub(crate) async fn finish(self) -> Result<WrittenBlob, Error> {
        let PendingBlob {
            sha256,
            plain_len,
            inflight,
            mut lengths,
            mut sink,
            header,
            mut guard,
        } = self;
        for job in inflight {
            write_sealed(job, &mut lengths, &mut sink).await?;
        }
        let table = format::encode_table(&lengths);
        let stored_len = sink.finish(table, header).await?;
        let tmp_path = guard.0.take().ok_or_else(|| {
            Error::io(
                "writing a blob",
                std::io::Error::other("temporary file lost"),
            )
        })?;
        Ok(WrittenBlob {
            tmp_path,
            plain_len,
            stored_len,
            sha256,
        })
    }
}

/// A blob written and synced in `tmp/`, not yet in place.
#[derive(Debug)]
pub(crate) struct WrittenBlob {
    pub(crate) tmp_path: PathBuf,
    pub(crate) plain_len: u64,
    pub(crate) stored_len: u64,
    pub(crate) sha256: [u8; 32],
}

/// Removes the temporary file unless disarmed (errors and cancellation).
struct TmpGuard(Option<PathBuf>);

impl Drop for TmpGuard {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Reads up to `size` bytes into a fresh chunk buffer laid out for
/// [`encode_chunk`]: one spare byte in front of the data, room for the tag
/// behind, nothing zero-filled. Fewer than `size` bytes means the input
/// ended.
async fn read_chunk<R: AsyncRead + Unpin>(reader: &mut R, size: usize) -> Result<Vec<u8>, Error> {
    let mut buf = Vec::with_capacity(size + FRAME_SLACK);
    buf.push(0u8);
    let end = size + 1;
    while buf.len() < end {
        let want = (end - buf.len()) as u64;
        let n = (&mut *reader)
            .take(want)
            .read_buf(&mut buf)
            .await
            .map_err(|e| Error::io("reading the input", e))?;
        if n == 0 {
            break;
        }
    }
    Ok(buf)
}

fn join_err(e: tokio::task::JoinError) -> Error {
    Error::io("sealing a chunk", std::io::Error::other(e.to_string()))
}

/// Streams `reader` into a new blob file in `tmp_dir`; returns once all of
/// it is read and hashed (see [`PendingBlob`]).
pub(crate) async fn write_blob<R: AsyncRead + Unpin>(
    tmp_dir: &Path,
    mut reader: R,
    spec: WriteSpec,
    progress: &(dyn Fn(u64) + Send + Sync),
) -> Result<PendingBlob, Error> {
    let name = crate::types::to_hex(&random_bytes::<16>()?);
    let tmp_path = tmp_dir.join(format!("{name}.part"));
    let guard = TmpGuard(Some(tmp_path.clone()));
    let io = |what: &str, e| Error::io(format!("{what} {}", tmp_path.display()), e);
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp_path)
        .map_err(|e| io("creating", e))?;
    let mut header = Header {
        cipher: spec.cipher,
        compressed: spec.level.is_some(),
        chunk_size: spec.chunk_size,
        plain_len: 0,
        key_version: spec.key_version,
        nonce_prefix: random_bytes::<{ format::PREFIX_LEN }>()?,
    };
    let mut sink = Sink::start(file, tmp_path.clone(), spec.depth, spec.cache_limit);
    let sealer = Arc::new(ChunkSealer::new(header, spec.data_key.as_ref())?);
    let chunk = spec.chunk_size as usize;
    let mut hasher = Sha256::new();
    let mut inflight: VecDeque<SealJob> = VecDeque::new();
    let mut lengths: Vec<u32> = Vec::new();
    let mut total: u64 = 0;
    // `cur` and `next` hold one spare byte before the data (see read_chunk).
    let mut cur = read_chunk(&mut reader, chunk).await?;
    let mut index: u32 = 0;
    loop {
        let data_len = cur.len().saturating_sub(1);
        hasher.update(cur.get(1..).unwrap_or_default());
        total += data_len as u64;
        let next = if data_len < chunk {
            Vec::new()
        } else {
            read_chunk(&mut reader, chunk).await?
        };
        let last = next.len() <= 1;
        let job_sealer = if last {
            header.plain_len = total;
            Arc::new(ChunkSealer::new(header, spec.data_key.as_ref())?)
        } else {
            Arc::clone(&sealer)
        };
        let level = spec.level;
        let data = std::mem::replace(&mut cur, next);
        inflight.push_back(tokio::task::spawn_blocking(move || {
            job_sealer.seal(index, last, encode_chunk(data, level))
        }));
        while inflight.len() >= spec.depth.max(1) {
            let Some(job) = inflight.pop_front() else {
                break;
            };
            write_sealed(job, &mut lengths, &mut sink).await?;
        }
        progress(total);
        if last {
            break;
        }
        index = index
            .checked_add(1)
            .ok_or_else(|| Error::invalid("file", "too many chunks for one blob"))?;
    }
    Ok(PendingBlob {
        sha256: hasher.finalize().into(),
        plain_len: total,
        inflight,
        lengths,
        sink,
        header: header.encode(true),
        guard,
    })
}

type SealJob = tokio::task::JoinHandle<Result<Vec<u8>, Error>>;

/// Waits for one sealed chunk and hands it to the sink.
async fn write_sealed(job: SealJob, lengths: &mut Vec<u32>, sink: &mut Sink) -> Result<(), Error> {
    let sealed = job.await.map_err(join_err)??;
    lengths.push(
        u32::try_from(sealed.len())
            .map_err(|_| Error::invalid("chunk", "sealed chunk over 4 GiB"))?,
    );
    sink.write(sealed).await
}

/// The content address: HMAC-SHA256 under the owner's address key over the
/// plaintext's SHA-256 and the storage parameters (so the data is hashed
/// once, and the same bytes stored differently get different blobs).
pub(crate) fn address(
    address_key: &SecretKey,
    sha256: &[u8; 32],
    cipher: Cipher,
    level: Option<i32>,
    chunk_size: u32,
) -> Result<BlobAddress, Error> {
    let mut mac = <hmac::Hmac<Sha256> as KeyInit>::new_from_slice(address_key.bytes())
        .map_err(|_| Error::invalid("address key", "HMAC refused the key"))?;
    mac.update(b"bharatvoice-store/address/v1");
    mac.update(sha256);
    mac.update(&[cipher as u8, u8::from(level.is_some())]);
    mac.update(&level.unwrap_or(0).to_le_bytes());
    mac.update(&chunk_size.to_le_bytes());
    Ok(BlobAddress(mac.finalize().into_bytes().into()))
}

/// Where a blob lives: `blobs/ab/cd/<64 hex>`, built only from the address.
pub(crate) fn blob_path(blobs_dir: &Path, address: BlobAddress) -> PathBuf {
    let hex = address.to_string();
    blobs_dir.join(&hex[0..2]).join(&hex[2..4]).join(hex)
}
