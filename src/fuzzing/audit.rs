//! The `audit_event` target: the audit log as `store.redb` holds it.
//!
//! Two readings of the same bytes. As one value: an entry of the chain
//! (format 1, re-encoding to itself), the head or the anchor in `meta`,
//! an entry of the old `audit` table (schemas 3 to 8). As a script that
//! builds a chain in an in-memory database: an anchor (its tag right or
//! not), entries at chosen seqs (MACed in order under the fuzz audit key,
//! with a wrong MAC, or raw bytes), the unsealed marker and a head (the
//! last entry's or any). [`verify`](crate::db::audit_verify::verify) must
//! then report the chain intact exactly when it is, and an append after
//! it must extend an intact chain or be refused, never panic.

use std::collections::BTreeMap;

use super::accepted;
use crate::db::audit::{self, Anchor, AuditKey, Entry, Link, Stored};
use crate::db::codec;
use crate::error::Error;

/// The audit key the chains are MACed under.
const FUZZ_AUDIT_KEY: [u8; 32] = [0xa7; 32];

fn stored(data: &[u8]) -> bool {
    accepted(audit::decode_stored(1, data)).is_some_and(|s| {
        let again = codec::encode_versioned(1, &s).expect("encodes");
        let back = audit::decode_stored(1, &again).expect("decodes");
        assert!(
            back.entry == s.entry && back.mac == s.mac,
            "an entry re-encodes to itself"
        );
        true
    })
}

fn link(data: &[u8]) -> bool {
    accepted(codec::decode_versioned::<Link>(1, data, || "fuzz".into())).is_some_and(|l| {
        let again = codec::encode_versioned(1, &l).expect("encodes");
        let back: Link = codec::decode_versioned(1, &again, || "fuzz".into()).expect("decodes");
        assert_eq!(back, l, "a link re-encodes to itself");
        true
    })
}

fn anchor(data: &[u8]) -> bool {
    accepted(codec::decode_versioned::<Anchor>(1, data, || "fuzz".into())).is_some_and(|a| {
        let again = codec::encode_versioned(1, &a).expect("encodes");
        let back: Anchor = codec::decode_versioned(1, &again, || "fuzz".into()).expect("decodes");
        assert!(
            back.link == a.link && back.at == a.at && back.tag == a.tag,
            "an anchor re-encodes to itself"
        );
        true
    })
}

/// Reads a script: missing bytes read as zeros.
struct Script<'a>(&'a [u8]);

impl Script<'_> {
    fn take(&mut self, n: usize) -> &[u8] {
        let (head, rest) = self.0.split_at(n.min(self.0.len()));
        self.0 = rest;
        head
    }
    fn u8(&mut self) -> u8 {
        self.take(1).first().copied().unwrap_or(0)
    }
    fn u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        let got = self.take(8);
        b[..got.len()].copy_from_slice(got);
        u64::from_le_bytes(b)
    }
    fn mac(&mut self) -> [u8; 32] {
        let mut b = [0u8; 32];
        let got = self.take(32);
        b[..got.len()].copy_from_slice(got);
        b
    }
    fn text(&mut self) -> String {
        let n = usize::from(self.u8() % 16);
        String::from_utf8_lossy(self.take(n)).into_owned()
    }
    fn entry(&mut self) -> Entry {
        Entry {
            at: self.u64() as i64,
            actor: self.text(),
            action: self.text(),
            target: self.text(),
            outcome: self.text(),
        }
    }
}

/// Script flags (the first byte).
const ANCHOR: u8 = 1;
const ANCHOR_FORGED: u8 = 2;
const HEAD: u8 = 4;
const HEAD_ANY: u8 = 8;
const UNSEALED: u8 = 16;

/// Builds the chain `data` describes in `txn`; returns whether it is
/// intact (what [`verify`](crate::db::audit_verify::verify) must say).
fn build(txn: &redb::WriteTransaction, key: &AuditKey, data: &[u8]) -> Result<bool, Error> {
    let mut s = Script(data);
    let flags = s.u8();
    let mut intact = true;
    if flags & UNSEALED != 0 {
        crate::db::set_meta(txn, audit::UNSEALED_KEY, &u64::from(s.u8()))?;
        intact = false;
    }
    let mut start = Link::START;
    if flags & ANCHOR != 0 {
        let link = Link {
            seq: s.u64(),
            mac: s.mac(),
        };
        let at = s.u64() as i64;
        let right = Anchor::tag_of(key, &link, at);
        let tag = if flags & ANCHOR_FORGED != 0 {
            s.mac()
        } else {
            right
        };
        intact &= tag == right;
        audit::set_anchor(txn, &Anchor { link, at, tag })?;
        start = link;
    }
    // What each seq holds: the decoded entry and MAC, `None` if it does
    // not decode.
    let mut table: BTreeMap<u64, Option<(Entry, [u8; 32])>> = BTreeMap::new();
    let mut cursor = start;
    for _ in 0..s.u8() % 16 {
        let seq = match s.u8() {
            0xff => u64::MAX - u64::from(s.u8()),
            0xfe => s.u64(),
            step => cursor.seq.wrapping_add(u64::from(step % 4)),
        };
        let mode = s.u8() % 4;
        if mode == 3 {
            let n = usize::from(s.u8() % 64);
            let bytes = s.take(n).to_vec();
            audit::put_entry_bytes(txn, seq, &bytes)?;
            let decoded = audit::decode_stored(seq, &bytes).ok();
            table.insert(seq, decoded.map(|d| (d.entry, d.mac)));
            continue;
        }
        let entry = s.entry();
        let mut mac = key.entry_mac(&cursor.mac, seq, &entry);
        if mode == 2 {
            mac[usize::from(s.u8() % 32)] ^= 1;
        }
        audit::put_entry(
            txn,
            seq,
            &Stored {
                entry: entry.clone(),
                mac,
            },
        )?;
        table.insert(seq, Some((entry, mac)));
        cursor = Link { seq, mac };
    }
    // The chain as the spec reads it: from the anchor (or nothing), each
    // entry the next seq, decodable, MACed over its predecessor.
    let mut prev = start;
    for (seq, slot) in &table {
        match slot {
            Some((entry, mac))
                if prev.seq.checked_add(1) == Some(*seq)
                    && key.entry_mac(&prev.mac, *seq, entry) == *mac =>
            {
                prev = Link {
                    seq: *seq,
                    mac: *mac,
                }
            }
            _ => {
                intact = false;
                break;
            }
        }
    }
    let head = match flags & (HEAD | HEAD_ANY) {
        0 | HEAD_ANY => None,
        HEAD => Some(table.iter().next_back().map_or(start, |(seq, slot)| Link {
            seq: *seq,
            mac: slot.as_ref().map_or([0; 32], |(_, mac)| *mac),
        })),
        _ => Some(Link {
            seq: s.u64(),
            mac: s.mac(),
        }),
    };
    if let Some(h) = &head {
        audit::set_head(txn, h)?;
    }
    intact &= match head {
        None => prev.seq == 0 && table.is_empty(),
        Some(h) => h == prev,
    };
    Ok(intact)
}

/// Runs the chain script of `data`: verify must agree with the model, an
/// append must extend the chain or be refused as corrupt.
fn chain(data: &[u8]) -> bool {
    thread_local! {
        // One empty database per thread: each chain is written in a
        // transaction that is never committed.
        static DB: redb::Database = redb::Database::builder()
            .set_cache_size(1 << 20)
            .create_with_backend(redb::backends::InMemoryBackend::new())
            .expect("an in-memory database");
    }
    DB.with(|db| chain_in(db, data))
}

fn chain_in(db: &redb::Database, data: &[u8]) -> bool {
    use crate::db::audit_verify::verify;
    let key = AuditKey::from_bytes(FUZZ_AUDIT_KEY);
    let txn = db.begin_write().expect("a write transaction");
    let intact = build(&txn, &key, data).expect("the chain is written");
    let report = verify(&txn, &key).expect("verify reads any chain");
    assert_eq!(
        report.ok(),
        intact,
        "verify disagrees with the model: {report:?}"
    );
    let head = audit::head(&txn).expect("the head reads");
    let anchored = audit::anchor(&txn).expect("the anchor reads").is_some();
    let next = Entry::new(
        crate::Timestamp::from_micros(7),
        "system",
        "fuzz.append",
        "fuzz:1",
    );
    match audit::append(&txn, &key, next) {
        Ok(seq) => {
            let last = head.map_or(0, |h| h.seq);
            assert_eq!(
                last.checked_add(1),
                Some(seq),
                "append takes the seq after the head"
            );
            if intact && (head.is_some() || !anchored) {
                let after = verify(&txn, &key).expect("verify reads any chain");
                assert!(after.ok(), "an append broke an intact chain: {after:?}");
                assert_eq!(after.last_seq, Some(seq));
            }
        }
        Err(Error::Corrupt { .. }) => {
            assert_eq!(
                head.map(|h| h.seq),
                Some(u64::MAX),
                "append refused a chain with room"
            );
        }
        Err(other) => panic!("append returned a non-Corrupt error: {other}"),
    }
    txn.abort().expect("the chain is dropped");
    intact
}

/// Feeds `data` to every audit decoder and runs it as a chain script;
/// returns how many decoders accepted it (and 1 more if the chain it
/// describes is intact). Panics (the fuzzer's signal) only on a bug.
pub fn audit_event(data: &[u8]) -> usize {
    let legacy = accepted(codec::decode_versioned::<crate::db::migrate_v9::AuditV1>(
        1,
        data,
        || "fuzz".into(),
    ))
    .is_some();
    [stored(data), link(data), anchor(data), legacy, chain(data)]
        .iter()
        .filter(|ok| **ok)
        .count()
}

/// A chain script (see [`build`]): `entries` are (step, mode) pairs.
fn script(flags: u8, anchor_seq: u64, entries: &[(u8, u8)]) -> Vec<u8> {
    let mut out = vec![flags];
    if flags & UNSEALED != 0 {
        out.push(3);
    }
    if flags & ANCHOR != 0 {
        out.extend_from_slice(&anchor_seq.to_le_bytes());
        out.extend_from_slice(&[0x5c; 32]);
        out.extend_from_slice(&1_700_000_000_000_000i64.to_le_bytes());
    }
    out.push(entries.len() as u8);
    for (i, (step, mode)) in entries.iter().enumerate() {
        out.extend_from_slice(&[*step, *mode]);
        out.extend_from_slice(&(1_700_000_000_000_000i64 + i as i64).to_le_bytes());
        for text in ["user:0192", "file.read", "file:77", "ok"] {
            out.push(text.len() as u8);
            out.extend_from_slice(text.as_bytes());
        }
    }
    out
}

/// Valid values of each kind, and chain scripts: intact, and damaged (named
/// `damaged_*`: no decoder accepts them and their chain does not verify).
pub fn sample_audit_events() -> Vec<(&'static str, Vec<u8>)> {
    let key = AuditKey::from_bytes(FUZZ_AUDIT_KEY);
    let entry = Entry::new(
        crate::Timestamp::from_micros(1_700_000_000_000_000),
        "user:01923a4b-0000-7000-8000-000000000001",
        "file.read",
        "file:01923a4b-0000-7000-8000-000000000002",
    );
    let mac = key.entry_mac(&[0; 32], 1, &entry);
    let link = Link { seq: 1, mac };
    let anchor = Anchor {
        link,
        at: 1_700_000_000_000_000,
        tag: Anchor::tag_of(&key, &link, 1_700_000_000_000_000),
    };
    let legacy = crate::db::migrate_v9::AuditV1 {
        id: uuid::Uuid::from_u128(super::FUZZ_ID),
        at: 1_600_000_000_000_000,
        actor: "system".into(),
        action: "user.create".into(),
        target: "user:01923a4b-0000-7000-8000-000000000001".into(),
        outcome: "ok".into(),
    };
    let v1 = |bytes: Result<Vec<u8>, Error>| bytes.expect("encodes");
    vec![
        (
            "entry",
            v1(codec::encode_versioned(1, &Stored { entry, mac })),
        ),
        ("head", v1(codec::encode_versioned(1, &link))),
        ("anchor", v1(codec::encode_versioned(1, &anchor))),
        ("legacy_event", v1(codec::encode_versioned(1, &legacy))),
        ("chain_intact", script(HEAD, 0, &[(1, 0), (1, 0), (1, 1)])),
        (
            "chain_anchored",
            script(ANCHOR | HEAD, 41, &[(1, 0), (1, 0)]),
        ),
        (
            "damaged_chain_changed",
            script(HEAD, 0, &[(1, 0), (1, 2), (1, 0)]),
        ),
        ("damaged_chain_gap", script(HEAD, 0, &[(1, 0), (2, 0)])),
        ("damaged_chain_raw", script(HEAD, 0, &[(1, 0), (1, 3)])),
        (
            "damaged_chain_unsealed",
            script(HEAD | UNSEALED, 0, &[(1, 0)]),
        ),
    ]
}
