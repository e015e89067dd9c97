//! The audit log: who tried to do what to which record, and what came of
//! it. Refused file operations are recorded here (the caller only sees
//! `NotFound`). Entries are keyed by (time, id), oldest first.

use redb::{ReadableTable, WriteTransaction};
use serde::{Deserialize, Serialize};

use crate::db::codec;
use crate::db::schema::AUDIT;
use crate::error::{Error, StorageContext};
use crate::types::Timestamp;

/// One audited event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// Unique id (time-ordered).
    pub id: uuid::Uuid,
    /// When it happened.
    pub at: Timestamp,
    /// Who asked: `user:<id>` or `system`.
    pub actor: String,
    /// What was asked, e.g. `file.read`.
    pub action: String,
    /// The record it was about, e.g. `file:<id>`.
    pub target: String,
    /// What came of it, e.g. `refused`.
    pub outcome: String,
}

/// Appends an event in `txn`.
pub(crate) fn append(txn: &WriteTransaction, event: &AuditEvent) -> Result<(), Error> {
    let bytes = codec::encode(event)?;
    txn.open_table(AUDIT)
        .ctx("opening audit")?
        .insert((event.at.as_micros(), event.id.as_u128()), bytes.as_slice())
        .ctx("writing audit")?;
    Ok(())
}

/// The newest `limit` events, newest first.
pub(crate) fn recent(txn: &redb::ReadTransaction, limit: usize) -> Result<Vec<AuditEvent>, Error> {
    let table = txn.open_table(AUDIT).ctx("opening audit")?;
    let mut out = Vec::new();
    for row in table.iter().ctx("reading audit")?.rev().take(limit) {
        let (k, v) = row.ctx("reading audit")?;
        out.push(codec::decode::<AuditEvent>(
            v.value(),
            uuid::Uuid::from_u128(k.value().1),
        )?);
    }
    Ok(out)
}
