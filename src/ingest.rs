//! Watched-folder ingest: each file that appears in a folder is stored for
//! one user once it is complete, then removed from the folder. A recorder
//! or a sync tool drops audio there; the ingestor brings it into the store.
//! What it takes, when, and why nothing is stored twice is documented on
//! [`Ingestor`], where users of the crate read it.
//!
//! The parts: `folder` (which entries are candidates and when one is
//! complete), `take` (one file: hash, look up, put, check, remove, or move
//! to `failed/`), `engine` (the scan and event loop, and the counts).

mod engine;
mod folder;
mod take;

use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::event::{AccessKind, AccessMode, ModifyKind, RenameMode};
use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use serde::Serialize;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::error::Error;
use crate::store::Store;
use crate::types::UserId;
use engine::{Engine, SharedStats, Signal};

/// How an [`Ingestor`] decides that a file is complete.
///
/// ## Defaults
///
/// `stable_for` 2 s (1 ms to 1 day; a value outside is [`Error::Config`]).
///
/// ```
/// use std::time::Duration;
/// use bharatvoice_store::IngestConfig;
/// let config = IngestConfig::default().stable_for(Duration::from_millis(500));
/// assert_eq!(config.stable_for, Duration::from_millis(500));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct IngestConfig {
    /// How long a file's size, modification time and inode must stay the
    /// same before it is taken, when no close after writing was seen.
    pub stable_for: Duration,
    /// Test switch: stop right after a put, before removing the file.
    #[cfg(feature = "fault-injection")]
    halt_after_put: bool,
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            stable_for: Duration::from_secs(2),
            #[cfg(feature = "fault-injection")]
            halt_after_put: false,
        }
    }
}

impl IngestConfig {
    /// Sets [`stable_for`](Self::stable_for).
    pub fn stable_for(mut self, stable_for: Duration) -> Self {
        self.stable_for = stable_for;
        self
    }

    /// Makes the ingestor stop right after its first put, before it removes
    /// the file: a crash between the two, for the restart tests. Not part of
    /// the API: only with the `fault-injection` feature, which the crate's
    /// own tests turn on.
    #[cfg(feature = "fault-injection")]
    #[doc(hidden)]
    pub fn halt_after_put(mut self) -> Self {
        self.halt_after_put = true;
        self
    }

    fn check(&self) -> Result<(), Error> {
        let ms = Duration::from_millis(1);
        crate::config::check_duration("ingest stable_for", self.stable_for, ms, 86_400_000)
    }

    /// How often the folder is listed again.
    fn rescan_every(&self) -> Duration {
        (self.stable_for / 2).clamp(Duration::from_millis(5), Duration::from_secs(1))
    }
}

/// What an ingestor has done since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct IngestStats {
    /// Files stored.
    pub stored: u64,
    /// Files found stored by an earlier ingest (same name and bytes) and
    /// removed without storing them again.
    pub already_stored: u64,
    /// Files refused for good, moved to `failed/` (or, if that failed too,
    /// left in place and logged).
    pub failed: u64,
    /// Attempts that met a passing failure and left the file to be tried
    /// again.
    pub retried: u64,
}

/// A running watched-folder ingest: each file that appears in a folder is
/// stored for one user once it is complete, then removed from the folder.
///
/// # What is taken, and when
///
/// * Regular files directly in the folder: no symlink is followed and no
///   subfolder entered. Hidden names (`.x`) and staged ones (`*.part`,
///   `*.tmp`, `*.crdownload`, in any case) are left alone: a writer that
///   needs time writes under such a name and renames the file when done.
/// * A file is taken once it is complete: closed after writing (or renamed
///   into the folder) and unchanged since, or with its size, modification
///   time and inode unchanged for [`IngestConfig::stable_for`]. A writer
///   that closes the file between chunks, or pauses longer than that, must
///   use a staged name.
/// * Events come from the operating system (inotify on Linux); the folder
///   is also listed at the start (files already there are taken too) and
///   again every half stability time (at most each second), so a lost
///   event delays a file but never loses it.
///
/// # What becomes of it
///
/// * It is stored for the user (as that user) with its file name as the
///   record's `name` (metadata only, never a path), the tag
///   `ingest:<first 16 hex digits of its SHA-256>`, and a content type from
///   its extension: `wav` audio/wav, `opus` audio/opus, `ogg` audio/ogg,
///   `mp3` audio/mpeg, `flac` audio/flac, `m4a` audio/mp4, `webm`
///   audio/webm, anything else application/octet-stream.
/// * It is removed from the folder only after the put returned, that is
///   once the store has it durably, and only if it is still the file that
///   was stored (same inode, size and modification time).
/// * A file that cannot be stored for good (a name that is not UTF-8 or
///   that the store refuses, a user deleted meanwhile, a file that cannot
///   be read) is moved to `failed/` in the folder, with `<name>.error`
///   beside it holding the reason; a name already in `failed/` becomes
///   `<name>.1`, `<name>.2`, ... A passing failure (a full disk, a busy
///   store) leaves the file where it is, to be tried again.
///
/// # Exactly once
///
/// Before storing a file the ingestor hashes it and looks for a live file
/// of the user, tagged with the same hash prefix, with the same name, size
/// and SHA-256. If there is one, an earlier run stored the file and stopped
/// before removing it: the file is removed without being stored again
/// ([`IngestStats::already_stored`]). So a crash at any point stores no file
/// twice and loses none. The same rule makes a file dropped again with the
/// same name and bytes, while the first copy is still stored, count as
/// already stored. A file that changes while it is stored is caught (the
/// record's SHA-256 or the file's snapshot differ): that record is deleted
/// and the file taken again once complete. The look-up filters the user's
/// file list by the tag, so it reads through the user's file records: one
/// such pass per file taken.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use bharatvoice_store::*;
/// # #[tokio::main] async fn main() -> Result<(), Error> {
/// # let dir = tempfile::tempdir().unwrap();
/// # let inbox = tempfile::tempdir().unwrap();
/// let store = Store::open(Config::new(dir.path())).await?;
/// let user = store.users().create(NewUser::new("asha", "asha@example.in").consent(ConsentKind::AudioStorage)).await?;
/// let config = IngestConfig::default().stable_for(Duration::from_millis(100));
/// let ingestor = Ingestor::start(store.clone(), inbox.path(), user.id, config).await?;
/// std::fs::write(inbox.path().join("hello.wav"), b"RIFF....WAVEfmt ").unwrap();
/// # tokio::time::timeout(Duration::from_secs(60), async {
/// while ingestor.stats().stored == 0 {
///     tokio::time::sleep(Duration::from_millis(20)).await;
/// }
/// # }).await.expect("stored in time");
/// assert_eq!(ingestor.stop().await?.stored, 1);
/// assert!(!inbox.path().join("hello.wav").exists());
/// let me = Actor::User(user.id);
/// let page = store.files().list(me, user.id, ListFilter::default(), ListOptions::first(10)).await?;
/// assert_eq!(page.items[0].content_type, "audio/wav");
/// assert_eq!(page.items[0].name.as_deref(), Some("hello.wav"));
/// # Ok(()) }
/// ```
pub struct Ingestor {
    stats: SharedStats,
    dir: PathBuf,
    cancel: watch::Sender<bool>,
    task: Option<JoinHandle<Result<(), Error>>>,
}

impl Ingestor {
    /// Starts watching `dir` for files to store for `user`. Refused when
    /// the config is out of range, the store is read-only, the user is not
    /// live, or `dir` is not a directory or lies in the store's data
    /// directory. Must be called inside a tokio runtime.
    pub async fn start(
        store: Store,
        dir: impl Into<PathBuf>,
        user: UserId,
        config: IngestConfig,
    ) -> Result<Ingestor, Error> {
        let engine = Engine::new(store, &dir.into(), user, config, false)?;
        let dir = engine.root.clone();
        let (tx, rx) = mpsc::channel(1024);
        // Watching starts before the first listing: nothing falls between.
        let watcher = watch_folder(&dir, tx);
        let events = watcher.is_some().then_some(rx);
        let (cancel, cancelled) = watch::channel(false);
        let stats = engine.stats();
        let span = tracing::info_span!("ingest", user = %user, dir = %dir.display());
        let task = tokio::spawn(tracing::Instrument::instrument(
            async move {
                let _watching = watcher;
                engine.watch(events, cancelled).await
            },
            span,
        ));
        Ok(Ingestor {
            stats,
            dir,
            cancel,
            task: Some(task),
        })
    }

    /// One pass over `dir`: takes every file there once it is complete and
    /// returns when none is left to wait for (a file still being written
    /// keeps it waiting; one that meets a passing failure is left for a
    /// later pass). The same checks as [`start`](Self::start).
    ///
    /// ```
    /// use std::time::Duration;
    /// use bharatvoice_store::*;
    /// # #[tokio::main] async fn main() -> Result<(), Error> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let inbox = tempfile::tempdir().unwrap();
    /// let store = Store::open(Config::new(dir.path())).await?;
    /// let user = store.users().create(NewUser::new("ravi", "ravi@example.in").consent(ConsentKind::AudioStorage)).await?;
    /// std::fs::write(inbox.path().join("a.opus"), b"OggS").unwrap();
    /// std::fs::write(inbox.path().join("b.mp3.part"), b"ID3").unwrap();
    /// let config = IngestConfig::default().stable_for(Duration::from_millis(50));
    /// let stats = Ingestor::run_once(&store, inbox.path(), user.id, config).await?;
    /// assert_eq!((stats.stored, stats.failed), (1, 0));
    /// assert!(inbox.path().join("b.mp3.part").exists());
    /// # Ok(()) }
    /// ```
    pub async fn run_once(
        store: &Store,
        dir: impl AsRef<Path>,
        user: UserId,
        config: IngestConfig,
    ) -> Result<IngestStats, Error> {
        let mut engine = Engine::new(store.clone(), dir.as_ref(), user, config, true)?;
        let span = tracing::info_span!("ingest_once", user = %user);
        tracing::Instrument::instrument(engine.until_settled(), span).await?;
        let stats = *engine.stats().lock().unwrap_or_else(|e| e.into_inner());
        Ok(stats)
    }

    /// The folder watched (canonical).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// What the ingestor has done so far.
    pub fn stats(&self) -> IngestStats {
        *self.stats.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Stops watching, after the file being stored (if any) is done, and
    /// returns what the ingestor did. An error if the ingestor had stopped
    /// on its own: the store was closed, or its task panicked.
    pub async fn stop(mut self) -> Result<IngestStats, Error> {
        self.cancel.send_replace(true);
        if let Some(task) = self.task.take() {
            task.await.map_err(|e| Error::join("ingest task", e))??;
        }
        Ok(self.stats())
    }
}

/// Dropping an ingestor stops it (without waiting; [`Ingestor::stop`] waits).
impl Drop for Ingestor {
    fn drop(&mut self) {
        self.cancel.send_replace(true);
    }
}

impl std::fmt::Debug for Ingestor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ingestor")
            .field("dir", &self.dir)
            .field("stats", &self.stats())
            .finish()
    }
}

/// Watches `root` (not recursively) and sends what its events mean. `None`
/// when the system refuses a watch (inotify limits, say): the ingestor
/// then relies on its rescans.
fn watch_folder(root: &Path, tx: mpsc::Sender<Signal>) -> Option<RecommendedWatcher> {
    let dir = root.to_path_buf();
    let handler = move |event: notify::Result<notify::Event>| {
        let signals = match event {
            Ok(event) => signals_of(&dir, &event),
            Err(e) => {
                tracing::debug!(error = %e, "folder watch error; rescanning");
                vec![Signal::Rescan]
            }
        };
        for signal in signals {
            // A full queue drops the signal: the next rescan sees the file.
            let _ = tx.try_send(signal);
        }
    };
    let config = notify::Config::default().with_follow_symlinks(false);
    let watcher = RecommendedWatcher::new(handler, config)
        .and_then(|mut w| w.watch(root, RecursiveMode::NonRecursive).map(|()| w));
    match watcher {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::warn!(dir = %root.display(), error = %e, "cannot watch the folder for events; listing it periodically instead");
            None
        }
    }
}

/// Close-after-write and rename-into events name complete files; an event
/// that says some were lost asks for a rescan. Others are not needed: the
/// rescans see every file.
fn signals_of(root: &Path, event: &notify::Event) -> Vec<Signal> {
    if event.need_rescan() {
        return vec![Signal::Rescan];
    }
    let complete = matches!(
        event.kind,
        EventKind::Access(AccessKind::Close(AccessMode::Write))
            | EventKind::Modify(ModifyKind::Name(
                RenameMode::To | RenameMode::Both | RenameMode::Any
            ))
    );
    if !complete {
        return Vec::new();
    }
    event
        .paths
        .iter()
        .filter(|p| p.parent() == Some(root))
        .filter_map(|p| p.file_name())
        .map(|name| Signal::Complete(name.to_os_string()))
        .collect()
}
