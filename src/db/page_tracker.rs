//! Which 4 KiB pages of `store.redb` were written since a backup copied
//! them: what makes an incremental backup cost what changed, not what is
//! there.
//!
//! redb writes `store.redb` only through its storage backend, and only from
//! the writer thread (commits, compaction). [`Tracked`] sits in front of the
//! file backend and, after each write or `set_len` returns, marks the pages
//! it touched with the tracker's current *epoch*. A backup bumps the epoch
//! and copies; a later one copies only the pages marked after its
//! predecessor's epoch (`ops::backup::file_copy`).
//!
//! A mark is set *after* the write returns, so a page whose mark predates
//! a bump held its new bytes before the bump: a copy that starts after the
//! bump reads them. A page written during a copy is marked with a later
//! epoch and copied again, while no write runs (see `Writer::between`).
//!
//! The marks live in memory. Every open of the file (and every reopen
//! after an I/O error) starts a tracker with a new random id: a backup
//! whose predecessor was taken under another id copies the whole file.

use std::io;
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard};

use redb::{BackendError, StorageBackend};

/// The tracking granularity (redb's default page size).
pub(crate) const PAGE: u64 = 4096;

/// The pages written since each epoch began, for one open of the file.
#[derive(Debug, Default)]
pub(crate) struct PageTracker {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Random per open of the file; 0 before the first.
    id: u128,
    /// The epoch writes are marked with now (from 1).
    epoch: u32,
    /// Per page, the epoch of its last write (0: not written since open).
    marks: Vec<u32>,
}

/// An epoch of one tracker: a copy taken at it holds every write marked
/// with it or an earlier epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stamp {
    pub(crate) id: u128,
    pub(crate) epoch: u32,
}

impl PageTracker {
    /// A tracker, not yet started (its first open starts it).
    pub(crate) fn new() -> Arc<PageTracker> {
        Arc::new(PageTracker::default())
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new identity and no marks: the file is opened anew, and nothing
    /// known of earlier opens holds.
    pub(crate) fn restart(&self) {
        let mut s = self.state();
        s.id = uuid::Uuid::new_v4().as_u128();
        s.epoch = 1;
        s.marks.clear();
    }

    /// Ends the current epoch: returns it (every write so far is marked
    /// with it or an earlier one); later writes get the next.
    pub(crate) fn bump(&self) -> Stamp {
        let mut s = self.state();
        let stamp = Stamp {
            id: s.id,
            epoch: s.epoch,
        };
        s.epoch = s.epoch.saturating_add(1);
        stamp
    }

    /// Whether `stamp` is an epoch of this tracker's current id that has
    /// ended (a copy taken at it can be brought up to date from the marks).
    pub(crate) fn is_current(&self, stamp: Stamp) -> bool {
        let s = self.state();
        s.id != 0 && s.id == stamp.id && stamp.epoch < s.epoch
    }

    /// The byte runs (offset, length) of the pages below `file_len`
    /// written after epoch `since` (of this tracker's current id), each
    /// run at most `max_run` bytes.
    pub(crate) fn runs_since(&self, since: u32, file_len: u64, max_run: u64) -> Vec<(u64, u64)> {
        let s = self.state();
        let pages = file_len.div_ceil(PAGE);
        let max_pages = (max_run / PAGE).max(1);
        let mut runs: Vec<(u64, u64)> = Vec::new();
        let mut current: Option<(u64, u64)> = None;
        for (page, mark) in (0..pages).zip(s.marks.iter()) {
            if *mark <= since {
                runs.extend(current.take());
                continue;
            }
            current = match current {
                Some((first, n)) if n < max_pages => Some((first, n + 1)),
                other => {
                    runs.extend(other);
                    Some((page, 1))
                }
            };
        }
        runs.extend(current);
        runs.into_iter()
            .map(|(first, n)| {
                let start = first * PAGE;
                (start, (n * PAGE).min(file_len - start))
            })
            .collect()
    }

    fn mark(&self, offset: u64, len: u64) {
        if len == 0 {
            return;
        }
        let first = offset / PAGE;
        let end = offset.saturating_add(len).div_ceil(PAGE);
        let (Ok(first), Ok(end)) = (usize::try_from(first), usize::try_from(end)) else {
            return;
        };
        let mut s = self.state();
        let epoch = s.epoch;
        if s.marks.len() < end {
            s.marks.resize(end, 0);
        }
        s.marks[first..end].fill(epoch);
    }

    /// The file was cut or grown to `len`: pages past the end are dropped,
    /// new ones (zeros) are marked.
    fn resized(&self, old_len: u64, len: u64) {
        if len > old_len {
            self.mark(old_len, len - old_len);
        } else if let Ok(keep) = usize::try_from(len.div_ceil(PAGE)) {
            let mut s = self.state();
            s.marks.truncate(keep);
            // A page cut in part keeps its bytes below `len`; mark it, as
            // its tail is zeros if the file grows again.
            let epoch = s.epoch;
            if !len.is_multiple_of(PAGE)
                && let Some(last) = s.marks.last_mut()
            {
                *last = epoch;
            }
        }
    }
}

/// A storage backend whose writes are marked in a [`PageTracker`].
#[derive(Debug)]
pub(crate) struct Tracked<B> {
    inner: B,
    tracker: Arc<PageTracker>,
}

impl<B: StorageBackend> Tracked<B> {
    /// `inner`, tracked by `tracker` (restarted: a new open).
    pub(crate) fn new(inner: B, tracker: Arc<PageTracker>) -> Tracked<B> {
        tracker.restart();
        Tracked { inner, tracker }
    }
}

impl<B: StorageBackend> StorageBackend for Tracked<B> {
    fn len(&self) -> Result<u64, io::Error> {
        self.inner.len()
    }
    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), io::Error> {
        self.inner.read(offset, out)
    }
    fn set_len(&self, len: u64) -> Result<(), io::Error> {
        let old = self.inner.len();
        let result = self.inner.set_len(len);
        match old {
            Ok(old) => self.tracker.resized(old, len),
            // Unknown: every page up to `len` counts as written.
            Err(_) => self.tracker.mark(0, len),
        }
        result
    }
    fn sync_data(&self) -> Result<(), io::Error> {
        self.inner.sync_data()
    }
    fn write(&self, offset: u64, data: &[u8]) -> Result<(), io::Error> {
        let result = self.inner.write(offset, data);
        // Marked even when it failed: part of it may have landed.
        self.tracker.mark(offset, data.len() as u64);
        result
    }
    crate::db::backend_wrap::forward_close_and_locks!();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn started() -> Arc<PageTracker> {
        let t = PageTracker::new();
        t.restart();
        t
    }

    #[test]
    fn only_pages_written_after_an_epoch_are_runs_since_it() {
        let t = started();
        t.mark(0, 3 * PAGE);
        let first = t.bump();
        assert_eq!(first.epoch, 1);
        assert_eq!(t.runs_since(first.epoch, 3 * PAGE, 1 << 20), []);
        // Part of page 1 and the whole of pages 4..6 (one run).
        t.mark(PAGE + 10, 5);
        t.mark(4 * PAGE, 2 * PAGE);
        assert_eq!(
            t.runs_since(first.epoch, 8 * PAGE, 1 << 20),
            [(PAGE, PAGE), (4 * PAGE, 2 * PAGE)]
        );
        // Since epoch 0, everything ever marked.
        assert_eq!(
            t.runs_since(0, 8 * PAGE, 1 << 20),
            [(0, 3 * PAGE), (4 * PAGE, 2 * PAGE)]
        );
        // Runs are split at `max_run`, and cut at the file's end.
        assert_eq!(
            t.runs_since(0, 5 * PAGE + 7, 2 * PAGE),
            [(0, 2 * PAGE), (2 * PAGE, PAGE), (4 * PAGE, PAGE + 7)]
        );
    }

    #[test]
    fn growing_marks_the_new_pages_and_a_restart_forgets_everything() {
        let t = started();
        let id = t.bump().id;
        t.resized(2 * PAGE, 4 * PAGE);
        assert_eq!(t.runs_since(1, 4 * PAGE, 1 << 20), [(2 * PAGE, 2 * PAGE)]);
        t.resized(4 * PAGE, PAGE);
        t.resized(PAGE, 2 * PAGE);
        assert_eq!(t.runs_since(1, 2 * PAGE, 1 << 20), [(PAGE, PAGE)]);
        t.restart();
        let after = t.bump();
        assert_ne!(after.id, id);
        assert_eq!(after.epoch, 1);
        assert_eq!(t.runs_since(0, 4 * PAGE, 1 << 20), []);
    }
}
