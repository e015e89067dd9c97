//! Schema 6 to 7: each owner's storage usage is kept in a table of its
//! own (for quotas), counted once here from the blob rows.
//!
//! The blob row has been format 1 since schema 3, so today's type reads
//! it.

use redb::WriteTransaction;

use crate::error::Error;

pub(super) fn v6_to_v7(txn: &WriteTransaction) -> Result<(), Error> {
    crate::db::usage::rebuild(txn)
}
