//! Runs the jobs: one tokio task per job that sleeps until the job's
//! interval has passed (or it is woken, or the store closes) and then runs
//! one pass, each pass on a task of its own so that a panic in it is
//! caught and poisons only that job.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use super::{JobOutcome, JobReport, JobStatus, ms};
use crate::clock::Clock;
use crate::error::{Error, panic_message};

/// One pass of a job, as a future the runtime can spawn.
pub(crate) type JobFuture = Pin<Box<dyn Future<Output = Result<JobOutcome, Error>> + Send>>;
/// A job's body: starts one pass.
pub(crate) type JobBody = Arc<dyn Fn() -> JobFuture + Send + Sync>;

/// A job as its module declares it.
pub(crate) struct JobSpec {
    pub(crate) name: &'static str,
    pub(crate) about: &'static str,
    pub(crate) interval: Duration,
    pub(crate) body: JobBody,
}

/// A body that works on `part` while it lives; a pass after it is gone
/// is [`Error::Closed`].
pub(crate) fn body_on<P, F, Fut>(part: Weak<P>, pass: F) -> JobBody
where
    P: Send + Sync + 'static,
    F: Fn(Arc<P>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<JobOutcome, Error>> + Send + 'static,
{
    let pass = Arc::new(pass);
    Arc::new(move || {
        let part = part.upgrade();
        let pass = Arc::clone(&pass);
        Box::pin(async move {
            match part {
                Some(p) => pass(p).await,
                None => Err(Error::Closed),
            }
        })
    })
}

struct Slot {
    spec: JobSpec,
    status: Mutex<JobStatus>,
    wake: Notify,
    /// Held for a whole pass: scheduled and on-demand passes take turns.
    one_pass: tokio::sync::Mutex<()>,
}

impl Slot {
    fn status(&self) -> MutexGuard<'_, JobStatus> {
        // A status is plain data, whole after any panic: take it back.
        self.status.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Runs one job soon, from any thread; it holds the job weakly, so it
/// keeps nothing of a closed store alive.
#[derive(Clone)]
pub(crate) struct JobWaker(Weak<Slot>);

impl JobWaker {
    /// Wakes the job (a wake while a pass runs brings one more pass).
    pub(crate) fn wake(&self) {
        if let Some(slot) = self.0.upgrade() {
            slot.wake.notify_one();
        }
    }
}

/// Entries a buffer that a job drains may hold before the job is woken
/// early (see [`WakeAt`]).
pub(crate) const WAKE_AT: usize = 4096;

/// Wakes a job early when a buffer it drains fills: reads to audit and
/// access counts are noted in memory between the job's passes, and a
/// burst of reads (a scan of every file) would otherwise grow them until
/// the job's interval. The waker is set once the job runtime exists.
#[derive(Default)]
pub(crate) struct WakeAt(std::sync::OnceLock<JobWaker>);

impl WakeAt {
    /// Wakes `waker`'s job from now on.
    pub(crate) fn set(&self, waker: JobWaker) {
        let _ = self.0.set(waker);
    }

    /// Notes that the buffer now holds `len` entries: every [`WAKE_AT`]
    /// the job is woken (again, if a flush failed and the buffer grew).
    pub(crate) fn noted(&self, len: usize) {
        if len > 0
            && len.is_multiple_of(WAKE_AT)
            && let Some(waker) = self.0.get()
        {
            waker.wake();
        }
    }
}

/// The jobs of one store and the tasks that schedule them.
pub(crate) struct JobRuntime {
    clock: Clock,
    slots: Vec<Arc<Slot>>,
    cancel: watch::Sender<bool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl JobRuntime {
    pub(crate) fn new(clock: Clock, specs: Vec<JobSpec>) -> JobRuntime {
        let slots = specs
            .into_iter()
            .map(|spec| {
                let status = JobStatus {
                    name: spec.name,
                    about: spec.about,
                    interval_ms: ms(spec.interval),
                    runs: 0,
                    failures: 0,
                    running: false,
                    last_started: None,
                    last_report: None,
                    last_error: None,
                    poisoned: false,
                };
                Arc::new(Slot {
                    spec,
                    status: Mutex::new(status),
                    wake: Notify::new(),
                    one_pass: tokio::sync::Mutex::new(()),
                })
            })
            .collect();
        JobRuntime {
            clock,
            slots,
            cancel: watch::Sender::new(false),
            tasks: Mutex::new(Vec::new()),
        }
    }

    /// Starts scheduling every job (a no-op outside a tokio runtime: jobs
    /// then run only on demand).
    pub(crate) fn start(&self) {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let mut tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        for slot in &self.slots {
            let (slot, clock, cancel) = (
                Arc::clone(slot),
                self.clock.clone(),
                self.cancel.subscribe(),
            );
            tasks.push(rt.spawn(schedule(slot, clock, cancel)));
        }
    }

    /// A handle that runs the job `name` soon when woken from anywhere (a
    /// watcher's event thread); `None` if there is no such job.
    pub(crate) fn waker(&self, name: &str) -> Option<JobWaker> {
        let slot = self.slots.iter().find(|s| s.spec.name == name)?;
        Some(JobWaker(Arc::downgrade(slot)))
    }

    /// Runs `name` soon, without waiting for its interval.
    pub(crate) fn trigger(&self, name: &str) {
        if let Some(slot) = self.slots.iter().find(|s| s.spec.name == name) {
            slot.wake.notify_one();
        }
    }

    /// Degraded while a job is poisoned or its last pass failed.
    pub(crate) fn health(&self) -> crate::health::PartHealth {
        use crate::health::{HealthStatus, PartHealth};
        let jobs = self.list();
        let mut trouble = Vec::new();
        for j in &jobs {
            if j.poisoned {
                trouble.push(format!("{} is stopped (it panicked)", j.name));
            } else if let Some((at, e)) = &j.last_error
                && j.last_report.as_ref().is_none_or(|r| r.started_at <= *at)
            {
                trouble.push(format!("{}'s last pass failed: {e}", j.name));
            }
        }
        if trouble.is_empty() {
            let runs: u64 = jobs.iter().map(|j| j.runs).sum();
            let detail = format!("{} jobs, {runs} passes so far", jobs.len());
            PartHealth::new("jobs", HealthStatus::Healthy, detail)
        } else {
            PartHealth::new("jobs", HealthStatus::Degraded, trouble.join("; "))
        }
    }

    pub(crate) fn list(&self) -> Vec<JobStatus> {
        self.slots.iter().map(|s| s.status().clone()).collect()
    }

    pub(crate) fn status(&self, name: &str) -> Result<JobStatus, Error> {
        Ok(self.slot(name)?.status().clone())
    }

    pub(crate) async fn run(&self, name: &str) -> Result<JobReport, Error> {
        let slot = Arc::clone(self.slot(name)?);
        pass(&slot, &self.clock, &self.cancel.subscribe()).await
    }

    fn slot(&self, name: &str) -> Result<&Arc<Slot>, Error> {
        self.slots
            .iter()
            .find(|s| s.spec.name == name)
            .ok_or_else(|| {
                let known: Vec<_> = self.slots.iter().map(|s| s.spec.name).collect();
                Error::invalid(
                    "job",
                    format!(
                        "no job is named {}; the jobs are: {}",
                        crate::error::quote(name),
                        known.join(", ")
                    ),
                )
            })
    }

    /// Tells every job to stop; a pass already running finishes.
    pub(crate) fn cancel(&self) {
        self.cancel.send_replace(true);
    }

    /// Stops every job and waits for passes already running to finish.
    pub(crate) async fn stop(&self) {
        self.cancel();
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|e| e.into_inner()));
        for t in tasks {
            let _ = t.await;
        }
    }
}

impl Drop for JobRuntime {
    fn drop(&mut self) {
        self.cancel();
    }
}

/// A job's scheduling loop, until the store closes or the job is poisoned.
async fn schedule(slot: Arc<Slot>, clock: Clock, mut cancel: watch::Receiver<bool>) {
    let interval = slot.spec.interval;
    // The first pass comes one interval after the store opened (a module
    // with work left from the last run triggers one at open).
    let mut delay = interval;
    loop {
        if delay.is_zero() {
            tokio::task::yield_now().await;
        } else {
            tokio::select! {
                biased;
                _ = cancel.wait_for(|stop| *stop) => return,
                () = tokio::time::sleep(delay) => {}
                () = slot.wake.notified() => {}
            }
        }
        if *cancel.borrow() {
            return;
        }
        delay = match pass(&slot, &clock, &cancel).await {
            Ok(report) if report.more => Duration::ZERO,
            Ok(_) => interval,
            Err(Error::Closed | Error::JobPoisoned { .. }) => return,
            Err(_) => interval,
        };
    }
}

/// Runs one pass of a job and records it.
async fn pass(
    slot: &Slot,
    clock: &Clock,
    cancel: &watch::Receiver<bool>,
) -> Result<JobReport, Error> {
    let name = slot.spec.name;
    let _turn = slot.one_pass.lock().await;
    if *cancel.borrow() {
        return Err(Error::Closed);
    }
    let started_at = clock.now();
    {
        let mut s = slot.status();
        if s.poisoned {
            return Err(poisoned(
                name,
                s.last_error.as_ref().map(|(_, e)| e.as_str()),
            ));
        }
        s.running = true;
        s.last_started = Some(started_at);
    }
    let span = tracing::debug_span!("job", job = name);
    let t0 = Instant::now();
    let result = {
        let _enter = span.enter();
        tokio::spawn((slot.spec.body)())
    }
    .await;
    let duration_us = u64::try_from(t0.elapsed().as_micros()).unwrap_or(u64::MAX);
    let mut s = slot.status();
    s.running = false;
    s.runs += 1;
    match result {
        Ok(Ok(outcome)) => {
            let report = outcome.report(name, started_at, duration_us, false);
            tracing::debug!(job = name, duration_us, more = report.more, "job pass done");
            s.last_report = Some(report.clone());
            Ok(report)
        }
        Ok(Err(Error::Closed)) => Err(Error::Closed),
        Ok(Err(e)) => {
            s.failures += 1;
            s.last_error = Some((clock.now(), e.to_string()));
            tracing::warn!(job = name, error = %e, "job pass failed; it runs again at its next interval");
            Err(e)
        }
        Err(join) => {
            let message = if join.is_panic() {
                panic_message(&*join.into_panic())
            } else {
                "its task was cancelled".into()
            };
            s.failures += 1;
            s.poisoned = true;
            s.last_error = Some((clock.now(), format!("panicked: {message}")));
            tracing::error!(job = name, %message, "job panicked; it is stopped until the store is reopened");
            Err(poisoned(name, Some(&message)))
        }
    }
}

fn poisoned(job: &'static str, message: Option<&str>) -> Error {
    Error::JobPoisoned {
        job,
        message: message.unwrap_or("a pass panicked").to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    fn spec(name: &'static str, interval: Duration, body: JobBody) -> JobSpec {
        JobSpec {
            name,
            about: "a test job",
            interval,
            body,
        }
    }

    /// A body counting its passes, reporting `more` for the first `more` of them.
    fn counting(passes: &Arc<AtomicU64>, more: u64) -> JobBody {
        let passes = Arc::clone(passes);
        Arc::new(move || {
            let n = passes.fetch_add(1, Ordering::SeqCst) + 1;
            Box::pin(async move {
                let mut o = JobOutcome::default();
                o.count("passes", n);
                o.more = n <= more;
                Ok(o)
            })
        })
    }

    #[tokio::test]
    async fn a_pass_on_demand_is_reported_and_kept() {
        let passes = Arc::new(AtomicU64::new(0));
        let rt = JobRuntime::new(
            Clock::System,
            vec![spec(
                "count",
                Duration::from_secs(3600),
                counting(&passes, 0),
            )],
        );
        let report = rt.run("count").await.unwrap();
        assert_eq!(
            (report.job, report.count("passes"), report.more),
            ("count", 1, false)
        );
        let s = rt.status("count").unwrap();
        assert_eq!(
            (s.runs, s.failures, s.poisoned, s.running),
            (1, 0, false, false)
        );
        assert_eq!(s.last_report, Some(report));
        assert!(matches!(
            rt.run("nope").await,
            Err(Error::InvalidInput { field: "job", .. })
        ));
    }

    #[tokio::test]
    async fn more_work_runs_again_at_once_then_waits_for_the_interval() {
        let passes = Arc::new(AtomicU64::new(0));
        let s = spec("drain", Duration::from_secs(3600), counting(&passes, 4));
        let rt = JobRuntime::new(Clock::System, vec![s]);
        rt.start();
        rt.trigger("drain");
        for _ in 0..2000 {
            if passes.load(Ordering::SeqCst) >= 5 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // Four passes said "more", the fifth did not: an hour to the next.
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(passes.load(Ordering::SeqCst), 5);
        rt.trigger("drain");
        for _ in 0..2000 {
            if passes.load(Ordering::SeqCst) == 6 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(passes.load(Ordering::SeqCst), 6, "a trigger runs it now");
        rt.stop().await;
        assert!(matches!(rt.run("drain").await, Err(Error::Closed)));
        assert_eq!(rt.status("drain").unwrap().runs, 6);
    }

    #[tokio::test]
    async fn a_full_buffer_wakes_its_job_before_the_interval() {
        let passes = Arc::new(AtomicU64::new(0));
        let rt = JobRuntime::new(
            Clock::System,
            vec![spec(
                "flush",
                Duration::from_secs(3600),
                counting(&passes, 0),
            )],
        );
        rt.start();
        let wake = WakeAt::default();
        wake.noted(WAKE_AT);
        wake.set(rt.waker("flush").unwrap());
        for len in 1..WAKE_AT {
            wake.noted(len);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(passes.load(Ordering::SeqCst), 0, "not full yet");
        for len in [WAKE_AT, 2 * WAKE_AT] {
            let before = passes.load(Ordering::SeqCst);
            wake.noted(len);
            for _ in 0..2000 {
                if passes.load(Ordering::SeqCst) > before {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            assert_eq!(passes.load(Ordering::SeqCst), before + 1, "woken at {len}");
        }
        rt.stop().await;
    }

    #[tokio::test]
    async fn a_panic_poisons_only_its_job() {
        let passes = Arc::new(AtomicU64::new(0));
        let boom: JobBody = Arc::new(|| Box::pin(async { panic!("boom") }));
        let rt = JobRuntime::new(
            Clock::System,
            vec![
                spec("boom", Duration::from_secs(3600), boom),
                spec("fine", Duration::from_secs(3600), counting(&passes, 0)),
            ],
        );
        let e = rt.run("boom").await.unwrap_err();
        assert!(
            matches!(&e, Error::JobPoisoned { job: "boom", message } if message == "boom"),
            "{e}"
        );
        let s = rt.status("boom").unwrap();
        assert!(s.poisoned);
        assert_eq!((s.runs, s.failures), (1, 1));
        assert!(s.last_error.unwrap().1.contains("boom"));
        // It stays stopped; its neighbour runs.
        assert!(matches!(
            rt.run("boom").await,
            Err(Error::JobPoisoned { .. })
        ));
        assert_eq!(rt.status("boom").unwrap().runs, 1);
        assert!(rt.run("fine").await.is_ok());
        let h = rt.health();
        assert_eq!(h.status, crate::HealthStatus::Degraded);
        assert!(h.detail.contains("boom is stopped"), "{h:?}");
    }

    #[tokio::test]
    async fn a_failure_is_kept_and_the_job_goes_on() {
        let fails = Arc::new(AtomicU64::new(0));
        let f = Arc::clone(&fails);
        let body: JobBody = Arc::new(move || {
            let n = f.fetch_add(1, Ordering::SeqCst);
            Box::pin(async move {
                if n == 0 {
                    Err(Error::invalid("x", "first pass fails"))
                } else {
                    Ok(JobOutcome::default())
                }
            })
        });
        let rt = JobRuntime::new(
            Clock::System,
            vec![spec("flaky", Duration::from_secs(1), body)],
        );
        assert_eq!(rt.health().status, crate::HealthStatus::Healthy);
        assert!(rt.run("flaky").await.is_err());
        let h = rt.health();
        assert_eq!(h.status, crate::HealthStatus::Degraded);
        assert!(h.detail.contains("first pass fails"), "{h:?}");
        assert!(rt.run("flaky").await.is_ok());
        assert_eq!(rt.health().status, crate::HealthStatus::Healthy);
        let s = rt.status("flaky").unwrap();
        assert_eq!((s.runs, s.failures, s.poisoned), (2, 1, false));
        assert!(s.last_error.unwrap().1.contains("first pass fails"));
        assert!(s.last_report.is_some());
    }

    #[tokio::test]
    async fn stop_waits_for_a_running_pass_to_finish_its_batch() {
        let (started_tx, started_rx) = tokio::sync::oneshot::channel::<()>();
        let started_tx = Arc::new(Mutex::new(Some(started_tx)));
        let finished = Arc::new(AtomicU64::new(0));
        let fin = Arc::clone(&finished);
        let body: JobBody = Arc::new(move || {
            let tx = started_tx.lock().unwrap().take();
            let fin = Arc::clone(&fin);
            Box::pin(async move {
                if let Some(tx) = tx {
                    let _ = tx.send(());
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
                fin.fetch_add(1, Ordering::SeqCst);
                Ok(JobOutcome::default())
            })
        });
        let s = spec("slow", Duration::from_secs(3600), body);
        let rt = JobRuntime::new(Clock::System, vec![s]);
        rt.start();
        rt.trigger("slow");
        started_rx.await.unwrap();
        rt.stop().await;
        assert_eq!(
            finished.load(Ordering::SeqCst),
            1,
            "stop waited for the pass"
        );
        assert!(!rt.status("slow").unwrap().running);
    }

    #[tokio::test]
    async fn a_body_whose_part_is_gone_reports_closed() {
        let part = Arc::new(7_u32);
        let body = body_on(Arc::downgrade(&part), |p: Arc<u32>| async move {
            let mut o = JobOutcome::default();
            o.count("seen", u64::from(*p));
            Ok(o)
        });
        let rt = JobRuntime::new(
            Clock::System,
            vec![spec("weak", Duration::from_secs(1), body)],
        );
        assert_eq!(rt.run("weak").await.unwrap().count("seen"), 7);
        drop(part);
        assert!(matches!(rt.run("weak").await, Err(Error::Closed)));
    }
}
