//! Tier 2: `cache.redb`, the cache's own redb file. It serves tier-1
//! misses, holds more than memory, and survives restarts.
//!
//! # Who does what
//!
//! * One **writer thread** ([`writer`]) owns every write to the file. It
//!   packs whatever is queued into one transaction and one `Immediate`
//!   (fsync'd) commit, runs the sweep when the cache's housekeeping job
//!   asks for it, and brings a degraded tier back.
//! * **Write-behind** puts do not wait for it: they go into the *overlay*, a
//!   map of the newest not-yet-committed row per key (so repeated writes of
//!   a hot key cost one row write per batch), which lookups read before the
//!   file. The writer commits the overlay at most `max_delay` after the
//!   first pending write.
//! * `delete`, `clear`, `invalidate_tag` and write-through puts are
//!   *commands*: the caller waits until its command is committed.
//!
//! # Crash safety
//!
//! Every commit is `Immediate`, and the writer applies the overlay and the
//! commands of a batch in the order they were issued (each carries a
//! sequence number, taken under the key's lock), so a command that returned
//! is on disk and nothing issued before it can land after it. A crash loses
//! at most the write-behind puts of the last `max_delay`. Tag versions and
//! the `clear` generation only grow, and a row is written only if the
//! versions it recorded are the durable ones ([`apply`]), so a lost bump can
//! never make an old row current again.
//!
//! # Degradation
//!
//! A failed commit (or open) marks the tier degraded: lookups skip it, the
//! keys whose rows may now be behind tier 1 are remembered (all of them,
//! past a bound), and every `retry_interval` the writer reopens the file.
//! Once it is back, it deletes the remembered rows, raises the tag versions
//! of tags it could not load meanwhile, and only then serves again.
//!
//! A command is never acknowledged unless committed: while the tier is
//! degraded, or when its batch fails, its caller gets
//! [`Error::CacheUnavailable`] and memory is left as it was (see
//! [`write`](crate::cache::write)). Only write-behind puts are taken while
//! degraded; they stay in memory, and their keys are remembered.

//!
//! # Damage
//!
//! Every redb call on the file runs behind a panic guard ([`guard`]), and
//! every stored row carries a checksum over its key and bytes ([`row`]), so
//! a damaged page can neither take the store down nor reach a caller as a
//! value. Damage met at open sets the file aside at once ([`open`]); damage
//! met later, by a lookup (a panic, an engine error, a row that fails its
//! checksum: a miss for that lookup) or by the writer, is reported to the
//! writer, which degrades the tier, renames the file `cache.redb.damaged`
//! and rebuilds it empty before serving again.

pub(crate) mod apply;
mod backend;
mod guard;
pub(crate) mod open;
mod queue;
pub(crate) mod row;
pub(crate) mod scan;
mod writer;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use redb::{Database, ReadableDatabase};
use tokio::sync::oneshot;

use crate::cache::stats::{Counters, Tier2State, Tier2Stats};
use crate::cache::tags::{TagState, Tags};
use crate::clock::Clock;
use crate::error::Error;
use queue::{Cmd, Command, Overlay, Queue};
pub(crate) use queue::{Lookup, Reply};
use row::{ENTRIES, Row, TAGS};

/// Overlay size at which the writer commits without waiting for the delay.
const FLUSH_AT: usize = 4096;
/// Overlay size at which write-behind puts wait for a commit (backpressure).
const HIGH_WATER: usize = 65_536;

const HEALTHY: u8 = 0;
const DEGRADED: u8 = 1;
const CLOSED: u8 = 2;

/// Settings the writer needs.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) path: PathBuf,
    pub(crate) capacity: u64,
    pub(crate) write_behind: Option<Duration>,
    pub(crate) retry_interval: Duration,
    pub(crate) clock: Clock,
    /// Save the allocator state with every commit, so that a reopen after
    /// a crash is quick (always, outside the tests of the slow path).
    pub(crate) quick_repair: bool,
}

/// A write transaction of `cache.redb`, saving the allocator state when
/// `quick_repair`: after a crash the file reopens without a walk of every
/// page, so a large cache never delays the store's opening.
pub(crate) fn begin_write(
    db: &Database,
    quick_repair: bool,
) -> Result<redb::WriteTransaction, redb::TransactionError> {
    let mut txn = db.begin_write()?;
    txn.set_quick_repair(quick_repair);
    Ok(txn)
}

/// State shared by callers and the writer thread.
pub(crate) struct Shared {
    settings: Settings,
    queue: Mutex<Queue>,
    wake: Condvar,
    db: RwLock<Option<Arc<Database>>>,
    state: AtomicU8,
    last_error: Mutex<Option<String>>,
    set_aside: Mutex<Option<PathBuf>>,
    fault: Arc<AtomicBool>,
    seq: AtomicU64,
    entries: AtomicU64,
    bytes: AtomicU64,
    commits: AtomicU64,
    pending: AtomicU64,
    counters: Arc<Counters>,
    tags: Arc<Tags>,
    generation: Arc<AtomicU64>,
}

/// The tier-2 handle the cache holds.
pub(crate) struct Tier2 {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Tier2 {
    /// Opens `cache.redb` (blocking) and starts the writer. Never fails for
    /// the file's sake: a file that cannot be opened leaves the tier
    /// degraded. Sets `generation` to the file's.
    pub(crate) fn open(
        settings: Settings,
        counters: Arc<Counters>,
        tags: Arc<Tags>,
        generation: Arc<AtomicU64>,
    ) -> Result<Tier2, Error> {
        let fault = Arc::new(AtomicBool::new(false));
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            wake: Condvar::new(),
            db: RwLock::new(None),
            state: AtomicU8::new(DEGRADED),
            last_error: Mutex::new(None),
            set_aside: Mutex::new(None),
            fault,
            seq: AtomicU64::new(0),
            entries: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            commits: AtomicU64::new(0),
            pending: AtomicU64::new(0),
            counters,
            tags,
            generation,
            settings,
        });
        let db = match open::open(
            &shared.settings.path,
            &shared.fault,
            shared.settings.quick_repair,
        ) {
            Ok((db, meta, aside)) => {
                shared.generation.store(meta.generation, Ordering::Release);
                shared.seq.store(meta.next_seq, Ordering::Release);
                shared.publish_meta(&meta);
                if let Some(a) = aside {
                    shared.set_aside.lock().map(|mut s| *s = Some(a)).ok();
                }
                let db = Arc::new(db);
                shared.set_db(Some(Arc::clone(&db)));
                shared.state.store(HEALTHY, Ordering::Release);
                Some(db)
            }
            Err(reason) => {
                tracing::warn!(%reason, "cache tier 2 unavailable at open; serving from memory and retrying");
                shared.note_error(reason);
                None
            }
        };
        let thread_shared = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("bv-cache-writer".into())
            .spawn(move || {
                let run = std::panic::AssertUnwindSafe(|| writer::run(&thread_shared, db));
                if std::panic::catch_unwind(run).is_err() {
                    // Poisoned: tier 2 stays degraded for this process; the
                    // cache keeps serving from tier 1.
                    thread_shared.state.store(DEGRADED, Ordering::Release);
                    thread_shared.set_db(None);
                    thread_shared.note_error("the cache writer thread stopped".into());
                    tracing::error!(
                        "the cache writer thread panicked; tier 2 is off until restart"
                    );
                }
            })
            .map_err(|e| Error::io("starting the cache writer thread", e))?;
        Ok(Tier2 {
            shared,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// The next sequence number (take it under the key's lock).
    pub(crate) fn next_seq(&self) -> u64 {
        self.shared.seq.fetch_add(1, Ordering::AcqRel)
    }

    pub(crate) fn state(&self) -> Tier2State {
        match self.shared.state.load(Ordering::Acquire) {
            HEALTHY => Tier2State::Healthy,
            DEGRADED => Tier2State::Degraded,
            _ => Tier2State::Closed,
        }
    }

    /// The newest row of `key`: the overlay's, else the file's.
    pub(crate) fn lookup(&self, key: &str) -> Lookup {
        if let Ok(q) = self.shared.queue.lock() {
            let pending = q
                .overlay
                .get(key)
                .or_else(|| q.committing.as_ref().and_then(|c| c.get(key)));
            if let Some((_, row)) = pending {
                return Lookup::Row(Row::clone(row));
            }
        }
        let Some(db) = self.shared.db() else {
            return Lookup::Unavailable;
        };
        // The database moves into the guarded call: if this is its last
        // handle, it closes there too.
        let read = move || -> Result<Option<Result<Row, Error>>, redb::Error> {
            let txn = db.begin_read()?;
            let table = match txn.open_table(ENTRIES) {
                Ok(t) => t,
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
                Err(e) => return Err(e.into()),
            };
            Ok(table
                .get(key)?
                .map(|v| row::unseal(v.value(), key).map(|view| Row::from_view(&view))))
        };
        match self.shared.engine("reading", read) {
            Ok(None) => Lookup::Absent,
            Ok(Some(Ok(row))) => Lookup::Row(row),
            Ok(Some(Err(corrupt))) => {
                // A row fails its checksum: the file is damaged.
                self.shared.note_damage(corrupt.to_string());
                Lookup::Unavailable
            }
            Err(e) => {
                tracing::debug!(error = %e, "tier-2 read failed; counted as a miss");
                Lookup::Unavailable
            }
        }
    }

    /// The durable version of `tag`, `None` if tier 2 cannot be read.
    pub(crate) fn tag_version(&self, tag: &str) -> Option<u64> {
        let db = self.shared.db()?;
        let read = move || -> Result<u64, redb::Error> {
            let txn = db.begin_read()?;
            match txn.open_table(TAGS) {
                Ok(t) => Ok(t.get(tag)?.map_or(0, |g| g.value().0)),
                Err(redb::TableError::TableDoesNotExist(_)) => Ok(0),
                Err(e) => Err(e.into()),
            }
        };
        self.shared.engine("reading a tag", read).ok()
    }

    fn send(&self, cmd: Cmd, wait: bool) -> Option<oneshot::Receiver<Reply>> {
        self.send_seq(self.next_seq(), cmd, wait)
    }

    fn send_seq(&self, seq: u64, cmd: Cmd, wait: bool) -> Option<oneshot::Receiver<Reply>> {
        let (tx, rx) = oneshot::channel();
        let mut q = self.shared.queue.lock().ok()?;
        if q.closing {
            return None;
        }
        q.commands.push(Command {
            seq,
            cmd,
            reply: wait.then_some(tx),
        });
        drop(q);
        self.shared.wake.notify_one();
        wait.then_some(rx)
    }

    /// Sends `cmd` and waits for its commit: `Err` unless it is durable.
    async fn command(&self, cmd: Cmd) -> Result<Reply, Error> {
        self.command_seq(self.next_seq(), cmd).await
    }

    async fn command_seq(&self, seq: u64, cmd: Cmd) -> Result<Reply, Error> {
        let reply = match self.send_seq(seq, cmd, true) {
            Some(rx) => rx.await.unwrap_or(Reply::Degraded),
            None => Reply::Closed,
        };
        match reply {
            Reply::Degraded => Err(self.unavailable()),
            Reply::Closed => Err(Error::Closed),
            r => Ok(r),
        }
    }

    /// The error of a command tier 2 could not commit.
    pub(crate) fn unavailable(&self) -> Error {
        let reason = self.shared.last_error.lock().ok().and_then(|e| e.clone());
        Error::CacheUnavailable {
            reason: reason.unwrap_or_else(|| "cache.redb is not open".into()),
        }
    }

    /// `Ok` if tier 2 is healthy (a command may still fail at its commit).
    pub(crate) fn writable(&self) -> Result<(), Error> {
        match self.state() {
            Tier2State::Healthy => Ok(()),
            Tier2State::Closed => Err(Error::Closed),
            _ => Err(self.unavailable()),
        }
    }

    /// Writes `row` under `key`. Write-through: a waited-for command, `Err`
    /// unless durable. Write-behind: into the overlay, `Ok` at once (while
    /// tier 2 is degraded the row stays in memory only).
    pub(crate) async fn put(&self, key: &str, mut row: Row) -> Result<(), Error> {
        if self.shared.settings.write_behind.is_none() {
            self.writable()?;
            let seq = self.next_seq();
            row.seq = seq;
            let cmd = Cmd::Put {
                key: key.into(),
                row: Arc::new(row),
            };
            return self.command_seq(seq, cmd).await.map(drop);
        }
        let len = {
            let Ok(mut q) = self.shared.queue.lock() else {
                return Err(Error::Closed);
            };
            if q.closing {
                return Err(Error::Closed);
            }
            let seq = self.next_seq();
            row.seq = seq;
            q.overlay.insert(key.into(), (seq, Arc::new(row)));
            if q.first_pending.is_none() {
                q.first_pending = Some(Instant::now());
            }
            self.shared
                .pending
                .store(q.overlay.len() as u64, Ordering::Relaxed);
            q.overlay.len()
        };
        if len == 1 || len >= FLUSH_AT {
            self.shared.wake.notify_one();
        }
        if len >= HIGH_WATER {
            // Backpressure only: a degraded tier keeps the row in memory.
            let _ = self.command(Cmd::Flush).await;
        }
        Ok(())
    }

    /// Deletes `key`'s row and waits until that is durable; `Err` (and the
    /// row untouched) if it cannot be.
    pub(crate) async fn delete(&self, key: &str) -> Result<(), Error> {
        self.writable()?;
        if let Ok(mut q) = self.shared.queue.lock() {
            q.overlay.remove(key);
        }
        self.command(Cmd::Delete { key: key.into() })
            .await
            .map(drop)
    }

    /// Asks the writer to drop `key`'s row if it is stale or expired.
    pub(crate) fn reclaim(&self, key: &str) {
        let _ = self.send(Cmd::Reclaim { key: key.into() }, false);
    }

    /// Empties tier 2 and moves it past its generation (to `generation` at
    /// least); waits until durable and returns the generation now durable.
    /// Rows still in the overlay carry an older generation: the commit
    /// drops them.
    pub(crate) async fn clear(&self, generation: u64) -> Result<u64, Error> {
        self.writable()?;
        match self.command(Cmd::Clear { generation }).await? {
            Reply::Cleared { generation } => Ok(generation),
            _ => Ok(generation),
        }
    }

    /// Moves `tag` past its durable version (to `version` at least); waits
    /// until durable. Returns the version now durable and how many rows
    /// were written under the one it replaced.
    pub(crate) async fn bump_tag(
        &self,
        tag: Arc<TagState>,
        version: u64,
    ) -> Result<(u64, u64), Error> {
        self.writable()?;
        match self.command(Cmd::TagBump { tag, version }).await? {
            Reply::Bumped { version, rows } => Ok((version, rows)),
            _ => Ok((version, 0)),
        }
    }

    /// Sweeps expired and stale rows (a bounded batch of each) and holds
    /// the capacity bound; returns what it removed, as `(expired, stale,
    /// evicted)`. `Err` while tier 2 is degraded.
    pub(crate) async fn sweep(&self) -> Result<(u64, u64, u64), Error> {
        match self.command(Cmd::Sweep).await? {
            Reply::Swept {
                expired,
                stale,
                evicted,
            } => Ok((expired, stale, evicted)),
            _ => Ok((0, 0, 0)),
        }
    }

    /// Commits what is pending, then compacts `cache.redb`: whether it
    /// shrank. [`Error::Busy`] if lookups kept the file busy for a second;
    /// `Err` while tier 2 is degraded.
    pub(crate) async fn compact(&self) -> Result<bool, Error> {
        self.writable()?;
        match self.command(Cmd::Compact).await? {
            Reply::Compacted { shrank: Some(s) } => Ok(s),
            _ => Err(Error::Busy {
                what: "compacting the cache",
                detail: "lookups stayed in progress for a second".into(),
            }),
        }
    }

    /// Waits until every write issued before it is committed; `Err` if
    /// tier 2 could not take them.
    pub(crate) async fn flush(&self) -> Result<(), Error> {
        self.command(Cmd::Flush).await.map(drop)
    }

    /// Commits what is pending, stops the writer and closes the file.
    pub(crate) fn shutdown(&self) {
        if let Ok(mut q) = self.shared.queue.lock() {
            q.closing = true;
        }
        self.shared.wake.notify_all();
        let handle = self.thread.lock().ok().and_then(|mut t| t.take());
        if let Some(h) = handle {
            let _ = h.join();
        }
    }

    /// Makes the file's writes fail (or work again): for tests.
    #[cfg(any(test, feature = "fault-injection"))]
    pub(crate) fn set_fault(&self, on: bool) {
        self.shared.fault.store(on, Ordering::Release);
        self.shared.wake.notify_all();
    }

    pub(crate) fn stats(&self) -> Tier2Stats {
        let s = &self.shared;
        Tier2Stats {
            state: self.state(),
            hits: 0,
            misses: 0,
            entries: s.entries.load(Ordering::Relaxed),
            bytes: s.bytes.load(Ordering::Relaxed),
            capacity_bytes: s.settings.capacity,
            pending_writes: s.pending.load(Ordering::Relaxed),
            commits: s.commits.load(Ordering::Relaxed),
            evictions: Default::default(),
            last_error: match self.state() {
                Tier2State::Degraded => s.last_error.lock().ok().and_then(|e| e.clone()),
                _ => None,
            },
            set_aside: s.set_aside.lock().ok().and_then(|p| p.clone()),
        }
    }
}

impl Drop for Tier2 {
    /// A tier dropped without [`shutdown`](Tier2::shutdown) (a store whose
    /// open failed after the cache opened) still stops its writer thread.
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl Shared {
    fn db(&self) -> Option<Arc<Database>> {
        if self.state.load(Ordering::Acquire) != HEALTHY {
            return None;
        }
        self.db.read().ok().and_then(|d| d.clone())
    }

    fn set_db(&self, db: Option<Arc<Database>>) {
        let old = match self.db.write() {
            Ok(mut slot) => std::mem::replace(&mut *slot, db),
            Err(_) => db,
        };
        self.release(old);
    }

    /// Drops a handle of the database behind the guard (closing a damaged
    /// file may panic).
    fn release(&self, db: Option<Arc<Database>>) {
        if let Some(db) = db {
            let _ = guard::guard(&self.settings.path, "closing", move || drop(db));
        }
    }

    /// Runs `f`, one call into redb on the file, behind the panic guard
    /// ([`guard`]); a panic, or an error that means damage, is reported so
    /// that the writer sets the file aside. `what`: "reading", "committing".
    fn engine<T>(
        &self,
        what: &str,
        f: impl FnOnce() -> Result<T, redb::Error>,
    ) -> Result<T, String> {
        let path = &self.settings.path;
        let reason = match guard::guard(path, what, f) {
            Ok(Ok(v)) => return Ok(v),
            Ok(Err(e)) if !guard::is_damage(&e) => {
                return Err(format!("{what} {}: {e}", path.display()));
            }
            Ok(Err(e)) => format!("{what} {}: {e}", path.display()),
            Err(panic) => panic.to_string(),
        };
        self.note_damage(reason.clone());
        Err(reason)
    }

    /// Records damage met in the file and wakes the writer to set it aside.
    fn note_damage(&self, reason: String) {
        tracing::warn!(%reason, "cache.redb is damaged; it will be set aside and rebuilt");
        if let Ok(mut q) = self.queue.lock() {
            q.damage.get_or_insert(reason);
        }
        self.wake.notify_all();
    }

    fn note_error(&self, reason: String) {
        if let Ok(mut e) = self.last_error.lock() {
            *e = Some(reason);
        }
    }

    fn publish_meta(&self, m: &apply::Meta) {
        self.entries.store(m.entries, Ordering::Relaxed);
        self.bytes.store(m.bytes, Ordering::Relaxed);
    }
}
