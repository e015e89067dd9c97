//! Schema 5 to 6: the purge finds soft-deleted files and sessions through
//! indexes by deletion time instead of a scan of every record, blobs
//! found damaged are remembered in a table of their own, and file records
//! move to format 2 (with the last read time).
//!
//! The step reads the frozen record shapes of schema 5 (`FileV1`, and
//! sessions through `SessionRow`, which reads format 1 and the later
//! sealed format 2 alike, as far as their clear fields), never today's
//! public types.

use redb::{ReadableTable, WriteTransaction};

use crate::db::codec::{decode_versioned, encode_versioned};
use crate::db::records::FileV1;
use crate::db::schema::{DAMAGED_BLOBS, FILES, FILES_BY_DELETED, SESSIONS, SESSIONS_BY_DELETED};
use crate::db::session_row::SessionRow;
use crate::error::{Error, StorageContext};

/// The file format versions schema 5 wrote, and schema 6's.
const FILE_FORMAT: u8 = 1;
const FILE_FORMAT_6: u8 = 2;

pub(super) fn v5_to_v6(txn: &WriteTransaction) -> Result<(), Error> {
    txn.open_table(DAMAGED_BLOBS)
        .ctx("creating damaged_blobs")?;
    {
        let mut files = txn.open_table(FILES).ctx("opening files")?;
        let mut by_deleted = txn
            .open_table(FILES_BY_DELETED)
            .ctx("creating files_by_deleted")?;
        let mut upgraded = Vec::new();
        for row in files.iter().ctx("scanning files")? {
            let (k, v) = row.ctx("scanning files")?;
            let id = k.value();
            // A record already in format 2 (a step cut off by a crash is
            // redone whole, but be lenient) only needs its index entry.
            if crate::db::codec::version_of(v.value()) == Some(FILE_FORMAT_6) {
                let f: crate::db::records::FileV2 =
                    decode_versioned(FILE_FORMAT_6, v.value(), || format!("file {id:032x}"))?;
                if let Some(at) = f.deleted_at() {
                    by_deleted
                        .insert((at, id), ())
                        .ctx("writing files_by_deleted")?;
                }
                continue;
            }
            let f: FileV1 = decode_versioned(FILE_FORMAT, v.value(), || format!("file {id:032x}"))?;
            if let Some(at) = f.deleted_at() {
                by_deleted
                    .insert((at, id), ())
                    .ctx("writing files_by_deleted")?;
            }
            upgraded.push((id, encode_versioned(FILE_FORMAT_6, &f.upgrade())?));
        }
        for (id, bytes) in upgraded {
            files.insert(id, bytes.as_slice()).ctx("writing files")?;
        }
    }
    let sessions = txn.open_table(SESSIONS).ctx("opening sessions")?;
    let mut by_deleted = txn
        .open_table(SESSIONS_BY_DELETED)
        .ctx("creating sessions_by_deleted")?;
    for row in sessions.iter().ctx("scanning sessions")? {
        let (k, v) = row.ctx("scanning sessions")?;
        let id = k.value();
        let s = SessionRow::decode(v.value(), crate::types::SessionId::from_key(id))?;
        if let Some(at) = s.head().deleted_at {
            by_deleted
                .insert((at.as_micros(), id), ())
                .ctx("writing sessions_by_deleted")?;
        }
    }
    Ok(())
}
