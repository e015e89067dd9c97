//! Blob rows: which owner a stored blob belongs to, how many file records
//! point at it, and its data key (wrapped under the owner's key). The blob
//! layer commits a file record and its blob row in one transaction.

use redb::{ReadableTable, ReadableTableMetadata, WriteTransaction};
use serde::{Deserialize, Serialize};

use crate::db::codec::{self, Record};
use crate::db::files::insert_record;
use crate::db::keys::WrappedKey;
use crate::db::schema::{BLOBS, BLOBS_BY_OWNER};
use crate::db::txn::ReadTxn;
use crate::error::{Error, StorageContext};
use crate::model::file::{AudioFile, NewAudioFile};
use crate::types::{BlobAddress, Timestamp, UserId};

/// One stored blob.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct BlobRow {
    pub(crate) owner: UserId,
    pub(crate) refcount: u64,
    pub(crate) plain_bytes: u64,
    pub(crate) stored_bytes: u64,
    /// Owner key version that wraps `data_key`.
    pub(crate) key_version: u32,
    /// The blob's own data key; `None` for blobs stored unencrypted.
    pub(crate) data_key: Option<WrappedKey>,
    pub(crate) created_at: Timestamp,
}

impl Record for BlobRow {
    codec::stored_as_is!("blob row", 1);
}

/// Reads a blob row.
pub(crate) fn get_row(txn: &impl ReadTxn, address: BlobAddress) -> Result<Option<BlobRow>, Error> {
    row_in(&txn.table(BLOBS)?, address)
}

/// [`get_row`] from the open `blobs` table.
pub(crate) fn row_in(
    blobs: &impl ReadableTable<[u8; 32], &'static [u8]>,
    address: BlobAddress,
) -> Result<Option<BlobRow>, Error> {
    match blobs.get(address.0).ctx("reading blobs")? {
        Some(v) => codec::decode::<BlobRow>(v.value(), address).map(Some),
        None => Ok(None),
    }
}

/// Writes a blob row.
pub(crate) fn put_row(
    txn: &WriteTransaction,
    address: BlobAddress,
    row: &BlobRow,
) -> Result<(), Error> {
    put_row_in(
        &mut txn.open_table(BLOBS).ctx("opening blobs")?,
        address,
        row,
    )
}

/// [`put_row`] into the open `blobs` table.
pub(crate) fn put_row_in(
    blobs: &mut redb::Table<[u8; 32], &'static [u8]>,
    address: BlobAddress,
    row: &BlobRow,
) -> Result<(), Error> {
    let bytes = codec::encode(row)?;
    blobs
        .insert(address.0, bytes.as_slice())
        .ctx("writing blobs")?;
    Ok(())
}

/// Commits a stored file: its record, and its blob row (new, or one more
/// reference to an existing one). `new` was validated by the caller
/// (`db::files::check`) before its blob was sealed. Returns the record
/// and whether the blob was already stored.
pub(crate) fn commit_file(
    txn: &WriteTransaction,
    new: &NewAudioFile,
    fresh_row: &BlobRow,
    quota: Option<u64>,
) -> Result<(AudioFile, bool), Error> {
    crate::db::users::require_live(txn, new.owner)?;
    let existing = get_row(txn, new.blob)?;
    let deduplicated = existing.is_some();
    if !deduplicated {
        // Checked before anything is written (see db::writer).
        crate::db::usage::charge(txn, new.owner, fresh_row.stored_bytes, quota)?;
    }
    let row = match existing {
        Some(mut row) => {
            if row.owner != new.owner {
                return Err(Error::corrupt(
                    "blob row",
                    format!("{} belongs to another owner", new.blob),
                ));
            }
            row.refcount += 1;
            row
        }
        None => {
            txn.open_table(BLOBS_BY_OWNER)
                .ctx("opening blobs_by_owner")?
                .insert((new.owner.to_key(), new.blob.0), ())
                .ctx("writing blobs_by_owner")?;
            fresh_row.clone()
        }
    };
    put_row(txn, new.blob, &row)?;
    let mut record = new.clone();
    record.key_version = row.key_version;
    let file = insert_record(txn, &record, fresh_row.created_at)?;
    Ok((file, deduplicated))
}

/// Up to `limit` of the owner's blobs whose data key is not wrapped under
/// key version `current`, in address order.
pub(crate) fn of_owner_not_on(
    txn: &impl ReadTxn,
    owner: UserId,
    current: u32,
    limit: usize,
) -> Result<Vec<(BlobAddress, BlobRow)>, Error> {
    let by_owner = txn.table(BLOBS_BY_OWNER)?;
    let o = owner.to_key();
    let mut out = Vec::new();
    for entry in by_owner
        .range((o, [0u8; 32])..=(o, [0xff; 32]))
        .ctx("scanning blobs_by_owner")?
    {
        let address = BlobAddress(entry.ctx("scanning blobs_by_owner")?.0.value().1);
        if let Some(b) = get_row(txn, address)?
            && b.key_version != current
        {
            out.push((address, b));
            if out.len() == limit {
                break;
            }
        }
    }
    Ok(out)
}

/// How many blobs are stored.
pub(crate) fn count(txn: &impl ReadTxn) -> Result<u64, Error> {
    txn.table(BLOBS)?.len().ctx("counting blobs")
}
