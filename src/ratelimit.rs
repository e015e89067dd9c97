//! Per-user rate limits: a token bucket of operations per second and one
//! of stored bytes per second for every user (the `governor` crate's
//! GCRA), so that one user's runaway client cannot take a shared device's
//! disk and CPU from everyone else.
//!
//! * **Operations**: every call of [`Files`](crate::Files) that names a
//!   user as its actor takes one token of that user's operations bucket
//!   before it does anything.
//! * **Stored bytes**: a put takes as many tokens as it stores (plaintext
//!   bytes, after streaming and before its commit: a refused put leaves
//!   nothing behind). A put larger than the bucket passes only when the
//!   bucket is full, and empties it.
//! * [`Actor::System`](crate::Actor::System) is never limited, and the
//!   `bvstore` command line switches the limits off unless it is given
//!   `--rate-limits`.
//!
//! A refusal is [`Error::RateLimited`] with the time after which the same
//! request would pass. The buckets follow the store's [`Clock`]
//! (tests move a manual clock instead of sleeping) and live in memory: a
//! reopened store starts with full buckets.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::{Quota, RateLimiter, state::keyed::DefaultKeyedStateStore};
use serde::Deserialize;

use crate::blob::Actor;
use crate::clock::Clock;
use crate::error::{Error, quote};
use crate::types::UserId;

/// Which bucket refused ([`Error::RateLimited`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RateLimit {
    /// Operations per second.
    Operations,
    /// Stored bytes per second.
    StoredBytes,
}

impl std::fmt::Display for RateLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RateLimit::Operations => "operations per second",
            RateLimit::StoredBytes => "stored bytes per second",
        })
    }
}

/// Rate-limit settings (`Config::rate_limits`); off by default.
///
/// | setting | default | TOML (`[rate_limits]`) | env |
/// |---|---|---|---|
/// | `ops_per_sec` | 0 (off): operations per second per user | `ops_per_sec` | `BV_RATE_OPS_PER_SEC` |
/// | `ops_burst` | `ops_per_sec`: operations a user may make at once | `ops_burst` | `BV_RATE_OPS_BURST` |
/// | `bytes_per_sec` | 0 (off): stored bytes per second per user | `bytes_per_sec` | `BV_RATE_BYTES_PER_SEC` |
/// | `bytes_burst` | `bytes_per_sec`: bytes a user may store at once | `bytes_burst` | `BV_RATE_BYTES_BURST` |
///
/// Bytes are counted in KiB tokens (rounded up), so the byte settings go
/// up to 4 TiB.
///
/// ```
/// use bharatvoice_store::{Config, RateLimitConfig};
/// let config = Config::new("/tmp/bv-example")
///     .rate_limits(RateLimitConfig::default().ops(50, 100).bytes(8 << 20, 64 << 20));
/// assert_eq!(config.rate_limits.ops_per_sec, 50);
/// let t = Config::from_toml_str("[rate_limits]\nops_per_sec = 20").unwrap();
/// // No burst given (0): a user may make 20 operations at once.
/// assert_eq!((t.rate_limits.ops_per_sec, t.rate_limits.ops_burst), (20, 0));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RateLimitConfig {
    /// Operations per second per user; 0 switches the limit off.
    pub ops_per_sec: u32,
    /// Operations a user may make at once (0: as many as `ops_per_sec`).
    pub ops_burst: u32,
    /// Stored bytes per second per user; 0 switches the limit off.
    pub bytes_per_sec: u64,
    /// Bytes a user may store at once (0: as many as `bytes_per_sec`).
    pub bytes_burst: u64,
}

/// The TOML shape of `[rate_limits]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileRateLimitConfig {
    ops_per_sec: Option<u32>,
    ops_burst: Option<u32>,
    bytes_per_sec: Option<u64>,
    bytes_burst: Option<u64>,
}

/// Bytes per token of the stored-bytes bucket.
const TOKEN_BYTES: u64 = 1024;

impl RateLimitConfig {
    /// Limits every user to `per_sec` operations per second, `burst` at
    /// once (0 switches the limit off).
    pub fn ops(mut self, per_sec: u32, burst: u32) -> Self {
        self.ops_per_sec = per_sec;
        self.ops_burst = burst;
        self
    }

    /// Limits every user to storing `per_sec` bytes per second, `burst`
    /// at once (0 switches the limit off).
    pub fn bytes(mut self, per_sec: u64, burst: u64) -> Self {
        self.bytes_per_sec = per_sec;
        self.bytes_burst = burst;
        self
    }

    /// No limits (the default).
    pub fn off() -> Self {
        RateLimitConfig::default()
    }

    /// Whether any limit is on.
    pub fn is_on(&self) -> bool {
        self.ops_per_sec > 0 || self.bytes_per_sec > 0
    }

    pub(crate) fn from_file(f: FileRateLimitConfig) -> RateLimitConfig {
        RateLimitConfig {
            ops_per_sec: f.ops_per_sec.unwrap_or(0),
            ops_burst: f.ops_burst.unwrap_or(0),
            bytes_per_sec: f.bytes_per_sec.unwrap_or(0),
            bytes_burst: f.bytes_burst.unwrap_or(0),
        }
    }

    pub(crate) fn apply_env(&mut self, get: &impl Fn(&str) -> Option<String>) -> Result<(), Error> {
        let num = |name: &str| -> Result<Option<u64>, Error> {
            get(name)
                .map(|v| {
                    v.trim().parse::<u64>().map_err(|_| Error::Config {
                        reason: format!("{name}={} is not a number", quote(&v)),
                    })
                })
                .transpose()
        };
        let small = |name: &str, v: u64| -> Result<u32, Error> {
            u32::try_from(v).map_err(|_| Error::Config {
                reason: format!("{name} must be at most {}", u32::MAX),
            })
        };
        if let Some(v) = num("BV_RATE_OPS_PER_SEC")? {
            self.ops_per_sec = small("BV_RATE_OPS_PER_SEC", v)?;
        }
        if let Some(v) = num("BV_RATE_OPS_BURST")? {
            self.ops_burst = small("BV_RATE_OPS_BURST", v)?;
        }
        if let Some(v) = num("BV_RATE_BYTES_PER_SEC")? {
            self.bytes_per_sec = v;
        }
        if let Some(v) = num("BV_RATE_BYTES_BURST")? {
            self.bytes_burst = v;
        }
        Ok(())
    }

    /// Checks every setting against its range.
    pub fn validate(&self) -> Result<(), Error> {
        let max = u64::from(u32::MAX) * TOKEN_BYTES;
        if self.bytes_per_sec > max || self.bytes_burst > max {
            return Err(Error::Config {
                reason: format!("rate_limits.bytes_per_sec and bytes_burst must be at most {max}"),
            });
        }
        Ok(())
    }
}

/// The store's clock as a `governor` clock: time since the epoch.
#[derive(Debug, Clone)]
struct StoreClock(Clock);

impl governor::clock::Clock for StoreClock {
    type Instant = Duration;

    fn now(&self) -> Duration {
        Duration::from_micros(u64::try_from(self.0.now().as_micros()).unwrap_or(0))
    }
}

type Bucket = RateLimiter<
    UserId,
    DefaultKeyedStateStore<UserId>,
    StoreClock,
    governor::middleware::NoOpMiddleware<Duration>,
>;

/// The buckets of every user; `None` where a limit is off.
pub(crate) struct RateLimits {
    ops: Option<Bucket>,
    bytes: Option<(Bucket, NonZeroU32)>,
    clock: StoreClock,
}

/// A quota of `per_sec` tokens a second, `burst` at once (0: `per_sec`).
fn quota(per_sec: u32, burst: u32) -> Option<Quota> {
    let rate = NonZeroU32::new(per_sec)?;
    let burst = NonZeroU32::new(burst).unwrap_or(rate);
    Some(Quota::per_second(rate).allow_burst(burst))
}

/// Bytes as KiB tokens, rounded up (at least one).
fn tokens(bytes: u64) -> u32 {
    u32::try_from(bytes.div_ceil(TOKEN_BYTES))
        .unwrap_or(u32::MAX)
        .max(1)
}

impl RateLimits {
    pub(crate) fn new(config: &RateLimitConfig, clock: Clock) -> RateLimits {
        let clock = StoreClock(clock);
        let bucket =
            |q: Quota| RateLimiter::new(q, DefaultKeyedStateStore::default(), clock.clone());
        let ops = quota(config.ops_per_sec, config.ops_burst).map(bucket);
        let bytes = (config.bytes_per_sec > 0)
            .then(|| {
                let burst = match config.bytes_burst {
                    0 => 0,
                    b => tokens(b),
                };
                quota(tokens(config.bytes_per_sec), burst)
            })
            .flatten()
            .map(|q| (bucket(q), q.burst_size()));
        RateLimits { ops, bytes, clock }
    }

    /// Takes one operation token of the actor's bucket.
    pub(crate) fn operation(&self, actor: Actor) -> Result<(), Error> {
        let (Some(bucket), Actor::User(user)) = (&self.ops, actor) else {
            return Ok(());
        };
        bucket
            .check_key(&user)
            .map_err(|not_until| self.refusal(user, RateLimit::Operations, not_until))
    }

    /// Takes the tokens of `bytes` stored bytes from the actor's bucket.
    pub(crate) fn stored(&self, actor: Actor, bytes: u64) -> Result<(), Error> {
        let (Some((bucket, burst)), Actor::User(user)) = (&self.bytes, actor) else {
            return Ok(());
        };
        let n = NonZeroU32::new(tokens(bytes).min(burst.get())).unwrap_or(*burst);
        match bucket.check_key_n(&user, n) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(not_until)) => Err(self.refusal(user, RateLimit::StoredBytes, not_until)),
            // Not reachable: `n` is at most the burst.
            Err(_) => Err(Error::RateLimited {
                user,
                limit: RateLimit::StoredBytes,
                retry_after: Duration::from_secs(1),
            }),
        }
    }

    fn refusal(
        &self,
        user: UserId,
        limit: RateLimit,
        not_until: governor::NotUntil<Duration>,
    ) -> Error {
        use governor::clock::Clock as _;
        let now = self.clock.now();
        let retry_after = not_until.wait_time_from(now);
        tracing::debug!(user = %user, %limit, ?retry_after, "rate limited");
        Error::RateLimited {
            user,
            limit,
            retry_after,
        }
    }
}
