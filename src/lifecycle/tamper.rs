//! The tamper watch: a watch on the blob directory that notices a blob
//! file modified, replaced or removed from outside the store, marks its
//! blob damaged (with it, every record that names the blob), logs it, and
//! so turns the `integrity` part of health degraded.
//!
//! It exists because nothing else notices in time. A blob file is read
//! only when someone asks for its recording; the orphan collector sees a
//! missing file only on its interval (hours) and never a changed one;
//! `bvstore file verify` sees a change, but only when someone runs it. A
//! recording damaged by a stray `rm`, a sync tool or a failing disk would
//! otherwise go unnoticed until a read fails, perhaps after the backups
//! that still held it have rotated away.
//!
//! How: `notify` (inotify) watches `blobs/` recursively. The event thread
//! only notes which blob addresses its events name, and whether it heard
//! anything but a rename into place ([`Heard`]), then wakes the
//! `tamper-watch` job. The job waits for the events to settle
//! ([`LifecycleConfig::tamper_debounce`](crate::LifecycleConfig)) and
//! checks each address on the store's runtime, off the event thread (see
//! [`check`]). At open, when the kernel dropped events, and when a blob
//! directory goes as a whole, a rescan checks every blob row's file for
//! presence and size.
//!
//! What it cannot see: a same-size change made while the store was closed
//! (reads and `bvstore file verify` find it), anything once the inotify
//! limits are reached (health says so), and blobs in a backend that is not
//! a local directory. `docs/LIFECYCLE.md` has the whole story.

mod check;
mod events;

use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use notify::RecommendedWatcher;

use crate::blob::BlobStore;
use crate::blob::backend::BlobBackend;
use crate::error::Error;
use crate::jobs::runtime::{JobRuntime, JobWaker};
use crate::jobs::{JobOutcome, JobSpec};
use crate::lifecycle::{LifecycleConfig, Parts};
use crate::types::BlobAddress;
pub(crate) use events::Heard;
use events::{Shared, State, lock};

/// The job that checks what the watch heard.
pub(crate) const JOB: &str = "tamper-watch";

/// Addresses one pass takes from the queue at most. The store's own
/// untouched placements among them cost a `stat` each and are set aside at
/// once, so the watch keeps pace with thousands of puts a second (it took
/// 64 a pass once, and fell further behind every second of steady puts).
const TAKE_LIMIT: usize = 4096;

/// Blobs one pass reads back at most (a close waits for at most one pass).
const CHECK_LIMIT: usize = 64;

/// A watch that could not be set up is tried again at most this often
/// (the job's interval).
const RETRY: Duration = Duration::from_secs(600);

/// The watch of one open store: started by `Store::open`, stopped by its
/// close (or drop).
pub(crate) struct TamperWatch {
    shared: Arc<Shared>,
    watcher: Mutex<Option<RecommendedWatcher>>,
    /// The blob backend and the job's waker, once started.
    started: Mutex<Option<(Arc<dyn BlobBackend>, JobWaker)>>,
    /// When a watch was last set up (a failed one is retried after
    /// [`RETRY`]).
    last_setup: Mutex<Option<Instant>>,
    /// Where a rescan of the blob rows resumes, while one runs.
    rescan_at: Mutex<Option<Option<BlobAddress>>>,
}

impl Default for TamperWatch {
    fn default() -> Self {
        TamperWatch {
            shared: Arc::new(Shared {
                queue: Mutex::default(),
                state: Mutex::new(State::Off("not started".into())),
            }),
            watcher: Mutex::new(None),
            started: Mutex::new(None),
            last_setup: Mutex::new(None),
            rescan_at: Mutex::new(None),
        }
    }
}

impl TamperWatch {
    /// Starts watching the blob directory if the configuration asks for it
    /// and the store can be watched. Never fails: a watch that cannot be
    /// set up is logged and shown by health.
    pub(crate) async fn start(
        &self,
        blobs: &BlobStore,
        jobs: &JobRuntime,
        config: &LifecycleConfig,
        read_only: bool,
    ) {
        let off = if !config.tamper_watch {
            Some("switched off (lifecycle.tamper_watch = false)".to_string())
        } else if read_only {
            Some("the store is read-only".to_string())
        } else if blobs.backend.as_local().is_none() {
            Some(format!(
                "the {} blob backend is not a local directory",
                blobs.backend.name()
            ))
        } else {
            None
        };
        match (off, jobs.waker(JOB)) {
            (None, Some(waker)) => {
                *lock(&self.started) = Some((Arc::clone(&blobs.backend), waker));
                self.setup().await;
            }
            (off, _) => {
                let why = off.unwrap_or_else(|| "its job is not registered".into());
                *lock(&self.shared.state) = State::Off(why);
            }
        }
    }

    /// Sets the watch up (again), then rescans: what changed before the
    /// watch listened (while the store was closed, say) was not heard.
    async fn setup(&self) {
        let Some((backend, waker)) = lock(&self.started).clone() else {
            return;
        };
        *lock(&self.last_setup) = Some(Instant::now());
        drop(lock(&self.watcher).take());
        // Before its first event: a limit hit then is the event's to say.
        *lock(&self.shared.state) = State::Watching;
        let shared = Arc::clone(&self.shared);
        let made = tokio::task::spawn_blocking(move || events::watch(backend, shared, waker))
            .await
            .unwrap_or_else(|e| Err(format!("setting it up failed: {e}")));
        match made {
            Ok(w) => {
                let started = lock(&self.started);
                if started.is_none() {
                    // Stopped meanwhile (the store closed): not kept.
                    drop(w);
                    return;
                }
                *lock(&self.watcher) = Some(w);
                drop(started);
                let mut q = lock(&self.shared.queue);
                q.rescan = true;
                q.last_event = Some(Instant::now());
                drop(q);
                if let Some((_, waker)) = &*lock(&self.started) {
                    waker.wake();
                }
            }
            Err(_) if lock(&self.started).is_none() => {}
            Err(why) => {
                tracing::warn!(reason = %why, "cannot watch the blob directory; blob files changed behind the store's back are not noticed until read or verified");
                *lock(&self.shared.state) =
                    State::Broken(format!("the tamper watch is off: {why}"));
            }
        }
    }

    /// Stops watching; nothing of the watch uses the store's files after.
    pub(crate) fn stop(&self) {
        lock(&self.started).take();
        drop(lock(&self.watcher).take());
        *lock(&self.shared.state) = State::Off("the store is closed".into());
    }

    /// Whether the watch is as configured, and how it stands in words.
    pub(crate) fn status(&self) -> (bool, String) {
        match &*lock(&self.shared.state) {
            State::Off(why) => (true, format!("the tamper watch is off: {why}")),
            State::Watching => (true, "the tamper watch is on".into()),
            State::Broken(what) => (false, what.clone()),
        }
    }

    /// Whether a watch that could not be set up is due another try (one
    /// that works in part is kept: a new one would need more watches).
    fn retry_due(&self) -> bool {
        matches!(&*lock(&self.shared.state), State::Broken(_))
            && lock(&self.watcher).is_none()
            && lock(&self.last_setup).is_none_or(|t| t.elapsed() >= RETRY)
    }

    /// Waits until no event came for `debounce` (at most 20 times that
    /// in all, so that a steady stream of events is still checked).
    async fn settle(&self, debounce: Duration) {
        let give_up = Instant::now() + debounce * 20;
        loop {
            let quiet = lock(&self.shared.queue)
                .last_event
                .map_or(debounce, |t| t.elapsed());
            if quiet >= debounce || Instant::now() >= give_up {
                return;
            }
            tokio::time::sleep(debounce - quiet).await;
        }
    }

    /// The addresses to check now (at most `limit`); a rescan asked for
    /// starts from the first row.
    fn drain(&self, limit: usize) -> Vec<(BlobAddress, Heard)> {
        let mut q = lock(&self.shared.queue);
        let take: Vec<BlobAddress> = q.heard.keys().take(limit).copied().collect();
        if std::mem::take(&mut q.rescan) {
            *lock(&self.rescan_at) = Some(None);
        }
        take.into_iter()
            .filter_map(|a| q.heard.remove(&a).map(|h| (a, h)))
            .collect()
    }

    /// Puts addresses back for the next pass.
    fn requeue(&self, batch: impl IntoIterator<Item = (BlobAddress, Heard)>) {
        let mut q = lock(&self.shared.queue);
        for (a, h) in batch {
            q.add(a, h);
        }
    }

    /// Whether work is left for another pass.
    fn more(&self) -> bool {
        !lock(&self.shared.queue).heard.is_empty() || lock(&self.rescan_at).is_some()
    }

    /// What one pass works on (blocking): up to [`TAKE_LIMIT`] addresses
    /// from the queue; the store's own untouched placements among them are
    /// set aside (counted), and of the others at most [`CHECK_LIMIT`] are
    /// returned to be read back, the rest going back to the queue.
    fn take(&self) -> (u64, Vec<(BlobAddress, Heard)>) {
        let mut batch = self.drain(TAKE_LIMIT);
        let own = self.skip_own(&mut batch);
        if batch.len() > CHECK_LIMIT {
            self.requeue(batch.split_off(CHECK_LIMIT));
        }
        (own, batch)
    }

    /// Drops the blobs heard of only as placed whose file is, untouched,
    /// the one the store placed (blocking: a `stat` each).
    fn skip_own(&self, batch: &mut Vec<(BlobAddress, Heard)>) -> u64 {
        let Some((backend, _)) = lock(&self.started).clone() else {
            return 0;
        };
        let Some(local) = backend.as_local() else {
            return 0;
        };
        let before = batch.len();
        batch.retain(|(a, heard)| {
            *heard == Heard::Changed || !local.placed.take_if_unchanged(*a, &local.path_of(*a))
        });
        (before - batch.len()) as u64
    }
}

/// The job that checks what the watch heard, working on the store `part`
/// while it lives. It waits for quiet and sets aside the store's own
/// placements before it takes a strong handle to the store, so a store
/// dropped just after a put is released at once.
pub(crate) fn spec<P: Send + Sync + 'static>(
    watch: &Arc<TamperWatch>,
    part: &Weak<P>,
    parts_of: fn(&P) -> Parts<'_>,
    debounce: Duration,
) -> JobSpec {
    let (watch, part) = (Arc::clone(watch), part.clone());
    JobSpec {
        name: JOB,
        about: "checks blob files the watch on blobs/ heard of; marks those changed or removed behind the store's back as damaged",
        interval: RETRY,
        body: Arc::new(move || {
            let (watch, part) = (Arc::clone(&watch), part.clone());
            Box::pin(async move {
                if watch.retry_due() {
                    tracing::info!("setting the blob directory watch up again");
                    watch.setup().await;
                }
                watch.settle(debounce).await;
                let mut out = JobOutcome::default();
                let w = Arc::clone(&watch);
                let (own, batch) = tokio::task::spawn_blocking(move || w.take())
                    .await
                    .map_err(|e| Error::join("checking blob files", e))?;
                out.skip("placed_by_the_store", own);
                if batch.is_empty() && lock(&watch.rescan_at).is_none() {
                    out.more = watch.more();
                    return Ok(out);
                }
                let Some(p) = part.upgrade() else {
                    return Err(Error::Closed);
                };
                // Only this pass holds the store: its last handle is gone.
                let alive = || Arc::strong_count(&p) > 1;
                pass(&parts_of(&p), &watch, batch, out, &alive).await
            })
        }),
    }
}

/// Checks a batch (with a batch of the rescan, if one runs). It stops
/// between blobs once the store's last handle is dropped (`alive` says
/// no), so that the store's files are released at once.
async fn pass(
    parts: &Parts<'_>,
    watch: &TamperWatch,
    mut batch: Vec<(BlobAddress, Heard)>,
    mut out: JobOutcome,
    alive: &(dyn Fn() -> bool + Send + Sync),
) -> Result<JobOutcome, Error> {
    let resume = *lock(&watch.rescan_at);
    if let Some(after) = resume
        && alive()
    {
        let step = check::rescan(parts, after, parts.config.batch).await?;
        out.count("blobs_rescanned", step.rows);
        batch.extend(step.suspects.into_iter().map(|a| (a, Heard::Changed)));
        *lock(&watch.rescan_at) = step.next.map(Some);
    }
    let mut batch = batch.into_iter();
    while let Some((address, heard)) = batch.next() {
        let checked = match alive() {
            true => check::check(parts, address, &mut out).await,
            false => Err(Error::Closed),
        };
        if let Err(e) = checked {
            watch.requeue(std::iter::once((address, heard)).chain(batch));
            return Err(e);
        }
    }
    out.more = watch.more();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::HealthStatus;

    /// A job runtime holding a do-nothing job of the watch's name.
    fn runtime() -> JobRuntime {
        let body: crate::jobs::runtime::JobBody =
            Arc::new(|| Box::pin(async { Ok(JobOutcome::default()) }));
        JobRuntime::new(
            crate::clock::Clock::System,
            vec![JobSpec {
                name: JOB,
                about: "test",
                interval: RETRY,
                body,
            }],
        )
    }

    fn address(i: u64) -> BlobAddress {
        let mut a = [0x5a; 32];
        a[..8].copy_from_slice(&i.to_le_bytes());
        BlobAddress(a)
    }

    #[test]
    fn one_pass_sets_aside_thousands_of_the_stores_own_placements() {
        let dir = tempfile::tempdir().unwrap();
        let local = Arc::new(crate::blob::backend::local::LocalDir::new(
            dir.path().join("blobs"),
        ));
        local.placed.enable();
        let watch = TamperWatch::default();
        let own = 3000;
        for i in 0..own {
            let (a, path) = (address(i), local.path_of(address(i)));
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, b"sealed").unwrap();
            local.placed.note(a, &path);
            lock(&watch.shared.queue).add(a, Heard::Placed);
        }
        for i in own..own + 100 {
            lock(&watch.shared.queue).add(address(i), Heard::Changed);
        }
        let waker = runtime().waker(JOB).unwrap();
        *lock(&watch.started) = Some((local, waker));

        let (skipped, batch) = watch.take();
        assert_eq!(skipped, own, "every own placement, in one pass");
        assert_eq!(
            batch.len(),
            CHECK_LIMIT,
            "read back: at most a pass's worth"
        );
        assert!(batch.iter().all(|(_, h)| *h == Heard::Changed));
        let left = lock(&watch.shared.queue).heard.len();
        assert_eq!(left, 100 - CHECK_LIMIT, "the other changes wait their turn");
    }

    #[tokio::test]
    async fn a_watch_that_cannot_be_set_up_degrades_health_and_is_tried_again() {
        let dir = tempfile::tempdir().unwrap();
        let config = crate::Config::new(dir.path()).password_cost(8, 1);
        let store = crate::Store::open(config).await.unwrap();
        let integrity = |h: crate::Health| h.part("integrity").cloned().unwrap();
        assert_eq!(
            integrity(store.health().await).status,
            HealthStatus::Healthy
        );

        // The blob directory goes: the running watch says so.
        std::fs::remove_dir_all(dir.path().join("blobs")).unwrap();
        let start = Instant::now();
        let part = loop {
            let part = integrity(store.health().await);
            if part.status != HealthStatus::Healthy || start.elapsed() > Duration::from_secs(10) {
                break part;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert_eq!(part.status, HealthStatus::Degraded, "{part:?}");
        assert!(part.detail.contains("moved or removed"), "{part:?}");

        // A new watch on it cannot be set up: no error, health tells.
        let watch = TamperWatch::default();
        let lifecycle = LifecycleConfig::default();
        watch
            .start(store.blob_store(), &runtime(), &lifecycle, false)
            .await;
        let part = crate::lifecycle::health(store.db(), &watch);
        assert_eq!(part.status, HealthStatus::Degraded, "{part:?}");
        assert!(
            part.detail
                .contains("no blob marked damaged, but the tamper watch is off"),
            "{part:?}"
        );
        assert!(!watch.retry_due(), "not tried again before RETRY");
        *lock(&watch.last_setup) = None;
        assert!(watch.retry_due(), "then tried again by the job");

        // Switched off or read-only: off, and that is as configured.
        for (lifecycle, read_only, why) in [
            (lifecycle.clone().tamper_watch(false), false, "switched off"),
            (lifecycle, true, "read-only"),
        ] {
            let watch = TamperWatch::default();
            watch
                .start(store.blob_store(), &runtime(), &lifecycle, read_only)
                .await;
            let part = crate::lifecycle::health(store.db(), &watch);
            assert_eq!(part.status, HealthStatus::Healthy, "{part:?}");
            assert!(part.detail.contains(why), "{part:?}");
        }
    }
}
