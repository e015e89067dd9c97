//! The watch's event side: the `notify` watcher, and what its events say.
//!
//! The event thread does as little as it can: it maps each path back to a
//! blob address through the local directory's layout (anything else, such
//! as `tmp/` or a foreign file, is not a blob and is ignored), notes
//! whether it heard anything but a placement, and wakes the job. It never
//! touches the database or reads a blob, and never panics (a panic there
//! would end the watcher's thread).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use notify::event::{AccessKind, AccessMode, ModifyKind, RenameMode};
use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};

use crate::blob::backend::BlobBackend;
use crate::blob::backend::local::LocalDir;
use crate::jobs::runtime::JobWaker;
use crate::types::BlobAddress;

/// What the event thread heard of one blob file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Heard {
    /// Only that it was created or renamed into place: what the store's
    /// own puts look like.
    Placed,
    /// That it was written, truncated, changed, moved away or removed.
    Changed,
}

/// How the watch stands.
#[derive(Debug, Clone)]
pub(super) enum State {
    /// Not watched, as configured (or the store is closed): why.
    Off(String),
    Watching,
    /// Not watched (or only in part) though it should be: what to say.
    Broken(String),
}

/// Addresses the queue holds at most (about 35 bytes each). A watch this
/// far behind has, in effect, lost events: the queue is dropped and a
/// rescan is due, as when the kernel's own queue overflows.
pub(super) const QUEUE_LIMIT: usize = 16_384;

/// What the event thread hands to the job.
#[derive(Default)]
pub(super) struct Queue {
    pub(super) heard: HashMap<BlobAddress, Heard>,
    pub(super) rescan: bool,
    pub(super) last_event: Option<Instant>,
}

impl Queue {
    /// Notes `heard` of `address`; a change outweighs a placement. A full
    /// queue is dropped for a rescan ([`QUEUE_LIMIT`]): `false` then.
    pub(super) fn add(&mut self, address: BlobAddress, heard: Heard) -> bool {
        if self.heard.len() >= QUEUE_LIMIT && !self.heard.contains_key(&address) {
            self.heard = HashMap::new();
            self.rescan = true;
            return false;
        }
        let e = self.heard.entry(address).or_insert(heard);
        if heard == Heard::Changed {
            *e = heard;
        }
        true
    }
}

/// Shared by the event thread and the job.
pub(super) struct Shared {
    pub(super) queue: Mutex<Queue>,
    pub(super) state: Mutex<State>,
}

/// Plain data, whole after any panic: take it back.
pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Sets up a recursive watch of the local blob directory whose events go
/// to `shared`, waking the job. Blocking (it walks the directories).
pub(super) fn watch(
    backend: Arc<dyn BlobBackend>,
    shared: Arc<Shared>,
    waker: JobWaker,
) -> Result<RecommendedWatcher, String> {
    let Some(local) = backend.as_local() else {
        return Err("the blob backend is not a local directory".into());
    };
    let root = local.root().to_path_buf();
    let retired = local.retired_path();
    local.placed.enable();
    let events = Arc::clone(&shared);
    let handler = move |event: notify::Result<notify::Event>| {
        if let Some(local) = backend.as_local()
            && events.note(local, event)
        {
            waker.wake();
        }
    };
    let config = notify::Config::default().with_follow_symlinks(false);
    let mut w = RecommendedWatcher::new(handler, config).map_err(|e| describe(&e))?;
    w.watch(&root, RecursiveMode::Recursive)
        .map_err(|e| format!("watching {}: {}", root.display(), describe(&e)))?;
    // Retired blobs are the store's own, out of every address: what
    // happens to them (the purge overwrites and unlinks thousands a
    // second) is nothing the watch needs to hear of. The store's open
    // makes the directory, so it is there to leave out.
    if retired.is_dir()
        && let Err(e) = w.unwatch(&retired)
    {
        tracing::debug!(error = %describe(&e), "the retired blobs stay watched");
    }
    tracing::debug!(dir = %root.display(), "watching the blob directory");
    Ok(w)
}

/// A watch error in words an operator can act on.
fn describe(e: &notify::Error) -> String {
    match &e.kind {
        notify::ErrorKind::MaxFilesWatch => "the inotify watch limit is reached (raise \
            fs.inotify.max_user_watches, or set lifecycle.tamper_watch = false)"
            .into(),
        notify::ErrorKind::Io(io) if io.raw_os_error() == Some(libc::EMFILE) => {
            "too many inotify instances or open files (raise fs.inotify.max_user_instances)".into()
        }
        _ => e.to_string(),
    }
}

/// What an event's kind says of the blob files it names; `None` when it
/// changes nothing (opens and reads, the store's own among them; a
/// rename's "both" event, which repeats its "from" and "to" events).
fn heard_of(kind: &EventKind) -> Option<Heard> {
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => Some(Heard::Changed),
        EventKind::Access(_) | EventKind::Modify(ModifyKind::Name(RenameMode::Both)) => None,
        EventKind::Create(_) | EventKind::Modify(ModifyKind::Name(RenameMode::To)) => {
            Some(Heard::Placed)
        }
        _ => Some(Heard::Changed),
    }
}

impl Shared {
    /// Notes what one event says; `true` if the job has something to do.
    fn note(&self, local: &LocalDir, event: notify::Result<notify::Event>) -> bool {
        let event = match event {
            Ok(e) => e,
            Err(e) => {
                if matches!(e.kind, notify::ErrorKind::MaxFilesWatch) {
                    tracing::warn!(
                        "the inotify watch limit is reached: new blob directories are not watched"
                    );
                    *lock(&self.state) = State::Broken(format!(
                        "the tamper watch misses new blob directories: {}",
                        describe(&e)
                    ));
                } else {
                    tracing::warn!(error = %e, "the blob directory watch failed; rescanning");
                }
                return self.rescan();
            }
        };
        if event.need_rescan() {
            // Setting up a watch of many directories overflows the queue
            // with their opens; the rescan that follows a setup covers it.
            if lock(&self.queue).rescan {
                tracing::debug!("the blob directory watch lost events; a rescan is due");
            } else {
                tracing::warn!("the blob directory watch lost events; rescanning");
            }
            return self.rescan();
        }
        let Some(heard) = heard_of(&event.kind) else {
            return false;
        };
        // A directory moved or removed whole: its files left without an
        // event of their own.
        let gone = matches!(
            event.kind,
            EventKind::Remove(_) | EventKind::Modify(ModifyKind::Name(_))
        );
        let mut wake = false;
        let mut q = lock(&self.queue);
        for path in &event.paths {
            if let Some(address) = local.address_at(path) {
                if !q.add(address, heard) {
                    tracing::warn!(
                        limit = QUEUE_LIMIT,
                        "the tamper watch fell behind the blob directory's events; rescanning"
                    );
                }
                wake = true;
            } else if gone && local.is_layout_dir(path) {
                if path == local.root() {
                    *lock(&self.state) = State::Broken(
                        "the tamper watch is off: the blob directory was moved or removed".into(),
                    );
                }
                q.rescan = true;
                wake = true;
            }
        }
        if wake {
            q.last_event = Some(Instant::now());
        }
        wake
    }

    fn rescan(&self) -> bool {
        let mut q = lock(&self.queue);
        q.rescan = true;
        q.last_event = Some(Instant::now());
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{CreateKind, DataChange, MetadataKind, RemoveKind};

    #[test]
    fn only_placements_look_like_the_stores_own_writes() {
        let placed = [
            EventKind::Create(CreateKind::File),
            EventKind::Modify(ModifyKind::Name(RenameMode::To)),
        ];
        for k in placed {
            assert_eq!(heard_of(&k), Some(Heard::Placed), "{k:?}");
        }
        let changed = [
            EventKind::Modify(ModifyKind::Data(DataChange::Any)),
            EventKind::Modify(ModifyKind::Metadata(MetadataKind::Any)),
            EventKind::Modify(ModifyKind::Name(RenameMode::From)),
            EventKind::Access(AccessKind::Close(AccessMode::Write)),
            EventKind::Remove(RemoveKind::File),
            EventKind::Any,
            EventKind::Other,
        ];
        for k in changed {
            assert_eq!(heard_of(&k), Some(Heard::Changed), "{k:?}");
        }
        let nothing = [
            EventKind::Access(AccessKind::Open(AccessMode::Any)),
            EventKind::Access(AccessKind::Close(AccessMode::Read)),
            EventKind::Modify(ModifyKind::Name(RenameMode::Both)),
        ];
        for k in nothing {
            assert_eq!(heard_of(&k), None, "{k:?}");
        }
    }

    #[test]
    fn a_queue_too_far_behind_is_dropped_for_a_rescan() {
        let address = |i: usize| {
            let mut a = [0; 32];
            a[..8].copy_from_slice(&(i as u64).to_le_bytes());
            BlobAddress(a)
        };
        let mut q = Queue::default();
        for i in 0..QUEUE_LIMIT {
            assert!(q.add(address(i), Heard::Placed));
        }
        assert!(q.add(address(0), Heard::Changed), "one queued already");
        assert!(!q.rescan);
        assert!(!q.add(address(QUEUE_LIMIT), Heard::Placed));
        assert!(q.heard.is_empty() && q.rescan);
    }

    #[test]
    fn events_name_blobs_and_a_removed_directory_asks_for_a_rescan() {
        let dir = LocalDir::new("/data/blobs".into());
        let shared = Shared {
            queue: Mutex::default(),
            state: Mutex::new(State::Watching),
        };
        let a = BlobAddress([0x12; 32]);
        let event = |kind, path: std::path::PathBuf| Ok(notify::Event::new(kind).add_path(path));
        let placed = EventKind::Modify(ModifyKind::Name(RenameMode::To));
        assert!(shared.note(&dir, event(placed, dir.path_of(a))));
        let tmp = std::path::PathBuf::from("/data/tmp/x.part");
        assert!(!shared.note(&dir, event(placed, tmp)), "not a blob");
        let open = EventKind::Access(AccessKind::Open(AccessMode::Any));
        assert!(!shared.note(&dir, event(open, dir.path_of(a))), "a read");
        assert_eq!(lock(&shared.queue).heard[&a], Heard::Placed);
        let written = EventKind::Modify(ModifyKind::Data(DataChange::Any));
        assert!(shared.note(&dir, event(written, dir.path_of(a))));
        assert!(shared.note(&dir, event(placed, dir.path_of(a))));
        assert_eq!(lock(&shared.queue).heard[&a], Heard::Changed, "sticks");
        assert!(!lock(&shared.queue).rescan);
        let removed = EventKind::Remove(RemoveKind::Folder);
        assert!(shared.note(&dir, event(removed, "/data/blobs/12".into())));
        assert!(lock(&shared.queue).rescan);
        assert!(matches!(*lock(&shared.state), State::Watching));
        assert!(shared.note(&dir, event(removed, "/data/blobs".into())));
        assert!(matches!(*lock(&shared.state), State::Broken(_)));
        let lost = notify::Event::new(EventKind::Other).set_flag(notify::event::Flag::Rescan);
        lock(&shared.queue).rescan = false;
        assert!(shared.note(&dir, Ok(lost)));
        assert!(lock(&shared.queue).rescan);
    }
}
