//! A backup destination: a directory that holds the generations of one
//! store's backups and the blobs they share.
//!
//! ```text
//! DEST/backup.json                   which store, which data region
//! DEST/lock                          held (flock) by the backup writing here
//! DEST/blobs/ab/cd/<address>         blob files, shared by generations
//! DEST/metadata/<sha256>             metadata bases and deltas, shared
//! DEST/generations/000001/           manifest.json, manifest.mac (and
//!                                    store.redb for a row copy)
//! DEST/generations/.000002.partial/  a generation being written
//! ```
//!
//! A generation is written under a `.partial` name and renamed into place
//! once its manifest is durable: a generation directory with a plain name
//! is complete. Blobs go in before the manifest that names them. The
//! backup deletes only what it made: partial generations, generations
//! beyond `--keep`, blob files that a deleted generation's manifest
//! names and no kept one does, and metadata parts no complete
//! generation names (a crashed backup's, or a deleted generation's).

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::ops::backup::copy::io;
use crate::ops::backup::manifest::{self, FileDigest, Manifest};
use crate::types::BlobAddress;

const RECORD: &str = "backup.json";
const GENERATIONS: &str = "generations";
const PARTIAL_SUFFIX: &str = ".partial";

/// What `backup.json` says: the destination belongs to one store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Record {
    pub(crate) format: u32,
    pub(crate) store_id: String,
    pub(crate) region: Option<String>,
}

impl Record {
    /// The record of a new destination for the store `store_id`.
    pub(crate) fn new(store_id: &str, region: Option<&str>) -> Record {
        Record {
            format: manifest::FORMAT,
            store_id: store_id.to_string(),
            region: region.map(str::to_string),
        }
    }

    /// `backup.json`'s bytes.
    pub(crate) fn to_json(&self) -> Result<Vec<u8>, Error> {
        serde_json::to_vec_pretty(self).map_err(|e| Error::corrupt("backup.json", e.to_string()))
    }

    /// Refuses a backup of the store `store_id` into the destination this
    /// record is of (named `place`) when it is another store's, or of
    /// another data region (unless allowed).
    pub(crate) fn admits(
        &self,
        store_id: &str,
        region: Option<&str>,
        allow_region: bool,
        place: &str,
    ) -> Result<(), Error> {
        if self.store_id != store_id {
            return Err(Error::invalid(
                "backup destination",
                format!(
                    "{place} holds the backups of another store ({}); this store is {store_id}",
                    self.store_id
                ),
            ));
        }
        if let (Some(found), Some(expected)) = (self.region.as_deref(), region)
            && found != expected
            && !allow_region
        {
            return Err(Error::RegionMismatch {
                what: format!("backup destination {place}"),
                expected: expected.to_string(),
                found: found.to_string(),
            });
        }
        Ok(())
    }
}

/// A destination, open for a backup (its lock held) or for reading.
pub(crate) struct Destination {
    pub(crate) root: PathBuf,
    /// The flock'ed lock file, held while open for a backup.
    _lock: Option<std::fs::File>,
}

impl Destination {
    /// Opens `root` for reading backups: it must hold a `backup.json`.
    pub(crate) fn open_existing(root: &Path) -> Result<(Destination, Record), Error> {
        let record = read_record(root)?.ok_or_else(|| Error::NotFound {
            entity: crate::error::Entity::Backup,
            id: format!("{} (it has no backup.json)", root.display()),
        })?;
        Ok((
            Destination {
                root: root.to_path_buf(),
                _lock: None,
            },
            record,
        ))
    }

    /// Opens `root` for a backup of the store `store_id`, creating it if
    /// it is missing or empty, and takes its lock. A directory that holds
    /// other things, or the backups of another store, is refused.
    pub(crate) fn open_for_backup(
        root: &Path,
        store_id: &str,
        region: Option<&str>,
        allow_region: bool,
    ) -> Result<Destination, Error> {
        let record = match read_record(root)? {
            Some(r) => r,
            None => {
                let empty = match std::fs::read_dir(root) {
                    Ok(mut d) => d.next().is_none(),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
                    Err(e) => return Err(io("reading", root)(e)),
                };
                if !empty {
                    return Err(Error::invalid(
                        "backup destination",
                        format!(
                            "{} is not empty and holds no backup.json: back up into an empty or new directory",
                            root.display()
                        ),
                    ));
                }
                crate::fsutil::create_private_dir_all(root).map_err(io("creating", root))?;
                let record = Record::new(store_id, region);
                crate::fsutil::write_file_durably(&root.join(RECORD), &record.to_json()?, 0o600)?;
                record
            }
        };
        record.admits(store_id, region, allow_region, &root.display().to_string())?;
        let lock = lock(&root.join("lock"))?;
        Ok(Destination {
            root: root.to_path_buf(),
            _lock: Some(lock),
        })
    }

    pub(crate) fn blobs_dir(&self) -> PathBuf {
        self.root.join("blobs")
    }

    pub(crate) fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// The directory of a complete generation.
    pub(crate) fn generation_dir(&self, generation: u64) -> PathBuf {
        self.root.join(GENERATIONS).join(format!("{generation:06}"))
    }

    /// The directory a generation is written in before it is complete.
    pub(crate) fn partial_dir(&self, generation: u64) -> PathBuf {
        self.root
            .join(GENERATIONS)
            .join(format!(".{generation:06}{PARTIAL_SUFFIX}"))
    }

    /// The complete generations, oldest first.
    pub(crate) fn generations(&self) -> Result<Vec<u64>, Error> {
        let dir = self.root.join(GENERATIONS);
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io("listing", &dir)(e)),
        };
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io("listing", &dir))?;
            if let Some(g) = entry.file_name().to_str().and_then(parse_generation) {
                out.push(g);
            }
        }
        out.sort_unstable();
        Ok(out)
    }

    /// Removes partial generations a crashed backup left; says whether
    /// there were any (its metadata parts may be in the pool, unnamed).
    pub(crate) fn remove_partials(&self) -> Result<bool, Error> {
        let dir = self.root.join(GENERATIONS);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return Ok(false);
        };
        let mut found = false;
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let is_partial = name
                .strip_prefix('.')
                .and_then(|n| n.strip_suffix(PARTIAL_SUFFIX))
                .is_some_and(|n| parse_generation(n).is_some());
            if is_partial {
                remove_generation_files(&entry.path())?;
                found = true;
            }
        }
        Ok(found)
    }

    /// What the kept generations' manifests say of each blob (unchecked:
    /// used to skip blobs already here, which restore checks anyway).
    pub(crate) fn known_blobs(&self) -> Result<BTreeMap<BlobAddress, FileDigest>, Error> {
        let mut known = BTreeMap::new();
        for g in self.generations()? {
            let m = manifest::read_unchecked(&self.generation_dir(g))?;
            for b in m.blobs {
                known.insert(b.address, b.digest);
            }
        }
        Ok(known)
    }

    /// Deletes the oldest generations beyond `keep`, then the blob files
    /// only they named. Returns the generations and the blobs deleted.
    pub(crate) fn prune(
        &self,
        keep: usize,
        layout: &crate::blob::backend::local::LocalDir,
    ) -> Result<(Vec<u64>, u64), Error> {
        let all = self.generations()?;
        let cut = all.len().saturating_sub(keep.max(1));
        let (doomed, kept) = all.split_at(cut);
        if doomed.is_empty() {
            return Ok((Vec::new(), 0));
        }
        let mut named: HashSet<BlobAddress> = HashSet::new();
        for g in kept {
            let m = manifest::read_unchecked(&self.generation_dir(*g))?;
            named.extend(m.blobs.iter().map(|b| b.address));
        }
        let mut orphaned: HashSet<BlobAddress> = HashSet::new();
        for g in doomed {
            let dir = self.generation_dir(*g);
            if let Ok(m) = manifest::read_unchecked(&dir) {
                orphaned.extend(m.blobs.iter().map(|b| b.address));
            }
            remove_generation_files(&dir)?;
        }
        let mut removed = 0;
        for address in orphaned.difference(&named) {
            let path = layout.path_of(*address);
            match std::fs::remove_file(&path) {
                Ok(()) => removed += 1,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io("deleting", &path)(e)),
            }
        }
        self.sweep_pool()?;
        Ok((doomed.to_vec(), removed))
    }

    /// Deletes the metadata parts (`metadata/<sha256 hex>`) that no
    /// complete generation's manifest names; if a manifest does not read,
    /// deletes nothing.
    pub(crate) fn sweep_pool(&self) -> Result<(), Error> {
        use crate::ops::backup::file_copy::POOL;
        let pool = self.root.join(POOL);
        let entries = match std::fs::read_dir(&pool) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io("listing", &pool)(e)),
        };
        let mut named = HashSet::new();
        for g in self.generations()? {
            let Ok(m) = manifest::read_unchecked(&self.generation_dir(g)) else {
                return Ok(());
            };
            if let Some(c) = m.chain {
                named.extend(c.parts().map(|p| hex::encode(p.sha256)));
            }
        }
        for entry in entries {
            let entry = entry.map_err(io("listing", &pool))?;
            let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                continue;
            };
            let ours = name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit());
            if ours && !named.contains(&name) {
                let path = entry.path();
                match std::fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(io("deleting", &path)(e)),
                }
            }
        }
        Ok(())
    }

    /// Makes a partial generation complete.
    pub(crate) fn publish(&self, generation: u64) -> Result<PathBuf, Error> {
        let to = self.generation_dir(generation);
        crate::fsutil::persist(&self.partial_dir(generation), &to)?;
        Ok(to)
    }

    /// The manifest of a generation, read without its MAC checked.
    pub(crate) fn manifest_unchecked(&self, generation: u64) -> Result<Manifest, Error> {
        manifest::read_unchecked(&self.generation_dir(generation))
    }
}

pub(crate) fn parse_generation(name: &str) -> Option<u64> {
    (name.len() == 6 || (name.len() > 6 && !name.starts_with('0')))
        .then_some(())
        .filter(|()| name.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|()| name.parse().ok())
}

/// The files a generation directory may hold.
const GENERATION_FILES: &[&str] = &[
    "store.redb",
    manifest::MANIFEST,
    manifest::MAC,
    crate::ops::backup::file_copy::BASE_FILE,
    crate::ops::backup::file_copy::DELTA_FILE,
];

/// Removes a generation directory the backup made: only its known files,
/// then the directory (left if something else is in it).
fn remove_generation_files(dir: &Path) -> Result<(), Error> {
    for name in GENERATION_FILES {
        let path = dir.join(name);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io("deleting", &path)(e)),
        }
    }
    if let Err(e) = std::fs::remove_dir(dir) {
        tracing::warn!(dir = %dir.display(), error = %e, "left a backup generation directory that holds files the backup did not make");
    }
    Ok(())
}

fn read_record(root: &Path) -> Result<Option<Record>, Error> {
    let path = root.join(RECORD);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io("reading", &path)(e)),
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| Error::corrupt(format!("{}", path.display()), e.to_string()))
}

/// Takes an exclusive `flock` on `path` (created if missing), refusing at
/// once if another backup holds it.
#[allow(unsafe_code)]
fn lock(path: &Path) -> Result<std::fs::File, Error> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(io("opening", path))?;
    // SAFETY: `f` is an open descriptor for the whole call.
    let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        return Err(Error::Busy {
            what: "backup",
            detail: format!("another backup is writing to {}", path.display()),
        });
    }
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::parse_generation;

    #[test]
    fn only_plain_generation_names_parse() {
        assert_eq!(parse_generation("000001"), Some(1));
        assert_eq!(parse_generation("1234567"), Some(1234567));
        assert_eq!(parse_generation(".000001.partial"), None);
        assert_eq!(parse_generation("00001"), None);
        assert_eq!(parse_generation("0000001"), None);
        assert_eq!(parse_generation("00000a"), None);
    }
}
