//! The stored shape of a user (record format 4, schema 10; format 3 from
//! schema 5).
//!
//! Format 4 is format 3 with the display name sealed under the user's
//! record key (`db::sealing`): the one personal field of a user that the
//! store does not look up by. Username and email stay in clear: the
//! covering indexes are keyed by them. A row whose name is in clear (a
//! format 3 row not yet sealed by `migrate_v10`) is written back in format
//! 3, so that changing it needs no key.
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
//! users:    | 4 | body |
//! indexes:  | 4 | id: 16 bytes, big-endian | body |
//! body = postcard(username, email, display_name (sealed in format 4),
//!                 status, has_password,
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
use crate::db::sealing::{RecordKey, Sealed, aad};
use crate::error::Error;
use crate::model::user::{User, UserStatus};
use crate::types::{Timestamp, UserId};

/// The format version byte of a stored user.
pub(crate) const VERSION: u8 = 4;

/// Format 3 (schemas 5 to 9): the display name in clear. Still read, and
/// written back for a row whose name is in clear (so that a change to a
/// row not yet sealed needs no key); `migrate_v10` seals them.
pub(crate) const PLAIN_VERSION: u8 = 3;

/// The version byte of a user record in schemas 2 to 4: `postcard(User)`.
pub(crate) const LEGACY_VERSION: u8 = 2;

/// What the display name's associated data names.
const NAME_FIELD: &[u8] = b"bharatvoice-store/user/display-name/";

/// The body: borrows the user's strings when written; decoding fills the
/// `Cow`s with owned strings (serde does not borrow without being asked),
/// which then move into the [`User`] without a copy. `N` is the display
/// name: `Cow<str>` in format 3, [`Sealed`] in format 4.
#[derive(Serialize, Deserialize)]
struct Body<'a, N> {
    username: Cow<'a, str>,
    email: Cow<'a, str>,
    display_name: Option<N>,
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

/// A stored user: the record, and how its display name is kept.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct UserRow {
    /// The user; its `display_name` is `None` while [`Self::sealed_name`]
    /// holds it sealed.
    pub(crate) user: User,
    /// The display name sealed under the user's record key; `None`: the
    /// name (if any) is in `user.display_name`, in clear.
    pub(crate) sealed_name: Option<Sealed>,
}

impl UserRow {
    /// A row whose display name is sealed under `key` (the user's record
    /// key); without a name, no key is needed (`key` may be `None`).
    pub(crate) fn sealed(user: User, key: Option<&RecordKey>) -> Result<UserRow, Error> {
        let sealed_name = match (&user.display_name, key) {
            (Some(name), Some(key)) => Some(key.seal(&aad(NAME_FIELD, user.id.to_key()), name)?),
            (Some(_), None) => {
                return Err(Error::MissingKey {
                    reason: format!("sealing the display name of user {}", user.id),
                });
            }
            (None, _) => None,
        };
        Ok(UserRow {
            user: User {
                display_name: None,
                ..user
            },
            sealed_name,
        })
    }

    /// Whether opening needs the user's record key.
    pub(crate) fn needs_key(&self) -> bool {
        self.sealed_name.is_some()
    }

    /// Whether a name is kept in clear (a format 3 row not yet sealed).
    pub(crate) fn has_clear_name(&self) -> bool {
        self.sealed_name.is_none() && self.user.display_name.is_some()
    }

    /// The user with its display name opened (`key`: the user's record
    /// key, needed only when [`needs_key`](Self::needs_key)).
    pub(crate) fn open(self, key: Option<&RecordKey>) -> Result<User, Error> {
        let mut user = self.user;
        if let Some(sealed) = self.sealed_name {
            let id = user.id;
            let key = key.ok_or_else(|| Error::MissingKey {
                reason: format!("opening the display name of user {id}"),
            })?;
            user.display_name = Some(key.open(&aad(NAME_FIELD, id.to_key()), sealed, || {
                format!("user record {id}")
            })?);
        }
        Ok(user)
    }
}

fn encode(row: &UserRow, index: Option<Index>) -> Result<Vec<u8>, Error> {
    fn unless_key(field: &str, key: Index, index: Option<Index>) -> Cow<'_, str> {
        Cow::Borrowed(if index == Some(key) { "" } else { field })
    }
    fn body<N>(user: &User, index: Option<Index>, display_name: Option<N>) -> Body<'_, N> {
        Body {
            username: unless_key(&user.username, Index::Username, index),
            email: unless_key(&user.email, Index::Email, index),
            display_name,
            status: user.status,
            has_password: user.has_password,
            last_login_at: user.last_login_at,
            created_at: user.created_at,
            updated_after_us: user
                .updated_at
                .as_micros()
                .wrapping_sub(user.created_at.as_micros()),
            deleted_at: user.deleted_at,
        }
    }
    let user = &row.user;
    let mut out = Vec::with_capacity(96);
    let clear = row.has_clear_name();
    out.push(if clear { PLAIN_VERSION } else { VERSION });
    if index.is_some() {
        out.extend_from_slice(&user.id.to_key().to_be_bytes());
    }
    let encoded = if clear {
        let name = user.display_name.as_deref().map(Cow::Borrowed);
        postcard::to_extend(&body(user, index, name), out)
    } else {
        postcard::to_extend(&body(user, index, row.sealed_name.as_ref()), out)
    };
    encoded.map_err(|e| Error::invalid("user record", format!("cannot be encoded: {e}")))
}

/// The value stored in `users` (the key holds the id).
pub(crate) fn encode_row(row: &UserRow) -> Result<Vec<u8>, Error> {
    encode(row, None)
}

/// The value stored in a covering index (id included, the key left out).
pub(crate) fn encode_indexed(row: &UserRow, index: Index) -> Result<Vec<u8>, Error> {
    encode(row, Some(index))
}

fn user_of<N>(
    id: UserId,
    mut b: Body<'_, N>,
    key: Option<(Index, &str)>,
    what: impl Fn() -> String,
) -> Result<(User, Option<N>), Error> {
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
    let user = User {
        id,
        username: b.username.into_owned(),
        email: b.email.into_owned(),
        display_name: None,
        status: b.status,
        has_password: b.has_password,
        last_login_at: b.last_login_at,
        created_at: b.created_at,
        updated_at: Timestamp::from_micros(
            b.created_at.as_micros().wrapping_add(b.updated_after_us),
        ),
        deleted_at: b.deleted_at,
    };
    Ok((user, b.display_name))
}

fn decode_body(
    id: UserId,
    version: u8,
    body: &[u8],
    key: Option<(Index, &str)>,
    what: impl Fn() -> String,
) -> Result<UserRow, Error> {
    if version == PLAIN_VERSION {
        let b: Body<Cow<str>> = codec::decode_body(body, &what)?;
        let (mut user, name) = user_of(id, b, key, what)?;
        user.display_name = name.map(Cow::into_owned);
        return Ok(UserRow {
            user,
            sealed_name: None,
        });
    }
    let b: Body<Sealed> = codec::decode_body(body, &what)?;
    let (user, sealed_name) = user_of(id, b, key, what)?;
    Ok(UserRow { user, sealed_name })
}

/// The version byte (format 3 or 4) and the rest.
fn split_version<'b>(bytes: &'b [u8], what: &impl Fn() -> String) -> Result<(u8, &'b [u8]), Error> {
    let version = match codec::version_of(bytes) {
        Some(PLAIN_VERSION) => PLAIN_VERSION,
        _ => VERSION,
    };
    Ok((version, codec::strip_version(version, bytes, what)?))
}

/// Decodes a value of `users` stored under `id`.
#[inline]
pub(crate) fn decode_row(bytes: &[u8], id: UserId) -> Result<UserRow, Error> {
    let what = || format!("user record {id}");
    let (version, body) = split_version(bytes, &what)?;
    decode_body(id, version, body, None, what)
}

fn split_indexed<'b>(
    bytes: &'b [u8],
    what: &impl Fn() -> String,
) -> Result<(u8, UserId, &'b [u8]), Error> {
    let (version, rest) = split_version(bytes, what)?;
    match rest.split_first_chunk::<16>() {
        Some((id, body)) => Ok((version, UserId::from_key(u128::from_be_bytes(*id)), body)),
        None => Err(Error::corrupt(what(), "shorter than its id")),
    }
}

/// Decodes a value of `index` stored under `key`.
#[inline]
pub(crate) fn decode_indexed(bytes: &[u8], index: Index, key: &str) -> Result<UserRow, Error> {
    let what = || format!("user record {key}");
    let (version, id, body) = split_indexed(bytes, &what)?;
    decode_body(id, version, body, Some((index, key)), what)
}

/// The id in an index value, without decoding the rest (conflict checks).
pub(crate) fn indexed_id(bytes: &[u8], key: &str) -> Result<UserId, Error> {
    split_indexed(bytes, &|| format!("user record {key}")).map(|(_, id, _)| id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blob::crypto::SecretKey;

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

    fn key() -> RecordKey {
        RecordKey::new(&SecretKey::from_bytes([4; 32]))
    }

    fn clear(user: &User) -> UserRow {
        UserRow {
            user: user.clone(),
            sealed_name: None,
        }
    }

    #[test]
    fn both_shapes_round_trip_any_timestamps_sealed_or_clear() {
        let now = Timestamp::now().as_micros();
        let key = key();
        for (c, u) in [
            (now, now),
            (now, now + 1_000_000),
            (i64::MIN, i64::MAX),
            (i64::MAX, i64::MIN),
            (0, -1),
        ] {
            let user = user(c, u);
            for (row, version) in [
                (UserRow::sealed(user.clone(), Some(&key)).unwrap(), VERSION),
                (clear(&user), PLAIN_VERSION),
            ] {
                let open = |r: UserRow| r.open(Some(&key)).unwrap();
                let bytes = encode_row(&row).unwrap();
                assert_eq!(bytes[0], version);
                assert_eq!(open(decode_row(&bytes, user.id).unwrap()), user);
                let by_name = encode_indexed(&row, Index::Username).unwrap();
                assert_eq!(
                    open(decode_indexed(&by_name, Index::Username, "ravi").unwrap()),
                    user
                );
                assert_eq!(by_name.len(), bytes.len() + 16 - 4);
                let by_email = encode_indexed(&row, Index::Email).unwrap();
                assert_eq!(
                    open(decode_indexed(&by_email, Index::Email, "ravi@example.in").unwrap()),
                    user
                );
                assert_eq!(by_email.len(), bytes.len() + 16 - 15);
                assert_eq!(indexed_id(&by_email, "k").unwrap(), user.id);
            }
        }
    }

    #[test]
    fn a_sealed_name_is_not_in_the_bytes_and_needs_the_key() {
        let user = user(1, 2);
        let row = UserRow::sealed(user.clone(), Some(&key())).unwrap();
        let bytes = encode_row(&row).unwrap();
        assert!(!bytes.windows(3).any(|w| w == &"रवि".as_bytes()[..3]));
        let back = decode_row(&bytes, user.id).unwrap();
        assert!(back.needs_key());
        assert!(matches!(
            back.clone().open(None),
            Err(Error::MissingKey { .. })
        ));
        let other = RecordKey::new(&SecretKey::from_bytes([5; 32]));
        assert!(matches!(
            back.open(Some(&other)),
            Err(Error::Corrupt { .. })
        ));
        let unnamed = User {
            display_name: None,
            ..user
        };
        assert!(!UserRow::sealed(unnamed, None).unwrap().needs_key());
    }

    #[test]
    fn format_3_is_smaller_than_format_2() {
        let now = Timestamp::now().as_micros();
        let mut user = user(now, now);
        user.display_name = None;
        user.last_login_at = None;
        let v2 = crate::db::migrate::encode_legacy_user(&user).unwrap();
        let v3 = encode_row(&clear(&user)).unwrap();
        assert!(v3.len() + 24 <= v2.len(), "v2 {} v3 {}", v2.len(), v3.len());
    }

    #[test]
    fn damaged_values_are_corrupt() {
        let user = user(1, 2);
        let key = key();
        for row in [
            clear(&user),
            UserRow::sealed(user.clone(), Some(&key)).unwrap(),
        ] {
            let bytes = encode_row(&row).unwrap();
            let indexed = encode_indexed(&row, Index::Email).unwrap();
            let corrupt = |r: Result<UserRow, Error>| matches!(r, Err(Error::Corrupt { .. }));
            for cut in 0..bytes.len() {
                assert!(corrupt(decode_row(&bytes[..cut], user.id)), "row cut {cut}");
            }
            for cut in 0..indexed.len() {
                let short = &indexed[..cut];
                assert!(corrupt(decode_indexed(short, Index::Email, "k")), "{cut}");
            }
            // A value under the wrong index repeats that index's key.
            assert!(corrupt(decode_indexed(&indexed, Index::Username, "k")));
            let mut long = bytes.clone();
            long.push(0);
            assert!(corrupt(decode_row(&long, user.id)));
            let mut old = bytes.clone();
            old[0] = LEGACY_VERSION;
            let e = decode_row(&old, user.id).unwrap_err();
            assert!(
                e.to_string().contains("format version 2, expected 4"),
                "{e}"
            );
            assert!(e.to_string().contains(&user.id.to_string()), "{e}");
        }
    }
}
