//! The tables of `cache.redb` and the byte layout of one cached row.
//!
//! # Tables
//!
//! | table | key | value |
//! |---|---|---|
//! | `meta` | `&str` name | `u64`: `format_version`, `generation` (bumped by `clear`), `next_seq`, `entries`, `bytes` |
//! | `entries` | `&str` cache key | checksum + row bytes (below) |
//! | `by_expiry` | `(i64 deadline µs, &str key)` | `()` — for the sweep |
//! | `by_seq` | `u64` write sequence | `&str` key — oldest write first, for the capacity bound |
//! | `tags` | `&str` tag | `(u64 version, u64 rows)`: current version, rows written under it |
//!
//! # Row layout (little-endian)
//!
//! ```text
//! +---------+-------+-------------+-------+------------+--------+--------------------------+-------+
//! | version | flags | deadline µs | seq   | generation | n tags | n × (len u16, name, u64) | value |
//! | u8 = 1  | u8    | i64         | u64   | u64        | u16    | UTF-8 names, versions    | rest  |
//! +---------+-------+-------------+-------+------------+--------+--------------------------+-------+
//! ```
//!
//! `flags` bit 0: the deadline is set (else the field must be 0). A row that does
//! not parse (unknown version, short, bad UTF-8, bad lengths) is
//! [`Error::Corrupt`].
//!
//! # Checksum
//!
//! The `entries` value is the row behind an 8-byte checksum: the first 8
//! bytes of SHA-256 over the key's length (u32, little-endian), the key
//! and the row bytes.
//!
//! ```text
//! +--------------------------------------------+---------------------+
//! | SHA-256(key len u32 ‖ key ‖ row)[..8]      | row (layout above)  |
//! +--------------------------------------------+---------------------+
//! ```
//!
//! redb checks its page checksums only when it repairs a file, so a
//! flipped bit in a page would otherwise reach a lookup as another value,
//! or as the row of another key. A value that fails its checksum is
//! [`Error::Corrupt`], and the tier sets the whole file aside as damaged.
//! `cache.redb` format 2 added the checksum; a format-1 file is set aside
//! at open like any file of an unknown format.

use redb::TableDefinition;

use crate::error::Error;
use crate::types::Timestamp;

pub(crate) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
pub(crate) const ENTRIES: TableDefinition<&str, &[u8]> = TableDefinition::new("entries");
pub(crate) const BY_EXPIRY: TableDefinition<(i64, &str), ()> = TableDefinition::new("by_expiry");
pub(crate) const BY_SEQ: TableDefinition<u64, &str> = TableDefinition::new("by_seq");
pub(crate) const TAGS: TableDefinition<&str, (u64, u64)> = TableDefinition::new("tags");

/// The `cache.redb` layout this build writes and reads (2: checksummed
/// values).
pub(crate) const FORMAT_VERSION: u64 = 2;
/// Bytes of the checksum in front of a stored row.
const CHECK: usize = 8;
const ROW_VERSION: u8 = 1;
const HEADER: usize = 1 + 1 + 8 + 8 + 8 + 2;

/// A row, owned (what the write-behind overlay holds and lookups return).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Row {
    pub(crate) deadline: Option<Timestamp>,
    pub(crate) seq: u64,
    pub(crate) generation: u64,
    pub(crate) tags: Vec<(Box<str>, u64)>,
    pub(crate) value: Box<[u8]>,
}

/// A row parsed in place.
#[derive(Debug)]
pub(crate) struct RowView<'a> {
    pub(crate) deadline: Option<Timestamp>,
    pub(crate) seq: u64,
    pub(crate) generation: u64,
    pub(crate) tags: Vec<(&'a str, u64)>,
    pub(crate) value: &'a [u8],
}

impl Row {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let tag_bytes: usize = self.tags.iter().map(|(t, _)| 2 + t.len() + 8).sum();
        let mut out = Vec::with_capacity(HEADER + tag_bytes + self.value.len());
        out.push(ROW_VERSION);
        out.push(u8::from(self.deadline.is_some()));
        out.extend_from_slice(&self.deadline.map_or(0, |d| d.as_micros()).to_le_bytes());
        out.extend_from_slice(&self.seq.to_le_bytes());
        out.extend_from_slice(&self.generation.to_le_bytes());
        // Tag names are at most 256 bytes and an entry has at most 32 tags
        // (checked on input), so both fit a u16.
        out.extend_from_slice(&(self.tags.len() as u16).to_le_bytes());
        for (name, version) in &self.tags {
            out.extend_from_slice(&(name.len() as u16).to_le_bytes());
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(&version.to_le_bytes());
        }
        out.extend_from_slice(&self.value);
        out
    }

    pub(crate) fn from_view(v: &RowView<'_>) -> Row {
        Row {
            deadline: v.deadline,
            seq: v.seq,
            generation: v.generation,
            tags: v.tags.iter().map(|(t, n)| ((*t).into(), *n)).collect(),
            value: v.value.into(),
        }
    }
}

fn checksum(key: &str, row: &[u8]) -> [u8; CHECK] {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    // A key is at most 64 KiB (checked on input).
    h.update((key.len() as u32).to_le_bytes());
    h.update(key.as_bytes());
    h.update(row);
    let digest = h.finalize();
    let mut out = [0; CHECK];
    out.copy_from_slice(&digest[..CHECK]);
    out
}

/// The bytes stored under `key` for `row`: checksum, then the row.
pub(crate) fn seal(key: &str, row: &Row) -> Vec<u8> {
    let body = row.encode();
    let mut out = Vec::with_capacity(CHECK + body.len());
    out.extend_from_slice(&checksum(key, &body));
    out.extend_from_slice(&body);
    out
}

/// Checks and parses the bytes stored under `key`.
pub(crate) fn unseal<'a>(stored: &'a [u8], key: &str) -> Result<RowView<'a>, Error> {
    let Some((check, body)) = stored.split_at_checked(CHECK) else {
        return Err(Error::corrupt(
            format!("cache row {key:?}"),
            format!("{} bytes, shorter than its checksum", stored.len()),
        ));
    };
    if check != checksum(key, body) {
        return Err(Error::corrupt(
            format!("cache row {key:?}"),
            "checksum mismatch: the row is damaged or not this key's",
        ));
    }
    parse(body, key)
}

struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.bytes.len() < n {
            return Err(format!("{n} bytes needed, {} left", self.bytes.len()));
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }
    fn u16(&mut self) -> Result<u16, String> {
        let mut b = [0; 2];
        b.copy_from_slice(self.take(2)?);
        Ok(u16::from_le_bytes(b))
    }
    fn u64(&mut self) -> Result<u64, String> {
        let mut b = [0; 8];
        b.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(b))
    }
}

/// Parses a row's bytes (after the checksum); `key` names it in errors.
pub(crate) fn parse<'a>(bytes: &'a [u8], key: &str) -> Result<RowView<'a>, Error> {
    parse_inner(bytes).map_err(|detail| Error::corrupt(format!("cache row {key:?}"), detail))
}

fn parse_inner(bytes: &[u8]) -> Result<RowView<'_>, String> {
    let mut r = Reader { bytes };
    let version = r.take(1)?[0];
    if version != ROW_VERSION {
        return Err(format!("row format {version}, expected {ROW_VERSION}"));
    }
    let flags = r.take(1)?[0];
    if flags > 1 {
        return Err(format!("unknown flags {flags:#x}"));
    }
    let deadline = r.u64()? as i64;
    if flags == 0 && deadline != 0 {
        return Err("a deadline without its flag".into());
    }
    let seq = r.u64()?;
    let generation = r.u64()?;
    let n = usize::from(r.u16()?);
    if n > crate::cache::tags::MAX_TAGS {
        return Err(format!("{n} tags"));
    }
    let mut tags = Vec::with_capacity(n);
    for _ in 0..n {
        let len = usize::from(r.u16()?);
        let name = std::str::from_utf8(r.take(len)?).map_err(|e| e.to_string())?;
        tags.push((name, r.u64()?));
    }
    Ok(RowView {
        deadline: (flags & 1 == 1).then_some(Timestamp::from_micros(deadline)),
        seq,
        generation,
        tags,
        value: r.bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_refusals() {
        let row = Row {
            deadline: Some(Timestamp::from_micros(-5)),
            seq: 7,
            generation: 2,
            tags: vec![("user:1".into(), 3), ("हिन्दी".into(), 0)],
            value: b"value".to_vec().into(),
        };
        let bytes = row.encode();
        assert_eq!(Row::from_view(&parse(&bytes, "k").unwrap()), row);
        for cut in 0..HEADER + 2 {
            assert!(parse(&bytes[..cut], "k").is_err(), "cut at {cut}");
        }
        let mut bad = bytes.clone();
        bad[0] = 9;
        assert!(matches!(parse(&bad, "k"), Err(Error::Corrupt { .. })));
        let none = Row {
            deadline: None,
            tags: vec![],
            ..row
        };
        assert_eq!(Row::from_view(&parse(&none.encode(), "k").unwrap()), none);
    }

    #[test]
    fn a_sealed_row_opens_only_intact_and_under_its_key() {
        let row = Row {
            deadline: None,
            seq: 3,
            generation: 1,
            tags: vec![("t".into(), 4)],
            value: b"v".to_vec().into(),
        };
        let stored = seal("k1", &row);
        assert_eq!(Row::from_view(&unseal(&stored, "k1").unwrap()), row);
        assert!(unseal(&stored, "k2").is_err());
        for i in 0..stored.len() {
            let mut bad = stored.clone();
            bad[i] ^= 0x01;
            assert!(unseal(&bad, "k1").is_err(), "flip at {i}");
        }
        for cut in 0..stored.len() {
            assert!(unseal(&stored[..cut], "k1").is_err(), "cut at {cut}");
        }
    }
}
