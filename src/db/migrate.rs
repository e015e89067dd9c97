//! Schema migrations: ordered steps from one schema version to the next.
//!
//! The applied version lives in the `meta` table. At open, a new store gets
//! every table and the current version in one transaction; an older store
//! runs each pending step in its own write transaction (the step's changes
//! and the new version commit together, so a crash leaves the store at a
//! whole version); a store with a newer version is refused with
//! [`Error::VersionTooNew`], naming both versions. After any step the
//! store is compacted ([`compact_after`]): a step that rewrites records
//! would otherwise leave the file about twice its size.
//!
//! # History
//!
//! * **1**: the first shape. Users carried their password hash in the
//!   record; profiles held a single language and one audio consent flag.
//! * **2**: password hashes move to `credentials` (so a user record can be
//!   printed safely); users gain display name, status and last login;
//!   profiles hold a language list, accent, voice preferences, consent flags
//!   with times and free preferences; sessions, files and metrics tables.
//! * **3**: `keys`, `blobs`, `blobs_by_owner`, `grants` and `audit` for
//!   encrypted blob storage.
//! * **4**: covering user indexes: `users_by_username` and `users_by_email`
//!   (name → id) are replaced by `user_records_by_username` and
//!   `user_records_by_email` (name → user record), built from `users`.
//! * **5**: user record format 3 (`db::user_record`): `users` no longer
//!   repeats the id in the value, and `updated_at` is stored relative to
//!   `created_at`; all three user tables are rewritten. Schemas 2 to 4
//!   stored `postcard(User)` behind version byte 2.
//! * **6**, **7**: see `migrate_v6`, `migrate_v7`.
//! * **8**: `erasures` (`db::erasures`): erasures of users' data,
//!   scheduled, running and done.
//! * **9**: the audit log becomes a MAC chain, `audit_log` (`migrate_v9`).
//! * **10**: sessions' turns, profiles' personal fields and users'
//!   display names sealed under their owner's record key (`migrate_v10`,
//!   `db::session_row`, `db::profile_row`, `db::user_record` format 4).

use std::collections::BTreeMap;

use redb::{ReadableDatabase, ReadableTable, WriteTransaction};
use serde::{Deserialize, Serialize};

use crate::db::codec;
use crate::db::schema::{self, META, SCHEMA_VERSION_KEY};
use crate::db::user_record::{self, LEGACY_VERSION};
use crate::db::users_index::UserTables;
use crate::error::{Error, StorageContext};
use crate::model::profile::{ConsentKind, ConsentState, UserProfile, VoicePreferences};
use crate::model::user::{User, UserStatus};
use crate::types::{ProfileId, Timestamp, UserId};

/// The schema version this build writes.
pub const SCHEMA_VERSION: u32 = 10;

/// One migration step.
struct Step {
    from: u32,
    name: &'static str,
    run: fn(&WriteTransaction) -> Result<(), Error>,
}

const STEPS: &[Step] = &[
    Step {
        from: 1,
        name: "move password hashes to credentials; profile language lists and consent times",
        run: v1_to_v2,
    },
    Step {
        from: 2,
        name: "tables for keys, blobs, grants and the audit log",
        run: v2_to_v3,
    },
    Step {
        from: 3,
        name: "covering user indexes: username and email map to the user record",
        run: v3_to_v4,
    },
    Step {
        from: 4,
        name: "user record format 3: no repeated id, updated_at relative to created_at",
        run: v4_to_v5,
    },
    Step {
        from: 5,
        name: "indexes of soft-deleted files and sessions (for the purge); damaged blobs",
        run: super::migrate_v6::v5_to_v6,
    },
    Step {
        from: 6,
        name: "per-user storage usage (for quotas), counted from the blob rows",
        run: super::migrate_v7::v6_to_v7,
    },
    Step {
        from: 7,
        name: "erasures: scheduled, running and finished erasures of users' data",
        run: super::migrate_v8::v7_to_v8,
    },
    Step {
        from: 8,
        name: "the audit log becomes a MAC chain (audit_log); old entries move into it",
        run: super::migrate_v9::to_v9,
    },
    Step {
        from: 9,
        name: "sessions' turns, profiles' personal fields and display names sealed under their owner's key (at the first open with the keys)",
        run: super::migrate_v10::to_v10,
    },
];

/// The user indexes of schemas 1 to 3 (name → user id).
const LEGACY_USERS_BY_USERNAME: redb::TableDefinition<&str, u128> =
    redb::TableDefinition::new("users_by_username");
const LEGACY_USERS_BY_EMAIL: redb::TableDefinition<&str, u128> =
    redb::TableDefinition::new("users_by_email");

/// Where a store stands against this build's schema.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MigrationStatus {
    /// The version the store is at (`None`: no store there yet).
    pub applied: Option<u32>,
    /// The version this build writes.
    pub latest: u32,
    /// Steps that an open would run, oldest first.
    pub pending: Vec<PendingStep>,
}

/// A migration step not yet applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PendingStep {
    /// Version it starts from.
    pub from: u32,
    /// Version it leads to.
    pub to: u32,
    /// What it does.
    pub name: &'static str,
}

pub(crate) fn pending_from(applied: Option<u32>) -> Vec<PendingStep> {
    let start = applied.unwrap_or(SCHEMA_VERSION);
    STEPS
        .iter()
        .filter(|s| s.from >= start)
        .map(|s| PendingStep {
            from: s.from,
            to: s.from + 1,
            name: s.name,
        })
        .collect()
}

/// Where the store at `path` stands against this build's schema, read
/// from a read-only open (nothing is migrated; a missing file has no
/// version applied).
pub(crate) fn status(path: &std::path::Path) -> Result<MigrationStatus, Error> {
    let applied = if path.exists() {
        crate::db::guard::guarded(path, || {
            let db = redb::Builder::new()
                .open_read_only(path)
                .map_err(|e| crate::db::guard::open_error(path, e))?;
            applied_version(&db)
        })?
    } else {
        None
    };
    Ok(MigrationStatus {
        applied,
        latest: SCHEMA_VERSION,
        pending: if path.exists() {
            pending_from(applied)
        } else {
            Vec::new()
        },
    })
}

/// Reads the applied schema version, `None` for an empty database.
pub(crate) fn applied_version(db: &impl ReadableDatabase) -> Result<Option<u32>, Error> {
    let txn = db.begin_read().ctx("reading the schema version")?;
    applied_version_in(&txn)
}

/// [`applied_version`] in an open read transaction.
pub(crate) fn applied_version_in(txn: &redb::ReadTransaction) -> Result<Option<u32>, Error> {
    let meta = match txn.open_table(META) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
        Err(e) => return Err(Error::storage("opening the meta table", e)),
    };
    let Some(v) = meta
        .get(SCHEMA_VERSION_KEY)
        .ctx("reading the schema version")?
    else {
        return Ok(None);
    };
    let bytes: [u8; 4] = v
        .value()
        .try_into()
        .map_err(|_| Error::corrupt("schema version", "not 4 bytes"))?;
    Ok(Some(u32::from_le_bytes(bytes)))
}

fn set_version(txn: &WriteTransaction, version: u32) -> Result<(), Error> {
    let mut meta = txn.open_table(META).ctx("opening the meta table")?;
    meta.insert(SCHEMA_VERSION_KEY, version.to_le_bytes().as_slice())
        .ctx("writing the schema version")?;
    Ok(())
}

/// For a store opened read-only: it must already be at [`SCHEMA_VERSION`]
/// (nothing can be created or migrated without writing).
pub(crate) fn check_current(
    db: &impl ReadableDatabase,
    path: &std::path::Path,
) -> Result<(), Error> {
    match applied_version(db)? {
        Some(SCHEMA_VERSION) => Ok(()),
        Some(v) if v > SCHEMA_VERSION => Err(Error::VersionTooNew {
            path: path.to_path_buf(),
            found: v,
            supported: SCHEMA_VERSION,
        }),
        _ => Err(Error::ReadOnly {
            path: path.to_path_buf(),
            detail: "the store needs its schema created or migrated, which writes: open it once where it is writable".into(),
        }),
    }
}

/// Brings the store at `path` to [`SCHEMA_VERSION`]; returns the steps run.
pub(crate) fn migrate(
    db: &redb::Database,
    path: &std::path::Path,
) -> Result<Vec<PendingStep>, Error> {
    let applied = applied_version(db)?;
    match applied {
        None => {
            let txn = super::begin_write(db, true).ctx("creating the schema")?;
            schema::create_all(&txn).ctx("creating tables")?;
            set_version(&txn, SCHEMA_VERSION)?;
            let id = uuid::Uuid::now_v7();
            txn.open_table(META)
                .ctx("opening the meta table")?
                .insert(schema::STORE_ID_KEY, id.as_bytes().as_slice())
                .ctx("writing the store id")?;
            txn.commit().ctx("committing the new schema")?;
            tracing::info!(path = %path.display(), version = SCHEMA_VERSION, "created a new store");
            Ok(Vec::new())
        }
        Some(v) if v > SCHEMA_VERSION => Err(Error::VersionTooNew {
            path: path.to_path_buf(),
            found: v,
            supported: SCHEMA_VERSION,
        }),
        Some(v) => {
            let pending = pending_from(Some(v));
            for step in STEPS.iter().filter(|s| s.from >= v) {
                let _span =
                    tracing::info_span!("migrate", from = step.from, to = step.from + 1).entered();
                let txn = super::begin_write(db, true).ctx("beginning a migration")?;
                (step.run)(&txn)?;
                set_version(&txn, step.from + 1)?;
                txn.commit().ctx("committing a migration")?;
                tracing::info!(
                    from = step.from,
                    to = step.from + 1,
                    step = step.name,
                    "migrated"
                );
            }
            Ok(pending)
        }
    }
}

/// Gives back the space a migration freed: a step rewrites its records in
/// one transaction, and copy-on-write keeps the old pages until it commits,
/// so a store whose records were all rewritten ends up about twice its
/// size, half of it free. Measured: 1M users from schema 4, 570 MB before,
/// 1.14 GB after the step, 0.46 GB once compacted (5 s more). A failed
/// compaction leaves a valid store, so it is logged, not returned.
pub(crate) fn compact_after(db: &mut redb::Database, path: &std::path::Path) {
    let size = || std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let before = size();
    match db.compact() {
        Ok(_) => tracing::info!(
            before,
            after = size(),
            "compacted the store after migrating"
        ),
        Err(e) => tracing::warn!(error = %e, "could not compact the store after migrating"),
    }
}

/// The user record of schema 1.
#[derive(Deserialize)]
pub(crate) struct UserV1 {
    id: UserId,
    username: String,
    email: String,
    password_hash: Option<String>,
    created_at: Timestamp,
    updated_at: Timestamp,
    deleted_at: Option<Timestamp>,
}

/// The profile record of schema 1.
#[derive(Deserialize)]
pub(crate) struct ProfileV1 {
    id: ProfileId,
    user_id: UserId,
    language: String,
    region: Option<String>,
    retention_days: Option<u32>,
    audio_consent: bool,
    consent_at: Option<Timestamp>,
    created_at: Timestamp,
    updated_at: Timestamp,
}

/// The user record of schemas 2 to 4 (format 2), frozen: what those
/// stores hold, whatever `User` becomes.
#[derive(Serialize, Deserialize)]
struct UserV2 {
    id: uuid::Uuid,
    username: String,
    email: String,
    display_name: Option<String>,
    status: UserStatusV2,
    has_password: bool,
    last_login_at: Option<i64>,
    created_at: i64,
    updated_at: i64,
    deleted_at: Option<i64>,
}

#[derive(Serialize, Deserialize)]
enum UserStatusV2 {
    Active,
    Suspended,
}

impl From<UserV2> for User {
    fn from(u: UserV2) -> User {
        let at = Timestamp::from_micros;
        User {
            id: UserId::from_key(u.id.as_u128()),
            username: u.username,
            email: u.email,
            display_name: u.display_name,
            status: match u.status {
                UserStatusV2::Active => UserStatus::Active,
                UserStatusV2::Suspended => UserStatus::Suspended,
            },
            has_password: u.has_password,
            last_login_at: u.last_login_at.map(at),
            created_at: at(u.created_at),
            updated_at: at(u.updated_at),
            deleted_at: u.deleted_at.map(at),
        }
    }
}

impl From<&User> for UserV2 {
    fn from(u: &User) -> UserV2 {
        UserV2 {
            id: u.id.as_uuid(),
            username: u.username.clone(),
            email: u.email.clone(),
            display_name: u.display_name.clone(),
            status: match u.status {
                UserStatus::Active => UserStatusV2::Active,
                UserStatus::Suspended => UserStatusV2::Suspended,
            },
            has_password: u.has_password,
            last_login_at: u.last_login_at.map(Timestamp::as_micros),
            created_at: u.created_at.as_micros(),
            updated_at: u.updated_at.as_micros(),
            deleted_at: u.deleted_at.map(Timestamp::as_micros),
        }
    }
}

/// Decodes a user record of schemas 2 to 4.
pub(crate) fn decode_legacy_user(bytes: &[u8], id: UserId) -> Result<User, Error> {
    codec::decode_versioned::<UserV2>(LEGACY_VERSION, bytes, || format!("user record {id}"))
        .map(User::from)
}

/// Encodes a user as schemas 2 to 4 stored it.
pub(crate) fn encode_legacy_user(user: &User) -> Result<Vec<u8>, Error> {
    codec::encode_versioned(LEGACY_VERSION, &UserV2::from(user))
}

/// Rewrites users in batches, so memory stays bounded for any number of
/// users (the whole step is still one transaction).
fn v4_to_v5(txn: &WriteTransaction) -> Result<(), Error> {
    const BATCH: usize = 4096;
    let mut tables = UserTables::open(txn)?;
    let (mut next, mut count) = (Some(0u128), 0u64);
    while let Some(from) = next.take() {
        let mut batch = Vec::with_capacity(BATCH);
        for row in tables.users.range(from..).ctx("reading users")? {
            let (k, v) = row.ctx("reading users")?;
            if batch.len() == BATCH {
                next = Some(k.value());
                break;
            }
            if codec::version_of(v.value()) == Some(LEGACY_VERSION) {
                batch.push(decode_legacy_user(v.value(), UserId::from_key(k.value()))?);
            }
        }
        for user in batch.iter().cloned() {
            // In clear (format 3): no keys at this point; `migrate_v10`
            // seals the display names at the first open with the keys.
            let row = user_record::UserRow {
                user,
                sealed_name: None,
            };
            tables.put(&row, None)?;
        }
        count += batch.len() as u64;
    }
    tracing::info!(users = count, "rewrote users in record format 3");
    Ok(())
}

fn v2_to_v3(txn: &WriteTransaction) -> Result<(), Error> {
    schema::create_all(txn).ctx("creating tables")
}

fn v3_to_v4(txn: &WriteTransaction) -> Result<(), Error> {
    schema::create_all(txn).ctx("creating tables")?;
    let mut t = UserTables::open(txn)?;
    let mut count = 0u64;
    for row in t.users.iter().ctx("reading users")? {
        let (k, v) = row.ctx("reading users")?;
        let user = decode_legacy_user(v.value(), UserId::from_key(k.value()))?;
        t.by_username
            .insert(user.username.as_str(), v.value())
            .ctx("writing user_records_by_username")?;
        t.by_email
            .insert(user.email.as_str(), v.value())
            .ctx("writing user_records_by_email")?;
        count += 1;
    }
    drop(t);
    for (table, name) in [
        (LEGACY_USERS_BY_USERNAME, "users_by_username"),
        (LEGACY_USERS_BY_EMAIL, "users_by_email"),
    ] {
        txn.delete_table(table)
            .map_err(|e| Error::storage(format!("deleting {name}"), e))?;
    }
    tracing::info!(users = count, "built the covering user indexes");
    Ok(())
}

fn v1_to_v2(txn: &WriteTransaction) -> Result<(), Error> {
    schema::create_all(txn).ctx("creating tables")?;
    let mut users = txn.open_table(schema::USERS).ctx("opening users")?;
    let mut creds = txn
        .open_table(schema::CREDENTIALS)
        .ctx("opening credentials")?;
    let mut rewritten = Vec::new();
    for row in users.iter().ctx("reading users")? {
        let (k, v) = row.ctx("reading users")?;
        let (key, bytes) = (k.value(), v.value());
        if codec::version_of(bytes) != Some(1) {
            continue;
        }
        let old: UserV1 = codec::decode_versioned(1, bytes, || {
            format!("user record {}", UserId::from_key(key))
        })?;
        let user = User {
            id: old.id,
            username: old.username,
            email: old.email,
            display_name: None,
            status: UserStatus::Active,
            has_password: old.password_hash.is_some(),
            last_login_at: None,
            created_at: old.created_at,
            updated_at: old.updated_at,
            deleted_at: old.deleted_at,
        };
        if let Some(hash) = old.password_hash {
            creds
                .insert(key, hash.as_str())
                .ctx("writing credentials")?;
        }
        rewritten.push((key, encode_legacy_user(&user)?));
    }
    for (key, bytes) in rewritten {
        users.insert(key, bytes.as_slice()).ctx("rewriting users")?;
    }
    let mut profiles = txn.open_table(schema::PROFILES).ctx("opening profiles")?;
    let mut rewritten = Vec::new();
    for row in profiles.iter().ctx("reading profiles")? {
        let (k, v) = row.ctx("reading profiles")?;
        let (key, bytes) = (k.value(), v.value());
        if codec::version_of(bytes) != Some(1) {
            continue;
        }
        let old: ProfileV1 = codec::decode_versioned(1, bytes, || {
            format!("profile record {}", UserId::from_key(key))
        })?;
        let languages = match old.language.parse() {
            Ok(tag) => vec![tag],
            Err(_) => {
                tracing::warn!(user = %old.user_id, "dropping an invalid v1 language tag");
                Vec::new()
            }
        };
        let mut consents = BTreeMap::new();
        if let Some(at) = old.consent_at {
            consents.insert(
                ConsentKind::AudioStorage,
                ConsentState {
                    granted: old.audio_consent,
                    at,
                },
            );
        }
        let profile = UserProfile {
            id: old.id,
            user_id: old.user_id,
            languages,
            region: old.region,
            accent: None,
            voice: VoicePreferences::default(),
            audio_retention_days: old.retention_days,
            consents,
            preferences: BTreeMap::new(),
            created_at: old.created_at,
            updated_at: old.updated_at,
        };
        rewritten.push((key, codec::encode(&profile)?));
    }
    for (key, bytes) in rewritten {
        profiles
            .insert(key, bytes.as_slice())
            .ctx("rewriting profiles")?;
    }
    Ok(())
}
