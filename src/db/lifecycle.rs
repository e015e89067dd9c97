//! What the lifecycle jobs read and change: records past their retention,
//! soft-deleted records past the grace period, blob references, damaged
//! blobs and old metric samples.
//!
//! Every change re-checks, in its own write transaction, what the plan
//! read from an earlier snapshot: a file restored or a blob given a new
//! reference since then is left alone. Purging a file and releasing its
//! blob happen in one transaction, and a blob's row, which holds its
//! wrapped data key, goes in the same transaction as its last reference
//! (crypto-shredding: without that key the sealed bytes cannot be read).

use redb::{ReadableTable, WriteTransaction};
use serde::{Deserialize, Serialize};

use crate::db::blobs::BlobRow;
use crate::db::codec::{self, Record};
use crate::db::removal::Removal;
use crate::db::schema::{
    BLOBS, DAMAGED_BLOBS, FILES, FILES_BY_BLOB, FILES_BY_DELETED, FILES_BY_EXPIRY, METRICS,
    SESSIONS, SESSIONS_BY_DELETED, SESSIONS_BY_EXPIRY,
};
use crate::db::txn::ReadTxn;
use crate::error::{Error, StorageContext};
use crate::model::file::AudioFile;
use crate::model::session::ConversationSession;
use crate::types::{BlobAddress, FileId, SessionId, Timestamp};

/// Up to `limit` ids from an index keyed (time, id) with time at or before
/// `until`, oldest first.
fn due(
    txn: &impl ReadTxn,
    def: redb::TableDefinition<'static, (i64, u128), ()>,
    until: Timestamp,
    limit: usize,
) -> Result<Vec<(i64, u128)>, Error> {
    let table = txn.table(def)?;
    let mut out = Vec::new();
    for row in table
        .range(..=(until.as_micros(), u128::MAX))
        .ctx("scanning a time index")?
    {
        let (t, id) = row.ctx("scanning a time index")?.0.value();
        out.push((t, id));
        if out.len() == limit {
            break;
        }
    }
    Ok(out)
}

/// Live files whose retention ended at or before `now`, soonest first.
pub(crate) fn expired_files(
    txn: &impl ReadTxn,
    now: Timestamp,
    limit: usize,
) -> Result<Vec<FileId>, Error> {
    Ok(due(txn, FILES_BY_EXPIRY, now, limit)?
        .into_iter()
        .map(|(_, id)| FileId::from_key(id))
        .collect())
}

/// Open sessions idle past their expiry at `now`, soonest first.
pub(crate) fn expired_sessions(
    txn: &impl ReadTxn,
    now: Timestamp,
    limit: usize,
) -> Result<Vec<SessionId>, Error> {
    Ok(due(txn, SESSIONS_BY_EXPIRY, now, limit)?
        .into_iter()
        .map(|(_, id)| SessionId::from_key(id))
        .collect())
}

/// Soft-deletes a file whose retention has ended; `false` (and nothing
/// written) if it is gone, already deleted, or no longer due.
pub(crate) fn expire_file(
    txn: &WriteTransaction,
    id: FileId,
    now: Timestamp,
) -> Result<bool, Error> {
    let due = crate::db::files::get(txn, id)?
        .is_some_and(|f| f.deleted_at.is_none() && f.expires_at.is_some_and(|e| e <= now));
    if due {
        crate::db::files::set_deleted(txn, id, true, now)?;
    }
    Ok(due)
}

/// Soft-deletes a session idle past its expiry; `false` if it is gone,
/// ended, deleted or was touched since.
pub(crate) fn expire_session(
    txn: &WriteTransaction,
    sealer: &crate::db::sealing::Sealer,
    id: SessionId,
    now: Timestamp,
) -> Result<bool, Error> {
    let due = session(txn, id)?
        .is_some_and(|s| s.deleted_at.is_none() && s.ended_at.is_none() && s.expires_at <= now);
    if !due {
        return Ok(false);
    }
    let expired = crate::db::sessions::modify(txn, sealer, id, now, |s| {
        s.deleted_at = Some(now);
        Ok(())
    });
    match expired {
        Ok(_) => Ok(true),
        // An owner being erased has no keys left: the erasure removes
        // the session.
        Err(Error::MissingKey { .. }) => Ok(false),
        Err(e) => Err(e),
    }
}

/// A session's clear fields (its context left empty: the purge and the
/// erasure need no more, and work without the owner's key).
pub(crate) fn session(
    txn: &impl ReadTxn,
    id: SessionId,
) -> Result<Option<ConversationSession>, Error> {
    Ok(crate::db::sessions::row(&txn.table(SESSIONS)?, id)?.map(|r| r.into_head()))
}

/// Adds `n` reads, the last at `at`, to a file's record; `false` if the
/// record is gone.
pub(crate) fn add_reads(
    txn: &WriteTransaction,
    id: FileId,
    n: u64,
    at: Timestamp,
) -> Result<bool, Error> {
    let mut files = txn.open_table(FILES).ctx("opening files")?;
    let Some(mut f) = crate::db::get_record::<AudioFile>(&files, id.to_key(), id)? else {
        return Ok(false);
    };
    f.access_count = f.access_count.saturating_add(n);
    f.last_read_at = Some(f.last_read_at.map_or(at, |t| t.max(at)));
    crate::db::put_record(&mut files, id.to_key(), &f)?;
    Ok(true)
}

/// Soft-deleted files deleted at or before `cutoff`, oldest first, with
/// their blobs.
pub(crate) fn purgeable_files(
    txn: &impl ReadTxn,
    cutoff: Timestamp,
    limit: usize,
) -> Result<Vec<(FileId, BlobAddress)>, Error> {
    let mut out = Vec::new();
    for (_, id) in due(txn, FILES_BY_DELETED, cutoff, limit)? {
        let id = FileId::from_key(id);
        let f = crate::db::files::get(txn, id)?.ok_or_else(|| {
            Error::corrupt("files_by_deleted", format!("points to missing file {id}"))
        })?;
        out.push((id, f.blob));
    }
    Ok(out)
}

/// Soft-deleted sessions deleted at or before `cutoff`, oldest first.
pub(crate) fn purgeable_sessions(
    txn: &impl ReadTxn,
    cutoff: Timestamp,
    limit: usize,
) -> Result<Vec<SessionId>, Error> {
    Ok(due(txn, SESSIONS_BY_DELETED, cutoff, limit)?
        .into_iter()
        .map(|(_, id)| SessionId::from_key(id))
        .collect())
}

/// What purging one file did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FilePurge {
    /// Restored, or deleted again after the cutoff, since the plan: kept.
    NotDue,
    /// The record is gone; its blob still has other references.
    Removed,
    /// The record and its blob's row (with its wrapped data key) are gone:
    /// the blob's bytes are to be destroyed.
    RemovedWithBlob(BlobAddress, BlobRow),
}

/// Removes a soft-deleted file deleted at or before `cutoff` with every
/// index entry and grant, and releases its blob reference; the blob's
/// row goes with its last reference.
pub(crate) fn purge_file(
    removal: &mut Removal<'_>,
    id: FileId,
    cutoff: Timestamp,
) -> Result<FilePurge, Error> {
    let Some(f) = removal.file(id)? else {
        return Ok(FilePurge::NotDue);
    };
    if f.deleted_at.is_none_or(|d| d > cutoff) {
        return Ok(FilePurge::NotDue);
    }
    removal.remove_file(&f)
}

/// Removes a file record (live or soft-deleted) with every index entry
/// and grant, and releases its blob reference; the blob's row goes with
/// its last reference (see [`Removal::remove_file`]).
pub(crate) fn remove_file(txn: &WriteTransaction, f: &AudioFile) -> Result<FilePurge, Error> {
    Removal::new(txn).remove_file(f)
}

/// Removes the blob row at `address` with its owner index entry and its
/// damage mark, and refunds its stored bytes to the owner's usage (see
/// [`Removal::drop_blob_row`]).
pub(crate) fn drop_blob_row(
    txn: &WriteTransaction,
    address: BlobAddress,
    row: &BlobRow,
) -> Result<(), Error> {
    Removal::new(txn).drop_blob_row(address, row)
}

/// Removes a soft-deleted session deleted at or before `cutoff` with its
/// index entries; `false` if it is not (or no longer) due.
pub(crate) fn purge_session(
    removal: &mut Removal<'_>,
    id: SessionId,
    cutoff: Timestamp,
) -> Result<bool, Error> {
    let Some(s) = removal.session(id)? else {
        return Ok(false);
    };
    if s.deleted_at.is_none_or(|d| d > cutoff) {
        return Ok(false);
    }
    removal.remove_session(&s)?;
    Ok(true)
}

/// Removes a session (live or soft-deleted) with its index entries (see
/// [`Removal::remove_session`]).
pub(crate) fn remove_session(txn: &WriteTransaction, s: &ConversationSession) -> Result<(), Error> {
    Removal::new(txn).remove_session(s)
}

/// Up to `limit` blob rows with addresses after `after`, in address order.
pub(crate) fn blob_rows_after(
    txn: &impl ReadTxn,
    after: Option<BlobAddress>,
    limit: usize,
) -> Result<Vec<(BlobAddress, BlobRow)>, Error> {
    let blobs = txn.table(BLOBS)?;
    let range = match after {
        Some(a) => blobs.range((std::ops::Bound::Excluded(a.0), std::ops::Bound::Unbounded)),
        None => blobs.range::<[u8; 32]>(..),
    }
    .ctx("scanning blobs")?;
    let mut out = Vec::new();
    for row in range {
        let (k, v) = row.ctx("scanning blobs")?;
        let address = BlobAddress(k.value());
        out.push((address, codec::decode::<BlobRow>(v.value(), address)?));
        if out.len() == limit {
            break;
        }
    }
    Ok(out)
}

/// Why a blob is marked damaged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Damage {
    pub(crate) found_at: Timestamp,
    pub(crate) reason: String,
}

impl Record for Damage {
    codec::stored_as_is!("damage record", 1);
}

/// Marks a blob damaged (the first finding is kept); `true` if it was not
/// marked before.
pub(crate) fn mark_damaged(
    txn: &WriteTransaction,
    address: BlobAddress,
    damage: &Damage,
) -> Result<bool, Error> {
    let mut table = txn.open_table(DAMAGED_BLOBS).ctx("opening damaged_blobs")?;
    if table.get(address.0).ctx("reading damaged_blobs")?.is_some() {
        return Ok(false);
    }
    let bytes = codec::encode(damage)?;
    table
        .insert(address.0, bytes.as_slice())
        .ctx("writing damaged_blobs")?;
    Ok(true)
}

/// Forgets a blob's damage (it was found whole again, or purged).
pub(crate) fn clear_damaged(txn: &WriteTransaction, address: BlobAddress) -> Result<bool, Error> {
    Ok(txn
        .open_table(DAMAGED_BLOBS)
        .ctx("opening damaged_blobs")?
        .remove(address.0)
        .ctx("writing damaged_blobs")?
        .is_some())
}

/// Every blob marked damaged, in address order.
pub(crate) fn damaged(txn: &impl ReadTxn) -> Result<Vec<(BlobAddress, Damage)>, Error> {
    let table = txn.table(DAMAGED_BLOBS)?;
    let mut out = Vec::new();
    for row in table.iter().ctx("reading damaged_blobs")? {
        let (k, v) = row.ctx("reading damaged_blobs")?;
        let address = BlobAddress(k.value());
        out.push((address, codec::decode::<Damage>(v.value(), address)?));
    }
    Ok(out)
}

/// Why a blob is marked damaged, if it is.
pub(crate) fn damage_of(txn: &impl ReadTxn, address: BlobAddress) -> Result<Option<Damage>, Error> {
    match txn
        .table(DAMAGED_BLOBS)?
        .get(address.0)
        .ctx("reading damaged_blobs")?
    {
        Some(v) => codec::decode::<Damage>(v.value(), address).map(Some),
        None => Ok(None),
    }
}

/// Up to `limit` records (live or soft-deleted) of a blob, in id order.
pub(crate) fn files_of_blob(
    txn: &impl ReadTxn,
    blob: BlobAddress,
    limit: usize,
) -> Result<Vec<AudioFile>, Error> {
    let by_blob = txn.table(FILES_BY_BLOB)?;
    let mut out = Vec::new();
    for entry in by_blob
        .range((blob.0, 0)..=(blob.0, u128::MAX))
        .ctx("scanning files_by_blob")?
    {
        let id = FileId::from_key(entry.ctx("scanning files_by_blob")?.0.value().1);
        if let Some(f) = crate::db::files::get(txn, id)? {
            out.push(f);
        }
        if out.len() == limit {
            break;
        }
    }
    Ok(out)
}

/// How many blobs are marked damaged.
pub(crate) fn damaged_count(txn: &impl ReadTxn) -> Result<u64, Error> {
    use redb::ReadableTableMetadata;
    txn.table(DAMAGED_BLOBS)?
        .len()
        .ctx("counting damaged_blobs")
}

/// The keys of up to `limit` metric samples older than `cutoff`, of every
/// name (a range per name: names are few, samples many).
pub(crate) fn old_metrics(
    txn: &impl ReadTxn,
    cutoff: Timestamp,
    limit: usize,
) -> Result<Vec<(String, i64, u128)>, Error> {
    let metrics = txn.table(METRICS)?;
    let mut out: Vec<(String, i64, u128)> = Vec::new();
    let mut after: Option<String> = None;
    while out.len() < limit {
        // The first key past every sample of the last name is the next name.
        let next = {
            let mut range = match &after {
                Some(n) => metrics.range((n.as_str(), i64::MAX, u128::MAX)..),
                None => metrics.range::<(&str, i64, u128)>(..),
            }
            .ctx("scanning metrics")?;
            let mut found = None;
            for row in range.by_ref() {
                let (k, _) = row.ctx("scanning metrics")?;
                let name = k.value().0;
                if after.as_deref() != Some(name) {
                    found = Some(name.to_string());
                    break;
                }
            }
            found
        };
        let Some(name) = next else { break };
        for row in metrics
            .range((name.as_str(), i64::MIN, 0)..(name.as_str(), cutoff.as_micros(), 0))
            .ctx("scanning metrics")?
        {
            let (k, _) = row.ctx("scanning metrics")?;
            let (_, t, id) = k.value();
            out.push((name.clone(), t, id));
            if out.len() == limit {
                break;
            }
        }
        after = Some(name);
    }
    Ok(out)
}

/// Removes metric samples by key; returns how many were there.
pub(crate) fn remove_metrics(
    txn: &WriteTransaction,
    keys: &[(String, i64, u128)],
) -> Result<u64, Error> {
    let mut metrics = txn.open_table(METRICS).ctx("opening metrics")?;
    let mut n = 0;
    for (name, t, id) in keys {
        n += u64::from(
            metrics
                .remove((name.as_str(), *t, *id))
                .ctx("writing metrics")?
                .is_some(),
        );
    }
    Ok(n)
}
