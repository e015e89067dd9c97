//! Schema 5 to 6: the purge finds soft-deleted files and sessions through
//! indexes by deletion time instead of a scan of every record, and blobs
//! found damaged are remembered in a table of their own.
//!
//! The step reads the frozen record shapes of schema 5 (`FileV1`,
//! `SessionV1`), never today's public types.

use redb::{ReadableTable, WriteTransaction};

use crate::db::codec::decode_versioned;
use crate::db::records::{FileV1, SessionV1};
use crate::db::schema::{DAMAGED_BLOBS, FILES, FILES_BY_DELETED, SESSIONS, SESSIONS_BY_DELETED};
use crate::error::{Error, StorageContext};

/// The record format versions schema 5 wrote.
const FILE_FORMAT: u8 = 1;
const SESSION_FORMAT: u8 = 1;

pub(super) fn v5_to_v6(txn: &WriteTransaction) -> Result<(), Error> {
    txn.open_table(DAMAGED_BLOBS)
        .ctx("creating damaged_blobs")?;
    {
        let files = txn.open_table(FILES).ctx("opening files")?;
        let mut by_deleted = txn
            .open_table(FILES_BY_DELETED)
            .ctx("creating files_by_deleted")?;
        for row in files.iter().ctx("scanning files")? {
            let (k, v) = row.ctx("scanning files")?;
            let id = k.value();
            let f: FileV1 = decode_versioned(FILE_FORMAT, v.value(), || format!("file {id:032x}"))?;
            if let Some(at) = f.deleted_at() {
                by_deleted
                    .insert((at, id), ())
                    .ctx("writing files_by_deleted")?;
            }
        }
    }
    let sessions = txn.open_table(SESSIONS).ctx("opening sessions")?;
    let mut by_deleted = txn
        .open_table(SESSIONS_BY_DELETED)
        .ctx("creating sessions_by_deleted")?;
    for row in sessions.iter().ctx("scanning sessions")? {
        let (k, v) = row.ctx("scanning sessions")?;
        let id = k.value();
        let s: SessionV1 =
            decode_versioned(SESSION_FORMAT, v.value(), || format!("session {id:032x}"))?;
        if let Some(at) = s.deleted_at() {
            by_deleted
                .insert((at, id), ())
                .ctx("writing sessions_by_deleted")?;
        }
    }
    Ok(())
}
