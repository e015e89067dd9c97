//! How a store is set up: where it lives and how it behaves.
//!
//! Settings come, lowest precedence first, from the defaults, an optional
//! TOML file, `BV_*` environment variables, and the builder methods (the CLI
//! maps its flags onto those).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::cache::config::{CacheConfig, FileCacheConfig};
use crate::error::{Error, quote};

/// The settings of a [`Store`](crate::Store).
///
/// ## Defaults
///
/// | setting | default | accepted | env |
/// |---|---|---|---|
/// | `data_dir` | `./bharatvoice-data` | not empty | `BV_DATA_DIR` |
/// | `max_batch` | 512 requests per group commit | 1 to 65536 | `BV_MAX_BATCH` |
/// | `write_queue` | 8192 queued write requests | 1 to 1048576 | |
/// | `db_cache_bytes` | 64 MiB of redb page cache | 64 KiB to 1 TiB | `BV_DB_CACHE_BYTES` |
/// | `session_idle_timeout` | 30 minutes | 1 s to 3650 days | `BV_SESSION_IDLE_SECS` |
/// | `session_max_turns` | 32 turns of context | 1 to 65536 | `BV_SESSION_MAX_TURNS` |
/// | `session_max_context_bytes` | 16 KiB of context text | 1 B to 16 MiB | `BV_SESSION_MAX_CONTEXT_BYTES` |
/// | `session_cache_bytes` | 4 MiB of opened session contexts kept in memory, so a read does not decrypt unchanged turns again (0: off) | 0 to 1 TiB | `BV_SESSION_CACHE_BYTES` |
/// | `password_memory_kib` | 19456 (argon2id, OWASP) | 8 to 2097152 (2 GiB) | `BV_PASSWORD_MEMORY_KIB` |
/// | `password_iterations` | 2 | 1 to 64 | `BV_PASSWORD_ITERATIONS` |
/// | `default_retention_days` | 90 | 1 to 3650 | `BV_DEFAULT_RETENTION_DAYS` |
/// | `blob_chunk_bytes` | 256 KiB per blob chunk | 4 KiB to 16 MiB | `BV_BLOB_CHUNK_BYTES` |
/// | `blob_cache_limit_bytes` | 1 MiB: larger blobs leave the OS page cache once written | any | `BV_BLOB_CACHE_LIMIT_BYTES` |
/// | `master_key` | none: use `master_key_file`, else `<data_dir>/master.key` | 32 bytes | `BV_MASTER_KEY` (hex or base64) |
/// | `master_key_file` | none | a private file | `BV_MASTER_KEY_FILE` |
/// | `region` | none: where the data must stay, e.g. `IN`; recorded in the store at creation, and a store recorded in another region is refused | a string | `BV_REGION` |
/// | `verify_on_open` | true: every page checksum of `store.redb` is verified when it opens | true or false | `BV_VERIFY_ON_OPEN` |
/// | `quick_repair` | unset: on when `verify_on_open` is off; every commit of `store.redb` saves the allocator state, so a reopen after a crash does not walk the whole file | true or false | `BV_QUICK_REPAIR` (or `auto`) |
/// | `cache` | see [`CacheConfig`] | | `BV_CACHE_*` |
/// | `lifecycle` | see [`LifecycleConfig`](crate::LifecycleConfig) | | |
/// | `privacy` | see [`PrivacyConfig`](crate::PrivacyConfig) | | `BV_PRIVACY_*` |
/// | `quota` | see [`QuotaConfig`](crate::QuotaConfig) | | `BV_QUOTA_*` |
/// | `audit` | see [`AuditConfig`](crate::AuditConfig) | | `BV_AUDIT_*` |
/// | `rate_limits` | see [`RateLimitConfig`](crate::RateLimitConfig) (off) | | `BV_RATE_*` |
/// | `metrics` | see [`MetricsConfig`](crate::MetricsConfig) | | `BV_METRICS_TEXTFILE` |
/// | `admin_socket` | on: `admin.sock` in the data directory serves operator requests | true or false | `BV_ADMIN_SOCKET` |
/// | `clock` | the system clock (tests inject a [`ManualClock`](crate::ManualClock)) | | |
///
/// A value outside its range is refused with [`Error::Config`] naming the
/// setting and the range, by [`Config::validate`] (which
/// [`Store::open`](crate::Store::open), the TOML loaders and
/// [`Config::apply_env`] call).
///
/// Without a master key or key file, the store uses the embedded default:
/// `<data_dir>/master.key` (mode 0600), generated on first open. That key
/// sits beside the data it protects: anyone who copies the directory can
/// read the files. Production should pass its own key.
///
/// A TOML file uses the same names, durations in seconds
/// (`session_idle_timeout_secs`), a `[cache]` table for the cache and a
/// `[lifecycle]` table for the lifecycle jobs, a `[quota]` table for the
/// storage limits, a `[privacy]` table for the consent gate, an
/// `[audit]` table for the audit log and a `[rate_limits]` table for the
/// per-user rate limits.
///
/// ```
/// use std::time::Duration;
/// use bharatvoice_store::Config;
/// let config = Config::new("/tmp/bv-example")
///     .session_idle_timeout(Duration::from_secs(600))
///     .session_max_turns(16);
/// assert_eq!(config.session_max_turns, 16);
/// let from_toml = Config::from_toml_str("data_dir = '/srv/bv'\nmax_batch = 64").unwrap();
/// assert_eq!(from_toml.max_batch, 64);
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Config {
    /// The data directory; created on first use.
    pub data_dir: PathBuf,
    /// Most write requests packed into one transaction.
    pub max_batch: usize,
    /// Most write requests waiting for the writer (callers wait beyond it).
    pub write_queue: usize,
    /// Bytes of page cache redb may use.
    pub db_cache_bytes: usize,
    /// A session idle this long counts as expired.
    pub session_idle_timeout: Duration,
    /// Most turns kept in a session's context.
    pub session_max_turns: usize,
    /// Most bytes of turn text kept in a session's context.
    pub session_max_context_bytes: usize,
    /// Bytes of opened (decrypted) session contexts kept in memory; 0
    /// keeps none. An entry unused for ten minutes, or any after an
    /// erasure, is dropped and its text zeroed.
    pub session_cache_bytes: u64,
    /// argon2id memory cost in KiB.
    pub password_memory_kib: u32,
    /// argon2id iterations.
    pub password_iterations: u32,
    /// Retention of audio when a profile does not set one.
    pub default_retention_days: u32,
    /// Plaintext bytes per blob chunk (4 KiB to 16 MiB).
    pub blob_chunk_bytes: u32,
    /// Blobs of at least this many stored bytes are dropped from the OS page
    /// cache as they are written (Linux), so storing large recordings does
    /// not fill memory with pages nobody reads soon; smaller ones stay
    /// cached. Past this size, or past 1 MiB if that is more, the rest of a
    /// blob is written around the page cache (`O_DIRECT`) where the
    /// filesystem allows. `0` drops every blob, `u64::MAX` keeps every blob
    /// and never writes directly.
    pub blob_cache_limit_bytes: u64,
    /// The master key, if given directly.
    pub master_key: Option<crate::MasterKey>,
    /// A file holding the master key (must not be readable by group/others).
    pub master_key_file: Option<PathBuf>,
    /// The tiered cache.
    pub cache: CacheConfig,
    /// Expiry, purge and orphan collection.
    pub lifecycle: crate::LifecycleConfig,
    /// The consent gate, consent withdrawals and erasures.
    pub privacy: crate::PrivacyConfig,
    /// Per-user quotas and the free-space floor.
    pub quota: crate::QuotaConfig,
    /// The audit log: on or off, retention, read flushes.
    pub audit: crate::AuditConfig,
    /// Per-user rate limits (off by default).
    pub rate_limits: crate::RateLimitConfig,
    /// Metric snapshots and the Prometheus textfile.
    pub metrics: crate::MetricsConfig,
    /// Serve the admin socket (`admin.sock` in the data directory, mode
    /// 0600): health, stats, metrics, jobs, audit tail, verify, backup and
    /// gc for `bvstore` while this process holds the store. Default on.
    pub admin_socket: bool,
    /// Whether opening may create a store (default: only in a directory
    /// that holds no part of one). Not read from TOML or the environment.
    pub open_mode: crate::OpenMode,
    /// Open `store.redb` read-only even where it could be written; a store
    /// in a directory this process may not write is opened read-only
    /// anyway. Writes are [`Error::ReadOnly`](crate::Error::ReadOnly).
    pub read_only: bool,
    /// Verify the checksum of every page of `store.redb` when the store
    /// opens (default `true`). redb checks page checksums only when it
    /// repairs a file, so without this a byte damaged on disk (bit rot, a
    /// bad copy) can decode as another value or hide a record; with it, the
    /// open fails with [`Error::Corrupt`](crate::Error::Corrupt) instead.
    /// The check reads the whole file: about 30 ms for 100 000 users, 0.3
    /// to 1 s for a million (see `docs/BENCHMARKS.md`). A read-only open
    /// cannot run it (redb's check commits).
    pub verify_on_open: bool,
    /// Save redb's allocator state with every commit of `store.redb`, so
    /// that reopening after a crash (a `kill -9`, a power loss) reads it
    /// back instead of walking every page to rebuild it. `None` (the
    /// default) turns it on exactly when
    /// [`verify_on_open`](Config#structfield.verify_on_open) is off: a
    /// verified open walks every page anyway, and that one walk also
    /// repairs. At 1,000,000 users: 0.58 s to answer after a crash
    /// verified, 2.7 ms unverified with it and 0.73 s without; each
    /// single-caller commit costs 1.28 ms with it against 1.00 ms without
    /// (`benches/recovery.rs`; `docs/BENCHMARKS.md`, "Recovery after a
    /// crash"). `cache.redb` always saves it: its commits are batched, and
    /// it must never delay the store's opening.
    pub quick_repair: Option<bool>,
    /// The data region the deployment keeps data in (an ISO 3166 code such
    /// as `IN`, or `IN-KA`), recorded in the store when it is created (or
    /// first opened with one); opening a store recorded in another region
    /// is [`Error::RegionMismatch`](crate::Error::RegionMismatch).
    pub region: Option<String>,
    /// Where sealed blobs live: `blobs/` under the data directory (the
    /// default), or an S3-compatible bucket (feature `s3`).
    pub blob_backend: crate::BlobBackendConfig,
    /// Where every time the store records is read (see
    /// [`Clock`](crate::Clock)). Not read from TOML or the environment.
    pub clock: crate::Clock,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from(crate::DEFAULT_DATA_DIR),
            max_batch: 512,
            write_queue: 8192,
            db_cache_bytes: 64 << 20,
            session_idle_timeout: Duration::from_secs(30 * 60),
            session_max_turns: 32,
            session_max_context_bytes: 16 << 10,
            session_cache_bytes: 4 << 20,
            password_memory_kib: 19_456,
            password_iterations: 2,
            default_retention_days: 90,
            blob_chunk_bytes: crate::blob::format::DEFAULT_CHUNK,
            blob_cache_limit_bytes: 1 << 20,
            master_key: None,
            master_key_file: None,
            cache: CacheConfig::default(),
            lifecycle: crate::LifecycleConfig::default(),
            privacy: crate::PrivacyConfig::default(),
            quota: crate::QuotaConfig::default(),
            audit: crate::AuditConfig::default(),
            rate_limits: crate::RateLimitConfig::default(),
            metrics: crate::MetricsConfig::default(),
            admin_socket: true,
            open_mode: crate::OpenMode::default(),
            read_only: false,
            verify_on_open: true,
            quick_repair: None,
            region: None,
            blob_backend: crate::BlobBackendConfig::Local,
            clock: crate::Clock::System,
        }
    }
}

/// The TOML shape: every field optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    data_dir: Option<PathBuf>,
    max_batch: Option<usize>,
    write_queue: Option<usize>,
    db_cache_bytes: Option<usize>,
    session_idle_timeout_secs: Option<u64>,
    session_max_turns: Option<usize>,
    session_max_context_bytes: Option<usize>,
    session_cache_bytes: Option<u64>,
    password_memory_kib: Option<u32>,
    password_iterations: Option<u32>,
    default_retention_days: Option<u32>,
    blob_chunk_bytes: Option<u32>,
    blob_cache_limit_bytes: Option<u64>,
    master_key_file: Option<PathBuf>,
    verify_on_open: Option<bool>,
    quick_repair: Option<bool>,
    region: Option<String>,
    blob_backend: Option<crate::blob::backend::choice::FileBlobBackend>,
    cache: Option<FileCacheConfig>,
    lifecycle: Option<crate::lifecycle::config::FileLifecycleConfig>,
    privacy: Option<crate::privacy::config::FilePrivacyConfig>,
    quota: Option<crate::quota::FileQuotaConfig>,
    audit: Option<crate::audit::config::FileAuditConfig>,
    rate_limits: Option<crate::ratelimit::FileRateLimitConfig>,
    metrics: Option<crate::telemetry::config::FileMetricsConfig>,
    admin_socket: Option<bool>,
}

/// 3650 days in seconds: the longest duration a setting may take.
/// A boolean `BV_*` variable: 1/true/yes/on or 0/false/no/off.
pub(crate) fn env_bool(name: &str, v: &str) -> Result<bool, Error> {
    match v.trim() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(Error::Config {
            reason: format!("{name} must be true or false, got {}", quote(v)),
        }),
    }
}

pub(crate) const TEN_YEARS_SECS: u64 = 3650 * 86_400;

/// Fails with [`Error::Config`] naming the setting and its range unless
/// `value` is in `range`.
pub(crate) fn check_range<T: PartialOrd + std::fmt::Display>(
    name: &str,
    value: T,
    range: std::ops::RangeInclusive<T>,
) -> Result<(), Error> {
    if range.contains(&value) {
        return Ok(());
    }
    Err(Error::Config {
        reason: format!(
            "{name} must be {} to {}, got {value}",
            range.start(),
            range.end()
        ),
    })
}

/// [`check_range`] for a duration: 1 to `max` whole `unit`s (a second or a
/// millisecond), reported in that unit.
pub(crate) fn check_duration(
    name: &str,
    value: Duration,
    unit: Duration,
    max: u64,
) -> Result<(), Error> {
    let unit_name = if unit == Duration::from_millis(1) {
        "ms"
    } else {
        "s"
    };
    let ok = value >= unit && value.as_nanos() <= unit.as_nanos() * u128::from(max);
    if ok {
        return Ok(());
    }
    Err(Error::Config {
        reason: format!("{name} must be 1 to {max} {unit_name}, got {value:?}"),
    })
}

impl Config {
    /// Defaults with this data directory.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Config {
            data_dir: data_dir.into(),
            ..Config::default()
        }
    }

    /// Defaults, then an optional TOML file, then `BV_*` variables.
    pub fn load(file: Option<&Path>) -> Result<Self, Error> {
        let mut config = match file {
            Some(path) => Self::from_toml_file(path)?,
            None => Config::default(),
        };
        config.apply_env(|k| std::env::var(k).ok())?;
        Ok(config)
    }

    /// Defaults overlaid with a TOML file.
    pub fn from_toml_file(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::io(format!("reading config file {}", path.display()), e))?;
        Self::from_toml_str(&text)
    }

    /// Defaults overlaid with TOML text.
    pub fn from_toml_str(text: &str) -> Result<Self, Error> {
        let f: FileConfig = toml::from_str(text).map_err(|e| Error::Config {
            reason: e.to_string(),
        })?;
        let d = Config::default();
        let config = Config {
            data_dir: f.data_dir.unwrap_or(d.data_dir),
            max_batch: f.max_batch.unwrap_or(d.max_batch),
            write_queue: f.write_queue.unwrap_or(d.write_queue),
            db_cache_bytes: f.db_cache_bytes.unwrap_or(d.db_cache_bytes),
            session_idle_timeout: f
                .session_idle_timeout_secs
                .map_or(d.session_idle_timeout, Duration::from_secs),
            session_max_turns: f.session_max_turns.unwrap_or(d.session_max_turns),
            session_max_context_bytes: f
                .session_max_context_bytes
                .unwrap_or(d.session_max_context_bytes),
            session_cache_bytes: f.session_cache_bytes.unwrap_or(d.session_cache_bytes),
            password_memory_kib: f.password_memory_kib.unwrap_or(d.password_memory_kib),
            password_iterations: f.password_iterations.unwrap_or(d.password_iterations),
            default_retention_days: f.default_retention_days.unwrap_or(d.default_retention_days),
            blob_chunk_bytes: f.blob_chunk_bytes.unwrap_or(d.blob_chunk_bytes),
            blob_cache_limit_bytes: f.blob_cache_limit_bytes.unwrap_or(d.blob_cache_limit_bytes),
            master_key: None,
            master_key_file: f.master_key_file,
            cache: match f.cache {
                Some(c) => CacheConfig::from_file(c)?,
                None => d.cache,
            },
            lifecycle: f
                .lifecycle
                .map_or(d.lifecycle, crate::LifecycleConfig::from_file),
            privacy: f.privacy.map_or(d.privacy, crate::PrivacyConfig::from_file),
            quota: f.quota.map_or(d.quota, crate::QuotaConfig::from_file),
            audit: f.audit.map_or(d.audit, crate::AuditConfig::from_file),
            rate_limits: f
                .rate_limits
                .map_or(d.rate_limits, crate::RateLimitConfig::from_file),
            metrics: f.metrics.map_or(d.metrics, crate::MetricsConfig::from_file),
            admin_socket: f.admin_socket.unwrap_or(d.admin_socket),
            open_mode: d.open_mode,
            read_only: d.read_only,
            verify_on_open: f.verify_on_open.unwrap_or(d.verify_on_open),
            quick_repair: f.quick_repair.or(d.quick_repair),
            region: f.region,
            blob_backend: match f.blob_backend {
                Some(b) => crate::BlobBackendConfig::from_file(b)?,
                None => d.blob_backend,
            },
            clock: d.clock,
        };
        config.validate()?;
        Ok(config)
    }

    /// Overlays `BV_*` variables read through `get` (tests pass a map).
    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> Result<(), Error> {
        fn num<T: std::str::FromStr>(name: &str, v: String) -> Result<T, Error> {
            v.trim().parse().map_err(|_| Error::Config {
                reason: format!("{name}={} is not a number", quote(&v)),
            })
        }
        if let Some(v) = get("BV_DATA_DIR").filter(|v| !v.is_empty()) {
            self.data_dir = PathBuf::from(v);
        }
        if let Some(v) = get("BV_REGION").filter(|v| !v.is_empty()) {
            self.region = Some(v);
        }
        if let Some(v) = get("BV_ADMIN_SOCKET") {
            self.admin_socket = env_bool("BV_ADMIN_SOCKET", &v)?;
        }
        if let Some(v) = get("BV_METRICS_TEXTFILE").filter(|v| !v.is_empty()) {
            self.metrics.textfile = Some(PathBuf::from(v));
        }
        if let Some(v) = get("BV_MAX_BATCH") {
            self.max_batch = num("BV_MAX_BATCH", v)?;
        }
        if let Some(v) = get("BV_DB_CACHE_BYTES") {
            self.db_cache_bytes = num("BV_DB_CACHE_BYTES", v)?;
        }
        if let Some(v) = get("BV_SESSION_IDLE_SECS") {
            self.session_idle_timeout = Duration::from_secs(num("BV_SESSION_IDLE_SECS", v)?);
        }
        if let Some(v) = get("BV_SESSION_MAX_TURNS") {
            self.session_max_turns = num("BV_SESSION_MAX_TURNS", v)?;
        }
        if let Some(v) = get("BV_SESSION_MAX_CONTEXT_BYTES") {
            self.session_max_context_bytes = num("BV_SESSION_MAX_CONTEXT_BYTES", v)?;
        }
        if let Some(v) = get("BV_SESSION_CACHE_BYTES") {
            self.session_cache_bytes = num("BV_SESSION_CACHE_BYTES", v)?;
        }
        if let Some(v) = get("BV_PASSWORD_MEMORY_KIB") {
            self.password_memory_kib = num("BV_PASSWORD_MEMORY_KIB", v)?;
        }
        if let Some(v) = get("BV_PASSWORD_ITERATIONS") {
            self.password_iterations = num("BV_PASSWORD_ITERATIONS", v)?;
        }
        if let Some(v) = get("BV_DEFAULT_RETENTION_DAYS") {
            self.default_retention_days = num("BV_DEFAULT_RETENTION_DAYS", v)?;
        }
        if let Some(v) = get("BV_BLOB_CHUNK_BYTES") {
            self.blob_chunk_bytes = num("BV_BLOB_CHUNK_BYTES", v)?;
        }
        if let Some(v) = get("BV_BLOB_CACHE_LIMIT_BYTES") {
            self.blob_cache_limit_bytes = num("BV_BLOB_CACHE_LIMIT_BYTES", v)?;
        }
        if let Some(v) = get("BV_MASTER_KEY").filter(|v| !v.is_empty()) {
            self.master_key = Some(crate::MasterKey::parse(&v).map_err(|_| Error::InvalidKey {
                origin: "BV_MASTER_KEY".into(),
            })?);
        }
        if let Some(v) = get("BV_MASTER_KEY_FILE").filter(|v| !v.is_empty()) {
            self.master_key_file = Some(PathBuf::from(v));
        }
        if let Some(v) = get("BV_VERIFY_ON_OPEN") {
            self.verify_on_open = env_bool("BV_VERIFY_ON_OPEN", &v)?;
        }
        if let Some(v) = get("BV_QUICK_REPAIR") {
            self.quick_repair = match v.trim() {
                "auto" => None,
                v => Some(env_bool("BV_QUICK_REPAIR", v)?),
            };
        }
        self.cache.apply_env(&get)?;
        self.quota.apply_env(&get)?;
        self.privacy.apply_env(&get)?;
        self.audit.apply_env(&get)?;
        self.rate_limits.apply_env(&get)?;
        self.validate()
    }

    /// Checks every setting against its range (see the table above).
    pub fn validate(&self) -> Result<(), Error> {
        if self.data_dir.as_os_str().is_empty() {
            return Err(Error::Config {
                reason: "data_dir must not be empty".into(),
            });
        }
        self.blob_backend.validate()?;
        check_range("max_batch", self.max_batch, 1..=1 << 16)?;
        check_range("write_queue", self.write_queue, 1..=1 << 20)?;
        check_range("db_cache_bytes", self.db_cache_bytes, 64 << 10..=1 << 40)?;
        check_duration(
            "session_idle_timeout",
            self.session_idle_timeout,
            Duration::from_secs(1),
            TEN_YEARS_SECS,
        )?;
        check_range("session_max_turns", self.session_max_turns, 1..=1 << 16)?;
        check_range(
            "session_max_context_bytes",
            self.session_max_context_bytes,
            1..=16 << 20,
        )?;
        check_range("session_cache_bytes", self.session_cache_bytes, 0..=1 << 40)?;
        check_range("password_memory_kib", self.password_memory_kib, 8..=2 << 20)?;
        check_range("password_iterations", self.password_iterations, 1..=64)?;
        check_range(
            "default_retention_days",
            self.default_retention_days,
            1..=3650,
        )?;
        check_range(
            "blob_chunk_bytes",
            self.blob_chunk_bytes,
            4 << 10..=16 << 20,
        )?;
        self.cache.validate()?;
        self.privacy.validate()?;
        self.audit.validate()?;
        self.rate_limits.validate()?;
        self.metrics.validate()?;
        if let Some(r) = &self.region {
            crate::privacy::region::check(r)?;
        }
        self.lifecycle.validate()
    }

    /// Sets the data directory.
    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.data_dir = dir.into();
        self
    }
    /// Sets the most requests per group commit.
    pub fn max_batch(mut self, n: usize) -> Self {
        self.max_batch = n;
        self
    }
    /// Sets the most write requests waiting for the writer.
    pub fn write_queue(mut self, n: usize) -> Self {
        self.write_queue = n;
        self
    }
    /// Sets redb's page cache size.
    pub fn db_cache_bytes(mut self, n: usize) -> Self {
        self.db_cache_bytes = n;
        self
    }
    /// Sets the session idle timeout.
    pub fn session_idle_timeout(mut self, d: Duration) -> Self {
        self.session_idle_timeout = d;
        self
    }
    /// Sets the most turns of context per session.
    pub fn session_max_turns(mut self, n: usize) -> Self {
        self.session_max_turns = n;
        self
    }
    /// Sets the most bytes of context per session.
    pub fn session_max_context_bytes(mut self, n: usize) -> Self {
        self.session_max_context_bytes = n;
        self
    }
    /// Sets the bytes of opened session contexts kept in memory (0: none).
    pub fn session_cache_bytes(mut self, n: u64) -> Self {
        self.session_cache_bytes = n;
        self
    }
    /// Sets the argon2id cost (memory in KiB, iterations). Tests use a low
    /// cost; keep the default in production.
    pub fn password_cost(mut self, memory_kib: u32, iterations: u32) -> Self {
        self.password_memory_kib = memory_kib;
        self.password_iterations = iterations;
        self
    }
    /// Sets the default audio retention.
    pub fn default_retention_days(mut self, days: u32) -> Self {
        self.default_retention_days = days;
        self
    }

    /// Sets the plaintext bytes per blob chunk.
    pub fn blob_chunk_bytes(mut self, n: u32) -> Self {
        self.blob_chunk_bytes = n;
        self
    }
    /// Sets the stored size from which blobs leave the OS page cache once
    /// written (see [`Config::blob_cache_limit_bytes`]).
    pub fn blob_cache_limit_bytes(mut self, n: u64) -> Self {
        self.blob_cache_limit_bytes = n;
        self
    }
    /// Uses this master key.
    pub fn master_key(mut self, key: crate::MasterKey) -> Self {
        self.master_key = Some(key);
        self
    }
    /// Reads the master key from this file (mode 0600 or stricter).
    pub fn master_key_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.master_key_file = Some(path.into());
        self
    }
    /// Sets the cache settings.
    pub fn cache(mut self, cache: CacheConfig) -> Self {
        self.cache = cache;
        self
    }

    /// Sets the storage limits.
    pub fn quota(mut self, quota: crate::QuotaConfig) -> Self {
        self.quota = quota;
        self
    }
    /// Sets the per-user rate limits.
    pub fn rate_limits(mut self, limits: crate::RateLimitConfig) -> Self {
        self.rate_limits = limits;
        self
    }

    /// Sets the audit log's settings.
    pub fn audit(mut self, audit: crate::AuditConfig) -> Self {
        self.audit = audit;
        self
    }

    /// Sets the privacy settings (consent gate, withdrawal notice).
    pub fn privacy(mut self, privacy: crate::PrivacyConfig) -> Self {
        self.privacy = privacy;
        self
    }

    /// Sets the lifecycle jobs' settings.
    pub fn lifecycle(mut self, lifecycle: crate::LifecycleConfig) -> Self {
        self.lifecycle = lifecycle;
        self
    }

    /// Serves the admin socket or not (see
    /// [`Config::admin_socket`](Config#structfield.admin_socket)).
    pub fn admin_socket(mut self, on: bool) -> Self {
        self.admin_socket = on;
        self
    }

    /// Sets the metric snapshots and the Prometheus textfile.
    pub fn metrics(mut self, metrics: crate::MetricsConfig) -> Self {
        self.metrics = metrics;
        self
    }

    /// Sets the data region (see [`Config::region`](Config#structfield.region)).
    pub fn region(mut self, region: impl Into<String>) -> Self {
        self.region = Some(region.into());
        self
    }

    /// Sets where sealed blobs live (see [`BlobBackendConfig`](crate::BlobBackendConfig)).
    pub fn blob_backend(mut self, backend: crate::BlobBackendConfig) -> Self {
        self.blob_backend = backend;
        self
    }

    /// Opens the store read-only (see [`Config::read_only`](Config#structfield.read_only)).
    pub fn read_only(mut self, read_only: bool) -> Self {
        self.read_only = read_only;
        self
    }

    /// Sets whether every page of `store.redb` is verified at open (see
    /// [`Config::verify_on_open`](Config#structfield.verify_on_open)).
    pub fn verify_on_open(mut self, verify: bool) -> Self {
        self.verify_on_open = verify;
        self
    }

    /// Sets whether commits save the allocator state for a fast reopen
    /// after a crash (see
    /// [`Config::quick_repair`](Config#structfield.quick_repair)).
    pub fn quick_repair(mut self, quick: bool) -> Self {
        self.quick_repair = Some(quick);
        self
    }

    /// Whether commits of `store.redb` save the allocator state: as set,
    /// else exactly when the open does not verify every page.
    pub(crate) fn saves_allocator_state(&self) -> bool {
        self.quick_repair.unwrap_or(!self.verify_on_open)
    }

    /// Sets the clock every recorded time is read from; tests pass a
    /// [`ManualClock`](crate::ManualClock) to move time without sleeping.
    ///
    /// ```
    /// use std::time::Duration;
    /// use bharatvoice_store::{Config, ManualClock, Timestamp};
    /// let clock = ManualClock::new(Timestamp::from_micros(1_800_000_000_000_000));
    /// let config = Config::new("/tmp/bv-clock").clock(clock.clone());
    /// clock.advance(Duration::from_secs(3600));
    /// assert_eq!(config.clock.now(), Timestamp::from_micros(1_800_003_600_000_000));
    /// ```
    pub fn clock(mut self, clock: impl Into<crate::Clock>) -> Self {
        self.clock = clock.into();
        self
    }

    /// Sets whether opening may create a store (see [`OpenMode`](crate::OpenMode)).
    pub fn open_mode(mut self, mode: crate::OpenMode) -> Self {
        self.open_mode = mode;
        self
    }

    /// The metadata database file.
    pub fn db_path(&self) -> PathBuf {
        self.data_dir.join("store.redb")
    }

    /// The cache's tier-2 file.
    pub fn cache_path(&self) -> PathBuf {
        self.data_dir.join("cache.redb")
    }
}
