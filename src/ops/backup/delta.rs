//! The metadata parts of a local backup: a *base* (a copy of `store.redb`
//! byte for byte) and *deltas* (the pages that changed after it), applied
//! in order on restore.
//!
//! A delta file, little-endian:
//!
//! ```text
//! "BVDELTA1"                              8 bytes, the magic
//! then records, in the order they apply:
//!   0x01 | offset u64 | len u32 | len bytes   these bytes of the file at offset
//!   0x00 | file_len u64                       the end: the file's length
//! ```
//!
//! A later record over the same bytes wins (a page copied while it was
//! written is copied again after). A record is at most [`MAX_RUN`] bytes,
//! at an offset below [`MAX_FILE`]; nothing may follow the end record. The
//! part's size and SHA-256 are in the manifest (under its MAC), checked
//! before the part is read, so a delta that parses is also one the backup
//! wrote; the parser still refuses anything else with an error, never a
//! panic.

use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::Error;
use crate::ops::backup::copy::io;
use crate::ops::backup::manifest::FileDigest;

const MAGIC: &[u8; 8] = b"BVDELTA1";
/// The largest run one record holds.
pub(crate) const MAX_RUN: u64 = 1 << 20;
/// The largest metadata file a delta describes (1 TiB).
const MAX_FILE: u64 = 1 << 40;

/// Writes a part (base or delta) to a file, counting and hashing.
pub(crate) struct PartWriter {
    file: File,
    path: PathBuf,
    hash: Sha256,
    bytes: u64,
}

impl PartWriter {
    /// A new part at `path` (a new file, mode 0600).
    pub(crate) fn create(path: &Path) -> Result<PartWriter, Error> {
        Ok(PartWriter {
            file: crate::ops::backup::copy::create(path)?,
            path: path.to_path_buf(),
            hash: Sha256::new(),
            bytes: 0,
        })
    }

    /// A new delta at `path`: its magic written.
    pub(crate) fn delta(path: &Path) -> Result<PartWriter, Error> {
        let mut w = PartWriter::create(path)?;
        w.put(MAGIC)?;
        Ok(w)
    }

    /// Appends raw bytes (a base is written this way).
    pub(crate) fn put(&mut self, data: &[u8]) -> Result<(), Error> {
        self.file
            .write_all(data)
            .map_err(io("writing", &self.path))?;
        self.hash.update(data);
        self.bytes += data.len() as u64;
        Ok(())
    }

    /// Appends delta records for `len` bytes of `src` at `offset` (one per
    /// [`MAX_RUN`] bytes), read through `buf`.
    pub(crate) fn run(
        &mut self,
        src: &File,
        src_path: &Path,
        offset: u64,
        len: u64,
        buf: &mut Vec<u8>,
    ) -> Result<(), Error> {
        let mut at = offset;
        let end = offset.saturating_add(len);
        while at < end {
            let n = (end - at).min(MAX_RUN);
            buf.resize(n as usize, 0);
            read_filled(src, buf, at).map_err(io("reading", src_path))?;
            let mut head = [0u8; 13];
            head[0] = 1;
            head[1..9].copy_from_slice(&at.to_le_bytes());
            head[9..13].copy_from_slice(&(n as u32).to_le_bytes());
            self.put(&head)?;
            let data = std::mem::take(buf);
            let put = self.put(&data);
            *buf = data;
            put?;
            at += n;
        }
        Ok(())
    }

    /// Ends a delta with the file's length.
    pub(crate) fn end(&mut self, file_len: u64) -> Result<(), Error> {
        let mut end = [0u8; 9];
        end[1..9].copy_from_slice(&file_len.to_le_bytes());
        self.put(&end)
    }

    /// Syncs the part and says what it is.
    pub(crate) fn finish(self) -> Result<FileDigest, Error> {
        self.file.sync_all().map_err(io("syncing", &self.path))?;
        Ok(FileDigest {
            bytes: self.bytes,
            sha256: self.hash.finalize().into(),
        })
    }
}

/// Reads `buf.len()` bytes of `src` at `offset`, zeros past its end: a
/// file cut while it is copied (pass 1 of `file_copy`) is read as far as
/// it goes; the pages past its new end are cut or copied again later.
pub(crate) fn read_filled(src: &File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    let mut done = 0;
    while done < buf.len() {
        match src.read_at(&mut buf[done..], offset + done as u64) {
            Ok(0) => {
                buf[done..].fill(0);
                break;
            }
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Applies the delta at `path` to `target` (open for writing); returns its
/// size and SHA-256 (the caller compares them with the manifest's and
/// discards `target` if they differ).
pub(crate) fn apply(path: &Path, target: &File, target_path: &Path) -> Result<FileDigest, Error> {
    let file = crate::ops::backup::copy::open_nofollow(path).map_err(io("reading", path))?;
    let mut r = Hashing {
        inner: BufReader::with_capacity(1 << 20, file),
        hash: Sha256::new(),
        bytes: 0,
    };
    let bad = |detail: &str| Error::corrupt(format!("backup file {}", path.display()), detail);
    let mut magic = [0u8; 8];
    r.exact(&mut magic, path)?;
    if &magic != MAGIC {
        return Err(bad("it is not a metadata delta"));
    }
    let mut buf = Vec::new();
    loop {
        let mut tag = [0u8; 1];
        r.exact(&mut tag, path)?;
        match tag[0] {
            1 => {
                let mut head = [0u8; 12];
                r.exact(&mut head, path)?;
                let offset = u64::from_le_bytes(head[..8].try_into().unwrap_or_default());
                let len = u64::from(u32::from_le_bytes(head[8..].try_into().unwrap_or_default()));
                if len > MAX_RUN || offset.saturating_add(len) > MAX_FILE {
                    return Err(bad("a record lies outside the file"));
                }
                buf.resize(len as usize, 0);
                r.exact(&mut buf, path)?;
                target
                    .write_all_at(&buf, offset)
                    .map_err(io("writing", target_path))?;
            }
            0 => {
                let mut len = [0u8; 8];
                r.exact(&mut len, path)?;
                let file_len = u64::from_le_bytes(len);
                if file_len > MAX_FILE {
                    return Err(bad("its file length is out of range"));
                }
                let mut rest = [0u8; 1];
                if r.inner.read(&mut rest).map_err(io("reading", path))? != 0 {
                    return Err(bad("bytes follow its end"));
                }
                target
                    .set_len(file_len)
                    .map_err(io("sizing", target_path))?;
                return Ok(FileDigest {
                    bytes: r.bytes,
                    sha256: r.hash.finalize().into(),
                });
            }
            _ => return Err(bad("a record has an unknown tag")),
        }
    }
}

/// A reader that hashes what it reads.
struct Hashing<R> {
    inner: R,
    hash: Sha256,
    bytes: u64,
}

impl<R: Read> Hashing<R> {
    fn exact(&mut self, out: &mut [u8], path: &Path) -> Result<(), Error> {
        self.inner.read_exact(out).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                Error::corrupt(
                    format!("backup file {}", path.display()),
                    "it ends in the middle of a record",
                )
            } else {
                io("reading", path)(e)
            }
        })?;
        self.hash.update(&*out);
        self.bytes += out.len() as u64;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A delta written from one file and applied to a copy of an older
    /// version gives the newer one; damaged deltas are errors.
    #[test]
    fn a_delta_applies_in_order_and_damage_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let new_path = dir.path().join("new");
        let new: Vec<u8> = (0..20_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&new_path, &new).unwrap();
        let src = File::open(&new_path).unwrap();
        let delta_path = dir.path().join("delta");
        let mut w = PartWriter::delta(&delta_path).unwrap();
        let mut buf = Vec::new();
        w.run(&src, &new_path, 4096, 4096, &mut buf).unwrap();
        w.run(&src, &new_path, 16_384, 20_000 - 16_384, &mut buf)
            .unwrap();
        w.end(20_000).unwrap();
        let written = w.finish().unwrap();
        assert_eq!(written.bytes, std::fs::metadata(&delta_path).unwrap().len());

        // The old version: the same except pages 1 and 4, and longer.
        let mut old = new.clone();
        old[5000] ^= 0xff;
        old[17_000] ^= 0xff;
        old.extend_from_slice(&[9; 5000]);
        let target_path = dir.path().join("target");
        std::fs::write(&target_path, &old).unwrap();
        let target = File::options().write(true).open(&target_path).unwrap();
        let applied = apply(&delta_path, &target, &target_path).unwrap();
        assert_eq!(applied, written);
        assert_eq!(std::fs::read(&target_path).unwrap(), new);

        let bytes = std::fs::read(&delta_path).unwrap();
        for (what, damaged) in [
            ("cut short", bytes[..bytes.len() - 3].to_vec()),
            ("bad magic", [b"BVDELTA9", &bytes[8..]].concat()),
            ("trailing", [&bytes[..], b"x"].concat()),
            ("bad tag", {
                let mut b = bytes.clone();
                b[8] = 7;
                b
            }),
            ("huge run", {
                let mut b = bytes.clone();
                b[17..21].copy_from_slice(&u32::MAX.to_le_bytes());
                b
            }),
        ] {
            std::fs::write(&delta_path, &damaged).unwrap();
            let e = apply(&delta_path, &target, &target_path).unwrap_err();
            assert!(matches!(e, Error::Corrupt { .. }), "{what}: {e:?}");
        }
    }
}
