//! What keeps a store clean over months without anyone tending it: files
//! and sessions expire by policy, soft-deleted records are purged after a
//! grace period with their blobs destroyed, orphans of crashes are
//! collected, old metric samples are dropped, read counts are written,
//! session contexts are kept within the limits; and a watch on the blob
//! directory marks blobs changed or removed behind the store's back as
//! damaged ([`tamper`]). (Recordings dropped into a watched folder are
//! taken in by [`crate::ingest`], a client of the public API.)
//!
//! Each is a job on the store's job runtime ([`crate::jobs`]): it runs on
//! its interval, does one bounded batch per pass (a foreground write waits
//! at most one batch: [`LifecycleConfig::batch`] records), re-checks in
//! its write transaction what it planned from a snapshot (so it is
//! idempotent, and a crash between passes loses nothing but the pass),
//! and reports what it did. [`Lifecycle`] runs them on demand, also as a
//! dry run that changes nothing.
//!
//! Retention is fixed when a file is stored: its own
//! [`PutOptions::retention_days`](crate::PutOptions), else its owner's
//! profile setting, else [`Config::default_retention_days`](crate::Config);
//! the expiry job soft-deletes what is past it.
//!
//! # Examples
//!
//! ```
//! # use bharatvoice_store::*;
//! # use std::time::Duration;
//! # #[tokio::main] async fn main() -> Result<(), Error> {
//! # let dir = tempfile::tempdir().unwrap();
//! let clock = ManualClock::new(Timestamp::now());
//! let config = Config::new(dir.path())
//!     .clock(clock.clone())
//!     .lifecycle(LifecycleConfig::default().purge_grace(Duration::ZERO));
//! let store = Store::open(config).await?;
//! let user = store.users().create(NewUser::new("meera", "meera@example.in").consent(ConsentKind::AudioStorage)).await?;
//! let me = Actor::User(user.id);
//! let mut options = PutOptions::content_type("audio/wav");
//! options.retention_days = Some(1);
//! let file = store.files().put_bytes(me, user.id, b"RIFF....", options).await?;
//! clock.advance(Duration::from_secs(2 * 86_400));
//! let expiry = store.lifecycle().run("expiry", false).await?;
//! assert_eq!(expiry.count("files_expired"), 1);
//! let purge = store.lifecycle().run("purge", false).await?;
//! assert_eq!(purge.count("blobs_destroyed"), 1);
//! assert!(matches!(store.files().stat(me, file.id).await, Err(Error::NotFound { .. })));
//! # Ok(()) }
//! ```

pub(crate) mod access;
pub(crate) mod config;
mod expiry;
mod orphans;
pub(crate) mod purge;
#[cfg(test)]
mod race_tests;
#[cfg(test)]
pub(crate) mod shred_tests;
pub(crate) mod tamper;
mod trim;

use std::time::Instant;

use crate::blob::BlobStore;
use crate::db::Db;
use crate::error::Error;
use crate::jobs::{JobOutcome, JobReport, JobRuntime};
pub use config::LifecycleConfig;
/// Where the resumable jobs' next passes start.
#[derive(Default)]
pub(crate) struct Cursors {
    pub(crate) orphans: orphans::OrphanCursor,
    pub(crate) sessions: trim::TrimCursor,
}
pub(crate) use tamper::TamperWatch;

/// The lifecycle jobs, in the order [`Lifecycle::run_all`] runs them.
pub const JOBS: [&str; 8] = [
    access::JOB,
    expiry::JOB,
    purge::JOB,
    orphans::JOB,
    expiry::METRICS_JOB,
    trim::JOB,
    crate::audit::READS_JOB,
    crate::audit::RETENTION_JOB,
];

/// The parts a lifecycle pass works on.
pub(crate) struct Parts<'a> {
    pub(crate) db: &'a Db,
    pub(crate) blobs: &'a BlobStore,
    pub(crate) config: &'a LifecycleConfig,
    pub(crate) audit: &'a crate::AuditConfig,
    pub(crate) cursors: &'a Cursors,
}

impl Parts<'_> {
    /// One pass of the job `name`; with `dry_run`, nothing changes and the
    /// pass covers everything due (it is not bounded by the batch).
    pub(crate) async fn pass(&self, name: &str, dry_run: bool) -> Result<JobOutcome, Error> {
        if self.db.is_read_only() && !dry_run {
            let mut out = JobOutcome::default();
            out.skip("store_read_only", 1);
            return Ok(out);
        }
        let outcome = match name {
            access::JOB => access::pass(self, dry_run).await?,
            expiry::JOB => expiry::pass(self, dry_run).await?,
            expiry::METRICS_JOB => expiry::metrics_pass(self, dry_run).await?,
            purge::JOB => purge::pass(self, dry_run).await?,
            orphans::JOB => orphans::pass(self, dry_run).await?,
            trim::JOB => trim::pass(self, dry_run).await?,
            crate::audit::READS_JOB if dry_run => {
                let mut out = JobOutcome::default();
                out.count("reads_appended", self.db.auditor().pending_reads() as u64);
                out
            }
            crate::audit::READS_JOB => crate::audit::flush_reads(self.db).await?,
            crate::audit::RETENTION_JOB => {
                crate::audit::retention_pass(self.db, self.audit, self.config.batch, dry_run)
                    .await?
            }
            other => return Err(unknown(other)),
        };
        if !dry_run {
            record(self.db, name, &outcome).await;
        }
        Ok(outcome)
    }
}

fn unknown(name: &str) -> Error {
    Error::invalid(
        "job",
        format!(
            "{} is not a lifecycle job (one of: {})",
            crate::error::quote(name),
            JOBS.join(", ")
        ),
    )
}

/// Writes a pass's counts as metric samples `lifecycle.<job>.<count>`,
/// and a `job.run` audit entry when the pass changed anything (a pass
/// with nothing to do, most of them, is not worth an entry); a failure is
/// logged (the pass itself is done).
async fn record(db: &Db, job: &str, outcome: &JobOutcome) {
    let now = db.now();
    let samples: Vec<crate::MetricSample> = outcome
        .counts
        .iter()
        .map(|(what, n)| {
            crate::MetricSample::new(
                format!("lifecycle.{}.{what}", job.replace('-', "_")),
                *n as f64,
            )
            .at(now)
        })
        .collect();
    let changed = outcome.counts.iter().any(|(_, n)| *n > 0);
    if samples.is_empty() && !changed {
        return;
    }
    let auditor = db.auditor();
    let entry =
        crate::audit::Entry::new(now, crate::audit::SYSTEM, "job.run", format!("job:{job}"));
    let result = db
        .write(move |txn| {
            samples
                .iter()
                .try_for_each(|s| crate::db::metrics::insert(txn, s))?;
            if changed {
                crate::audit::record(txn, &auditor, entry.clone())?;
            }
            Ok(())
        })
        .await;
    if let Err(e) = result {
        tracing::warn!(job, error = %e, "could not record a lifecycle report as metrics");
    }
}

/// The lifecycle jobs of a store; from [`Store::lifecycle`](crate::Store::lifecycle).
pub struct Lifecycle<'a> {
    pub(crate) parts: Parts<'a>,
    pub(crate) jobs: &'a JobRuntime,
}

impl Lifecycle<'_> {
    /// Runs one pass of the lifecycle job `name` (`access-counts`,
    /// `expiry`, `purge`, `orphans`, `metric-retention`) and returns its report. A real pass
    /// runs on the job runtime (after any pass of it already running) and
    /// becomes the job's last report; a dry run changes nothing, covers
    /// everything due, and is reported only to the caller.
    #[tracing::instrument(skip(self))]
    pub async fn run(&self, name: &str, dry_run: bool) -> Result<JobReport, Error> {
        crate::telemetry::observe(
            &self.parts.db.telemetry,
            crate::telemetry::op_key!("lifecycle.run"),
            async {
                if !JOBS.contains(&name) {
                    return Err(unknown(name));
                }
                if !dry_run {
                    return self.jobs.run(name).await;
                }
                let job = JOBS.into_iter().find(|j| *j == name).unwrap_or("unknown");
                let started_at = self.parts.db.now();
                let t0 = Instant::now();
                let outcome = self.parts.pass(name, true).await?;
                Ok(outcome.report(job, started_at, crate::jobs::us(t0.elapsed()), true))
            },
        )
        .await
    }

    /// Runs the job `name` pass after pass until no work is left, and
    /// returns the passes' counts summed (a dry run is one pass).
    pub async fn run_to_end(&self, name: &str, dry_run: bool) -> Result<JobReport, Error> {
        crate::telemetry::observe(
            &self.parts.db.telemetry,
            crate::telemetry::op_key!("lifecycle.run_to_end"),
            async {
                let mut total = self.run(name, dry_run).await?;
                while total.more && !dry_run {
                    let next = self.run(name, false).await?;
                    total.merge(next);
                }
                Ok(total)
            },
        )
        .await
    }

    /// Every lifecycle job to its end, in the order of [`JOBS`].
    pub async fn run_all(&self, dry_run: bool) -> Result<Vec<JobReport>, Error> {
        crate::telemetry::observe(
            &self.parts.db.telemetry,
            crate::telemetry::op_key!("lifecycle.run_all"),
            async {
                let mut out = Vec::with_capacity(JOBS.len());
                for job in JOBS {
                    out.push(self.run_to_end(job, dry_run).await?);
                }
                Ok(out)
            },
        )
        .await
    }

    /// Blobs marked damaged (their file went missing or changed behind the
    /// store's back), with when and why, in address order.
    pub fn damaged(&self) -> Result<Vec<(crate::BlobAddress, crate::Timestamp, String)>, Error> {
        crate::telemetry::observe_sync(
            &self.parts.db.telemetry,
            crate::telemetry::op_key!("lifecycle.damaged"),
            || {
                let rows = self.parts.db.read(crate::db::lifecycle::damaged)?;
                Ok(rows
                    .into_iter()
                    .map(|(a, d)| (a, d.found_at, d.reason))
                    .collect())
            },
        )
    }
}

/// The health of what is stored: degraded while blobs are marked damaged,
/// or while the tamper watch cannot watch as configured.
pub(crate) fn health(db: &Db, tamper: &TamperWatch) -> crate::health::PartHealth {
    use crate::health::{HealthStatus, PartHealth};
    let (watch_ok, watch) = tamper.status();
    match db.read(crate::db::lifecycle::damaged_count) {
        Ok(0) if watch_ok => PartHealth::new(
            "integrity",
            HealthStatus::Healthy,
            format!("no blob marked damaged; {watch}"),
        ),
        Ok(0) => PartHealth::new(
            "integrity",
            HealthStatus::Degraded,
            format!("no blob marked damaged, but {watch}"),
        ),
        Ok(n) => PartHealth::new(
            "integrity",
            HealthStatus::Degraded,
            format!("{n} blob(s) marked damaged: see `bvstore gc` and the store's log; {watch}"),
        ),
        Err(e) => PartHealth::new("integrity", HealthStatus::Unhealthy, e.to_string()),
    }
}

/// The job specs of the lifecycle, each working on the store while it
/// lives.
pub(crate) fn specs<P: Send + Sync + 'static>(
    part: &std::sync::Weak<P>,
    store_config: &crate::Config,
    parts_of: fn(&P) -> Parts<'_>,
    tamper: &std::sync::Arc<TamperWatch>,
) -> Vec<crate::jobs::JobSpec> {
    let spec = |name: &'static str, about: &'static str, interval| crate::jobs::JobSpec {
        name,
        about,
        interval,
        body: crate::jobs::runtime::body_on(part.clone(), move |p: std::sync::Arc<P>| async move {
            parts_of(&p).pass(name, false).await
        }),
    };
    let config = &store_config.lifecycle;
    let mut jobs = vec![
        spec(
            access::JOB,
            "writes the files' read counts and last read times, counted in memory",
            config.access_interval,
        ),
        spec(
            expiry::JOB,
            "soft-deletes files past their retention and sessions idle past their expiry",
            config.expiry_interval,
        ),
        spec(
            purge::JOB,
            "removes soft-deleted records past the grace period and destroys blobs no record needs",
            config.purge_interval,
        ),
        spec(
            orphans::JOB,
            "collects blob files no row names and old temporaries; marks rows whose blob is missing",
            config.orphan_interval,
        ),
        spec(
            expiry::METRICS_JOB,
            "drops metric samples older than the retention window",
            config.expiry_interval,
        ),
        spec(
            trim::JOB,
            "trims session contexts over the configured turns and bytes (after the limits were lowered)",
            config.expiry_interval,
        ),
    ];
    jobs.push(spec(
        crate::audit::READS_JOB,
        "appends the file reads noted in memory to the audit log",
        store_config.audit.read_flush_interval,
    ));
    jobs.push(spec(
        crate::audit::RETENTION_JOB,
        "drops audit entries older than the retention from the front of the chain, leaving an anchor",
        config.expiry_interval,
    ));
    if config.tamper_watch {
        jobs.push(tamper::spec(tamper, part, parts_of, config.tamper_debounce));
    }
    jobs
}
