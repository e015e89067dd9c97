//! Erasures of a user's data: the `erasures` table (one row per user,
//! holding no personal data) and the steps that remove what the store
//! holds about the user, each in its own small transaction.
//!
//! An erasure is a row first: scheduled when audio-storage consent is
//! withdrawn (due after the notice period) or asked for (due now). Its
//! first step destroys the user's key row, every key-encryption key and
//! the address key, in one transaction with the row's move to
//! `KeysDestroyed`: from that commit on, nothing sealed under them opens,
//! even with the master key. The later steps remove records in batches
//! and may be cut off anywhere; each re-reads what is left, so a store
//! reopened mid-way simply goes on (`privacy::erase`).

use redb::{ReadableTable, WriteTransaction};

use crate::db::codec::{self, Record};
use crate::db::lifecycle::{FilePurge, remove_file, remove_session, session};
use crate::db::schema::{
    BLOBS_BY_OWNER, CREDENTIALS, ERASURES, FILES_BY_OWNER, GRANTS, PROFILES, SESSIONS_BY_USER,
    USAGE,
};
use crate::db::txn::ReadTxn;
use crate::db::users_index::{UserTables, put_user};
use crate::error::{Error, StorageContext};
use crate::model::privacy::{Erasure, ErasureScope, ErasureStage, PrivacyEvent};
use crate::types::{BlobAddress, FileId, SessionId, Timestamp, UserId};

impl Record for Erasure {
    codec::stored_as_is!("erasure", 1);
}

/// The erasure row of a user, if any.
pub(crate) fn get(txn: &impl ReadTxn, user: UserId) -> Result<Option<Erasure>, Error> {
    crate::db::get_record(&txn.table(ERASURES)?, user.to_key(), user)
}

fn put(txn: &WriteTransaction, e: &Erasure) -> Result<(), Error> {
    let mut t = txn.open_table(ERASURES).ctx("opening erasures")?;
    crate::db::put_record(&mut t, e.user.to_key(), e)
}

fn remove(txn: &WriteTransaction, user: UserId) -> Result<(), Error> {
    txn.open_table(ERASURES)
        .ctx("opening erasures")?
        .remove(user.to_key())
        .ctx("writing erasures")?;
    Ok(())
}

/// Every erasure row, in user order.
pub(crate) fn all(txn: &impl ReadTxn) -> Result<Vec<Erasure>, Error> {
    let t = txn.table(ERASURES)?;
    let mut out = Vec::new();
    for row in t.iter().ctx("reading erasures")? {
        let (k, v) = row.ctx("reading erasures")?;
        let user = UserId::from_key(k.value());
        out.push(codec::decode::<Erasure>(v.value(), user)?);
    }
    Ok(out)
}

/// What an audio-storage consent change does to the user's erasures, in
/// the transaction that records it: a withdrawal schedules an audio
/// erasure due after `notice` (unless one is under way), giving it back
/// cancels one not yet started.
pub(crate) fn audio_consent_changed(
    txn: &WriteTransaction,
    user: UserId,
    granted: bool,
    now: Timestamp,
    notice: std::time::Duration,
) -> Result<Option<PrivacyEvent>, Error> {
    let existing = get(txn, user)?;
    match (granted, existing) {
        (false, None) => {
            let due = now.plus(notice);
            put(
                txn,
                &Erasure {
                    user,
                    scope: ErasureScope::Audio,
                    stage: ErasureStage::Scheduled,
                    requested_at: now,
                    due,
                    keys_destroyed_at: None,
                    done_at: None,
                },
            )?;
            Ok(Some(PrivacyEvent::ErasureScheduled {
                user,
                scope: ErasureScope::Audio,
                due,
            }))
        }
        (true, Some(e)) if e.scope == ErasureScope::Audio && e.stage == ErasureStage::Scheduled => {
            remove(txn, user)?;
            Ok(Some(PrivacyEvent::ErasureCancelled { user }))
        }
        _ => Ok(None),
    }
}

/// Records a request to erase everything of `user` (due now), or finds
/// the one already made. `NotFound` for a user the store never had (or
/// has no trace of).
pub(crate) fn request_user(
    txn: &WriteTransaction,
    user: UserId,
    now: Timestamp,
) -> Result<(Erasure, bool), Error> {
    let existing = get(txn, user)?;
    if let Some(e) = &existing
        && e.scope == ErasureScope::User
    {
        return Ok((e.clone(), false));
    }
    let users = txn
        .open_table(crate::db::schema::USERS)
        .ctx("opening users")?;
    crate::db::users::load(&users, user)?;
    drop(users);
    let e = match existing {
        // An audio erasure under way becomes the whole user's.
        Some(mut e) if e.stage == ErasureStage::KeysDestroyed => {
            e.scope = ErasureScope::User;
            e
        }
        _ => Erasure {
            user,
            scope: ErasureScope::User,
            stage: ErasureStage::Scheduled,
            requested_at: now,
            due: now,
            keys_destroyed_at: None,
            done_at: None,
        },
    };
    put(txn, &e)?;
    Ok((e, true))
}

/// The first step: destroys the user's key row with the row's move to
/// `KeysDestroyed`; a user erasure also hides the user (soft delete) and
/// drops the password hash. Returns the row as it now stands (`None`:
/// no erasure, or not yet due).
pub(crate) fn destroy_keys(
    txn: &WriteTransaction,
    user: UserId,
    now: Timestamp,
) -> Result<Option<Erasure>, Error> {
    let Some(mut e) = get(txn, user)? else {
        return Ok(None);
    };
    if e.stage != ErasureStage::Scheduled {
        return Ok(Some(e));
    }
    if e.due > now {
        return Ok(None);
    }
    crate::db::keys::destroy(txn, user)?;
    count_destruction(txn)?;
    if e.scope == ErasureScope::User {
        // Their sessions' turns (and every other sealed field) too.
        crate::db::keys::destroy_record_key(txn, user)?;
        txn.open_table(CREDENTIALS)
            .ctx("opening credentials")?
            .remove(user.to_key())
            .ctx("writing credentials")?;
        let users = txn
            .open_table(crate::db::schema::USERS)
            .ctx("opening users")?;
        let found = crate::db::users::load_row(&users, user);
        drop(users);
        // The display name moves as it is stored (sealed under the record
        // key destroyed above).
        if let Ok(mut row) = found
            && row.user.deleted_at.is_none()
        {
            let u = &mut row.user;
            u.deleted_at = Some(now);
            u.updated_at = now;
            u.has_password = false;
            put_user(txn, &row, None)?;
        }
    }
    e.stage = ErasureStage::KeysDestroyed;
    e.keys_destroyed_at = Some(now);
    put(txn, &e)?;
    Ok(Some(e))
}

/// `meta`'s count of key destructions: a backup takes a new metadata base
/// after one, so that no chain of deltas keeps an erased user's key in an
/// old base (`ops::backup::file_copy`).
const KEYS_DESTROYED: &str = "keys_destroyed";

fn count_destruction(txn: &WriteTransaction) -> Result<(), Error> {
    let n = destructions(txn)?;
    crate::db::set_meta(txn, KEYS_DESTROYED, &n.saturating_add(1))
}

/// How many times keys were destroyed by an erasure, ever.
pub(crate) fn destructions(txn: &impl ReadTxn) -> Result<u64, Error> {
    Ok(crate::db::get_meta(txn, KEYS_DESTROYED, "the count of key destructions")?.unwrap_or(0))
}

/// Up to `limit` of the owner's file records (live or soft-deleted).
pub(crate) fn files_of(
    txn: &impl ReadTxn,
    owner: UserId,
    limit: usize,
) -> Result<Vec<FileId>, Error> {
    let k = owner.to_key();
    let t = txn.table(FILES_BY_OWNER)?;
    let mut out = Vec::new();
    for row in t
        .range((k, 0)..=(k, u128::MAX))
        .ctx("reading files_by_owner")?
    {
        out.push(FileId::from_key(
            row.ctx("reading files_by_owner")?.0.value().1,
        ));
        if out.len() == limit {
            break;
        }
    }
    Ok(out)
}

/// Removes the owner's files among `ids` (each with its index entries and
/// grants) and releases their blobs: the addresses whose rows went.
pub(crate) fn erase_files(
    txn: &WriteTransaction,
    owner: UserId,
    ids: &[FileId],
) -> Result<(u64, Vec<(BlobAddress, u64)>), Error> {
    let (mut removed, mut freed) = (0, Vec::new());
    for id in ids {
        let Some(f) = crate::db::files::get(txn, *id)?.filter(|f| f.owner == owner) else {
            // An index entry without its record (a damaged store): drop
            // it, or every step would find it again.
            txn.open_table(FILES_BY_OWNER)
                .ctx("opening files_by_owner")?
                .remove((owner.to_key(), id.to_key()))
                .ctx("writing files_by_owner")?;
            continue;
        };
        removed += 1;
        if let FilePurge::RemovedWithBlob(address, row) = remove_file(txn, &f)? {
            freed.push((address, row.stored_bytes));
        }
    }
    Ok((removed, freed))
}

/// Up to `limit` blob rows of the owner that no file names any more (a
/// damaged store's leftovers): their addresses.
pub(crate) fn blobs_of(
    txn: &impl ReadTxn,
    owner: UserId,
    limit: usize,
) -> Result<Vec<BlobAddress>, Error> {
    let k = owner.to_key();
    let t = txn.table(BLOBS_BY_OWNER)?;
    let mut out = Vec::new();
    for row in t
        .range((k, [0u8; 32])..=(k, [0xff; 32]))
        .ctx("reading blobs_by_owner")?
    {
        out.push(BlobAddress(row.ctx("reading blobs_by_owner")?.0.value().1));
        if out.len() == limit {
            break;
        }
    }
    Ok(out)
}

/// Drops blob rows of the owner whatever their reference counts (the
/// files naming them are gone), refunding their bytes; an index entry
/// without its row goes too. The addresses whose files are to go.
pub(crate) fn drop_blobs(
    txn: &WriteTransaction,
    owner: UserId,
    addresses: &[BlobAddress],
) -> Result<Vec<BlobAddress>, Error> {
    for a in addresses {
        match crate::db::blobs::get_row(txn, *a)? {
            Some(row) if row.owner == owner => {
                crate::db::lifecycle::drop_blob_row(txn, *a, &row)?;
            }
            _ => {
                txn.open_table(BLOBS_BY_OWNER)
                    .ctx("opening blobs_by_owner")?
                    .remove((owner.to_key(), a.0))
                    .ctx("writing blobs_by_owner")?;
            }
        }
    }
    Ok(addresses.to_vec())
}

/// Up to `limit` of the user's sessions (live or soft-deleted).
pub(crate) fn sessions_of(
    txn: &impl ReadTxn,
    user: UserId,
    limit: usize,
) -> Result<Vec<SessionId>, Error> {
    let k = user.to_key();
    let t = txn.table(SESSIONS_BY_USER)?;
    let mut out = Vec::new();
    for row in t
        .range((k, i64::MIN, 0)..=(k, i64::MAX, u128::MAX))
        .ctx("reading sessions_by_user")?
    {
        out.push(SessionId::from_key(
            row.ctx("reading sessions_by_user")?.0.value().2,
        ));
        if out.len() == limit {
            break;
        }
    }
    Ok(out)
}

/// Removes the user's sessions among `ids` with their index entries.
pub(crate) fn erase_sessions(
    txn: &WriteTransaction,
    user: UserId,
    ids: &[SessionId],
) -> Result<u64, Error> {
    let mut n = 0;
    for id in ids {
        match session(txn, *id)? {
            Some(s) if s.user_id == user => {
                remove_session(txn, &s)?;
                n += 1;
            }
            // An index entry without its record (a damaged store): drop
            // it, or every step would find it again.
            _ => drop_session_entries(txn, user, *id)?,
        }
    }
    Ok(n)
}

/// Removes the user's `sessions_by_user` entries naming `id`.
fn drop_session_entries(txn: &WriteTransaction, user: UserId, id: SessionId) -> Result<(), Error> {
    let k = user.to_key();
    let mut t = txn
        .open_table(SESSIONS_BY_USER)
        .ctx("opening sessions_by_user")?;
    let stale: Vec<(u128, i64, u128)> = t
        .range((k, i64::MIN, 0)..=(k, i64::MAX, u128::MAX))
        .ctx("reading sessions_by_user")?
        .filter_map(|row| row.ok().map(|(key, _)| key.value()))
        .filter(|key| key.2 == id.to_key())
        .collect();
    for key in stale {
        t.remove(key).ctx("writing sessions_by_user")?;
    }
    Ok(())
}

/// Removes up to `limit` grants others gave the user (a scan: grants are
/// keyed by file); the number removed.
pub(crate) fn erase_grants_received(
    txn: &WriteTransaction,
    user: UserId,
    limit: usize,
) -> Result<u64, Error> {
    let k = user.to_key();
    let mut grants = txn.open_table(GRANTS).ctx("opening grants")?;
    let mut n = 0u64;
    let removed = grants
        .extract_if(|(_, grantee), _| {
            let take = grantee == k && (n as usize) < limit;
            n += u64::from(take);
            take
        })
        .ctx("writing grants")?;
    removed.for_each(drop);
    Ok(n)
}

/// The last step of a user erasure: the profile, the usage row, the
/// password hash and the account (with both index entries) go, and the
/// erasure row is marked done; for an audio erasure the row goes.
pub(crate) fn finish(txn: &WriteTransaction, user: UserId, now: Timestamp) -> Result<(), Error> {
    let Some(mut e) = get(txn, user)? else {
        return Ok(());
    };
    if e.scope == ErasureScope::Audio {
        return remove(txn, user);
    }
    let k = user.to_key();
    // A put or a session write that began before the first step may
    // have made a key row or a record key.
    crate::db::keys::destroy(txn, user)?;
    crate::db::keys::destroy_record_key(txn, user)?;
    for (def, what) in [(PROFILES, "profiles"), (USAGE, "usage")] {
        txn.open_table(def).ctx(what)?.remove(k).ctx(what)?;
    }
    txn.open_table(CREDENTIALS)
        .ctx("opening credentials")?
        .remove(k)
        .ctx("writing credentials")?;
    let mut t = UserTables::open(txn)?;
    if let Ok(u) = crate::db::users::load(&t.users, user) {
        t.by_username
            .remove(u.username.as_str())
            .ctx("writing user_records_by_username")?;
        t.by_email
            .remove(u.email.as_str())
            .ctx("writing user_records_by_email")?;
    }
    t.users.remove(k).ctx("writing users")?;
    drop(t);
    e.stage = ErasureStage::Done;
    e.done_at = Some(now);
    put(txn, &e)
}
