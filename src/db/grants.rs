//! Grants: which users may read a file besides its owner. Keyed by
//! (file, grantee), so a file's grantees are one range.

use redb::{ReadableTable, WriteTransaction};

use crate::db::schema::GRANTS;
use crate::db::txn::ReadTxn;
use crate::error::{Error, StorageContext};
use crate::types::{FileId, UserId};

/// Whether `file` is granted to `user`.
pub(crate) fn is_granted(txn: &impl ReadTxn, file: FileId, user: UserId) -> Result<bool, Error> {
    Ok(txn
        .table(GRANTS)?
        .get((file.to_key(), user.to_key()))
        .ctx("reading grants")?
        .is_some())
}

/// Grants `file` to `user` (the user is checked by the caller).
pub(crate) fn grant(txn: &WriteTransaction, file: FileId, user: UserId) -> Result<(), Error> {
    txn.open_table(GRANTS)
        .ctx("opening grants")?
        .insert((file.to_key(), user.to_key()), ())
        .ctx("writing grants")?;
    Ok(())
}

/// Takes back a grant; an absent one is a no-op.
pub(crate) fn revoke(txn: &WriteTransaction, file: FileId, user: UserId) -> Result<(), Error> {
    txn.open_table(GRANTS)
        .ctx("opening grants")?
        .remove((file.to_key(), user.to_key()))
        .ctx("writing grants")?;
    Ok(())
}

/// The users `file` is granted to, in id order.
pub(crate) fn grantees(txn: &impl ReadTxn, file: FileId) -> Result<Vec<UserId>, Error> {
    let grants = txn.table(GRANTS)?;
    let k = file.to_key();
    let mut out = Vec::new();
    for row in grants
        .range((k, 0)..=(k, u128::MAX))
        .ctx("reading grants")?
    {
        out.push(UserId::from_key(row.ctx("reading grants")?.0.value().1));
    }
    Ok(out)
}

/// The files granted to `user`, in file order: a scan of every grant
/// (the table is keyed by file first), for a user's privacy summary.
pub(crate) fn granted_to(txn: &impl ReadTxn, user: UserId) -> Result<Vec<FileId>, Error> {
    let grants = txn.table(GRANTS)?;
    let k = user.to_key();
    let mut out = Vec::new();
    for row in grants.iter().ctx("reading grants")? {
        let (file, grantee) = row.ctx("reading grants")?.0.value();
        if grantee == k {
            out.push(FileId::from_key(file));
        }
    }
    Ok(out)
}
