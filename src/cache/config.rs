//! The cache's settings: a part of [`Config`](crate::Config), with its own
//! defaults, `[cache]` TOML table and `BV_CACHE_*` variables.

use std::time::Duration;

use serde::Deserialize;

use crate::config::{TEN_YEARS_SECS, check_duration, check_range};
use crate::error::{Error, quote};

/// One day in milliseconds: the longest cache interval.
const DAY_MS: u64 = 86_400_000;

/// Which entries tier 1 drops first when it is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum EvictionPolicy {
    /// W-TinyLFU: a new entry is admitted only if it is likely to be used
    /// more often than the one it would push out; resists scans.
    #[default]
    TinyLfu,
    /// Least recently used.
    Lru,
}

/// When a write reaches tier 2 (`cache.redb`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum WriteMode {
    /// Every write waits for its tier-2 commit (shared with concurrent
    /// writes: group commit).
    WriteThrough,
    /// Writes return once in tier 1; tier 2 gets them in batches at most
    /// `max_delay` later. A crash can lose writes of that window (never a
    /// `delete`, `clear` or `invalidate_tag`, which are durable when they
    /// return).
    WriteBehind {
        /// The longest a write waits before its batch is committed.
        max_delay: Duration,
    },
}

/// The settings of the tiered cache (`Config::cache`).
///
/// ## Defaults
///
/// | setting | default | accepted | TOML (`[cache]`) | env |
/// |---|---|---|---|---|
/// | `memory_bytes` | 64 MiB of tier 1 (key + value + 256 B per entry) | 4 KiB to 1 TiB | `memory_bytes` | `BV_CACHE_MEMORY_BYTES` |
/// | `eviction` | TinyLFU | | `eviction = "tinylfu"` or `"lru"` | `BV_CACHE_EVICTION` |
/// | `default_ttl` | none (entries live until evicted) | 1 s to 3650 days | `default_ttl_secs` (0 = none) | `BV_CACHE_DEFAULT_TTL_SECS` |
/// | `tier2` | on (`cache.redb`) | | `tier2` | `BV_CACHE_TIER2` (`true`/`false`) |
/// | `tier2_bytes` | 1 GiB of `cache.redb` rows | 64 KiB to 256 TiB (checked when tier 2 is on) | `tier2_bytes` | `BV_CACHE_TIER2_BYTES` |
/// | `write_mode` | write-behind, 50 ms at most | delay 1 to 60000 ms | `write_mode = "write-behind"` or `"write-through"`, `write_delay_ms` | `BV_CACHE_WRITE_MODE`, `BV_CACHE_WRITE_DELAY_MS` |
/// | `sweep_interval` | 60 s between sweeps of expired and stale rows | 1 ms to 1 day | `sweep_interval_secs` | `BV_CACHE_SWEEP_SECS` |
/// | `retry_interval` | 5 s between attempts to bring back a degraded tier 2 | 1 ms to 1 day | `retry_interval_ms` | `BV_CACHE_RETRY_MS` |
///
/// A value outside its range is refused with [`Error::Config`] naming the
/// setting and the range.
///
/// ```
/// use std::time::Duration;
/// use bharatvoice_store::{CacheConfig, Config, EvictionPolicy};
/// let config = Config::new("/tmp/bv-example").cache(
///     CacheConfig::default()
///         .memory_bytes(16 << 20)
///         .eviction(EvictionPolicy::Lru)
///         .default_ttl(Some(Duration::from_secs(3600))),
/// );
/// assert_eq!(config.cache.memory_bytes, 16 << 20);
/// let from_toml = Config::from_toml_str("[cache]\nmemory_bytes = 1048576\ntier2 = false").unwrap();
/// assert!(!from_toml.cache.tier2);
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct CacheConfig {
    /// Most bytes tier 1 holds (weighed as key + value + per-entry overhead).
    pub memory_bytes: u64,
    /// How tier 1 chooses what to evict.
    pub eviction: EvictionPolicy,
    /// TTL of entries written without one; `None` for no expiry.
    pub default_ttl: Option<Duration>,
    /// Whether tier 2 (`cache.redb`) is used.
    pub tier2: bool,
    /// Most bytes of rows tier 2 keeps; beyond, the oldest writes go first.
    pub tier2_bytes: u64,
    /// When writes reach tier 2.
    pub write_mode: WriteMode,
    /// How often expired and stale tier-2 rows are swept.
    pub sweep_interval: Duration,
    /// How often a degraded tier 2 is tried again.
    pub retry_interval: Duration,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            memory_bytes: 64 << 20,
            eviction: EvictionPolicy::TinyLfu,
            default_ttl: None,
            tier2: true,
            tier2_bytes: 1 << 30,
            write_mode: WriteMode::WriteBehind {
                max_delay: Duration::from_millis(50),
            },
            sweep_interval: Duration::from_secs(60),
            retry_interval: Duration::from_secs(5),
        }
    }
}

/// The `[cache]` TOML table: every field optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileCacheConfig {
    memory_bytes: Option<u64>,
    eviction: Option<EvictionPolicy>,
    default_ttl_secs: Option<u64>,
    tier2: Option<bool>,
    tier2_bytes: Option<u64>,
    write_mode: Option<String>,
    write_delay_ms: Option<u64>,
    sweep_interval_secs: Option<u64>,
    retry_interval_ms: Option<u64>,
}

fn ttl_from_secs(secs: u64) -> Option<Duration> {
    (secs > 0).then(|| Duration::from_secs(secs))
}

fn bad(reason: impl Into<String>) -> Error {
    Error::Config {
        reason: reason.into(),
    }
}

impl CacheConfig {
    /// Defaults overlaid with a `[cache]` table.
    pub(crate) fn from_file(f: FileCacheConfig) -> Result<Self, Error> {
        let mut c = CacheConfig::default();
        if let Some(v) = f.memory_bytes {
            c.memory_bytes = v;
        }
        if let Some(v) = f.eviction {
            c.eviction = v;
        }
        if let Some(v) = f.default_ttl_secs {
            c.default_ttl = ttl_from_secs(v);
        }
        if let Some(v) = f.tier2 {
            c.tier2 = v;
        }
        if let Some(v) = f.tier2_bytes {
            c.tier2_bytes = v;
        }
        c.set_write_mode(f.write_mode.as_deref(), f.write_delay_ms)?;
        if let Some(v) = f.sweep_interval_secs {
            c.sweep_interval = Duration::from_secs(v);
        }
        if let Some(v) = f.retry_interval_ms {
            c.retry_interval = Duration::from_millis(v);
        }
        Ok(c)
    }

    fn set_write_mode(&mut self, mode: Option<&str>, delay_ms: Option<u64>) -> Result<(), Error> {
        let current_delay = match self.write_mode {
            WriteMode::WriteBehind { max_delay } => max_delay,
            WriteMode::WriteThrough => Duration::from_millis(50),
        };
        let delay = delay_ms.map_or(current_delay, Duration::from_millis);
        let behind = match mode.map(str::trim) {
            None => matches!(self.write_mode, WriteMode::WriteBehind { .. }),
            Some("write-behind" | "behind") => true,
            Some("write-through" | "through") => false,
            Some(other) => {
                return Err(bad(format!(
                    "cache write mode {}: use \"write-behind\" or \"write-through\"",
                    quote(other)
                )));
            }
        };
        self.write_mode = if behind {
            WriteMode::WriteBehind { max_delay: delay }
        } else {
            WriteMode::WriteThrough
        };
        Ok(())
    }

    /// Overlays `BV_CACHE_*` variables read through `get`.
    pub(crate) fn apply_env(&mut self, get: &impl Fn(&str) -> Option<String>) -> Result<(), Error> {
        fn num(name: &str, v: &str) -> Result<u64, Error> {
            v.trim()
                .parse()
                .map_err(|_| bad(format!("{name}={} is not a number", quote(v))))
        }
        if let Some(v) = get("BV_CACHE_MEMORY_BYTES") {
            self.memory_bytes = num("BV_CACHE_MEMORY_BYTES", &v)?;
        }
        if let Some(v) = get("BV_CACHE_EVICTION") {
            self.eviction = match v.trim().to_ascii_lowercase().as_str() {
                "tinylfu" => EvictionPolicy::TinyLfu,
                "lru" => EvictionPolicy::Lru,
                _ => {
                    return Err(bad(format!(
                        "BV_CACHE_EVICTION={}: use \"tinylfu\" or \"lru\"",
                        quote(&v)
                    )));
                }
            };
        }
        if let Some(v) = get("BV_CACHE_DEFAULT_TTL_SECS") {
            self.default_ttl = ttl_from_secs(num("BV_CACHE_DEFAULT_TTL_SECS", &v)?);
        }
        if let Some(v) = get("BV_CACHE_TIER2") {
            self.tier2 = match v.trim() {
                "1" | "true" | "on" => true,
                "0" | "false" | "off" => false,
                _ => {
                    return Err(bad(format!(
                        "BV_CACHE_TIER2={}: use true or false",
                        quote(&v)
                    )));
                }
            };
        }
        if let Some(v) = get("BV_CACHE_TIER2_BYTES") {
            self.tier2_bytes = num("BV_CACHE_TIER2_BYTES", &v)?;
        }
        let delay = match get("BV_CACHE_WRITE_DELAY_MS") {
            Some(v) => Some(num("BV_CACHE_WRITE_DELAY_MS", &v)?),
            None => None,
        };
        self.set_write_mode(get("BV_CACHE_WRITE_MODE").as_deref(), delay)?;
        if let Some(v) = get("BV_CACHE_SWEEP_SECS") {
            self.sweep_interval = Duration::from_secs(num("BV_CACHE_SWEEP_SECS", &v)?);
        }
        if let Some(v) = get("BV_CACHE_RETRY_MS") {
            self.retry_interval = Duration::from_millis(num("BV_CACHE_RETRY_MS", &v)?);
        }
        Ok(())
    }

    /// Checks every setting against its range (see the table above).
    pub fn validate(&self) -> Result<(), Error> {
        let ms = Duration::from_millis(1);
        check_range("cache memory_bytes", self.memory_bytes, 4096..=1 << 40)?;
        if self.tier2 {
            check_range("cache tier2_bytes", self.tier2_bytes, 65536..=1 << 48)?;
        }
        if let Some(ttl) = self.default_ttl {
            check_duration(
                "cache default_ttl",
                ttl,
                Duration::from_secs(1),
                TEN_YEARS_SECS,
            )?;
        }
        if let WriteMode::WriteBehind { max_delay } = self.write_mode {
            check_duration("cache write_delay", max_delay, ms, 60_000)?;
        }
        check_duration("cache sweep_interval", self.sweep_interval, ms, DAY_MS)?;
        check_duration("cache retry_interval", self.retry_interval, ms, DAY_MS)?;
        Ok(())
    }

    /// Sets the tier-1 capacity in bytes.
    pub fn memory_bytes(mut self, n: u64) -> Self {
        self.memory_bytes = n;
        self
    }
    /// Sets the tier-1 eviction policy.
    pub fn eviction(mut self, p: EvictionPolicy) -> Self {
        self.eviction = p;
        self
    }
    /// Sets the TTL of entries written without one (`None`: no expiry).
    pub fn default_ttl(mut self, ttl: Option<Duration>) -> Self {
        self.default_ttl = ttl;
        self
    }
    /// Turns tier 2 (`cache.redb`) on or off.
    pub fn tier2(mut self, on: bool) -> Self {
        self.tier2 = on;
        self
    }
    /// Sets the tier-2 capacity in bytes.
    pub fn tier2_bytes(mut self, n: u64) -> Self {
        self.tier2_bytes = n;
        self
    }
    /// Sets when writes reach tier 2.
    pub fn write_mode(mut self, m: WriteMode) -> Self {
        self.write_mode = m;
        self
    }
    /// Sets the interval of the tier-2 sweep.
    pub fn sweep_interval(mut self, d: Duration) -> Self {
        self.sweep_interval = d;
        self
    }
    /// Sets how often a degraded tier 2 is tried again.
    pub fn retry_interval(mut self, d: Duration) -> Self {
        self.retry_interval = d;
        self
    }
}
