//! The sessions half of `verify` (fsck): every session row decodes as far
//! as its clear fields, and the three session indexes hold exactly the
//! entries the rows call for, both ways:
//!
//! * `sessions_by_user`: (owner, last active, id) for every session;
//! * `sessions_by_expiry`: (expiry, id) for every session neither ended
//!   nor deleted (what the idle-expiry pass walks);
//! * `sessions_by_deleted`: (deletion time, id) for every deleted session
//!   (what the purge walks).
//!
//! An entry whose row does not decode is left alone by the check and by
//! the repair: the row is reported, and the erasure still finds the
//! session through `sessions_by_user`.

use redb::{ReadTransaction, ReadableTable, WriteTransaction};

use crate::db::schema::{SESSIONS, SESSIONS_BY_DELETED, SESSIONS_BY_EXPIRY, SESSIONS_BY_USER};
use crate::db::session_row::SessionRow;
use crate::db::txn::ReadTxn;
use crate::db::verify::{MetaScan, Problem, ProblemKind};
use crate::error::{Error, StorageContext};
use crate::model::session::ConversationSession;
use crate::types::SessionId;

/// An entry of one of the session indexes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Entry {
    User(u128, i64, u128),
    Expiry(i64, u128),
    Deleted(i64, u128),
}

impl Entry {
    fn table(&self) -> &'static str {
        match self {
            Entry::User(..) => "sessions_by_user",
            Entry::Expiry(..) => "sessions_by_expiry",
            Entry::Deleted(..) => "sessions_by_deleted",
        }
    }

    fn session(&self) -> u128 {
        match *self {
            Entry::User(_, _, id) | Entry::Expiry(_, id) | Entry::Deleted(_, id) => id,
        }
    }

    fn missing(&self) -> &'static str {
        match self {
            Entry::User(..) => "the session is not in its user's index",
            Entry::Expiry(..) => "the open session is not in the expiry index",
            Entry::Deleted(..) => "the deleted session is not in the deletion index",
        }
    }

    fn problem(&self, kind: ProblemKind, detail: &str) -> Problem {
        Problem::new(
            kind,
            format!(
                "{} session {}",
                self.table(),
                SessionId::from_key(self.session())
            ),
            detail,
        )
    }
}

/// The entries a session's clear fields call for.
fn entries(s: &ConversationSession) -> Vec<Entry> {
    use crate::db::sessions::{expiry_key, user_key};
    let (u, active, id) = user_key(s);
    let mut out = vec![Entry::User(u, active, id)];
    match s.deleted_at {
        Some(at) => out.push(Entry::Deleted(at.as_micros(), id)),
        None if s.ended_at.is_none() => {
            let (at, id) = expiry_key(s);
            out.push(Entry::Expiry(at, id));
        }
        None => {}
    }
    out
}

/// The clear fields of the session stored under `id`: `Ok(None)` if there
/// is no row, `Err(())` if it does not decode.
fn head(
    table: &impl ReadableTable<u128, &'static [u8]>,
    id: u128,
) -> Result<Result<Option<ConversationSession>, ()>, Error> {
    Ok(match table.get(id).ctx("reading sessions")? {
        None => Ok(None),
        Some(v) => SessionRow::decode(v.value(), SessionId::from_key(id))
            .map(|r| Some(r.into_head()))
            .map_err(|_| ()),
    })
}

/// Whether `e` is an entry its row does not call for (the row is gone,
/// or says otherwise); `false` when the row does not decode.
fn stray(table: &impl ReadableTable<u128, &'static [u8]>, e: Entry) -> Result<bool, Error> {
    Ok(match head(table, e.session())? {
        Ok(Some(s)) => !entries(&s).contains(&e),
        Ok(None) => true,
        Err(()) => false,
    })
}

/// Every entry of the three indexes.
fn each_entry(
    txn: &impl ReadTxn,
    mut f: impl FnMut(Entry) -> Result<(), Error>,
) -> Result<(), Error> {
    let scanning = "scanning a session index";
    for e in txn.table(SESSIONS_BY_USER)?.iter().ctx(scanning)? {
        let (u, at, id) = e.ctx(scanning)?.0.value();
        f(Entry::User(u, at, id))?;
    }
    for (def, deleted) in [(SESSIONS_BY_EXPIRY, false), (SESSIONS_BY_DELETED, true)] {
        for e in txn.table(def)?.iter().ctx(scanning)? {
            let (at, id) = e.ctx(scanning)?.0.value();
            f(match deleted {
                false => Entry::Expiry(at, id),
                true => Entry::Deleted(at, id),
            })?;
        }
    }
    Ok(())
}

/// Checks every session row and the three session indexes.
pub(crate) fn check(txn: &ReadTransaction, s: &mut MetaScan) -> Result<(), Error> {
    let table = txn.open_table(SESSIONS).ctx("opening sessions")?;
    let by_user = txn
        .open_table(SESSIONS_BY_USER)
        .ctx("opening sessions_by_user")?;
    let by_expiry = txn
        .open_table(SESSIONS_BY_EXPIRY)
        .ctx("opening sessions_by_expiry")?;
    let by_deleted = txn
        .open_table(SESSIONS_BY_DELETED)
        .ctx("opening sessions_by_deleted")?;
    for row in table.iter().ctx("scanning sessions")? {
        let (k, v) = row.ctx("scanning sessions")?;
        let id = SessionId::from_key(k.value());
        s.sessions += 1;
        let session = match SessionRow::decode(v.value(), id) {
            Ok(r) => r.into_head(),
            Err(e) => {
                s.problems.push(Problem::new(
                    ProblemKind::Undecodable,
                    format!("session {id}"),
                    e.to_string(),
                ));
                continue;
            }
        };
        for e in entries(&session) {
            let found = match e {
                Entry::User(u, at, id) => by_user.get((u, at, id)),
                Entry::Expiry(at, id) => by_expiry.get((at, id)),
                Entry::Deleted(at, id) => by_deleted.get((at, id)),
            };
            if found.ctx("reading a session index")?.is_none() {
                s.problems
                    .push(e.problem(ProblemKind::MissingIndexEntry, e.missing()));
            }
        }
    }
    each_entry(txn, |e| {
        s.index_entries += 1;
        if stray(&table, e)? {
            s.problems.push(e.problem(
                ProblemKind::DanglingIndexEntry,
                "no session row that calls for this entry",
            ));
        }
        Ok(())
    })
}

/// Repairs the three session indexes from the rows: entries no row calls
/// for are removed, and every row that decodes gets its entries. Entries
/// of rows that do not decode are kept.
pub(crate) fn repair(txn: &WriteTransaction) -> Result<(), Error> {
    let mut remove = Vec::new();
    let mut add = Vec::new();
    {
        let table = txn.table(SESSIONS)?;
        each_entry(txn, |e| {
            if stray(&table, e)? {
                remove.push(e);
            }
            Ok(())
        })?;
        for row in table.iter().ctx("scanning sessions")? {
            let (k, v) = row.ctx("scanning sessions")?;
            if let Ok(r) = SessionRow::decode(v.value(), SessionId::from_key(k.value())) {
                add.extend(entries(r.head()));
            }
        }
    }
    let mut by_user = txn
        .open_table(SESSIONS_BY_USER)
        .ctx("opening sessions_by_user")?;
    let mut by_expiry = txn
        .open_table(SESSIONS_BY_EXPIRY)
        .ctx("opening sessions_by_expiry")?;
    let mut by_deleted = txn
        .open_table(SESSIONS_BY_DELETED)
        .ctx("opening sessions_by_deleted")?;
    let writing = "writing a session index";
    for e in remove {
        match e {
            Entry::User(u, at, id) => by_user.remove((u, at, id)).ctx(writing).map(drop)?,
            Entry::Expiry(at, id) => by_expiry.remove((at, id)).ctx(writing).map(drop)?,
            Entry::Deleted(at, id) => by_deleted.remove((at, id)).ctx(writing).map(drop)?,
        }
    }
    for e in add {
        match e {
            Entry::User(u, at, id) => by_user.insert((u, at, id), ()).ctx(writing).map(drop)?,
            Entry::Expiry(at, id) => by_expiry.insert((at, id), ()).ctx(writing).map(drop)?,
            Entry::Deleted(at, id) => by_deleted.insert((at, id), ()).ctx(writing).map(drop)?,
        }
    }
    Ok(())
}
