//! The keyring row of each owner (its key-encryption keys by version and
//! its address key) and the master key check value, all wrapped under the
//! master key. `db` stores wrapped keys as opaque bytes; only the blob
//! layer wraps and unwraps them.

use redb::{ReadableTable, WriteTransaction};
use serde::{Deserialize, Serialize};

use crate::db::codec::{self, Record};
use crate::db::schema::{KEYS, MASTER_CHECK_KEY, RECORD_KEYS};
use crate::db::txn::ReadTxn;
use crate::error::{Error, StorageContext};
use crate::types::UserId;

/// A key sealed under another key, as stored: a nonce and the sealed
/// bytes, never interpreted here.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct WrappedKey {
    nonce: [u8; 12],
    sealed: Vec<u8>,
}

impl WrappedKey {
    pub(crate) fn new(nonce: [u8; 12], sealed: Vec<u8>) -> Self {
        WrappedKey { nonce, sealed }
    }
    pub(crate) fn nonce(&self) -> &[u8; 12] {
        &self.nonce
    }
    pub(crate) fn sealed(&self) -> &[u8] {
        &self.sealed
    }
}

impl std::fmt::Debug for WrappedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WrappedKey([sealed])")
    }
}

/// An owner's keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct OwnerKeysRecord {
    /// The version new blobs are sealed under.
    pub(crate) current: u32,
    /// Every live version, oldest first: (version, wrapped key-encryption key).
    pub(crate) versions: Vec<(u32, WrappedKey)>,
    /// The key of the owner's content addresses (never rotated: it keeps
    /// deduplication working across key versions).
    pub(crate) address: WrappedKey,
    /// A rotation moved new writes to `current` and old blobs are still
    /// being re-wrapped; old versions are destroyed when it finishes.
    pub(crate) rotating: bool,
}

impl Record for OwnerKeysRecord {
    codec::stored_as_is!("owner key record", 1);
}

/// The owner's key row, if it has one.
pub(crate) fn get(txn: &impl ReadTxn, owner: UserId) -> Result<Option<OwnerKeysRecord>, Error> {
    crate::db::get_record(&txn.table(KEYS)?, owner.to_key(), owner)
}

/// Writes the owner's key row.
pub(crate) fn put(
    txn: &WriteTransaction,
    owner: UserId,
    row: &OwnerKeysRecord,
) -> Result<(), Error> {
    let mut keys = txn.open_table(KEYS).ctx("opening keys")?;
    crate::db::put_record(&mut keys, owner.to_key(), row)
}

/// Destroys the owner's key row (every key-encryption key and the
/// address key): from the commit on, nothing sealed under them opens.
/// `false` if there was none.
pub(crate) fn destroy(txn: &WriteTransaction, owner: UserId) -> Result<bool, Error> {
    let mut keys = txn.open_table(KEYS).ctx("opening keys")?;
    Ok(keys.remove(owner.to_key()).ctx("writing keys")?.is_some())
}

/// The owner's wrapped record key (`db::sealing`), if it has one.
pub(crate) fn record_key(txn: &impl ReadTxn, owner: UserId) -> Result<Option<WrappedKey>, Error> {
    match txn
        .table(RECORD_KEYS)?
        .get(owner.to_key())
        .ctx("reading record_keys")?
    {
        Some(v) => {
            codec::decode_versioned(1, v.value(), || format!("record key of {owner}")).map(Some)
        }
        None => Ok(None),
    }
}

/// Writes the owner's wrapped record key.
pub(crate) fn put_record_key(
    txn: &WriteTransaction,
    owner: UserId,
    wrapped: &WrappedKey,
) -> Result<(), Error> {
    let bytes = codec::encode_versioned(1, wrapped)?;
    txn.open_table(RECORD_KEYS)
        .ctx("opening record_keys")?
        .insert(owner.to_key(), bytes.as_slice())
        .ctx("writing record_keys")?;
    Ok(())
}

/// Destroys the owner's record key: from the commit on, none of its
/// sealed fields opens. `false` if there was none.
pub(crate) fn destroy_record_key(txn: &WriteTransaction, owner: UserId) -> Result<bool, Error> {
    let mut keys = txn.open_table(RECORD_KEYS).ctx("opening record_keys")?;
    Ok(keys
        .remove(owner.to_key())
        .ctx("writing record_keys")?
        .is_some())
}

/// Every owner's wrapped record key, in owner order.
pub(crate) fn all_record_keys(txn: &impl ReadTxn) -> Result<Vec<(UserId, WrappedKey)>, Error> {
    let keys = txn.table(RECORD_KEYS)?;
    let mut out = Vec::new();
    for entry in keys.iter().ctx("reading record_keys")? {
        let (k, v) = entry.ctx("reading record_keys")?;
        let owner = UserId::from_key(k.value());
        out.push((
            owner,
            codec::decode_versioned(1, v.value(), || format!("record key of {owner}"))?,
        ));
    }
    Ok(out)
}

/// Every owner's key row, in owner order.
pub(crate) fn all(txn: &impl ReadTxn) -> Result<Vec<(UserId, OwnerKeysRecord)>, Error> {
    let keys = txn.table(KEYS)?;
    let mut out = Vec::new();
    for entry in keys.iter().ctx("reading keys")? {
        let (k, v) = entry.ctx("reading keys")?;
        let owner = UserId::from_key(k.value());
        out.push((owner, codec::decode::<OwnerKeysRecord>(v.value(), owner)?));
    }
    Ok(out)
}

/// The master key check value, if the store has one yet.
pub(crate) fn master_check(txn: &impl ReadTxn) -> Result<Option<WrappedKey>, Error> {
    crate::db::get_meta(txn, MASTER_CHECK_KEY, "master key check")
}

/// Writes the master key check value.
pub(crate) fn set_master_check(txn: &WriteTransaction, check: &WrappedKey) -> Result<(), Error> {
    crate::db::set_meta(txn, MASTER_CHECK_KEY, check)
}

/// `meta` key of the audit key, wrapped under the master key.
const AUDIT_KEY: &str = "audit_key";

/// The wrapped audit key, if the store has one yet (see `db::audit`).
pub(crate) fn audit_key(txn: &impl ReadTxn) -> Result<Option<WrappedKey>, Error> {
    crate::db::get_meta(txn, AUDIT_KEY, "audit key")
}

/// Writes the wrapped audit key.
pub(crate) fn set_audit_key(txn: &WriteTransaction, wrapped: &WrappedKey) -> Result<(), Error> {
    crate::db::set_meta(txn, AUDIT_KEY, wrapped)
}
