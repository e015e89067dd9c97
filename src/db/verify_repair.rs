//! The safe half of `verify --repair`: what is derived from the rows is
//! rebuilt from them, in one write transaction. The rows themselves
//! (users, sessions, files, blobs) are never rewritten here.

use std::collections::BTreeMap;

use redb::{ReadableTable, WriteTransaction};

use crate::db::blobs::BlobRow;
use crate::db::codec;
use crate::db::schema::*;
use crate::error::{Error, StorageContext};
use crate::model::file::AudioFile;
use crate::types::{BlobAddress, FileId};

/// Rebuilds what is derived from the rows: the four file indexes and
/// `blobs_by_owner` from their rows, each blob's reference count from the
/// file records (a blob no record names keeps its count: that is left
/// for the operator), the user and session indexes
/// (`db::verify_users`, `db::verify_sessions`), and usage from the blob
/// rows.
pub(crate) fn rebuild_derived(txn: &WriteTransaction) -> Result<(), Error> {
    let mut records = Vec::new();
    {
        let files = txn.open_table(FILES).ctx("opening files")?;
        for row in files.iter().ctx("scanning files")? {
            let (k, v) = row.ctx("scanning files")?;
            let id = FileId::from_key(k.value());
            if let Ok(f) = codec::decode::<AudioFile>(v.value(), id) {
                records.push(f);
            }
        }
    }
    for def in [FILES_BY_EXPIRY, FILES_BY_DELETED] {
        txn.open_table(def)
            .ctx("opening a file index")?
            .retain(|_, _| false)
            .ctx("clearing a file index")?;
    }
    txn.open_table(FILES_BY_OWNER)
        .ctx("opening files_by_owner")?
        .retain(|_, _| false)
        .ctx("clearing")?;
    txn.open_table(FILES_BY_BLOB)
        .ctx("opening files_by_blob")?
        .retain(|_, _| false)
        .ctx("clearing")?;
    let mut counts: BTreeMap<[u8; 32], u64> = BTreeMap::new();
    {
        let mut by_owner = txn
            .open_table(FILES_BY_OWNER)
            .ctx("opening files_by_owner")?;
        let mut by_blob = txn.open_table(FILES_BY_BLOB).ctx("opening files_by_blob")?;
        let mut by_expiry = txn
            .open_table(FILES_BY_EXPIRY)
            .ctx("opening files_by_expiry")?;
        let mut by_deleted = txn
            .open_table(FILES_BY_DELETED)
            .ctx("opening files_by_deleted")?;
        for f in &records {
            let id = f.id.to_key();
            by_owner
                .insert((f.owner.to_key(), id), ())
                .ctx("writing files_by_owner")?;
            by_blob
                .insert((f.blob.0, id), ())
                .ctx("writing files_by_blob")?;
            match (f.deleted_at, f.expires_at) {
                (Some(d), _) => {
                    by_deleted
                        .insert((d.as_micros(), id), ())
                        .ctx("writing files_by_deleted")?;
                }
                (None, Some(e)) => {
                    by_expiry
                        .insert((e.as_micros(), id), ())
                        .ctx("writing files_by_expiry")?;
                }
                (None, None) => {}
            }
            *counts.entry(f.blob.0).or_default() += 1;
        }
    }
    let mut rows = Vec::new();
    {
        let blobs = txn.open_table(BLOBS).ctx("opening blobs")?;
        for row in blobs.iter().ctx("scanning blobs")? {
            let (k, v) = row.ctx("scanning blobs")?;
            if let Ok(b) = codec::decode::<BlobRow>(v.value(), BlobAddress(k.value())) {
                rows.push((k.value(), b));
            }
        }
    }
    let mut by_owner = txn
        .open_table(BLOBS_BY_OWNER)
        .ctx("opening blobs_by_owner")?;
    by_owner
        .retain(|_, _| false)
        .ctx("clearing blobs_by_owner")?;
    for (address, mut b) in rows {
        by_owner
            .insert((b.owner.to_key(), address), ())
            .ctx("writing blobs_by_owner")?;
        let counted = counts.get(&address).copied().unwrap_or(0);
        // A blob no record names keeps its count: the purge frees it.
        if counted > 0 && b.refcount != counted {
            b.refcount = counted;
            crate::db::blobs::put_row(txn, BlobAddress(address), &b)?;
        }
    }
    drop(by_owner);
    super::verify_users::repair(txn)?;
    super::verify_sessions::repair(txn)?;
    crate::db::usage::rebuild(txn)
}
