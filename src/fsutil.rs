//! Durable file operations, in one place: write a temporary file, `fsync`
//! it, rename it into place, `fsync` the directory. Every part that puts a
//! file on disk goes through here.

use std::fs::{self, File};
use std::io::Write;
use std::path::Path;

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
    fs::rename(tmp, dest).map_err(|e| Error::io(format!("renaming into {}", dest.display()), e))?;
    sync_dir(parent)
}

/// Creates `dest`'s parent directory (and its parent) if missing, durably:
/// each directory that gains an entry is synced. Returns the parent.
pub(crate) fn ensure_parent(dest: &Path) -> Result<&Path, Error> {
    let parent = dest.parent().ok_or_else(|| {
        Error::io(
            "persisting a file",
            std::io::Error::other("destination has no parent"),
        )
    })?;
    if !parent.exists() {
        let grand = parent.parent();
        let grand_existed = grand.is_none_or(Path::exists);
        fs::create_dir_all(parent)
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
