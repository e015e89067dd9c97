//! The blocking half of a blob write: one thread per put creates the file,
//! takes the sealed chunks in order and puts them on disk with plain
//! `std::fs` calls, pushing them to the device as it goes instead of all at
//! the final `fsync`.
//!
//! Why a thread of its own rather than `tokio::fs`: `tokio::fs::File` copies
//! every write into its own buffer and sends it to the blocking pool, one
//! hop per write; here the sealed buffer moves through a channel and is
//! written where it lands. The thread also creates the file, so the caller
//! starts hashing at once (an ext4 create took 0.1–0.7 ms here).
//!
//! Why not through the page cache (Linux): audio is written once and read
//! rarely, and a put that leaves every byte it wrote in the page cache
//! makes the next put fill fresh memory. On the 2-vCPU VM this crate is
//! benchmarked on, writing 64 MiB and `fsync`ing it took 175 ms (385 MB/s)
//! once the page cache grew into memory the guest had not touched before,
//! against 27–33 ms with `O_DIRECT` and 34 ms with buffered writes whose
//! pages were dropped after the sync (`dd`/Python, 2026-11-25); and copying
//! into the cache cost ~1.6 ms of CPU per 4 MiB on the cores that hash and
//! seal. So the first `max(Config::blob_cache_limit_bytes, 1 MiB)` of a
//! blob are written through the page cache, with writeback started after
//! every chunk (`sync_file_range(WRITE)`, which does not wait) and, every
//! [`WINDOW`] bytes, the window two behind waited for (it is usually done)
//! and dropped (`posix_fadvise(DONTNEED)`) when the blob is past its cache
//! limit; the rest goes around the cache with direct writes (see
//! [`direct`](crate::blob::direct)), written as soon as no chunk is waiting.
//! Blobs under the limit stay cached: re-reading a just-stored clip should
//! not touch the disk; larger ones are dropped from the cache after the
//! `fsync`. Durability does not depend on any of this: the blob is
//! `fsync`ed before it is acknowledged. Elsewhere than Linux these calls are
//! skipped and every write is buffered.
//!
//! With object storage the file is only a staging copy (see
//! [`Sink::start`]): the upload reads it back at once and deletes it, and
//! the object the server acknowledged is what is durable, so none of the
//! above applies: plain buffered writes, no `fsync` (it halved a 4 MiB put
//! to a local Ceph gateway: 55.5 ms to 28.5 ms).

use std::fs::File;
use std::io::Write;
use std::path::PathBuf;

use tokio::sync::{mpsc, oneshot};

use crate::blob::direct::{BLOCK, DirectWriter, STAGE};
use crate::blob::format;
use crate::error::Error;

/// Bytes between two write-behind steps.
pub(crate) const WINDOW: u64 = 1 << 20;

enum Msg {
    Chunk(Vec<u8>),
    Finish {
        table: Vec<u8>,
        header: [u8; format::HEADER_LEN],
        done: oneshot::Sender<Result<Stored, Error>>,
    },
}

/// What the sink put on disk.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Stored {
    /// Length of the file.
    pub(crate) len: u64,
    /// Bytes of it written around the page cache.
    pub(crate) direct: u64,
}

/// The sending side, held by the async task that produces sealed chunks.
pub(crate) struct Sink {
    tx: mpsc::Sender<Msg>,
    thread: tokio::task::JoinHandle<Result<(), Error>>,
}

/// Queues sealed chunks from a blocking thread (see [`Sink::chunk_sender`]).
pub(crate) struct ChunkSender(mpsc::Sender<Msg>);

impl ChunkSender {
    /// Queues a sealed chunk, blocking while the queue is full; `false`
    /// when the writer thread has stopped (its error comes from
    /// [`Sink::finish`]).
    pub(crate) fn write(&self, sealed: Vec<u8>) -> bool {
        self.0.blocking_send(Msg::Chunk(sealed)).is_ok()
    }
}

impl Sink {
    /// Starts the thread that creates the new file at `path` (creating it
    /// there lets the caller start hashing at once: on ext4 a create took
    /// 0.1–0.7 ms) and writes to it, first a header placeholder; with room
    /// for `depth` queued chunks.
    /// `cache_limit` is the stored size from which the blob's pages are
    /// dropped from the page cache.
    /// With `for_upload` the file is only a staging copy that an upload
    /// reads back at once and then deletes (a remote backend): it stays in
    /// the page cache, no writeback is started and it is not synced; the
    /// object the upload makes is what is durable.
    pub(crate) fn start(path: PathBuf, depth: usize, cache_limit: u64, for_upload: bool) -> Sink {
        let (tx, rx) = mpsc::channel(depth.max(1));
        let thread = tokio::task::spawn_blocking(move || {
            let result = if for_upload {
                run_staging(&path, rx)
            } else {
                run(&path, rx, cache_limit)
            };
            if result.is_err() {
                // Also covers a put cancelled before the file existed, when
                // the caller's clean-up found nothing to remove.
                let _ = std::fs::remove_file(&path);
            }
            result
        });
        Sink { tx, thread }
    }

    /// A handle for a blocking thread that queues sealed chunks itself.
    pub(crate) fn chunk_sender(&self) -> ChunkSender {
        ChunkSender(self.tx.clone())
    }

    /// Writes the chunk table, the final header at offset 0, syncs the
    /// file and says what was stored. The thread answers as soon as
    /// the file is durable, and drops its pages from the cache afterwards.
    pub(crate) async fn finish(
        mut self,
        table: Vec<u8>,
        header: [u8; format::HEADER_LEN],
    ) -> Result<Stored, Error> {
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

    /// The writer thread's error, once it has stopped.
    pub(crate) async fn stopped(&mut self) -> Error {
        match (&mut self.thread).await {
            Ok(Err(e)) => e,
            Ok(Ok(())) => Error::io(
                "blob writer thread",
                std::io::Error::other("stopped before the end"),
            ),
            Err(e) => Error::join("blob writer thread", e),
        }
    }
}

fn run(path: &std::path::Path, mut rx: mpsc::Receiver<Msg>, cache_limit: u64) -> Result<(), Error> {
    let io = |what: &str, e| Error::io(format!("{what} {}", path.display()), e);
    let mut file = create(path).map_err(|e| io("creating", e))?;
    let mut written = format::HEADER_LEN as u64;
    // Window boundaries: `[settled, behind)` is the oldest window not yet
    // waited for, `[behind, head)` the next; the current one starts at
    // `head`. Waiting two windows behind the head rarely blocks.
    let (mut settled, mut behind, mut head) = (0u64, 0u64, 0u64);
    // From this size on, the rest of the blob goes around the page cache.
    let mut direct_from = cache_limit.max(STAGE as u64);
    let mut direct: Option<DirectWriter> = None;
    while let Some(msg) = rx.blocking_recv() {
        match msg {
            Msg::Chunk(sealed) => {
                if let Some(d) = direct.as_mut() {
                    d.push(&sealed).map_err(|e| io("writing", e))?;
                    written += sealed.len() as u64;
                    if rx.is_empty() {
                        d.flush().map_err(|e| io("writing", e))?;
                    }
                    continue;
                }
                file.write_all(&sealed).map_err(|e| io("writing", e))?;
                let from = written;
                written += sealed.len() as u64;
                crate::fsutil::start_writeback(&file, from, written);
                if written >= direct_from {
                    match go_direct(path, &file, written, &sealed) {
                        Switch::Now(d) => direct = Some(d),
                        Switch::Later => {}
                        Switch::Never => direct_from = u64::MAX,
                    }
                } else if written - head >= WINDOW {
                    settle(&file, settled, behind, written >= cache_limit);
                    (settled, behind, head) = (behind, head, written);
                }
            }
            Msg::Finish {
                table,
                header,
                done,
            } => {
                let result = finish_file(&mut file, direct, &table, &header, written)
                    .map_err(|(what, e)| io(what, e));
                let stored = result.as_ref().ok().map(|s| s.len);
                let _ = done.send(result);
                if stored.is_some_and(|n| n >= cache_limit) {
                    drop_cached(&file, 0, 0);
                }
                return Ok(());
            }
        }
    }
    Err(cancelled())
}

/// [`run`] for a staging copy: buffered writes, no hints, no `fsync`.
fn run_staging(path: &std::path::Path, mut rx: mpsc::Receiver<Msg>) -> Result<(), Error> {
    let io = |what: &str, e| Error::io(format!("{what} {}", path.display()), e);
    let mut file = create(path).map_err(|e| io("creating", e))?;
    let mut written = format::HEADER_LEN as u64;
    while let Some(msg) = rx.blocking_recv() {
        match msg {
            Msg::Chunk(sealed) => {
                file.write_all(&sealed).map_err(|e| io("writing", e))?;
                written += sealed.len() as u64;
            }
            Msg::Finish {
                table,
                header,
                done,
            } => {
                let result = file
                    .write_all(&table)
                    .and_then(|()| write_header(&file, &header))
                    .map(|()| Stored {
                        len: written + table.len() as u64,
                        direct: 0,
                    })
                    .map_err(|e| io("writing", e));
                let _ = done.send(result);
                return Ok(());
            }
        }
    }
    Err(cancelled())
}

/// Creates the file at `path`, readable by its owner only, and writes a
/// header placeholder.
fn create(path: &std::path::Path) -> std::io::Result<File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(&[0u8; format::HEADER_LEN])?;
    Ok(file)
}

/// The producer went away (an error or a cancelled put); the file is
/// removed (see `Sink::start`).
fn cancelled() -> Error {
    Error::io(
        "writing a blob",
        std::io::Error::other("cancelled before the end"),
    )
}

/// Whether the sink goes on with direct writes.
enum Switch {
    Now(DirectWriter),
    /// Not with this chunk: the bytes since the last block boundary are
    /// not all in it (tiny compressed chunks); try again after the next.
    Later,
    /// The platform or filesystem has no direct I/O.
    Never,
}

/// Continues the blob at `path` with direct writes from the last block
/// boundary at or before `written`; the bytes past that boundary, the tail
/// of `last` (the chunk just written), are staged again.
fn go_direct(path: &std::path::Path, file: &File, written: u64, last: &[u8]) -> Switch {
    let aligned = written - written % BLOCK as u64;
    let tail = usize::try_from(written - aligned)
        .ok()
        .and_then(|carry| last.len().checked_sub(carry))
        .and_then(|from| last.get(from..));
    match tail {
        None => Switch::Later,
        Some(tail) => match DirectWriter::open(path, file, aligned, tail) {
            Some(d) => Switch::Now(d),
            None => Switch::Never,
        },
    }
}

/// The end of a blob: chunk table, real header, `fsync`.
fn finish_file(
    file: &mut File,
    direct: Option<DirectWriter>,
    table: &[u8],
    header: &[u8],
    written: u64,
) -> Result<Stored, (&'static str, std::io::Error)> {
    let len = written + table.len() as u64;
    let direct = match direct {
        Some(mut d) => {
            d.push(table).map_err(|e| ("writing", e))?;
            let (at, tail, direct) = d.finish().map_err(|e| ("writing", e))?;
            write_at(file, &tail, at).map_err(|e| ("writing", e))?;
            direct
        }
        None => {
            file.write_all(table).map_err(|e| ("writing", e))?;
            0
        }
    };
    write_header(file, header).map_err(|e| ("writing", e))?;
    file.sync_all().map_err(|e| ("syncing", e))?;
    Ok(Stored { len, direct })
}

fn write_header(file: &File, header: &[u8]) -> std::io::Result<()> {
    write_at(file, header, 0)
}

#[cfg(unix)]
fn write_at(file: &File, bytes: &[u8], at: u64) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    file.write_all_at(bytes, at)
}

#[cfg(not(unix))]
fn write_at(file: &File, bytes: &[u8], at: u64) -> std::io::Result<()> {
    use std::io::{Seek, SeekFrom};
    let mut f = file;
    let end = f.stream_position()?;
    f.seek(SeekFrom::Start(at))?;
    f.write_all(bytes)?;
    f.seek(SeekFrom::Start(end))?;
    Ok(())
}

/// Waits for `[start, end)` to reach the device, then drops it from the
/// page cache if `drop_pages`.
#[cfg(target_os = "linux")]
fn settle(file: &File, start: u64, end: u64, drop_pages: bool) {
    if end <= start {
        return;
    }
    crate::fsutil::sync_range(
        file,
        start,
        end,
        libc::SYNC_FILE_RANGE_WAIT_BEFORE
            | libc::SYNC_FILE_RANGE_WRITE
            | libc::SYNC_FILE_RANGE_WAIT_AFTER,
    );
    if drop_pages {
        let (Ok(offset), Ok(len)) = (i64::try_from(start), i64::try_from(end - start)) else {
            return;
        };
        drop_cached(file, offset, len);
    }
}

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
