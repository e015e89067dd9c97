//! The shapes of a metrics report: what `Store::metrics_report` returns,
//! `bvstore metrics` prints and the admin socket sends.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::OpCounts;
use crate::types::Timestamp;

/// One public operation's figures since the store opened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OperationStats {
    /// The operation: the view and the method, as `files.put` or
    /// `cache.get`.
    pub op: String,
    /// Calls, failed ones included.
    pub calls: u64,
    /// Failed calls by the error's [`kind`](crate::Error::kind).
    pub errors: BTreeMap<String, u64>,
    /// The time all calls took together, in microseconds.
    pub sum_us: f64,
    /// Half of the calls took at most this long (µs; within 19 %).
    pub p50_us: f64,
    /// 95 % of the calls took at most this long (µs).
    pub p95_us: f64,
    /// 99 % of the calls took at most this long (µs).
    pub p99_us: f64,
}

impl OperationStats {
    pub(crate) fn of(c: &OpCounts) -> OperationStats {
        let us = |ns: u64| ns as f64 / 1000.0;
        OperationStats {
            op: c.op.to_owned(),
            calls: c.calls,
            errors: c
                .errors
                .iter()
                .map(|(k, n)| ((*k).to_owned(), *n))
                .collect(),
            sum_us: us(c.latency.sum_ns),
            p50_us: us(c.latency.quantile(0.50)),
            p95_us: us(c.latency.quantile(0.95)),
            p99_us: us(c.latency.quantile(0.99)),
        }
    }

    /// Failed calls of every kind.
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }
}

/// A counter or gauge of a part of the store (cache, database, disk).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricValue {
    /// The Prometheus name, as `bv_cache_hits_total`.
    pub name: String,
    /// What it counts or measures, for a person.
    pub help: String,
    /// `counter` (only goes up while the store is open) or `gauge`.
    pub kind: String,
    /// Labels, as `tier = "memory"`.
    pub labels: BTreeMap<String, String>,
    /// The value now.
    pub value: f64,
}

impl MetricValue {
    pub(crate) fn gauge(name: &str, help: &str, value: f64) -> MetricValue {
        MetricValue {
            name: name.to_owned(),
            help: help.to_owned(),
            kind: "gauge".to_owned(),
            labels: BTreeMap::new(),
            value,
        }
    }

    pub(crate) fn counter(name: &str, help: &str, value: u64) -> MetricValue {
        MetricValue {
            kind: "counter".to_owned(),
            ..MetricValue::gauge(name, help, value as f64)
        }
    }

    pub(crate) fn label(mut self, key: &str, value: &str) -> MetricValue {
        self.labels.insert(key.to_owned(), value.to_owned());
        self
    }
}

/// The store's metrics now; from
/// [`Store::metrics_report`](crate::Store::metrics_report).
///
/// ```
/// # use bharatvoice_store::*;
/// # #[tokio::main] async fn main() -> Result<(), Error> {
/// # let dir = tempfile::tempdir().unwrap();
/// let store = Store::open(Config::new(dir.path())).await?;
/// store.cache().set("greeting", "namaste").await?;
/// let report = store.metrics_report().await?;
/// assert_eq!(report.operation("cache.set").map(|o| o.calls), Some(1));
/// assert!(report.prometheus().contains("bv_operations_total{op=\"cache.set\"} 1"));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricsReport {
    /// When the figures were read.
    pub taken_at: Timestamp,
    /// Seconds since the store opened (its counters start at open).
    pub uptime_secs: f64,
    /// Every operation called since open, by name.
    pub operations: Vec<OperationStats>,
    /// Counters and gauges of the cache, database and disk.
    pub values: Vec<MetricValue>,
}

impl MetricsReport {
    /// One operation's figures, by name.
    pub fn operation(&self, op: &str) -> Option<&OperationStats> {
        self.operations.iter().find(|o| o.op == op)
    }

    /// The first value of this name (and these labels, if given).
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.values
            .iter()
            .find(|v| {
                v.name == name
                    && labels
                        .iter()
                        .all(|(k, want)| v.labels.get(*k).map(String::as_str) == Some(*want))
            })
            .map(|v| v.value)
    }

    /// The Prometheus text exposition format (version 0.0.4) of the
    /// report: what a scraper or node_exporter's textfile collector reads.
    pub fn prometheus(&self) -> String {
        super::prometheus::render(self)
    }
}
