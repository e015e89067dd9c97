//! What the privacy layer tells the embedding application, and what it
//! keeps about an erasure: plain data, written by `db::erasures` and
//! announced by `privacy`.

use serde::{Deserialize, Serialize};

use crate::types::{Timestamp, UserId};

/// What is erased.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErasureScope {
    /// The user's stored audio: every file record and blob (audio-storage
    /// consent withdrawn). The account, profile and sessions stay.
    Audio,
    /// Everything the store holds about the user (a request to erase).
    User,
}

impl std::fmt::Display for ErasureScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ErasureScope::Audio => "audio",
            ErasureScope::User => "user",
        })
    }
}

/// Where an erasure stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErasureStage {
    /// Scheduled for `due` (a consent withdrawal's notice period); giving
    /// the consent back before then cancels it.
    Scheduled,
    /// The user's keys are destroyed (nothing of theirs can be decrypted
    /// any more); the records and blob files are being removed.
    KeysDestroyed,
    /// Finished. For a user erasure this record stays, with the user's id
    /// and times only, as the proof that the erasure was done.
    Done,
}

/// One erasure, as `store.redb` keeps it (no personal data: the user's
/// id and times).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Erasure {
    /// Whose data.
    pub user: UserId,
    /// What is erased.
    pub scope: ErasureScope,
    /// Where it stands.
    pub stage: ErasureStage,
    /// When it was asked for (the withdrawal or the request).
    pub requested_at: Timestamp,
    /// When it starts (the end of the notice period).
    pub due: Timestamp,
    /// When the keys were destroyed.
    pub keys_destroyed_at: Option<Timestamp>,
    /// When it finished.
    pub done_at: Option<Timestamp>,
}

/// Something the embedding application may want to react to, sent to
/// every [`Privacy::subscribe`](crate::Privacy::subscribe) receiver after
/// the change commits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "event")]
#[non_exhaustive]
pub enum PrivacyEvent {
    /// A consent was given or withdrawn.
    ConsentChanged {
        /// Whose.
        user: UserId,
        /// Which.
        consent: crate::model::profile::ConsentKind,
        /// Given (`true`) or withdrawn (`false`).
        granted: bool,
    },
    /// An erasure was scheduled (audio-storage consent withdrawn, or a
    /// request to erase the user).
    ErasureScheduled {
        /// Whose data.
        user: UserId,
        /// What.
        scope: ErasureScope,
        /// When it starts.
        due: Timestamp,
    },
    /// A scheduled audio erasure was cancelled: the consent was given back
    /// before its notice period ended.
    ErasureCancelled {
        /// Whose data.
        user: UserId,
    },
    /// An erasure finished.
    Erased {
        /// Whose data.
        user: UserId,
        /// What.
        scope: ErasureScope,
        /// File records removed.
        files: u64,
        /// Sessions removed.
        sessions: u64,
    },
}
