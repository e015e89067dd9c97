//! Copying one file into a backup or out of one, hashing it on the way:
//! the SHA-256 a manifest records, and checks on restore.
//!
//! A store whose blobs are in object storage has its blobs read through
//! the backend and written into the backup ([`place_from`]).
//!
//! Into a backup on the same file system, a blob is hard-linked (no bytes
//! written; blob files are never changed in place, and the purge does not
//! overwrite a file that has another link, see `blob::backend::local`),
//! and read once for its digest. Elsewhere it is copied. Copies go
//! through a temporary file in the destination's `tmp/` and are renamed
//! into place, so a file at its final name is always whole; they are not
//! synced one by one (the caller syncs the file system once, as `cp` and
//! `rsync` users do with `sync`, before it writes anything that names
//! them), but each one's writeback is started as soon as it is written, so
//! the disk writes while the next files are copied and the final sync
//! finds little left (1 GiB in 1 MiB files, four threads: the sync after
//! the copy fell from ~510 ms to ~3 ms, the copy itself unchanged).
//!
//! The copy loop reads, hashes and writes [`BUF`] bytes at a time: with a
//! 1 MiB buffer a backup of 1 GiB (1 MiB files, writeback started as
//! here) took 1.79–1.95 s against 1.34–1.41 s with 256 KiB, in the same
//! runs (docs/BENCHMARKS.md; a standalone probe showed the 1 MiB loop
//! waiting, up to 3× as long, in some runs and not in others).

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::blob::backend::{BlobBackend, BlobSource};
use crate::error::Error;
use crate::ops::backup::manifest::FileDigest;
use crate::types::BlobAddress;

/// Bytes read, hashed and written at a time (see the module docs).
const BUF: usize = 256 << 10;

/// How a file reached its destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Placed {
    Linked,
    Copied,
}

/// Maps an I/O error to one that says what was done to which path.
pub(crate) fn io(what: &str, path: &Path) -> impl FnOnce(std::io::Error) -> Error {
    let context = format!("{what} {}", path.display());
    move |e| Error::io(context, e)
}

/// The size and SHA-256 of a file; `None` if it does not exist.
pub(crate) fn digest(path: &Path, buf: &mut Vec<u8>) -> Result<Option<FileDigest>, Error> {
    match open_nofollow(path) {
        Ok(mut f) => hash_through(&mut f, path, None, buf).map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io("reading", path)(e)),
    }
}

/// Reads `src` to its end, hashing, and writes it to `sink` if given.
fn hash_through(
    src: &mut impl Read,
    path: &Path,
    mut sink: Option<(&mut File, &Path)>,
    buf: &mut Vec<u8>,
) -> Result<FileDigest, Error> {
    let mut h = Sha256::new();
    let mut bytes = 0u64;
    buf.resize(BUF, 0);
    loop {
        let n = src.read(buf).map_err(io("reading", path))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        if let Some((dst, to)) = sink.as_mut() {
            dst.write_all(&buf[..n]).map_err(io("writing", to))?;
        }
        bytes += n as u64;
    }
    if let Some((dst, _)) = sink {
        crate::fsutil::start_writeback(dst, 0, bytes);
    }
    Ok(FileDigest {
        bytes,
        sha256: h.finalize().into(),
    })
}

pub(crate) fn open_nofollow(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    File::options()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

/// Puts `from` at `to` (replacing what is there): linked when `link` and
/// the file system allows it, else copied; returns how, and the file's
/// digest; `None` if `from` does not exist.
pub(crate) fn place(
    from: &Path,
    to: &Path,
    tmp_dir: &Path,
    link: bool,
    buf: &mut Vec<u8>,
) -> Result<Option<(Placed, FileDigest)>, Error> {
    let tmp = part_path(to, tmp_dir);
    if link {
        match std::fs::hard_link(from, &tmp) {
            Ok(()) => {
                let Some(d) = digest(&tmp, buf)? else {
                    return Ok(None);
                };
                rename(&tmp, to)?;
                return Ok(Some((Placed::Linked, d)));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            // Another file system, or one without links: copy instead.
            Err(_) => {}
        }
    }
    let Some(d) = copy_hashing(from, &tmp, buf)? else {
        return Ok(None);
    };
    rename(&tmp, to)?;
    Ok(Some((Placed::Copied, d)))
}

/// Puts the blob at `address` of `backend` (object storage: nothing to
/// link) at `to`, replacing what is there: read through the backend in
/// one announced run, written to a temporary file and renamed, hashed on
/// the way; `None` if the backend has no such blob.
pub(crate) fn place_from(
    backend: &dyn BlobBackend,
    address: BlobAddress,
    to: &Path,
    tmp_dir: &Path,
    buf: &mut Vec<u8>,
) -> Result<Option<FileDigest>, Error> {
    let Some(source) = backend.open_once(address)? else {
        return Ok(None);
    };
    let len = source.len()?;
    source.will_read(0..len);
    let tmp = part_path(to, tmp_dir);
    let mut dst = create(&tmp)?;
    let from = PathBuf::from(format!("blob {address} in the {} backend", backend.name()));
    let mut reader = SourceReader {
        source: &*source,
        at: 0,
        len,
    };
    match hash_through(&mut reader, &from, Some((&mut dst, &tmp)), buf) {
        Ok(d) => {
            rename(&tmp, to)?;
            Ok(Some(d))
        }
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            match e {
                // Gone between the open (its length may come from a read
                // cache) and the read: missing, as if the open had said so.
                Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                    Ok(None)
                }
                e => Err(e),
            }
        }
    }
}

/// A blob source read in order, as `Read`.
struct SourceReader<'a> {
    source: &'a dyn BlobSource,
    at: u64,
    len: u64,
}

impl Read for SourceReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = usize::try_from(self.len - self.at)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        if n > 0 {
            self.source.read_exact_at(&mut buf[..n], self.at)?;
            self.at += n as u64;
        }
        Ok(n)
    }
}

/// The temporary name of a file on its way to `to`, in `tmp_dir`, with
/// whatever an interrupted copy left there removed.
fn part_path(to: &Path, tmp_dir: &Path) -> PathBuf {
    let name = to
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = tmp_dir.join(format!("{name}.part"));
    let _ = std::fs::remove_file(&tmp);
    tmp
}

/// Creates `path` for writing (mode 0600, not through a symbolic link).
pub(crate) fn create(path: &Path) -> Result<File, Error> {
    use std::os::unix::fs::OpenOptionsExt;
    File::options()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(io("creating", path))
}

/// Copies `from` to `to` (a new file, mode 0600), hashing; `None` if
/// `from` does not exist.
pub(crate) fn copy_hashing(
    from: &Path,
    to: &Path,
    buf: &mut Vec<u8>,
) -> Result<Option<FileDigest>, Error> {
    let mut src = match open_nofollow(from) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io("reading", from)(e)),
    };
    let mut dst = create(to)?;
    hash_through(&mut src, from, Some((&mut dst, to)), buf).map(Some)
}

/// Renames into place, creating the parent directory (not synced: the
/// caller syncs the file system once).
fn rename(tmp: &Path, to: &Path) -> Result<(), Error> {
    if let Some(parent) = to.parent() {
        crate::fsutil::create_private_dir_all(parent).map_err(io("creating", parent))?;
    }
    std::fs::rename(tmp, to).map_err(io("renaming into", to))
}

/// Makes everything written under `dir`'s file system durable.
pub(crate) fn sync_all(dir: &Path) -> Result<(), Error> {
    crate::blob::backend::local::sync_file_system(dir).map_err(io("syncing", dir))
}
