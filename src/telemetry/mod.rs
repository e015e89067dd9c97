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

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

use crate::error::Error;
pub use config::MetricsConfig;
use histogram::{Counts, Histogram};
pub use report::{MetricValue, MetricsReport, OperationStats};

/// Calls of a fast operation timed: one in this many (after its first
/// [`ALWAYS_TIMED`]). Reading the clock twice costs about 70 ns here, a
/// quarter of a cache hit; a sample of one call in eight gives the same
/// quantiles.
const STRIDE: u64 = 8;
/// The first calls of every operation are all timed.
const ALWAYS_TIMED: u64 = 64;
/// An operation whose last timed call took at least this long is timed
/// on every call (its clock reads cost nothing next to it).
const SLOW_NS: u64 = 20_000;

/// One operation's cell of the registry, with its handles in the
/// `metrics` facade's recorder (registered when the operation is first
/// called: install a recorder before opening the store).
struct OpCell {
    op: &'static str,
    calls: AtomicU64,
    slow: AtomicBool,
    errors: Mutex<BTreeMap<&'static str, u64>>,
    latency: Histogram,
    facade_calls: metrics::Counter,
    facade_latency: metrics::Histogram,
}

/// An operation's name and its slot in every store's registry, one
/// `static` per call site (made by [`op_key!`]), so a call finds its cell
/// with an index, not a lock and a hash.
pub(crate) struct OpKey {
    name: &'static str,
    slot: OnceLock<usize>,
}

impl OpKey {
    pub(crate) const fn new(name: &'static str) -> OpKey {
        OpKey {
            name,
            slot: OnceLock::new(),
        }
    }

    fn slot(&self) -> usize {
        *self.slot.get_or_init(|| {
            static NAMES: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());
            let mut names = NAMES.lock().unwrap_or_else(|p| p.into_inner());
            match names.iter().position(|n| *n == self.name) {
                Some(i) => i,
                None => {
                    names.push(self.name);
                    names.len() - 1
                }
            }
        })
    }
}

/// The key of an operation, a `static` at the call site.
macro_rules! op_key {
    ($name:literal) => {{
        static KEY: $crate::telemetry::OpKey = $crate::telemetry::OpKey::new($name);
        &KEY
    }};
}
pub(crate) use op_key;

/// Slots in a registry: more than there are public operations. A name
/// past them shares the last slot (and is reported under the first name
/// that took it).
const SLOTS: usize = 256;

/// The store's registry of operation metrics since it opened.
pub(crate) struct Telemetry {
    cells: Box<[OnceLock<OpCell>]>,
    pub(crate) opened: Instant,
    /// Bursts of refusals, rate-limit hits and integrity errors; free
    /// space over time.
    pub(crate) anomalies: anomaly::Anomalies,
}

impl Telemetry {
    /// An empty registry; the anomaly windows run on `clock`.
    pub(crate) fn new(clock: crate::Clock) -> Telemetry {
        Telemetry {
            cells: (0..SLOTS).map(|_| OnceLock::new()).collect(),
            opened: Instant::now(),
            anomalies: anomaly::Anomalies::new(clock),
        }
    }
}

/// One operation's figures as they are now (what a report or a snapshot
/// is made of). `latency` holds the timed calls only (see [`STRIDE`]).
#[derive(Debug, Clone)]
pub(crate) struct OpCounts {
    pub(crate) op: &'static str,
    pub(crate) calls: u64,
    pub(crate) errors: BTreeMap<&'static str, u64>,
    pub(crate) latency: Counts,
}

/// A call in progress: its cell, and when it started if it is timed.
pub(crate) struct Call<'a> {
    cell: &'a OpCell,
    started: Option<(Instant, u64)>,
}

impl Telemetry {
    fn cell(&self, key: &OpKey) -> &OpCell {
        let slot = key.slot().min(SLOTS - 1);
        self.cells[slot].get_or_init(|| OpCell::new(key.name))
    }

    /// Counts a call of `op` and decides whether to time it.
    pub(crate) fn start(&self, op: &OpKey) -> Call<'_> {
        let cell = self.cell(op);
        let n = cell.calls.fetch_add(1, Ordering::Relaxed);
        cell.facade_calls.increment(1);
        let weight = if n < ALWAYS_TIMED || cell.slow.load(Ordering::Relaxed) {
            Some(1)
        } else if n.is_multiple_of(STRIDE) {
            Some(STRIDE)
        } else {
            None
        };
        Call {
            cell,
            started: weight.map(|w| (Instant::now(), w)),
        }
    }

    /// Ends a call: its time if it was timed, its error's kind if it
    /// failed.
    pub(crate) fn finish(&self, call: Call<'_>, error: Option<&'static str>) {
        let cell = call.cell;
        if let Some((t0, weight)) = call.started {
            let ns = u64::try_from(t0.elapsed().as_nanos()).unwrap_or(u64::MAX);
            cell.latency.record_weighted(ns, weight);
            cell.slow.store(ns >= SLOW_NS, Ordering::Relaxed);
            cell.facade_latency.record(ns as f64 / 1e9);
        }
        if let Some(kind) = error {
            *cell
                .errors
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .entry(kind)
                .or_default() += 1;
            metrics::counter!("bv_operation_errors_total", "op" => cell.op, "kind" => kind)
                .increment(1);
            match kind {
                "rate_limited" => self.anomalies.note(anomaly::Signal::RateLimited),
                "integrity" | "corrupt" => self.anomalies.note(anomaly::Signal::Integrity),
                _ => {}
            }
        }
    }

    /// Every operation called since open, by name.
    pub(crate) fn counts(&self) -> Vec<OpCounts> {
        let mut all: Vec<OpCounts> = self
            .cells
            .iter()
            .filter_map(OnceLock::get)
            .map(|cell| OpCounts {
                op: cell.op,
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
            op,
            calls: AtomicU64::new(0),
            slow: AtomicBool::new(false),
            errors: Mutex::default(),
            latency: Histogram::default(),
            facade_calls: metrics::counter!("bv_operations_total", "op" => op),
            facade_latency: metrics::histogram!("bv_operation_duration_seconds", "op" => op),
        }
    }
}

/// Runs one public operation and counts it: its time (see [`STRIDE`]),
/// and its error's kind if it fails.
pub(crate) async fn observe<T, F>(telemetry: &Telemetry, op: &OpKey, body: F) -> Result<T, Error>
where
    F: Future<Output = Result<T, Error>>,
{
    let call = telemetry.start(op);
    let result = body.await;
    telemetry.finish(call, result.as_ref().err().map(Error::kind));
    result
}

/// [`observe`] for an operation whose error is the caller's type (a
/// loader's): a failure is counted under the kind `caller`.
pub(crate) async fn observe_any<T, E, F>(telemetry: &Telemetry, op: &OpKey, body: F) -> Result<T, E>
where
    F: Future<Output = Result<T, E>>,
{
    let call = telemetry.start(op);
    let result = body.await;
    telemetry.finish(call, result.as_ref().err().map(|_| "caller"));
    result
}

/// [`observe`] for an operation that is not async.
pub(crate) fn observe_sync<T, F>(telemetry: &Telemetry, op: &OpKey, body: F) -> Result<T, Error>
where
    F: FnOnce() -> Result<T, Error>,
{
    let call = telemetry.start(op);
    let result = body();
    telemetry.finish(call, result.as_ref().err().map(Error::kind));
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn calls_errors_and_latency_are_counted_per_operation() {
        let t = Telemetry::new(crate::Clock::System);
        for _ in 0..3 {
            observe(&t, op_key!("users.get"), async { Ok::<_, Error>(1) })
                .await
                .unwrap();
        }
        let failed = observe(&t, op_key!("users.get"), async {
            Err::<(), _>(Error::Closed)
        })
        .await;
        assert!(matches!(failed, Err(Error::Closed)));
        observe_sync(&t, op_key!("cache.stats"), || Ok::<_, Error>(())).unwrap();
        let counts = t.counts();
        assert_eq!(counts.len(), 2);
        assert_eq!(counts[0].op, "cache.stats");
        let get = &counts[1];
        assert_eq!((get.op, get.calls), ("users.get", 4));
        assert_eq!(get.errors.get("closed"), Some(&1));
        assert_eq!(get.latency.total(), 4);
    }
}
