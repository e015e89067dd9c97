//! The counting scan behind `Store::stats`: one pass over users, sessions,
//! files, blobs and usage rows on one snapshot.

use std::collections::BTreeMap;

use redb::{ReadTransaction, ReadableTable};

use crate::db::blobs::BlobRow;
use crate::db::codec;
use crate::db::schema::{BLOBS, FILES, SESSIONS, USAGE, USERS};
use crate::db::txn::ReadTxn;
use crate::db::usage::UsageRow;
use crate::error::{Error, StorageContext};
use crate::model::file::{AudioFile, Codec};
use crate::types::{BlobAddress, FileId, SessionId, UserId};

/// What the scan counts (the public shape is built from it).
#[derive(Debug, Default)]
pub(crate) struct Counts {
    pub(crate) users: u64,
    pub(crate) users_deleted: u64,
    pub(crate) sessions: u64,
    pub(crate) sessions_deleted: u64,
    pub(crate) turns: u64,
    pub(crate) files: u64,
    pub(crate) files_deleted: u64,
    /// Live files by content type: (files, plain bytes, stored bytes,
    /// files stored without compression).
    pub(crate) by_type: BTreeMap<String, (u64, u64, u64, u64)>,
    /// Stored bytes the live file records account for (each counting its
    /// blob in full, so shared blobs count once per record).
    pub(crate) referenced_stored_bytes: u64,
    pub(crate) blobs: u64,
    pub(crate) blob_stored_bytes: u64,
    pub(crate) blob_plain_bytes: u64,
    /// Stored bytes per owner (usage rows), largest first.
    pub(crate) by_owner: Vec<(UserId, u64, u64)>,
}

pub(crate) fn count(txn: &ReadTransaction) -> Result<Counts, Error> {
    let mut c = Counts::default();
    for entry in txn.table(USERS)?.iter().ctx("scanning users")? {
        let (k, v) = entry.ctx("scanning users")?;
        let user = crate::db::user_record::decode_row(v.value(), UserId::from_key(k.value()))?.user;
        if user.deleted_at.is_some() {
            c.users_deleted += 1;
        } else {
            c.users += 1;
        }
    }
    for entry in txn.table(SESSIONS)?.iter().ctx("scanning sessions")? {
        let (k, v) = entry.ctx("scanning sessions")?;
        let row =
            crate::db::session_row::SessionRow::decode(v.value(), SessionId::from_key(k.value()))?;
        let s = row.head();
        if s.deleted_at.is_some() {
            c.sessions_deleted += 1;
        } else {
            c.sessions += 1;
            c.turns = c.turns.saturating_add(s.turn_count);
        }
    }
    for entry in txn.table(FILES)?.iter().ctx("scanning files")? {
        let (k, v) = entry.ctx("scanning files")?;
        let f: AudioFile = codec::decode(v.value(), FileId::from_key(k.value()))?;
        if f.deleted_at.is_some() {
            c.files_deleted += 1;
            continue;
        }
        c.files += 1;
        c.referenced_stored_bytes = c.referenced_stored_bytes.saturating_add(f.stored_bytes);
        let t = c.by_type.entry(f.content_type).or_default();
        t.0 += 1;
        t.1 = t.1.saturating_add(f.plain_bytes);
        t.2 = t.2.saturating_add(f.stored_bytes);
        t.3 += u64::from(f.codec == Codec::None);
    }
    for entry in txn.table(BLOBS)?.iter().ctx("scanning blobs")? {
        let (k, v) = entry.ctx("scanning blobs")?;
        let row: BlobRow = codec::decode(v.value(), BlobAddress(k.value()))?;
        c.blobs += 1;
        c.blob_stored_bytes = c.blob_stored_bytes.saturating_add(row.stored_bytes);
        c.blob_plain_bytes = c.blob_plain_bytes.saturating_add(row.plain_bytes);
    }
    for entry in txn.table(USAGE)?.iter().ctx("scanning usage")? {
        let (k, v) = entry.ctx("scanning usage")?;
        let owner = UserId::from_key(k.value());
        let row: UsageRow = codec::decode(v.value(), owner)?;
        if row.blobs > 0 {
            c.by_owner.push((owner, row.blobs, row.stored_bytes));
        }
    }
    c.by_owner.sort_by(|a, b| b.2.cmp(&a.2).then(a.0.cmp(&b.0)));
    Ok(c)
}
