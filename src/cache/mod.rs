//! The tiered cache: the seed's Redis, in-process.
//!
//! An assistant looks the same things up again and again (a user's
//! profile, the session in progress, model outputs for a phrase); a
//! round trip to a server for each costs more than the lookup. This cache
//! answers from memory in a few hundred nanoseconds and keeps what memory
//! cannot hold, and what must survive a restart, in its own redb file.
//!
//! * Tier 1 ([`tier1`]): `moka`, bounded in bytes, per-entry TTL, TinyLFU or
//!   LRU.
//! * Tier 2 ([`tier2`]): `cache.redb`, written behind (batched) or through;
//!   serves tier-1 misses and promotes the hit. It may fail without taking
//!   the cache down: it degrades and comes back.
//! * Tags ([`tags`]): versions, so that `invalidate_tag` costs O(1).
//! * Semantics ([`read`], [`write`]): every operation that reads and then
//!   writes a key (NX/XX, incr, expire, delete, promotion, get-or-load) runs
//!   under moka's per-key lock (`entry().and_compute_with`), across both
//!   tiers: two tasks never interleave on one key, and a lookup never puts
//!   an older value back over a newer one.
//!
//! The public face is [`Cache`], from [`Store::cache`](crate::Store::cache).

pub(crate) mod config;
pub(crate) mod item;
pub(crate) mod keys;
pub(crate) mod options;
mod read;
pub(crate) mod stats;
pub(crate) mod tags;
pub(crate) mod tier1;
pub(crate) mod tier2;
pub(crate) mod view;
pub(crate) mod write;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use crate::clock::Clock;
use crate::config::Config;
use crate::error::Error;
use crate::jobs::runtime::body_on;
use crate::jobs::{JobOutcome, JobSpec};
use stats::{CacheStats, Counters, Tier2State, Tier2Stats};
use tags::{TagRef, TagState, Tags};
use tier1::Tier1;
use tier2::Tier2;

pub use view::Cache;

/// Longest key, in bytes.
pub(crate) const MAX_KEY_BYTES: usize = 64 << 10;
/// Largest value, in bytes.
pub(crate) const MAX_VALUE_BYTES: usize = 64 << 20;

/// The cache behind every [`Cache`] view of one store.
pub(crate) struct CacheCore {
    pub(crate) tier1: Tier1,
    pub(crate) tier2: Option<Tier2>,
    pub(crate) tags: Arc<Tags>,
    pub(crate) generation: Arc<AtomicU64>,
    pub(crate) counters: Arc<Counters>,
    pub(crate) clock: Clock,
    pub(crate) default_ttl: Option<Duration>,
    memory_bytes: u64,
    closed: AtomicBool,
    /// The store's operation metrics (shared with the database).
    pub(crate) telemetry: Arc<crate::telemetry::Telemetry>,
}

impl CacheCore {
    /// Opens the cache of `config` (blocking: it opens `cache.redb`).
    pub(crate) fn open(
        config: &Config,
        telemetry: Arc<crate::telemetry::Telemetry>,
    ) -> Result<CacheCore, Error> {
        let c = &config.cache;
        let counters = Arc::new(Counters::default());
        let tags = Arc::new(Tags::default());
        let generation = Arc::new(AtomicU64::new(0));
        let tier2 = if c.tier2 {
            let settings = tier2::Settings {
                path: config.cache_path(),
                capacity: c.tier2_bytes,
                write_behind: match c.write_mode {
                    config::WriteMode::WriteBehind { max_delay } => Some(max_delay),
                    config::WriteMode::WriteThrough => None,
                },
                retry_interval: c.retry_interval,
                clock: config.clock.clone(),
                quick_repair: true,
            };
            Some(Tier2::open(
                settings,
                Arc::clone(&counters),
                Arc::clone(&tags),
                Arc::clone(&generation),
            )?)
        } else {
            None
        };
        let tier1 = tier1::build(
            c,
            &config.clock,
            Arc::clone(&counters),
            Arc::clone(&generation),
            Arc::new(AtomicBool::new(c.tier2)),
        );
        Ok(CacheCore {
            tier1,
            tier2,
            tags,
            generation,
            counters,
            clock: config.clock.clone(),
            default_ttl: c.default_ttl,
            memory_bytes: c.memory_bytes,
            closed: AtomicBool::new(false),
            telemetry,
        })
    }

    /// The cache's background jobs: tier 1's housekeeping (evictions and
    /// the listener moka defers) and, with tier 2 on, the sweep of
    /// `cache.redb`. Each holds only a weak handle to the cache.
    pub(crate) fn jobs(self: &Arc<Self>, sweep_interval: Duration) -> Vec<JobSpec> {
        let weak = Arc::downgrade(self);
        let mut jobs = vec![JobSpec {
            name: "cache-memory",
            about: "runs the memory tier's pending evictions",
            interval: tier1::HOUSEKEEPING,
            body: body_on(weak.clone(), |core: Arc<CacheCore>| async move {
                core.check_open()?;
                let cache = core.tier1.clone();
                drop(core);
                cache.run_pending_tasks().await;
                Ok(JobOutcome::default())
            }),
        }];
        if self.tier2.is_some() {
            jobs.push(JobSpec {
                name: "cache-sweep",
                about: "removes expired and stale rows from cache.redb and holds its byte bound",
                interval: sweep_interval,
                body: body_on(weak, |core: Arc<CacheCore>| async move {
                    core.check_open()?;
                    let Some(t2) = &core.tier2 else {
                        return Ok(JobOutcome::default());
                    };
                    let (expired, stale, evicted) = t2.sweep().await?;
                    let mut out = JobOutcome::default();
                    out.count("expired", expired);
                    out.count("stale", stale);
                    out.count("evicted", evicted);
                    Ok(out)
                }),
            });
        }
        jobs
    }

    /// The cache's health, from its tiers' state: memory only where
    /// `cache.redb` failed is degraded (its last error says why).
    pub(crate) fn health(&self) -> crate::health::PartHealth {
        use crate::health::{HealthStatus, PartHealth};
        let stats = self.stats();
        let t2 = &stats.tier2;
        let (status, detail) = match t2.state {
            Tier2State::Healthy => (
                HealthStatus::Healthy,
                format!("memory and cache.redb; {} entries on disk", t2.entries),
            ),
            Tier2State::Off => (HealthStatus::Healthy, "memory only (as configured)".into()),
            Tier2State::Degraded => (
                HealthStatus::Degraded,
                format!(
                    "serving from memory: cache.redb failed ({})",
                    t2.last_error.as_deref().unwrap_or("no detail")
                ),
            ),
            Tier2State::Closed => (HealthStatus::Unhealthy, "closed".into()),
        };
        PartHealth::new("cache", status, detail)
    }

    /// Commits pending tier-2 writes and stops the tier-2 writer (blocking).
    pub(crate) fn shutdown(&self) {
        self.closed.store(true, Ordering::Release);
        if let Some(t2) = &self.tier2 {
            t2.shutdown();
        }
    }

    pub(crate) fn check_open(&self) -> Result<(), Error> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        Ok(())
    }

    #[inline]
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The state of `name`, loaded from tier 2 on first use.
    pub(crate) fn tag(&self, name: &str) -> Arc<TagState> {
        self.tags.get(name, || match &self.tier2 {
            Some(t2) => t2.tag_version(name),
            None => Some(0),
        })
    }

    pub(crate) fn tag_refs(&self, names: &[String]) -> Box<[TagRef]> {
        let mut refs: Vec<TagRef> = Vec::with_capacity(names.len());
        for n in names {
            if refs.iter().any(|r| *r.state.name == **n) {
                continue;
            }
            let state = self.tag(n);
            let version = state.version();
            refs.push(TagRef { state, version });
        }
        refs.into_boxed_slice()
    }

    pub(crate) fn stats(&self) -> CacheStats {
        let tier2 = match &self.tier2 {
            Some(t2) => t2.stats(),
            None => Tier2Stats {
                state: Tier2State::Off,
                hits: 0,
                misses: 0,
                entries: 0,
                bytes: 0,
                capacity_bytes: 0,
                pending_writes: 0,
                commits: 0,
                evictions: Default::default(),
                last_error: None,
                set_aside: None,
            },
        };
        self.counters.snapshot(
            (
                self.tier1.entry_count(),
                self.tier1.weighted_size(),
                self.memory_bytes,
            ),
            tier2,
        )
    }
}

pub(crate) fn validate_key(key: &str) -> Result<(), Error> {
    if key.is_empty() || key.len() > MAX_KEY_BYTES {
        return Err(Error::invalid(
            "key",
            format!("a cache key must be 1 to {MAX_KEY_BYTES} bytes long"),
        ));
    }
    Ok(())
}

pub(crate) fn validate_value(value: &[u8]) -> Result<(), Error> {
    if value.len() > MAX_VALUE_BYTES {
        return Err(Error::invalid(
            "value",
            format!(
                "{} bytes is more than the {MAX_VALUE_BYTES} a cached value may hold",
                value.len()
            ),
        ));
    }
    Ok(())
}
