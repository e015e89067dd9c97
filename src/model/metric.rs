//! One sample of a system metric.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::types::{MetricId, Timestamp};

/// A named value at a time, with labels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricSample {
    /// Unique id (two samples may share name and time).
    pub id: MetricId,
    /// Metric name, e.g. `db.write.latency_us`.
    pub name: String,
    /// When it was measured.
    pub at: Timestamp,
    /// The value.
    pub value: f64,
    /// Labels, e.g. `op=create_user`.
    pub labels: BTreeMap<String, String>,
}

impl MetricSample {
    /// A sample of `name` = `value` now, without labels.
    pub fn new(name: impl Into<String>, value: f64) -> Self {
        MetricSample {
            id: MetricId::new(),
            name: name.into(),
            at: Timestamp::now(),
            value,
            labels: BTreeMap::new(),
        }
    }
    /// Sets the time.
    pub fn at(mut self, at: Timestamp) -> Self {
        self.at = at;
        self
    }
    /// Adds a label.
    pub fn label(mut self, k: impl Into<String>, v: impl Into<String>) -> Self {
        self.labels.insert(k.into(), v.into());
        self
    }
}
