//! The key API: `store.keys()`: status and rotation.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::blob::crypto::SecretKey;
use crate::blob::keys::{Keyring, MasterKeySource, embedded_paths, rewrap_all};
use crate::blob::rotation::{self, RotationProgress};
use crate::db::Db;
use crate::error::Error;
use crate::jobs::JobRuntime;
use crate::types::UserId;

/// Key management; from [`Store::keys`](crate::Store::keys).
///
/// ```
/// # use bharatvoice_store::*;
/// # #[tokio::main] async fn main() -> Result<(), Error> {
/// # let dir = tempfile::tempdir().unwrap();
/// let new_key = MasterKey::generate()?;
/// let store = Store::open(Config::new(dir.path())).await?;
/// store.keys().rotate_master(new_key.clone()).await?;
/// drop(store);
/// // The embedded master.key now holds the new key.
/// let store = Store::open(Config::new(dir.path())).await?;
/// # drop(store);
/// let wrong = Store::open(Config::new(dir.path()).master_key(MasterKey::generate()?)).await;
/// assert!(matches!(wrong, Err(Error::WrongKey { .. })));
/// # Ok(()) }
/// ```
pub struct Keys<'a> {
    pub(crate) db: &'a Db,
    pub(crate) keyring: &'a Keyring,
    pub(crate) data_dir: &'a Path,
    pub(crate) jobs: &'a JobRuntime,
}

/// The state of the keyring.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyStatus {
    /// Where the master key came from.
    pub master_key: MasterKeySource,
    /// Owners that have keys (that stored a file).
    pub owners: usize,
    /// Owners whose key rotation is still moving blobs.
    pub rotating: Vec<UserId>,
    /// Stored blobs.
    pub blobs: u64,
}

/// What a master key rotation did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MasterRotation {
    /// Owner key rows re-wrapped.
    pub owners: usize,
    /// The key file that now holds the new key, when the store uses the
    /// embedded `master.key`; otherwise pass the new key from now on.
    pub key_file: Option<PathBuf>,
}

impl Keys<'_> {
    /// Where the master key came from, and what the keyring holds.
    pub async fn status(&self) -> Result<KeyStatus, Error> {
        crate::telemetry::observe(
            &self.db.telemetry,
            crate::telemetry::op_key!("keys.status"),
            async {
                let source = self.keyring.source().clone();
                self.db
                    .scan(move |txn| {
                        let rows = crate::db::keys::all(txn)?;
                        let owners = rows.len();
                        let rotating = rows
                            .into_iter()
                            .filter(|(_, row)| row.rotating)
                            .map(|(owner, _)| owner)
                            .collect();
                        let blobs = crate::db::blobs::count(txn)?;
                        Ok(KeyStatus {
                            master_key: source,
                            owners,
                            rotating,
                            blobs,
                        })
                    })
                    .await
            },
        )
        .await
    }

    /// Re-wraps every owner key under `new` in one transaction. Afterwards
    /// the old key no longer opens the store and the new one does. With the
    /// embedded `master.key`, the file is replaced (through
    /// `master.key.next`, so a crash at any point leaves a key that opens
    /// the store).
    #[tracing::instrument(skip_all)]
    pub async fn rotate_master(&self, new: SecretKey) -> Result<MasterRotation, Error> {
        crate::telemetry::observe(
            &self.db.telemetry,
            crate::telemetry::op_key!("keys.rotate_master"),
            async {
                let keyring = self.keyring;
                let _one_at_a_time = keyring.lock_master_rotation().await;
                settle_failed_rotation(self.db, keyring, self.data_dir).await?;
                let old = keyring.master();
                if old == new {
                    return Err(Error::invalid(
                        "master key",
                        "the new key is the current key",
                    ));
                }
                let embedded = match keyring.source() {
                    MasterKeySource::Embedded(_) => Some(embedded_paths(self.data_dir)),
                    _ => None,
                };
                if let Some((_, next)) = &embedded {
                    crate::fsutil::write_file_durably(next, new.to_hex().as_bytes(), 0o600)?;
                }
                // Writes queued behind the re-wrap must wrap under the new key.
                keyring.set_next_master(Some(new.clone()));
                let new_for_txn = new.clone();
                let now = self.db.now();
                let result = self
                    .db
                    .write_audited(
                        move |txn| rewrap_all(txn, &old, &new_for_txn),
                        move |_| {
                            let entry = crate::audit::Entry::new(
                                now,
                                crate::audit::SYSTEM,
                                "key.rotate_master",
                                "store",
                            );
                            vec![entry]
                        },
                    )
                    .await;
                let owners = match result {
                    Ok(n) => n,
                    // A refused request surely changed nothing.
                    Err(e) if e.surely_wrote_nothing() => {
                        keyring.set_next_master(None);
                        if let Some((_, next)) = &embedded {
                            let _ = std::fs::remove_file(next);
                        }
                        return Err(e);
                    }
                    // A commit that failed in the engine (a write or sync
                    // error) may be on disk all the same, every key
                    // wrapped under the new master: the new key stays
                    // known (in memory and in its file), so whichever
                    // key opens the store is used, until the next open or
                    // rotation settles it.
                    Err(e) => return Err(e),
                };
                keyring.set_master(new);
                let key_file = match embedded {
                    Some((path, next)) => {
                        crate::fsutil::persist(&next, &path)?;
                        Some(path)
                    }
                    None => None,
                };
                tracing::info!(owners, "master key rotated");
                Ok(MasterRotation { owners, key_file })
            },
        )
        .await
    }

    /// Starts rotating `owner`'s key: new writes use a new version at once,
    /// and a background task re-wraps the data keys of its blobs, then
    /// destroys the old version. Resumes after a restart. Returns the new
    /// version.
    #[tracing::instrument(skip(self, owner), fields(owner = %owner))]
    pub async fn rotate_owner(&self, owner: UserId) -> Result<u32, Error> {
        crate::telemetry::observe(
            &self.db.telemetry,
            crate::telemetry::op_key!("keys.rotate_owner"),
            async {
                let version = rotation::begin(self.db, self.keyring, owner).await?;
                self.jobs.trigger(rotation::JOB);
                Ok(version)
            },
        )
        .await
    }

    /// Starts a rotation without the background task (drive it with
    /// [`rotation_step`](Self::rotation_step); a reopened store finishes it).
    pub async fn begin_owner_rotation(&self, owner: UserId) -> Result<u32, Error> {
        crate::telemetry::observe(
            &self.db.telemetry,
            crate::telemetry::op_key!("keys.begin_owner_rotation"),
            async { rotation::begin(self.db, self.keyring, owner).await },
        )
        .await
    }

    /// The live key versions of an owner, oldest first (empty if it has none).
    pub fn owner_key_versions(&self, owner: UserId) -> Result<Vec<u32>, Error> {
        crate::telemetry::observe_sync(
            &self.db.telemetry,
            crate::telemetry::op_key!("keys.owner_key_versions"),
            || {
                let row = crate::blob::keys::Keyring::row(self.db, owner)?;
                Ok(row
                    .map(|r| r.versions.iter().map(|(v, _)| *v).collect())
                    .unwrap_or_default())
            },
        )
    }

    /// One step of an owner's rotation: re-wraps up to `limit` blobs (the
    /// background task runs these; call it to drive a rotation by hand).
    pub async fn rotation_step(
        &self,
        owner: UserId,
        limit: usize,
    ) -> Result<RotationProgress, Error> {
        crate::telemetry::observe(
            &self.db.telemetry,
            crate::telemetry::op_key!("keys.rotation_step"),
            async { rotation::step(self.db, self.keyring, owner, limit).await },
        )
        .await
    }
}

/// Settles a master rotation whose commit failed in the engine (see
/// [`Keys::rotate_master`]): the key that opens the store as committed
/// becomes the current one, and `master.key.next` is renamed into place or
/// removed to match, as the next open would.
async fn settle_failed_rotation(db: &Db, keyring: &Keyring, data_dir: &Path) -> Result<(), Error> {
    let Some(next) = keyring.next_master() else {
        return Ok(());
    };
    let k = keyring.clone();
    // A write transaction: it sees the last commit on disk (the writer
    // reopens the file first after an I/O error).
    let effective = db.write(move |txn| k.master_in(txn)).await?;
    let embedded =
        matches!(keyring.source(), MasterKeySource::Embedded(_)).then(|| embedded_paths(data_dir));
    if effective == next {
        keyring.set_master(next);
        if let Some((path, next)) = embedded {
            crate::fsutil::persist(&next, &path)?;
        }
        tracing::warn!("finished a master key rotation whose commit failed but landed");
    } else {
        keyring.set_next_master(None);
        if let Some((_, next)) = embedded {
            let _ = std::fs::remove_file(next);
        }
    }
    Ok(())
}
