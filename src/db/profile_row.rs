//! The stored shape of a profile, with its personal fields sealed.
//!
//! Format 3 (schema 10) keeps in clear what the store itself acts on: the
//! ids, the audio retention (the expiry job), the consents (the consent
//! gates of every put and metric) and the times. The rest says who the
//! person is (languages, region, accent, voice, free-form preferences) and
//! is sealed under the owner's record key (`db::sealing`), in one field.
//!
//! ```text
//! | 3 | postcard(id, user_id, sealed(postcard(languages, region, accent,
//!               voice, preferences)), audio_retention_days, consents,
//!               created_at, updated_at) |
//! ```
//!
//! Format 2 rows (`db::records::ProfileV2`, all in clear) are still read;
//! `migrate_v10` seals them at the first open with the keys.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::db::codec::{self, Record};
use crate::db::records::{ConsentKindV2, ConsentV2, ProfileV2, VoiceV2};
use crate::db::sealing::{RecordKey, Sealed, aad};
use crate::error::Error;
use crate::model::profile::UserProfile;
use crate::types::UserId;

/// The format version byte of a profile written now.
pub(crate) const VERSION: u8 = 3;
/// The format of profiles in clear (schemas 2 to 9).
const PLAIN_VERSION: u8 = 2;
/// What the personal fields' associated data names.
const PERSONAL_FIELD: &[u8] = b"bharatvoice-store/profile/personal/";

/// A profile, format 3.
#[derive(Serialize, Deserialize)]
struct ProfileV3 {
    id: Uuid,
    user_id: Uuid,
    personal: Sealed,
    audio_retention_days: Option<u32>,
    consents: BTreeMap<ConsentKindV2, ConsentV2>,
    created_at: i64,
    updated_at: i64,
}

/// The sealed part of a profile.
#[derive(Serialize, Deserialize)]
struct PersonalV1 {
    languages: Vec<String>,
    region: Option<String>,
    accent: Option<String>,
    voice: VoiceV2,
    preferences: BTreeMap<String, String>,
}

/// A stored profile decoded as far as its clear fields.
pub(crate) enum ProfileRow {
    /// Format 2: everything in clear.
    Plain(UserProfile),
    /// Format 3.
    Sealed(ProfileV3Row),
}

/// A format 3 profile: its clear fields, and the sealed rest.
pub(crate) struct ProfileV3Row {
    /// The profile with its personal fields empty.
    head: UserProfile,
    personal: Sealed,
}

fn what(user: UserId) -> String {
    format!("profile record {user}")
}

impl ProfileRow {
    /// Decodes a stored profile (either format) without opening its
    /// personal fields.
    pub(crate) fn decode(bytes: &[u8], user: UserId) -> Result<ProfileRow, Error> {
        let row = Self::decode_any_owner(bytes, user)?;
        // The sealed fields are bound to the owner inside the record; that
        // owner must be the key the row is stored under.
        let owner = match &row {
            ProfileRow::Plain(p) => p.user_id,
            ProfileRow::Sealed(s) => s.head.user_id,
        };
        if owner != user {
            return Err(Error::corrupt(what(user), "stored under another user's id"));
        }
        Ok(row)
    }

    fn decode_any_owner(bytes: &[u8], user: UserId) -> Result<ProfileRow, Error> {
        if codec::version_of(bytes) == Some(PLAIN_VERSION) {
            return codec::decode::<UserProfile>(bytes, user).map(ProfileRow::Plain);
        }
        let p: ProfileV3 = codec::decode_versioned(VERSION, bytes, || what(user))?;
        let head = UserProfile::from_stored(ProfileV2 {
            id: p.id,
            user_id: p.user_id,
            languages: Vec::new(),
            region: None,
            accent: None,
            voice: VoiceV2::unset(),
            audio_retention_days: p.audio_retention_days,
            consents: p.consents,
            preferences: BTreeMap::new(),
            created_at: p.created_at,
            updated_at: p.updated_at,
        })
        .map_err(|e| relabel(e, user))?;
        Ok(ProfileRow::Sealed(ProfileV3Row {
            head,
            personal: p.personal,
        }))
    }

    /// The profile's clear fields (ids, retention, consents, times); its
    /// personal fields are empty when they are sealed.
    pub(crate) fn into_head(self) -> UserProfile {
        match self {
            ProfileRow::Plain(p) => p,
            ProfileRow::Sealed(s) => s.head,
        }
    }

    /// Whether the personal fields are stored sealed (format 3).
    pub(crate) fn is_sealed(&self) -> bool {
        matches!(self, ProfileRow::Sealed(_))
    }

    /// The whole profile, its personal fields opened with the owner's
    /// record key.
    pub(crate) fn open(self, key: &RecordKey) -> Result<UserProfile, Error> {
        let s = match self {
            ProfileRow::Plain(p) => return Ok(p),
            ProfileRow::Sealed(s) => s,
        };
        let user = s.head.user_id;
        let personal: PersonalV1 =
            key.open(&aad(PERSONAL_FIELD, user.to_key()), s.personal, || {
                what(user)
            })?;
        let clear = s.head.to_stored();
        UserProfile::from_stored(ProfileV2 {
            languages: personal.languages,
            region: personal.region,
            accent: personal.accent,
            voice: personal.voice,
            preferences: personal.preferences,
            ..clear
        })
        .map_err(|e| relabel(e, user))
    }
}

fn relabel(e: Error, user: UserId) -> Error {
    match e {
        Error::Corrupt { detail, .. } => Error::corrupt(what(user), detail),
        other => other,
    }
}

/// Encodes a profile in format 3, its personal fields sealed under `key`
/// (the owner's record key).
pub(crate) fn encode(p: &UserProfile, key: &RecordKey) -> Result<Vec<u8>, Error> {
    let s = p.to_stored();
    let personal = key.seal(
        &aad(PERSONAL_FIELD, p.user_id.to_key()),
        &PersonalV1 {
            languages: s.languages,
            region: s.region,
            accent: s.accent,
            voice: s.voice,
            preferences: s.preferences,
        },
    )?;
    codec::encode_versioned(
        VERSION,
        &ProfileV3 {
            id: s.id,
            user_id: s.user_id,
            personal,
            audio_retention_days: s.audio_retention_days,
            consents: s.consents,
            created_at: s.created_at,
            updated_at: s.updated_at,
        },
    )
}
