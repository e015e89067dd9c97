//! The audit log's settings: a part of [`Config`](crate::Config) with its
//! own defaults, `[audit]` TOML table and `BV_AUDIT_*` variables.

use std::time::Duration;

use serde::Deserialize;

use crate::config::{TEN_YEARS_SECS, check_duration};
use crate::error::{Error, quote};

/// What the audit log keeps and for how long (`Config::audit`).
///
/// ## Defaults
///
/// | setting | default | accepted | TOML (`[audit]`) | environment |
/// |---|---|---|---|---|
/// | `enabled` | true: operations are appended to the audit chain | true or false | `enabled` | `BV_AUDIT_ENABLED` |
/// | `retention` | 365 days (the DPDP Rules' minimum for logs), then the `audit-retention` job drops entries from the front | 1 s to 3650 days | `retention_secs` | `BV_AUDIT_RETENTION_SECS` |
/// | `read_flush_interval` | 10 s between appends of the reads noted in memory (a crash loses at most this) | 1 ms to 1 day | `read_flush_interval_ms` | `BV_AUDIT_READ_FLUSH_MS` |
///
/// ```
/// use std::time::Duration;
/// use bharatvoice_store::{AuditConfig, Config};
/// let c = Config::from_toml_str("[audit]\nretention_secs = 86400\nenabled = false").unwrap();
/// assert_eq!(c.audit.retention, Duration::from_secs(86_400));
/// assert!(!c.audit.enabled);
/// assert!(AuditConfig::default().enabled);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AuditConfig {
    /// Whether operations are audited at all.
    pub enabled: bool,
    /// Entries older than this are dropped (leaving an anchor).
    pub retention: Duration,
    /// Time between appends of the reads noted in memory.
    pub read_flush_interval: Duration,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            enabled: true,
            retention: Duration::from_secs(365 * 86_400),
            read_flush_interval: Duration::from_secs(10),
        }
    }
}

/// The TOML shape of `[audit]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileAuditConfig {
    enabled: Option<bool>,
    retention_secs: Option<u64>,
    read_flush_interval_ms: Option<u64>,
}

impl AuditConfig {
    pub(crate) fn from_file(f: FileAuditConfig) -> AuditConfig {
        let d = AuditConfig::default();
        AuditConfig {
            enabled: f.enabled.unwrap_or(d.enabled),
            retention: f.retention_secs.map_or(d.retention, Duration::from_secs),
            read_flush_interval: f
                .read_flush_interval_ms
                .map_or(d.read_flush_interval, Duration::from_millis),
        }
    }

    /// Overlays `BV_AUDIT_*` variables read through `get`.
    pub(crate) fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> Result<(), Error> {
        let num = |name: &str, v: String| {
            v.trim().parse::<u64>().map_err(|_| Error::Config {
                reason: format!("{name}={} is not a number", quote(&v)),
            })
        };
        if let Some(v) = get("BV_AUDIT_ENABLED") {
            self.enabled = match v.trim() {
                "1" | "true" | "yes" | "on" => true,
                "0" | "false" | "no" | "off" => false,
                _ => {
                    return Err(Error::Config {
                        reason: format!(
                            "BV_AUDIT_ENABLED must be true or false, got {}",
                            quote(&v)
                        ),
                    });
                }
            };
        }
        if let Some(v) = get("BV_AUDIT_RETENTION_SECS") {
            self.retention = Duration::from_secs(num("BV_AUDIT_RETENTION_SECS", v)?);
        }
        if let Some(v) = get("BV_AUDIT_READ_FLUSH_MS") {
            self.read_flush_interval = Duration::from_millis(num("BV_AUDIT_READ_FLUSH_MS", v)?);
        }
        Ok(())
    }

    /// Checks every setting against its range (see the table above).
    pub fn validate(&self) -> Result<(), Error> {
        check_duration(
            "audit.retention",
            self.retention,
            Duration::from_secs(1),
            TEN_YEARS_SECS,
        )?;
        check_duration(
            "audit.read_flush_interval",
            self.read_flush_interval,
            Duration::from_millis(1),
            86_400_000,
        )
    }

    /// Switches auditing on or off.
    pub fn enabled(mut self, on: bool) -> Self {
        self.enabled = on;
        self
    }

    /// Sets how long entries are kept.
    pub fn retention(mut self, d: Duration) -> Self {
        self.retention = d;
        self
    }

    /// Sets the time between appends of noted reads.
    pub fn read_flush_interval(mut self, d: Duration) -> Self {
        self.read_flush_interval = d;
        self
    }
}
