//! The tier-2 writer thread: batches, commits, sweeps, and recovery.
//!
//! One loop: wait until there is a command, the overlay's delay is up, or a
//! sweep or retry is due; commit everything queued in one transaction,
//! applied in issue order; answer the waiters. See the [module
//! doc](super) for the rules it keeps.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use redb::Database;

use super::apply::{Cause, Meta, Tables};
use super::{CLOSED, Cmd, Command, DEGRADED, FLUSH_AT, HEALTHY, Overlay, Reply, Shared, open};

/// Keys remembered while degraded before the writer gives up on tracking
/// them one by one and empties tier 2 at recovery instead.
const MISSED_MAX: usize = 100_000;
/// Rows one sweep looks at, per kind of check.
const SWEEP_LIMIT: usize = 10_000;

struct Batch {
    commands: Vec<Command>,
    overlay: Arc<Overlay>,
}

enum Work {
    Batch(Batch),
    Tick,
    Exit(Batch),
}

struct Writer<'a> {
    shared: &'a Shared,
    db: Option<Arc<Database>>,
    missed: HashSet<Box<str>>,
    missed_all: bool,
    cursor: Option<String>,
    next_retry: Instant,
    /// Damage was met: set the file aside before the next reopen.
    set_aside: bool,
}

pub(super) fn run(shared: &Arc<Shared>, db: Option<Arc<Database>>) {
    let now = Instant::now();
    let mut w = Writer {
        shared,
        db,
        missed: HashSet::new(),
        missed_all: false,
        cursor: None,
        next_retry: now + shared.settings.retry_interval,
        set_aside: false,
    };
    loop {
        match w.wait() {
            Work::Batch(b) => w.process(b),
            Work::Tick => {}
            Work::Exit(b) => {
                if w.db.is_none() {
                    w.try_recover();
                }
                w.process(b);
                break;
            }
        }
        w.maintenance();
    }
    shared.state.store(CLOSED, Ordering::Release);
    shared.set_db(None);
    shared.release(w.db.take());
}

impl Writer<'_> {
    /// Takes the queued commands and the overlay (which stays readable as
    /// `committing` until the batch is done).
    fn take(q: &mut super::Queue) -> Batch {
        let overlay = Arc::new(std::mem::take(&mut q.overlay));
        q.first_pending = None;
        if !overlay.is_empty() {
            q.committing = Some(Arc::clone(&overlay));
        }
        Batch {
            commands: std::mem::take(&mut q.commands),
            overlay,
        }
    }

    fn empty() -> Batch {
        Batch {
            commands: Vec::new(),
            overlay: Arc::default(),
        }
    }

    fn wait(&mut self) -> Work {
        let Ok(mut q) = self.shared.queue.lock() else {
            return Work::Exit(Self::empty());
        };
        let delay = self.shared.settings.write_behind.unwrap_or(Duration::ZERO);
        loop {
            let now = Instant::now();
            if q.closing {
                return Work::Exit(Self::take(&mut q));
            }
            if q.damage.is_some() {
                return Work::Tick;
            }
            let overlay_due = q.first_pending.is_some_and(|t| {
                self.db.is_none() || q.overlay.len() >= FLUSH_AT || now >= t + delay
            });
            if !q.commands.is_empty() || overlay_due {
                return Work::Batch(Self::take(&mut q));
            }
            let retry = self.db.is_none().then_some(self.next_retry);
            let pending = q.first_pending.map(|t| t + delay);
            let until = match (retry, pending) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let woken = match until {
                Some(until) if now >= until => return Work::Tick,
                Some(until) => self
                    .shared
                    .wake
                    .wait_timeout(q, until - now)
                    .map(|(q, _)| q)
                    .map_err(drop),
                None => self.shared.wake.wait(q).map_err(drop),
            };
            q = match woken {
                Ok(q) => q,
                Err(_) => return Work::Exit(Self::empty()),
            };
        }
    }

    fn process(&mut self, mut batch: Batch) {
        let after: Vec<Command> = batch
            .commands
            .extract_if(.., |c| matches!(c.cmd, Cmd::Sweep | Cmd::Compact))
            .collect();
        self.commit_batch(batch);
        for c in after {
            let reply = match c.cmd {
                Cmd::Compact => self.compact(),
                _ => self.sweep(),
            };
            if let Some(tx) = c.reply {
                let _ = tx.send(reply);
            }
        }
    }

    fn commit_batch(&mut self, batch: Batch) {
        if batch.commands.is_empty() && batch.overlay.is_empty() {
            return;
        }
        let _span = tracing::debug_span!(
            "cache_tier2_commit",
            commands = batch.commands.len(),
            overlay = batch.overlay.len()
        )
        .entered();
        let outcome = match &self.db {
            Some(db) => self
                .shared
                .engine("committing", || commit(self.shared, db, &batch))
                .map_err(Some),
            None => Err(None),
        };
        match outcome {
            Ok((replies, meta, removed)) => {
                self.shared.commits.fetch_add(1, Ordering::Relaxed);
                self.shared.publish_meta(&meta);
                self.count(&removed);
                self.forget_overlay();
                for (c, r) in batch.commands.into_iter().zip(replies) {
                    if let Some(tx) = c.reply {
                        let _ = tx.send(r);
                    }
                }
            }
            Err(e) => {
                if let Some(e) = e {
                    self.degrade(e);
                }
                self.absorb(batch);
            }
        }
    }

    /// The batch's overlay is in the file now (or remembered as missed).
    fn forget_overlay(&self) {
        if let Ok(mut q) = self.shared.queue.lock() {
            q.committing = None;
            self.shared
                .pending
                .store(q.overlay.len() as u64, Ordering::Relaxed);
        }
    }

    fn count(&self, removed: &[Cause]) {
        let e = &self.shared.counters.t2_evictions;
        for c in removed {
            match c {
                Cause::Size => e.size.incr(),
                Cause::Expired => e.expired.incr(),
                Cause::Explicit => e.explicit.incr(),
                Cause::Tag => e.tag.incr(),
            }
        }
    }

    fn remember(&mut self, key: &str) {
        if self.missed_all {
            return;
        }
        if self.missed.len() >= MISSED_MAX {
            self.missed_all = true;
            self.missed.clear();
        } else {
            self.missed.insert(key.into());
        }
    }

    /// Remembers what a degraded tier 2 could not take, and answers. A
    /// waiter answered `Degraded` fails and changes nothing in memory (a
    /// `clear` or tag bump moves memory only once durable), but the row of
    /// its key may be behind memory now (a write-behind row of the failed
    /// batch): recovery drops it.
    fn absorb(&mut self, batch: Batch) {
        for k in batch.overlay.keys() {
            self.remember(k);
        }
        self.forget_overlay();
        for c in batch.commands {
            match &c.cmd {
                Cmd::Put { key, .. } | Cmd::Delete { key } => self.remember(key),
                Cmd::Clear { .. }
                | Cmd::TagBump { .. }
                | Cmd::Reclaim { .. }
                | Cmd::Flush
                | Cmd::Sweep
                | Cmd::Compact => {}
            }
            if let Some(tx) = c.reply {
                let _ = tx.send(Reply::Degraded);
            }
        }
    }

    /// Compacts the file: new lookups wait on the handle's slot meanwhile,
    /// and the compaction starts once the lookups in flight have let go of
    /// their handles (up to a second; then `shrank: None`).
    fn compact(&mut self) -> Reply {
        let Some(mine) = self.db.take() else {
            return Reply::Degraded;
        };
        drop(mine);
        let shared = self.shared;
        let Ok(mut slot) = shared.db.write() else {
            return Reply::Degraded;
        };
        let deadline = Instant::now() + Duration::from_secs(1);
        let outcome = loop {
            let Some(db) = slot.as_mut() else {
                break Ok(None);
            };
            if let Some(db) = Arc::get_mut(db) {
                break shared
                    .engine("compacting", || db.compact().map_err(redb::Error::from))
                    .map(Some);
            }
            if Instant::now() >= deadline {
                break Ok(None);
            }
            std::thread::sleep(Duration::from_millis(1));
        };
        self.db = slot.clone();
        drop(slot);
        match outcome {
            Ok(shrank) => Reply::Compacted { shrank },
            Err(e) => {
                self.shared.note_error(e);
                Reply::Degraded
            }
        }
    }

    fn degrade(&mut self, reason: String) {
        tracing::warn!(%reason, "cache tier 2 degraded; serving from memory and retrying");
        self.shared.state.store(DEGRADED, Ordering::Release);
        self.shared.set_db(None);
        self.shared.release(self.db.take());
        self.shared.note_error(reason);
        self.next_retry = Instant::now() + self.shared.settings.retry_interval;
    }

    fn maintenance(&mut self) {
        let now = Instant::now();
        let damage = self
            .shared
            .queue
            .lock()
            .ok()
            .and_then(|mut q| q.damage.take());
        if let Some(reason) = damage {
            if self.db.is_some() {
                self.degrade(reason);
            }
            self.set_aside = true;
            self.next_retry = now;
        }
        if self.db.is_none() && now >= self.next_retry {
            self.try_recover();
            self.next_retry = now + self.shared.settings.retry_interval;
        }
    }

    /// Reopens the file (set aside first if damage was met) and brings it
    /// in line with tier 1 before serving.
    fn try_recover(&mut self) {
        let path = &self.shared.settings.path;
        let mut set_aside = None;
        if self.set_aside && path.exists() {
            match open::set_aside(path, "damage met while serving") {
                Ok(a) => set_aside = Some(a),
                Err(reason) => {
                    self.shared.note_error(reason);
                    return;
                }
            }
        }
        self.set_aside = false;
        let (db, _, aside) =
            match open::open(path, &self.shared.fault, self.shared.settings.quick_repair) {
                Ok(opened) => opened,
                Err(reason) => {
                    tracing::debug!(%reason, "cache tier 2 still unavailable");
                    self.shared.note_error(reason);
                    return;
                }
            };
        let aside = aside.or(set_aside);
        let db = Arc::new(db);
        let reconcile = || -> Result<Meta, redb::Error> {
            let txn = super::begin_write(&db, self.shared.settings.quick_repair)?;
            let meta = {
                let mut t = Tables::open(&txn)?;
                let mem_gen = self.shared.generation.load(Ordering::Acquire);
                if self.missed_all {
                    t.clear(mem_gen)?;
                } else {
                    for key in &self.missed {
                        t.remove(key, Cause::Explicit)?;
                    }
                }
                t.meta.generation = t.meta.generation.max(mem_gen);
                self.shared
                    .generation
                    .fetch_max(t.meta.generation, Ordering::AcqRel);
                raise_tags(&mut t, self.shared, true)?;
                t.removed.clear();
                t.save_meta(self.shared.seq.load(Ordering::Acquire))?;
                t.meta
            };
            txn.commit()?;
            Ok(meta)
        };
        match self.shared.engine("recovering", reconcile) {
            Ok(meta) => {
                self.missed.clear();
                self.missed_all = false;
                self.shared.publish_meta(&meta);
                if let Some(a) = aside
                    && let Ok(mut s) = self.shared.set_aside.lock()
                {
                    *s = Some(a);
                }
                self.shared.set_db(Some(Arc::clone(&db)));
                self.db = Some(db);
                self.shared.state.store(HEALTHY, Ordering::Release);
                tracing::info!("cache tier 2 recovered");
            }
            Err(e) => {
                tracing::debug!(error = %e, "cache tier 2 recovery failed");
                self.shared.note_error(e);
                self.shared.release(Some(db));
            }
        }
    }

    /// Sweeps a bounded batch of expired and stale rows and holds the
    /// capacity bound, in one commit.
    fn sweep(&mut self) -> Reply {
        let Some(db) = self.db.clone() else {
            return Reply::Degraded;
        };
        let _span = tracing::debug_span!("cache_sweep").entered();
        let now = self.shared.settings.clock.now();
        let cursor = self.cursor.take();
        let run = || -> Result<(Meta, Vec<Cause>, Option<String>), redb::Error> {
            let txn = super::begin_write(&db, self.shared.settings.quick_repair)?;
            let out = {
                let mut t = Tables::open(&txn)?;
                t.sweep_expired(now, SWEEP_LIMIT)?;
                let next = t.sweep_stale(cursor.as_deref(), SWEEP_LIMIT)?;
                raise_tags(&mut t, self.shared, false)?;
                t.enforce_capacity(self.shared.settings.capacity)?;
                t.save_meta(self.shared.seq.load(Ordering::Acquire))?;
                (t.meta, std::mem::take(&mut t.removed), next)
            };
            txn.commit()?;
            Ok(out)
        };
        match self.shared.engine("sweeping", run) {
            Ok((meta, removed, next)) => {
                self.shared.commits.fetch_add(1, Ordering::Relaxed);
                self.shared.publish_meta(&meta);
                self.count(&removed);
                self.cursor = next;
                self.shared.tags.prune();
                let n = |cause: Cause| removed.iter().filter(|c| **c == cause).count() as u64;
                Reply::Swept {
                    expired: n(Cause::Expired),
                    stale: n(Cause::Tag) + n(Cause::Explicit),
                    evicted: n(Cause::Size),
                }
            }
            Err(e) => {
                self.degrade(e);
                Reply::Degraded
            }
        }
    }
}

/// Writes tag versions tier 2 may lack: every known tag after a recovery
/// (`all`), else the dirty ones. A dirty tag moves one past both versions,
/// so entries written under a version tier 2 never saw are stale.
fn raise_tags(t: &mut Tables<'_>, shared: &Shared, all: bool) -> Result<(), redb::Error> {
    for tag in shared.tags.all() {
        let dirty = tag.is_dirty();
        if !dirty && !all {
            continue;
        }
        let (durable, _) = t.tag(&tag.name)?;
        let target = if dirty {
            durable.max(tag.version()) + 1
        } else {
            tag.version()
        };
        let v = t.raise_tag(&tag.name, target)?;
        tag.raise_to(v);
        tag.clear_dirty();
    }
    Ok(())
}

type Committed = (Vec<Reply>, Meta, Vec<Cause>);

/// One transaction for a batch: overlay puts and commands in issue order.
fn commit(shared: &Shared, db: &Database, batch: &Batch) -> Result<Committed, redb::Error> {
    let puts: Vec<_> = batch.overlay.iter().collect();
    let mut order: Vec<(u64, bool, usize)> = puts
        .iter()
        .enumerate()
        .map(|(i, (_, (seq, _)))| (*seq, false, i))
        .chain(
            batch
                .commands
                .iter()
                .enumerate()
                .map(|(i, c)| (c.seq, true, i)),
        )
        .collect();
    order.sort_unstable();
    let now = shared.settings.clock.now();
    let run = || -> Result<Committed, redb::Error> {
        let txn = super::begin_write(db, shared.settings.quick_repair)?;
        let mut replies = vec![Reply::Done; batch.commands.len()];
        let out = {
            let mut t = Tables::open(&txn)?;
            for (_, is_cmd, i) in order {
                if !is_cmd {
                    let (key, (_, row)) = puts[i];
                    t.put(key, row)?;
                    continue;
                }
                match &batch.commands[i].cmd {
                    Cmd::Put { key, row } => {
                        t.put(key, row)?;
                    }
                    Cmd::Delete { key } => {
                        t.remove(key, Cause::Explicit)?;
                    }
                    Cmd::Reclaim { key } => t.reclaim(key, now)?,
                    Cmd::Clear { generation } => {
                        t.clear((*generation).max(t.meta.generation + 1))?;
                        replies[i] = Reply::Cleared {
                            generation: t.meta.generation,
                        };
                    }
                    Cmd::TagBump { tag, version } => {
                        let (version, rows) = t.bump_tag(&tag.name, *version)?;
                        replies[i] = Reply::Bumped { version, rows };
                    }
                    Cmd::Flush | Cmd::Sweep | Cmd::Compact => {}
                }
            }
            t.enforce_capacity(shared.settings.capacity)?;
            t.save_meta(shared.seq.load(Ordering::Acquire))?;
            (t.meta, std::mem::take(&mut t.removed))
        };
        txn.commit()?;
        Ok((replies, out.0, out.1))
    };
    run()
}
