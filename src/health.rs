//! Health: one probe per part of an open store (metadata database, cache,
//! blob storage, background jobs), for operators and supervisors.
//!
//! Each part's module answers for itself (`Db::health`,
//! `CacheCore::health`, `BlobStore::health`, `JobRuntime::health`); this
//! module holds the shapes and the rule that the store is as healthy as
//! its least healthy part.

use serde::Serialize;

/// How well a part (or the store) works.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthStatus {
    /// Works as configured.
    Healthy,
    /// Works, with less than it should (a cache serving from memory only,
    /// a store open read-only, a background job stopped or failing).
    Degraded,
    /// Does not work: requests to it fail.
    Unhealthy,
}

impl std::fmt::Display for HealthStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            HealthStatus::Healthy => "healthy",
            HealthStatus::Degraded => "degraded",
            HealthStatus::Unhealthy => "unhealthy",
        })
    }
}

/// What one part's probe found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PartHealth {
    /// The part: `database`, `cache`, `blobs`, `jobs`, `integrity`,
    /// `backup` or `anomalies`.
    pub part: &'static str,
    /// How well it works.
    pub status: HealthStatus,
    /// What the probe saw, for a person.
    pub detail: String,
    /// How long the probe took, in microseconds.
    pub took_us: u64,
}

impl PartHealth {
    pub(crate) fn new(part: &'static str, status: HealthStatus, detail: impl Into<String>) -> Self {
        PartHealth {
            part,
            status,
            detail: detail.into(),
            took_us: 0,
        }
    }
}

/// The health of a store: each part's, and the worst of them.
///
/// ```
/// # use bharatvoice_store::*;
/// # #[tokio::main] async fn main() -> Result<(), Error> {
/// # let dir = tempfile::tempdir().unwrap();
/// let store = Store::open(Config::new(dir.path())).await?;
/// let health = store.health().await;
/// assert_eq!(health.status, HealthStatus::Healthy);
/// assert!(health.part("database").is_some());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Health {
    /// The least healthy part's status.
    pub status: HealthStatus,
    /// Every part, in a fixed order.
    pub parts: Vec<PartHealth>,
}

impl Health {
    pub(crate) fn of(parts: Vec<PartHealth>) -> Health {
        let status = parts
            .iter()
            .map(|p| p.status)
            .max()
            .unwrap_or(HealthStatus::Healthy);
        Health { status, parts }
    }

    /// The probe of one part, by name.
    pub fn part(&self, name: &str) -> Option<&PartHealth> {
        self.parts.iter().find(|p| p.part == name)
    }
}

/// Runs a probe and records how long it took.
pub(crate) async fn timed<F: std::future::Future<Output = PartHealth>>(probe: F) -> PartHealth {
    let t0 = std::time::Instant::now();
    let mut part = probe.await;
    part.took_us = u64::try_from(t0.elapsed().as_micros()).unwrap_or(u64::MAX);
    part
}
