//! Reads of files counted in memory, so that a read commits nothing; the
//! lifecycle's `access-counts` job writes them into the records.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::types::{FileId, Timestamp};

/// Reads not yet written: per file, how many and the last one.
#[derive(Default)]
pub(crate) struct AccessLog {
    pending: Mutex<HashMap<FileId, (u64, Timestamp)>>,
    /// Wakes the `access-counts` job when many files wait.
    pub(crate) flush: crate::jobs::runtime::WakeAt,
}

impl AccessLog {
    /// Counts one read of `file` at `at`.
    pub(crate) fn note(&self, file: FileId, at: Timestamp) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let entry = pending.entry(file).or_insert((0, at));
        entry.0 += 1;
        entry.1 = entry.1.max(at);
        self.flush.noted(pending.len());
    }

    /// Takes up to `limit` files' counts.
    pub(crate) fn take(&self, limit: usize) -> (Vec<(FileId, u64, Timestamp)>, bool) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let ids: Vec<FileId> = pending.keys().take(limit).copied().collect();
        let taken = ids
            .into_iter()
            .filter_map(|id| pending.remove(&id).map(|(n, at)| (id, n, at)))
            .collect();
        (taken, !pending.is_empty())
    }

    /// Puts counts back after a failed write, adding any counted since.
    pub(crate) fn give_back(&self, counts: Vec<(FileId, u64, Timestamp)>) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        for (id, n, at) in counts {
            let entry = pending.entry(id).or_insert((0, at));
            entry.0 += n;
            entry.1 = entry.1.max(at);
        }
    }

    /// How many files have reads not yet written.
    pub(crate) fn len(&self) -> usize {
        self.pending.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}
