//! The metrics jobs: `metrics-snapshot` writes what happened since its
//! last pass into the metrics table (so the figures outlive the process
//! and `bvstore metrics` can read them while no store is open), and
//! `metrics-textfile` writes the Prometheus text for node_exporter's
//! textfile collector, the usual way to scrape a device with no HTTP
//! server.

use std::collections::HashMap;
use std::sync::Mutex;

use super::histogram::Counts;
use super::{MetricsReport, Telemetry};
use crate::error::Error;
use crate::jobs::JobOutcome;
use crate::model::metric::MetricSample;
use crate::types::Timestamp;

/// The snapshot job's name.
pub(crate) const SNAPSHOT_JOB: &str = "metrics-snapshot";
/// The textfile job's name.
pub(crate) const TEXTFILE_JOB: &str = "metrics-textfile";
/// The prefix of every sample the snapshot job writes.
pub(crate) const PREFIX: &str = "bv.";

/// Each operation's calls, errors and histogram at the last snapshot.
#[derive(Default)]
pub(crate) struct Baseline {
    last: Mutex<HashMap<&'static str, (u64, u64, Counts)>>,
}

/// The samples of one snapshot: for each operation called since the
/// last, `bv.op.calls`, `bv.op.errors`, `bv.op.p50_us`, `bv.op.p99_us`
/// over that interval (label `op`); then every part's value now, under
/// its Prometheus name with `_` for the dots (`bv.cache_hit_ratio`).
pub(crate) fn samples(
    telemetry: &Telemetry,
    baseline: &Baseline,
    report: &MetricsReport,
    at: Timestamp,
) -> Vec<MetricSample> {
    let mut out = Vec::new();
    let mut last = baseline.last.lock().unwrap_or_else(|p| p.into_inner());
    for c in telemetry.counts() {
        let errors: u64 = c.errors.values().sum();
        let (calls0, errors0, hist0) = last.get(c.op).cloned().unwrap_or_default();
        let calls = c.calls.saturating_sub(calls0);
        if calls > 0 {
            let d = c.latency.since(&hist0);
            let sample = |name: &str, v: f64| {
                MetricSample::new(format!("{PREFIX}op.{name}"), v)
                    .at(at)
                    .label("op", c.op)
            };
            out.push(sample("calls", calls as f64));
            out.push(sample("errors", errors.saturating_sub(errors0) as f64));
            out.push(sample("p50_us", d.quantile(0.5) as f64 / 1000.0));
            out.push(sample("p99_us", d.quantile(0.99) as f64 / 1000.0));
        }
        last.insert(c.op, (c.calls, errors, c.latency));
    }
    for v in &report.values {
        let name = format!("{PREFIX}{}", v.name.trim_start_matches("bv_"));
        let mut s = MetricSample::new(name, v.value).at(at);
        for (k, l) in &v.labels {
            s = s.label(k.clone(), l.clone());
        }
        out.push(s);
    }
    out
}

/// One pass of the snapshot job.
pub(crate) async fn snapshot(
    store: &crate::Store,
    baseline: &Baseline,
) -> Result<JobOutcome, Error> {
    if store.is_read_only() {
        let mut out = JobOutcome::default();
        out.skip("read_only", 1);
        return Ok(out);
    }
    let report = store.metrics_report().await?;
    let rows = samples(&store.db().telemetry, baseline, &report, report.taken_at);
    let n = rows.len() as u64;
    store
        .db()
        .write(move |txn| {
            for s in &rows {
                crate::db::metrics::insert(txn, s)?;
            }
            Ok(())
        })
        .await?;
    let mut out = JobOutcome::default();
    out.count("samples", n);
    Ok(out)
}

/// One pass of the textfile job: the exposition, written whole or not at
/// all (a scraper never reads half a file).
pub(crate) async fn textfile(
    store: &crate::Store,
    path: &std::path::Path,
) -> Result<JobOutcome, Error> {
    use tokio::io::AsyncWriteExt;
    let text = store.metrics_report().await?.prometheus();
    let mut file = crate::AtomicFile::create(path).await?;
    file.write_all(text.as_bytes())
        .await
        .map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
    file.commit().await?;
    let mut out = JobOutcome::default();
    out.count("bytes", text.len() as u64);
    Ok(out)
}

/// The newest snapshot in the metrics table: its time and samples (what
/// `bvstore metrics` shows when it opens the store itself).
pub(crate) fn latest(
    txn: &redb::ReadTransaction,
) -> Result<Option<(Timestamp, Vec<MetricSample>)>, Error> {
    crate::db::metrics::latest_with_prefix(txn, PREFIX)
}
