//! The lifecycle jobs' settings: a part of [`Config`](crate::Config) with
//! its own defaults and `[lifecycle]` TOML table.

use std::time::Duration;

use serde::Deserialize;

use crate::config::TEN_YEARS_SECS;
use crate::error::Error;

/// How the store keeps itself clean (`Config::lifecycle`).
///
/// ## Defaults
///
/// | setting | default | accepted | TOML (`[lifecycle]`) |
/// |---|---|---|---|
/// | `access_interval` | 60 s between writes of the files' read counts (a crash loses at most this) | 1 ms to 1 day | `access_interval_secs` |
/// | `expiry_interval` | 10 min between expiry passes | 1 ms to 1 day | `expiry_interval_secs` |
/// | `purge_interval` | 1 h between purge passes | 1 ms to 1 day | `purge_interval_secs` |
/// | `purge_grace` | 30 days a soft-deleted record can still be restored | 0 to 3650 days | `purge_grace_secs` |
/// | `orphan_interval` | 6 h between orphan collections | 1 ms to 1 day | `orphan_interval_secs` |
/// | `orphan_grace` | 1 h: a blob file or temporary younger than this is never taken | 0 to 3650 days | `orphan_grace_secs` |
/// | `metric_retention` | 90 days of metric samples | 1 s to 3650 days | `metric_retention_secs` |
/// | `batch` | 1000 records per transaction | 1 to 100000 | `batch` |
/// | `tamper_watch` | on: a watch on `blobs/` marks blobs changed or removed behind the store's back as damaged (local backend, store not read-only) | true or false | `tamper_watch` |
/// | `tamper_debounce` | 50 ms of quiet before the watch checks what its events name | 1 ms to 10 s | `tamper_debounce_ms` |
///
/// ```
/// use std::time::Duration;
/// use bharatvoice_store::{Config, LifecycleConfig};
/// let config = Config::new("/tmp/bv-example")
///     .lifecycle(LifecycleConfig::default().purge_grace(Duration::ZERO));
/// assert_eq!(config.lifecycle.purge_grace, Duration::ZERO);
/// let t = Config::from_toml_str("[lifecycle]\npurge_grace_secs = 86400").unwrap();
/// assert_eq!(t.lifecycle.purge_grace, Duration::from_secs(86_400));
/// let off = Config::from_toml_str("[lifecycle]\ntamper_watch = false").unwrap();
/// assert!(!off.lifecycle.tamper_watch);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LifecycleConfig {
    /// Time between writes of the read counts kept in memory.
    pub access_interval: Duration,
    /// Time between passes of the expiry job.
    pub expiry_interval: Duration,
    /// Time between passes of the purge job.
    pub purge_interval: Duration,
    /// How long a soft-deleted file or session stays restorable before the
    /// purge removes it for good (`0`: at the next purge).
    pub purge_grace: Duration,
    /// Time between passes of the orphan collector.
    pub orphan_interval: Duration,
    /// Blob files and temporaries younger than this are never collected
    /// (a put in flight has written its blob but not yet its record).
    pub orphan_grace: Duration,
    /// Metric samples older than this are dropped.
    pub metric_retention: Duration,
    /// Records one transaction changes: a foreground write waits at most
    /// one such batch.
    pub batch: usize,
    /// Watch the blob directory for blob files changed or removed from
    /// outside the store, and mark their blobs damaged (see
    /// `docs/LIFECYCLE.md`). Only a local, writable store is watched.
    pub tamper_watch: bool,
    /// How long the watch waits for its events to stop before it checks
    /// the blobs they name (a burst of writes is checked once).
    pub tamper_debounce: Duration,
}

impl Default for LifecycleConfig {
    fn default() -> Self {
        LifecycleConfig {
            access_interval: Duration::from_secs(60),
            expiry_interval: Duration::from_secs(600),
            purge_interval: Duration::from_secs(3600),
            purge_grace: Duration::from_secs(30 * 86_400),
            orphan_interval: Duration::from_secs(6 * 3600),
            orphan_grace: Duration::from_secs(3600),
            metric_retention: Duration::from_secs(90 * 86_400),
            batch: 1000,
            tamper_watch: true,
            tamper_debounce: Duration::from_millis(50),
        }
    }
}

/// The TOML shape of `[lifecycle]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileLifecycleConfig {
    access_interval_secs: Option<u64>,
    expiry_interval_secs: Option<u64>,
    purge_interval_secs: Option<u64>,
    purge_grace_secs: Option<u64>,
    orphan_interval_secs: Option<u64>,
    orphan_grace_secs: Option<u64>,
    metric_retention_secs: Option<u64>,
    batch: Option<usize>,
    tamper_watch: Option<bool>,
    tamper_debounce_ms: Option<u64>,
}

impl LifecycleConfig {
    pub(crate) fn from_file(f: FileLifecycleConfig) -> LifecycleConfig {
        let d = LifecycleConfig::default();
        let secs = |v: Option<u64>, d: Duration| v.map_or(d, Duration::from_secs);
        LifecycleConfig {
            access_interval: secs(f.access_interval_secs, d.access_interval),
            expiry_interval: secs(f.expiry_interval_secs, d.expiry_interval),
            purge_interval: secs(f.purge_interval_secs, d.purge_interval),
            purge_grace: secs(f.purge_grace_secs, d.purge_grace),
            orphan_interval: secs(f.orphan_interval_secs, d.orphan_interval),
            orphan_grace: secs(f.orphan_grace_secs, d.orphan_grace),
            metric_retention: secs(f.metric_retention_secs, d.metric_retention),
            batch: f.batch.unwrap_or(d.batch),
            tamper_watch: f.tamper_watch.unwrap_or(d.tamper_watch),
            tamper_debounce: f
                .tamper_debounce_ms
                .map_or(d.tamper_debounce, Duration::from_millis),
        }
    }

    /// Checks every setting against its range (see the table above).
    pub fn validate(&self) -> Result<(), Error> {
        let day = Duration::from_secs(86_400);
        let ten_years = Duration::from_secs(TEN_YEARS_SECS);
        let check = |name: &str, v: Duration, min: Duration, max: Duration, range: &str| {
            if v < min || v > max {
                return Err(Error::Config {
                    reason: format!("lifecycle.{name} must be {range}, got {v:?}"),
                });
            }
            Ok(())
        };
        let ms = Duration::from_millis(1);
        check(
            "expiry_interval",
            self.expiry_interval,
            ms,
            day,
            "1 ms to 1 day",
        )?;
        check(
            "purge_interval",
            self.purge_interval,
            ms,
            day,
            "1 ms to 1 day",
        )?;
        check(
            "orphan_interval",
            self.orphan_interval,
            ms,
            day,
            "1 ms to 1 day",
        )?;
        check(
            "purge_grace",
            self.purge_grace,
            Duration::ZERO,
            ten_years,
            "0 to 3650 days",
        )?;
        check(
            "orphan_grace",
            self.orphan_grace,
            Duration::ZERO,
            ten_years,
            "0 to 3650 days",
        )?;
        check(
            "metric_retention",
            self.metric_retention,
            Duration::from_secs(1),
            ten_years,
            "1 s to 3650 days",
        )?;
        check(
            "tamper_debounce",
            self.tamper_debounce,
            ms,
            Duration::from_secs(10),
            "1 ms to 10 s",
        )?;
        crate::config::check_range("lifecycle.batch", self.batch, 1..=100_000)
    }

    /// Sets how long soft-deleted records stay restorable.
    pub fn purge_grace(mut self, d: Duration) -> Self {
        self.purge_grace = d;
        self
    }

    /// Sets how young a blob file or temporary must be to be left alone.
    pub fn orphan_grace(mut self, d: Duration) -> Self {
        self.orphan_grace = d;
        self
    }

    /// Sets how long metric samples are kept.
    pub fn metric_retention(mut self, d: Duration) -> Self {
        self.metric_retention = d;
        self
    }

    /// Sets the records one transaction changes.
    pub fn batch(mut self, n: usize) -> Self {
        self.batch = n;
        self
    }

    /// Switches the watch on the blob directory on or off.
    pub fn tamper_watch(mut self, on: bool) -> Self {
        self.tamper_watch = on;
        self
    }

    /// Sets how long the watch waits for quiet before it checks.
    pub fn tamper_debounce(mut self, d: Duration) -> Self {
        self.tamper_debounce = d;
        self
    }
}
