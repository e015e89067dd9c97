//! Where an export's bytes go: a directory or a `.tar.zst` archive, each
//! written under a temporary name beside the destination and renamed onto
//! it only when complete, so a failed export leaves nothing under the
//! final name.
//!
//! This is the blocking half of an export. It runs on the blocking pool
//! and is fed by the async half (`privacy::export`) through a small
//! bounded channel of [`Msg`]s, so memory stays bounded by a few chunks
//! whatever the size of the files. Every entry is hashed (SHA-256) as it
//! is written and checked against the size announced up front (a tar
//! header needs the size before the bytes); the manifest goes last.

use std::fs::{self, File};
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc::Receiver;

use crate::error::{Error, quote};
use crate::fsutil::{create_private_dir_all, ensure_parent, sync_dir};
use crate::types::{Timestamp, UserId};

/// The `field` of the [`Error::InvalidInput`] an export returns when its
/// destination already exists (a file, or a directory that is not empty).
pub(crate) const DEST_FIELD: &str = "export destination";

/// What the async half sends: entries as `Begin`, `Data`..., `End`, then
/// `Commit`. A channel closed before `Commit` aborts the export.
#[derive(Debug)]
pub(crate) enum Msg {
    /// A new entry of exactly `size` bytes.
    Begin { name: String, size: u64 },
    /// The next bytes of the current entry.
    Data(Vec<u8>),
    /// The current entry is complete.
    End,
    /// Everything was sent: write the manifest and put the export in place.
    Commit,
}

/// The form of an export, from its destination's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Form {
    /// A directory of files.
    Dir,
    /// A tar archive compressed with zstd.
    TarZst,
}

impl Form {
    pub(crate) fn of(dest: &Path) -> Form {
        let archive = dest
            .file_name()
            .is_some_and(|n| n.to_string_lossy().ends_with(".tar.zst"));
        if archive { Form::TarZst } else { Form::Dir }
    }
}

/// One line of `manifest.json`.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ManifestEntry {
    pub(crate) name: String,
    pub(crate) size: u64,
    pub(crate) sha256: String,
}

#[derive(Serialize)]
struct Manifest<'a> {
    format: u32,
    user: UserId,
    exported_at: Timestamp,
    entries: &'a [ManifestEntry],
}

/// What the blocking half wrote.
#[derive(Debug)]
pub(crate) struct Written {
    /// Entries in the manifest (the manifest itself not counted).
    pub(crate) entries: Vec<ManifestEntry>,
}

/// Writes an export of `user` to `dest` from what `rx` brings.
pub(crate) fn write_export(
    form: Form,
    dest: PathBuf,
    user: UserId,
    now: Timestamp,
    mut rx: Receiver<Msg>,
) -> Result<Written, Error> {
    let mut sink: Box<dyn Sink> = match form {
        Form::Dir => Box::new(DirSink::create(dest)?),
        Form::TarZst => Box::new(TarSink::create(dest, now)?),
    };
    let mut entries = Vec::new();
    loop {
        match rx.blocking_recv() {
            Some(Msg::Begin { name, size }) => {
                let mut reader = EntryReader::new(&mut rx, size);
                sink.entry(&name, size, &mut reader)?;
                entries.push(reader.finish(name)?);
            }
            Some(Msg::Commit) => break,
            Some(_) => return Err(aborted("the entries arrived out of order")),
            None => return Err(aborted("the export was stopped")),
        }
    }
    let manifest = serde_json::to_vec_pretty(&Manifest {
        format: 1,
        user,
        exported_at: now,
        entries: &entries,
    })
    .map_err(|e| Error::io("writing manifest.json", e.into()))?;
    sink.finish(&manifest)?;
    Ok(Written { entries })
}

fn aborted(why: &str) -> Error {
    Error::io("writing an export", std::io::Error::other(why.to_string()))
}

/// Reads one entry's bytes from the channel, hashing them and holding
/// them to the announced size: ends (`Ok(0)`) only at `End` with exactly
/// `size` bytes seen.
struct EntryReader<'a> {
    rx: &'a mut Receiver<Msg>,
    size: u64,
    seen: u64,
    piece: Vec<u8>,
    pos: usize,
    hash: Sha256,
    ended: bool,
}

impl<'a> EntryReader<'a> {
    fn new(rx: &'a mut Receiver<Msg>, size: u64) -> Self {
        EntryReader {
            rx,
            size,
            seen: 0,
            piece: Vec::new(),
            pos: 0,
            hash: Sha256::new(),
            ended: false,
        }
    }

    fn finish(self, name: String) -> Result<ManifestEntry, Error> {
        if !self.ended || self.seen != self.size {
            return Err(aborted("an entry ended early"));
        }
        Ok(ManifestEntry {
            name,
            size: self.size,
            sha256: hex::encode(self.hash.finalize()),
        })
    }
}

impl Read for EntryReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            if self.pos < self.piece.len() {
                let n = buf.len().min(self.piece.len() - self.pos);
                buf[..n].copy_from_slice(&self.piece[self.pos..self.pos + n]);
                self.pos += n;
                return Ok(n);
            }
            if self.ended {
                return Ok(0);
            }
            match self.rx.blocking_recv() {
                Some(Msg::Data(bytes)) => {
                    self.seen += bytes.len() as u64;
                    if self.seen > self.size {
                        return Err(std::io::Error::other(
                            "an entry is longer than its record says",
                        ));
                    }
                    self.hash.update(&bytes);
                    self.piece = bytes;
                    self.pos = 0;
                }
                Some(Msg::End) if self.seen == self.size => self.ended = true,
                Some(Msg::End) => {
                    return Err(std::io::Error::other(
                        "an entry is shorter than its record says",
                    ));
                }
                Some(_) | None => return Err(std::io::Error::other("the export was stopped")),
            }
        }
    }
}

/// A place entries are written to, then put in place.
trait Sink: Send {
    /// Writes an entry of `size` bytes read from `data` (to its end).
    fn entry(&mut self, name: &str, size: u64, data: &mut dyn Read) -> Result<(), Error>;
    /// Writes `manifest.json` and renames the export onto its destination.
    fn finish(self: Box<Self>, manifest: &[u8]) -> Result<(), Error>;
}

/// The refusal of a destination that exists.
fn exists(dest: &Path, what: &str) -> Error {
    Error::invalid(
        DEST_FIELD,
        format!(
            "{} already exists{what}; an export never overwrites: choose a new path",
            quote(&dest.display().to_string())
        ),
    )
}

/// Refuses a destination that exists, except an empty directory when
/// `empty_dir_ok`.
fn check_free(dest: &Path, empty_dir_ok: bool) -> Result<(), Error> {
    match fs::symlink_metadata(dest) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(format!("reading {}", dest.display()), e)),
        Ok(m) if empty_dir_ok && m.is_dir() => {
            let mut items = fs::read_dir(dest)
                .map_err(|e| Error::io(format!("reading {}", dest.display()), e))?;
            match items.next() {
                None => Ok(()),
                Some(_) => Err(exists(dest, " and is not empty")),
            }
        }
        Ok(_) => Err(exists(dest, "")),
    }
}

/// A new name beside `dest` for the export being written.
fn temp_beside(dest: &Path) -> Result<PathBuf, Error> {
    let name = dest
        .file_name()
        .ok_or_else(|| Error::invalid(DEST_FIELD, "the path names no file or directory"))?
        .to_string_lossy();
    let mut suffix = [0u8; 8];
    getrandom::fill(&mut suffix).map_err(|e| aborted(&e.to_string()))?;
    let short: String = name.chars().take(64).collect();
    Ok(dest.with_file_name(format!(".{short}.bvstore-export-{}", hex::encode(suffix))))
}

/// Creates a new file readable only by its owner (0600 on Unix).
fn create_private_file(path: &Path) -> Result<File, Error> {
    let mut o = fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    o.open(path)
        .map_err(|e| Error::io(format!("creating {}", path.display()), e))
}

fn parent_of(dest: &Path) -> &Path {
    match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// A directory export: `user.json`, `profile.json`, `sessions/`, `files/`
/// and `manifest.json`, directories 0700 and files 0600.
struct DirSink {
    tmp: PathBuf,
    dest: PathBuf,
    done: bool,
}

impl DirSink {
    fn create(dest: PathBuf) -> Result<DirSink, Error> {
        check_free(&dest, true)?;
        ensure_parent(&dest)?;
        let tmp = temp_beside(&dest)?;
        let sink = DirSink {
            tmp,
            dest,
            done: false,
        };
        for sub in ["", "files", "sessions"] {
            let dir = sink.tmp.join(sub);
            create_private_dir_all(&dir)
                .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
        }
        Ok(sink)
    }
}

impl Sink for DirSink {
    fn entry(&mut self, name: &str, _size: u64, data: &mut dyn Read) -> Result<(), Error> {
        let path = self.tmp.join(name);
        let ctx = |e| Error::io(format!("writing {}", path.display()), e);
        let mut f = create_private_file(&path)?;
        std::io::copy(data, &mut f).map_err(ctx)?;
        f.sync_all().map_err(ctx)
    }

    fn finish(mut self: Box<Self>, manifest: &[u8]) -> Result<(), Error> {
        self.entry("manifest.json", manifest.len() as u64, &mut &manifest[..])?;
        for sub in ["files", "sessions", ""] {
            sync_dir(&self.tmp.join(sub))?;
        }
        // Something may have been put there meanwhile; a rename onto an
        // empty directory replaces it, onto a full one fails.
        check_free(&self.dest, true)?;
        fs::rename(&self.tmp, &self.dest)
            .map_err(|e| Error::io(format!("renaming into {}", self.dest.display()), e))?;
        self.done = true;
        sync_dir(parent_of(&self.dest))
    }
}

impl Drop for DirSink {
    fn drop(&mut self) {
        if !self.done {
            let _ = fs::remove_dir_all(&self.tmp);
        }
    }
}

type Archive = tar::Builder<zstd::stream::write::Encoder<'static, BufWriter<File>>>;

/// A `.tar.zst` export: the same entries in a tar stream through zstd.
struct TarSink {
    builder: Option<Archive>,
    tmp: PathBuf,
    dest: PathBuf,
    mtime: u64,
    done: bool,
}

impl TarSink {
    fn create(dest: PathBuf, now: Timestamp) -> Result<TarSink, Error> {
        check_free(&dest, false)?;
        ensure_parent(&dest)?;
        let tmp = temp_beside(&dest)?;
        let file = create_private_file(&tmp)?;
        let mut sink = TarSink {
            builder: None,
            tmp,
            dest,
            mtime: u64::try_from(now.as_micros() / 1_000_000).unwrap_or(0),
            done: false,
        };
        let encoder = zstd::stream::write::Encoder::new(BufWriter::new(file), 3)
            .map_err(|e| Error::io("starting zstd", e))?;
        sink.builder = Some(tar::Builder::new(encoder));
        Ok(sink)
    }

    fn builder(&mut self) -> Result<&mut Archive, Error> {
        self.builder
            .as_mut()
            .ok_or_else(|| aborted("the archive is closed"))
    }
}

impl Sink for TarSink {
    fn entry(&mut self, name: &str, size: u64, data: &mut dyn Read) -> Result<(), Error> {
        let mut header = tar::Header::new_gnu();
        header.set_size(size);
        header.set_mode(0o600);
        header.set_mtime(self.mtime);
        header.set_entry_type(tar::EntryType::Regular);
        let ctx = |e| Error::io(format!("writing {name} to the archive"), e);
        self.builder()?
            .append_data(&mut header, name, data)
            .map_err(ctx)
    }

    fn finish(mut self: Box<Self>, manifest: &[u8]) -> Result<(), Error> {
        self.entry("manifest.json", manifest.len() as u64, &mut &manifest[..])?;
        let ctx = |e| Error::io("finishing the archive", e);
        let builder = self
            .builder
            .take()
            .ok_or_else(|| aborted("the archive is closed"))?;
        let encoder = builder.into_inner().map_err(ctx)?;
        let buffered = encoder.finish().map_err(ctx)?;
        let mut file = buffered.into_inner().map_err(|e| ctx(e.into_error()))?;
        file.flush().map_err(ctx)?;
        file.sync_all().map_err(ctx)?;
        drop(file);
        check_free(&self.dest, false)?;
        fs::rename(&self.tmp, &self.dest)
            .map_err(|e| Error::io(format!("renaming into {}", self.dest.display()), e))?;
        self.done = true;
        sync_dir(parent_of(&self.dest))
    }
}

impl Drop for TarSink {
    fn drop(&mut self) {
        // An unfinished builder writes its trailer when dropped; the file
        // goes anyway.
        drop(self.builder.take());
        if !self.done {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}
