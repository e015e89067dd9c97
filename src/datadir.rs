//! What a data directory holds, and whether an open may create a store in it.
//!
//! A store is several files that only make sense together: `store.redb`
//! (the metadata, and the keys that decrypt every blob), `master.key`,
//! `blobs/` and `cache.redb`. Creating a fresh `store.redb` beside the
//! others would orphan every blob and report "no users" as if nothing were
//! wrong, so an open creates a store only where none of its parts exist
//! (or when the caller asks for a new store with [`OpenMode::ForceNew`]),
//! and a caller that only means to use a store ([`OpenMode::MustExist`],
//! every `bvstore` command but `init` and `demo`) never creates one: a
//! mistyped `--data-dir` is an error, not a new empty store.
//!
//! `tmp/` is the store's own scratch directory. At open it is cleaned of the
//! store's own left-overs only (files named `<32 hex digits>.part`, regular
//! files, never through a symlink): a data directory pointed at the wrong
//! place must not cost anyone a file.

use std::fs;
use std::path::{Path, PathBuf};

use crate::config::Config;
use crate::error::Error;

/// Whether [`Store::open`](crate::Store::open) may create a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum OpenMode {
    /// Open the store, or create one in a directory that holds no part of
    /// a store. A `store.redb` that is missing or empty beside other parts
    /// is [`Error::StoreIncomplete`].
    #[default]
    OpenOrCreate,
    /// Open an existing store only: no store is [`Error::NoStore`], and
    /// nothing is created.
    MustExist,
    /// Create a new, empty `store.redb` even beside other parts of a store
    /// (`bvstore init --force`): their blobs become orphans.
    ForceNew,
}

/// The parts of a store besides `store.redb`, as named in errors.
const PARTS: &[&str] = &["blobs", "master.key", "master.key.next", "cache.redb"];

/// Checks the directory against `config.open_mode` and creates it when the
/// open may create a store. Blocking.
pub(crate) fn prepare(config: &Config) -> Result<(), Error> {
    let dir = &config.data_dir;
    let db = config.db_path();
    let db_state = match fs::metadata(&db) {
        Ok(m) if m.len() > 0 => return Ok(()),
        Ok(_) => "store.redb is empty",
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => "store.redb is missing",
        Err(e) => return Err(Error::io(format!("reading {}", db.display()), e)),
    };
    let present: Vec<String> = PARTS
        .iter()
        .filter(|p| match **p {
            // A `blobs/` with no blob directory in it holds no blob: a card
            // mounted there before the first open (`lost+found` and all).
            "blobs" => fs::symlink_metadata(dir.join(p)).is_ok() && !holds_no_blob(&dir.join(p)),
            _ => fs::symlink_metadata(dir.join(p)).is_ok(),
        })
        .map(|p| (*p).to_string())
        .collect();
    match config.open_mode {
        OpenMode::ForceNew => {}
        _ if !present.is_empty() => {
            return Err(Error::StoreIncomplete {
                data_dir: dir.clone(),
                missing: db_state.into(),
                present,
            });
        }
        OpenMode::MustExist => {
            return Err(Error::NoStore {
                data_dir: dir.clone(),
            });
        }
        OpenMode::OpenOrCreate => {}
    }
    crate::fsutil::create_private_dir_all(dir)
        .map_err(|e| Error::io(format!("creating data directory {}", dir.display()), e))
}

/// Takes group and other access off the store's own files and
/// directories (`store.redb`, `cache.redb`, `blobs/`, `tmp/`): a store
/// made by an older version had them 0644 and 0755. The data directory
/// itself is left as it is unless the store created it (then it is 0700):
/// it may be a directory the user chose and shares.
pub(crate) fn make_private(config: &Config) -> Result<(), Error> {
    for path in [
        config.db_path(),
        config.cache_path(),
        config.data_dir.join("blobs"),
        config.data_dir.join("tmp"),
    ] {
        crate::fsutil::make_private(&path)?;
    }
    Ok(())
}

/// Whether `s` is `len` lower-case hex digits: the names the store gives
/// its blob directories, blob files and temporaries.
pub(crate) fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Whether `name` is one of the store's own temporary blob files.
pub(crate) fn is_own_temporary(name: &str) -> bool {
    name.strip_suffix(".part")
        .is_some_and(|stem| is_hex(stem, 32))
}

/// Whether `blobs` is a directory without one of the layout's
/// two-hex-digit directories in it.
fn holds_no_blob(blobs: &Path) -> bool {
    let Ok(entries) = fs::read_dir(blobs) else {
        return false;
    };
    !entries
        .flatten()
        .any(|e| e.file_name().to_str().is_some_and(|n| is_hex(n, 2)))
}

/// Where new blobs are written when `blobs/` is on another file system
/// than `tmp/` (an operator mounted a larger card there): `blobs/staging/`,
/// since a rename cannot cross file systems (`EXDEV`) and a copy would
/// write every blob twice. `None` when both share one, as they do by
/// default. The layout's scans skip the name: it is not two hex digits.
pub(crate) fn staging_dir(tmp: &Path, blobs: &Path) -> Result<Option<PathBuf>, Error> {
    use std::os::unix::fs::MetadataExt;
    let device = |p: &Path| {
        fs::metadata(p)
            .map(|m| m.dev())
            .map_err(|e| Error::io(format!("reading {}", p.display()), e))
    };
    Ok((device(tmp)? != device(blobs)?).then(|| blobs.join(STAGING)))
}

/// Where new blob files are written before their rename into `blobs`:
/// the staging directory, created, when `blobs` is on another file system
/// than `tmp` (see [`staging_dir`]); `None` for `tmp` itself (also when
/// `blobs` does not exist yet).
pub(crate) fn blob_staging(tmp: &Path, blobs: &Path) -> Result<Option<PathBuf>, Error> {
    if fs::metadata(blobs).is_err() {
        return Ok(None);
    }
    let staging = staging_dir(tmp, blobs)?;
    if let Some(dir) = &staging {
        crate::fsutil::create_private_dir_all(dir)
            .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    }
    Ok(staging)
}

/// The staging directory's name under `blobs/`.
pub(crate) const STAGING: &str = "staging";

/// The store's `tmp/` directory, created if missing and cleaned of the
/// store's own left-over temporaries. A `tmp` that is a symlink or not a
/// directory is refused. Returns how many files were removed.
pub(crate) fn clean_tmp(tmp: &Path) -> Result<usize, Error> {
    if !own_dir(tmp, "its temporary files")? {
        make_own_dir(tmp)?;
        return Ok(0);
    }
    let listing = |e| Error::io(format!("listing {}", tmp.display()), e);
    let (mut removed, mut foreign) = (0usize, 0usize);
    for entry in fs::read_dir(tmp).map_err(listing)? {
        let entry = entry.map_err(listing)?;
        let ours = entry.file_type().map_err(listing)?.is_file()
            && entry.file_name().to_str().is_some_and(is_own_temporary);
        if !ours {
            foreign += 1;
            continue;
        }
        let path: PathBuf = entry.path();
        fs::remove_file(&path).map_err(|e| Error::io(format!("removing {}", path.display()), e))?;
        removed += 1;
    }
    if foreign > 0 {
        tracing::warn!(dir = %tmp.display(), foreign, "tmp/ holds entries the store did not make; left alone");
    }
    if removed > 0 {
        crate::fsutil::sync_dir(tmp)?;
    }
    Ok(removed)
}

/// Removes the store's own temporary files in `tmp` last written before
/// `cutoff` (a put still writing one is younger); returns how many and
/// their bytes. With `dry_run`, only counts them.
pub(crate) fn remove_old_temporaries(
    tmp: &Path,
    cutoff: crate::types::Timestamp,
    dry_run: bool,
) -> Result<(u64, u64), Error> {
    let listing = |e| Error::io(format!("listing {}", tmp.display()), e);
    let (mut removed, mut bytes) = (0u64, 0u64);
    for entry in fs::read_dir(tmp).map_err(listing)? {
        let entry = entry.map_err(listing)?;
        let Ok(meta) = entry.metadata() else { continue };
        let ours = meta.is_file() && entry.file_name().to_str().is_some_and(is_own_temporary);
        if !ours || crate::fsutil::modified(&meta) >= cutoff {
            continue;
        }
        if !dry_run {
            let path: PathBuf = entry.path();
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::io(format!("removing {}", path.display()), e)),
            }
        }
        removed += 1;
        bytes += meta.len();
    }
    if removed > 0 && !dry_run {
        crate::fsutil::sync_dir(tmp)?;
    }
    Ok((removed, bytes))
}

/// Whether the store's own directory `dir` (where it keeps `role`)
/// exists; refused if a symbolic link or anything but a directory has
/// taken its name, which the store must neither follow nor remove.
pub(crate) fn own_dir(dir: &Path, role: &str) -> Result<bool, Error> {
    match fs::symlink_metadata(dir) {
        Ok(m) if m.file_type().is_symlink() => Err(refuse(dir, "a symbolic link", role)),
        Ok(m) if !m.is_dir() => Err(refuse(dir, "not a directory", role)),
        Ok(_) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::io(format!("reading {}", dir.display()), e)),
    }
}

/// Makes the store's own directory `dir` (private, with its parents).
pub(crate) fn make_own_dir(dir: &Path) -> Result<(), Error> {
    crate::fsutil::create_private_dir_all(dir)
        .map_err(|e| Error::io(format!("creating {}", dir.display()), e))
}

fn refuse(dir: &Path, what: &str, role: &str) -> Error {
    Error::io(
        format!("refusing to use {}", dir.display()),
        std::io::Error::other(format!(
            "it is {what}, not the directory the store keeps {role} in; move it away"
        )),
    )
}

#[cfg(test)]
mod tests {
    use super::is_own_temporary;

    #[test]
    fn only_the_stores_own_names_are_temporaries() {
        assert!(is_own_temporary("0123456789abcdef0123456789abcdef.part"));
        for name in [
            "notes.txt",
            "0123456789abcdef0123456789abcdef",
            "0123456789ABCDEF0123456789abcdef.part",
            "0123456789abcdef0123456789abcde.part",
            "../0123456789abcdef0123456789abcdef.part",
            ".part",
        ] {
            assert!(!is_own_temporary(name), "{name}");
        }
    }
}
