//! Dropping audit entries older than the retention from the front of the
//! chain, leaving an anchor.
//!
//! The anchor (in `meta`) holds the seq and MAC of the last dropped entry
//! and its time, under a MAC of its own: the first remaining entry still
//! verifies against it, and a front removed behind the store's back cannot
//! be passed off as retention (making an anchor needs the audit key), nor
//! hidden by deleting the anchor (the chain would then start after seq 1
//! with no anchor: `AnchorMissing`). Each dropped entry is verified
//! first: retention never destroys the evidence of a broken link.

use redb::{ReadableTable, WriteTransaction};

use crate::db::audit::{self, Anchor, AuditKey, Link};
use crate::db::schema::AUDIT_LOG;
use crate::error::{Error, StorageContext};
use crate::types::Timestamp;

/// Drops up to `limit` entries from the front whose time is before
/// `cutoff` (stopping at the first newer one), in `txn`, and moves the
/// anchor to the last one dropped. Returns how many were dropped and
/// whether more may be due.
pub(crate) fn drop_before(
    txn: &WriteTransaction,
    key: &AuditKey,
    cutoff: Timestamp,
    limit: usize,
) -> Result<(u64, bool), Error> {
    let mut prev = audit::anchor(txn)?.map_or(Link::START, |a| a.link);
    let mut due = Vec::new();
    let mut more = false;
    {
        // Read and check first, write after: a refusal writes nothing.
        let table = txn.open_table(AUDIT_LOG).ctx("opening audit_log")?;
        for row in table.iter().ctx("reading audit_log")? {
            let (k, v) = row.ctx("reading audit_log")?;
            let seq = k.value();
            let stored = audit::decode_stored(seq, v.value())?;
            if stored.entry.at >= cutoff.as_micros() {
                break;
            }
            if due.len() == limit {
                more = true;
                break;
            }
            // Evidence of tampering is never dropped: a broken link stops
            // the retention until `audit verify` has been looked at.
            let mac = key.entry_mac(&prev.mac, seq, &stored.entry);
            if seq != prev.seq + 1 || mac != stored.mac {
                return Err(Error::corrupt(
                    format!("audit entry {seq}"),
                    "the chain does not verify here; retention stops (run `bvstore audit verify`)",
                ));
            }
            prev = Link { seq, mac };
            due.push((prev, stored.entry.at));
        }
    }
    let mut table = txn.open_table(AUDIT_LOG).ctx("opening audit_log")?;
    for (link, _) in &due {
        table.remove(link.seq).ctx("writing audit_log")?;
    }
    drop(table);
    let dropped = due.len() as u64;
    let last = due.last().copied();
    if let Some((link, at)) = last {
        let tag = Anchor::tag_of(key, &link, at);
        audit::set_anchor(txn, &Anchor { link, at, tag })?;
    }
    Ok((dropped, more))
}
