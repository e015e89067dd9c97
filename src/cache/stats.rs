//! What the cache counts: hits and misses per tier, inserts, evictions by
//! cause, entries and bytes per tier, and the state of tier 2.
//!
//! moka keeps no hit or miss counters, so the cache counts them itself. The
//! hot path bumps one counter per `get`; counters are striped over padded
//! cache lines so that tasks on different cores do not fight over one line.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

const STRIPES: usize = 8;

#[repr(align(64))]
#[derive(Default)]
struct Padded(AtomicU64);

/// A counter bumped from many threads at once.
#[derive(Default)]
pub(crate) struct Counter([Padded; STRIPES]);

thread_local! {
    static STRIPE: usize = {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        NEXT.fetch_add(1, Ordering::Relaxed) as usize % STRIPES
    };
}

impl Counter {
    #[inline]
    pub(crate) fn add(&self, n: u64) {
        let i = STRIPE.with(|s| *s);
        self.0[i].0.fetch_add(n, Ordering::Relaxed);
    }
    #[inline]
    pub(crate) fn incr(&self) {
        self.add(1);
    }
    pub(crate) fn get(&self) -> u64 {
        self.0.iter().map(|p| p.0.load(Ordering::Relaxed)).sum()
    }
}

/// Why entries left a tier.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Evictions {
    /// Pushed out to stay within the tier's capacity.
    pub size: u64,
    /// Past their deadline.
    pub expired: u64,
    /// Removed by `delete` (or replaced by an explicit `expire` to zero).
    pub explicit: u64,
    /// Dropped because one of their tags (or a `clear`) moved on.
    pub tag: u64,
}

#[derive(Default)]
pub(crate) struct EvictionCounters {
    pub(crate) size: Counter,
    pub(crate) expired: Counter,
    pub(crate) explicit: Counter,
    pub(crate) tag: Counter,
}

impl EvictionCounters {
    fn snapshot(&self) -> Evictions {
        Evictions {
            size: self.size.get(),
            expired: self.expired.get(),
            explicit: self.explicit.get(),
            tag: self.tag.get(),
        }
    }
}

/// The counters of the whole cache.
#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) t1_hits: Counter,
    pub(crate) t1_misses: Counter,
    pub(crate) t2_hits: Counter,
    pub(crate) t2_misses: Counter,
    pub(crate) inserts: Counter,
    pub(crate) t1_evictions: EvictionCounters,
    pub(crate) t2_evictions: EvictionCounters,
}

/// The health of tier 2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Tier2State {
    /// Tier 2 is turned off by configuration.
    Off,
    /// `cache.redb` is open and writes reach it.
    Healthy,
    /// `cache.redb` failed; the cache serves from tier 1 and retries.
    Degraded,
    /// The cache has been closed.
    Closed,
}

impl std::fmt::Display for Tier2State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Tier2State::Off => "off",
            Tier2State::Healthy => "healthy",
            Tier2State::Degraded => "degraded",
            Tier2State::Closed => "closed",
        })
    }
}

/// Tier 1 (memory) figures.
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct Tier1Stats {
    /// Lookups answered from memory.
    pub hits: u64,
    /// Lookups memory could not answer.
    pub misses: u64,
    /// Entries held (moka's count, settled at its last housekeeping).
    pub entries: u64,
    /// Weighed bytes held (key + value + per-entry overhead).
    pub bytes: u64,
    /// The configured bound of `bytes`.
    pub capacity_bytes: u64,
    /// Entries that left memory, by cause.
    pub evictions: Evictions,
}

/// Tier 2 (`cache.redb`) figures.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Tier2Stats {
    /// Off, healthy or degraded.
    pub state: Tier2State,
    /// Tier-1 misses answered from tier 2 (and promoted).
    pub hits: u64,
    /// Tier-1 misses tier 2 could not answer either.
    pub misses: u64,
    /// Rows held (including expired rows not yet swept).
    pub entries: u64,
    /// Bytes of rows held (keys, values and row headers).
    pub bytes: u64,
    /// The configured bound of `bytes`.
    pub capacity_bytes: u64,
    /// Writes waiting for their write-behind batch.
    pub pending_writes: u64,
    /// Transactions committed.
    pub commits: u64,
    /// Rows that left tier 2, by cause.
    pub evictions: Evictions,
    /// The failure that degraded tier 2, while it is degraded.
    pub last_error: Option<String>,
    /// Where a damaged `cache.redb` was moved when this process found it.
    pub set_aside: Option<std::path::PathBuf>,
}

/// A snapshot of the cache's counters ([`Cache::stats`](crate::Cache::stats)).
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct CacheStats {
    /// Lookups (each key of `get_many` counts).
    pub lookups: u64,
    /// Lookups answered by either tier.
    pub hits: u64,
    /// `hits / lookups`, 0 before the first lookup.
    pub hit_ratio: f64,
    /// Values written (set, conditional sets that wrote, incr, loads).
    pub inserts: u64,
    /// Memory.
    pub tier1: Tier1Stats,
    /// Disk.
    pub tier2: Tier2Stats,
}

impl Counters {
    pub(crate) fn snapshot(&self, tier1: (u64, u64, u64), tier2: Tier2Stats) -> CacheStats {
        let t1_hits = self.t1_hits.get();
        let t1_misses = self.t1_misses.get();
        let t2_hits = self.t2_hits.get();
        let lookups = t1_hits + t1_misses;
        let hits = t1_hits + t2_hits;
        CacheStats {
            lookups,
            hits,
            hit_ratio: if lookups == 0 {
                0.0
            } else {
                hits as f64 / lookups as f64
            },
            inserts: self.inserts.get(),
            tier1: Tier1Stats {
                hits: t1_hits,
                misses: t1_misses,
                entries: tier1.0,
                bytes: tier1.1,
                capacity_bytes: tier1.2,
                evictions: self.t1_evictions.snapshot(),
            },
            tier2: Tier2Stats {
                hits: t2_hits,
                misses: self.t2_misses.get(),
                evictions: self.t2_evictions.snapshot(),
                ..tier2
            },
        }
    }
}
