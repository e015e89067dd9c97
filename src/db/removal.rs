//! Removing file records, sessions and blob rows with every index entry,
//! each table opened once per write request.
//!
//! Removing one file touches up to ten tables (its record, four indexes,
//! grants, its blob's row and owner index, damage marks, the owner's
//! usage) and one session four. Opening a table in a redb write
//! transaction looks it up in the table tree and registers it as open, so
//! opening every table again for each record cost the purge about as much
//! as the removals themselves. A [`Removal`] opens each table the first
//! time one of its removals needs it and keeps it until it is dropped;
//! the purge and erasure remove a whole request's records through one.
//! While it lives, its transaction cannot open those tables elsewhere
//! (redb refuses a table open twice), so callers drop it before any other
//! write to the same transaction.

use redb::{Key, Table, TableDefinition, TableHandle, Value, WriteTransaction};

use crate::db::blobs::BlobRow;
use crate::db::lifecycle::FilePurge;
use crate::db::schema::{
    BLOBS, BLOBS_BY_OWNER, DAMAGED_BLOBS, FILES, FILES_BY_BLOB, FILES_BY_DELETED, FILES_BY_EXPIRY,
    FILES_BY_OWNER, GRANTS, SESSIONS, SESSIONS_BY_DELETED, SESSIONS_BY_EXPIRY, SESSIONS_BY_USER,
    USAGE,
};
use crate::error::{Error, StorageContext};
use crate::model::file::AudioFile;
use crate::model::session::ConversationSession;
use crate::types::{BlobAddress, FileId, SessionId, UserId};

type Bytes = &'static [u8];

/// The tables of one write transaction that removals have needed so far.
pub(crate) struct Removal<'t> {
    txn: &'t WriteTransaction,
    files: Option<Table<'t, u128, Bytes>>,
    files_by_owner: Option<Table<'t, (u128, u128), ()>>,
    files_by_blob: Option<Table<'t, ([u8; 32], u128), ()>>,
    files_by_deleted: Option<Table<'t, (i64, u128), ()>>,
    files_by_expiry: Option<Table<'t, (i64, u128), ()>>,
    grants: Option<Table<'t, (u128, u128), ()>>,
    blobs: Option<Table<'t, [u8; 32], Bytes>>,
    blobs_by_owner: Option<Table<'t, (u128, [u8; 32]), ()>>,
    damaged: Option<Table<'t, [u8; 32], Bytes>>,
    usage: Option<Table<'t, u128, Bytes>>,
    sessions: Option<Table<'t, u128, Bytes>>,
    sessions_by_user: Option<Table<'t, (u128, i64, u128), ()>>,
    sessions_by_deleted: Option<Table<'t, (i64, u128), ()>>,
    sessions_by_expiry: Option<Table<'t, (i64, u128), ()>>,
}

/// The table in `slot`, opened in `txn` if it is not yet.
fn opened<'s, 't, K: Key + 'static, V: Value + 'static>(
    slot: &'s mut Option<Table<'t, K, V>>,
    txn: &'t WriteTransaction,
    def: TableDefinition<'static, K, V>,
) -> Result<&'s mut Table<'t, K, V>, Error> {
    let table = match slot.take() {
        Some(t) => t,
        None => txn
            .open_table(def)
            .map_err(|e| Error::storage(format!("opening {}", def.name()), e))?,
    };
    Ok(slot.insert(table))
}

impl<'t> Removal<'t> {
    /// No table opened yet.
    pub(crate) fn new(txn: &'t WriteTransaction) -> Removal<'t> {
        Removal {
            txn,
            files: None,
            files_by_owner: None,
            files_by_blob: None,
            files_by_deleted: None,
            files_by_expiry: None,
            grants: None,
            blobs: None,
            blobs_by_owner: None,
            damaged: None,
            usage: None,
            sessions: None,
            sessions_by_user: None,
            sessions_by_deleted: None,
            sessions_by_expiry: None,
        }
    }

    /// The file record `id`, if any.
    pub(crate) fn file(&mut self, id: FileId) -> Result<Option<AudioFile>, Error> {
        crate::db::get_record(opened(&mut self.files, self.txn, FILES)?, id.to_key(), id)
    }

    /// The session `id`'s clear fields (see `db::lifecycle::session`).
    pub(crate) fn session(&mut self, id: SessionId) -> Result<Option<ConversationSession>, Error> {
        let sessions = opened(&mut self.sessions, self.txn, SESSIONS)?;
        Ok(crate::db::sessions::row(sessions, id)?.map(|r| r.into_head()))
    }

    /// The blob row at `address`, if any.
    pub(crate) fn blob_row(&mut self, address: BlobAddress) -> Result<Option<BlobRow>, Error> {
        crate::db::blobs::row_in(opened(&mut self.blobs, self.txn, BLOBS)?, address)
    }

    /// Removes a file record (live or soft-deleted) with every index entry
    /// and grant, and releases its blob reference; the blob's row goes
    /// with its last reference.
    pub(crate) fn remove_file(&mut self, f: &AudioFile) -> Result<FilePurge, Error> {
        let key = f.id.to_key();
        let txn = self.txn;
        opened(&mut self.files, txn, FILES)?
            .remove(key)
            .ctx("writing files")?;
        opened(&mut self.files_by_owner, txn, FILES_BY_OWNER)?
            .remove((f.owner.to_key(), key))
            .ctx("writing files_by_owner")?;
        opened(&mut self.files_by_blob, txn, FILES_BY_BLOB)?
            .remove((f.blob.0, key))
            .ctx("writing files_by_blob")?;
        if let Some(deleted_at) = f.deleted_at {
            opened(&mut self.files_by_deleted, txn, FILES_BY_DELETED)?
                .remove((deleted_at.as_micros(), key))
                .ctx("writing files_by_deleted")?;
        }
        if let Some(e) = f.expires_at {
            opened(&mut self.files_by_expiry, txn, FILES_BY_EXPIRY)?
                .remove((e.as_micros(), key))
                .ctx("writing files_by_expiry")?;
        }
        opened(&mut self.grants, txn, GRANTS)?
            .extract_from_if((key, 0)..=(key, u128::MAX), |_, _| true)
            .ctx("writing grants")?
            .for_each(drop);
        self.release_blob(f)
    }

    /// One reference fewer to the file's blob; at none, its row goes.
    fn release_blob(&mut self, f: &AudioFile) -> Result<FilePurge, Error> {
        let Some(mut row) = self.blob_row(f.blob)? else {
            return Err(Error::corrupt(
                format!("file {}", f.id),
                format!("its blob {} has no row", f.blob),
            ));
        };
        row.refcount = row.refcount.saturating_sub(1);
        if row.refcount > 0 {
            crate::db::blobs::put_row_in(opened(&mut self.blobs, self.txn, BLOBS)?, f.blob, &row)?;
            return Ok(FilePurge::Removed);
        }
        self.drop_blob_row(f.blob, &row)?;
        Ok(FilePurge::RemovedWithBlob(f.blob, row))
    }

    /// Removes the blob row at `address` with its owner index entry and
    /// its damage mark, and refunds its stored bytes to the owner's usage:
    /// every blob row that goes, goes through here.
    pub(crate) fn drop_blob_row(
        &mut self,
        address: BlobAddress,
        row: &BlobRow,
    ) -> Result<(), Error> {
        let txn = self.txn;
        opened(&mut self.blobs, txn, BLOBS)?
            .remove(address.0)
            .ctx("writing blobs")?;
        opened(&mut self.blobs_by_owner, txn, BLOBS_BY_OWNER)?
            .remove((row.owner.to_key(), address.0))
            .ctx("writing blobs_by_owner")?;
        opened(&mut self.damaged, txn, DAMAGED_BLOBS)?
            .remove(address.0)
            .ctx("writing damaged_blobs")?;
        self.refund(row.owner, row.stored_bytes)
    }

    /// Takes a removed blob of `bytes` off the owner's usage.
    fn refund(&mut self, owner: UserId, bytes: u64) -> Result<(), Error> {
        let usage = opened(&mut self.usage, self.txn, USAGE)?;
        crate::db::usage::refund_in(usage, owner, bytes)
    }

    /// Removes a session (live or soft-deleted) with its index entries.
    pub(crate) fn remove_session(&mut self, s: &ConversationSession) -> Result<(), Error> {
        let key = s.id.to_key();
        let txn = self.txn;
        opened(&mut self.sessions, txn, SESSIONS)?
            .remove(key)
            .ctx("writing sessions")?;
        opened(&mut self.sessions_by_user, txn, SESSIONS_BY_USER)?
            .remove((s.user_id.to_key(), s.last_active_at.as_micros(), key))
            .ctx("writing sessions_by_user")?;
        if let Some(deleted_at) = s.deleted_at {
            opened(&mut self.sessions_by_deleted, txn, SESSIONS_BY_DELETED)?
                .remove((deleted_at.as_micros(), key))
                .ctx("writing sessions_by_deleted")?;
        }
        opened(&mut self.sessions_by_expiry, txn, SESSIONS_BY_EXPIRY)?
            .remove((s.expires_at.as_micros(), key))
            .ctx("writing sessions_by_expiry")?;
        Ok(())
    }
}
