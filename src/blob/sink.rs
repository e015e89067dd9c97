//! The blocking half of a blob write: one thread per put takes the sealed
//! chunks in order and puts them on disk with plain `std::fs` calls, pushing
//! them to the device as it goes instead of all at the final `fsync`.
//!
//! Why a thread of its own rather than `tokio::fs`: `tokio::fs::File` copies
//! every write into its own buffer and sends it to the blocking pool, one
//! hop per write; here the sealed buffer moves through a channel and is
//! written where it lands.
//!
//! Why write-behind and page-cache dropping (Linux): audio is written once
//! and read rarely, and a put that leaves every byte it wrote in the page
//! cache makes the next put fill fresh memory. On the 2-vCPU VM this crate
//! is benchmarked on, writing 64 MiB and `fsync`ing it took 175 ms
//! (385 MB/s) once the page cache grew into memory the guest had not
//! touched before, against 27–33 ms with `O_DIRECT` and 34 ms with buffered
//! writes whose pages were dropped after the sync (`dd`/Python, 2026-11-25).
//! So the sink starts writeback of every chunk as soon as it is written
//! (`sync_file_range(WRITE)`, which does not wait), and every [`WINDOW`]
//! bytes waits for the window two before the current one to reach the
//! device (by then it usually has, so the sink rarely blocks) and drops its
//! pages (`posix_fadvise(DONTNEED)`) unless the caller
//! asked to keep the blob cached. Small blobs (under
//! `Config::blob_cache_limit_bytes`) stay in the page cache: re-reading a
//! just-stored clip should not touch the disk. Durability does not depend
//! on any of this: the blob is `fsync`ed before it is acknowledged.
//! Elsewhere these calls are skipped.

use std::fs::File;
use std::io::Write;
use std::path::PathBuf;

use tokio::sync::{mpsc, oneshot};

use crate::blob::format;
use crate::error::Error;

/// Bytes between two write-behind steps.
pub(crate) const WINDOW: u64 = 1 << 20;

enum Msg {
    Chunk(Vec<u8>),
    Finish {
        table: Vec<u8>,
        header: [u8; format::HEADER_LEN],
        done: oneshot::Sender<Result<u64, Error>>,
    },
}

/// The sending side, held by the async task that produces sealed chunks.
pub(crate) struct Sink {
    tx: mpsc::Sender<Msg>,
    thread: tokio::task::JoinHandle<Result<(), Error>>,
}

fn join_err(e: tokio::task::JoinError) -> Error {
    Error::io("blob writer thread", std::io::Error::other(e.to_string()))
}

impl Sink {
    /// Starts the thread writing to the new, empty `file` at `path` (first a
    /// header placeholder), with room for `depth` queued chunks.
    /// `cache_limit` is the stored size from which the blob's pages are
    /// dropped from the page cache.
    pub(crate) fn start(file: File, path: PathBuf, depth: usize, cache_limit: u64) -> Sink {
        let (tx, rx) = mpsc::channel(depth.max(1));
        let thread = tokio::task::spawn_blocking(move || run(file, &path, rx, cache_limit));
        Sink { tx, thread }
    }

    /// Queues a sealed chunk; waits while the queue is full.
    pub(crate) async fn write(&mut self, sealed: Vec<u8>) -> Result<(), Error> {
        if self.tx.send(Msg::Chunk(sealed)).await.is_err() {
            // The thread stopped early: it failed, and says why.
            return Err(self.stopped().await);
        }
        Ok(())
    }

    /// Writes the chunk table, the final header at offset 0, syncs the
    /// file and returns the stored length. The thread answers as soon as
    /// the file is durable, and drops its pages from the cache afterwards.
    pub(crate) async fn finish(
        mut self,
        table: Vec<u8>,
        header: [u8; format::HEADER_LEN],
    ) -> Result<u64, Error> {
        let (done, answer) = oneshot::channel();
        if self
            .tx
            .send(Msg::Finish {
                table,
                header,
                done,
            })
            .await
            .is_err()
        {
            return Err(self.stopped().await);
        }
        match answer.await {
            Ok(result) => result,
            Err(_) => Err(self.stopped().await),
        }
    }

    async fn stopped(&mut self) -> Error {
        match (&mut self.thread).await {
            Ok(Err(e)) => e,
            Ok(Ok(())) => Error::io(
                "blob writer thread",
                std::io::Error::other("stopped before the end"),
            ),
            Err(e) => join_err(e),
        }
    }
}

fn run(
    mut file: File,
    path: &std::path::Path,
    mut rx: mpsc::Receiver<Msg>,
    cache_limit: u64,
) -> Result<(), Error> {
    let io = |what: &str, e| Error::io(format!("{what} {}", path.display()), e);
    file.write_all(&[0u8; format::HEADER_LEN])
        .map_err(|e| io("writing", e))?;
    let mut written = format::HEADER_LEN as u64;
    // Window boundaries: `[settled, behind)` is the oldest window not yet
    // waited for, `[behind, head)` the next; the current one starts at
    // `head`. Waiting two windows behind the head rarely blocks.
    let (mut settled, mut behind, mut head) = (0u64, 0u64, 0u64);
    while let Some(msg) = rx.blocking_recv() {
        match msg {
            Msg::Chunk(sealed) => {
                file.write_all(&sealed).map_err(|e| io("writing", e))?;
                let from = written;
                written += sealed.len() as u64;
                start_writeback(&file, from, written);
                if written - head >= WINDOW {
                    settle(&file, settled, behind, written >= cache_limit);
                    (settled, behind, head) = (behind, head, written);
                }
            }
            Msg::Finish {
                table,
                header,
                done,
            } => {
                let result = finish_file(&mut file, &table, &header, written)
                    .map_err(|(what, e)| io(what, e));
                let stored = result.as_ref().ok().copied();
                let _ = done.send(result);
                if stored.is_some_and(|n| n >= cache_limit) {
                    drop_cached(&file, 0, 0);
                }
                return Ok(());
            }
        }
    }
    // The producer went away (an error or a cancelled put): the caller
    // removes the file.
    Err(Error::io(
        "writing a blob",
        std::io::Error::other("cancelled before the end"),
    ))
}

/// The end of a blob: chunk table, real header, `fsync`. Returns the
/// stored length.
fn finish_file(
    file: &mut File,
    table: &[u8],
    header: &[u8],
    written: u64,
) -> Result<u64, (&'static str, std::io::Error)> {
    file.write_all(table).map_err(|e| ("writing", e))?;
    write_header(file, header).map_err(|e| ("writing", e))?;
    file.sync_all().map_err(|e| ("syncing", e))?;
    Ok(written + table.len() as u64)
}

#[cfg(unix)]
fn write_header(file: &File, header: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    file.write_all_at(header, 0)
}

#[cfg(not(unix))]
fn write_header(file: &File, header: &[u8]) -> std::io::Result<()> {
    use std::io::{Seek, SeekFrom};
    let mut f = file;
    let end = f.stream_position()?;
    f.seek(SeekFrom::Start(0))?;
    f.write_all(header)?;
    f.seek(SeekFrom::Start(end))?;
    Ok(())
}

/// Starts writeback of `[start, end)` without waiting. Like the other
/// hints here, failures are ignored: the final `fsync` reports real errors.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn start_writeback(file: &File, start: u64, end: u64) {
    use std::os::fd::AsRawFd;
    let (Ok(start), Ok(end)) = (i64::try_from(start), i64::try_from(end)) else {
        return;
    };
    // SAFETY: a plain syscall on a borrowed file descriptor; no memory is
    // passed.
    unsafe {
        libc::sync_file_range(
            file.as_raw_fd(),
            start,
            end - start,
            libc::SYNC_FILE_RANGE_WRITE,
        );
    }
}

/// Waits for `[start, end)` to reach the device, then drops it from the
/// page cache if `drop_pages`.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn settle(file: &File, start: u64, end: u64, drop_pages: bool) {
    use std::os::fd::AsRawFd;
    let (Ok(start), Ok(end)) = (i64::try_from(start), i64::try_from(end)) else {
        return;
    };
    if end <= start {
        return;
    }
    // SAFETY: a plain syscall on a borrowed file descriptor; no memory is
    // passed.
    unsafe {
        libc::sync_file_range(
            file.as_raw_fd(),
            start,
            end - start,
            libc::SYNC_FILE_RANGE_WAIT_BEFORE
                | libc::SYNC_FILE_RANGE_WRITE
                | libc::SYNC_FILE_RANGE_WAIT_AFTER,
        );
    }
    if drop_pages {
        drop_cached(file, start, end - start);
    }
}

#[cfg(not(target_os = "linux"))]
fn start_writeback(_file: &File, _start: u64, _end: u64) {}

#[cfg(not(target_os = "linux"))]
fn settle(_file: &File, _start: u64, _end: u64, _drop_pages: bool) {}

/// Drops a file's pages that are on disk from the page cache (`len` 0: to
/// the end of the file).
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn drop_cached(file: &File, offset: i64, len: i64) {
    use std::os::fd::AsRawFd;
    // SAFETY: a plain syscall on a borrowed file descriptor.
    unsafe {
        libc::posix_fadvise(file.as_raw_fd(), offset, len, libc::POSIX_FADV_DONTNEED);
    }
}

#[cfg(not(target_os = "linux"))]
fn drop_cached(_file: &File, _offset: i64, _len: i64) {}
