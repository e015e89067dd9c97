//! The stored shapes of the records whose public types are API: profiles,
//! sessions, audio files and metric samples (users have their own
//! encoding, `db::user_record`; blob rows, owner key rows and audit
//! entries are private to `db` already).
//!
//! Why separate types: a public type may gain a field, a serde attribute
//! or a new enum variant for the API's sake; if it were the stored shape,
//! that would silently change what is on disk. These shapes are frozen for
//! their format version: built from primitives, `Uuid` and private enums
//! whose variant order is the stored order, and changed only together with
//! a new version and a migration that reads the old one. A test in this
//! module pins their bytes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::db::codec::Record;
use crate::error::Error;
use crate::model::file::{AudioFile, Codec, Encryption};
use crate::model::metric::MetricSample;
use crate::model::profile::{ConsentKind, ConsentState, UserProfile, VoicePreferences};
use crate::model::session::{ConversationSession, Role, Turn};
use crate::model::validate::LanguageTag;
use crate::types::{BlobAddress, FileId, MetricId, ProfileId, SessionId, Timestamp, UserId};

pub(crate) fn ts(t: Timestamp) -> i64 {
    t.as_micros()
}

pub(crate) fn at(us: i64) -> Timestamp {
    Timestamp::from_micros(us)
}

pub(crate) fn tag(s: String, kind: &'static str) -> Result<LanguageTag, Error> {
    s.parse().map_err(|_| {
        Error::corrupt(
            kind,
            format!("{} is not a language tag", crate::error::quote(&s)),
        )
    })
}

/// A profile, format 2 (schemas 2 to 9): every field in clear. Format 3
/// (`db::profile_row`) seals the personal ones; this shape still reads
/// and writes format 2 for migrations and is what format 3 opens into.
#[derive(Serialize, Deserialize)]
pub(crate) struct ProfileV2 {
    pub(crate) id: Uuid,
    pub(crate) user_id: Uuid,
    pub(crate) languages: Vec<String>,
    pub(crate) region: Option<String>,
    pub(crate) accent: Option<String>,
    pub(crate) voice: VoiceV2,
    pub(crate) audio_retention_days: Option<u32>,
    pub(crate) consents: BTreeMap<ConsentKindV2, ConsentV2>,
    pub(crate) preferences: BTreeMap<String, String>,
    pub(crate) created_at: i64,
    pub(crate) updated_at: i64,
}

#[derive(Serialize, Deserialize)]
pub(crate) struct VoiceV2 {
    voice: Option<String>,
    speaking_rate: f32,
    pitch: f32,
}

impl VoiceV2 {
    /// The default voice preferences (what a sealed profile's head holds).
    pub(crate) fn unset() -> VoiceV2 {
        let d = VoicePreferences::default();
        VoiceV2 {
            voice: d.voice,
            speaking_rate: d.speaking_rate,
            pitch: d.pitch,
        }
    }
}

#[derive(Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum ConsentKindV2 {
    AudioStorage,
    Personalisation,
    Analytics,
}

#[derive(Serialize, Deserialize)]
pub(crate) struct ConsentV2 {
    granted: bool,
    at: i64,
}

impl Record for UserProfile {
    const KIND: &'static str = "profile record";
    const VERSION: u8 = 2;
    type Stored = ProfileV2;

    fn to_stored(&self) -> ProfileV2 {
        ProfileV2 {
            id: self.id.as_uuid(),
            user_id: self.user_id.as_uuid(),
            languages: self
                .languages
                .iter()
                .map(|l| l.as_str().to_owned())
                .collect(),
            region: self.region.clone(),
            accent: self.accent.clone(),
            voice: VoiceV2 {
                voice: self.voice.voice.clone(),
                speaking_rate: self.voice.speaking_rate,
                pitch: self.voice.pitch,
            },
            audio_retention_days: self.audio_retention_days,
            consents: self
                .consents
                .iter()
                .map(|(k, c)| {
                    let kind = match k {
                        ConsentKind::AudioStorage => ConsentKindV2::AudioStorage,
                        ConsentKind::Personalisation => ConsentKindV2::Personalisation,
                        ConsentKind::Analytics => ConsentKindV2::Analytics,
                    };
                    let state = ConsentV2 {
                        granted: c.granted,
                        at: ts(c.at),
                    };
                    (kind, state)
                })
                .collect(),
            preferences: self.preferences.clone(),
            created_at: ts(self.created_at),
            updated_at: ts(self.updated_at),
        }
    }

    fn from_stored(s: ProfileV2) -> Result<Self, Error> {
        Ok(UserProfile {
            id: ProfileId::from_key(s.id.as_u128()),
            user_id: UserId::from_key(s.user_id.as_u128()),
            languages: s
                .languages
                .into_iter()
                .map(|l| tag(l, Self::KIND))
                .collect::<Result<_, _>>()?,
            region: s.region,
            accent: s.accent,
            voice: VoicePreferences {
                voice: s.voice.voice,
                speaking_rate: s.voice.speaking_rate,
                pitch: s.voice.pitch,
            },
            audio_retention_days: s.audio_retention_days,
            consents: s
                .consents
                .into_iter()
                .map(|(k, c)| {
                    let kind = match k {
                        ConsentKindV2::AudioStorage => ConsentKind::AudioStorage,
                        ConsentKindV2::Personalisation => ConsentKind::Personalisation,
                        ConsentKindV2::Analytics => ConsentKind::Analytics,
                    };
                    let state = ConsentState {
                        granted: c.granted,
                        at: at(c.at),
                    };
                    (kind, state)
                })
                .collect(),
            preferences: s.preferences,
            created_at: at(s.created_at),
            updated_at: at(s.updated_at),
        })
    }
}

/// A conversation session, format 1 (schemas 2 to 9): its context in
/// clear. Format 2 (`db::session_row`) seals the context.
#[derive(Serialize, Deserialize)]
pub(crate) struct SessionV1 {
    id: Uuid,
    user_id: Uuid,
    language: Option<String>,
    last_active_at: i64,
    expires_at: i64,
    ended_at: Option<i64>,
    turn_count: u64,
    context: Vec<TurnV1>,
    created_at: i64,
    updated_at: i64,
    deleted_at: Option<i64>,
}

impl SessionV1 {
    /// The stored shape of a session in format 1 (tests and fixtures of
    /// old stores write it).
    #[cfg(any(test, feature = "fuzzing"))]
    pub(crate) fn from_session(s: &ConversationSession) -> SessionV1 {
        SessionV1 {
            id: s.id.as_uuid(),
            user_id: s.user_id.as_uuid(),
            language: s.language.as_ref().map(|l| l.as_str().to_owned()),
            last_active_at: ts(s.last_active_at),
            expires_at: ts(s.expires_at),
            ended_at: s.ended_at.map(ts),
            turn_count: s.turn_count,
            context: turns_to_stored(&s.context),
            created_at: ts(s.created_at),
            updated_at: ts(s.updated_at),
            deleted_at: s.deleted_at.map(ts),
        }
    }

    /// The session it holds.
    pub(crate) fn into_session(self) -> Result<ConversationSession, Error> {
        Ok(ConversationSession {
            id: SessionId::from_key(self.id.as_u128()),
            user_id: UserId::from_key(self.user_id.as_u128()),
            language: self
                .language
                .map(|l| tag(l, "session record"))
                .transpose()?,
            last_active_at: at(self.last_active_at),
            expires_at: at(self.expires_at),
            ended_at: self.ended_at.map(at),
            turn_count: self.turn_count,
            context: turns_from_stored(self.context),
            created_at: at(self.created_at),
            updated_at: at(self.updated_at),
            deleted_at: self.deleted_at.map(at),
        })
    }
}

/// A turn, format 1 (in both session formats).
#[derive(Serialize, Deserialize)]
pub(crate) struct TurnV1 {
    role: RoleV1,
    #[serde(deserialize_with = "crate::db::text::deserialize")]
    text: String,
    at: i64,
}

#[derive(Serialize, Deserialize)]
enum RoleV1 {
    User,
    Assistant,
    System,
}

/// The stored shape of turns.
pub(crate) fn turns_to_stored(turns: &[Turn]) -> Vec<TurnV1> {
    turns
        .iter()
        .map(|t| TurnV1 {
            role: match t.role {
                Role::User => RoleV1::User,
                Role::Assistant => RoleV1::Assistant,
                Role::System => RoleV1::System,
            },
            text: t.text.clone(),
            at: ts(t.at),
        })
        .collect()
}

/// Turns back from their stored shape.
pub(crate) fn turns_from_stored(turns: Vec<TurnV1>) -> Vec<Turn> {
    turns
        .into_iter()
        .map(|t| Turn {
            role: match t.role {
                RoleV1::User => Role::User,
                RoleV1::Assistant => Role::Assistant,
                RoleV1::System => Role::System,
            },
            text: t.text,
            at: at(t.at),
        })
        .collect()
}

/// An audio file's record, format 1.
#[derive(Serialize, Deserialize)]
pub(crate) struct FileV1 {
    id: Uuid,
    owner: Uuid,
    blob: [u8; 32],
    name: Option<String>,
    content_type: String,
    plain_bytes: u64,
    stored_bytes: u64,
    sha256: [u8; 32],
    encryption: EncryptionV1,
    codec: CodecV1,
    key_version: u32,
    session_id: Option<Uuid>,
    tags: Vec<String>,
    expires_at: Option<i64>,
    access_count: u64,
    created_at: i64,
    updated_at: i64,
    deleted_at: Option<i64>,
}

/// An audio-file record, format 2: format 1 and the last read time.
#[derive(Serialize, Deserialize)]
pub(crate) struct FileV2 {
    id: Uuid,
    owner: Uuid,
    blob: [u8; 32],
    name: Option<String>,
    content_type: String,
    plain_bytes: u64,
    stored_bytes: u64,
    sha256: [u8; 32],
    encryption: EncryptionV1,
    codec: CodecV1,
    key_version: u32,
    session_id: Option<Uuid>,
    tags: Vec<String>,
    expires_at: Option<i64>,
    access_count: u64,
    last_read_at: Option<i64>,
    created_at: i64,
    updated_at: i64,
    deleted_at: Option<i64>,
}

impl FileV2 {
    /// When the file was soft-deleted (for migrations).
    pub(crate) fn deleted_at(&self) -> Option<i64> {
        self.deleted_at
    }
}

impl FileV1 {
    /// The same record in format 2 (never read).
    pub(crate) fn upgrade(self) -> FileV2 {
        FileV2 {
            id: self.id,
            owner: self.owner,
            blob: self.blob,
            name: self.name,
            content_type: self.content_type,
            plain_bytes: self.plain_bytes,
            stored_bytes: self.stored_bytes,
            sha256: self.sha256,
            encryption: self.encryption,
            codec: self.codec,
            key_version: self.key_version,
            session_id: self.session_id,
            tags: self.tags,
            expires_at: self.expires_at,
            access_count: self.access_count,
            last_read_at: None,
            created_at: self.created_at,
            updated_at: self.updated_at,
            deleted_at: self.deleted_at,
        }
    }

    /// When the file was soft-deleted (for migrations).
    pub(crate) fn deleted_at(&self) -> Option<i64> {
        self.deleted_at
    }
}

#[derive(Serialize, Deserialize)]
enum EncryptionV1 {
    None,
    Aes256GcmSiv,
}

#[derive(Serialize, Deserialize)]
enum CodecV1 {
    None,
    Zstd,
}

impl Record for AudioFile {
    const KIND: &'static str = "audio file record";
    const VERSION: u8 = 2;
    type Stored = FileV2;

    fn to_stored(&self) -> FileV2 {
        FileV2 {
            id: self.id.as_uuid(),
            owner: self.owner.as_uuid(),
            blob: self.blob.0,
            name: self.name.clone(),
            content_type: self.content_type.clone(),
            plain_bytes: self.plain_bytes,
            stored_bytes: self.stored_bytes,
            sha256: self.sha256,
            encryption: match self.encryption {
                Encryption::None => EncryptionV1::None,
                Encryption::Aes256GcmSiv => EncryptionV1::Aes256GcmSiv,
            },
            codec: match self.codec {
                Codec::None => CodecV1::None,
                Codec::Zstd => CodecV1::Zstd,
            },
            key_version: self.key_version,
            session_id: self.session_id.map(|s| s.as_uuid()),
            tags: self.tags.clone(),
            expires_at: self.expires_at.map(ts),
            access_count: self.access_count,
            last_read_at: self.last_read_at.map(ts),
            created_at: ts(self.created_at),
            updated_at: ts(self.updated_at),
            deleted_at: self.deleted_at.map(ts),
        }
    }

    fn from_stored(s: FileV2) -> Result<Self, Error> {
        Ok(AudioFile {
            id: FileId::from_key(s.id.as_u128()),
            owner: UserId::from_key(s.owner.as_u128()),
            blob: BlobAddress(s.blob),
            name: s.name,
            content_type: s.content_type,
            plain_bytes: s.plain_bytes,
            stored_bytes: s.stored_bytes,
            sha256: s.sha256,
            encryption: match s.encryption {
                EncryptionV1::None => Encryption::None,
                EncryptionV1::Aes256GcmSiv => Encryption::Aes256GcmSiv,
            },
            codec: match s.codec {
                CodecV1::None => Codec::None,
                CodecV1::Zstd => Codec::Zstd,
            },
            key_version: s.key_version,
            session_id: s.session_id.map(|u| SessionId::from_key(u.as_u128())),
            tags: s.tags,
            expires_at: s.expires_at.map(at),
            access_count: s.access_count,
            last_read_at: s.last_read_at.map(at),
            created_at: at(s.created_at),
            updated_at: at(s.updated_at),
            deleted_at: s.deleted_at.map(at),
        })
    }
}

/// A metric sample, format 1.
#[derive(Serialize, Deserialize)]
pub(crate) struct MetricV1 {
    id: Uuid,
    name: String,
    at: i64,
    value: f64,
    labels: BTreeMap<String, String>,
}

impl Record for MetricSample {
    const KIND: &'static str = "metric record";
    const VERSION: u8 = 1;
    type Stored = MetricV1;

    fn to_stored(&self) -> MetricV1 {
        MetricV1 {
            id: self.id.as_uuid(),
            name: self.name.clone(),
            at: ts(self.at),
            value: self.value,
            labels: self.labels.clone(),
        }
    }

    fn from_stored(s: MetricV1) -> Result<Self, Error> {
        Ok(MetricSample {
            id: MetricId::from_key(s.id.as_u128()),
            name: s.name,
            at: at(s.at),
            value: s.value,
            labels: s.labels,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::codec;

    fn t(n: i64) -> Timestamp {
        Timestamp::from_micros(1_700_000_000_000_000 + n)
    }

    fn uid(n: u128) -> Uuid {
        Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0000 + n)
    }

    /// Each record's bytes, pinned: what a store written by an earlier
    /// build holds. A change here is a format change (a new version and a
    /// migration), never a refactor.
    fn pinned<T: Record + PartialEq + std::fmt::Debug>(value: T, hex: &str) {
        let bytes = codec::encode(&value).unwrap();
        assert_eq!(hex::encode(&bytes), hex, "{} bytes moved", T::KIND);
        assert_eq!(codec::decode::<T>(&bytes, "pinned").unwrap(), value);
    }

    #[test]
    fn stored_bytes_are_pinned() {
        let user = UserId::from_key(uid(1).as_u128());
        let mut profile = UserProfile {
            id: ProfileId::from_key(uid(2).as_u128()),
            user_id: user,
            languages: vec!["hi-IN".parse().unwrap(), "ta-IN".parse().unwrap()],
            region: Some("Tamil Nadu".into()),
            accent: None,
            voice: VoicePreferences {
                voice: Some("meera".into()),
                speaking_rate: 1.25,
                pitch: -0.5,
            },
            audio_retention_days: Some(30),
            consents: BTreeMap::new(),
            preferences: BTreeMap::new(),
            created_at: t(0),
            updated_at: t(1),
        };
        profile.consents.insert(
            ConsentKind::Analytics,
            ConsentState {
                granted: false,
                at: t(2),
            },
        );
        profile.consents.insert(
            ConsentKind::AudioStorage,
            ConsentState {
                granted: true,
                at: t(3),
            },
        );
        profile
            .preferences
            .insert("wake_word".into(), "namaste".into());
        pinned(profile, PROFILE);
        let session = ConversationSession {
            id: SessionId::from_key(uid(3).as_u128()),
            user_id: user,
            language: Some("ta-IN".parse().unwrap()),
            last_active_at: t(4),
            expires_at: t(5),
            ended_at: Some(t(6)),
            turn_count: 2,
            context: vec![
                Turn {
                    role: Role::User,
                    text: "வணக்கம்".into(),
                    at: t(7),
                },
                Turn {
                    role: Role::Assistant,
                    text: "hello".into(),
                    at: t(8),
                },
            ],
            created_at: t(9),
            updated_at: t(10),
            deleted_at: None,
        };
        // Format 1 is only read now (`db::session_row`): its bytes stay
        // pinned for the stores that still hold it.
        let bytes = codec::encode_versioned(1, &SessionV1::from_session(&session)).unwrap();
        assert_eq!(hex::encode(&bytes), SESSION);
        let row = crate::db::session_row::SessionRow::decode(&bytes, session.id).unwrap();
        assert!(!row.is_sealed());
        let key = crate::db::sealing::RecordKey::new(&crate::blob::crypto::SecretKey::from_bytes(
            [0; 32],
        ));
        assert_eq!(row.open(&key).unwrap(), session);
        let file = AudioFile {
            id: FileId::from_key(uid(4).as_u128()),
            owner: user,
            blob: BlobAddress([7; 32]),
            name: Some("clip.wav".into()),
            content_type: "audio/wav".into(),
            plain_bytes: 32_000,
            stored_bytes: 30_000,
            sha256: [9; 32],
            encryption: Encryption::Aes256GcmSiv,
            codec: Codec::Zstd,
            key_version: 2,
            session_id: Some(SessionId::from_key(uid(3).as_u128())),
            tags: vec!["greeting".into()],
            expires_at: Some(t(11)),
            access_count: 5,
            last_read_at: Some(t(15)),
            created_at: t(12),
            updated_at: t(13),
            deleted_at: Some(t(14)),
        };
        pinned(file.clone(), FILE);
        let v1 = hex::decode(FILE_V1).unwrap();
        let old: FileV1 = codec::decode_versioned(1, &v1, || "v1".into()).unwrap();
        let upgraded = codec::encode_versioned(2, &old.upgrade()).unwrap();
        let back = codec::decode::<AudioFile>(&upgraded, "upgraded").unwrap();
        assert_eq!(
            back,
            AudioFile {
                last_read_at: None,
                ..file
            }
        );
        let mut metric = MetricSample {
            id: MetricId::from_key(uid(5).as_u128()),
            name: "db.commit_us".into(),
            at: t(15),
            value: 212.5,
            labels: BTreeMap::new(),
        };
        metric.labels.insert("part".into(), "db".into());
        pinned(metric, METRIC);
    }

    #[test]
    fn a_stored_language_tag_the_type_refuses_is_corrupt() {
        let session = ConversationSession {
            id: SessionId::from_key(1),
            user_id: UserId::from_key(2),
            language: Some("hi-IN".parse().unwrap()),
            last_active_at: t(0),
            expires_at: t(0),
            ended_at: None,
            turn_count: 0,
            context: Vec::new(),
            created_at: t(0),
            updated_at: t(0),
            deleted_at: None,
        };
        let key = crate::db::sealing::RecordKey::new(&crate::blob::crypto::SecretKey::from_bytes(
            [0; 32],
        ));
        for mut bytes in [
            codec::encode_versioned(1, &SessionV1::from_session(&session)).unwrap(),
            crate::db::session_row::encode(&session, &key).unwrap(),
        ] {
            let at = bytes.windows(5).position(|w| w == b"hi-IN").unwrap();
            bytes[at..at + 5].copy_from_slice(b"hi\x07IN");
            assert!(matches!(
                crate::db::session_row::SessionRow::decode(&bytes, session.id),
                Err(Error::Corrupt { .. })
            ));
        }
    }

    const PROFILE: &str = concat!(
        "0210019000000000700080000000000000021001900000000070008000000000",
        "000001020568692d494e0574612d494e010a54616d696c204e6164750001056d",
        "656572610000a03f000000bf011e0200018680f2818389850602008480f28183",
        "898506010977616b655f776f7264076e616d617374658080f281838985068280",
        "f28183898506",
    );
    const SESSION: &str = concat!(
        "0110019000000000700080000000000000031001900000000070008000000000",
        "000001010574612d494e8880f281838985068a80f28183898506018c80f28183",
        "89850602020015e0aeb5e0aea3e0ae95e0af8de0ae95e0aeaee0af8d8e80f281",
        "83898506010568656c6c6f9080f281838985069280f281838985069480f28183",
        "89850600",
    );
    const FILE: &str = concat!(
        "0210019000000000700080000000000000041001900000000070008000000000",
        "0000010707070707070707070707070707070707070707070707070707070707",
        "0707070108636c69702e77617609617564696f2f77617680fa01b0ea01090909",
        "0909090909090909090909090909090909090909090909090909090909010102",
        "01100190000000007000800000000000000301086772656574696e67019680f2",
        "818389850605019e80f281838985069880f281838985069a80f2818389850601",
        "9c80f28183898506",
    );
    /// The same file in format 1 (schema 5), which the migration reads.
    const FILE_V1: &str = concat!(
        "0110019000000000700080000000000000041001900000000070008000000000",
        "0000010707070707070707070707070707070707070707070707070707070707",
        "0707070108636c69702e77617609617564696f2f77617680fa01b0ea01090909",
        "0909090909090909090909090909090909090909090909090909090909010102",
        "01100190000000007000800000000000000301086772656574696e67019680f2",
        "8183898506059880f281838985069a80f28183898506019c80f28183898506",
    );
    const METRIC: &str = concat!(
        "0110019000000000700080000000000000050c64622e636f6d6d69745f75739e",
        "80f281838985060000000000906a40010470617274026462",
    );
}
