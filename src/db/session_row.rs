//! The stored shape of a conversation session, with its turns sealed.
//!
//! Format 2 (schema 10) is format 1 (`db::records::SessionV1`) with the
//! context (the turns: what a person said to the assistant) sealed under
//! the owner's record key (`db::sealing`). Everything the indexes, the
//! expiry and the purge need (owner, times, turn count) stays in clear, so
//! they work without the key, and an erased user's sessions can still be
//! removed once their keys are gone.
//!
//! ```text
//! | 2 | postcard(id, user_id, language, last_active_at, expires_at, ended_at,
//!               turn_count, sealed(postcard(context)), created_at,
//!               updated_at, deleted_at) |
//! ```
//!
//! Format 1 rows (plain context) are still read: a store migrated to
//! schema 10 seals them at its first open with the keys
//! ([`seal_plain_sessions`]), and any change to one writes it sealed.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::db::codec;
use crate::db::opened::OpenedContexts;
use crate::db::records::{SessionV1, TurnV1, at, tag, ts, turns_from_stored, turns_to_stored};
use crate::db::sealing::{RecordKey, Sealed, aad};
use crate::error::Error;
use crate::model::session::{ConversationSession, Turn};
use crate::types::{SessionId, UserId};

/// The format version byte of a session written now.
pub(crate) const VERSION: u8 = 2;
/// The format of sessions with a plain context (schemas 2 to 9).
const PLAIN_VERSION: u8 = 1;
/// What the context's associated data names.
const CONTEXT_FIELD: &[u8] = b"bharatvoice-store/session/context/";
const KIND: &str = "session record";

/// A conversation session, format 2.
#[derive(Serialize, Deserialize)]
struct SessionV2 {
    id: Uuid,
    user_id: Uuid,
    language: Option<String>,
    last_active_at: i64,
    expires_at: i64,
    ended_at: Option<i64>,
    turn_count: u64,
    context: Sealed,
    created_at: i64,
    updated_at: i64,
    deleted_at: Option<i64>,
}

/// The context of a stored session.
enum Context {
    /// Format 1: in clear.
    Plain(Vec<Turn>),
    /// Format 2: sealed.
    Sealed(Sealed),
}

/// A stored session decoded as far as its clear fields go.
pub(crate) struct SessionRow {
    /// The session with an empty context.
    head: ConversationSession,
    context: Context,
}

impl SessionRow {
    /// Decodes a stored session (either format) without opening its
    /// context; `id` names it in errors.
    pub(crate) fn decode(bytes: &[u8], id: SessionId) -> Result<SessionRow, Error> {
        let what = || format!("{KIND} {id}");
        let row = Self::decode_any_id(bytes, id)?;
        // The sealed context is bound to the id inside the record; that id
        // must be the key the row is stored under.
        if row.head.id != id {
            return Err(Error::corrupt(what(), "stored under another session's id"));
        }
        Ok(row)
    }

    fn decode_any_id(bytes: &[u8], id: SessionId) -> Result<SessionRow, Error> {
        let what = || format!("{KIND} {id}");
        match codec::version_of(bytes) {
            Some(PLAIN_VERSION) => {
                let v1: SessionV1 = codec::decode_versioned(PLAIN_VERSION, bytes, what)?;
                let mut head = v1.into_session()?;
                let turns = std::mem::take(&mut head.context);
                Ok(SessionRow {
                    head,
                    context: Context::Plain(turns),
                })
            }
            _ => {
                let s: SessionV2 = codec::decode_versioned(VERSION, bytes, what)?;
                let head = ConversationSession {
                    id: SessionId::from_key(s.id.as_u128()),
                    user_id: UserId::from_key(s.user_id.as_u128()),
                    language: s.language.map(|l| tag(l, KIND)).transpose()?,
                    last_active_at: at(s.last_active_at),
                    expires_at: at(s.expires_at),
                    ended_at: s.ended_at.map(at),
                    turn_count: s.turn_count,
                    context: Vec::new(),
                    created_at: at(s.created_at),
                    updated_at: at(s.updated_at),
                    deleted_at: s.deleted_at.map(at),
                };
                Ok(SessionRow {
                    head,
                    context: Context::Sealed(s.context),
                })
            }
        }
    }

    /// The session's clear fields; its `context` is empty.
    pub(crate) fn head(&self) -> &ConversationSession {
        &self.head
    }

    /// The session's clear fields, its `context` left empty.
    pub(crate) fn into_head(self) -> ConversationSession {
        self.head
    }

    /// Whether the context is stored sealed (format 2).
    pub(crate) fn is_sealed(&self) -> bool {
        matches!(self.context, Context::Sealed(_))
    }

    /// Whether the context may pass `limits` (false only when it surely
    /// fits: fewer turns than the bound, and a sealed body no longer than
    /// the bytes bound, which the turns' text cannot exceed). Saves the
    /// context trim from opening every session.
    pub(crate) fn may_exceed(&self, limits: crate::model::session::ContextLimits) -> bool {
        match &self.context {
            Context::Plain(turns) => limits.excess(turns) > 0,
            Context::Sealed(sealed) => {
                self.head.turn_count > limits.max_turns as u64 || sealed.len() > limits.max_bytes
            }
        }
    }

    /// The whole session, its context opened with the owner's record key.
    pub(crate) fn open(self, key: &RecordKey) -> Result<ConversationSession, Error> {
        self.open_with(key, None)
    }

    /// [`open`](Self::open), taking the turns from `opened` when it holds
    /// them for exactly this sealed context, and leaving them there when
    /// it did not.
    pub(crate) fn open_with(
        self,
        key: &RecordKey,
        opened: Option<&OpenedContexts>,
    ) -> Result<ConversationSession, Error> {
        let mut s = self.head;
        s.context = match self.context {
            Context::Plain(turns) => turns,
            Context::Sealed(sealed) => {
                let (id, owner) = (s.id, s.user_id);
                let opened = opened.filter(|o| o.enabled());
                if let Some(turns) = opened.and_then(|o| o.get(id, owner, key.instance(), &sealed))
                {
                    turns
                } else {
                    let kept = opened.map(|_| sealed.clone());
                    let stored: Vec<TurnV1> =
                        key.open(&aad(CONTEXT_FIELD, id.to_key()), sealed, || {
                            format!("{KIND} {id}")
                        })?;
                    let turns = turns_from_stored(stored);
                    if let (Some(o), Some(sealed)) = (opened, kept) {
                        o.put(id, owner, key.instance(), sealed, turns.clone());
                    }
                    turns
                }
            }
        };
        Ok(s)
    }
}

/// Encodes a session in format 2, its context sealed under `key` (the
/// owner's record key). Only the tests and the fuzz targets encode
/// without the opened-context cache.
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) fn encode(s: &ConversationSession, key: &RecordKey) -> Result<Vec<u8>, Error> {
    encode_with(s, key, None)
}

/// [`encode`], leaving the turns in `opened` as what the new sealed
/// context opens to.
pub(crate) fn encode_with(
    s: &ConversationSession,
    key: &RecordKey,
    opened: Option<&OpenedContexts>,
) -> Result<Vec<u8>, Error> {
    let context = key.seal(
        &aad(CONTEXT_FIELD, s.id.to_key()),
        &turns_to_stored(&s.context),
    )?;
    if let Some(o) = opened.filter(|o| o.enabled()) {
        o.put(
            s.id,
            s.user_id,
            key.instance(),
            context.clone(),
            s.context.clone(),
        );
    }
    codec::encode_versioned(
        VERSION,
        &SessionV2 {
            id: s.id.as_uuid(),
            user_id: s.user_id.as_uuid(),
            language: s.language.as_ref().map(|l| l.as_str().to_owned()),
            last_active_at: ts(s.last_active_at),
            expires_at: ts(s.expires_at),
            ended_at: s.ended_at.map(ts),
            turn_count: s.turn_count,
            context,
            created_at: ts(s.created_at),
            updated_at: ts(s.updated_at),
            deleted_at: s.deleted_at.map(ts),
        },
    )
}
