//! Restore: a backup generation brought back as a store in a new data
//! directory, after every part of it has been checked.
//!
//! Nothing is written until the generation has passed: its manifest's
//! MAC under the master key, then the size and SHA-256 of its metadata
//! snapshot and of every blob it lists. Each file is hashed again as it
//! is copied, so a file changed between the check and the copy is caught
//! too. Blobs go in first and `store.redb` last, so a restore cut short
//! leaves no store that opens (the next open says the store is
//! incomplete; `--force` restores over it). The restored store is then
//! opened once, which proves that the key opens it.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::blob::backend::local::LocalDir;
use crate::config::Config;
use crate::error::Error;
use crate::ops::backup::BackupTarget;
use crate::ops::backup::copy;
use crate::ops::backup::destination::Destination;
use crate::ops::backup::file_copy;
use crate::ops::backup::manifest::{self, FileDigest};
use crate::store::Store;
use crate::types::Timestamp;

/// How [`Store::restore`] runs.
///
/// ## Defaults
///
/// The newest generation, an empty (or missing) target only, a backup of
/// another data region refused, the key left where the configuration
/// names it.
#[derive(Debug, Clone, Default)]
pub struct RestoreOptions {
    /// The generation to restore; `None` takes the newest.
    pub generation: Option<u64>,
    /// Restore into a data directory that is not empty: its `store.redb`
    /// is replaced and its `cache.redb` deleted.
    pub force: bool,
    /// Restore a backup of another data region than the configured one.
    pub allow_region_change: bool,
    /// Write the master key the configuration gives (`master_key` or
    /// `master_key_file`) to `<data_dir>/master.key`, so that the restored
    /// store opens with the embedded default, as the original did.
    pub install_key: bool,
    /// Told the bytes checked and copied so far (of twice the total).
    pub progress: Option<super::Progress>,
}

/// What [`Store::restore`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RestoreReport {
    /// The data directory restored into.
    pub data_dir: PathBuf,
    /// The generation restored.
    pub generation: u64,
    /// When its snapshot was taken.
    pub created_at: Timestamp,
    /// The store's id.
    pub store_id: String,
    /// Blobs restored.
    pub blobs: u64,
    /// Bytes restored (metadata and blobs).
    pub bytes: u64,
    /// Blobs the backed-up store was already missing (listed in the
    /// manifest; their records stay damaged).
    pub missing: u64,
    /// How long the restore took, in milliseconds.
    pub took_ms: u64,
}

/// A backup generation, as [`Store::backups`] lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BackupGeneration {
    /// Its number.
    pub generation: u64,
    /// When its snapshot was taken.
    pub created_at: Timestamp,
    /// The schema version of its metadata.
    pub schema_version: u32,
    /// The data region of the store it came from.
    pub region: Option<String>,
    /// Blobs it holds.
    pub blobs: u64,
    /// Bytes of its metadata snapshot and blobs.
    pub bytes: u64,
}

impl Store {
    /// The generations in a backup destination (a directory or an
    /// `s3://` prefix), oldest first (read without the master key: nothing
    /// here is checked).
    pub fn backups(dest: impl Into<BackupTarget>) -> Result<Vec<BackupGeneration>, Error> {
        let target = dest.into();
        target.check()?;
        let manifests = match &target {
            BackupTarget::Dir(dir) => {
                let (d, _) = Destination::open_existing(dir)?;
                let mut out = Vec::new();
                for g in d.generations()? {
                    out.push((g, d.manifest_unchecked(g)?));
                }
                out
            }
            #[cfg(feature = "s3")]
            BackupTarget::S3(c) => super::remote::listing(c)?,
            #[cfg(not(feature = "s3"))]
            BackupTarget::S3(_) => Vec::new(),
        };
        Ok(manifests
            .into_iter()
            .map(|(g, m)| BackupGeneration {
                generation: g,
                created_at: m.created_at,
                schema_version: m.schema_version,
                bytes: m.total_bytes(),
                region: m.region,
                blobs: m.blobs.len() as u64,
            })
            .collect())
    }

    /// Restores a backup generation from `src` into `config`'s data
    /// directory, with the master key `config` gives. The manifest's MAC
    /// and every file's SHA-256 are checked before anything is written: a
    /// damaged, missing or altered file is [`Error::Integrity`] naming it.
    /// A target that is not empty is refused unless `force`.
    ///
    /// ```
    /// # use bharatvoice_store::*;
    /// # #[tokio::main] async fn main() -> Result<(), Error> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// let key = MasterKey::generate()?;
    /// let store = Store::open(Config::new(dir.path().join("a")).master_key(key.clone())).await?;
    /// let alice = store.users().create(NewUser::new("alice", "alice@example.in")).await?;
    /// store.backup(dir.path().join("backups"), BackupOptions::default()).await?;
    /// store.close().await;
    ///
    /// let target = Config::new(dir.path().join("b")).master_key(key);
    /// Store::restore(dir.path().join("backups"), &target, RestoreOptions::default()).await?;
    /// let restored = Store::open(target).await?;
    /// assert_eq!(restored.users().get(alice.id)?.username, "alice");
    /// # Ok(()) }
    /// ```
    #[tracing::instrument(skip_all, name = "restore", fields(src = tracing::field::Empty))]
    pub async fn restore(
        src: impl Into<BackupTarget>,
        config: &Config,
        options: RestoreOptions,
    ) -> Result<RestoreReport, Error> {
        let t0 = std::time::Instant::now();
        let target = src.into();
        tracing::Span::current().record("src", tracing::field::display(&target));
        target.check()?;
        let master = crate::blob::keys::configured_master(config)?;
        let report = match target {
            BackupTarget::Dir(src) => {
                let (config2, options2) = (config.clone(), options.clone());
                tokio::task::spawn_blocking(move || {
                    restore_files(&src, &config2, &options2, &master)
                })
                .await
                .map_err(|e| Error::join("restoring", e))??
            }
            #[cfg(feature = "s3")]
            BackupTarget::S3(c) => {
                super::remote::restore::restore(&c, config, &options, &master).await?
            }
            #[cfg(not(feature = "s3"))]
            BackupTarget::S3(_) => {
                return Err(Error::Config {
                    reason: "this build has no object storage (cargo feature `s3`)".into(),
                });
            }
        };
        // The key opens it, and a first open settles it.
        let store = Store::open(config.clone().open_mode(crate::OpenMode::MustExist)).await?;
        store.close().await;
        Ok(RestoreReport {
            took_ms: u64::try_from(t0.elapsed().as_millis()).unwrap_or(u64::MAX),
            ..report
        })
    }
}

fn restore_files(
    src: &Path,
    config: &Config,
    options: &RestoreOptions,
    master: &crate::blob::crypto::SecretKey,
) -> Result<RestoreReport, Error> {
    let (dest, _) = Destination::open_existing(src)?;
    let generation = match options.generation {
        Some(g) => g,
        None => *dest.generations()?.last().ok_or_else(|| Error::NotFound {
            entity: crate::error::Entity::Backup,
            id: format!("generation in {}", src.display()),
        })?,
    };
    let dir = dest.generation_dir(generation);
    if !dir.is_dir() {
        return Err(Error::NotFound {
            entity: crate::error::Entity::Backup,
            id: format!("generation {generation} in {}", src.display()),
        });
    }
    let m = manifest::read(&dir, master)?;
    if let (Some(found), Some(expected)) = (m.region.as_deref(), config.region.as_deref())
        && found != expected
        && !options.allow_region_change
    {
        return Err(Error::RegionMismatch {
            what: format!("backup generation {generation} in {}", src.display()),
            expected: expected.to_string(),
            found: found.to_string(),
        });
    }
    check_target(&config.data_dir, options.force)?;

    // Check everything before writing anything.
    let layout = LocalDir::new(dest.blobs_dir());
    let total = m.total_bytes();
    let mut done = 0u64;
    let mut tell = |n: u64| {
        done = done.saturating_add(n);
        if let Some(p) = &options.progress {
            p.tell(done, total.saturating_mul(2));
        }
    };
    let mut buf = Vec::new();
    let snapshot = dir.join("store.redb");
    match &m.chain {
        Some(chain) => {
            for part in chain.parts() {
                check(&file_copy::part_path(&dest.root, part), part, &mut buf)?;
                tell(part.bytes);
            }
        }
        None => {
            check(&snapshot, &m.metadata, &mut buf)?;
            tell(m.metadata.bytes);
        }
    }
    for b in &m.blobs {
        check(&layout.path_of(b.address), &b.digest, &mut buf)?;
        tell(b.digest.bytes);
    }

    // Blobs, then the metadata.
    let data = &config.data_dir;
    let tmp = data.join("tmp");
    crate::fsutil::create_private_dir_all(&tmp)
        .map_err(|e| Error::io(format!("creating {}", tmp.display()), e))?;
    let target = LocalDir::new(data.join("blobs"));
    // A `blobs/` mounted from another file system is staged on its own.
    let blob_tmp =
        crate::datadir::blob_staging(&tmp, target.root())?.unwrap_or_else(|| tmp.clone());
    for b in &m.blobs {
        let to = target.path_of(b.address);
        copy_checked(
            &layout.path_of(b.address),
            &to,
            &blob_tmp,
            &b.digest,
            &mut buf,
        )?;
        tell(b.digest.bytes);
    }
    let install =
        options.install_key && (config.master_key.is_some() || config.master_key_file.is_some());
    ready_target(data, install.then_some(master))?;
    match &m.chain {
        Some(chain) => {
            file_copy::rebuild(&dest.root, chain, &data.join("store.redb"), &tmp, &mut buf)?
        }
        None => copy_checked(
            &snapshot,
            &data.join("store.redb"),
            &tmp,
            &m.metadata,
            &mut buf,
        )?,
    }
    copy::sync_all(data)?;
    tell(m.metadata_bytes());
    Ok(RestoreReport::of(data.clone(), generation, m))
}

impl RestoreReport {
    /// The report of a restore of `m` (its time is filled in at the end).
    pub(crate) fn of(data_dir: PathBuf, generation: u64, m: manifest::Manifest) -> RestoreReport {
        RestoreReport {
            data_dir,
            generation,
            created_at: m.created_at,
            bytes: m.total_bytes(),
            blobs: m.blobs.len() as u64,
            missing: m.missing.len() as u64,
            store_id: m.store_id,
            took_ms: 0,
        }
    }
}

/// Refuses a target that holds anything, unless forced.
pub(crate) fn check_target(data_dir: &Path, force: bool) -> Result<(), Error> {
    let empty = match std::fs::read_dir(data_dir) {
        Ok(mut d) => d.next().is_none(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
        Err(e) => return Err(Error::io(format!("reading {}", data_dir.display()), e)),
    };
    if !empty && !force {
        return Err(Error::invalid(
            "restore target",
            format!(
                "{} is not empty; restore into a new directory, or pass --force to replace the store there",
                data_dir.display()
            ),
        ));
    }
    // A store in use there keeps its file: replacing it under a running
    // process would lose what that process writes.
    let db = data_dir.join("store.redb");
    if !empty
        && db.exists()
        && let Err(redb::DatabaseError::DatabaseAlreadyOpen) = redb::Database::open(&db)
    {
        return Err(Error::Locked { path: db });
    }
    crate::fsutil::create_private_dir_all(data_dir)
        .map_err(|e| Error::io(format!("creating {}", data_dir.display()), e))
}

/// A backup file the manifest names and the backup lacks.
pub(crate) fn missing(path: &Path) -> Error {
    mismatch(path, "it is missing".into())
}

fn mismatch(path: &Path, detail: String) -> Error {
    Error::Integrity {
        what: format!("backup file {}", path.display()),
        detail,
    }
}

/// Checks a file against its manifest entry.
fn check(path: &Path, expected: &FileDigest, buf: &mut Vec<u8>) -> Result<(), Error> {
    match copy::digest(path, buf)? {
        None => Err(missing(path)),
        Some(d) => same(path, expected, &d),
    }
}

pub(crate) fn same(path: &Path, expected: &FileDigest, found: &FileDigest) -> Result<(), Error> {
    if found.bytes != expected.bytes {
        return Err(mismatch(
            path,
            format!(
                "{} bytes, the manifest says {}",
                found.bytes, expected.bytes
            ),
        ));
    }
    if found.sha256 != expected.sha256 {
        return Err(mismatch(path, "its SHA-256 is not the manifest's".into()));
    }
    Ok(())
}

/// Copies a file into place, hashing it again on the way: it reaches its
/// name only if it still matches.
fn copy_checked(
    from: &Path,
    to: &Path,
    tmp_dir: &Path,
    expected: &FileDigest,
    buf: &mut Vec<u8>,
) -> Result<(), Error> {
    let tmp = tmp_dir.join("restoring.part");
    let found = copy::copy_hashing(from, &tmp, buf)?;
    let checked = match found {
        None => Err(mismatch(from, "it is missing".into())),
        Some(d) => same(from, expected, &d),
    };
    if let Err(e) = checked {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    if let Some(parent) = to.parent() {
        crate::fsutil::create_private_dir_all(parent)
            .map_err(|e| Error::io(format!("creating {}", parent.display()), e))?;
    }
    std::fs::rename(&tmp, to).map_err(|e| Error::io(format!("renaming into {}", to.display()), e))
}

/// The last step before the restored `store.redb` goes in place: writes
/// `master` as the target's embedded key file when given, deletes the
/// target's `cache.redb` (it cached another store) and syncs the target.
pub(crate) fn ready_target(
    data: &Path,
    master: Option<&crate::blob::crypto::SecretKey>,
) -> Result<(), Error> {
    if let Some(master) = master {
        let (path, _) = crate::blob::keys::embedded_paths(data);
        crate::fsutil::write_file_durably(&path, master.to_hex().as_bytes(), 0o600)?;
    }
    let cache = data.join("cache.redb");
    match std::fs::remove_file(&cache) {
        Ok(()) => tracing::info!("deleted the target's cache.redb (it cached another store)"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io(format!("deleting {}", cache.display()), e)),
    }
    copy::sync_all(data)
}
