//! Per-user storage usage: the bytes and blobs each owner's stored blobs
//! take, and the owner's own quota if one is set. A put charges its new
//! blob in the transaction that commits the blob row, after checking the
//! quota there (so two puts racing for the last bytes cannot both pass);
//! the purge refunds a blob in the transaction that removes its row. A
//! deduplicated put adds no blob and is not charged.

use redb::{ReadableTable, Table, WriteTransaction};
use serde::{Deserialize, Serialize};

use crate::db::blobs::get_row;
use crate::db::codec::{self, Record};
use crate::db::schema::{BLOBS, BLOBS_BY_OWNER, USAGE};
use crate::db::txn::ReadTxn;
use crate::error::{Error, QuotaLimit, StorageContext};
use crate::types::{BlobAddress, UserId};

/// One owner's usage row.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct UsageRow {
    /// Stored (compressed, encrypted) bytes of the owner's blobs.
    pub(crate) stored_bytes: u64,
    /// How many blobs the owner has.
    pub(crate) blobs: u64,
    /// The owner's own quota, overriding the store default.
    pub(crate) limit: Option<u64>,
}

impl Record for UsageRow {
    codec::stored_as_is!("usage row", 1);
}

/// A live user's usage; `NotFound` for an unknown or deleted user.
pub(crate) fn of_live_user(txn: &impl ReadTxn, owner: UserId) -> Result<UsageRow, Error> {
    crate::db::users::load_live(&txn.table(crate::db::schema::USERS)?, owner)?;
    get(txn, owner)
}

/// An owner's usage (zero if nothing is recorded).
pub(crate) fn get(txn: &impl ReadTxn, owner: UserId) -> Result<UsageRow, Error> {
    get_in(&txn.table(USAGE)?, owner)
}

/// [`get`] from the open `usage` table.
fn get_in(
    usage: &impl ReadableTable<u128, &'static [u8]>,
    owner: UserId,
) -> Result<UsageRow, Error> {
    match usage.get(owner.to_key()).ctx("reading usage")? {
        Some(v) => codec::decode::<UsageRow>(v.value(), owner),
        None => Ok(UsageRow::default()),
    }
}

fn put(txn: &WriteTransaction, owner: UserId, row: &UsageRow) -> Result<(), Error> {
    put_in(&mut txn.open_table(USAGE).ctx("opening usage")?, owner, row)
}

/// [`put`] into the open `usage` table (a row of zeros is removed).
fn put_in(
    usage: &mut Table<u128, &'static [u8]>,
    owner: UserId,
    row: &UsageRow,
) -> Result<(), Error> {
    if *row == UsageRow::default() {
        usage.remove(owner.to_key()).ctx("writing usage")?;
    } else {
        let bytes = codec::encode(row)?;
        usage
            .insert(owner.to_key(), bytes.as_slice())
            .ctx("writing usage")?;
    }
    Ok(())
}

/// The limit that applies to `row`'s owner.
pub(crate) fn limit_of(row: &UsageRow, default: Option<u64>) -> Option<u64> {
    row.limit.or(default)
}

/// Adds a new blob of `bytes` to the owner's usage, or fails with
/// [`Error::QuotaExceeded`] having written nothing if that would pass the
/// owner's quota (a request error must come before any write of its
/// transaction).
pub(crate) fn charge(
    txn: &WriteTransaction,
    owner: UserId,
    bytes: u64,
    default: Option<u64>,
) -> Result<(), Error> {
    let mut row = get(txn, owner)?;
    if let Some(limit) = limit_of(&row, default)
        && row.stored_bytes.saturating_add(bytes) > limit
    {
        return Err(Error::QuotaExceeded {
            which: QuotaLimit::User(owner),
            limit,
            usage: row.stored_bytes,
            needed: bytes,
        });
    }
    row.stored_bytes = row.stored_bytes.saturating_add(bytes);
    row.blobs = row.blobs.saturating_add(1);
    put(txn, owner, &row)
}

/// Takes a removed blob of `bytes` off the owner's usage, in the open
/// `usage` table.
pub(crate) fn refund_in(
    usage: &mut Table<u128, &'static [u8]>,
    owner: UserId,
    bytes: u64,
) -> Result<(), Error> {
    let mut row = get_in(usage, owner)?;
    row.stored_bytes = row.stored_bytes.saturating_sub(bytes);
    row.blobs = row.blobs.saturating_sub(1);
    put_in(usage, owner, &row)
}

/// Sets or clears the owner's own quota; returns the row as written.
pub(crate) fn set_limit(
    txn: &WriteTransaction,
    owner: UserId,
    limit: Option<u64>,
) -> Result<UsageRow, Error> {
    crate::db::users::require_live(txn, owner)?;
    let mut row = get(txn, owner)?;
    row.limit = limit;
    put(txn, owner, &row)?;
    Ok(row)
}

/// The owner's usage counted from the blob rows themselves (bytes,
/// blobs): what the kept usage must equal.
pub(crate) fn recount(txn: &impl ReadTxn, owner: UserId) -> Result<(u64, u64), Error> {
    let by_owner = txn.table(BLOBS_BY_OWNER)?;
    let o = owner.to_key();
    let (mut bytes, mut blobs) = (0u64, 0u64);
    for entry in by_owner
        .range((o, [0u8; 32])..=(o, [0xff; 32]))
        .ctx("scanning blobs_by_owner")?
    {
        let address = BlobAddress(entry.ctx("scanning blobs_by_owner")?.0.value().1);
        if let Some(row) = get_row(txn, address)? {
            bytes = bytes.saturating_add(row.stored_bytes);
            blobs += 1;
        }
    }
    Ok((bytes, blobs))
}

/// Rebuilds every owner's usage from the blob rows (the schema 7 step,
/// and a verify's repair), keeping limits already set.
pub(crate) fn rebuild(txn: &WriteTransaction) -> Result<(), Error> {
    let mut totals: std::collections::BTreeMap<u128, (u64, u64)> = Default::default();
    {
        // Owners with a row and no blob left count nothing.
        let usage = txn.open_table(USAGE).ctx("opening usage")?;
        for entry in usage.iter().ctx("scanning usage")? {
            totals.insert(entry.ctx("scanning usage")?.0.value(), (0, 0));
        }
    }
    {
        let blobs = txn.open_table(BLOBS).ctx("opening blobs")?;
        for entry in blobs.iter().ctx("scanning blobs")? {
            let (k, v) = entry.ctx("scanning blobs")?;
            let address = BlobAddress(k.value());
            let row: crate::db::blobs::BlobRow = codec::decode(v.value(), address)?;
            let t = totals.entry(row.owner.to_key()).or_default();
            t.0 = t.0.saturating_add(row.stored_bytes);
            t.1 += 1;
        }
    }
    for (owner, (stored_bytes, blobs)) in totals {
        let owner = UserId::from_key(owner);
        let limit = get(txn, owner)?.limit;
        put(
            txn,
            owner,
            &UsageRow {
                stored_bytes,
                blobs,
                limit,
            },
        )?;
    }
    Ok(())
}
