//! Conversation sessions: turns kept as bounded context, activity and expiry.
//!
//! `sessions_by_user` is keyed (user, last active, session) so a user's
//! sessions come newest-active first from one reverse range scan;
//! `sessions_by_expiry` is keyed (expires at, session) so idle sessions come
//! from one forward scan. Both move when a session is touched and are
//! written in the same transaction as the row. Ended or soft-deleted
//! sessions leave the expiry index.

use redb::WriteTransaction;
use tracing::instrument;

use crate::db::Db;
use crate::db::opened::OpenedContexts;
use crate::db::schema::{SESSIONS, SESSIONS_BY_DELETED, SESSIONS_BY_EXPIRY, SESSIONS_BY_USER};
use crate::db::sealing::{RecordKey, Sealer};
use crate::db::session_row::{self, SessionRow};
use crate::db::users::require_live;
use crate::error::{Entity, Error, StorageContext};
use redb::ReadableTable;
use std::ops::Bound;

use crate::model::session::{ContextLimits, ConversationSession, Turn};
use crate::model::validate::{LanguageTag, check_text};
use crate::types::{SessionId, Timestamp, UserId};

/// Conversation sessions; from [`Store::sessions`](crate::Store::sessions).
///
/// ```
/// # use bharatvoice_store::*;
/// # #[tokio::main] async fn main() -> Result<(), Error> {
/// # let dir = tempfile::tempdir().unwrap();
/// # let store = Store::open(Config::new(dir.path())).await?;
/// let user = store.users().create(NewUser::new("arjun", "arjun@example.in")).await?;
/// let s = store.sessions().create(user.id, Some("hi-IN".parse()?)).await?;
/// store.sessions().append_turn(s.id, Turn::new(Role::User, "कल मौसम कैसा रहेगा?")).await?;
/// let s = store.sessions().append_turn(s.id, Turn::new(Role::Assistant, "कल धूप रहेगी।")).await?;
/// assert_eq!(s.turn_count, 2);
/// assert_eq!(store.sessions().list_for_user(user.id, 10).await?[0].id, s.id);
/// # Ok(()) }
/// ```
pub struct Sessions<'a> {
    pub(crate) db: &'a Db,
}

/// A session's key in `sessions_by_user` (also what verify expects).
pub(crate) fn user_key(s: &ConversationSession) -> (u128, i64, u128) {
    (
        s.user_id.to_key(),
        s.last_active_at.as_micros(),
        s.id.to_key(),
    )
}

/// A session's key in `sessions_by_expiry` (also what verify expects).
pub(crate) fn expiry_key(s: &ConversationSession) -> (i64, u128) {
    (s.expires_at.as_micros(), s.id.to_key())
}

/// The stored session `id`, decoded as far as its clear fields.
pub(crate) fn row(
    sessions: &impl ReadableTable<u128, &'static [u8]>,
    id: SessionId,
) -> Result<Option<SessionRow>, Error> {
    match sessions.get(id.to_key()).ctx("reading a session")? {
        Some(v) => SessionRow::decode(v.value(), id).map(Some),
        None => Ok(None),
    }
}

/// A stored session, opened with its owner's record key as `txn` sees it.
pub(crate) fn open(
    txn: &impl crate::db::txn::ReadTxn,
    sealer: &Sealer,
    row: SessionRow,
) -> Result<ConversationSession, Error> {
    let key = sealer.key(txn, row.head().user_id)?;
    row.open_with(&key, Some(sealer.opened()))
}

/// Writes a session, its context sealed under `key` (and the turns left
/// in `opened` as what the new row opens to).
pub(crate) fn write(
    sessions: &mut redb::Table<u128, &'static [u8]>,
    s: &ConversationSession,
    key: &RecordKey,
    opened: Option<&OpenedContexts>,
) -> Result<(), Error> {
    let bytes = session_row::encode_with(s, key, opened)?;
    sessions
        .insert(s.id.to_key(), bytes.as_slice())
        .ctx("writing a session")?;
    Ok(())
}

/// Loads a live session for change, applies `f`, and rewrites row and indexes.
pub(crate) fn modify(
    txn: &WriteTransaction,
    sealer: &Sealer,
    id: SessionId,
    now: Timestamp,
    f: impl FnOnce(&mut ConversationSession) -> Result<(), Error>,
) -> Result<ConversationSession, Error> {
    let mut sessions = txn.open_table(SESSIONS).ctx("opening sessions")?;
    let row = row(&sessions, id)?
        .filter(|r| r.head().deleted_at.is_none())
        .ok_or_else(|| Error::not_found(Entity::Session, id))?;
    let key = sealer.key_or_create(txn, row.head().user_id)?;
    let mut s = row.open_with(&key, Some(sealer.opened()))?;
    let (old_user_key, old_expiry_key, was_open) =
        (user_key(&s), expiry_key(&s), s.ended_at.is_none());
    f(&mut s)?;
    if let Some(at) = s.deleted_at {
        txn.open_table(SESSIONS_BY_DELETED)
            .ctx("opening sessions_by_deleted")?
            .insert((at.as_micros(), id.to_key()), ())
            .ctx("writing sessions_by_deleted")?;
    }
    s.updated_at = now;
    let mut by_user = txn
        .open_table(SESSIONS_BY_USER)
        .ctx("opening sessions_by_user")?;
    let mut by_expiry = txn
        .open_table(SESSIONS_BY_EXPIRY)
        .ctx("opening sessions_by_expiry")?;
    by_user
        .remove(old_user_key)
        .ctx("writing sessions_by_user")?;
    by_user
        .insert(user_key(&s), ())
        .ctx("writing sessions_by_user")?;
    if was_open {
        by_expiry
            .remove(old_expiry_key)
            .ctx("writing sessions_by_expiry")?;
    }
    if s.ended_at.is_none() && s.deleted_at.is_none() {
        by_expiry
            .insert(expiry_key(&s), ())
            .ctx("writing sessions_by_expiry")?;
    }
    write(&mut sessions, &s, &key, Some(sealer.opened()))?;
    Ok(s)
}

impl Sessions<'_> {
    /// Starts a session for a live user.
    #[instrument(skip(self, user), fields(user = %user))]
    pub async fn create(
        &self,
        user: UserId,
        language: Option<LanguageTag>,
    ) -> Result<ConversationSession, Error> {
        crate::telemetry::observe(
            &self.db.telemetry,
            crate::telemetry::op_key!("sessions.create"),
            async {
                let idle = self.db.settings.session_idle;
                let now = self.db.now();
                let sealer = self.db.sealer()?;
                self.db
                    .write(move |txn| {
                        require_live(txn, user)?;
                        let key = sealer.key_or_create(txn, user)?;
                        let s = ConversationSession {
                            id: SessionId::new(),
                            user_id: user,
                            language: language.clone(),
                            last_active_at: now,
                            expires_at: now.plus(idle),
                            ended_at: None,
                            turn_count: 0,
                            context: Vec::new(),
                            created_at: now,
                            updated_at: now,
                            deleted_at: None,
                        };
                        write(
                            &mut txn.open_table(SESSIONS).ctx("opening sessions")?,
                            &s,
                            &key,
                            Some(sealer.opened()),
                        )?;
                        txn.open_table(SESSIONS_BY_USER)
                            .ctx("opening sessions_by_user")?
                            .insert(user_key(&s), ())
                            .ctx("writing sessions_by_user")?;
                        txn.open_table(SESSIONS_BY_EXPIRY)
                            .ctx("opening sessions_by_expiry")?
                            .insert(expiry_key(&s), ())
                            .ctx("writing sessions_by_expiry")?;
                        Ok(s)
                    })
                    .await
            },
        )
        .await
    }

    /// A live session.
    #[instrument(level = "debug", skip(self, id), fields(session = %id))]
    pub fn get(&self, id: SessionId) -> Result<ConversationSession, Error> {
        crate::telemetry::observe_sync(
            &self.db.telemetry,
            crate::telemetry::op_key!("sessions.get"),
            || {
                let sealer = self.db.sealer()?;
                self.db.read(|txn| {
                    let sessions = txn.open_table(SESSIONS).ctx("opening sessions")?;
                    let row = row(&sessions, id)?
                        .filter(|r| r.head().deleted_at.is_none())
                        .ok_or_else(|| Error::not_found(Entity::Session, id))?;
                    open(txn, &sealer, row)
                })
            },
        )
    }

    /// Appends a turn; the context keeps the newest turns within the
    /// configured turns and bytes. A turn longer than the byte bound alone
    /// is refused. Appending to an ended session is refused.
    #[instrument(skip(self, turn, id), fields(session = %id))]
    pub async fn append_turn(
        &self,
        id: SessionId,
        turn: Turn,
    ) -> Result<ConversationSession, Error> {
        crate::telemetry::observe(
            &self.db.telemetry,
            crate::telemetry::op_key!("sessions.append_turn"),
            async {
                let limits = self.db.settings.context;
                let idle = self.db.settings.session_idle;
                check_text("turn", &turn.text)?;
                if turn.text.len() > limits.max_bytes {
                    return Err(Error::invalid(
                        "turn",
                        format!(
                            "{} bytes exceeds the context bound of {} bytes",
                            turn.text.len(),
                            limits.max_bytes
                        ),
                    ));
                }
                let now = self.db.now();
                let sealer = self.db.sealer()?;
                self.db
                    .write(move |txn| {
                        let turn = turn.clone();
                        modify(txn, &sealer, id, now, |s| {
                            if s.ended_at.is_some() {
                                return Err(Error::invalid("session", format!("{id} has ended")));
                            }
                            s.context.push(turn);
                            limits.trim(&mut s.context);
                            s.turn_count += 1;
                            s.last_active_at = now;
                            s.expires_at = now.plus(idle);
                            Ok(())
                        })
                    })
                    .await
            },
        )
        .await
    }

    /// Marks a session active now, pushing its expiry out.
    #[instrument(skip(self, id), fields(session = %id))]
    pub async fn touch(&self, id: SessionId) -> Result<ConversationSession, Error> {
        crate::telemetry::observe(
            &self.db.telemetry,
            crate::telemetry::op_key!("sessions.touch"),
            async {
                let idle = self.db.settings.session_idle;
                let now = self.db.now();
                let sealer = self.db.sealer()?;
                self.db
                    .write(move |txn| {
                        modify(txn, &sealer, id, now, |s| {
                            s.last_active_at = now;
                            if s.ended_at.is_none() {
                                s.expires_at = now.plus(idle);
                            }
                            Ok(())
                        })
                    })
                    .await
            },
        )
        .await
    }

    /// Ends a session (it keeps its context; it no longer expires).
    #[instrument(skip(self, id), fields(session = %id))]
    pub async fn end(&self, id: SessionId) -> Result<ConversationSession, Error> {
        crate::telemetry::observe(
            &self.db.telemetry,
            crate::telemetry::op_key!("sessions.end"),
            async {
                let now = self.db.now();
                let sealer = self.db.sealer()?;
                self.db
                    .write(move |txn| {
                        modify(txn, &sealer, id, now, |s| {
                            s.ended_at.get_or_insert(now);
                            Ok(())
                        })
                    })
                    .await
            },
        )
        .await
    }

    /// Soft-deletes a session.
    #[instrument(skip(self, id), fields(session = %id))]
    pub async fn delete(&self, id: SessionId) -> Result<ConversationSession, Error> {
        crate::telemetry::observe(
            &self.db.telemetry,
            crate::telemetry::op_key!("sessions.delete"),
            async {
                let now = self.db.now();
                let sealer = self.db.sealer()?;
                self.db
                    .write(move |txn| {
                        modify(txn, &sealer, id, now, |s| {
                            s.deleted_at = Some(now);
                            Ok(())
                        })
                    })
                    .await
            },
        )
        .await
    }

    /// A user's live sessions, most recently active first.
    #[instrument(skip(self, user), fields(user = %user))]
    pub async fn list_for_user(
        &self,
        user: UserId,
        limit: usize,
    ) -> Result<Vec<ConversationSession>, Error> {
        crate::telemetry::observe(
            &self.db.telemetry,
            crate::telemetry::op_key!("sessions.list_for_user"),
            async {
                let limit = crate::types::ListOptions::first(limit).effective_limit();
                let sealer = self.db.sealer()?;
                self.db
                    .list(limit, move |txn| {
                        let by_user = txn
                            .open_table(SESSIONS_BY_USER)
                            .ctx("opening sessions_by_user")?;
                        let sessions = txn.open_table(SESSIONS).ctx("opening sessions")?;
                        let u = user.to_key();
                        let mut out = Vec::with_capacity(limit.min(64));
                        for row in by_user
                            .range((u, i64::MIN, 0)..=(u, i64::MAX, u128::MAX))
                            .ctx("listing sessions")?
                            .rev()
                        {
                            let id = SessionId::from_key(row.ctx("listing sessions")?.0.value().2);
                            let s = self::row(&sessions, id)?.ok_or_else(|| {
                                Error::corrupt(
                                    "sessions_by_user",
                                    format!("points to missing session {id}"),
                                )
                            })?;
                            if s.head().deleted_at.is_none() {
                                out.push(open(txn, &sealer, s)?);
                                if out.len() == limit {
                                    break;
                                }
                            }
                        }
                        Ok(out)
                    })
                    .await
            },
        )
        .await
    }

    /// Open sessions whose expiry is at or before `now`, oldest expiry first.
    #[instrument(skip(self))]
    pub async fn find_expired(
        &self,
        now: Timestamp,
        limit: usize,
    ) -> Result<Vec<ConversationSession>, Error> {
        crate::telemetry::observe(
            &self.db.telemetry,
            crate::telemetry::op_key!("sessions.find_expired"),
            async {
                let limit = crate::types::ListOptions::first(limit).effective_limit();
                let sealer = self.db.sealer()?;
                self.db
                    .scan(move |txn| {
                        let by_expiry = txn
                            .open_table(SESSIONS_BY_EXPIRY)
                            .ctx("opening sessions_by_expiry")?;
                        let sessions = txn.open_table(SESSIONS).ctx("opening sessions")?;
                        let mut out = Vec::new();
                        for row in by_expiry
                            .range(..=(now.as_micros(), u128::MAX))
                            .ctx("scanning expiry")?
                        {
                            let id = SessionId::from_key(row.ctx("scanning expiry")?.0.value().1);
                            let s = self::row(&sessions, id)?.ok_or_else(|| {
                                Error::corrupt(
                                    "sessions_by_expiry",
                                    format!("points to missing session {id}"),
                                )
                            })?;
                            out.push(open(txn, &sealer, s)?);
                            if out.len() == limit {
                                break;
                            }
                        }
                        Ok(out)
                    })
                    .await
            },
        )
        .await
    }
}

/// Sessions over the context limits, with the turns each must drop.
pub(crate) type OverLimits = Vec<(SessionId, u64)>;

/// Up to `limit` sessions after `after` in id order, for the context-trim
/// job: the live ones whose context passes `limits`, and the key the next
/// batch starts after (`None`: the table is done).
pub(crate) fn over_limits(
    txn: &redb::ReadTransaction,
    sealer: &Sealer,
    after: Option<u128>,
    limit: usize,
    limits: ContextLimits,
) -> Result<(OverLimits, Option<u128>), Error> {
    let sessions = txn.open_table(SESSIONS).ctx("opening sessions")?;
    let range = match after {
        Some(k) => sessions.range((Bound::Excluded(k), Bound::Unbounded)),
        None => sessions.range::<u128>(..),
    }
    .ctx("scanning sessions")?;
    let (mut over, mut scanned) = (Vec::new(), 0usize);
    for row in range {
        let (k, v) = row.ctx("scanning sessions")?;
        let id = SessionId::from_key(k.value());
        let s = SessionRow::decode(v.value(), id)?;
        scanned += 1;
        if s.head().deleted_at.is_none() && s.may_exceed(limits) {
            // An owner being erased has no keys left: its sessions go
            // with the erasure, not here.
            match open(txn, sealer, s) {
                Ok(s) => {
                    let dropped = limits.excess(&s.context);
                    if dropped > 0 {
                        over.push((id, dropped as u64));
                    }
                }
                Err(Error::MissingKey { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        if scanned == limit {
            return Ok((over, Some(k.value())));
        }
    }
    Ok((over, None))
}

/// Trims a live session's context to `limits`; the turns dropped (0: it
/// fits, or it is gone or deleted since the batch was read).
pub(crate) fn trim_context(
    txn: &WriteTransaction,
    sealer: &Sealer,
    id: SessionId,
    limits: ContextLimits,
    now: Timestamp,
) -> Result<u64, Error> {
    let current = row(&txn.open_table(SESSIONS).ctx("opening sessions")?, id)?;
    let Some(s) = current.filter(|s| s.head().deleted_at.is_none()) else {
        return Ok(0);
    };
    let s = open(txn, sealer, s)?;
    let dropped = limits.excess(&s.context);
    if dropped > 0 {
        modify(txn, sealer, id, now, |s| {
            limits.trim(&mut s.context);
            Ok(())
        })?;
    }
    Ok(dropped as u64)
}
