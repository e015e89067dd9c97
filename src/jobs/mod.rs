//! The one place a store runs background work.
//!
//! Key rotations finish in the background, the cache drives its memory
//! tier's housekeeping and sweeps its disk tier, and the lifecycle jobs
//! (expiry, purge, orphan collection) come next. Each is a *job*: a name,
//! an interval, and a bounded `run_once` that does one batch and returns a
//! [`JobReport`]. The [`runtime`] runs every job on its interval (at once
//! again while a report says [`more`](JobReport::more) work remains), runs
//! one on demand ([`Jobs::run`]), never runs two passes of one job at the
//! same time, keeps each job's last run, report and error for health
//! checks ([`Jobs::list`]), stops a job that panics (it is *poisoned*
//! until the store is reopened), and stops them all when the store
//! closes, letting a pass that has started finish its batch.
//!
//! A job's body holds only weak handles to the parts it works on, so a
//! job never keeps a dropped store open.
//!
//! # Examples
//!
//! ```
//! # use bharatvoice_store::*;
//! # #[tokio::main] async fn main() -> Result<(), Error> {
//! # let dir = tempfile::tempdir().unwrap();
//! let store = Store::open(Config::new(dir.path())).await?;
//! let names: Vec<_> = store.jobs().list().into_iter().map(|j| j.name).collect();
//! assert!(names.contains(&"key-rotation"));
//! let report = store.jobs().run("key-rotation").await?;
//! assert!(!report.more);
//! assert_eq!(store.jobs().status("key-rotation")?.runs, 1);
//! # Ok(()) }
//! ```

pub(crate) mod runtime;

use std::time::Duration;

use serde::Serialize;

use crate::error::Error;
use crate::types::Timestamp;
pub(crate) use runtime::{JobRuntime, JobSpec};

/// What one pass of a job did, as its body returns it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct JobOutcome {
    pub(crate) counts: Vec<(&'static str, u64)>,
    pub(crate) skipped: Vec<(&'static str, u64)>,
    pub(crate) more: bool,
}

impl JobOutcome {
    /// Adds `n` to the count `what` (kept in the order first added).
    pub(crate) fn count(&mut self, what: &'static str, n: u64) {
        match self.counts.iter_mut().find(|(w, _)| *w == what) {
            Some((_, c)) => *c += n,
            None => self.counts.push((what, n)),
        }
    }

    /// Adds `n` to the things left alone for the reason `why`.
    pub(crate) fn skip(&mut self, why: &'static str, n: u64) {
        if n == 0 {
            return;
        }
        match self.skipped.iter_mut().find(|(w, _)| *w == why) {
            Some((_, c)) => *c += n,
            None => self.skipped.push((why, n)),
        }
    }

    /// The report of a pass that started at `started_at` and took
    /// `duration_us`.
    pub(crate) fn report(
        self,
        job: &'static str,
        started_at: Timestamp,
        duration_us: u64,
        dry_run: bool,
    ) -> JobReport {
        JobReport {
            job,
            started_at,
            duration_us,
            counts: self.counts,
            skipped: self.skipped,
            more: self.more,
            dry_run,
        }
    }
}

/// What one pass of a job did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JobReport {
    /// The job's name.
    pub job: &'static str,
    /// When the pass started (the store's clock).
    pub started_at: Timestamp,
    /// How long the pass took, in microseconds.
    pub duration_us: u64,
    /// What it did, by name (`blobs_rewrapped`, `rows_swept`, ...), in the
    /// order the job reports them.
    pub counts: Vec<(&'static str, u64)>,
    /// What it left alone, by reason (`young`, `restored_since_plan`,
    /// ...), with how many.
    pub skipped: Vec<(&'static str, u64)>,
    /// Work remains that this bounded pass left: the runtime runs the job
    /// again at once.
    pub more: bool,
    /// Nothing was changed: the counts say what a real pass would do.
    pub dry_run: bool,
}

impl JobReport {
    /// Adds a later pass of the same job to this report: counts and skips
    /// summed, durations added, `more` from the later pass.
    pub fn merge(&mut self, later: JobReport) {
        let mut sum = JobOutcome {
            counts: std::mem::take(&mut self.counts),
            skipped: std::mem::take(&mut self.skipped),
            more: later.more,
        };
        for (what, n) in later.counts {
            sum.count(what, n);
        }
        for (why, n) in later.skipped {
            sum.skip(why, n);
        }
        self.counts = sum.counts;
        self.skipped = sum.skipped;
        self.more = sum.more;
        self.duration_us = self.duration_us.saturating_add(later.duration_us);
    }

    /// How many were left alone for the reason `why` (0 if none).
    pub fn skipped(&self, why: &str) -> u64 {
        self.skipped
            .iter()
            .find(|(w, _)| *w == why)
            .map_or(0, |(_, n)| *n)
    }

    /// The count named `what` (0 when the pass did not report it).
    pub fn count(&self, what: &str) -> u64 {
        self.counts
            .iter()
            .find(|(w, _)| *w == what)
            .map_or(0, |(_, n)| *n)
    }
}

/// Where a job stands: for health checks and `bvstore jobs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JobStatus {
    /// The job's name.
    pub name: &'static str,
    /// What it does.
    pub about: &'static str,
    /// Time between passes when a pass leaves no work behind, in
    /// milliseconds.
    pub interval_ms: u64,
    /// Passes run since the store opened (scheduled and on demand).
    pub runs: u64,
    /// Passes that failed.
    pub failures: u64,
    /// A pass is running now.
    pub running: bool,
    /// When the last pass started.
    pub last_started: Option<Timestamp>,
    /// The last pass that succeeded.
    pub last_report: Option<JobReport>,
    /// The last failure, with when it happened; kept after later successes.
    pub last_error: Option<(Timestamp, String)>,
    /// A pass panicked: the job no longer runs until the store is reopened.
    pub poisoned: bool,
}

/// The background jobs of a store; from [`Store::jobs`](crate::Store::jobs).
pub struct Jobs<'a> {
    pub(crate) runtime: &'a JobRuntime,
}

impl Jobs<'_> {
    /// Every job, in the order they were registered.
    pub fn list(&self) -> Vec<JobStatus> {
        self.runtime.list()
    }

    /// The job named `name`; [`Error::InvalidInput`] if there is none.
    pub fn status(&self, name: &str) -> Result<JobStatus, Error> {
        self.runtime.status(name)
    }

    /// Runs one pass of the job named `name` now and returns its report,
    /// after any pass of it already running. A poisoned job is
    /// [`Error::JobPoisoned`]; a closed store is [`Error::Closed`].
    pub async fn run(&self, name: &str) -> Result<JobReport, Error> {
        self.runtime.run(name).await
    }
}

pub(crate) fn us(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

pub(crate) fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
