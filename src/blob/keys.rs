//! Key management: the master key, each owner's keys, rotation.
//!
//! ```text
//! master key (32 bytes: given, a key file, or <data-dir>/master.key)
//!   └─ wraps, per owner (table `keys`): key-encryption keys by version,
//!      and one address key
//!        └─ each KEK version wraps the data keys of the owner's blobs
//!           (table `blobs`); every blob has its own random data key
//! ```
//!
//! A check value in `meta` (a constant sealed under the master key) makes a
//! wrong master key fail at open with [`Error::WrongKey`]. Rotating the
//! master key re-wraps every owner row, and the audit key
//! (`blob::audit_key`), in one transaction.
//!
//! # Races with rotations
//!
//! Anything that wraps or unwraps under the master key inside a write
//! transaction takes the key with [`Keyring::master_in`], which picks the
//! key that opens the check value *in that transaction*: a master rotation
//! committed (or earlier in the same batch) is always seen, whatever key the
//! caller read before queuing its write. A put takes the owner's current
//! key version when it starts and may commit after a whole owner rotation
//! destroyed that version; its commit re-wraps the blob's data key onto the
//! version current in the commit's transaction ([`Keyring::wrap_for_commit`]),
//! so no committed blob is ever left on a destroyed version. Rotating an
//! owner's key adds a version for new writes, then re-wraps the data keys of
//! its blobs in small transactions (resumable: each step commits what it
//! moved, and a store reopened mid-rotation resumes); when none is left on
//! an old version, the old versions are destroyed. Blob files are never
//! rewritten by a rotation.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use base64::Engine;

use crate::blob::crypto::{SecretKey, WrappedKey, unwrap, wrap};
use crate::db::Db;
use crate::db::keys::{self as stored, OwnerKeysRecord};
use crate::db::sealing::{RecordKey, RecordKeys};
use crate::error::Error;
use crate::types::{BlobAddress, UserId};

const CHECK_CONTEXT: &[u8] = b"bharatvoice-store/master-key-check/v1";
const CHECK_VALUE: [u8; 32] = *b"bharatvoice-store master key ok!";

pub(crate) fn kek_context(owner: UserId, version: u32) -> Vec<u8> {
    let mut c = b"bv/kek/".to_vec();
    c.extend_from_slice(owner.as_uuid().as_bytes());
    c.extend_from_slice(&version.to_le_bytes());
    c
}

pub(crate) fn address_context(owner: UserId) -> Vec<u8> {
    let mut c = b"bv/address-key/".to_vec();
    c.extend_from_slice(owner.as_uuid().as_bytes());
    c
}

pub(crate) fn record_key_context(owner: UserId) -> Vec<u8> {
    let mut c = b"bv/record-key/".to_vec();
    c.extend_from_slice(owner.as_uuid().as_bytes());
    c
}

pub(crate) fn data_key_context(address: BlobAddress) -> Vec<u8> {
    let mut c = b"bv/data-key/".to_vec();
    c.extend_from_slice(&address.0);
    c
}

impl SecretKey {
    /// Parses 64 hex digits or base64 (standard or URL-safe, padded or not)
    /// of exactly 32 bytes; anything else is [`Error::InvalidKey`]. The text
    /// is never echoed in errors.
    pub fn parse(text: &str) -> Result<SecretKey, Error> {
        let t = text.trim();
        let bad = || Error::InvalidKey {
            origin: "the master key text".into(),
        };
        let bytes: Vec<u8> = if t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit()) {
            hex::decode(t).map_err(|_| bad())?
        } else {
            let engines = [
                base64::engine::general_purpose::STANDARD,
                base64::engine::general_purpose::STANDARD_NO_PAD,
                base64::engine::general_purpose::URL_SAFE,
                base64::engine::general_purpose::URL_SAFE_NO_PAD,
            ];
            engines
                .iter()
                .find_map(|e| e.decode(t).ok())
                .ok_or_else(bad)?
        };
        let arr: [u8; 32] = bytes.as_slice().try_into().map_err(|_| bad())?;
        Ok(SecretKey::from_bytes(arr))
    }

    /// Reads a key file: 32 raw bytes, or hex/base64 text (anything else is
    /// [`Error::InvalidKey`] naming the file). A file readable by group or
    /// others is refused with [`Error::InsecureKeyFile`].
    pub fn from_file(path: &Path) -> Result<SecretKey, Error> {
        let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::MissingKey {
                reason: format!("master key file {} does not exist", path.display()),
            },
            _ => Error::io(format!("reading key file {}", path.display()), e),
        })?;
        let mode = crate::fsutil::mode_of(&meta);
        if mode & 0o077 != 0 {
            return Err(Error::InsecureKeyFile {
                path: path.to_path_buf(),
                mode,
            });
        }
        let bytes = zeroize::Zeroizing::new(
            std::fs::read(path)
                .map_err(|e| Error::io(format!("reading key file {}", path.display()), e))?,
        );
        if let Ok(raw) = <[u8; 32]>::try_from(bytes.as_slice()) {
            return Ok(SecretKey::from_bytes(raw));
        }
        let bad = || Error::InvalidKey {
            origin: format!("key file {}", path.display()),
        };
        let text = std::str::from_utf8(&bytes).map_err(|_| bad())?;
        SecretKey::parse(text).map_err(|_| bad())
    }

    /// The key as 64 hex digits (for writing a key file).
    pub(crate) fn to_hex(&self) -> zeroize::Zeroizing<String> {
        zeroize::Zeroizing::new(hex::encode(self.bytes()))
    }
}

/// Where the master key of an open store came from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "path")]
pub enum MasterKeySource {
    /// Given in the configuration (or `BV_MASTER_KEY`).
    Given,
    /// A key file named in the configuration.
    File(PathBuf),
    /// The embedded default, `<data-dir>/master.key`, beside the data.
    Embedded(PathBuf),
}

/// The unwrapped keys of the open store, cached. Cheap to clone: write
/// closures take a clone to reach the master key inside their transaction.
#[derive(Clone)]
pub(crate) struct Keyring(Arc<KeyringState>);

pub(crate) struct KeyringState {
    masters: RwLock<Masters>,
    /// Held for the whole of a master rotation: one at a time.
    rotating_master: tokio::sync::Mutex<()>,
    source: MasterKeySource,
    keks: Mutex<HashMap<(UserId, u32), SecretKey>>,
    address_keys: Mutex<HashMap<UserId, SecretKey>>,
    /// Owners' record keys (`db::sealing`), derived from committed rows.
    record_keys: Mutex<HashMap<UserId, Arc<RecordKey>>>,
}

/// The master key, and during a rotation the key it is moving to.
struct Masters {
    current: SecretKey,
    next: Option<SecretKey>,
}

impl std::ops::Deref for Keyring {
    type Target = KeyringState;
    fn deref(&self) -> &KeyringState {
        &self.0
    }
}

fn read_check(db: &Db) -> Result<Option<WrappedKey>, Error> {
    db.read(stored::master_check)
}

fn check_opens(master: &SecretKey, check: &WrappedKey) -> bool {
    unwrap(master, check, CHECK_CONTEXT).is_some_and(|k| k.bytes() == &CHECK_VALUE)
}

fn make_check(master: &SecretKey) -> Result<WrappedKey, Error> {
    wrap(master, &SecretKey::from_bytes(CHECK_VALUE), CHECK_CONTEXT)
}

/// The master key a configuration gives, without a store: the key, the
/// key file, or `<data_dir>/master.key` if it exists (a restore checks a
/// backup with it before any store is there).
pub(crate) fn configured_master(config: &crate::Config) -> Result<SecretKey, Error> {
    match (&config.master_key, &config.master_key_file) {
        (Some(k), _) => Ok(k.clone()),
        (None, Some(path)) => SecretKey::from_file(path),
        (None, None) => {
            let (path, _) = embedded_paths(&config.data_dir);
            if path.exists() {
                SecretKey::from_file(&path)
            } else {
                Err(Error::MissingKey {
                    reason: format!(
                        "no master key was given and {} does not exist: pass the key the backup was made under (BV_MASTER_KEY, BV_MASTER_KEY_FILE or --key-file)",
                        path.display()
                    ),
                })
            }
        }
    }
}

/// The file of the embedded default key, and of a rotation's next key.
pub(crate) fn embedded_paths(data_dir: &Path) -> (PathBuf, PathBuf) {
    (
        data_dir.join("master.key"),
        data_dir.join("master.key.next"),
    )
}

impl Keyring {
    /// Finds the master key, proves it against the store's check value (or
    /// writes one for a new store), and returns the keyring.
    pub(crate) async fn open(db: &Db, config: &crate::Config) -> Result<Keyring, Error> {
        let check = read_check(db)?;
        let (master, source) = match (&config.master_key, &config.master_key_file) {
            (Some(k), _) => (k.clone(), MasterKeySource::Given),
            (None, Some(path)) => (
                SecretKey::from_file(path)?,
                MasterKeySource::File(path.clone()),
            ),
            (None, None) => Self::embedded(&config.data_dir, check.as_ref(), db.is_read_only())?,
        };
        match &check {
            Some(c) if !check_opens(&master, c) => {
                return Err(Error::WrongKey {
                    path: config.data_dir.clone(),
                });
            }
            Some(_) => {}
            // Nothing to check against, and nothing may be written.
            None if db.is_read_only() => {}
            None => {
                let check = make_check(&master)?;
                db.write(move |txn| stored::set_master_check(txn, &check))
                    .await?;
            }
        }
        let keyring = Keyring(Arc::new(KeyringState {
            masters: RwLock::new(Masters {
                current: master,
                next: None,
            }),
            rotating_master: tokio::sync::Mutex::new(()),
            source,
            keks: Mutex::new(HashMap::new()),
            address_keys: Mutex::new(HashMap::new()),
            record_keys: Mutex::new(HashMap::new()),
        }));
        db.install_sealer(Arc::new(keyring.clone()));
        crate::blob::audit_key::load(db, &keyring).await?;
        Ok(keyring)
    }

    /// The embedded default: `master.key` beside the data, made on first
    /// use; a rotation that committed but did not rename its next key is
    /// finished here.
    fn embedded(
        data_dir: &Path,
        check: Option<&WrappedKey>,
        read_only: bool,
    ) -> Result<(SecretKey, MasterKeySource), Error> {
        let (path, next) = embedded_paths(data_dir);
        if next.exists() && !read_only {
            let next_key = SecretKey::from_file(&next)?;
            if check.is_some_and(|c| check_opens(&next_key, c)) {
                crate::fsutil::persist(&next, &path)?;
                tracing::warn!(
                    "finished a master key rotation interrupted before its key file was renamed"
                );
            } else {
                std::fs::remove_file(&next)
                    .map_err(|e| Error::io("removing a stale master.key.next", e))?;
            }
        }
        if path.exists() {
            return Ok((
                SecretKey::from_file(&path)?,
                MasterKeySource::Embedded(path),
            ));
        }
        if check.is_some() || read_only {
            return Err(Error::MissingKey {
                reason: format!(
                    "the store at {} holds keys sealed under a master key, but none was given and {} is missing; pass the key (BV_MASTER_KEY or a key file) or restore master.key",
                    data_dir.display(),
                    path.display()
                ),
            });
        }
        let key = SecretKey::generate()?;
        crate::fsutil::write_file_durably(&path, key.to_hex().as_bytes(), 0o600)?;
        tracing::info!(path = %path.display(), "generated a master key beside the data; production should pass its own key");
        Ok((key, MasterKeySource::Embedded(path)))
    }

    pub(crate) fn source(&self) -> &MasterKeySource {
        &self.source
    }

    pub(crate) fn master(&self) -> SecretKey {
        match self.masters.read() {
            Ok(m) => m.current.clone(),
            Err(poisoned) => poisoned.into_inner().current.clone(),
        }
    }

    /// The master key that opens the check value as `txn` sees it: the
    /// current key, or the one a rotation is moving to once its re-wrap is
    /// in `txn` (see the module doc).
    pub(crate) fn master_in(&self, txn: &redb::WriteTransaction) -> Result<SecretKey, Error> {
        let Some(check) = stored::master_check(txn)? else {
            return Ok(self.master());
        };
        self.under_masters(|k| {
            check_opens(k, &check).then(|| k.clone()).ok_or_else(|| {
                Error::corrupt(
                    "master key check",
                    "neither the current master key nor a rotation's next key opens it",
                )
            })
        })
    }

    /// The key version and wrapped data key a blob commits with, read
    /// against the owner's row in the commit's own transaction: a put that
    /// took `version` before a rotation moved on re-wraps `data_key` onto
    /// the current version (a KEK is only destroyed once no committed blob
    /// uses it, and this blob is not committed yet).
    pub(crate) fn wrap_for_commit(
        &self,
        txn: &redb::WriteTransaction,
        owner: UserId,
        address: BlobAddress,
        version: u32,
        data_key: Option<&SecretKey>,
        wrapped: Option<WrappedKey>,
    ) -> Result<(u32, Option<WrappedKey>), Error> {
        let row = stored::get(txn, owner)?.ok_or_else(|| Error::MissingKey {
            reason: format!("the keys of user {owner} are gone (erased?)"),
        })?;
        if row.current == version {
            return Ok((version, wrapped));
        }
        let rewrapped = match data_key {
            Some(k) => {
                let kek = self.unwrap_kek(&row, owner, row.current)?;
                Some(wrap(&kek, k, &data_key_context(address))?)
            }
            None => None,
        };
        tracing::debug!(owner = %owner, from = version, to = row.current, "put re-wrapped onto the current key version");
        Ok((row.current, rewrapped))
    }

    fn cached<K: std::hash::Hash + Eq>(
        map: &Mutex<HashMap<K, SecretKey>>,
        k: &K,
    ) -> Option<SecretKey> {
        map.lock().ok().and_then(|m| m.get(k).cloned())
    }

    fn remember<K: std::hash::Hash + Eq>(map: &Mutex<HashMap<K, SecretKey>>, k: K, v: &SecretKey) {
        if let Ok(mut m) = map.lock() {
            m.insert(k, v.clone());
        }
    }

    /// The owner's key row, if it has one.
    pub(crate) fn row(db: &Db, owner: UserId) -> Result<Option<OwnerKeysRecord>, Error> {
        db.read(|txn| stored::get(txn, owner))
    }

    /// Unwraps KEK `version` from an owner row.
    pub(crate) fn unwrap_kek(
        &self,
        row: &OwnerKeysRecord,
        owner: UserId,
        version: u32,
    ) -> Result<SecretKey, Error> {
        if let Some(k) = Self::cached(&self.keks, &(owner, version)) {
            return Ok(k);
        }
        let kek = self.under_masters(|m| unwrap_version(m, row, owner, version))?;
        Self::remember(&self.keks, (owner, version), &kek);
        Ok(kek)
    }

    /// `f` under the current master key, else under a rotation's next one:
    /// while a master rotation commits, a row may be wrapped under either.
    fn under_masters<T>(&self, f: impl Fn(&SecretKey) -> Result<T, Error>) -> Result<T, Error> {
        let (current, next) = {
            let m = match self.masters.read() {
                Ok(m) => m,
                Err(p) => p.into_inner(),
            };
            (m.current.clone(), m.next.clone())
        };
        match (f(&current), next) {
            (Err(_), Some(next)) => f(&next),
            (result, _) => result,
        }
    }

    /// Unwraps the owner's address key from its row.
    pub(crate) fn unwrap_address(
        &self,
        row: &OwnerKeysRecord,
        owner: UserId,
    ) -> Result<SecretKey, Error> {
        if let Some(k) = Self::cached(&self.address_keys, &owner) {
            return Ok(k);
        }
        let key = self.under_masters(|m| unwrap_address_under(m, row, owner))?;
        Self::remember(&self.address_keys, owner, &key);
        Ok(key)
    }

    /// The owner's current KEK version and key, and its address key;
    /// creates the owner's keys on first use.
    pub(crate) async fn write_keys(
        &self,
        db: &Db,
        owner: UserId,
    ) -> Result<(u32, SecretKey, SecretKey), Error> {
        let existing = across_master_rotation(|| match Self::row(db, owner)? {
            Some(row) => self.current_keys(&row, owner).map(Some),
            None => Ok(None),
        })?;
        if let Some(keys) = existing {
            return Ok(keys);
        }
        let keyring = self.clone();
        db.write(move |txn| {
            crate::db::users::require_live(txn, owner)?;
            // Wrapped and unwrapped under the master key this transaction sees.
            let master = keyring.master_in(txn)?;
            let row = match stored::get(txn, owner)? {
                Some(existing) => existing,
                None => {
                    let fresh = Self::fresh_row(&master, owner)?;
                    stored::put(txn, owner, &fresh)?;
                    fresh
                }
            };
            let kek = unwrap_version(&master, &row, owner, row.current)?;
            let address = unwrap_address_under(&master, &row, owner)?;
            Ok((row.current, kek, address))
        })
        .await
    }

    /// The current KEK version and key, and the address key, of a row.
    fn current_keys(
        &self,
        row: &OwnerKeysRecord,
        owner: UserId,
    ) -> Result<(u32, SecretKey, SecretKey), Error> {
        let kek = self.unwrap_kek(row, owner, row.current)?;
        let address = self.unwrap_address(row, owner)?;
        Ok((row.current, kek, address))
    }

    /// The data key of a blob, unwrapped, from the owner's key row read in
    /// the same snapshot as the blob's row (a rotation step between two
    /// reads could move the blob and destroy its old version).
    pub(crate) fn data_key(
        &self,
        row: Option<&OwnerKeysRecord>,
        owner: UserId,
        address: BlobAddress,
        version: u32,
        wrapped: &WrappedKey,
    ) -> Result<SecretKey, Error> {
        let row = row.ok_or_else(|| Error::MissingKey {
            reason: format!(
                "the keys of user {owner} are gone (erased?); its blobs cannot be read"
            ),
        })?;
        let kek = self.unwrap_kek(row, owner, version)?;
        unwrap(&kek, wrapped, &data_key_context(address)).ok_or_else(|| {
            Error::corrupt(format!("blob {address}"), "its data key does not unwrap")
        })
    }

    /// Serialises master rotations.
    pub(crate) async fn lock_master_rotation(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.rotating_master.lock().await
    }

    /// Announces the key a master rotation moves to, before its re-wrap is
    /// queued, so that [`master_in`](Self::master_in) finds it in any
    /// transaction that sees the re-wrap.
    /// The key a rotation is moving to, if one is announced.
    pub(crate) fn next_master(&self) -> Option<SecretKey> {
        match self.masters.read() {
            Ok(m) => m.next.clone(),
            Err(poisoned) => poisoned.into_inner().next.clone(),
        }
    }

    pub(crate) fn set_next_master(&self, next: Option<SecretKey>) {
        match self.masters.write() {
            Ok(mut m) => m.next = next,
            Err(poisoned) => poisoned.into_inner().next = next,
        }
    }

    /// Makes the announced next key current, after the re-wrap committed.
    pub(crate) fn set_master(&self, new: SecretKey) {
        let mut m = match self.masters.write() {
            Ok(m) => m,
            Err(poisoned) => poisoned.into_inner(),
        };
        m.current = new;
        m.next = None;
    }

    /// Forgets cached keys of an owner (after a rotation or erasure).
    pub(crate) fn forget(&self, owner: UserId) {
        if let Ok(mut m) = self.keks.lock() {
            m.retain(|(o, _), _| *o != owner);
        }
        if let Ok(mut m) = self.address_keys.lock() {
            m.remove(&owner);
        }
        if let Ok(mut m) = self.record_keys.lock() {
            m.remove(&owner);
        }
    }

    /// A fresh key row: KEK version 1 and an address key, wrapped under
    /// `master`.
    fn fresh_row(master: &SecretKey, owner: UserId) -> Result<OwnerKeysRecord, Error> {
        let (kek, address) = (SecretKey::generate()?, SecretKey::generate()?);
        Ok(OwnerKeysRecord {
            current: 1,
            versions: vec![(1, wrap(master, &kek, &kek_context(owner, 1))?)],
            address: wrap(master, &address, &address_context(owner))?,
            rotating: false,
        })
    }
}

impl RecordKeys for Keyring {
    fn unwrap(&self, owner: UserId, wrapped: &WrappedKey) -> Result<RecordKey, Error> {
        let key = self.under_masters(|m| {
            unwrap(m, wrapped, &record_key_context(owner)).ok_or_else(|| {
                Error::corrupt(
                    "record key",
                    format!("the record key of {owner} does not unwrap"),
                )
            })
        })?;
        Ok(RecordKey::new(&key))
    }

    fn generate(
        &self,
        txn: &redb::WriteTransaction,
        owner: UserId,
    ) -> Result<(RecordKey, WrappedKey), Error> {
        let key = SecretKey::generate()?;
        let wrapped = wrap(&self.master_in(txn)?, &key, &record_key_context(owner))?;
        Ok((RecordKey::new(&key), wrapped))
    }

    fn cached(&self, owner: UserId) -> Option<Arc<RecordKey>> {
        self.record_keys.lock().ok()?.get(&owner).cloned()
    }

    fn remember(&self, owner: UserId, key: &Arc<RecordKey>) {
        if let Ok(mut m) = self.record_keys.lock() {
            m.insert(owner, Arc::clone(key));
        }
    }
}

/// Unwraps key-encryption key `version` of an owner row under `master`.
pub(crate) fn unwrap_version(
    master: &SecretKey,
    row: &OwnerKeysRecord,
    owner: UserId,
    version: u32,
) -> Result<SecretKey, Error> {
    let wrapped = row
        .versions
        .iter()
        .find(|(v, _)| *v == version)
        .map(|(_, w)| w)
        .ok_or_else(|| {
            Error::corrupt(
                "owner key record",
                format!("{owner} has no key version {version}"),
            )
        })?;
    unwrap(master, wrapped, &kek_context(owner, version)).ok_or_else(|| {
        Error::corrupt(
            "owner key record",
            format!("key version {version} of {owner} does not unwrap"),
        )
    })
}

/// Runs `read_and_unwrap` (a read of key rows from the shared snapshot and
/// an unwrap under the master key) once more if it could not unwrap: a
/// snapshot taken just before a master rotation committed holds rows under
/// the old key, which is gone once the rotation has made the new one
/// current; a fresh snapshot holds them under the new key.
pub(crate) fn across_master_rotation<T>(
    mut read_and_unwrap: impl FnMut() -> Result<T, Error>,
) -> Result<T, Error> {
    match read_and_unwrap() {
        Err(Error::Corrupt { .. }) => read_and_unwrap(),
        other => other,
    }
}

/// Unwraps the address key of an owner row under `master`.
fn unwrap_address_under(
    master: &SecretKey,
    row: &OwnerKeysRecord,
    owner: UserId,
) -> Result<SecretKey, Error> {
    unwrap(master, &row.address, &address_context(owner)).ok_or_else(|| {
        Error::corrupt(
            "owner key record",
            format!("address key of {owner} does not unwrap"),
        )
    })
}

/// Re-wraps every owner row from `old` to `new` and writes the new check
/// value, inside one write transaction. Returns the number of owners.
pub(crate) fn rewrap_all(
    txn: &redb::WriteTransaction,
    old: &SecretKey,
    new: &SecretKey,
) -> Result<usize, Error> {
    let rows = stored::all(txn)?;
    let moved = rows.len();
    let mut rewritten = Vec::with_capacity(rows.len());
    for (owner, mut row) in rows {
        let fail = || {
            Error::corrupt(
                "owner key record",
                format!("{owner} does not unwrap under the current master key"),
            )
        };
        for (version, wrapped) in &mut row.versions {
            let ctx = kek_context(owner, *version);
            let kek = unwrap(old, wrapped, &ctx).ok_or_else(fail)?;
            *wrapped = wrap(new, &kek, &ctx)?;
        }
        let ctx = address_context(owner);
        let address = unwrap(old, &row.address, &ctx).ok_or_else(fail)?;
        row.address = wrap(new, &address, &ctx)?;
        rewritten.push((owner, row));
    }
    for (owner, row) in rewritten {
        stored::put(txn, owner, &row)?;
    }
    for (owner, wrapped) in stored::all_record_keys(txn)? {
        let ctx = record_key_context(owner);
        let key = unwrap(old, &wrapped, &ctx).ok_or_else(|| {
            Error::corrupt(
                "record key",
                format!("the record key of {owner} does not unwrap under the current master key"),
            )
        })?;
        stored::put_record_key(txn, owner, &wrap(new, &key, &ctx)?)?;
    }
    crate::blob::audit_key::rewrap(txn, old, new)?;
    stored::set_master_check(txn, &make_check(new)?)?;
    Ok(moved)
}
