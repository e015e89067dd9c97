//! The metrics settings: a part of [`Config`](crate::Config) with its own
//! defaults and `[metrics]` TOML table.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::error::Error;

/// How the store keeps and exports its metrics (`Config::metrics`).
///
/// | setting | default | accepted | TOML (`[metrics]`) |
/// |---|---|---|---|
/// | `snapshot_interval` | 5 min between snapshots into the metrics table (kept for `lifecycle.metric_retention`) | 1 ms to 1 day | `snapshot_interval_secs` |
/// | `textfile` | none: a path to write the Prometheus exposition to, atomically, for node_exporter's textfile collector (name it `*.prom`) | a path | `textfile` (or `BV_METRICS_TEXTFILE`) |
/// | `textfile_interval` | 60 s between writes of the textfile | 1 ms to 1 day | `textfile_interval_secs` |
/// | `anomaly_window` | 60 s: the window bursts are counted over | 1 ms to 1 day | `anomaly_window_secs` |
/// | `refusal_burst` | 20 access refusals in the window are tolerated; more degrade health | any | `refusal_burst` |
/// | `rate_limit_burst` | 100 rate-limit hits tolerated | any | `rate_limit_burst` |
/// | `integrity_burst` | 0: any integrity error in the window degrades health | any | `integrity_burst` |
/// | `growth_bytes_per_hour` | 2 GiB/h: free space on the data disk falling faster degrades health (`None`: not watched) | bytes | `growth_bytes_per_hour` (0 = off) |
///
/// ```
/// use bharatvoice_store::{Config, MetricsConfig};
/// let c = Config::from_toml_str("[metrics]\ntextfile = \"/var/lib/node_exporter/bv.prom\"").unwrap();
/// assert_eq!(c.metrics.textfile.as_deref(), Some(std::path::Path::new("/var/lib/node_exporter/bv.prom")));
/// let c = Config::new("/tmp/bv").metrics(MetricsConfig::default().textfile("/tmp/bv.prom"));
/// assert!(c.metrics.textfile.is_some());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MetricsConfig {
    /// Time between snapshots of the registry into the metrics table.
    pub snapshot_interval: Duration,
    /// Where the `metrics-textfile` job writes the Prometheus text.
    pub textfile: Option<PathBuf>,
    /// Time between writes of the textfile.
    pub textfile_interval: Duration,
    /// The window the anomaly checks count bursts over.
    pub anomaly_window: Duration,
    /// Access refusals tolerated in the window.
    pub refusal_burst: usize,
    /// Rate-limit hits tolerated in the window.
    pub rate_limit_burst: usize,
    /// Integrity errors tolerated in the window.
    pub integrity_burst: usize,
    /// The fastest fall of free space on the data disk tolerated, in bytes
    /// per hour (`None`: not watched).
    pub growth_bytes_per_hour: Option<u64>,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            snapshot_interval: Duration::from_secs(300),
            textfile: None,
            textfile_interval: Duration::from_secs(60),
            anomaly_window: Duration::from_secs(60),
            refusal_burst: 20,
            rate_limit_burst: 100,
            integrity_burst: 0,
            growth_bytes_per_hour: Some(2 << 30),
        }
    }
}

/// The TOML shape.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileMetricsConfig {
    snapshot_interval_secs: Option<u64>,
    textfile: Option<PathBuf>,
    textfile_interval_secs: Option<u64>,
    anomaly_window_secs: Option<u64>,
    refusal_burst: Option<usize>,
    rate_limit_burst: Option<usize>,
    integrity_burst: Option<usize>,
    growth_bytes_per_hour: Option<u64>,
}

impl MetricsConfig {
    pub(crate) fn from_file(f: FileMetricsConfig) -> MetricsConfig {
        let d = MetricsConfig::default();
        MetricsConfig {
            snapshot_interval: f
                .snapshot_interval_secs
                .map_or(d.snapshot_interval, Duration::from_secs),
            textfile: f.textfile,
            textfile_interval: f
                .textfile_interval_secs
                .map_or(d.textfile_interval, Duration::from_secs),
            anomaly_window: f
                .anomaly_window_secs
                .map_or(d.anomaly_window, Duration::from_secs),
            refusal_burst: f.refusal_burst.unwrap_or(d.refusal_burst),
            rate_limit_burst: f.rate_limit_burst.unwrap_or(d.rate_limit_burst),
            integrity_burst: f.integrity_burst.unwrap_or(d.integrity_burst),
            growth_bytes_per_hour: match f.growth_bytes_per_hour {
                Some(0) => None,
                Some(n) => Some(n),
                None => d.growth_bytes_per_hour,
            },
        }
    }

    pub(crate) fn validate(&self) -> Result<(), Error> {
        let ms = Duration::from_millis(1);
        crate::config::check_duration(
            "metrics.snapshot_interval",
            self.snapshot_interval,
            ms,
            86_400_000,
        )?;
        crate::config::check_duration(
            "metrics.textfile_interval",
            self.textfile_interval,
            ms,
            86_400_000,
        )?;
        crate::config::check_duration(
            "metrics.anomaly_window",
            self.anomaly_window,
            ms,
            86_400_000,
        )?;
        if let Some(p) = &self.textfile
            && (p.as_os_str().is_empty() || p.file_name().is_none())
        {
            return Err(Error::Config {
                reason: format!("metrics.textfile must name a file, got {}", p.display()),
            });
        }
        Ok(())
    }

    /// Sets the time between snapshots into the metrics table.
    pub fn snapshot_interval(mut self, d: Duration) -> Self {
        self.snapshot_interval = d;
        self
    }

    /// Writes the Prometheus text to this file every `textfile_interval`.
    pub fn textfile(mut self, path: impl Into<PathBuf>) -> Self {
        self.textfile = Some(path.into());
        self
    }

    /// Sets the window the anomaly checks count bursts over.
    pub fn anomaly_window(mut self, d: Duration) -> Self {
        self.anomaly_window = d;
        self
    }

    /// Sets how many access refusals in the window are tolerated.
    pub fn refusal_burst(mut self, n: usize) -> Self {
        self.refusal_burst = n;
        self
    }

    /// Sets the fastest tolerated fall of free space (bytes per hour).
    pub fn growth_bytes_per_hour(mut self, limit: Option<u64>) -> Self {
        self.growth_bytes_per_hour = limit;
        self
    }

    /// Sets the time between writes of the textfile.
    pub fn textfile_interval(mut self, d: Duration) -> Self {
        self.textfile_interval = d;
        self
    }
}
