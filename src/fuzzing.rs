//! Entry points for the fuzz targets and their corpus replay (not API).

use crate::db::codec::{self, Record};

fn try_one<T: Record>(data: &[u8]) -> bool {
    match codec::decode::<T>(data, "fuzz") {
        Ok(value) => {
            // A record that decodes must encode back to the same bytes.
            let again = codec::encode(&value).expect("a decoded record encodes");
            let back = codec::decode::<T>(&again, "fuzz").expect("a re-encoded record decodes");
            assert_eq!(codec::encode(&back).expect("encodes"), again);
            true
        }
        Err(crate::Error::Corrupt { .. }) => false,
        Err(other) => panic!("decoding returned a non-Corrupt error: {other}"),
    }
}

/// Feeds `data` to every record decoder; returns how many accepted it.
/// Panics (the fuzzer's signal) only if a decoder misbehaves.
pub fn decode_any(data: &[u8]) -> usize {
    [
        try_one::<crate::User>(data),
        try_one::<crate::UserProfile>(data),
        try_one::<crate::ConversationSession>(data),
        try_one::<crate::AudioFile>(data),
        try_one::<crate::MetricSample>(data),
    ]
    .iter()
    .filter(|ok| **ok)
    .count()
}

/// Valid encodings of each record kind, used to seed the fuzz corpus.
pub fn sample_records() -> Vec<(&'static str, Vec<u8>)> {
    use crate::*;
    let t = Timestamp::from_micros(1_700_000_000_000_000);
    let user = User {
        id: UserId::new(),
        username: "ravi".into(),
        email: "ravi@example.in".into(),
        display_name: Some("रवि".into()),
        status: UserStatus::Active,
        has_password: true,
        last_login_at: Some(t),
        created_at: t,
        updated_at: t,
        deleted_at: None,
    };
    let mut profile = UserProfile {
        id: ProfileId::new(),
        user_id: user.id,
        languages: vec![
            "hi-IN".parse().expect("valid tag"),
            "ta-IN".parse().expect("valid tag"),
        ],
        region: Some("Tamil Nadu".into()),
        accent: None,
        voice: VoicePreferences::default(),
        audio_retention_days: Some(30),
        consents: Default::default(),
        preferences: Default::default(),
        created_at: t,
        updated_at: t,
    };
    profile.consents.insert(
        ConsentKind::AudioStorage,
        ConsentState {
            granted: true,
            at: t,
        },
    );
    profile
        .preferences
        .insert("wake_word".into(), "namaste".into());
    let session = ConversationSession {
        id: SessionId::new(),
        user_id: user.id,
        language: Some("ta-IN".parse().expect("valid tag")),
        last_active_at: t,
        expires_at: t,
        ended_at: None,
        turn_count: 1,
        context: vec![Turn {
            role: Role::User,
            text: "வணக்கம்".into(),
            at: t,
        }],
        created_at: t,
        updated_at: t,
        deleted_at: None,
    };
    let file = AudioFile {
        id: FileId::new(),
        owner: user.id,
        blob: BlobAddress([7; 32]),
        name: Some("clip.wav".into()),
        content_type: "audio/wav".into(),
        plain_bytes: 32_000,
        stored_bytes: 30_000,
        sha256: [1; 32],
        encryption: Encryption::Aes256GcmSiv,
        codec: Codec::Zstd,
        key_version: 1,
        session_id: Some(session.id),
        tags: vec!["greeting".into()],
        expires_at: Some(t),
        access_count: 3,
        created_at: t,
        updated_at: t,
        deleted_at: None,
    };
    let metric = MetricSample::new("db.commit_us", 180.0)
        .at(t)
        .label("op", "create_user");
    vec![
        ("user", codec::encode(&user).expect("encodes")),
        ("profile", codec::encode(&profile).expect("encodes")),
        ("session", codec::encode(&session).expect("encodes")),
        ("file", codec::encode(&file).expect("encodes")),
        ("metric", codec::encode(&metric).expect("encodes")),
    ]
}

/// Feeds `data` to the cache's tier-2 row parser; returns whether it
/// parsed. A row that parses must encode back to the same bytes.
pub fn cache_row(data: &[u8]) -> bool {
    use crate::cache::tier2::row;
    match row::parse(data, "fuzz") {
        Ok(view) => {
            let again = row::Row::from_view(&view).encode();
            assert_eq!(again, data, "a parsed cache row re-encodes to itself");
            true
        }
        Err(crate::Error::Corrupt { .. }) => false,
        Err(other) => panic!("parsing returned a non-Corrupt error: {other}"),
    }
}

/// Valid tier-2 rows, used to seed the `cache_row_decode` corpus.
pub fn sample_cache_rows() -> Vec<(&'static str, Vec<u8>)> {
    use crate::cache::tier2::row::Row;
    let plain = Row {
        deadline: None,
        seq: 1,
        generation: 0,
        tags: Vec::new(),
        value: b"42".to_vec().into(),
    };
    let tagged = Row {
        deadline: Some(crate::Timestamp::from_micros(1_800_000_000_000_000)),
        seq: 99,
        generation: 3,
        tags: vec![("user:7".into(), 2), ("lang:hi-IN".into(), 0)],
        value: "{\"name\":\"प्रिया\"}".as_bytes().into(),
    };
    vec![("plain", plain.encode()), ("tagged", tagged.encode())]
}
