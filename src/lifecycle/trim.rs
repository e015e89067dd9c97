//! The context-trim job: every session's context kept within the current
//! limits (`session_max_turns`, `session_max_context_bytes`).
//!
//! An append trims the session it appends to, so a context passes the
//! limits only when they were lowered since (a new configuration) or when
//! it was written by an older version. This job walks the sessions in id
//! order, a batch per pass, resuming where the last pass stopped, and drops
//! the oldest turns of those over the limits, as an append would.

use std::sync::Mutex;

use crate::db::sessions::{over_limits, trim_context};
use crate::error::Error;
use crate::jobs::JobOutcome;
use crate::lifecycle::Parts;

pub(crate) const JOB: &str = "context-trim";

/// Where the next pass resumes in the sessions table.
#[derive(Default)]
pub(crate) struct TrimCursor {
    at: Mutex<Option<u128>>,
}

impl TrimCursor {
    fn get(&self) -> Option<u128> {
        *self.at.lock().unwrap_or_else(|e| e.into_inner())
    }
    fn set(&self, at: Option<u128>) {
        *self.at.lock().unwrap_or_else(|e| e.into_inner()) = at;
    }
}

/// One pass; a dry run covers every session from the start.
pub(crate) async fn pass(parts: &Parts<'_>, dry_run: bool) -> Result<JobOutcome, Error> {
    let limits = parts.db.settings.context;
    let (after, limit) = if dry_run {
        (None, usize::MAX)
    } else {
        (parts.cursors.sessions.get(), parts.config.batch)
    };
    let sealer = parts.db.sealer()?;
    let (over, next) = parts
        .db
        .scan(move |txn| over_limits(txn, &sealer, after, limit, limits))
        .await?;
    let mut out = JobOutcome::default();
    out.count("sessions_trimmed", 0);
    out.count("turns_dropped", 0);
    out.more = next.is_some();
    if dry_run {
        out.count("sessions_trimmed", over.len() as u64);
        out.count("turns_dropped", over.iter().map(|(_, n)| n).sum());
        return Ok(out);
    }
    if !over.is_empty() {
        let now = parts.db.now();
        let sealer = parts.db.sealer()?;
        let dropped = parts
            .db
            .write(move |txn| {
                over.iter()
                    .map(|(id, _)| trim_context(txn, &sealer, *id, limits, now))
                    .collect::<Result<Vec<u64>, Error>>()
            })
            .await?;
        let trimmed = dropped.iter().filter(|n| **n > 0).count() as u64;
        out.count("sessions_trimmed", trimmed);
        out.count("turns_dropped", dropped.iter().sum());
        out.skip("fit_since_read", dropped.len() as u64 - trimmed);
        tracing::info!(sessions = trimmed, "trimmed session contexts to the limits");
    }
    parts.cursors.sessions.set(next);
    Ok(out)
}
