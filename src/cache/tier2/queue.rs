//! What callers hand the tier-2 writer: commands they wait for, the
//! write-behind overlay, and the answers.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::oneshot;

use super::row::Row;
use crate::cache::tags::TagState;

/// What a tier-2 lookup found.
#[derive(Debug)]
pub(crate) enum Lookup {
    Row(Row),
    Absent,
    /// Tier 2 could not be read (degraded, or a corrupt row): it may hold a
    /// row for the key.
    Unavailable,
}

/// How a command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reply {
    Done,
    /// A tag bump: the durable version and the rows written under the old one.
    Bumped {
        version: u64,
        rows: u64,
    },
    /// A clear: the generation now durable.
    Cleared {
        generation: u64,
    },
    /// A sweep: rows removed because they expired, were stale (a cleared
    /// generation or a bumped tag), or for the capacity bound.
    Swept {
        expired: u64,
        stale: u64,
        evicted: u64,
    },
    /// A compaction: whether the file shrank (`None`: readers kept it busy).
    Compacted {
        shrank: Option<bool>,
    },
    /// Tier 2 is degraded: the command was not committed (its key is
    /// remembered, so that recovery drops a row that may have fallen behind).
    Degraded,
    /// The cache is closing: the command was not taken.
    Closed,
}

/// A write the caller waits for (or a reclaim it does not).
#[derive(Debug)]
pub(crate) enum Cmd {
    Put {
        key: Box<str>,
        row: Arc<Row>,
    },
    Delete {
        key: Box<str>,
    },
    Reclaim {
        key: Box<str>,
    },
    Clear {
        generation: u64,
    },
    TagBump {
        tag: Arc<TagState>,
        version: u64,
    },
    Flush,
    /// Run the sweep after the batch (the cache's housekeeping job).
    Sweep,
    /// Compact the file after the batch.
    Compact,
}

pub(crate) struct Command {
    pub(super) seq: u64,
    pub(super) cmd: Cmd,
    pub(super) reply: Option<oneshot::Sender<Reply>>,
}

/// Newest not-yet-committed row per key, with its sequence number.
pub(super) type Overlay = HashMap<Box<str>, (u64, Arc<Row>)>;

#[derive(Default)]
pub(super) struct Queue {
    pub(super) commands: Vec<Command>,
    /// Write-behind puts waiting for the next batch.
    pub(super) overlay: Overlay,
    /// The overlay of the batch being committed: still read by lookups
    /// until the commit is done (then the file has it).
    pub(super) committing: Option<Arc<Overlay>>,
    pub(super) first_pending: Option<Instant>,
    pub(super) closing: bool,
    /// Damage met in the file (by a lookup or the writer): the writer sets
    /// the file aside and rebuilds it.
    pub(super) damage: Option<String>,
}
