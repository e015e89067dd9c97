//! The ingestor's work: scan the folder, take what is complete, count what
//! happened. Run as a watcher (events and periodic rescans until stopped)
//! or as a single pass (until every file found is settled).

use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};

use super::folder::{Snapshot, Tracker, candidates, ignored};
use super::take::Taken;
use super::{IngestConfig, IngestStats};
use crate::error::Error;
use crate::store::Store;
use crate::types::UserId;

/// What the folder watch reports.
#[derive(Debug)]
pub(super) enum Signal {
    /// A file was closed after writing, or renamed into the folder.
    Complete(OsString),
    /// Events may have been lost: list the folder again.
    Rescan,
}

/// Counts shared with the [`Ingestor`](super::Ingestor) handle.
pub(super) type SharedStats = Arc<Mutex<IngestStats>>;

pub(super) struct Engine {
    pub(super) store: Store,
    /// The folder, canonical.
    pub(super) root: PathBuf,
    pub(super) user: UserId,
    pub(super) config: IngestConfig,
    tracker: Tracker,
    stats: SharedStats,
    /// A single pass: a passing failure is not retried.
    once: bool,
    /// The last listing of the folder failed (warned once, not each time).
    listing_failed: bool,
}

impl Engine {
    /// Checks what the ingestor is given: a valid config, a writable
    /// store, a live user, a folder that is not the store's own.
    pub(super) fn new(
        store: Store,
        dir: &Path,
        user: UserId,
        config: IngestConfig,
        once: bool,
    ) -> Result<Engine, Error> {
        config.check()?;
        if store.is_read_only() {
            return Err(Error::ReadOnly {
                path: store.db_file().to_path_buf(),
                detail: "watched-folder ingest stores files".into(),
            });
        }
        store.users().get(user)?;
        let root = dir
            .canonicalize()
            .map_err(|e| Error::io(format!("opening the ingest folder {}", dir.display()), e))?;
        if !root.is_dir() {
            return Err(Error::invalid(
                "ingest folder",
                format!("{} is not a directory", dir.display()),
            ));
        }
        if let Ok(data) = store.config().data_dir.canonicalize()
            && root.starts_with(&data)
        {
            return Err(Error::invalid(
                "ingest folder",
                format!(
                    "{} is inside the data directory {}; the ingestor removes what it takes, so watch a folder of its own",
                    dir.display(),
                    data.display()
                ),
            ));
        }
        Ok(Engine {
            store,
            root,
            user,
            tracker: Tracker::new(config.stable_for),
            config,
            stats: SharedStats::default(),
            once,
            listing_failed: false,
        })
    }

    pub(super) fn stats(&self) -> SharedStats {
        Arc::clone(&self.stats)
    }

    fn count(&self, bump: impl FnOnce(&mut IngestStats)) {
        bump(&mut self.stats.lock().unwrap_or_else(|e| e.into_inner()));
    }

    /// Lists the folder: new and changed files are observed, gone ones
    /// forgotten.
    pub(super) fn rescan(&mut self) -> Result<(), Error> {
        let found = candidates(&self.root)
            .map_err(|e| Error::io(format!("listing {}", self.root.display()), e))?;
        let now = Instant::now();
        let names: HashSet<&OsStr> = found.iter().map(|(n, _)| n.as_os_str()).collect();
        self.tracker.retain(|n| names.contains(n));
        for (name, snap) in &found {
            self.tracker.observe(name, *snap, now);
        }
        Ok(())
    }

    /// A rescan for the watcher, which goes on when the folder cannot be
    /// listed (warning when that starts and when it ends).
    fn rescan_logged(&mut self) {
        match self.rescan() {
            Ok(()) if self.listing_failed => {
                self.listing_failed = false;
                tracing::info!("the ingest folder can be listed again");
            }
            Ok(()) => {}
            Err(e) if !self.listing_failed => {
                self.listing_failed = true;
                tracing::warn!(error = %e, "cannot list the ingest folder; retrying");
            }
            Err(_) => {}
        }
    }

    fn note(&mut self, signal: Signal) {
        match signal {
            Signal::Complete(name) if !ignored(&name) => {
                if let Ok(Some(snap)) = Snapshot::at(&self.root.join(&name)) {
                    self.tracker.closed(&name, snap, Instant::now());
                }
            }
            Signal::Complete(_) => {}
            Signal::Rescan => self.rescan_logged(),
        }
    }

    /// Takes every complete file, stopping early when `cancel` turns true.
    /// `Ok(false)`: the test switch halted the ingestor.
    async fn take_due(&mut self, cancel: Option<&watch::Receiver<bool>>) -> Result<bool, Error> {
        for (name, snap) in self.tracker.due(Instant::now()) {
            if cancel.is_some_and(|c| *c.borrow()) {
                break;
            }
            let span = tracing::info_span!("ingest_file", name = ?name);
            let taken = tracing::Instrument::instrument(self.take_one(&name, snap), span).await?;
            if !self.record(name, taken).await {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Counts and logs what taking a file did and updates the tracker.
    /// `false`: the test switch halted the ingestor.
    async fn record(&mut self, name: OsString, taken: Taken) -> bool {
        match taken {
            Taken::Stored { file, removed } => {
                self.count(|s| s.stored += 1);
                tracing::info!(name = ?name, file = %file.id, bytes = file.plain_bytes, "stored");
                self.forget_unless(&name, removed);
            }
            Taken::AlreadyStored { id, removed } => {
                self.count(|s| s.already_stored += 1);
                tracing::info!(name = ?name, file = %id, "already stored by an earlier ingest");
                self.forget_unless(&name, removed);
            }
            Taken::Refused(reason) => {
                self.count(|s| s.failed += 1);
                match self.move_to_failed(&name, &reason).await {
                    Ok(dest) => {
                        tracing::warn!(name = ?name, to = %dest.display(), %reason, "refused; moved to failed/");
                        self.tracker.forget(&name);
                    }
                    Err(e) => {
                        tracing::error!(name = ?name, %reason, error = %e, "refused, and cannot be moved to failed/; left in place");
                        self.tracker.settle(&name);
                    }
                }
            }
            Taken::Changed => {
                // Start over: wait for it to be complete again.
                self.tracker.forget(&name);
                if let Ok(Some(snap)) = Snapshot::at(&self.root.join(&name)) {
                    self.tracker.observe(&name, snap, Instant::now());
                }
            }
            Taken::Gone => self.tracker.forget(&name),
            Taken::Deferred(e) => {
                self.count(|s| s.retried += 1);
                tracing::warn!(name = ?name, error = %e, "not stored; it stays to be tried again");
                if self.once {
                    self.tracker.settle(&name);
                } else {
                    let wait = self.config.stable_for.max(Duration::from_secs(1));
                    self.tracker.defer(&name, Instant::now() + wait);
                }
            }
            #[cfg(feature = "fault-injection")]
            Taken::Halted => {
                // The put happened; the removal never will.
                self.count(|s| s.stored += 1);
                return false;
            }
        }
        true
    }

    fn forget_unless(&mut self, name: &OsString, removed: bool) {
        if removed {
            self.tracker.forget(name);
        } else {
            self.tracker.settle(name);
        }
    }

    /// The watcher: rescans on an interval (the first at once), takes a
    /// file as soon as an event says it is complete, and ends when
    /// `cancel` turns true or its sender is dropped.
    pub(super) async fn watch(
        mut self,
        mut events: Option<mpsc::Receiver<Signal>>,
        mut cancel: watch::Receiver<bool>,
    ) -> Result<(), Error> {
        let mut tick = tokio::time::interval(self.config.rescan_every());
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let event = async {
                match events.as_mut() {
                    Some(rx) => rx.recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                _ = cancel.changed() => return Ok(()),
                signal = event => match signal {
                    Some(signal) => self.note(signal),
                    // The watch is gone: rescans carry on alone.
                    None => events = None,
                },
                _ = tick.tick() => self.rescan_logged(),
            }
            if *cancel.borrow() || !self.take_due(Some(&cancel)).await? {
                return Ok(());
            }
        }
    }

    /// A single pass: rescans until every file found was taken, refused
    /// or (after a passing failure) left for later.
    pub(super) async fn until_settled(&mut self) -> Result<(), Error> {
        loop {
            self.rescan()?;
            if !self.take_due(None).await? || self.tracker.pending() == 0 {
                return Ok(());
            }
            tokio::time::sleep(self.config.rescan_every()).await;
        }
    }
}
