//! Schema 10: personal fields sealed under their owners' record keys
//! (`db::sealing`): sessions' turns (session format 2, `db::session_row`),
//! profiles' personal fields (profile format 3, `db::profile_row`) and
//! users' display names (user format 4, `db::user_record`).
//!
//! Sealing needs the owners' keys, which are wrapped under the master key,
//! and the migration step runs at `Db::open`, before the keyring is loaded.
//! So the step only leaves a marker per table in `meta`
//! (`sessions_unsealed`, `profiles_unsealed`, `users_unsealed`: the id
//! the pass has reached), and the first open with the keys seals the plain rows
//! ([`seal_plain_rows`]) in small write transactions, each
//! moving the marker on: a crash resumes where it stopped. Until then the
//! plain rows are still read (`SessionRow` and `ProfileRow` read both
//! formats), and any
//! change to one writes it sealed. When the pass is done it removes the
//! marker and compacts `store.redb`, so that the plain bytes do not stay
//! in freed pages.
//!
//! A row whose owner is being erased (the whole user) is left as it is:
//! the erasure removes it.

use std::ops::Bound;

use redb::{ReadableTable, WriteTransaction};

use crate::db::Db;
use crate::db::profile_row::ProfileRow;
use crate::db::schema::{META, PROFILES, RECORD_KEYS, SESSIONS, USERS};
use crate::db::sealing::Sealer;
use crate::db::session_row::SessionRow;
use crate::db::user_record::UserRow;
use crate::error::{Error, StorageContext};
use crate::types::{SessionId, UserId};

/// What the pass seals, each with its `meta` marker: the id the pass has
/// reached in that table (`None`: from the start).
#[derive(Clone, Copy)]
enum Part {
    Sessions,
    Profiles,
    Users,
}

impl Part {
    const ALL: [Part; 3] = [Part::Sessions, Part::Profiles, Part::Users];

    fn marker(self) -> &'static str {
        match self {
            Part::Sessions => "sessions_unsealed",
            Part::Profiles => "profiles_unsealed",
            Part::Users => "users_unsealed",
        }
    }

    fn table(self) -> redb::TableDefinition<'static, u128, &'static [u8]> {
        match self {
            Part::Sessions => SESSIONS,
            Part::Profiles => PROFILES,
            Part::Users => USERS,
        }
    }
}

/// Rows read per write transaction of the pass.
const BATCH: usize = 256;

pub(super) fn to_v10(txn: &WriteTransaction) -> Result<(), Error> {
    txn.open_table(RECORD_KEYS).ctx("creating record_keys")?;
    for part in Part::ALL {
        let any = txn
            .open_table(part.table())
            .ctx("opening a table to seal")?
            .first()
            .ctx("reading a table to seal")?
            .is_some();
        if any {
            crate::db::set_meta(txn, part.marker(), &None::<u128>)?;
        }
    }
    Ok(())
}

/// Seals the sessions and profiles a migration to schema 10 left in
/// clear; the number of rows sealed. Nothing to do (0) once the markers
/// are gone, or read-only.
pub(crate) async fn seal_plain_rows(db: &Db) -> Result<u64, Error> {
    if db.is_read_only() {
        return Ok(0);
    }
    let mut sealed = 0u64;
    for part in Part::ALL {
        sealed += seal_part(db, part).await?;
    }
    if sealed > 0 {
        // The plain rows' bytes are in freed pages now: compaction gives
        // those pages back to the file system.
        db.compact().await?;
        tracing::info!(
            sealed,
            "sealed the personal fields of records stored before schema 10"
        );
    }
    Ok(sealed)
}

async fn seal_part(db: &Db, part: Part) -> Result<u64, Error> {
    let marker = part.marker();
    let Some(mut after) =
        db.read(|txn| crate::db::get_meta::<Option<u128>>(txn, marker, "seal marker"))?
    else {
        return Ok(0);
    };
    let sealer = db.sealer()?;
    let mut sealed = 0u64;
    loop {
        let sealer = sealer.clone();
        let (n, next) = db
            .write(move |txn| seal_batch(txn, &sealer, part, after))
            .await?;
        sealed += n;
        match next {
            Some(k) => after = Some(k),
            None => break,
        }
    }
    db.write(move |txn| {
        txn.open_table(META)
            .ctx("opening meta")?
            .remove(marker)
            .ctx("writing meta")?;
        Ok(())
    })
    .await?;
    Ok(sealed)
}

/// A stored row in clear, ready to be sealed.
enum Plain {
    Session(SessionRow),
    Profile(ProfileRow),
    User(UserRow),
}

/// Whether the whole user is being erased (their record key is gone on
/// purpose: their rows go with the erasure).
fn being_erased(txn: &WriteTransaction, owner: UserId) -> Result<bool, Error> {
    Ok(crate::db::erasures::get(txn, owner)?
        .is_some_and(|e| e.scope == crate::model::privacy::ErasureScope::User))
}

/// Seals the rows in clear among the next [`BATCH`] of `part` after
/// `after`; their number, and where the next batch starts (`None`: done).
fn seal_batch(
    txn: &WriteTransaction,
    sealer: &Sealer,
    part: Part,
    after: Option<u128>,
) -> Result<(u64, Option<u128>), Error> {
    let (plain, last, full) = {
        let table = txn
            .open_table(part.table())
            .ctx("opening a table to seal")?;
        let range = match after {
            Some(k) => table.range((Bound::Excluded(k), Bound::Unbounded)),
            None => table.range::<u128>(..),
        }
        .ctx("scanning a table to seal")?;
        let (mut plain, mut last, mut scanned) = (Vec::new(), None, 0usize);
        for row in range {
            let (k, v) = row.ctx("scanning a table to seal")?;
            let found = match part {
                Part::Sessions => {
                    let row = SessionRow::decode(v.value(), SessionId::from_key(k.value()))?;
                    (!row.is_sealed()).then(|| (row.head().user_id, Plain::Session(row)))
                }
                Part::Profiles => {
                    let owner = UserId::from_key(k.value());
                    let row = ProfileRow::decode(v.value(), owner)?;
                    (!row.is_sealed()).then_some((owner, Plain::Profile(row)))
                }
                Part::Users => {
                    let owner = UserId::from_key(k.value());
                    let row = crate::db::user_record::decode_row(v.value(), owner)?;
                    row.has_clear_name().then_some((owner, Plain::User(row)))
                }
            };
            plain.extend(found);
            last = Some(k.value());
            scanned += 1;
            if scanned == BATCH {
                break;
            }
        }
        (plain, last, scanned == BATCH)
    };
    let mut sealed = 0u64;
    for (owner, row) in plain {
        let key = match sealer.key(txn, owner) {
            Ok(key) => key,
            Err(Error::MissingKey { .. }) if !being_erased(txn, owner)? => {
                sealer.key_or_create(txn, owner)?
            }
            Err(Error::MissingKey { .. }) => continue,
            Err(e) => return Err(e),
        };
        match row {
            Plain::Session(row) => crate::db::sessions::write(
                &mut txn.open_table(SESSIONS).ctx("opening sessions")?,
                &row.open(&key)?,
                &key,
                None,
            )?,
            Plain::Profile(row) => crate::db::profiles::write(
                &mut txn.open_table(PROFILES).ctx("opening profiles")?,
                &row.open(&key)?,
                &key,
            )?,
            Plain::User(row) => crate::db::users_index::put_user(
                txn,
                &UserRow::sealed(row.user, Some(&key))?,
                None,
            )?,
        }
        sealed += 1;
    }
    let next = if full { last } else { None };
    crate::db::set_meta(txn, part.marker(), &next.or(last))?;
    Ok((sealed, next))
}
