//! Schema 9: the audit log becomes a MAC chain (`audit_log`, keyed by
//! sequence number) instead of the unauthenticated `audit` table keyed by
//! (time, id).
//!
//! The old rows are moved into the chain in time order, as seqs `1..=n`,
//! and the old table is dropped. Their MACs cannot be computed here: the
//! migration runs at `Db::open`, before the keyring (and so the audit key,
//! wrapped under the master key) is loaded. The count is left in `meta`
//! (`audit_unsealed`), and the first open with the key MACs them, in the
//! same transaction that first loads (or creates) the audit key
//! ([`seal_migrated`]), before any new entry can be appended.
//! This is sound: those rows were never authenticated, so sealing them at
//! the first keyed open vouches for exactly what the old table held then;
//! until then `audit verify` reports the chain as `unsealed`.
//!
//! Numbering: this step leads to the schema after the one before it in
//! `migrate::STEPS`; it names no version itself, so renumbering it on a
//! merge touches only its `Step` entry and `SCHEMA_VERSION`.

use redb::{ReadableTable, WriteTransaction};

use crate::db::audit::{AuditKey, Link};
use crate::db::schema::{AUDIT_LOG, META};
use crate::db::txn::ReadTxn;
use serde::Deserialize;

use crate::db::audit::{self, Entry, Stored, UNSEALED_KEY};
use crate::db::codec;
use crate::db::schema::{self, LEGACY_AUDIT};
use crate::error::{Error, StorageContext};

/// An audit event of schemas 3 to 8, format 1 (frozen). The fuzz
/// targets write it to seed their corpus.
#[derive(Deserialize)]
#[cfg_attr(feature = "fuzzing", derive(serde::Serialize))]
pub(crate) struct AuditV1 {
    #[allow(dead_code)]
    pub(crate) id: uuid::Uuid,
    pub(crate) at: i64,
    pub(crate) actor: String,
    pub(crate) action: String,
    pub(crate) target: String,
    pub(crate) outcome: String,
}

pub(super) fn to_v9(txn: &WriteTransaction) -> Result<(), Error> {
    schema::create_all(txn).ctx("creating tables")?;
    let mut seq = 0u64;
    {
        let old = txn.open_table(LEGACY_AUDIT).ctx("opening audit")?;
        // Keys are (time, id): iteration is time order.
        for row in old.iter().ctx("reading audit")? {
            let (_, v) = row.ctx("reading audit")?;
            let event: AuditV1 =
                codec::decode_versioned(1, v.value(), || format!("audit event {}", seq + 1))?;
            seq += 1;
            let entry = Entry {
                at: event.at,
                actor: event.actor,
                action: event.action,
                target: event.target,
                outcome: event.outcome,
            };
            audit::put_entry(
                txn,
                seq,
                &Stored {
                    entry,
                    mac: [0; 32],
                },
            )?;
        }
    }
    txn.delete_table(LEGACY_AUDIT)
        .map_err(|e| Error::storage("deleting audit", e))?;
    if seq > 0 {
        audit::set_meta(txn, UNSEALED_KEY, &seq)?;
    }
    tracing::info!(entries = seq, "moved the audit table into the audit chain");
    Ok(())
}

/// Whether a migration left entries to seal (see [`seal_migrated`]).
pub(crate) fn has_unsealed(txn: &impl ReadTxn) -> Result<bool, Error> {
    Ok(audit::get_meta::<u64>(txn, UNSEALED_KEY, "unsealed audit count")?.is_some())
}

/// MACs the entries a migration moved in from the old table (in seq
/// order, in `txn`) and sets the head; a no-op when there are none.
/// Called when the key is first loaded after the migration.
pub(crate) fn seal_migrated(txn: &WriteTransaction, key: &AuditKey) -> Result<u64, Error> {
    let Some(count) = audit::get_meta::<u64>(txn, UNSEALED_KEY, "unsealed audit count")? else {
        return Ok(0);
    };
    let mut prev = audit::head(txn)?.unwrap_or(Link::START);
    for seq in 1..=count {
        let bytes = {
            let table = txn.open_table(AUDIT_LOG).ctx("opening audit_log")?;
            let got = table.get(seq).ctx("reading audit_log")?;
            got.map(|v| v.value().to_vec())
        };
        let Some(bytes) = bytes else { continue };
        let stored = audit::decode_stored(seq, &bytes)?;
        let mac = key.entry_mac(&prev.mac, seq, &stored.entry);
        audit::put_entry(txn, seq, &Stored { mac, ..stored })?;
        prev = Link { seq, mac };
    }
    audit::set_head(txn, &prev)?;
    txn.open_table(META)
        .ctx("opening meta")?
        .remove(UNSEALED_KEY)
        .ctx("writing meta")?;
    tracing::info!(
        entries = count,
        "sealed the audit entries moved by the migration"
    );
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bytes schema 3 to 8 stored for one refusal (pinned before the
    /// type was removed): the migration still reads them.
    #[test]
    fn the_old_record_format_still_decodes() {
        let bytes = hex::decode(concat!(
            "011001900000000070008000000000000006a080f2818389850606757365723a",
            "780966696c652e726561640666696c653a790772656675736564",
        ))
        .unwrap();
        let e: AuditV1 = codec::decode_versioned(1, &bytes, String::new).unwrap();
        assert_eq!(
            (e.actor.as_str(), e.action.as_str(), e.target.as_str()),
            ("user:x", "file.read", "file:y")
        );
        assert_eq!(e.outcome, "refused");
        assert!(e.at > 0);
    }
}
