//! Access counts without a commit per read: every read of a file is
//! counted in memory, and the `access-counts` job writes the counts and
//! the last read time into the file records in batches. A crash loses at
//! most the reads since the last pass (its interval, 60 s by default);
//! [`Store::close`](crate::Store::close) writes them first.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::db::lifecycle::add_reads;
use crate::error::Error;
use crate::jobs::JobOutcome;
use crate::lifecycle::Parts;
use crate::types::{FileId, Timestamp};

pub(crate) const JOB: &str = "access-counts";

/// Reads not yet written: per file, how many and the last one.
#[derive(Default)]
pub(crate) struct AccessLog {
    pending: Mutex<HashMap<FileId, (u64, Timestamp)>>,
}

impl AccessLog {
    /// Counts one read of `file` at `at`.
    pub(crate) fn note(&self, file: FileId, at: Timestamp) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let entry = pending.entry(file).or_insert((0, at));
        entry.0 += 1;
        entry.1 = entry.1.max(at);
    }

    /// Takes up to `limit` files' counts.
    fn take(&self, limit: usize) -> (Vec<(FileId, u64, Timestamp)>, bool) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let ids: Vec<FileId> = pending.keys().take(limit).copied().collect();
        let taken = ids
            .into_iter()
            .filter_map(|id| pending.remove(&id).map(|(n, at)| (id, n, at)))
            .collect();
        (taken, !pending.is_empty())
    }

    /// Puts counts back after a failed write, adding any counted since.
    fn give_back(&self, counts: Vec<(FileId, u64, Timestamp)>) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        for (id, n, at) in counts {
            let entry = pending.entry(id).or_insert((0, at));
            entry.0 += n;
            entry.1 = entry.1.max(at);
        }
    }

    /// How many files have reads not yet written.
    fn len(&self) -> usize {
        self.pending.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

/// One pass: a batch of files' counts written in one transaction (a file
/// purged since its read is skipped).
pub(crate) async fn pass(parts: &Parts<'_>, dry_run: bool) -> Result<JobOutcome, Error> {
    let mut out = JobOutcome::default();
    if dry_run {
        out.count("files_updated", parts.blobs.reads.len() as u64);
        return Ok(out);
    }
    let (taken, more) = parts.blobs.reads.take(parts.config.batch);
    out.more = more;
    if taken.is_empty() {
        out.count("files_updated", 0);
        return Ok(out);
    }
    let reads: u64 = taken.iter().map(|(_, n, _)| n).sum();
    let batch = taken.clone();
    match parts
        .db
        .write(move |txn| {
            let mut updated = 0u64;
            for (id, n, at) in &batch {
                updated += u64::from(add_reads(txn, *id, *n, *at)?);
            }
            Ok(updated)
        })
        .await
    {
        Ok(updated) => {
            out.count("files_updated", updated);
            out.count("reads_written", reads);
            out.skip("file_gone", taken.len() as u64 - updated);
            Ok(out)
        }
        Err(e) => {
            parts.blobs.reads.give_back(taken);
            Err(e)
        }
    }
}
