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
    each(
        txn,
        RECORD_KEYS,
        "record_keys",
        |k, v| {
            let owner = UserId::from_key(k);
            let decoded: Result<crate::db::keys::WrappedKey, Error> =
                codec::decode_versioned(1, v, || format!("record key of {owner}"));
            decoded
                .err()
                .map(|e| undecodable(format!("record_keys user {owner}"), e))
        },
        s,
    )?;
    each(
        txn,
        DAMAGED_BLOBS,
        "damaged_blobs",
        |k, v| {
            let address = BlobAddress(k);
            codec::decode::<crate::db::lifecycle::Damage>(v, address)
                .err()
                .map(|e| undecodable(format!("damaged_blobs blob {address}"), e))
        },
        s,
    )?;
    each(
        txn,
        CREDENTIALS,
        "credentials",
        |k, v| {
            argon2::password_hash::PasswordHash::new(v).err().map(|e| {
                Problem::new(
                    ProblemKind::Undecodable,
                    format!("credentials user {}", UserId::from_key(k)),
                    format!("the stored password hash does not parse: {e}"),
                )
            })
        },
        s,
    )?;
    each(
        txn,
        METRICS,
        "metrics",
        |(name, at, n), v| {
            let id = format!("{name} {at} {n}");
            codec::decode::<crate::model::metric::MetricSample>(v, &id)
                .err()
                .map(|e| undecodable(format!("metrics {id}"), e))
        },
        s,
    )
}

/// Runs `judge` on every row of `def`, keeping the problems it finds.
fn each<K: redb::Key + 'static, V: redb::Value + 'static>(
    txn: &ReadTransaction,
    def: TableDefinition<K, V>,
    table: &str,
    mut judge: impl FnMut(K::SelfType<'_>, V::SelfType<'_>) -> Option<Problem>,
    s: &mut MetaScan,
) -> Result<(), Error> {
    let scanning = format!("scanning {table}");
    for row in txn.open_table(def).ctx(&scanning)?.iter().ctx(&scanning)? {
        let (k, v) = row.ctx(&scanning)?;
        if let Some(p) = judge(k.value(), v.value()) {
            s.problems.push(p);
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
    each(
        txn,
        def,
        table,
        |k, v| {
            let user = UserId::from_key(k);
            codec::decode::<T>(v, user)
                .err()
                .map(|e| undecodable(format!("{table} user {user}"), e))
        },
        s,
    )
}

fn undecodable(id: String, e: Error) -> Problem {
    Problem::new(ProblemKind::Undecodable, id, e.to_string())
}
