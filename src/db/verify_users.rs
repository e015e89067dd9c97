//! The users half of `verify` (fsck): every user and profile row decodes,
//! and the two covering indexes (`user_records_by_username`,
//! `user_records_by_email`, see `db::users_index`) hold, for each user
//! row, a copy that says what the row says, and nothing else.
//!
//! An entry is checked against its row both ways: a row without its entry
//! (or with an entry that differs) is a missing or dangling entry; an
//! entry whose row is gone, or whose row now has another name, is
//! dangling. An entry whose row does not decode is left alone: the row is
//! reported, and the entry may be the only good copy of the record.
//!
//! Problem ids name the user (never a username or an email: those are
//! personal); an entry that names no user is named by a short hash of its
//! key.

use redb::{ReadTransaction, ReadableTable, TableDefinition, WriteTransaction};
use sha2::{Digest, Sha256};

use crate::db::schema::{PROFILES, USERS, USERS_BY_EMAIL, USERS_BY_USERNAME};
use crate::db::user_record::{self, Index, UserRow};
use crate::db::verify::{MetaScan, Problem, ProblemKind};
use crate::error::{Error, StorageContext};
use crate::types::UserId;

type IndexTable = TableDefinition<'static, &'static str, &'static [u8]>;

/// Both covering indexes, with what each is keyed by.
const INDEXES: [(Index, IndexTable); 2] = [
    (Index::Username, USERS_BY_USERNAME),
    (Index::Email, USERS_BY_EMAIL),
];

fn name(def: IndexTable) -> String {
    redb::TableHandle::name(&def).to_owned()
}

/// The key a row has in `index`.
fn key_of(row: &UserRow, index: Index) -> &str {
    match index {
        Index::Username => &row.user.username,
        Index::Email => &row.user.email,
    }
}

/// A short, stable name for an index key that names no user.
fn hashed(key: &str) -> String {
    hex::encode(&Sha256::digest(key.as_bytes())[..8])
}

/// What an index entry is, measured against the users table.
enum Verdict {
    /// The entry is the row's copy.
    Matches,
    /// The row does not decode: nothing to compare (the row is reported).
    RowUndecodable,
    /// The row decodes and holds this key, but the copy differs from it.
    Differs(UserId),
    /// No row, or a row with another key: `(id if known, what was seen)`.
    Stray(Option<UserId>, &'static str),
}

fn judge(
    users: &impl ReadableTable<u128, &'static [u8]>,
    index: Index,
    key: &str,
    bytes: &[u8],
) -> Result<Verdict, Error> {
    let Ok(id) = user_record::indexed_id(bytes, key) else {
        return Ok(Verdict::Stray(None, "the entry does not decode"));
    };
    let Some(row) = users.get(id.to_key()).ctx("reading users")? else {
        return Ok(Verdict::Stray(Some(id), "no user row"));
    };
    let Ok(row) = user_record::decode_row(row.value(), id) else {
        return Ok(Verdict::RowUndecodable);
    };
    if key_of(&row, index) != key {
        return Ok(Verdict::Stray(Some(id), "the user row holds another key"));
    }
    Ok(match user_record::decode_indexed(bytes, index, key) {
        Ok(copy) if copy == row => Verdict::Matches,
        _ => Verdict::Differs(id),
    })
}

/// Checks the user and profile rows and both covering indexes.
pub(crate) fn check(txn: &ReadTransaction, s: &mut MetaScan) -> Result<(), Error> {
    let users = txn.open_table(USERS).ctx("opening users")?;
    let indexes = [
        txn.open_table(USERS_BY_USERNAME)
            .ctx("opening user_records_by_username")?,
        txn.open_table(USERS_BY_EMAIL)
            .ctx("opening user_records_by_email")?,
    ];
    for row in users.iter().ctx("scanning users")? {
        let (k, v) = row.ctx("scanning users")?;
        let id = UserId::from_key(k.value());
        s.users += 1;
        let decoded = match user_record::decode_row(v.value(), id) {
            Ok(r) => r,
            Err(e) => {
                s.problems.push(Problem::new(
                    ProblemKind::Undecodable,
                    format!("user {id}"),
                    e.to_string(),
                ));
                continue;
            }
        };
        for ((index, def), table) in INDEXES.iter().zip(&indexes) {
            let key = key_of(&decoded, *index);
            if table.get(key).ctx("reading a user index")?.is_none() {
                s.problems.push(Problem::new(
                    ProblemKind::MissingIndexEntry,
                    format!("{} user {id}", name(*def)),
                    "the user is not in the index under its key",
                ));
            }
        }
    }
    for ((index, def), table) in INDEXES.iter().zip(&indexes) {
        for entry in table.iter().ctx("scanning a user index")? {
            let (k, v) = entry.ctx("scanning a user index")?;
            s.index_entries += 1;
            let (key, bytes) = (k.value(), v.value());
            let problem = match judge(&users, *index, key, bytes)? {
                Verdict::Matches | Verdict::RowUndecodable => continue,
                Verdict::Differs(id) => Problem::new(
                    ProblemKind::DanglingIndexEntry,
                    format!("{} user {id}", name(*def)),
                    "the entry's copy of the user is not what the user row says",
                ),
                Verdict::Stray(Some(id), why) => Problem::new(
                    ProblemKind::DanglingIndexEntry,
                    format!("{} user {id}", name(*def)),
                    why,
                ),
                Verdict::Stray(None, why) => Problem::new(
                    ProblemKind::DanglingIndexEntry,
                    format!("{} entry {}", name(*def), hashed(key)),
                    why,
                ),
            };
            s.problems.push(problem);
        }
    }
    let profiles = txn.open_table(PROFILES).ctx("opening profiles")?;
    for row in profiles.iter().ctx("scanning profiles")? {
        let (k, v) = row.ctx("scanning profiles")?;
        let id = UserId::from_key(k.value());
        if let Err(e) = crate::db::profile_row::ProfileRow::decode(v.value(), id) {
            s.problems.push(Problem::new(
                ProblemKind::Undecodable,
                format!("profile {id}"),
                e.to_string(),
            ));
        }
    }
    Ok(())
}

/// Repairs both covering indexes from the user rows: entries with no row,
/// or whose row holds another key, are removed; every row that decodes
/// gets its copy written under its keys. Entries of rows that do not
/// decode are kept.
pub(crate) fn repair(txn: &WriteTransaction) -> Result<(), Error> {
    let mut rows = Vec::new();
    {
        let users = txn.open_table(USERS).ctx("opening users")?;
        for (index, def) in INDEXES {
            let mut table = txn.open_table(def).ctx("opening a user index")?;
            let mut stray = Vec::new();
            for entry in table.iter().ctx("scanning a user index")? {
                let (k, v) = entry.ctx("scanning a user index")?;
                if let Verdict::Stray(..) = judge(&users, index, k.value(), v.value())? {
                    stray.push(k.value().to_owned());
                }
            }
            for key in stray {
                table.remove(key.as_str()).ctx("writing a user index")?;
            }
        }
        for row in users.iter().ctx("scanning users")? {
            let (k, v) = row.ctx("scanning users")?;
            if let Ok(r) = user_record::decode_row(v.value(), UserId::from_key(k.value())) {
                rows.push(r);
            }
        }
    }
    for (index, def) in INDEXES {
        let mut table = txn.open_table(def).ctx("opening a user index")?;
        for r in &rows {
            let copy = user_record::encode_indexed(r, index)?;
            table
                .insert(key_of(r, index), copy.as_slice())
                .ctx("writing a user index")?;
        }
    }
    Ok(())
}
