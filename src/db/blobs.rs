//! Blob rows: which owner a stored blob belongs to, how many file records
//! point at it, and its data key (wrapped under the owner's key). The blob
//! layer commits a file record and its blob row in one transaction.

use redb::{ReadableTable, WriteTransaction};
use serde::{Deserialize, Serialize};

use crate::blob::crypto::WrappedKey;
use crate::db::codec::{self, Record};
use crate::db::files::insert_record;
use crate::db::schema::{BLOBS, BLOBS_BY_OWNER};
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
    const KIND: &'static str = "blob row";
    const VERSION: u8 = 1;
}

/// Reads a blob row.
pub(crate) fn get_row(
    table: &impl ReadableTable<[u8; 32], &'static [u8]>,
    address: BlobAddress,
) -> Result<Option<BlobRow>, Error> {
    match table.get(address.0).ctx("reading blobs")? {
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
    let bytes = codec::encode(row)?;
    txn.open_table(BLOBS)
        .ctx("opening blobs")?
        .insert(address.0, bytes.as_slice())
        .ctx("writing blobs")?;
    Ok(())
}

/// Commits a stored file: its record, and its blob row (new, or one more
/// reference to an existing one). Returns the record and whether the blob
/// was already stored.
pub(crate) fn commit_file(
    txn: &WriteTransaction,
    new: &NewAudioFile,
    fresh_row: &BlobRow,
) -> Result<(AudioFile, bool), Error> {
    crate::db::files::check(new)?;
    crate::db::users::require_live(txn, new.owner)?;
    let existing = {
        let blobs = txn.open_table(BLOBS).ctx("opening blobs")?;
        get_row(&blobs, new.blob)?
    };
    let deduplicated = existing.is_some();
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
