//! Entry points for the fuzz targets and their corpus replay (not API).

mod admin;
mod audit;
mod backend_probe;
mod backup;
mod blob_path;
mod cache_pattern;
mod config;
mod keys;
mod op_sequence;
mod rows;

pub use admin::{AdminHarness, admin_request, sample_admin_lines};
pub use audit::{audit_event, sample_audit_events};
pub use backend_probe::{backend_blobs, backend_gets, backend_heads, place_orphan, remove_blob};
#[cfg(feature = "s3")]
pub use backend_probe::{
    s3_delete_behind, s3_object, s3_objects, s3_open_uploads, s3_set_object,
    s3_upload_marker_times, s3_upload_takes_parts,
};
pub use backup::{backup_manifest, sample_backup_files};
pub use blob_path::{blob_path, sample_blob_paths};
pub use cache_pattern::{cache_pattern, sample_patterns};
pub use config::{config_file, sample_configs};
pub use keys::{key_record, sample_key_records};
pub use op_sequence::{MAX_OPS, op_sequence, op_sequence_counted, sample_op_sequences};
pub use rows::{decode_rows, sample_rows};

use crate::db::codec::{self, Record};

/// End-to-end latencies for the soak test, kept in the store's own
/// log-linear histogram (four buckets per power of two, so a quantile is
/// within 19 %): fixed memory however long the run.
#[derive(Default)]
pub struct Latencies(crate::telemetry::histogram::Histogram);

impl Latencies {
    /// Records one operation's duration.
    pub fn record(&self, elapsed: std::time::Duration) {
        let ns = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.0.record_weighted(ns, 1);
    }

    /// Adds what `other` recorded.
    pub fn merge(&self, other: &Latencies) {
        self.0.add(&other.0.counts());
    }

    /// How many durations were recorded.
    pub fn count(&self) -> u64 {
        self.0.counts().total()
    }

    /// The duration under which a fraction `q` of those recorded fall (the
    /// upper bound of its bucket).
    pub fn quantile(&self, q: f64) -> std::time::Duration {
        std::time::Duration::from_nanos(self.0.counts().quantile(q))
    }
}

/// A directory of its own, for an entry point that reads files; removed
/// when dropped. In `/dev/shm` where there is one: rewriting a file on a
/// disk filesystem (ext4 flushes a truncated file on close) would make the
/// file targets a hundred times slower.
struct Scratch(std::path::PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let shm = std::path::Path::new("/dev/shm");
        let base = if shm.is_dir() {
            shm.to_owned()
        } else {
            std::env::temp_dir()
        };
        static SWEPT: std::sync::Once = std::sync::Once::new();
        SWEPT.call_once(|| sweep_stale(&base));
        let dir = base.join(format!("bv-fuzz-{}-{n}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a scratch directory");
        Scratch(dir)
    }

    fn path(&self) -> &std::path::Path {
        &self.0
    }
}

/// Removes the scratch directories of fuzzing processes that are gone: a
/// fuzzer exits without dropping a harness it keeps for its whole run
/// (the `admin_request` store), so its directory would stay behind.
fn sweep_stale(base: &std::path::Path) {
    let proc = std::path::Path::new("/proc");
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    if !proc.join("self").exists() {
        return;
    }
    for e in entries.flatten() {
        let name = e.file_name();
        let pid = name
            .to_str()
            .and_then(|n| n.strip_prefix("bv-fuzz-"))
            .and_then(|rest| rest.split('-').next())
            .and_then(|p| p.parse::<u32>().ok());
        let Some(pid) = pid else { continue };
        let dir = e.file_type().is_ok_and(|t| t.is_dir());
        if dir && pid != std::process::id() && !proc.join(pid.to_string()).exists() {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The decoded value, `None` for a `Corrupt` refusal; any other error is a
/// decoder bug.
fn accepted<T>(decoded: Result<T, crate::Error>) -> Option<T> {
    match decoded {
        Ok(value) => Some(value),
        Err(crate::Error::Corrupt { .. }) => None,
        Err(other) => panic!("decoding returned a non-Corrupt error: {other}"),
    }
}

fn try_one<T: Record>(data: &[u8]) -> bool {
    accepted(codec::decode::<T>(data, "fuzz")).is_some_and(|value| {
        // A record that decodes must encode back to the same bytes.
        let again = codec::encode(&value).expect("a decoded record encodes");
        let back = codec::decode::<T>(&again, "fuzz").expect("a re-encoded record decodes");
        assert_eq!(codec::encode(&back).expect("encodes"), again);
        true
    })
}

/// The id the decoders of records keyed by id read under.
const FUZZ_ID: u128 = 0x0123_4567_89ab_cdef_0123_4567_89ab_cdef;

/// The user decoders (formats 3 and 4 in `users` and in both indexes,
/// and the format 2 that migrations read); a user that decodes must
/// encode and decode back to the same user, and a sealed display name is
/// opened under the fuzz key (refused as corrupt if it does not open).
fn try_users(data: &[u8]) -> [bool; 4] {
    use crate::db::user_record::{self, Index, UserRow};
    let id = crate::UserId::from_key(FUZZ_ID);
    let opens = |row: UserRow| {
        let key = fuzz_record_key();
        accepted(row.open(Some(&key))).is_some()
    };
    let row = accepted(user_record::decode_row(data, id)).is_some_and(|user| {
        let again = user_record::encode_row(&user).expect("encodes");
        assert_eq!(user_record::decode_row(&again, id).expect("decodes"), user);
        opens(user)
    });
    let indexed = |index: Index| {
        accepted(user_record::decode_indexed(data, index, "fuzz")).is_some_and(|user| {
            let again = user_record::encode_indexed(&user, index).expect("encodes");
            let back = user_record::decode_indexed(&again, index, "fuzz").expect("decodes");
            assert_eq!(back, user);
            assert_eq!(
                user_record::indexed_id(data, "fuzz").ok(),
                Some(user.user.id)
            );
            opens(user)
        })
    };
    let legacy = accepted(crate::db::migrate::decode_legacy_user(data, id)).is_some_and(|user| {
        let row = UserRow::sealed(user, Some(&fuzz_record_key())).expect("seals");
        user_record::encode_row(&row).is_ok()
    });
    [row, indexed(Index::Username), indexed(Index::Email), legacy]
}

/// The fixed record key the session decoder opens sealed contexts with
/// (it seals the corpus' sessions).
const FUZZ_RECORD_KEY: [u8; 32] = [0x3c; 32];

fn fuzz_record_key() -> crate::db::sealing::RecordKey {
    crate::db::sealing::RecordKey::new(&crate::blob::crypto::SecretKey::from_bytes(FUZZ_RECORD_KEY))
}

/// The session decoder (either format), then the opening of its context
/// under the fuzz key; a session that opens must seal and open back to
/// itself.
fn try_session(data: &[u8]) -> bool {
    use crate::db::session_row::{self, SessionRow};
    let id = crate::SessionId::from_key(FUZZ_ID);
    let Some(row) = accepted(SessionRow::decode(data, id)) else {
        return false;
    };
    let key = fuzz_record_key();
    accepted(row.open(&key)).is_some_and(|session| {
        let again = session_row::encode(&session, &key).expect("encodes");
        let back = SessionRow::decode(&again, session.id)
            .and_then(|r| r.open(&key))
            .expect("a re-encoded session opens");
        assert_eq!(back, session);
        true
    })
}

/// The profile decoder (either format), then the opening of its personal
/// fields under the fuzz key; a profile that opens must seal and open back
/// to itself.
fn try_profile(data: &[u8]) -> bool {
    use crate::db::profile_row::{self, ProfileRow};
    let user = crate::UserId::from_key(FUZZ_ID);
    let Some(row) = accepted(ProfileRow::decode(data, user)) else {
        return false;
    };
    let key = fuzz_record_key();
    accepted(row.open(&key)).is_some_and(|profile| {
        let again = profile_row::encode(&profile, &key).expect("encodes");
        let back = ProfileRow::decode(&again, profile.user_id)
            .and_then(|r| r.open(&key))
            .expect("a re-encoded profile opens");
        // Compared as their plain encodings: a NaN pitch is not equal to
        // itself.
        assert_eq!(
            codec::encode(&back).expect("encodes"),
            codec::encode(&profile).expect("encodes")
        );
        true
    })
}

/// A session as schemas 2 to 9 stored it (format 1, its turns in clear),
/// for tests that build an old store.
pub fn plain_session_bytes(session: &crate::ConversationSession) -> Vec<u8> {
    codec::encode_versioned(1, &crate::db::records::SessionV1::from_session(session))
        .expect("encodes")
}

/// A profile as schemas 2 to 9 stored it (format 2, all in clear), for
/// tests that build an old store.
pub fn plain_profile_bytes(profile: &crate::UserProfile) -> Vec<u8> {
    codec::encode(profile).expect("encodes")
}

/// A user as schemas 5 to 9 stored it (format 3, the display name in
/// clear): the `users` value and the two index values, for tests that
/// build an old store.
pub fn plain_user_bytes(user: &crate::User) -> [Vec<u8>; 3] {
    use crate::db::user_record::{self, Index, UserRow};
    let row = UserRow {
        user: user.clone(),
        sealed_name: None,
    };
    [
        user_record::encode_row(&row).expect("encodes"),
        user_record::encode_indexed(&row, Index::Username).expect("encodes"),
        user_record::encode_indexed(&row, Index::Email).expect("encodes"),
    ]
}

/// Feeds `data` to every record decoder; returns how many accepted it.
/// Panics (the fuzzer's signal) only if a decoder misbehaves.
pub fn decode_any(data: &[u8]) -> usize {
    let [row, by_username, by_email, legacy] = try_users(data);
    [
        row,
        by_username,
        by_email,
        legacy,
        try_profile(data),
        try_session(data),
        try_one::<crate::AudioFile>(data),
        try_one::<crate::MetricSample>(data),
    ]
    .iter()
    .filter(|ok| **ok)
    .count()
}

/// Valid encodings of each record kind, used to seed the fuzz corpus.
pub fn sample_records() -> Vec<(&'static str, Vec<u8>)> {
    use crate::db::user_record::{self, Index};
    use crate::*;
    let t = Timestamp::from_micros(1_700_000_000_000_000);
    let user = User {
        // The id the `users` decoder reads under: a sealed display name is
        // bound to it.
        id: UserId::from_key(FUZZ_ID),
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
        id: SessionId::from_key(FUZZ_ID),
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
        last_read_at: Some(t),
        created_at: t,
        updated_at: t,
        deleted_at: None,
    };
    let metric = MetricSample::new("db.commit_us", 180.0)
        .at(t)
        .label("op", "create_user");
    let row = user_record::UserRow::sealed(user.clone(), Some(&fuzz_record_key())).expect("seals");
    vec![
        ("user", user_record::encode_row(&row).expect("encodes")),
        (
            "user_by_username",
            user_record::encode_indexed(&row, Index::Username).expect("encodes"),
        ),
        (
            "user_by_email",
            user_record::encode_indexed(&row, Index::Email).expect("encodes"),
        ),
        (
            "user_v2",
            crate::db::migrate::encode_legacy_user(&user).expect("encodes"),
        ),
        (
            "profile",
            crate::db::profile_row::encode(&profile, &fuzz_record_key()).expect("encodes"),
        ),
        (
            "session",
            crate::db::session_row::encode(&session, &fuzz_record_key()).expect("encodes"),
        ),
        ("file", codec::encode(&file).expect("encodes")),
        ("metric", codec::encode(&metric).expect("encodes")),
    ]
}

/// The fixed key of the `blob_read` target and its corpus.
pub const FUZZ_BLOB_KEY: [u8; 32] = [0x5a; 32];

/// Parses any bytes as a blob header (and, if that works, as a trailer
/// against a file length); a parsed header re-encodes to the same bytes.
pub fn blob_header(data: &[u8]) {
    use crate::blob::format::{HEADER_LEN, Header, table_range};
    if let Ok(h) = Header::parse(data) {
        assert_eq!(
            &h.encode(true)[..],
            &data[..HEADER_LEN],
            "a parsed header re-encodes to itself"
        );
        let rest = &data[HEADER_LEN..];
        if rest.len() >= 16 {
            let file_len = u64::from_le_bytes(rest[..8].try_into().unwrap_or([0; 8]));
            let _ = table_range(&h, file_len, &rest[8..16]);
        }
    }
}

/// Reads any bytes as a whole blob under [`FUZZ_BLOB_KEY`]: the
/// authenticated plaintext (exactly as long as the header says), or an
/// error; never a panic.
pub fn blob_read(data: &[u8]) -> Option<Vec<u8>> {
    use crate::blob::crypto::SecretKey;
    use crate::blob::reader::OpenBlob;
    let key = SecretKey::from_bytes(FUZZ_BLOB_KEY);
    let blob =
        OpenBlob::from_source(Box::new(data.to_vec()), Some(&key), None, "fuzz".into()).ok()?;
    let mut out = Vec::new();
    for i in 0..blob.chunk_count() {
        out.extend_from_slice(&blob.chunk(i).ok()?);
    }
    Some(out)
}

/// A valid blob of `plain` sealed under [`FUZZ_BLOB_KEY`] (or unencrypted),
/// for seeding corpora and tests.
pub fn sample_blob(plain: &[u8], chunk_size: u32, encrypt: bool, compress: bool) -> Vec<u8> {
    use crate::blob::crypto::SecretKey;
    use crate::blob::format::Cipher;
    use crate::blob::writer::{WriteSpec, write_blob};
    let dir =
        std::env::temp_dir().join(format!("bv-sample-blob-{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let spec = WriteSpec {
        cipher: if encrypt {
            Cipher::Aes256GcmSivStream
        } else {
            Cipher::None
        },
        level: compress.then_some(1),
        chunk_size,
        key_version: 1,
        data_key: encrypt.then(|| SecretKey::from_bytes(FUZZ_BLOB_KEY)),
        depth: 2,
        cache_limit: u64::MAX,
        for_upload: false,
        allowance: None,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let written = rt
        .block_on(async { write_blob(&dir, plain, spec, &|_| {}).await?.finish().await })
        .expect("write a sample blob");
    let bytes = std::fs::read(&written.tmp_path).expect("read the sample blob");
    let _ = std::fs::remove_dir_all(&dir);
    bytes
}

/// Feeds `data` to the cache's tier-2 row parser; returns whether it
/// parsed. A row that parses must encode back to the same bytes. The
/// bytes, and a parsed row's value, also go through the value parsers
/// (see `cache_value`).
pub fn cache_row(data: &[u8]) -> bool {
    use crate::cache::tier2::row;
    // The bytes as a value too: a value reaches these parsers from a row
    // (below) or from the application.
    cache_value(data);
    match row::parse(data, "fuzz") {
        Ok(view) => {
            let again = row::Row::from_view(&view).encode();
            assert_eq!(again, data, "a parsed cache row re-encodes to itself");
            cache_value(view.value);
            true
        }
        Err(crate::Error::Corrupt { .. }) => false,
        Err(other) => panic!("parsing returned a non-Corrupt error: {other}"),
    }
}

/// The parsers a cache read applies to a stored value: JSON into the
/// caller's type (`Cache::get` and friends) and a decimal integer
/// (`incr`, `decr`). Each gives a value or `WrongType`, never a panic;
/// an integer that parses prints back to the same digits.
fn cache_value(value: &[u8]) {
    use crate::cache::{view::decode, write::parse_int};
    fn wrong_type_or_ok<T>(what: &str, r: Result<T, crate::Error>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(crate::Error::WrongType { .. }) => None,
            Err(other) => panic!("{what} returned a non-WrongType error: {other}"),
        }
    }
    if let Some(json) = wrong_type_or_ok("decode::<Value>", decode::<serde_json::Value>("k", value))
    {
        // What parsed as JSON encodes again and parses again (not to the
        // same value: without serde_json's `float_roundtrip` a float may
        // come back one unit in the last place off).
        let again = serde_json::to_vec(&json).expect("a parsed JSON value encodes");
        assert!(decode::<serde_json::Value>("k", &again).is_ok());
    }
    wrong_type_or_ok("decode::<String>", decode::<String>("k", value));
    wrong_type_or_ok("decode::<Vec<u32>>", decode::<Vec<u32>>("k", value));
    wrong_type_or_ok(
        "decode::<HashMap>",
        decode::<std::collections::HashMap<String, Option<f64>>>("k", value),
    );
    if let Some(n) = wrong_type_or_ok("parse_int", parse_int("k", value)) {
        assert_eq!(
            parse_int("k", n.to_string().as_bytes()).ok(),
            Some(n),
            "an integer prints back to itself"
        );
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

#[cfg(test)]
mod scratch_tests {
    #[test]
    fn scratch_directories_of_gone_processes_are_swept() {
        let base = tempfile::tempdir().unwrap();
        let gone = base.path().join("bv-fuzz-4294967-0-admin");
        let mine = base
            .path()
            .join(format!("bv-fuzz-{}-0-admin", std::process::id()));
        let other = base.path().join("bv-fuzz-notapid-0-admin");
        for d in [&gone, &mine, &other] {
            std::fs::create_dir_all(d.join("store")).unwrap();
        }
        super::sweep_stale(base.path());
        assert!(!gone.exists(), "a gone process's directory");
        assert!(mine.exists() && other.exists(), "kept");
    }
}
