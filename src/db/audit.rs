//! The audit log: a hash chain of who did what to which record, and what
//! came of it, in the `audit_log` table of `store.redb`.
//!
//! It exists so that an operator (and a data principal's complaint) can be
//! answered with "these are the operations on this record", and so that a
//! changed, removed, inserted or reordered entry is *detected* rather than
//! silently believed ([`crate::db::audit_verify`]).
//!
//! # The chain
//!
//! Entry `n` (key: sequence number `n`, from 1) holds a time, an actor
//! (`user:<id>` or `system`), an action (`user.create`, `file.read`, ...),
//! a target (`file:<id>`, `user:<id>`, ...), an outcome (`ok`, `refused`,
//! ...) and
//!
//! ```text
//! mac(n) = HMAC-SHA256(audit key, mac(n-1) ‖ n as u64 LE ‖ postcard(content))
//! ```
//!
//! where `mac(0)` is 32 zero bytes, or the anchor's MAC once retention has
//! dropped the front ([`crate::db::audit_retention`]). The head (last seq
//! and MAC) lives in `meta` and is read and written in the same write
//! transaction as the append: the writer applies requests one after another
//! in one redb transaction, so two appends never see the same head.
//!
//! Entries hold ids only: never a username, email, display name or file
//! name, and never a secret.
//!
//! # The audit key
//!
//! A random 32-byte key made once per store, stored in `meta` wrapped under
//! the master key (by the blob layer, which owns wrapping: `db` only sees
//! opaque bytes), unwrapped when the keyring opens and kept here in memory
//! ([`Auditor::set_key`]). A master key rotation re-wraps it in the same
//! transaction as the owner rows, so the chain never needs recomputing.
//! The key is never logged: [`AuditKey`]'s `Debug` prints nothing of it.
//!
//! # Writing entries (for other modules)
//!
//! Inside the write transaction of the operation being audited:
//!
//! ```ignore
//! let audit = db.auditor();            // an Arc, moved into the closure
//! db.write(move |txn| {
//!     /* the operation */
//!     crate::audit::record(txn, &audit, Entry::new(now, "system", "user.erase", format!("user:{id}")))
//! }).await
//! ```
//!
//! so that an acknowledged operation has its entry and a refused commit
//! has none. With `AuditConfig::enabled = false`, [`record`] does nothing.
//! Reads go through [`Auditor::note_read`] instead (no commit per read;
//! see [`crate::audit`]).

use std::sync::{Mutex, RwLock};

use hmac::{KeyInit, Mac};
use redb::{ReadableTable, WriteTransaction};
use serde::{Deserialize, Serialize};

use crate::db::codec;
use crate::db::schema::AUDIT_LOG;
use crate::db::txn::ReadTxn;
pub(super) use crate::db::{get_meta, set_meta};
use crate::error::{Error, StorageContext};
use crate::types::Timestamp;

/// The actor of work nobody asked for by name (jobs, migrations).
pub(crate) const SYSTEM: &str = "system";

/// `meta` key of the chain head (last seq and MAC).
const HEAD_KEY: &str = "audit_head";
/// `meta` key of the anchor (seq and MAC of the last entry dropped by
/// retention, with a MAC of its own).
const ANCHOR_KEY: &str = "audit_anchor";
/// `meta` key set by the schema 9 migration: entries `1..=n` came from the
/// old unauthenticated table and are MACed when the key is first loaded.
pub(crate) const UNSEALED_KEY: &str = "audit_unsealed";

/// One audited event, as read back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// Position in the chain (from 1, no gaps).
    pub seq: u64,
    /// When it happened.
    pub at: Timestamp,
    /// Who asked: `user:<id>` or `system`.
    pub actor: String,
    /// What was asked, e.g. `file.read`.
    pub action: String,
    /// The record it was about, e.g. `file:<id>`.
    pub target: String,
    /// What came of it, e.g. `ok` or `refused`.
    pub outcome: String,
}

/// An entry to append: the content the MAC covers (no seq yet).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Entry {
    pub(crate) at: i64,
    pub(crate) actor: String,
    pub(crate) action: String,
    pub(crate) target: String,
    pub(crate) outcome: String,
}

impl Entry {
    /// An entry with outcome `ok`.
    pub(crate) fn new(
        at: Timestamp,
        actor: impl Into<String>,
        action: impl Into<String>,
        target: impl Into<String>,
    ) -> Entry {
        Entry {
            at: at.as_micros(),
            actor: actor.into(),
            action: action.into(),
            target: target.into(),
            outcome: "ok".into(),
        }
    }

    /// The same entry with another outcome.
    pub(crate) fn outcome(mut self, outcome: impl Into<String>) -> Entry {
        self.outcome = outcome.into();
        self
    }

    fn into_event(self, seq: u64) -> AuditEvent {
        AuditEvent {
            seq,
            at: Timestamp::from_micros(self.at),
            actor: self.actor,
            action: self.action,
            target: self.target,
            outcome: self.outcome,
        }
    }
}

/// An entry as stored (format 1): its content and its MAC.
#[derive(Serialize, Deserialize)]
pub(crate) struct Stored {
    pub(crate) entry: Entry,
    pub(crate) mac: [u8; 32],
}

/// A point of the chain: a seq and the MAC of the entry there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Link {
    pub(crate) seq: u64,
    pub(crate) mac: [u8; 32],
}

impl Link {
    /// Where a chain with nothing before it starts.
    pub(crate) const START: Link = Link {
        seq: 0,
        mac: [0; 32],
    };
}

/// The audit key, unwrapped. Zeroed on drop, never printed.
#[derive(Clone)]
pub(crate) struct AuditKey(zeroize::Zeroizing<[u8; 32]>);

impl AuditKey {
    pub(crate) fn from_bytes(bytes: [u8; 32]) -> AuditKey {
        AuditKey(zeroize::Zeroizing::new(bytes))
    }

    /// HMAC-SHA256 over the concatenation of `parts`.
    pub(super) fn mac(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut m = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(self.0.as_slice())
            .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
        for p in parts {
            m.update(p);
        }
        m.finalize().into_bytes().into()
    }

    /// The MAC of `entry` at `seq` after `prev`.
    pub(crate) fn entry_mac(&self, prev: &[u8; 32], seq: u64, entry: &Entry) -> [u8; 32] {
        // postcard cannot fail on these field types.
        let content = postcard::to_allocvec(entry).unwrap_or_default();
        self.mac(&[prev, &seq.to_le_bytes(), &content])
    }
}

impl std::fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuditKey([redacted])")
    }
}

/// Reads are noted here and appended in batches by a job; past this many
/// pending, further reads are only counted (see [`crate::audit`]).
pub(crate) const MAX_PENDING_READS: usize = 65_536;

/// The store's audit state: whether it is on, the key, the pending reads.
/// One per open store, shared (`Arc`) with write closures.
pub(crate) struct Auditor {
    enabled: bool,
    key: RwLock<Option<AuditKey>>,
    reads: Mutex<PendingReads>,
    /// Wakes the `audit-reads` job when many reads wait.
    pub(crate) reads_flush: crate::jobs::runtime::WakeAt,
}

/// A read noted for the audit log, in a quarter of an [`Entry`]'s memory
/// (the strings are made when the flush appends it).
#[derive(Debug, Clone, Copy)]
pub(crate) struct NotedRead {
    pub(crate) at: crate::types::Timestamp,
    pub(crate) actor: crate::Actor,
    pub(crate) action: &'static str,
    pub(crate) file: crate::types::FileId,
}

impl NotedRead {
    /// The entry the flush appends.
    pub(crate) fn entry(&self) -> Entry {
        Entry::new(
            self.at,
            self.actor.to_string(),
            self.action,
            format!("file:{}", self.file),
        )
    }
}

#[derive(Default)]
pub(crate) struct PendingReads {
    pub(crate) entries: Vec<NotedRead>,
    /// Reads not kept because `entries` was full.
    pub(crate) overflow: u64,
}

impl Auditor {
    pub(crate) fn new(enabled: bool) -> Auditor {
        Auditor {
            enabled,
            key: RwLock::new(None),
            reads: Mutex::new(PendingReads::default()),
            reads_flush: Default::default(),
        }
    }

    /// Installs the unwrapped audit key (the keyring does, at open).
    pub(crate) fn set_key(&self, key: AuditKey) {
        *self.key.write().unwrap_or_else(|e| e.into_inner()) = Some(key);
    }

    /// The audit key, if the keyring has loaded it.
    pub(crate) fn key(&self) -> Result<AuditKey, Error> {
        self.key
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or_else(|| Error::MissingKey {
                reason: "the audit key is not loaded (the store's keyring did not open)".into(),
            })
    }

    /// Notes a read to be appended by the next flush (no commit now).
    pub(crate) fn note_read(&self, entry: NotedRead) {
        if !self.enabled {
            return;
        }
        let mut reads = self.reads.lock().unwrap_or_else(|e| e.into_inner());
        if reads.entries.len() < MAX_PENDING_READS {
            reads.entries.push(entry);
            self.reads_flush.noted(reads.entries.len());
        } else {
            reads.overflow += 1;
        }
    }

    /// Takes every pending read.
    pub(crate) fn take_reads(&self) -> PendingReads {
        std::mem::take(&mut *self.reads.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Puts reads back in front after a failed flush.
    pub(crate) fn give_back(&self, mut taken: PendingReads) {
        let mut reads = self.reads.lock().unwrap_or_else(|e| e.into_inner());
        taken.entries.append(&mut reads.entries);
        taken.overflow += reads.overflow;
        *reads = taken;
    }

    /// How many reads wait for a flush.
    pub(crate) fn pending_reads(&self) -> usize {
        self.reads
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entries
            .len()
    }
}

/// Appends `entry` to the chain in `txn` (nothing when auditing is off).
///
/// Called after the operation wrote, so any failure here is returned as
/// an engine error ([`Error::Storage`]): the writer then aborts the whole
/// transaction, and no operation commits without its entry.
pub(crate) fn record(txn: &WriteTransaction, auditor: &Auditor, entry: Entry) -> Result<(), Error> {
    if !auditor.enabled {
        return Ok(());
    }
    let action = entry.action.clone();
    auditor
        .key()
        .and_then(|key| append(txn, &key, entry))
        .map(|_| ())
        .map_err(|e| match e {
            e @ Error::Storage { .. } => e,
            other => Error::storage_from(format!("recording {action} in the audit log"), other),
        })
}

/// Appends `entry` after the head, moves the head; returns its seq.
pub(crate) fn append(txn: &WriteTransaction, key: &AuditKey, entry: Entry) -> Result<u64, Error> {
    let head = head(txn)?.unwrap_or(Link::START);
    // The head is not MACed: a changed one may be at the last seq.
    let seq = head.seq.checked_add(1).ok_or_else(|| {
        Error::corrupt(
            "audit head",
            "it is at the last sequence number, so no entry can follow it",
        )
    })?;
    let mac = key.entry_mac(&head.mac, seq, &entry);
    put_entry(txn, seq, &Stored { entry, mac })?;
    set_link(txn, HEAD_KEY, &Link { seq, mac })?;
    Ok(seq)
}

pub(crate) fn put_entry(txn: &WriteTransaction, seq: u64, stored: &Stored) -> Result<(), Error> {
    put_entry_bytes(txn, seq, &codec::encode_versioned(1, stored)?)
}

/// Writes `bytes` as the entry at `seq`, as they are (the fuzz target
/// writes damaged chains through it).
pub(crate) fn put_entry_bytes(txn: &WriteTransaction, seq: u64, bytes: &[u8]) -> Result<(), Error> {
    txn.open_table(AUDIT_LOG)
        .ctx("opening audit_log")?
        .insert(seq, bytes)
        .ctx("writing audit_log")?;
    Ok(())
}

pub(crate) fn decode_stored(seq: u64, bytes: &[u8]) -> Result<Stored, Error> {
    codec::decode_versioned(1, bytes, || format!("audit entry {seq}"))
}

/// The chain head, if anything was ever appended.
pub(crate) fn head(txn: &impl ReadTxn) -> Result<Option<Link>, Error> {
    get_meta(txn, HEAD_KEY, "audit head")
}

/// Moves the head to `link`.
pub(crate) fn set_head(txn: &WriteTransaction, link: &Link) -> Result<(), Error> {
    set_link(txn, HEAD_KEY, link)
}

fn set_link(txn: &WriteTransaction, name: &str, link: &Link) -> Result<(), Error> {
    set_meta(txn, name, link)
}

/// The anchor left by retention, as stored (see `audit_retention`).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub(crate) struct Anchor {
    pub(crate) link: Link,
    /// Time of the last dropped entry.
    pub(crate) at: i64,
    /// HMAC over the fields above: an anchor cannot be made up without
    /// the key.
    pub(crate) tag: [u8; 32],
}

impl Anchor {
    pub(crate) fn tag_of(key: &AuditKey, link: &Link, at: i64) -> [u8; 32] {
        key.mac(&[
            b"bv/audit-anchor/v1",
            &link.seq.to_le_bytes(),
            &link.mac,
            &at.to_le_bytes(),
        ])
    }
}

pub(crate) fn anchor(txn: &impl ReadTxn) -> Result<Option<Anchor>, Error> {
    get_meta(txn, ANCHOR_KEY, "audit anchor")
}

pub(crate) fn set_anchor(txn: &WriteTransaction, anchor: &Anchor) -> Result<(), Error> {
    set_meta(txn, ANCHOR_KEY, anchor)
}

/// Entries matching `keep`, newest last: the newest `limit` of them.
pub(crate) fn tail(
    txn: &impl ReadTxn,
    limit: usize,
    keep: impl Fn(&AuditEvent) -> bool,
) -> Result<Vec<AuditEvent>, Error> {
    let table = txn.table(AUDIT_LOG)?;
    let mut out = Vec::new();
    for row in table.iter().ctx("reading audit_log")?.rev() {
        if out.len() == limit {
            break;
        }
        let (k, v) = row.ctx("reading audit_log")?;
        let event = decode_stored(k.value(), v.value())?
            .entry
            .into_event(k.value());
        if keep(&event) {
            out.push(event);
        }
    }
    out.reverse();
    Ok(out)
}
