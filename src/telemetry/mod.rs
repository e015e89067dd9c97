//! Operation metrics: a call count, errors by kind and a latency histogram
//! for every public operation, kept in the store's own registry (what
//! `bvstore metrics`, the Prometheus exposition and the snapshots in the
//! metrics table read) and sent through the `metrics` facade, so an
//! application's own recorder sees them too.
//!
//! Each public operation runs inside [`observe`]: one read lock on the
//! registry and a few relaxed atomic adds per call, about the cost of a
//! cache lookup in memory.

pub(crate) mod anomaly;
pub(crate) mod config;
pub(crate) mod histogram;
mod prometheus;
mod report;
pub(crate) mod snapshot;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

use crate::error::Error;
pub use config::MetricsConfig;
use histogram::{Counts, Histogram};
pub use report::{MetricValue, MetricsReport, OperationStats};

/// One operation's cell of the registry, with its handles in the
/// `metrics` facade's recorder (registered when the operation is first
/// called: install a recorder before opening the store).
struct OpCell {
    calls: AtomicU64,
    errors: Mutex<BTreeMap<&'static str, u64>>,
    latency: Histogram,
    facade_calls: metrics::Counter,
    facade_latency: metrics::Histogram,
}

/// The store's registry of operation metrics since it opened.
pub(crate) struct Telemetry {
    ops: RwLock<HashMap<&'static str, OpCell>>,
    pub(crate) opened: Instant,
    /// Bursts of refusals, rate-limit hits and integrity errors; free
    /// space over time.
    pub(crate) anomalies: anomaly::Anomalies,
}

impl Telemetry {
    /// An empty registry; the anomaly windows run on `clock`.
    pub(crate) fn new(clock: crate::Clock) -> Telemetry {
        Telemetry {
            ops: RwLock::default(),
            opened: Instant::now(),
            anomalies: anomaly::Anomalies::new(clock),
        }
    }
}

/// One operation's figures as they are now (what a report or a snapshot
/// is made of).
#[derive(Debug, Clone)]
pub(crate) struct OpCounts {
    pub(crate) op: &'static str,
    pub(crate) calls: u64,
    pub(crate) errors: BTreeMap<&'static str, u64>,
    pub(crate) latency: Counts,
}

impl Telemetry {
    /// Counts one call of `op` that took `elapsed` and failed with an
    /// error of kind `error` (if it failed).
    pub(crate) fn record(&self, op: &'static str, elapsed: Duration, error: Option<&'static str>) {
        let ns = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        let known = {
            let ops = self.ops.read().unwrap_or_else(|p| p.into_inner());
            match ops.get(op) {
                Some(cell) => {
                    cell.add(ns, error);
                    true
                }
                None => false,
            }
        };
        if !known {
            let mut ops = self.ops.write().unwrap_or_else(|p| p.into_inner());
            ops.entry(op)
                .or_insert_with(|| OpCell::new(op))
                .add(ns, error);
        }
        if let Some(kind) = error {
            metrics::counter!("bv_operation_errors_total", "op" => op, "kind" => kind).increment(1);
            match kind {
                "rate_limited" => self.anomalies.note(anomaly::Signal::RateLimited),
                "integrity" | "corrupt" => self.anomalies.note(anomaly::Signal::Integrity),
                _ => {}
            }
        }
    }

    /// Every operation called since open, by name.
    pub(crate) fn counts(&self) -> Vec<OpCounts> {
        let ops = self.ops.read().unwrap_or_else(|p| p.into_inner());
        let mut all: Vec<OpCounts> = ops
            .iter()
            .map(|(op, cell)| OpCounts {
                op,
                calls: cell.calls.load(Ordering::Relaxed),
                errors: cell
                    .errors
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clone(),
                latency: cell.latency.counts(),
            })
            .collect();
        all.sort_by_key(|c| c.op);
        all
    }
}

impl OpCell {
    fn new(op: &'static str) -> OpCell {
        OpCell {
            calls: AtomicU64::new(0),
            errors: Mutex::default(),
            latency: Histogram::default(),
            facade_calls: metrics::counter!("bv_operations_total", "op" => op),
            facade_latency: metrics::histogram!("bv_operation_duration_seconds", "op" => op),
        }
    }

    fn add(&self, ns: u64, error: Option<&'static str>) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.latency.record(ns);
        self.facade_calls.increment(1);
        self.facade_latency.record(ns as f64 / 1e9);
        if let Some(kind) = error {
            *self
                .errors
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .entry(kind)
                .or_default() += 1;
        }
    }
}

/// Runs one public operation and counts it: its time, and its error's
/// kind if it fails.
pub(crate) async fn observe<T, F>(
    telemetry: &Telemetry,
    op: &'static str,
    body: F,
) -> Result<T, Error>
where
    F: Future<Output = Result<T, Error>>,
{
    let t0 = Instant::now();
    let result = body.await;
    telemetry.record(op, t0.elapsed(), result.as_ref().err().map(Error::kind));
    result
}

/// [`observe`] for an operation whose error is the caller's type (a
/// loader's): a failure is counted under the kind `caller`.
pub(crate) async fn observe_any<T, E, F>(
    telemetry: &Telemetry,
    op: &'static str,
    body: F,
) -> Result<T, E>
where
    F: Future<Output = Result<T, E>>,
{
    let t0 = Instant::now();
    let result = body.await;
    telemetry.record(op, t0.elapsed(), result.as_ref().err().map(|_| "caller"));
    result
}

/// [`observe`] for an operation that is not async.
pub(crate) fn observe_sync<T, F>(
    telemetry: &Telemetry,
    op: &'static str,
    body: F,
) -> Result<T, Error>
where
    F: FnOnce() -> Result<T, Error>,
{
    let t0 = Instant::now();
    let result = body();
    telemetry.record(op, t0.elapsed(), result.as_ref().err().map(Error::kind));
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn calls_errors_and_latency_are_counted_per_operation() {
        let t = Telemetry::new(crate::Clock::System);
        for _ in 0..3 {
            observe(&t, "users.get", async { Ok::<_, Error>(1) })
                .await
                .unwrap();
        }
        let failed = observe(&t, "users.get", async { Err::<(), _>(Error::Closed) }).await;
        assert!(matches!(failed, Err(Error::Closed)));
        observe_sync(&t, "cache.stats", || Ok::<_, Error>(())).unwrap();
        let counts = t.counts();
        assert_eq!(counts.len(), 2);
        assert_eq!(counts[0].op, "cache.stats");
        let get = &counts[1];
        assert_eq!((get.op, get.calls), ("users.get", 4));
        assert_eq!(get.errors.get("closed"), Some(&1));
        assert_eq!(get.latency.total(), 4);
    }
}
