//! A conversation session: the turns the assistant keeps as context.

use serde::{Deserialize, Serialize};

use crate::model::validate::LanguageTag;
use crate::types::{SessionId, Timestamp, UserId};

/// A conversation between a user and the assistant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationSession {
    /// Time-ordered id.
    pub id: SessionId,
    /// Whose conversation it is.
    pub user_id: UserId,
    /// The language spoken, if known.
    pub language: Option<LanguageTag>,
    /// The last turn or touch.
    pub last_active_at: Timestamp,
    /// When it counts as idle: `last_active_at` plus the idle timeout.
    pub expires_at: Timestamp,
    /// When it was ended, if it was.
    pub ended_at: Option<Timestamp>,
    /// Turns appended over its life (also those dropped from `context`).
    pub turn_count: u64,
    /// The newest turns, bounded by the configured turns and bytes.
    pub context: Vec<Turn>,
    /// When it started.
    pub created_at: Timestamp,
    /// The last change.
    pub updated_at: Timestamp,
    /// When it was soft-deleted.
    pub deleted_at: Option<Timestamp>,
}

impl ConversationSession {
    /// Bytes of text held in `context`.
    pub fn context_bytes(&self) -> usize {
        self.context.iter().map(|t| t.text.len()).sum()
    }
}

/// Who spoke a turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The user.
    User,
    /// The assistant.
    Assistant,
    /// A system note (e.g. a tool result).
    System,
}

/// The name `bvstore` and the JSON output use.
impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::System => "system",
        })
    }
}

/// One turn of a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Turn {
    /// Who spoke.
    pub role: Role,
    /// What was said (transcript or reply).
    pub text: String,
    /// When.
    pub at: Timestamp,
}

impl Turn {
    /// A turn stamped now.
    pub fn new(role: Role, text: impl Into<String>) -> Self {
        Turn {
            role,
            text: text.into(),
            at: Timestamp::now(),
        }
    }
}

/// How much context a session keeps; the oldest turns are dropped first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContextLimits {
    /// At most this many turns.
    pub max_turns: usize,
    /// At most this many bytes of text.
    pub max_bytes: usize,
}

impl ContextLimits {
    /// Drops the oldest turns of `context` until it fits.
    pub(crate) fn trim(&self, context: &mut Vec<Turn>) {
        let drop = self.excess(context);
        context.drain(..drop);
    }

    /// How many of the oldest turns of `context` must go for it to fit.
    pub(crate) fn excess(&self, context: &[Turn]) -> usize {
        let mut bytes: usize = context.iter().map(|t| t.text.len()).sum();
        let mut drop = 0;
        while drop < context.len()
            && (context.len() - drop > self.max_turns || bytes > self.max_bytes)
        {
            bytes -= context[drop].text.len();
            drop += 1;
        }
        drop
    }
}
