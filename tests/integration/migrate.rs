//! Migrations: an old store is brought forward; a newer one is refused.

use std::path::Path;

use bharatvoice_store::{ConsentKind, Error, SCHEMA_VERSION, Store};
use redb::{Database, TableDefinition};
use serde::Serialize;

use crate::common::{bvstore, config, stdout};

const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const USERS: TableDefinition<u128, &[u8]> = TableDefinition::new("users");
const BY_NAME: TableDefinition<&str, u128> = TableDefinition::new("users_by_username");
const BY_EMAIL: TableDefinition<&str, u128> = TableDefinition::new("users_by_email");
const PROFILES: TableDefinition<u128, &[u8]> = TableDefinition::new("profiles");

/// The user record as schema 1 wrote it (hash inside the record).
#[derive(Serialize)]
struct UserV1 {
    id: uuid::Uuid,
    username: String,
    email: String,
    password_hash: Option<String>,
    created_at: i64,
    updated_at: i64,
    deleted_at: Option<i64>,
}

/// The profile record as schema 1 wrote it (one language, one consent).
#[derive(Serialize)]
struct ProfileV1 {
    id: uuid::Uuid,
    user_id: uuid::Uuid,
    language: String,
    region: Option<String>,
    retention_days: Option<u32>,
    audio_consent: bool,
    consent_at: Option<i64>,
    created_at: i64,
    updated_at: i64,
}

fn v1_record<T: Serialize>(value: &T) -> Vec<u8> {
    postcard::to_extend(value, vec![1u8]).unwrap()
}

fn phc(password: &str) -> String {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let params = argon2::Params::new(8, 1, 1, None).unwrap();
    let salt = SaltString::encode_b64(&[7u8; 16]).unwrap();
    argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
        .hash_password(password.as_bytes(), &salt)
        .unwrap()
        .to_string()
}

/// Writes a schema-1 store with two users (one with a password) and a profile.
fn write_v1_store(dir: &Path) -> (uuid::Uuid, uuid::Uuid) {
    let db = Database::create(dir.join("store.redb")).unwrap();
    let txn = db.begin_write().unwrap();
    let (a, b) = (uuid::Uuid::now_v7(), uuid::Uuid::now_v7());
    {
        let mut meta = txn.open_table(META).unwrap();
        meta.insert("schema_version", 1u32.to_le_bytes().as_slice())
            .unwrap();
        let mut users = txn.open_table(USERS).unwrap();
        let mut by_name = txn.open_table(BY_NAME).unwrap();
        let mut by_email = txn.open_table(BY_EMAIL).unwrap();
        for (id, name, hash) in [
            (a, "legacy_ravi", Some(phc("old password 1"))),
            (b, "legacy_meena", None),
        ] {
            let u = UserV1 {
                id,
                username: name.into(),
                email: format!("{name}@example.in"),
                password_hash: hash,
                created_at: 1_600_000_000_000_000,
                updated_at: 1_600_000_000_000_000,
                deleted_at: None,
            };
            users
                .insert(id.as_u128(), v1_record(&u).as_slice())
                .unwrap();
            by_name.insert(name, id.as_u128()).unwrap();
            by_email
                .insert(format!("{name}@example.in").as_str(), id.as_u128())
                .unwrap();
        }
        let p = ProfileV1 {
            id: uuid::Uuid::now_v7(),
            user_id: a,
            language: "hi-IN".into(),
            region: Some("Bihar".into()),
            retention_days: Some(45),
            audio_consent: true,
            consent_at: Some(1_600_000_000_000_001),
            created_at: 1,
            updated_at: 2,
        };
        txn.open_table(PROFILES)
            .unwrap()
            .insert(a.as_u128(), v1_record(&p).as_slice())
            .unwrap();
    }
    txn.commit().unwrap();
    (a, b)
}

#[tokio::test]
async fn a_schema_1_store_migrates_and_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = write_v1_store(dir.path());
    let status = Store::migration_status(&config(dir.path())).await.unwrap();
    assert_eq!(status.applied, Some(1));
    assert_eq!(status.pending.len(), SCHEMA_VERSION as usize - 1);
    let out = bvstore(dir.path(), &["--json", "migrate", "status"]);
    let doc: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(doc["applied"], 1);
    assert_eq!(doc["latest"], SCHEMA_VERSION);

    let store = Store::open(config(dir.path())).await.unwrap();
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    let ravi = store.users().get(a.into()).unwrap();
    assert_eq!(ravi.username, "legacy_ravi");
    assert!(ravi.has_password);
    assert_eq!(ravi.created_at.as_micros(), 1_600_000_000_000_000);
    // The hash moved to credentials and still verifies.
    assert!(
        store
            .users()
            .verify_password(a.into(), "old password 1")
            .await
            .unwrap()
    );
    assert!(
        !store
            .users()
            .verify_password(a.into(), "wrong password")
            .await
            .unwrap()
    );
    assert!(!store.users().get(b.into()).unwrap().has_password);
    // Step 3 → 4 built the covering indexes from the migrated records.
    assert_eq!(
        store.users().get_by_username("legacy_ravi").unwrap().id,
        a.into()
    );
    let meena = store
        .users()
        .get_by_email("LEGACY_MEENA@example.in")
        .unwrap();
    assert_eq!((meena.id, meena.has_password), (b.into(), false));
    // A migrated user's records stay in step through a change.
    let changed = store
        .users()
        .update(
            b.into(),
            bharatvoice_store::UserUpdate {
                email: Some("meena@example.in".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        store.users().get_by_username("legacy_meena").unwrap(),
        changed
    );
    assert!(matches!(
        store.users().get_by_email("legacy_meena@example.in"),
        Err(Error::NotFound { .. })
    ));
    let p = store.profiles().get(a.into()).unwrap();
    assert_eq!(p.languages[0].as_str(), "hi-IN");
    assert_eq!(p.audio_retention_days, Some(45));
    assert!(p.has_consent(ConsentKind::AudioStorage));
    assert_eq!(
        p.consents[&ConsentKind::AudioStorage].at.as_micros(),
        1_600_000_000_000_001
    );
    // New tables exist after the step: sessions work on a migrated user.
    store.sessions().create(a.into(), None).await.unwrap();
    drop(store);
    let status = Store::migration_status(&config(dir.path())).await.unwrap();
    assert_eq!(
        (status.applied, status.pending.len()),
        (Some(SCHEMA_VERSION), 0)
    );
    // The name → id indexes of schemas 1 to 3 are gone.
    let db = Database::create(dir.path().join("store.redb")).unwrap();
    let txn = redb::ReadableDatabase::begin_read(&db).unwrap();
    assert!(matches!(
        txn.open_table(BY_NAME),
        Err(redb::TableError::TableDoesNotExist(_))
    ));
    assert!(matches!(
        txn.open_table(BY_EMAIL),
        Err(redb::TableError::TableDoesNotExist(_))
    ));
}

#[tokio::test]
async fn a_store_from_a_newer_version_is_refused_naming_both_versions() {
    let dir = tempfile::tempdir().unwrap();
    drop(Store::open(config(dir.path())).await.unwrap());
    {
        let db = Database::create(dir.path().join("store.redb")).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(META)
            .unwrap()
            .insert("schema_version", 99u32.to_le_bytes().as_slice())
            .unwrap();
        txn.commit().unwrap();
    }
    let e = Store::open(config(dir.path())).await.unwrap_err();
    match &e {
        Error::VersionTooNew {
            found: 99,
            supported,
            ..
        } => assert_eq!(*supported, SCHEMA_VERSION),
        other => panic!("expected VersionTooNew, got {other:?}"),
    }
    let text = e.to_string();
    assert!(
        text.contains("99") && text.contains(&SCHEMA_VERSION.to_string()),
        "{text}"
    );
    let out = bvstore(dir.path(), &["user", "list"]);
    assert_eq!(out.status.code(), Some(7));
}
