//! Record encoding: one format-version byte, then the record in postcard.
//!
//! ```text
//! +---------+------------------------------+
//! | version | postcard(record)             |
//! |  1 byte | rest of the value            |
//! +---------+------------------------------+
//! ```
//!
//! postcard is a stable, specified wire format (varints, length-prefixed
//! strings and sequences, no field names). The version byte lets a
//! migration tell an old shape from the current one. Decoding refuses an
//! unknown version, trailing bytes and anything postcard refuses, with
//! [`Error::Corrupt`]; postcard checks every length against the bytes left
//! before it allocates, so corrupt input cannot make it allocate more than
//! the input justifies.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::Error;

/// A type stored as a record.
pub(crate) trait Record: Sized {
    /// What the record is, for error messages.
    const KIND: &'static str;
    /// The format version written now.
    const VERSION: u8;
    /// The shape on disk for `VERSION`: private to `db`, frozen (see
    /// `db::records`); `Self` for types that are private already.
    type Stored: Serialize + DeserializeOwned;
    /// The stored shape of this value.
    fn to_stored(&self) -> Self::Stored;
    /// The value back from its stored shape; an error if the shape holds
    /// what the type refuses (a bad language tag, say).
    fn from_stored(stored: Self::Stored) -> Result<Self, Error>;
}

/// A db-private type that is its own stored shape.
macro_rules! stored_as_is {
    ($kind:literal, $version:literal) => {
        const KIND: &'static str = $kind;
        const VERSION: u8 = $version;
        type Stored = Self;
        fn to_stored(&self) -> Self {
            self.clone()
        }
        fn from_stored(stored: Self) -> Result<Self, $crate::error::Error> {
            Ok(stored)
        }
    };
}
pub(crate) use stored_as_is;

/// Encodes a record with its version byte.
pub(crate) fn encode<T: Record>(record: &T) -> Result<Vec<u8>, Error> {
    encode_versioned(T::VERSION, &record.to_stored())
}

/// Encodes any serialisable value behind a given version byte (migrations
/// and tests write old shapes with it).
pub(crate) fn encode_versioned<T: Serialize>(version: u8, value: &T) -> Result<Vec<u8>, Error> {
    let out = vec![version];
    postcard::to_extend(value, out)
        .map_err(|e| Error::invalid("record", format!("cannot be encoded: {e}")))
}

/// Decodes a record written by [`encode`]; `id` names it in errors.
#[inline]
pub(crate) fn decode<T: Record>(bytes: &[u8], id: impl std::fmt::Display) -> Result<T, Error> {
    let stored = decode_versioned(T::VERSION, bytes, || format!("{} {id}", T::KIND))?;
    T::from_stored(stored).map_err(|e| match e {
        Error::Corrupt { detail, .. } => Error::corrupt(format!("{} {id}", T::KIND), detail),
        other => other,
    })
}

/// Decodes a value that must carry `version`.
#[inline]
pub(crate) fn decode_versioned<T: DeserializeOwned>(
    version: u8,
    bytes: &[u8],
    what: impl Fn() -> String,
) -> Result<T, Error> {
    decode_body(strip_version(version, bytes, &what)?, what)
}

/// The bytes after the version byte, which must be `version`.
pub(crate) fn strip_version(
    version: u8,
    bytes: &[u8],
    what: impl FnOnce() -> String,
) -> Result<&[u8], Error> {
    match bytes.split_first() {
        None => Err(Error::corrupt(what(), "empty value")),
        Some((&found, body)) if found == version => Ok(body),
        Some((found, _)) => Err(Error::corrupt(
            what(),
            format!("format version {found}, expected {version}"),
        )),
    }
}

/// Decodes the postcard part of a value: all of `body`, nothing left over.
pub(crate) fn decode_body<T: DeserializeOwned>(
    body: &[u8],
    what: impl FnOnce() -> String,
) -> Result<T, Error> {
    match postcard::take_from_bytes::<T>(body) {
        Ok((value, [])) => Ok(value),
        Ok((_, rest)) => Err(Error::corrupt(
            what(),
            format!("{} trailing bytes", rest.len()),
        )),
        Err(e) => Err(Error::corrupt(what(), e.to_string())),
    }
}

/// Reads the format version byte of a stored value, if any.
pub(crate) fn version_of(bytes: &[u8]) -> Option<u8> {
    bytes.first().copied()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{MetricSample, Timestamp};

    #[test]
    fn round_trip_and_refusals() {
        let m = MetricSample::new("db.commit", 1.5).at(Timestamp::from_micros(7));
        let bytes = encode(&m).unwrap();
        assert_eq!(decode::<MetricSample>(&bytes, "x").unwrap(), m);
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert!(matches!(
            decode::<MetricSample>(&trailing, "x"),
            Err(Error::Corrupt { .. })
        ));
        let mut wrong_version = bytes.clone();
        wrong_version[0] = 9;
        assert!(matches!(
            decode::<MetricSample>(&wrong_version, "x"),
            Err(Error::Corrupt { .. })
        ));
        assert!(matches!(
            decode::<MetricSample>(&[], "x"),
            Err(Error::Corrupt { .. })
        ));
        for cut in 0..bytes.len() {
            assert!(
                decode::<MetricSample>(&bytes[..cut], "x").is_err(),
                "cut at {cut}"
            );
        }
    }
}
