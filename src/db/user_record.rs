//! The stored shape of a user (record format 3, schema 5).
//!
//! Why users get their own encoding: they are the most-read records, and
//! each is stored three times (in `users` under its id and in both covering
//! indexes, see `db::users_index`), so their size decides how many fit the
//! page cache. Format 2 was `postcard(User)` behind a version byte, 68
//! bytes for a typical user; 17 of them were the id, which `users` already
//! has as its key, and about 8 a second full timestamp. Format 3 leaves the
//! id out of `users`, leaves the name an index is keyed by out of that
//! index's values, and stores `updated_at` as the microseconds after
//! `created_at` (0 for a user never changed). At 1M users with a 64 MiB
//! page cache the `users` table shrank from ~89 to ~66 bytes a row, now
//! fits the cache, and a get by id went from 1.94× SQLite's (one read
//! transaction per query) to 2.4–2.9× (docs/BENCHMARKS.md).
//!
//! ```text
//! users:    | 3 | body |
//! indexes:  | 3 | id: 16 bytes, big-endian | body |
//! body = postcard(username, email, display_name, status, has_password,
//!                 last_login_at, created_at, updated_at − created_at,
//!                 deleted_at)
//! ```
//!
//! `updated_at − created_at` is taken modulo 2^64, so every pair of
//! timestamps round-trips exactly. In `user_records_by_username` the
//! body's username is empty (the key is the username), in
//! `user_records_by_email` its email; a value whose key field is not empty
//! is corrupt. Decoding refuses a wrong version byte, a short id, trailing
//! bytes and anything postcard refuses, with [`Error::Corrupt`].

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use crate::db::codec;
use crate::error::Error;
use crate::model::user::{User, UserStatus};
use crate::types::{Timestamp, UserId};

/// The format version byte of a stored user.
pub(crate) const VERSION: u8 = 3;

/// The version byte of a user record in schemas 2 to 4: `postcard(User)`.
pub(crate) const LEGACY_VERSION: u8 = 2;

/// The body: borrows the user's strings when written; decoding fills the
/// `Cow`s with owned strings (serde does not borrow without being asked),
/// which then move into the [`User`] without a copy.
#[derive(Serialize, Deserialize)]
struct Body<'a> {
    username: Cow<'a, str>,
    email: Cow<'a, str>,
    display_name: Option<Cow<'a, str>>,
    status: UserStatus,
    has_password: bool,
    last_login_at: Option<Timestamp>,
    created_at: Timestamp,
    updated_after_us: i64,
    deleted_at: Option<Timestamp>,
}

/// A covering index: its key is one of the user's names, which its values
/// leave out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Index {
    /// `user_records_by_username`.
    Username,
    /// `user_records_by_email`.
    Email,
}

fn encode(user: &User, index: Option<Index>) -> Result<Vec<u8>, Error> {
    fn unless_key(field: &str, key: Index, index: Option<Index>) -> Cow<'_, str> {
        Cow::Borrowed(if index == Some(key) { "" } else { field })
    }
    let body = Body {
        username: unless_key(&user.username, Index::Username, index),
        email: unless_key(&user.email, Index::Email, index),
        display_name: user.display_name.as_deref().map(Cow::Borrowed),
        status: user.status,
        has_password: user.has_password,
        last_login_at: user.last_login_at,
        created_at: user.created_at,
        updated_after_us: user
            .updated_at
            .as_micros()
            .wrapping_sub(user.created_at.as_micros()),
        deleted_at: user.deleted_at,
    };
    let mut out = Vec::with_capacity(64);
    out.push(VERSION);
    if index.is_some() {
        out.extend_from_slice(&user.id.to_key().to_be_bytes());
    }
    postcard::to_extend(&body, out)
        .map_err(|e| Error::invalid("user record", format!("cannot be encoded: {e}")))
}

/// The value stored in `users` (the key holds the id).
pub(crate) fn encode_row(user: &User) -> Result<Vec<u8>, Error> {
    encode(user, None)
}

/// The value stored in a covering index (id included, the key left out).
pub(crate) fn encode_indexed(user: &User, index: Index) -> Result<Vec<u8>, Error> {
    encode(user, Some(index))
}

fn decode_body(
    id: UserId,
    body: &[u8],
    key: Option<(Index, &str)>,
    what: impl Fn() -> String,
) -> Result<User, Error> {
    let mut b: Body = codec::decode_body(body, &what)?;
    if let Some((index, key)) = key {
        let field = match index {
            Index::Username => &mut b.username,
            Index::Email => &mut b.email,
        };
        if !field.is_empty() {
            return Err(Error::corrupt(what(), "an index value repeats its key"));
        }
        *field = Cow::Owned(key.to_owned());
    }
    Ok(User {
        id,
        username: b.username.into_owned(),
        email: b.email.into_owned(),
        display_name: b.display_name.map(Cow::into_owned),
        status: b.status,
        has_password: b.has_password,
        last_login_at: b.last_login_at,
        created_at: b.created_at,
        updated_at: Timestamp::from_micros(
            b.created_at.as_micros().wrapping_add(b.updated_after_us),
        ),
        deleted_at: b.deleted_at,
    })
}

/// Decodes a value of `users` stored under `id`.
#[inline]
pub(crate) fn decode_row(bytes: &[u8], id: UserId) -> Result<User, Error> {
    let what = || format!("user record {id}");
    decode_body(id, codec::strip_version(VERSION, bytes, what)?, None, what)
}

fn split_indexed<'b>(
    bytes: &'b [u8],
    what: &impl Fn() -> String,
) -> Result<(UserId, &'b [u8]), Error> {
    match codec::strip_version(VERSION, bytes, what)?.split_first_chunk::<16>() {
        Some((id, body)) => Ok((UserId::from_key(u128::from_be_bytes(*id)), body)),
        None => Err(Error::corrupt(what(), "shorter than its id")),
    }
}

/// Decodes a value of `index` stored under `key`.
#[inline]
pub(crate) fn decode_indexed(bytes: &[u8], index: Index, key: &str) -> Result<User, Error> {
    let what = || format!("user record {key}");
    let (id, body) = split_indexed(bytes, &what)?;
    decode_body(id, body, Some((index, key)), what)
}

/// The id in an index value, without decoding the rest (conflict checks).
pub(crate) fn indexed_id(bytes: &[u8], key: &str) -> Result<UserId, Error> {
    split_indexed(bytes, &|| format!("user record {key}")).map(|(id, _)| id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(created: i64, updated: i64) -> User {
        User {
            id: UserId::new(),
            username: "ravi".into(),
            email: "ravi@example.in".into(),
            display_name: Some("रवि".into()),
            status: UserStatus::Suspended,
            has_password: true,
            last_login_at: Some(Timestamp::from_micros(5)),
            created_at: Timestamp::from_micros(created),
            updated_at: Timestamp::from_micros(updated),
            deleted_at: None,
        }
    }

    #[test]
    fn both_shapes_round_trip_any_timestamps() {
        let now = Timestamp::now().as_micros();
        for (c, u) in [
            (now, now),
            (now, now + 1_000_000),
            (i64::MIN, i64::MAX),
            (i64::MAX, i64::MIN),
            (0, -1),
        ] {
            let user = user(c, u);
            let row = encode_row(&user).unwrap();
            assert_eq!(decode_row(&row, user.id).unwrap(), user);
            let by_name = encode_indexed(&user, Index::Username).unwrap();
            assert_eq!(
                decode_indexed(&by_name, Index::Username, "ravi").unwrap(),
                user
            );
            assert_eq!(by_name.len(), row.len() + 16 - 4);
            let by_email = encode_indexed(&user, Index::Email).unwrap();
            assert_eq!(
                decode_indexed(&by_email, Index::Email, "ravi@example.in").unwrap(),
                user
            );
            assert_eq!(by_email.len(), row.len() + 16 - 15);
            assert_eq!(indexed_id(&by_email, "k").unwrap(), user.id);
        }
    }

    #[test]
    fn format_3_is_smaller_than_format_2() {
        let now = Timestamp::now().as_micros();
        let mut user = user(now, now);
        user.display_name = None;
        user.last_login_at = None;
        let v2 = crate::db::migrate::encode_legacy_user(&user).unwrap();
        let v3 = encode_row(&user).unwrap();
        assert!(v3.len() + 24 <= v2.len(), "v2 {} v3 {}", v2.len(), v3.len());
    }

    #[test]
    fn damaged_values_are_corrupt() {
        let user = user(1, 2);
        let row = encode_row(&user).unwrap();
        let indexed = encode_indexed(&user, Index::Email).unwrap();
        let corrupt = |r: Result<User, Error>| matches!(r, Err(Error::Corrupt { .. }));
        for cut in 0..row.len() {
            assert!(corrupt(decode_row(&row[..cut], user.id)), "row cut {cut}");
        }
        for cut in 0..indexed.len() {
            let short = &indexed[..cut];
            assert!(corrupt(decode_indexed(short, Index::Email, "k")), "{cut}");
        }
        // A value under the wrong index repeats that index's key.
        assert!(corrupt(decode_indexed(&indexed, Index::Username, "k")));
        let mut long = row.clone();
        long.push(0);
        assert!(corrupt(decode_row(&long, user.id)));
        let mut old = row.clone();
        old[0] = LEGACY_VERSION;
        let e = decode_row(&old, user.id).unwrap_err();
        assert!(
            e.to_string().contains("format version 2, expected 3"),
            "{e}"
        );
        assert!(e.to_string().contains(&user.id.to_string()), "{e}");
    }
}
