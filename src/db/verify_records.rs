//! The rest of `verify`'s "every record decodes": the rows that are not
//! users, profiles, sessions, files or blobs (checked with their indexes
//! elsewhere) and that the store still needs to read: owners' key rows,
//! record keys, erasure records, the damaged-blob marks, password hashes
//! and metric snapshots. A row that does not decode is `undecodable`,
//! named by its table and key; a repair leaves it (restore from a backup).

use redb::{ReadTransaction, ReadableTable, TableDefinition};

use crate::db::codec::{self, Record};
use crate::db::schema::{CREDENTIALS, DAMAGED_BLOBS, ERASURES, KEYS, METRICS, RECORD_KEYS};
use crate::db::verify::{MetaScan, Problem, ProblemKind};
use crate::error::{Error, StorageContext};
use crate::types::{BlobAddress, UserId};

/// Checks every row of the tables this module covers.
pub(crate) fn check(txn: &ReadTransaction, s: &mut MetaScan) -> Result<(), Error> {
    by_user::<crate::db::keys::OwnerKeysRecord>(txn, s, KEYS, "keys")?;
    by_user::<crate::model::privacy::Erasure>(txn, s, ERASURES, "erasures")?;
    let scanning = "scanning record_keys";
    for row in txn
        .open_table(RECORD_KEYS)
        .ctx("opening record_keys")?
        .iter()
        .ctx(scanning)?
    {
        let (k, v) = row.ctx(scanning)?;
        let owner = UserId::from_key(k.value());
        let decoded: Result<crate::db::keys::WrappedKey, Error> =
            codec::decode_versioned(1, v.value(), || format!("record key of {owner}"));
        if let Err(e) = decoded {
            s.problems
                .push(undecodable(format!("record_keys user {owner}"), e));
        }
    }
    let scanning = "scanning damaged_blobs";
    for row in txn
        .open_table(DAMAGED_BLOBS)
        .ctx("opening damaged_blobs")?
        .iter()
        .ctx(scanning)?
    {
        let (k, v) = row.ctx(scanning)?;
        let address = BlobAddress(k.value());
        if let Err(e) = codec::decode::<crate::db::lifecycle::Damage>(v.value(), address) {
            s.problems
                .push(undecodable(format!("damaged_blobs blob {address}"), e));
        }
    }
    let scanning = "scanning credentials";
    for row in txn
        .open_table(CREDENTIALS)
        .ctx("opening credentials")?
        .iter()
        .ctx(scanning)?
    {
        let (k, v) = row.ctx(scanning)?;
        if let Err(e) = argon2::password_hash::PasswordHash::new(v.value()) {
            s.problems.push(Problem::new(
                ProblemKind::Undecodable,
                format!("credentials user {}", UserId::from_key(k.value())),
                format!("the stored password hash does not parse: {e}"),
            ));
        }
    }
    let scanning = "scanning metrics";
    for row in txn
        .open_table(METRICS)
        .ctx("opening metrics")?
        .iter()
        .ctx(scanning)?
    {
        let (k, v) = row.ctx(scanning)?;
        let (name, at, n) = k.value();
        let id = format!("{name} {at} {n}");
        if let Err(e) = codec::decode::<crate::model::metric::MetricSample>(v.value(), &id) {
            s.problems.push(undecodable(format!("metrics {id}"), e));
        }
    }
    Ok(())
}

/// Decodes every row of a table keyed by user id as `T`.
fn by_user<T: Record>(
    txn: &ReadTransaction,
    s: &mut MetaScan,
    def: TableDefinition<u128, &[u8]>,
    table: &str,
) -> Result<(), Error> {
    let scanning = format!("scanning {table}");
    for row in txn.open_table(def).ctx(&scanning)?.iter().ctx(&scanning)? {
        let (k, v) = row.ctx(&scanning)?;
        let user = UserId::from_key(k.value());
        if let Err(e) = codec::decode::<T>(v.value(), user) {
            s.problems
                .push(undecodable(format!("{table} user {user}"), e));
        }
    }
    Ok(())
}

fn undecodable(id: String, e: Error) -> Problem {
    Problem::new(ProblemKind::Undecodable, id, e.to_string())
}
