//! Small value types shared by every part: ids, timestamps, pages.
//!
//! Ids are UUID v7 newtypes: time-ordered, so B-tree inserts stay local and
//! "newest first" is a reverse scan of the primary key. They are stored in
//! redb as `u128` (big-endian value, so numeric order is creation order).
//! [`Timestamp`] is microseconds since the Unix epoch (UTC) everywhere; it
//! prints as RFC 3339 in JSON and on the terminal and as an `i64` in records.
//! The calendar arithmetic is `jiff`'s; this module only fixes the text
//! form (six fraction digits or none, always `Z`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::Error;

macro_rules! define_id {
    ($(#[$doc:meta])* $name:ident, $field:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(uuid::Uuid);

        impl $name {
            /// A new, time-ordered id.
            pub fn new() -> Self {
                Self(uuid::Uuid::now_v7())
            }
            /// The UUID inside.
            pub fn as_uuid(&self) -> uuid::Uuid {
                self.0
            }
            #[allow(dead_code)]
            pub(crate) fn to_key(self) -> u128 {
                self.0.as_u128()
            }
            #[allow(dead_code)]
            pub(crate) fn from_key(key: u128) -> Self {
                Self(uuid::Uuid::from_u128(key))
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl From<uuid::Uuid> for $name {
            fn from(u: uuid::Uuid) -> Self {
                Self(u)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0.hyphenated(), f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0.hyphenated())
            }
        }

        impl FromStr for $name {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self, Error> {
                uuid::Uuid::parse_str(s.trim())
                    .map(Self)
                    .map_err(|e| Error::invalid($field, format!("{} is not a UUID: {e}", crate::error::quote(s))))
            }
        }
    };
}

define_id!(
    /// Identifies a [`User`](crate::User).
    UserId,
    "user id"
);
define_id!(
    /// Identifies a [`UserProfile`](crate::UserProfile).
    ProfileId,
    "profile id"
);
define_id!(
    /// Identifies a [`ConversationSession`](crate::ConversationSession).
    SessionId,
    "session id"
);
define_id!(
    /// Identifies an [`AudioFile`](crate::AudioFile) record.
    FileId,
    "file id"
);
define_id!(
    /// Identifies one [`MetricSample`](crate::MetricSample).
    MetricId,
    "metric id"
);

/// A point in time: microseconds since 1970-01-01T00:00:00Z.
///
/// ```
/// use bharatvoice_store::Timestamp;
/// let t = Timestamp::from_micros(1_700_000_000_123_456);
/// assert_eq!(t.to_string(), "2023-11-14T22:13:20.123456Z");
/// assert_eq!("2023-11-14T22:13:20.123456Z".parse::<Timestamp>().unwrap(), t);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The earliest representable time.
    pub const MIN: Timestamp = Timestamp(i64::MIN);
    /// The latest representable time.
    pub const MAX: Timestamp = Timestamp(i64::MAX);

    /// The current time from the system clock.
    pub fn now() -> Self {
        let since = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Timestamp(i64::try_from(since.as_micros()).unwrap_or(i64::MAX))
    }
    /// From microseconds since the epoch.
    pub const fn from_micros(us: i64) -> Self {
        Timestamp(us)
    }
    /// Microseconds since the epoch.
    pub const fn as_micros(self) -> i64 {
        self.0
    }
    /// This time plus a duration (saturating).
    pub fn plus(self, d: std::time::Duration) -> Self {
        let us = i64::try_from(d.as_micros()).unwrap_or(i64::MAX);
        Timestamp(self.0.saturating_add(us))
    }
    /// This time minus a duration (saturating).
    pub fn minus(self, d: std::time::Duration) -> Self {
        let us = i64::try_from(d.as_micros()).unwrap_or(i64::MAX);
        Timestamp(self.0.saturating_sub(us))
    }
}

impl Timestamp {
    /// The same instant as a `jiff` timestamp, if it lies in jiff's range
    /// (-009999-01-02T01:59:59Z to 9999-12-30T22:00:00Z);
    /// [`Timestamp::MIN`] and [`Timestamp::MAX`] do not.
    fn to_jiff(self) -> Option<jiff::Timestamp> {
        jiff::Timestamp::from_microsecond(self.0).ok()
    }
}

impl fmt::Display for Timestamp {
    /// RFC 3339 in UTC with six fraction digits, none when the fraction is
    /// zero: `2023-11-14T22:13:20.123456Z`, `2023-11-14T22:13:20Z`. An
    /// instant outside jiff's range (about the years -9999 to 9999) is shown as its integer of
    /// microseconds, which parses back to the same value.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.to_jiff() {
            Some(t) if self.0.rem_euclid(1_000_000) == 0 => write!(f, "{t:.0}"),
            Some(t) => write!(f, "{t:.6}"),
            None => write!(f, "{}", self.0),
        }
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Timestamp {
    type Err = Error;
    /// Parses an RFC 3339 instant with an offset (`Z`, `+05:30`, ...) or an
    /// integer of microseconds since the epoch. Digits past the sixth of a
    /// fraction are dropped (truncated toward the past).
    fn from_str(s: &str) -> Result<Self, Error> {
        if let Ok(us) = s.parse::<i64>() {
            return Ok(Timestamp(us));
        }
        let t: jiff::Timestamp = s.parse().map_err(|e: jiff::Error| {
            Error::invalid(
                "timestamp",
                format!(
                    "{} is not an RFC 3339 time such as 2026-01-31T09:30:00Z ({e})",
                    crate::error::quote(s)
                ),
            )
        })?;
        // Whole microseconds toward the past, as a truncated fraction reads.
        let nanos = t.as_nanosecond();
        let micros = nanos.div_euclid(1_000);
        Ok(Timestamp(i64::try_from(micros).unwrap_or(if micros < 0 {
            i64::MIN
        } else {
            i64::MAX
        })))
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.collect_str(self)
        } else {
            s.serialize_i64(self.0)
        }
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            let s = String::deserialize(d)?;
            s.parse().map_err(serde::de::Error::custom)
        } else {
            i64::deserialize(d).map(Timestamp)
        }
    }
}

/// The address of a stored blob: a keyed hash, 32 bytes, shown as hex (also
/// in JSON; stored records keep the 32 bytes).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct BlobAddress(pub [u8; 32]);

impl Serialize for BlobAddress {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            hex32::serialize(&self.0, s)
        } else {
            s.serialize_newtype_struct("BlobAddress", &self.0)
        }
    }
}

impl BlobAddress {
    /// The address a blob's stored name says (64 lower-case hex digits,
    /// as both backends name blobs); `None` for any other name.
    pub(crate) fn from_name(name: &str) -> Option<BlobAddress> {
        if !crate::datadir::is_hex(name, 64) {
            return None;
        }
        let mut address = [0u8; 32];
        hex::decode_to_slice(name, &mut address).ok()?;
        Some(BlobAddress(address))
    }
}

impl<'de> Deserialize<'de> for BlobAddress {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        hex32::deserialize(d).map(BlobAddress)
    }
}

/// Serde for 32-byte digests (`#[serde(with = "hex32")]`): lower-case hex,
/// as `sha256sum` prints it, in human-readable formats (JSON); the bytes
/// exactly as a derived `[u8; 32]` writes them elsewhere (postcard, so
/// stored records do not change). JSON input may also be the old array of
/// 32 numbers.
pub(crate) mod hex32 {
    use std::fmt;

    use serde::de::{self, SeqAccess, Visitor};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub(crate) fn serialize<S: Serializer>(bytes: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&hex::encode(bytes))
        } else {
            bytes.serialize(s)
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        if d.is_human_readable() {
            d.deserialize_any(HexOrBytes)
        } else {
            <[u8; 32]>::deserialize(d)
        }
    }

    struct HexOrBytes;

    impl<'de> Visitor<'de> for HexOrBytes {
        type Value = [u8; 32];
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("64 hex digits or 32 bytes")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<[u8; 32], E> {
            let bad = || E::invalid_value(de::Unexpected::Str(v), &self);
            let mut out = [0u8; 32];
            hex::decode_to_slice(v, &mut out).map_err(|_| bad())?;
            Ok(out)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<[u8; 32], A::Error> {
            let mut out = [0u8; 32];
            for (i, b) in out.iter_mut().enumerate() {
                *b = seq
                    .next_element()?
                    .ok_or_else(|| de::Error::invalid_length(i, &self))?;
            }
            if seq.next_element::<u8>()?.is_some() {
                return Err(de::Error::invalid_length(33, &self));
            }
            Ok(out)
        }
    }
}

impl fmt::Display for BlobAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for BlobAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BlobAddress({self})")
    }
}

/// Where a listing starts and how much it returns.
///
/// ```
/// use bharatvoice_store::ListOptions;
/// let first = ListOptions::first(20);
/// assert_eq!(first.limit, 20);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListOptions {
    /// At most this many items (0 means the default of 50; capped at 1000).
    pub limit: usize,
    /// Continue after this cursor, taken from a previous [`Page::next`].
    pub after: Option<Cursor>,
}

impl ListOptions {
    /// The first `limit` items.
    pub fn first(limit: usize) -> Self {
        ListOptions { limit, after: None }
    }
    /// The `limit` items after `cursor`.
    pub fn after(cursor: Cursor, limit: usize) -> Self {
        ListOptions {
            limit,
            after: Some(cursor),
        }
    }
    pub(crate) fn effective_limit(&self) -> usize {
        match self.limit {
            0 => 50,
            n => n.min(1000),
        }
    }
}

/// An opaque position in a listing; pass it back to get the next page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Cursor(pub(crate) uuid::Uuid);

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.simple(), f)
    }
}

impl FromStr for Cursor {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        uuid::Uuid::parse_str(s).map(Cursor).map_err(|_| {
            Error::invalid(
                "cursor",
                format!(
                    "{} is not a cursor from a previous page",
                    crate::error::quote(s)
                ),
            )
        })
    }
}

/// One page of a listing, newest first.
#[derive(Debug, Clone, Serialize)]
pub struct Page<T> {
    /// The items of this page.
    pub items: Vec<T>,
    /// Where the next page starts, or `None` when this was the last.
    pub next: Option<Cursor>,
}

#[cfg(test)]
#[path = "types_tests.rs"]
mod tests;
