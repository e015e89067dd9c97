//! Writes that ride along with others' commits.
//!
//! A background job that writes while the application writes (the purge
//! removing records beside a stream of puts) costs each foreground write
//! that arrives during one of the job's commits a whole extra commit: it
//! waits for the job's fsync, then has its own. In `benches/lifecycle.rs`
//! that put a small put's p99 during a purge at 3.8–4.4 ms against 1.6–2.5
//! ms alone, and turning off every other part of the purge did not move
//! it. A *rider* ([`Writer::write_beside`](super::writer::Writer)) is not
//! committed on its own: the writer holds it until the next batch of
//! ordinary requests and appends it to that batch (after them, so it never
//! delays their start), or commits it alone once its deadline passes with
//! no batch to join. Its cost to the foreground write it rides with is
//! then the rider's own work inside the transaction, not a commit.
//!
//! A rider keeps every guarantee of a write (it is answered after its
//! transaction is durable, and fails alone as any request does) but none
//! of queue order: requests queued after it may commit before it. Queued
//! riders are committed before exclusive work runs and before the writer
//! stops.

use std::time::Instant;

use tokio::sync::mpsc;

/// Riders waiting for a batch, and the earliest of their deadlines.
pub(super) struct Riders<J> {
    waiting: Vec<J>,
    deadline: Option<Instant>,
}

impl<J> Default for Riders<J> {
    fn default() -> Self {
        Riders {
            waiting: Vec::new(),
            deadline: None,
        }
    }
}

impl<J> Riders<J> {
    /// Holds `job` until a batch comes, or until `deadline`.
    pub(super) fn push(&mut self, job: J, deadline: Instant) {
        self.waiting.push(job);
        self.deadline = Some(self.deadline.map_or(deadline, |d| d.min(deadline)));
    }

    /// The riders waiting, in the order they came; none wait afterwards.
    pub(super) fn take(&mut self) -> Vec<J> {
        self.deadline = None;
        std::mem::take(&mut self.waiting)
    }

    /// When the first of the waiting riders must be committed, with or
    /// without a batch (`None`: none waits).
    pub(super) fn deadline(&self) -> Option<Instant> {
        self.deadline
    }
}

/// What waiting for the next request until a deadline gave.
pub(super) enum Wait<R> {
    Got(R),
    TimedOut,
    Closed,
}

/// A clock to wait on from the writer thread (which runs outside any
/// runtime): a current-thread runtime with only the timer enabled.
pub(super) struct Timer(tokio::runtime::Runtime);

impl Timer {
    /// `None` if the runtime cannot be built; riders are then committed
    /// as soon as they come, like any write.
    pub(super) fn new() -> Option<Timer> {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .ok()
            .map(Timer)
    }

    /// The next request on `rx`, waiting at most until `deadline`.
    pub(super) fn recv_until<R>(&self, rx: &mut mpsc::Receiver<R>, deadline: Instant) -> Wait<R> {
        let until = tokio::time::Instant::from_std(deadline);
        match self
            .0
            .block_on(async { tokio::time::timeout_at(until, rx.recv()).await })
        {
            Ok(Some(r)) => Wait::Got(r),
            Ok(None) => Wait::Closed,
            Err(_) => Wait::TimedOut,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::{Arc, RwLock};
    use std::time::Duration;

    use redb::{Database, WriteTransaction};

    use crate::db::writer::Writer;
    use crate::db::writer::tests::{T, put, stored};
    use crate::error::{Error, StorageContext};

    fn writer(dir: &Path) -> (Arc<RwLock<Database>>, Arc<Writer>) {
        let (db, writer) = crate::db::writer::tests::writer(dir);
        (db, Arc::new(writer))
    }

    /// A rider queued with an hour to wait.
    fn ride(w: &Arc<Writer>, k: u64) -> tokio::task::JoinHandle<Result<u64, Error>> {
        let w = Arc::clone(w);
        tokio::spawn(async move { w.write_beside(put(k), Duration::from_secs(3600)).await })
    }

    /// Gives a rider's task a second to be queued, checking all along
    /// that the rider does not commit with no batch to join.
    async fn queued(handle: &tokio::task::JoinHandle<Result<u64, Error>>) {
        for _ in 0..200 {
            tokio::time::sleep(Duration::from_millis(5)).await;
            assert!(
                !handle.is_finished(),
                "a rider committed with no batch to join"
            );
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_rider_commits_with_the_next_write_not_alone() {
        let dir = tempfile::tempdir().unwrap();
        let (db, writer) = writer(dir.path());
        let rider = ride(&writer, 1);
        queued(&rider).await;
        assert_eq!(stored(&db, 1), None, "not committed before a batch comes");
        let before = writer.stats();
        assert_eq!(writer.write(put(2)).await.unwrap(), 2);
        assert_eq!(rider.await.unwrap().unwrap(), 1);
        let after = writer.stats();
        assert_eq!(after.commits - before.commits, 1, "one commit for both");
        assert_eq!(after.requests - before.requests, 2);
        assert_eq!((stored(&db, 1), stored(&db, 2)), (Some(1), Some(2)));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_rider_with_no_batch_commits_alone_at_its_deadline() {
        let dir = tempfile::tempdir().unwrap();
        let (db, writer) = writer(dir.path());
        let before = writer.stats();
        let started = std::time::Instant::now();
        let k = writer
            .write_beside(put(7), Duration::from_millis(30))
            .await
            .unwrap();
        assert_eq!(k, 7);
        assert!(
            started.elapsed() >= Duration::from_millis(30),
            "held until its deadline"
        );
        assert_eq!(writer.stats().commits - before.commits, 1);
        assert_eq!(stored(&db, 7), Some(7));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn waiting_riders_commit_before_exclusive_work_and_at_shutdown() {
        let dir = tempfile::tempdir().unwrap();
        let (db, writer) = writer(dir.path());
        let rider = ride(&writer, 3);
        queued(&rider).await;
        let seen = writer
            .exclusive(|db| {
                use redb::ReadableDatabase;
                let txn = db.begin_read().ctx("read")?;
                let t = txn.open_table(T).ctx("t")?;
                Ok(t.get(3).ctx("t")?.map(|v| v.value()))
            })
            .await
            .unwrap();
        assert_eq!(
            seen,
            Some(3),
            "the rider committed before the exclusive work"
        );
        assert_eq!(rider.await.unwrap().unwrap(), 3);

        let rider = ride(&writer, 4);
        queued(&rider).await;
        let w = Arc::clone(&writer);
        tokio::task::spawn_blocking(move || w.shutdown())
            .await
            .unwrap();
        assert_eq!(
            rider.await.unwrap().unwrap(),
            4,
            "committed as the writer stopped"
        );
        assert_eq!(stored(&db, 4), Some(4));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failing_rider_fails_alone_and_its_batch_commits() {
        let dir = tempfile::tempdir().unwrap();
        let (db, writer) = writer(dir.path());
        let w = Arc::clone(&writer);
        let rider = tokio::spawn(async move {
            w.write_beside(
                |_txn: &WriteTransaction| -> Result<u64, Error> { panic!("boom in a rider") },
                Duration::from_secs(3600),
            )
            .await
        });
        queued(&rider).await;
        assert_eq!(writer.write(put(5)).await.unwrap(), 5);
        let e = rider.await.unwrap().unwrap_err();
        assert!(matches!(e, Error::Corrupt { .. }), "{e:?}");
        assert_eq!(stored(&db, 5), Some(5));
    }
}
