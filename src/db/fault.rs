//! A fault-injecting storage backend for `store.redb`, as redb's own crash
//! tests use one: the N-th write, sync or `set_len` fails (`EIO` or
//! `ENOSPC`), or a write is cut short; reads can fail with `EIO`. The
//! crate's tests arm a plan for a data directory's `store.redb` and prove
//! that every acknowledged commit survives, that a commit whose write or
//! sync failed is reported failed (never retried as if it were safe), and
//! that the store opens cleanly once the fault is gone.
//!
//! Only the `fault-injection` feature builds it; a plan is looked up by
//! path when `store.redb` is opened, so a store without one uses redb's
//! own file backend.

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::io;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use redb::backends::FileBackend;
use redb::{BackendError, DatabaseError, StorageBackend};

/// What the armed call does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// Fails with `EIO`, writing nothing.
    Io,
    /// Fails with `ENOSPC`, writing nothing.
    NoSpace,
    /// Writes the first half of the data, then fails with `EIO` (a sync
    /// or `set_len` armed this way just fails).
    ShortWrite,
}

/// A fault plan: counts the mutating calls (write, sync, `set_len`) and
/// fails the armed one, once; can make every read fail.
#[derive(Debug, Default)]
pub struct StoreFaults {
    calls: AtomicU64,
    /// 1-based call number to fail; 0 = none.
    armed: AtomicU64,
    kind: Mutex<Option<FaultKind>>,
    /// The call number that failed, 0 = none yet.
    tripped: AtomicU64,
    /// What that call was: `write`, `sync` or `set_len`.
    tripped_on: Mutex<Option<&'static str>>,
    reads_fail: AtomicBool,
}

impl StoreFaults {
    /// A plan that fails nothing (and counts).
    pub fn new() -> Arc<StoreFaults> {
        Arc::new(StoreFaults::default())
    }

    /// Arms the `n`-th mutating call from now (1 = the next one).
    pub fn fail_call(&self, n: u64, kind: FaultKind) {
        if let Ok(mut k) = self.kind.lock() {
            *k = Some(kind);
        }
        self.armed
            .store(self.calls.load(Ordering::SeqCst) + n, Ordering::SeqCst);
    }

    /// Disarms the plan and lets reads through.
    pub fn clear(&self) {
        self.armed.store(0, Ordering::SeqCst);
        self.reads_fail.store(false, Ordering::SeqCst);
    }

    /// Makes every read fail with `EIO` (or succeed again).
    pub fn fail_reads(&self, fail: bool) {
        self.reads_fail.store(fail, Ordering::SeqCst);
    }

    /// Mutating calls made so far.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::SeqCst)
    }

    /// The call that failed (its number and kind of call), if one did.
    pub fn tripped(&self) -> Option<(u64, &'static str)> {
        let n = self.tripped.load(Ordering::SeqCst);
        let on = self.tripped_on.lock().ok().and_then(|o| *o);
        (n > 0).then_some((n, on.unwrap_or("?")))
    }

    /// Counts a call; the fault to raise if it is the armed one.
    fn step(&self, call: &'static str) -> Option<FaultKind> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        if n != self.armed.load(Ordering::SeqCst) {
            return None;
        }
        self.armed.store(0, Ordering::SeqCst);
        self.tripped.store(n, Ordering::SeqCst);
        if let Ok(mut on) = self.tripped_on.lock() {
            *on = Some(call);
        }
        self.kind.lock().ok().and_then(|k| *k)
    }
}

fn error(kind: FaultKind) -> io::Error {
    match kind {
        FaultKind::NoSpace => io::Error::from_raw_os_error(28),
        FaultKind::Io | FaultKind::ShortWrite => io::Error::from_raw_os_error(5),
    }
}

fn plans() -> &'static Mutex<HashMap<PathBuf, Arc<StoreFaults>>> {
    static PLANS: OnceLock<Mutex<HashMap<PathBuf, Arc<StoreFaults>>>> = OnceLock::new();
    PLANS.get_or_init(Mutex::default)
}

/// Arms `plan` for the `store.redb` of the data directory `data_dir`: the
/// next opens of that store go through it (until [`remove`]).
pub fn install(data_dir: &Path, plan: Arc<StoreFaults>) {
    if let Ok(mut p) = plans().lock() {
        p.insert(data_dir.join("store.redb"), plan);
    }
}

/// Opens of the store in `data_dir` use the plain file backend again.
pub fn remove(data_dir: &Path) {
    if let Ok(mut p) = plans().lock() {
        p.remove(&data_dir.join("store.redb"));
    }
}

/// The plan armed for the database file at `path`, if any.
pub(crate) fn plan_for(path: &Path) -> Option<Arc<StoreFaults>> {
    plans().lock().ok()?.get(path).cloned()
}

/// redb's file backend with a plan in front of it.
#[derive(Debug)]
pub(crate) struct FaultBackend {
    inner: FileBackend,
    plan: Arc<StoreFaults>,
}

impl FaultBackend {
    pub(crate) fn open(path: &Path, plan: Arc<StoreFaults>) -> Result<Self, DatabaseError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        Ok(FaultBackend {
            inner: FileBackend::new(file)?,
            plan,
        })
    }
}

impl StorageBackend for FaultBackend {
    fn len(&self) -> Result<u64, io::Error> {
        self.inner.len()
    }
    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), io::Error> {
        if self.plan.reads_fail.load(Ordering::SeqCst) {
            return Err(error(FaultKind::Io));
        }
        self.inner.read(offset, out)
    }
    fn set_len(&self, len: u64) -> Result<(), io::Error> {
        match self.plan.step("set_len") {
            Some(kind) => Err(error(kind)),
            None => self.inner.set_len(len),
        }
    }
    /// Counted, not performed: the process lives on, so its writes are in
    /// the page cache for the reopen (no power loss is simulated), and the
    /// hundreds of runs of a fault test stay fast.
    fn sync_data(&self) -> Result<(), io::Error> {
        match self.plan.step("sync") {
            Some(kind) => Err(error(kind)),
            None => Ok(()),
        }
    }
    fn write(&self, offset: u64, data: &[u8]) -> Result<(), io::Error> {
        match self.plan.step("write") {
            Some(FaultKind::ShortWrite) => {
                self.inner.write(offset, &data[..data.len() / 2])?;
                Err(error(FaultKind::ShortWrite))
            }
            Some(kind) => Err(error(kind)),
            None => self.inner.write(offset, data),
        }
    }
    crate::db::backend_wrap::forward_close_and_locks!();
}
