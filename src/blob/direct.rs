//! Direct I/O for the bulk of a large blob (Linux `O_DIRECT`).
//!
//! Why: a buffered write copies every byte into the page cache, and the
//! sink then has to push those pages out and drop them again; on the
//! 2-vCPU VM this crate is benchmarked on, that cost ~1.6 ms of CPU per
//! 4 MiB (write 1.15 ms, writeback kicks 0.5 ms, measured inside the sink
//! on 2026-11-25), on the same two cores that hash and seal. Written with
//! `O_DIRECT` in 1 MiB blocks, the same 4 MiB took the same wall time
//! (2.1–2.7 ms with create and `fdatasync`) for ~0.3 ms of CPU instead of
//! ~1.2 ms (Python loop, same disk, same day).
//!
//! How: sealed chunks are copied into a block-aligned 1 MiB staging
//! buffer, written with `pwrite` when full; of the last, partial buffer the
//! whole blocks are written directly and the final partial block through
//! the page cache.
//! The sink writes the start of every blob through the page cache (so small
//! blobs stay cached, and the header at offset 0 can be patched in memory)
//! and switches here once a blob passes its cache limit. A filesystem that
//! refuses direct I/O (`EINVAL`, at open or at the first write) gets the
//! same bytes through an ordinary descriptor; durability never depends on
//! this module: the sink `fsync`s the file before the blob is acknowledged.

use std::fs::File;
use std::io;
use std::path::Path;
use std::sync::Mutex;

/// Alignment of direct writes: offsets, lengths and buffer addresses.
pub(crate) const BLOCK: usize = 4096;
/// Bytes staged per direct write.
pub(crate) const STAGE: usize = 1 << 20;

/// Staging buffers kept for later puts, at most [`SPARES`]: a fresh one is
/// ~260 page faults to touch.
static SPARE: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());
const SPARES: usize = 2;

fn take_buffer() -> Vec<u8> {
    if let Ok(mut spare) = SPARE.lock()
        && let Some(buf) = spare.pop()
    {
        return buf;
    }
    vec![0u8; STAGE + BLOCK]
}

/// Writes a file from a block-aligned offset onwards, directly when it can.
pub(crate) struct DirectWriter {
    /// The `O_DIRECT` descriptor, until a write is refused.
    direct: Option<File>,
    /// An ordinary descriptor on the same file, for the fallback.
    plain: File,
    /// `STAGE + BLOCK` bytes; the aligned stage starts at `start`.
    buf: Vec<u8>,
    start: usize,
    /// Bytes staged.
    fill: usize,
    /// File offset of the first staged byte (block-aligned).
    offset: u64,
    /// Bytes written with direct I/O so far.
    direct_bytes: u64,
}

impl DirectWriter {
    /// Opens `path` for direct writes starting at `offset` (a multiple of
    /// [`BLOCK`]) with `carry` already staged: the bytes from `offset` to
    /// where the caller's ordinary writes stopped. `None` when the platform
    /// or filesystem has no direct I/O, or `offset` is not aligned.
    pub(crate) fn open(path: &Path, plain: &File, offset: u64, carry: &[u8]) -> Option<Self> {
        if !offset.is_multiple_of(BLOCK as u64) || carry.len() >= STAGE {
            return None;
        }
        let direct = open_direct(path)?;
        let plain = plain.try_clone().ok()?;
        let mut buf = take_buffer();
        let start = buf.as_ptr().align_offset(BLOCK);
        if start > BLOCK {
            return None;
        }
        buf[start..start + carry.len()].copy_from_slice(carry);
        Some(DirectWriter {
            direct: Some(direct),
            plain,
            buf,
            start,
            fill: carry.len(),
            offset,
            direct_bytes: 0,
        })
    }

    /// Whether writes still go around the page cache.
    #[cfg(test)]
    pub(crate) fn is_direct(&self) -> bool {
        self.direct.is_some()
    }

    /// Appends `data`, writing each full stage as it fills.
    pub(crate) fn push(&mut self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            let n = (STAGE - self.fill).min(data.len());
            let at = self.start + self.fill;
            self.buf[at..at + n].copy_from_slice(&data[..n]);
            self.fill += n;
            data = &data[n..];
            if self.fill == STAGE {
                self.write_stage(STAGE)?;
                self.offset += STAGE as u64;
                self.fill = 0;
            }
        }
        Ok(())
    }

    /// Writes the whole blocks staged so far without waiting for a full
    /// stage (the sink calls this when no chunk is waiting, so the device
    /// keeps busy and little is left to write at the end); the partial
    /// block stays staged.
    pub(crate) fn flush(&mut self) -> io::Result<()> {
        let whole = self.fill - self.fill % BLOCK;
        if whole == 0 {
            return Ok(());
        }
        self.write_stage(whole)?;
        let (from, to) = (self.start + whole, self.start + self.fill);
        self.buf.copy_within(from..to, self.start);
        self.offset += whole as u64;
        self.fill -= whole;
        Ok(())
    }

    /// Writes the whole blocks still staged and returns the rest: the
    /// file offset and bytes of the last, partial block, which the caller
    /// writes through the page cache (padding it and cutting the file back
    /// would cost a truncate, which ext4 journals), and how many bytes went
    /// around the page cache in all.
    pub(crate) fn finish(mut self) -> io::Result<(u64, Vec<u8>, u64)> {
        let whole = self.fill - self.fill % BLOCK;
        if whole > 0 {
            self.write_stage(whole)?;
        }
        let at = self.start + whole;
        let tail = self.buf[at..self.start + self.fill].to_vec();
        Ok((self.offset + whole as u64, tail, self.direct_bytes))
    }

    #[cfg(not(unix))]
    fn write_stage(&mut self, _len: usize) -> io::Result<()> {
        Err(io::ErrorKind::Unsupported.into())
    }

    #[cfg(unix)]
    fn write_stage(&mut self, len: usize) -> io::Result<()> {
        use std::os::unix::fs::FileExt;
        let stage = &self.buf[self.start..self.start + len];
        if let Some(direct) = &self.direct {
            match direct.write_all_at(stage, self.offset) {
                Ok(()) => {
                    self.direct_bytes += len as u64;
                    return Ok(());
                }
                // Direct I/O refused after all: the same bytes, buffered.
                Err(e) if e.kind() == io::ErrorKind::InvalidInput => self.direct = None,
                Err(e) => return Err(e),
            }
        }
        self.plain.write_all_at(stage, self.offset)
    }
}

impl Drop for DirectWriter {
    fn drop(&mut self) {
        let buf = std::mem::take(&mut self.buf);
        if let Ok(mut spare) = SPARE.lock()
            && spare.len() < SPARES
        {
            spare.push(buf);
        }
    }
}

#[cfg(target_os = "linux")]
fn open_direct(path: &Path) -> Option<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_DIRECT)
        .open(path)
        .ok()
}

#[cfg(not(target_os = "linux"))]
fn open_direct(_path: &Path) -> Option<File> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// Writes `total` bytes: `head` buffered, the rest through a
    /// `DirectWriter` from the last block boundary; returns the file.
    fn round_trip(total: usize, head: usize) {
        let dir = scratch();
        let path = dir.path().join("blob");
        let data: Vec<u8> = (0..total).map(|i| (i * 31 % 251) as u8).collect();
        let mut plain = File::create(&path).unwrap();
        plain.write_all(&data[..head]).unwrap();
        let aligned = head - head % BLOCK;
        let mut w = DirectWriter::open(&path, &plain, aligned as u64, &data[aligned..head])
            .expect("direct I/O");
        // The target directory sits on the checkout's filesystem (ext4
        // here); all the usual Linux ones take O_DIRECT.
        #[cfg(target_os = "linux")]
        assert!(w.is_direct(), "O_DIRECT was refused");
        for piece in data[head..].chunks(100_003) {
            w.push(piece).unwrap();
        }
        #[cfg(target_os = "linux")]
        assert!(w.is_direct(), "a direct write was refused");
        let (at, tail, direct) = w.finish().unwrap();
        assert_eq!(at + tail.len() as u64, total as u64);
        #[cfg(target_os = "linux")]
        assert_eq!(direct, at - aligned as u64, "every whole block went direct");
        assert!(at.is_multiple_of(BLOCK as u64) && tail.len() < BLOCK);
        std::os::unix::fs::FileExt::write_all_at(&plain, &tail, at).unwrap();
        let back = std::fs::read(&path).unwrap();
        assert_eq!(back.len(), total);
        assert!(back == data, "file differs from what was written");
    }

    /// A directory under `target/`, on the checkout's filesystem.
    fn scratch() -> tempfile::TempDir {
        let base = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target");
        std::fs::create_dir_all(&base).unwrap();
        tempfile::tempdir_in(base).unwrap()
    }

    #[test]
    fn direct_writes_round_trip_at_odd_sizes() {
        round_trip(3 * STAGE + 12_345, STAGE + 40);
        round_trip(2 * STAGE, STAGE);
        round_trip(STAGE + 1, 4096 * 3 + 7);
        round_trip(5000, 100);
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn a_refused_direct_write_falls_back_to_the_page_cache() {
        let dir = scratch();
        let path = dir.path().join("blob");
        let data: Vec<u8> = (0..3 * STAGE + 99).map(|i| (i % 253) as u8).collect();
        let plain = File::create(&path).unwrap();
        let mut w = DirectWriter::open(&path, &plain, 0, &[]).expect("direct I/O");
        // A stage one byte off its alignment: the kernel refuses the write
        // with EINVAL, as a filesystem without direct I/O would.
        w.start += 1;
        w.push(&data).unwrap();
        assert!(!w.is_direct(), "the refused write switched to buffered");
        let (at, tail, direct) = w.finish().unwrap();
        assert_eq!(direct, 0);
        std::os::unix::fs::FileExt::write_all_at(&plain, &tail, at).unwrap();
        assert!(std::fs::read(&path).unwrap() == data);
    }

    #[test]
    fn unaligned_offset_is_refused() {
        let dir = scratch();
        let path = dir.path().join("f");
        let plain = File::create(&path).unwrap();
        assert!(DirectWriter::open(&path, &plain, 100, &[]).is_none());
    }
}
