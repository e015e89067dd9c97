//! Durable file operations, in one place: write a temporary file, `fsync`
//! it, rename it into place, `fsync` the directory. Every part that puts a
//! file on disk goes through here.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::AsyncWrite;

use crate::error::Error;

/// `fsync`s a directory so that a rename or unlink inside it is durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), Error> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(format!("syncing directory {}", dir.display()), e))
}

/// Moves a finished, already-synced `tmp` file to `dest`, replacing what is
/// there, and makes the rename durable (creating `dest`'s parents).
pub(crate) fn persist(tmp: &Path, dest: &Path) -> Result<(), Error> {
    let parent = ensure_parent(dest)?;
    fs::rename(tmp, dest).map_err(|e| {
        let what = if e.kind() == std::io::ErrorKind::CrossesDevices {
            format!(
                "renaming {} into {}: they are on different file systems",
                tmp.display(),
                dest.display()
            )
        } else {
            format!("renaming into {}", dest.display())
        };
        Error::io(what, e)
    })?;
    sync_dir(parent)
}

/// Creates `dest`'s parent directory (and its parent) if missing, durably:
/// each directory that gains an entry is synced. Returns the parent.
pub(crate) fn ensure_parent(dest: &Path) -> Result<&Path, Error> {
    let parent = match dest.parent() {
        // A bare file name lives in the working directory.
        Some(p) if p.as_os_str().is_empty() => Path::new("."),
        Some(p) => p,
        None => {
            return Err(Error::io(
                "persisting a file",
                std::io::Error::other("destination has no parent"),
            ));
        }
    };
    if !parent.exists() {
        let grand = parent.parent();
        let grand_existed = grand.is_none_or(Path::exists);
        create_private_dir_all(parent)
            .map_err(|e| Error::io(format!("creating {}", parent.display()), e))?;
        if let Some(grand) = grand {
            sync_dir(grand)?;
            if !grand_existed && let Some(top) = grand.parent() {
                sync_dir(top)?;
            }
        }
    }
    Ok(parent)
}

/// Writes `bytes` to `dest` durably through a temporary file beside it,
/// with the given Unix permission bits.
pub(crate) fn write_file_durably(dest: &Path, bytes: &[u8], mode: u32) -> Result<(), Error> {
    let tmp = dest.with_extension("tmp-write");
    let ctx = |e| Error::io(format!("writing {}", tmp.display()), e);
    {
        let mut f = open_new_with_mode(&tmp, mode).map_err(ctx)?;
        f.write_all(bytes).map_err(ctx)?;
        f.sync_all().map_err(ctx)?;
    }
    persist(&tmp, dest)
}

/// A file that replaces its destination only when it is complete.
///
/// Bytes go to a temporary file beside the destination, under a name the
/// store makes itself (`.NAME.bvstore-tmp-<random>`, created new, so nothing
/// already there is ever opened). [`commit`](Self::commit) syncs it, renames
/// it onto the destination and syncs the directory; dropping it without a
/// commit removes it, so a failed write leaves the destination as it was.
///
/// ```
/// use bharatvoice_store::AtomicFile;
/// use tokio::io::AsyncWriteExt;
/// # #[tokio::main] async fn main() -> bharatvoice_store::Result<()> {
/// # let dir = tempfile::tempdir().unwrap();
/// let dest = dir.path().join("clip.wav");
/// std::fs::write(&dest, b"old").unwrap();
/// let mut out = AtomicFile::create(&dest).await?;
/// out.write_all(b"new bytes").await.unwrap();
/// drop(out); // not committed: the destination keeps its bytes
/// assert_eq!(std::fs::read(&dest).unwrap(), b"old");
/// let mut out = AtomicFile::create(&dest).await?;
/// out.write_all(b"new bytes").await.unwrap();
/// out.commit().await?;
/// assert_eq!(std::fs::read(&dest).unwrap(), b"new bytes");
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct AtomicFile {
    file: tokio::fs::File,
    tmp: PathBuf,
    dest: PathBuf,
    committed: bool,
}

impl AtomicFile {
    /// Creates the temporary file beside `dest` (whose directory must exist).
    pub async fn create(dest: impl AsRef<Path>) -> Result<AtomicFile, Error> {
        let dest = dest.as_ref().to_path_buf();
        let ctx = |e| Error::io(format!("creating a file beside {}", dest.display()), e);
        let name = dest
            .file_name()
            .ok_or_else(|| ctx(std::io::Error::other("the path names no file")))?
            .to_string_lossy();
        let mut suffix = [0u8; 8];
        getrandom::fill(&mut suffix).map_err(|e| ctx(std::io::Error::other(e.to_string())))?;
        // Keep the name well under the 255-byte limit of most filesystems.
        let short: String = name.chars().take(64).collect();
        let tmp_name = format!(".{short}.bvstore-tmp-{}", hex::encode(suffix));
        let tmp = dest.with_file_name(tmp_name);
        let file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .await
            .map_err(ctx)?;
        Ok(AtomicFile {
            file,
            tmp,
            dest,
            committed: false,
        })
    }

    /// Makes the written bytes durable and puts them at the destination,
    /// replacing what was there.
    pub async fn commit(mut self) -> Result<(), Error> {
        let ctx = |e| Error::io(format!("writing {}", self.tmp.display()), e);
        tokio::io::AsyncWriteExt::flush(&mut self.file)
            .await
            .map_err(ctx)?;
        self.file.sync_all().await.map_err(ctx)?;
        let (tmp, dest) = (self.tmp.clone(), self.dest.clone());
        tokio::task::spawn_blocking(move || persist(&tmp, &dest))
            .await
            .map_err(|e| Error::io("renaming a finished file", std::io::Error::other(e)))??;
        self.committed = true;
        Ok(())
    }
}

impl AsyncWrite for AtomicFile {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.file).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.file).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.file).poll_shutdown(cx)
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

#[cfg(unix)]
fn open_new_with_mode(path: &Path, mode: u32) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
}

#[cfg(not(unix))]
fn open_new_with_mode(path: &Path, _mode: u32) -> std::io::Result<File> {
    fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
}

/// Creates `dir` and any missing parents, readable only by the owner
/// (0700 on Unix): the store's directories hold personal data.
pub(crate) fn create_private_dir_all(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
    }
    #[cfg(not(unix))]
    {
        fs::create_dir_all(dir)
    }
}

/// Takes the group and other permission bits off a file or directory the
/// store made (an older version made them 0644 and 0755). A symlink, or
/// a path that is not there, is left alone.
pub(crate) fn make_private(path: &Path) -> Result<(), Error> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = match fs::symlink_metadata(path) {
            Ok(m) if m.file_type().is_symlink() => return Ok(()),
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(Error::io(format!("reading {}", path.display()), e)),
        };
        let mode = mode_of(&meta);
        if mode & 0o077 != 0 {
            fs::set_permissions(path, fs::Permissions::from_mode(mode & 0o700))
                .map_err(|e| Error::io(format!("restricting {}", path.display()), e))?;
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// The Unix permission bits of a file (0 elsewhere).
pub(crate) fn mode_of(meta: &fs::Metadata) -> u32 {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        meta.permissions().mode() & 0o777
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        0
    }
}

/// When a file was last written, as a [`Timestamp`](crate::types::Timestamp)
/// (the epoch if the file system does not say).
pub(crate) fn modified(meta: &std::fs::Metadata) -> crate::types::Timestamp {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(crate::types::Timestamp::from_micros(0), |d| {
            crate::types::Timestamp::from_micros(i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        })
}

/// Starts writeback of `[start, end)` without waiting, so that the disk
/// writes while the caller goes on and a later `fsync` (or `syncfs`) finds
/// little left to do. A hint: failures are ignored, the final sync reports
/// real errors.
#[cfg(target_os = "linux")]
pub(crate) fn start_writeback(file: &File, start: u64, end: u64) {
    sync_range(file, start, end, libc::SYNC_FILE_RANGE_WRITE);
}

/// `sync_file_range(2)` over `[start, end)`; an empty or out-of-range
/// span does nothing.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
pub(crate) fn sync_range(file: &File, start: u64, end: u64, flags: libc::c_uint) {
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
        libc::sync_file_range(file.as_raw_fd(), start, end - start, flags);
    }
}

/// [`start_writeback`] elsewhere than Linux: nothing.
#[cfg(not(target_os = "linux"))]
pub(crate) fn start_writeback(_file: &File, _start: u64, _end: u64) {}
