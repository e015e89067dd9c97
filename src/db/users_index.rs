//! The covering user indexes: `user_records_by_username` and
//! `user_records_by_email` map a normalised name to the whole user record,
//! with its id and without the name itself (`db::user_record`).
//!
//! Why covering: a lookup by username was two B-tree searches (name → id,
//! id → record) and cost twice a lookup by id (1.04 µs against 0.46 µs at
//! 100k users; 5.3 µs against 2.2 µs at 1M with a 64 MiB page cache, where
//! both searches miss the cache). Users are read far more often than they
//! change, so every user write stores the record three times, and every
//! write goes through [`put_user`] so the copies cannot drift apart (the
//! model test in `tests/integration/model.rs` checks every lookup path
//! against one model).

use redb::{ReadableTable, Table, WriteTransaction};

use crate::db::schema::{USERS, USERS_BY_EMAIL, USERS_BY_USERNAME};
use crate::db::user_record::{self, Index, UserRow};
use crate::error::{Error, StorageContext};
use crate::types::UserId;

/// The three tables that hold a user, open for writing.
pub(crate) struct UserTables<'t> {
    pub(crate) users: Table<'t, u128, &'static [u8]>,
    pub(crate) by_username: Table<'t, &'static str, &'static [u8]>,
    pub(crate) by_email: Table<'t, &'static str, &'static [u8]>,
}

impl<'t> UserTables<'t> {
    pub(crate) fn open(txn: &'t WriteTransaction) -> Result<Self, Error> {
        Ok(Self {
            users: txn.open_table(USERS).ctx("opening users")?,
            by_username: txn
                .open_table(USERS_BY_USERNAME)
                .ctx("opening user_records_by_username")?,
            by_email: txn
                .open_table(USERS_BY_EMAIL)
                .ctx("opening user_records_by_email")?,
        })
    }

    /// Writes a user to `users` and both indexes; `old_email`, when it
    /// differs from the user's email, is removed from the email index.
    pub(crate) fn put(&mut self, stored: &UserRow, old_email: Option<&str>) -> Result<(), Error> {
        let user = &stored.user;
        let row = user_record::encode_row(stored)?;
        let by_username = user_record::encode_indexed(stored, Index::Username)?;
        let by_email = user_record::encode_indexed(stored, Index::Email)?;
        self.users
            .insert(user.id.to_key(), row.as_slice())
            .ctx("writing users")?;
        self.by_username
            .insert(user.username.as_str(), by_username.as_slice())
            .ctx("writing user_records_by_username")?;
        if let Some(old) = old_email.filter(|e| *e != user.email) {
            self.by_email
                .remove(old)
                .ctx("writing user_records_by_email")?;
        }
        self.by_email
            .insert(user.email.as_str(), by_email.as_slice())
            .ctx("writing user_records_by_email")?;
        Ok(())
    }
}

/// Writes `user` to `users` and both indexes (see [`UserTables::put`]).
pub(crate) fn put_user(
    txn: &WriteTransaction,
    row: &UserRow,
    old_email: Option<&str>,
) -> Result<(), Error> {
    UserTables::open(txn)?.put(row, old_email)
}

/// The user (live or soft-deleted) that `index` holds under `key`.
pub(crate) fn lookup(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    index: Index,
    key: &str,
) -> Result<Option<UserRow>, Error> {
    match table.get(key).ctx("reading a user index")? {
        Some(v) => user_record::decode_indexed(v.value(), index, key).map(Some),
        None => Ok(None),
    }
}

/// The id of the user holding `key` in an index, for conflict reports.
pub(crate) fn holder(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    key: &str,
) -> Result<Option<UserId>, Error> {
    match table.get(key).ctx("reading a user index")? {
        Some(v) => user_record::indexed_id(v.value(), key).map(Some),
        None => Ok(None),
    }
}
