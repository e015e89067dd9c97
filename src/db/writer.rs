//! The group-commit writer: one thread owns redb's write lock and packs
//! whatever requests are queued into one transaction and one durable commit.
//!
//! redb allows one write transaction at a time and each `Immediate` commit
//! costs an fsync (~200 µs here), so one commit per request caps a store at
//! a few thousand writes a second however many callers there are. The
//! writer drains the queue (up to `max_batch` requests), runs each request
//! against the same transaction, commits once, and only then answers every
//! caller: a caller's future resolves after its write is durable.
//!
//! Failure rules:
//! * A request that fails with a request error (not found, conflict,
//!   invalid input, a corrupt record it read) must fail *before* it writes
//!   anything — every operation in this crate checks, then writes. Its
//!   batch-mates commit as if it had not been there.
//! * Any other error inside a request (the engine failing) may have left the
//!   transaction half-written, so the transaction is aborted, that request
//!   gets its error, and every other request of the batch is run again
//!   alone, in its own transaction.
//! * If the commit fails, every successful request of the batch gets the
//!   commit error; nothing of the batch is visible.
//! * A request (or the engine under it) that panics is treated as a request
//!   that failed in the engine: its caller gets [`Error::Corrupt`] about the
//!   file (see [`guard`](crate::db::guard)), its batch-mates are re-run
//!   alone, and the thread keeps serving. A panic in `begin_write` or
//!   `commit` fails that batch the same way.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

use redb::{Database, WriteTransaction};
use tokio::sync::{mpsc, oneshot};

use crate::db::guard::guarded;
use crate::db::reopen::Reopener;
use crate::db::riders::{Riders, Timer, Wait};
use crate::db::snapshot::ReadCache;
use crate::error::{Error, StorageContext};

/// Exclusive work, given the database and its path.
/// An `Err` instead of the database when it could not be reopened after an
/// I/O error.
type ExclusiveWork = Box<dyn FnOnce(Result<&mut Database, Error>, &Path) + Send>;
/// Work between two commits, given the database (shared) and its path.
type BetweenWork = Box<dyn FnOnce(Result<&Database, Error>, &Path) + Send>;

/// What the writer thread is asked to do, in queue order.
enum Request {
    /// A write, batched with its neighbours into one commit.
    Write(Box<dyn Job>),
    /// A write that joins the next batch, or commits alone at its
    /// deadline (see [`super::riders`]).
    Rider(Box<dyn Job>, std::time::Instant),
    /// Work with the database to itself (see [`Writer::exclusive`]).
    Exclusive(ExclusiveWork),
    /// Work while no write runs (see [`Writer::between`]).
    Between(BetweenWork),
}

/// One queued request.
trait Job: Send {
    /// Runs the request in `txn`; `Err` means the transaction must be aborted.
    fn run(&mut self, txn: &WriteTransaction) -> Result<(), Error>;
    /// Whether the request itself failed (before the commit).
    fn failed(&self) -> bool;
    /// Answers the caller once the fate of the transaction is known.
    fn finish(self: Box<Self>, commit: Result<(), &Error>);
}

struct TypedJob<T, F> {
    op: F,
    result: Option<Result<T, Error>>,
    reply: oneshot::Sender<Result<T, Error>>,
}

/// Where a request's answer arrives.
type Answer<T> = oneshot::Receiver<Result<T, Error>>;

impl<T, F> TypedJob<T, F>
where
    T: Send + 'static,
    F: FnMut(&WriteTransaction) -> Result<T, Error> + Send + 'static,
{
    /// A request running `op`, and where its answer arrives.
    fn boxed(op: F) -> (Box<dyn Job>, Answer<T>) {
        let (reply, answer) = oneshot::channel();
        let job = Box::new(TypedJob {
            op,
            result: None,
            reply,
        });
        (job, answer)
    }
}

impl<T, F> Job for TypedJob<T, F>
where
    T: Send,
    F: FnMut(&WriteTransaction) -> Result<T, Error> + Send,
{
    fn run(&mut self, txn: &WriteTransaction) -> Result<(), Error> {
        let out = (self.op)(txn);
        let fatal = match &out {
            Err(e) if !e.is_request_error() => Some(e.share()),
            _ => None,
        };
        self.result = Some(out);
        fatal.map_or(Ok(()), Err)
    }

    fn failed(&self) -> bool {
        matches!(self.result, Some(Err(_)))
    }

    fn finish(self: Box<Self>, commit: Result<(), &Error>) {
        let answer = match (self.result, commit) {
            (Some(Err(e)), _) => Err(e),
            (Some(Ok(v)), Ok(())) => Ok(v),
            (Some(Ok(_)), Err(e)) | (None, Err(e)) => Err(e.share()),
            (None, Ok(())) => Err(Error::Closed),
        };
        // The caller may have stopped waiting; its write still happened.
        let _ = self.reply.send(answer);
    }
}

/// Counts of the writer's work since open.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct WriteStats {
    /// Write requests answered.
    pub requests: u64,
    /// Transactions committed (or attempted) for them.
    pub commits: u64,
    /// The most requests one commit carried.
    pub largest_batch: u64,
    /// Requests refused (conflict, not found, ...) or failed.
    pub failed_requests: u64,
    /// Commits that carried both refused and successful requests: the
    /// successful ones committed, the refused ones changed nothing.
    pub mixed_commits: u64,
}

#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    commits: AtomicU64,
    largest_batch: AtomicU64,
    failed_requests: AtomicU64,
    mixed_commits: AtomicU64,
}

impl Counters {
    fn record(&self, requests: usize) {
        let n = requests as u64;
        self.requests.fetch_add(n, Ordering::Relaxed);
        self.commits.fetch_add(1, Ordering::Relaxed);
        self.largest_batch.fetch_max(n, Ordering::Relaxed);
    }
}

/// Sends requests to the writer thread.
pub(crate) struct Writer {
    queue: std::sync::Mutex<Option<mpsc::Sender<Request>>>,
    thread: std::sync::Mutex<Option<JoinHandle<()>>>,
    counters: Arc<Counters>,
}

impl Writer {
    /// Starts the writer thread for `db`.
    pub(crate) fn start(
        db: Arc<RwLock<Database>>,
        cache: Arc<ReadCache>,
        path: PathBuf,
        max_batch: usize,
        queue_len: usize,
        quick_repair: bool,
        reopener: Option<Reopener>,
    ) -> Result<Self, Error> {
        let (tx, rx) = mpsc::channel(queue_len.max(1));
        let counters = Arc::new(Counters::default());
        let thread_counters = Arc::clone(&counters);
        let thread = std::thread::Builder::new()
            .name("bv-writer".into())
            .spawn(move || {
                let ctx = Ctx {
                    db: &db,
                    counters: &thread_counters,
                    cache: &cache,
                    path: &path,
                    quick_repair,
                    reopener: reopener.as_ref(),
                };
                run_writer(&ctx, rx, max_batch.max(1))
            })
            .map_err(|e| Error::io("starting the writer thread", e))?;
        Ok(Writer {
            queue: std::sync::Mutex::new(Some(tx)),
            thread: std::sync::Mutex::new(Some(thread)),
            counters,
        })
    }

    /// What the writer has done so far.
    pub(crate) fn stats(&self) -> WriteStats {
        WriteStats {
            requests: self.counters.requests.load(Ordering::Relaxed),
            commits: self.counters.commits.load(Ordering::Relaxed),
            largest_batch: self.counters.largest_batch.load(Ordering::Relaxed),
            failed_requests: self.counters.failed_requests.load(Ordering::Relaxed),
            mixed_commits: self.counters.mixed_commits.load(Ordering::Relaxed),
        }
    }

    /// Queues `op` and waits until its transaction is durably committed.
    ///
    /// `op` may run more than once (see the module doc), so it must not move
    /// its inputs out: clone them inside.
    pub(crate) async fn write<T, F>(&self, op: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: FnMut(&WriteTransaction) -> Result<T, Error> + Send + 'static,
    {
        self.enqueue(op).await?.await.map_err(|_| Error::Closed)?
    }

    /// Like [`write`](Self::write), but `op` is committed with the next
    /// batch of other writes instead of on its own, or alone once
    /// `max_wait` has passed with none (see [`super::riders`]); requests
    /// queued after it may commit before it.
    pub(crate) async fn write_beside<T, F>(&self, op: F, max_wait: Duration) -> Result<T, Error>
    where
        T: Send + 'static,
        F: FnMut(&WriteTransaction) -> Result<T, Error> + Send + 'static,
    {
        let (job, answer) = TypedJob::boxed(op);
        let deadline = std::time::Instant::now() + max_wait;
        self.send(Request::Rider(job, deadline)).await?;
        answer.await.map_err(|_| Error::Closed)?
    }

    /// Queues `op` and returns once it is queued (it waits only for room in
    /// the queue); the receiver gets the answer after the commit.
    pub(crate) async fn enqueue<T, F>(&self, op: F) -> Result<Answer<T>, Error>
    where
        T: Send + 'static,
        F: FnMut(&WriteTransaction) -> Result<T, Error> + Send + 'static,
    {
        let (job, answer) = TypedJob::boxed(op);
        self.send(Request::Write(job)).await?;
        Ok(answer)
    }

    /// Queues a request; [`Error::Closed`] once the writer stopped.
    async fn send(&self, request: Request) -> Result<(), Error> {
        let sender = match self.queue.lock() {
            Ok(q) => q.clone(),
            Err(_) => None,
        };
        let sender = sender.ok_or(Error::Closed)?;
        sender.send(request).await.map_err(|_| Error::Closed)
    }

    /// Runs `f` on the writer thread with the database to itself: after
    /// the writes queued before it have committed, under the engine's
    /// write lock (no transaction begins meanwhile), and before any write
    /// queued after it. A panic in `f` is [`Error::Corrupt`].
    pub(crate) async fn exclusive<T, F>(&self, f: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: FnOnce(&mut Database) -> Result<T, Error> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let work: ExclusiveWork = Box::new(move |db: Result<&mut Database, Error>, path: &Path| {
            let _ = reply.send(match db {
                Ok(db) => guarded(path, || f(db)),
                Err(e) => Err(e),
            });
        });
        self.send(Request::Exclusive(work)).await?;
        answer.await.map_err(|_| Error::Closed)?
    }

    /// Runs `f` on the writer thread between two commits: after the writes
    /// queued before it have committed (every page they wrote is in the
    /// file), and before any write queued after it begins. Unlike
    /// [`Writer::exclusive`], readers go on meanwhile. A panic in `f` is
    /// [`Error::Corrupt`].
    pub(crate) async fn between<T, F>(&self, f: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: FnOnce(&Database) -> Result<T, Error> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let work: BetweenWork = Box::new(move |db: Result<&Database, Error>, path: &Path| {
            let _ = reply.send(match db {
                Ok(db) => guarded(path, || f(db)),
                Err(e) => Err(e),
            });
        });
        self.send(Request::Between(work)).await?;
        answer.await.map_err(|_| Error::Closed)?
    }

    /// Whether the writer still takes requests (its thread has not ended
    /// and it was not shut down).
    pub(crate) fn is_running(&self) -> bool {
        let queue_open = self.queue.lock().is_ok_and(|q| q.is_some());
        let thread_alive = self
            .thread
            .lock()
            .is_ok_and(|t| t.as_ref().is_some_and(|h| !h.is_finished()));
        queue_open && thread_alive
    }

    /// Stops taking requests, lets the queued ones finish, and waits for the
    /// thread to end.
    pub(crate) fn shutdown(&self) {
        if let Ok(mut q) = self.queue.lock() {
            q.take();
        }
        let handle = self.thread.lock().ok().and_then(|mut t| t.take());
        if let Some(h) = handle {
            let _ = h.join();
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// What the writer thread works with.
struct Ctx<'a> {
    db: &'a RwLock<Database>,
    counters: &'a Counters,
    cache: &'a ReadCache,
    path: &'a Path,
    quick_repair: bool,
    /// Reopens the file after an I/O error (see [`super::reopen`]).
    reopener: Option<&'a Reopener>,
}

impl Ctx<'_> {
    /// Begins a write transaction; after an I/O error (redb's
    /// `PreviousIo`, or a reopen that failed) it reopens the file first.
    fn begin(&self) -> Result<WriteTransaction, Error> {
        if let Some(r) = self.reopener.filter(|r| r.is_broken()) {
            r.reopen(self.db, self.cache)?;
        }
        let try_begin = || {
            guarded(self.path, || {
                Ok(super::begin_write(
                    &super::shared(self.db),
                    self.quick_repair,
                ))
            })
        };
        match (try_begin()?, self.reopener) {
            (Err(e), Some(r)) if super::reopen::is_previous_io(&e) => {
                r.reopen(self.db, self.cache)?;
                try_begin()?.ctx("beginning a write transaction")
            }
            (txn, _) => txn.ctx("beginning a write transaction"),
        }
    }

    /// Runs one request; a panic in it is a fatal error of that request.
    fn run(&self, job: &mut Box<dyn Job>, txn: &WriteTransaction) -> Result<(), Error> {
        guarded(self.path, || job.run(txn))
    }

    fn abort(&self, txn: WriteTransaction) {
        let _ = guarded(self.path, || {
            txn.abort().ctx("aborting a write transaction")
        });
    }

    fn commit(&self, txn: WriteTransaction) -> Result<(), Error> {
        guarded(self.path, || {
            txn.commit().ctx("committing a write transaction")
        })
    }
}

fn run_writer(ctx: &Ctx<'_>, mut rx: mpsc::Receiver<Request>, max_batch: usize) {
    let mut batch: Vec<Box<dyn Job>> = Vec::with_capacity(max_batch);
    let mut riders = Riders::default();
    // Built at the first rider: a store that never sees one never has it.
    let timer = std::cell::OnceCell::new();
    let mut next = None;
    loop {
        let clock = || timer.get_or_init(Timer::new).as_ref();
        let first = match (next.take(), riders.deadline()) {
            (Some(request), _) => Some(request),
            (None, Some(deadline)) if let Some(timer) = clock() => {
                match timer.recv_until(&mut rx, deadline) {
                    Wait::Got(request) => Some(request),
                    Wait::TimedOut => {
                        commit_riders(ctx, &mut riders);
                        continue;
                    }
                    Wait::Closed => None,
                }
            }
            // No clock to wait on: riders go as they come (below).
            (None, Some(_)) => {
                commit_riders(ctx, &mut riders);
                continue;
            }
            (None, None) => rx.blocking_recv(),
        };
        let Some(first) = first else { break };
        match first {
            Request::Exclusive(work) => {
                // Queued before it: committed before it runs.
                commit_riders(ctx, &mut riders);
                run_exclusive(ctx, work);
                continue;
            }
            Request::Between(work) => {
                commit_riders(ctx, &mut riders);
                run_between(ctx, work);
                continue;
            }
            Request::Rider(job, deadline) => {
                riders.push(job, deadline);
                continue;
            }
            Request::Write(job) => batch.push(job),
        }
        while batch.len() < max_batch {
            match rx.try_recv() {
                Ok(Request::Write(job)) => batch.push(job),
                Ok(Request::Rider(job, deadline)) => riders.push(job, deadline),
                // Runs after this batch commits, in queue order.
                Ok(exclusive) => {
                    next = Some(exclusive);
                    break;
                }
                Err(_) => break,
            }
        }
        // After the batch's own requests: a rider never delays their start.
        batch.extend(riders.take());
        let _span = tracing::debug_span!("group_commit", requests = batch.len()).entered();
        ctx.counters.record(batch.len());
        commit_batch(ctx, std::mem::take(&mut batch));
    }
    // The queue is closed: riders still waiting commit before the end.
    commit_riders(ctx, &mut riders);
}

/// Commits the waiting riders, if any, as one batch of their own.
fn commit_riders(ctx: &Ctx<'_>, riders: &mut Riders<Box<dyn Job>>) {
    let batch = riders.take();
    if batch.is_empty() {
        return;
    }
    let _span =
        tracing::debug_span!("group_commit", requests = batch.len(), riders = true).entered();
    ctx.counters.record(batch.len());
    commit_batch(ctx, batch);
}

/// Work between commits: on the database as it is (reopened first if an
/// I/O error left the placeholder), readers going on.
fn run_between(ctx: &Ctx<'_>, work: BetweenWork) {
    let _span = tracing::info_span!("between_commits").entered();
    if let Some(r) = ctx.reopener.filter(|r| r.is_broken())
        && let Err(e) = r.reopen(ctx.db, ctx.cache)
    {
        return work(Err(e), ctx.path);
    }
    let db = crate::db::shared(ctx.db);
    work(Ok(&db), ctx.path);
}

/// Exclusive work: the shared snapshot is dropped first (it is a read
/// transaction that compaction would wait for), then the engine's write
/// lock is held while `work` runs.
fn run_exclusive(ctx: &Ctx<'_>, work: ExclusiveWork) {
    let _span = tracing::info_span!("exclusive").entered();
    ctx.cache.invalidate();
    if let Some(r) = ctx.reopener.filter(|r| r.is_broken())
        && let Err(e) = r.reopen(ctx.db, ctx.cache)
    {
        // Never on the placeholder.
        return work(Err(e), ctx.path);
    }
    let mut db = ctx.db.write().unwrap_or_else(|e| e.into_inner());
    // A reader may have cached a fresh snapshot between the first drop and
    // the lock; none can begin now.
    ctx.cache.invalidate();
    work(Ok(&mut db), ctx.path);
    drop(db);
    // What it did (a compaction moves pages) is seen by readers from now.
    ctx.cache.invalidate();
}

fn commit_batch(ctx: &Ctx<'_>, mut batch: Vec<Box<dyn Job>>) {
    let counters = ctx.counters;
    let txn = match ctx.begin() {
        Ok(t) => t,
        Err(e) => return batch.into_iter().for_each(|j| j.finish(Err(&e))),
    };
    for i in 0..batch.len() {
        if let Err(fatal) = ctx.run(&mut batch[i], &txn) {
            ctx.abort(txn);
            tracing::warn!(error = %fatal, "write request failed in the engine; re-running its batch-mates alone");
            let failed = batch.remove(i);
            failed.finish(Err(&fatal));
            return batch.into_iter().for_each(|job| commit_alone(ctx, job));
        }
    }
    let failed = batch.iter().filter(|j| j.failed()).count() as u64;
    counters
        .failed_requests
        .fetch_add(failed, Ordering::Relaxed);
    match ctx.commit(txn) {
        Ok(()) => {
            // Readers that start after the answers below must see this commit.
            ctx.cache.invalidate();
            if failed > 0 && (failed as usize) < batch.len() {
                counters.mixed_commits.fetch_add(1, Ordering::Relaxed);
            }
            batch.into_iter().for_each(|j| j.finish(Ok(())))
        }
        Err(e) => {
            tracing::error!(error = %e, "group commit failed");
            batch.into_iter().for_each(|j| j.finish(Err(&e)));
        }
    }
}

fn commit_alone(ctx: &Ctx<'_>, mut job: Box<dyn Job>) {
    let txn = match ctx.begin() {
        Ok(t) => t,
        Err(e) => return job.finish(Err(&e)),
    };
    if let Err(fatal) = ctx.run(&mut job, &txn) {
        ctx.abort(txn);
        return job.finish(Err(&fatal));
    }
    let outcome = ctx.commit(txn);
    if outcome.is_ok() {
        ctx.cache.invalidate();
    }
    job.finish(outcome.as_ref().map(|_| ()));
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub(in crate::db) const T: redb::TableDefinition<u64, u64> = redb::TableDefinition::new("t");

    pub(in crate::db) fn writer(dir: &Path) -> (Arc<RwLock<Database>>, Writer) {
        let path = dir.join("w.redb");
        let db = Arc::new(RwLock::new(Database::create(&path).unwrap()));
        let writer =
            Writer::start(Arc::clone(&db), Arc::default(), path, 64, 64, true, None).unwrap();
        (db, writer)
    }

    pub(in crate::db) fn put(
        k: u64,
    ) -> impl FnMut(&WriteTransaction) -> Result<u64, Error> + Send + 'static {
        move |txn| {
            txn.open_table(T).ctx("t")?.insert(k, k).ctx("t")?;
            Ok(k)
        }
    }

    pub(in crate::db) fn stored(db: &RwLock<Database>, k: u64) -> Option<u64> {
        use redb::ReadableDatabase;
        let txn = crate::db::shared(db).begin_read().unwrap();
        let t = txn.open_table(T).ok()?;
        t.get(k).unwrap().map(|v| v.value())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_panicking_request_fails_alone_and_the_writer_keeps_serving() {
        let dir = tempfile::tempdir().unwrap();
        let (db, writer) = writer(dir.path());
        let writer = Arc::new(writer);
        // A panic alone in its batch.
        let e = writer
            .write(|_txn: &WriteTransaction| -> Result<u64, Error> { panic!("boom in a job") })
            .await
            .unwrap_err();
        assert!(
            matches!(&e, Error::Corrupt { detail, .. } if detail.contains("boom in a job")),
            "{e:?}"
        );
        assert_eq!(writer.write(put(1)).await.unwrap(), 1);
        // A panic among batch-mates: they commit, it fails.
        let mut tasks = Vec::new();
        for k in 10..40u64 {
            let w = Arc::clone(&writer);
            tasks.push(tokio::spawn(async move {
                if k == 25 {
                    w.write(|_txn: &WriteTransaction| -> Result<u64, Error> { panic!("boom 25") })
                        .await
                } else {
                    w.write(put(k)).await
                }
            }));
        }
        for (k, task) in (10..40u64).zip(tasks) {
            let r = task.await.unwrap();
            if k == 25 {
                assert!(matches!(r, Err(Error::Corrupt { .. })), "{r:?}");
                assert_eq!(stored(&db, k), None);
            } else {
                assert_eq!(r.unwrap(), k);
                assert_eq!(stored(&db, k), Some(k));
            }
        }
        assert_eq!(writer.write(put(2)).await.unwrap(), 2);
        assert_eq!(stored(&db, 2), Some(2));
    }
}
