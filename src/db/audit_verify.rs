//! Checking the audit chain: every entry's MAC against its predecessor,
//! the sequence without gaps, the anchor's own MAC, and the last entry
//! against the head in `meta`.
//!
//! It exists because a MAC chain proves nothing until someone recomputes
//! it; [`verify`] is that recomputation, reporting the *first* problem
//! (everything after a broken link is unproven, so one precise finding is
//! more useful than a cascade). See `docs/AUDIT.md` for what it can and
//! cannot detect.

use redb::ReadableTable;
use serde::Serialize;
use subtle::ConstantTimeEq;

use crate::db::audit::{self, AuditKey, Link, UNSEALED_KEY};
use crate::db::schema::AUDIT_LOG;
use crate::db::txn::ReadTxn;
use crate::error::{Error, StorageContext};

/// What is wrong at a point of the audit chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AuditProblemKind {
    /// The entry's MAC does not match its content and predecessor: it was
    /// changed, inserted, or moved (reordered).
    Changed,
    /// The entry with this seq is missing (removed from the middle, or the
    /// front beyond what the anchor covers).
    Missing,
    /// The entry cannot be decoded.
    Undecodable,
    /// The chain starts after seq 1 but there is no anchor: the front was
    /// removed and the anchor with it.
    AnchorMissing,
    /// The anchor's own MAC does not match: it was changed.
    AnchorChanged,
    /// The last entry is not the head recorded in `meta`: entries at the
    /// end were removed (or the head was changed).
    HeadMismatch,
    /// An entry lies after the recorded head: it was appended behind the
    /// store's back.
    AfterHead,
    /// Entries exist but no head does.
    HeadMissing,
    /// Entries moved from the old audit table by the schema 9 migration
    /// are not yet MACed (the store has not been opened with its key).
    Unsealed,
}

/// The first problem found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct AuditProblem {
    /// Where: the entry's seq (for the anchor, its seq).
    pub seq: u64,
    /// What.
    pub kind: AuditProblemKind,
}

/// The outcome of [`Audit::verify`](crate::Audit::verify).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditReport {
    /// Entries whose MAC was checked and matched.
    pub checked: u64,
    /// The first entry's seq, if any.
    pub first_seq: Option<u64>,
    /// The last entry's seq, if any.
    pub last_seq: Option<u64>,
    /// The seq the anchor covers up to (entries dropped by retention).
    pub anchor_seq: Option<u64>,
    /// The head's MAC in hex: kept outside the store, it lets a later
    /// check detect a truncated tail whose head was rewritten to match.
    pub head_mac: Option<String>,
    /// The first problem, if the chain is broken.
    pub problem: Option<AuditProblem>,
}

impl AuditReport {
    /// Whether the chain verified.
    pub fn ok(&self) -> bool {
        self.problem.is_none()
    }
}

fn same(a: &[u8; 32], b: &[u8; 32]) -> bool {
    bool::from(a.ct_eq(b))
}

/// Checks the whole chain in `txn` under `key`.
pub(crate) fn verify(txn: &impl ReadTxn, key: &AuditKey) -> Result<AuditReport, Error> {
    let head = audit::head(txn)?;
    let mut report = AuditReport {
        checked: 0,
        first_seq: None,
        last_seq: None,
        anchor_seq: None,
        head_mac: head.map(|h| hex::encode(h.mac)),
        problem: None,
    };
    let fail = |report: &mut AuditReport, seq, kind| {
        report.problem = Some(AuditProblem { seq, kind });
    };
    if audit::get_meta::<u64>(txn, UNSEALED_KEY, "unsealed audit count")?.is_some() {
        fail(&mut report, 1, AuditProblemKind::Unsealed);
        return Ok(report);
    }
    let anchor = audit::anchor(txn)?;
    let mut prev = Link::START;
    if let Some(a) = anchor {
        report.anchor_seq = Some(a.link.seq);
        if !same(&a.tag, &audit::Anchor::tag_of(key, &a.link, a.at)) {
            fail(&mut report, a.link.seq, AuditProblemKind::AnchorChanged);
            return Ok(report);
        }
        prev = a.link;
    }
    let table = txn.table(AUDIT_LOG)?;
    for row in table.iter().ctx("reading audit_log")? {
        let (k, v) = row.ctx("reading audit_log")?;
        let seq = k.value();
        report.first_seq.get_or_insert(seq);
        report.last_seq = Some(seq);
        // Checked: an anchor (or entry) at the last seq has no successor.
        if prev.seq.checked_add(1) != Some(seq) {
            let kind = if anchor.is_none() && prev.seq == 0 {
                AuditProblemKind::AnchorMissing
            } else {
                AuditProblemKind::Missing
            };
            fail(&mut report, prev.seq.saturating_add(1), kind);
            return Ok(report);
        }
        if head.is_some_and(|h| seq > h.seq) {
            fail(&mut report, seq, AuditProblemKind::AfterHead);
            return Ok(report);
        }
        let Ok(stored) = audit::decode_stored(seq, v.value()) else {
            fail(&mut report, seq, AuditProblemKind::Undecodable);
            return Ok(report);
        };
        let mac = key.entry_mac(&prev.mac, seq, &stored.entry);
        if !same(&mac, &stored.mac) {
            fail(&mut report, seq, AuditProblemKind::Changed);
            return Ok(report);
        }
        report.checked += 1;
        prev = Link { seq, mac };
    }
    match head {
        None if prev.seq != 0 => fail(&mut report, prev.seq, AuditProblemKind::HeadMissing),
        Some(h) if h.seq != prev.seq || !same(&h.mac, &prev.mac) => {
            fail(
                &mut report,
                prev.seq.saturating_add(1),
                AuditProblemKind::HeadMismatch,
            );
        }
        _ => {}
    }
    Ok(report)
}
