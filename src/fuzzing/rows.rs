//! The `db_row_decode` target: the rows of `store.redb` that no other
//! target reads. Blob rows, usage rows, damage records and erasures (each
//! a [`Record`](crate::db::codec::Record) that must re-encode to itself),
//! the `meta` values read back as they are (the data region, the schema 10
//! seal marker, the unsealed audit count, the last backup), and the old
//! record shapes the migrations read (users and profiles of schema 1,
//! files of format 1, which must read back once upgraded).

use serde::Serialize;

use super::{FUZZ_ID, accepted, try_one};
use crate::db::codec;

/// A `meta` value (format 1) as `db::get_meta` reads it.
fn meta<T: serde::de::DeserializeOwned>(data: &[u8]) -> bool {
    accepted(codec::decode_versioned::<T>(1, data, || "fuzz".into())).is_some()
}

/// A file record of format 1 (schemas 1 to 5): it must read as today's
/// record once the schema 6 step has upgraded it.
fn try_file_v1(data: &[u8]) -> bool {
    use crate::db::records::FileV1;
    accepted(codec::decode_versioned::<FileV1>(1, data, || "fuzz".into())).is_some_and(|old| {
        let upgraded = codec::encode_versioned(2, &old.upgrade()).expect("encodes");
        codec::decode::<crate::AudioFile>(&upgraded, "fuzz").expect("an upgraded file reads");
        true
    })
}

/// Feeds `data` to every decoder of this target; returns how many
/// accepted it. Panics (the fuzzer's signal) only if a decoder misbehaves.
pub fn decode_rows(data: &[u8]) -> usize {
    use crate::db::{blobs::BlobRow, lifecycle::Damage, usage::UsageRow};
    [
        try_one::<BlobRow>(data),
        try_one::<UsageRow>(data),
        try_one::<Damage>(data),
        try_one::<crate::Erasure>(data),
        meta::<String>(data),
        meta::<Option<u128>>(data),
        meta::<u64>(data),
        meta::<crate::ops::backup::LastBackup>(data),
        accepted(codec::decode_versioned::<crate::db::migrate::UserV1>(
            1,
            data,
            || "fuzz".into(),
        ))
        .is_some(),
        accepted(codec::decode_versioned::<crate::db::migrate::ProfileV1>(
            1,
            data,
            || "fuzz".into(),
        ))
        .is_some(),
        try_file_v1(data),
    ]
    .iter()
    .filter(|ok| **ok)
    .count()
}

/// The shape of the schema 1 user record (`migrate::UserV1`, which only
/// reads), for the seed.
#[derive(Serialize)]
struct UserV1Seed {
    id: crate::UserId,
    username: String,
    email: String,
    password_hash: Option<String>,
    created_at: crate::Timestamp,
    updated_at: crate::Timestamp,
    deleted_at: Option<crate::Timestamp>,
}

/// The shape of the schema 1 profile record (`migrate::ProfileV1`).
#[derive(Serialize)]
struct ProfileV1Seed {
    id: crate::ProfileId,
    user_id: crate::UserId,
    language: String,
    region: Option<String>,
    retention_days: Option<u32>,
    audio_consent: bool,
    consent_at: Option<crate::Timestamp>,
    created_at: crate::Timestamp,
    updated_at: crate::Timestamp,
}

/// The shape of `backup::LastBackup`.
#[derive(Serialize)]
struct LastBackupSeed {
    generation: u64,
    at: crate::Timestamp,
    destination: String,
}

/// Valid encodings of each row kind of [`decode_rows`], for the seed
/// corpus and the replay tests.
pub fn sample_rows() -> Vec<(&'static str, Vec<u8>)> {
    use crate::db::{blobs::BlobRow, keys::WrappedKey, lifecycle::Damage, usage::UsageRow};
    use crate::model::privacy::{ErasureScope, ErasureStage};
    use crate::{Erasure, Timestamp, UserId};
    let t = Timestamp::from_micros(1_700_000_000_000_000);
    let owner = UserId::from_key(FUZZ_ID);
    let blob = BlobRow {
        owner,
        refcount: 2,
        plain_bytes: 32_000,
        stored_bytes: 30_123,
        key_version: 1,
        data_key: Some(WrappedKey::new([9; 12], vec![0xa5; 48])),
        created_at: t,
    };
    let plain_blob = BlobRow {
        data_key: None,
        ..blob.clone()
    };
    let usage = UsageRow {
        stored_bytes: 1 << 30,
        blobs: 12,
        limit: Some(2 << 30),
    };
    let damage = Damage {
        found_at: t,
        reason: "chunk 3 does not authenticate".into(),
    };
    let erasure = Erasure {
        user: owner,
        scope: ErasureScope::Audio,
        stage: ErasureStage::KeysDestroyed,
        requested_at: t,
        due: t,
        keys_destroyed_at: Some(t),
        done_at: None,
    };
    let user_v1 = UserV1Seed {
        id: owner,
        username: "ravi".into(),
        email: "ravi@example.in".into(),
        password_hash: Some("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into()),
        created_at: t,
        updated_at: t,
        deleted_at: None,
    };
    let profile_v1 = ProfileV1Seed {
        id: crate::ProfileId::from_key(FUZZ_ID),
        user_id: owner,
        language: "hi-IN".into(),
        region: Some("Karnataka".into()),
        retention_days: Some(30),
        audio_consent: true,
        consent_at: Some(t),
        created_at: t,
        updated_at: t,
    };
    let last_backup = LastBackupSeed {
        generation: 7,
        at: t,
        destination: "/srv/backups/bv".into(),
    };
    vec![
        ("blob_row", codec::encode(&blob).expect("encodes")),
        (
            "blob_row_plain",
            codec::encode(&plain_blob).expect("encodes"),
        ),
        ("usage", codec::encode(&usage).expect("encodes")),
        ("damage", codec::encode(&damage).expect("encodes")),
        ("erasure", codec::encode(&erasure).expect("encodes")),
        ("meta_region", v1(&"IN-KA".to_string())),
        ("meta_seal_marker", v1(&Some(FUZZ_ID))),
        ("meta_unsealed", v1(&42u64)),
        ("meta_last_backup", v1(&last_backup)),
        ("user_v1", v1(&user_v1)),
        ("profile_v1", v1(&profile_v1)),
        ("file_v1", file_v1_seed(t)),
    ]
}

/// A file record of format 1, through today's record: format 2 is format 1
/// with `last_read_at` inserted before `created_at`, so dropping that
/// field's byte (`None`) gives format 1.
fn file_v1_seed(t: crate::Timestamp) -> Vec<u8> {
    use crate::*;
    let file = AudioFile {
        id: FileId::from_key(FUZZ_ID),
        owner: UserId::from_key(FUZZ_ID),
        blob: BlobAddress([7; 32]),
        name: Some("clip.wav".into()),
        content_type: "audio/wav".into(),
        plain_bytes: 32_000,
        stored_bytes: 30_000,
        sha256: [1; 32],
        encryption: Encryption::Aes256GcmSiv,
        codec: Codec::Zstd,
        key_version: 1,
        session_id: None,
        tags: vec!["greeting".into()],
        expires_at: None,
        access_count: 3,
        last_read_at: None,
        created_at: t,
        updated_at: t,
        deleted_at: None,
    };
    let v2 = codec::encode(&file).expect("encodes");
    // The tail of format 2 is last_read_at (None: one 0 byte), then
    // created_at and updated_at (varints) and deleted_at (None: 0).
    let stamp = postcard::to_stdvec(&t.as_micros()).expect("encodes");
    let tail = 1 + 2 * stamp.len() + 1;
    let mut v1 = v2[..v2.len() - tail].to_vec();
    v1[0] = 1;
    v1.extend_from_slice(&v2[v2.len() - tail + 1..]);
    v1
}

/// A seed shape behind version byte 1.
fn v1<T: Serialize>(value: &T) -> Vec<u8> {
    codec::encode_versioned(1, value).expect("encodes")
}
