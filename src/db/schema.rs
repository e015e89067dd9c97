//! The tables of `store.redb` and the keys they use.
//!
//! Ids are stored as `u128` (a UUID's big-endian value) so that numeric
//! order is creation order; timestamps as `i64` microseconds. Most index
//! tables map a composite key to `()`: the key alone answers the lookup,
//! and the record is fetched from its primary table. The two user indexes
//! are covering: they hold the user record (with its id, without the name
//! the index is keyed by; `db::user_record`), so a login-time lookup by
//! username or email is one B-tree search instead of two (see
//! `db::users_index`). These definitions are private to `db`: every other
//! module reaches a table through a function of `db/<family>.rs`. Every index is written in the same write transaction
//! as its row.
//!
//! | table | key | value |
//! |---|---|---|
//! | `meta` | name | bytes (schema version as `u32` LE, store id, master key check, wrapped audit key, audit head and anchor) |
//! | `users` | user id | `User` record |
//! | `user_records_by_username` | normalised username | id + `User` record without the username |
//! | `user_records_by_email` | lower-case email | id + `User` record without the email |
//! | `credentials` | user id | argon2id PHC string |
//! | `profiles` | user id | `UserProfile` record |
//! | `sessions` | session id | `ConversationSession` record |
//! | `sessions_by_user` | (user, last active, session) | () |
//! | `sessions_by_expiry` | (expires at, session) | () |
//! | `files` | file id | `AudioFile` record |
//! | `files_by_owner` | (owner, file) | () |
//! | `files_by_expiry` | (expires at, file) | () |
//! | `files_by_blob` | (blob address, file) | () |
//! | `metrics` | (name, time, sample id) | `MetricSample` record |
//! | `keys` | owner id | owner key record (keys wrapped under the master key) |
//! | `blobs` | blob address | blob row: owner, refcount, sizes, wrapped data key |
//! | `blobs_by_owner` | (owner, blob address) | () |
//! | `grants` | (file, grantee) | () |
//! | `audit_log` | sequence number (from 1) | audit entry + MAC (`db::audit`) |
//! | `files_by_deleted` | (deleted at, file) | () |
//! | `sessions_by_deleted` | (deleted at, session) | () |
//! | `damaged_blobs` | blob address | damage record: when found, why |
//! | `usage` | owner id | usage row: stored bytes, blobs, own quota |

use redb::TableDefinition;

pub(super) const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
pub(super) const USERS: TableDefinition<u128, &[u8]> = TableDefinition::new("users");
pub(super) const USERS_BY_USERNAME: TableDefinition<&str, &[u8]> =
    TableDefinition::new("user_records_by_username");
pub(super) const USERS_BY_EMAIL: TableDefinition<&str, &[u8]> =
    TableDefinition::new("user_records_by_email");
pub(super) const CREDENTIALS: TableDefinition<u128, &str> = TableDefinition::new("credentials");
pub(super) const PROFILES: TableDefinition<u128, &[u8]> = TableDefinition::new("profiles");
pub(super) const SESSIONS: TableDefinition<u128, &[u8]> = TableDefinition::new("sessions");
pub(super) const SESSIONS_BY_USER: TableDefinition<(u128, i64, u128), ()> =
    TableDefinition::new("sessions_by_user");
pub(super) const SESSIONS_BY_EXPIRY: TableDefinition<(i64, u128), ()> =
    TableDefinition::new("sessions_by_expiry");
pub(super) const FILES: TableDefinition<u128, &[u8]> = TableDefinition::new("files");
pub(super) const FILES_BY_OWNER: TableDefinition<(u128, u128), ()> =
    TableDefinition::new("files_by_owner");
pub(super) const FILES_BY_EXPIRY: TableDefinition<(i64, u128), ()> =
    TableDefinition::new("files_by_expiry");
pub(super) const FILES_BY_BLOB: TableDefinition<([u8; 32], u128), ()> =
    TableDefinition::new("files_by_blob");
pub(super) const METRICS: TableDefinition<(&str, i64, u128), &[u8]> =
    TableDefinition::new("metrics");

pub(super) const KEYS: TableDefinition<u128, &[u8]> = TableDefinition::new("keys");
/// owner → its record key (`db::sealing`), wrapped under the master key.
/// Apart from `keys`: erasing a user's audio destroys `keys` and keeps
/// this, so their sessions and profile stay readable.
pub(super) const RECORD_KEYS: TableDefinition<u128, &[u8]> = TableDefinition::new("record_keys");
pub(super) const BLOBS: TableDefinition<[u8; 32], &[u8]> = TableDefinition::new("blobs");
pub(super) const BLOBS_BY_OWNER: TableDefinition<(u128, [u8; 32]), ()> =
    TableDefinition::new("blobs_by_owner");
pub(super) const GRANTS: TableDefinition<(u128, u128), ()> = TableDefinition::new("grants");
/// The audit table of schemas 3 to 8 (read only by the schema 9 step).
pub(super) const LEGACY_AUDIT: TableDefinition<(i64, u128), &[u8]> = TableDefinition::new("audit");
/// The audit chain (`db::audit`).
pub(super) const AUDIT_LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("audit_log");
/// Soft-deleted files by deletion time: what the purge takes, oldest first.
pub(super) const FILES_BY_DELETED: TableDefinition<(i64, u128), ()> =
    TableDefinition::new("files_by_deleted");
/// Soft-deleted sessions by deletion time.
pub(super) const SESSIONS_BY_DELETED: TableDefinition<(i64, u128), ()> =
    TableDefinition::new("sessions_by_deleted");
/// Blobs found missing or changed behind the store's back.
pub(super) const DAMAGED_BLOBS: TableDefinition<[u8; 32], &[u8]> =
    TableDefinition::new("damaged_blobs");

/// Per-owner storage usage and quota (`db::usage`).
pub(super) const USAGE: TableDefinition<u128, &[u8]> = TableDefinition::new("usage");

/// Erasures scheduled, in progress and done, by user (`db::erasures`).
pub(super) const ERASURES: TableDefinition<u128, &[u8]> = TableDefinition::new("erasures");

/// `meta` key holding the master key check value.
pub(super) const MASTER_CHECK_KEY: &str = "master_key_check";

/// `meta` key holding the applied schema version (`u32` LE).
pub(super) const SCHEMA_VERSION_KEY: &str = "schema_version";
/// `meta` key holding the store's id (16 bytes).
pub(super) const STORE_ID_KEY: &str = "store_id";

/// Creates every table of the current schema (a no-op for those that exist).
pub(super) fn create_all(txn: &redb::WriteTransaction) -> Result<(), redb::TableError> {
    txn.open_table(META)?;
    txn.open_table(USERS)?;
    txn.open_table(USERS_BY_USERNAME)?;
    txn.open_table(USERS_BY_EMAIL)?;
    txn.open_table(CREDENTIALS)?;
    txn.open_table(PROFILES)?;
    txn.open_table(SESSIONS)?;
    txn.open_table(SESSIONS_BY_USER)?;
    txn.open_table(SESSIONS_BY_EXPIRY)?;
    txn.open_table(FILES)?;
    txn.open_table(FILES_BY_OWNER)?;
    txn.open_table(FILES_BY_EXPIRY)?;
    txn.open_table(FILES_BY_BLOB)?;
    txn.open_table(METRICS)?;
    txn.open_table(KEYS)?;
    txn.open_table(RECORD_KEYS)?;
    txn.open_table(BLOBS)?;
    txn.open_table(BLOBS_BY_OWNER)?;
    txn.open_table(GRANTS)?;
    txn.open_table(AUDIT_LOG)?;
    txn.open_table(FILES_BY_DELETED)?;
    txn.open_table(SESSIONS_BY_DELETED)?;
    txn.open_table(DAMAGED_BLOBS)?;
    txn.open_table(USAGE)?;
    txn.open_table(ERASURES)?;
    Ok(())
}

/// Every row of every table, as `(table, key bytes, value bytes)`: for
/// tests that look for a value anywhere in the store.
/// Removes a file's record alone, leaving its blob row and index entries
/// (for tests of blob rows no file names).
#[cfg(test)]
pub(crate) fn forget_file_record(txn: &redb::WriteTransaction, id: crate::types::FileId) {
    txn.open_table(FILES)
        .expect("files")
        .remove(id.to_key())
        .expect("removing a file record");
}

/// Removes a session's record alone, leaving its index entries.
#[cfg(test)]
pub(crate) fn forget_session_record(txn: &redb::WriteTransaction, id: crate::types::SessionId) {
    txn.open_table(SESSIONS)
        .expect("sessions")
        .remove(id.to_key())
        .expect("removing a session record");
}

#[cfg(test)]
pub(crate) fn dump_all(txn: &redb::ReadTransaction) -> Vec<(String, Vec<u8>, Vec<u8>)> {
    use redb::{Key, ReadableTable, TableHandle, Value};
    fn dump<K: Key + 'static, V: Value + 'static>(
        txn: &redb::ReadTransaction,
        def: TableDefinition<'static, K, V>,
        out: &mut Vec<(String, Vec<u8>, Vec<u8>)>,
    ) {
        let Ok(t) = txn.open_table(def) else {
            return;
        };
        for row in t.iter().expect("iterating") {
            let (k, v) = row.expect("reading");
            out.push((
                def.name().to_string(),
                K::as_bytes(&k.value()).as_ref().to_vec(),
                V::as_bytes(&v.value()).as_ref().to_vec(),
            ));
        }
    }
    let mut out = Vec::new();
    dump(txn, META, &mut out);
    dump(txn, USERS, &mut out);
    dump(txn, USERS_BY_USERNAME, &mut out);
    dump(txn, USERS_BY_EMAIL, &mut out);
    dump(txn, CREDENTIALS, &mut out);
    dump(txn, PROFILES, &mut out);
    dump(txn, SESSIONS, &mut out);
    dump(txn, SESSIONS_BY_USER, &mut out);
    dump(txn, SESSIONS_BY_EXPIRY, &mut out);
    dump(txn, FILES, &mut out);
    dump(txn, FILES_BY_OWNER, &mut out);
    dump(txn, FILES_BY_EXPIRY, &mut out);
    dump(txn, FILES_BY_BLOB, &mut out);
    dump(txn, METRICS, &mut out);
    dump(txn, KEYS, &mut out);
    dump(txn, RECORD_KEYS, &mut out);
    dump(txn, BLOBS, &mut out);
    dump(txn, BLOBS_BY_OWNER, &mut out);
    dump(txn, GRANTS, &mut out);
    dump(txn, LEGACY_AUDIT, &mut out);
    dump(txn, AUDIT_LOG, &mut out);
    dump(txn, FILES_BY_DELETED, &mut out);
    dump(txn, SESSIONS_BY_DELETED, &mut out);
    dump(txn, DAMAGED_BLOBS, &mut out);
    dump(txn, USAGE, &mut out);
    dump(txn, ERASURES, &mut out);
    out
}
