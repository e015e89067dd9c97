//! Tier 1: a `moka` cache in memory, bounded in bytes.
//!
//! * **Weigher**: key, value, [`ENTRY_OVERHEAD`](super::item::ENTRY_OVERHEAD)
//!   (moka's own ~150–180 B per entry, which it does not weigh, plus ours)
//!   and a little per tag, so that the configured bytes bound what the
//!   process spends, not only the payload.
//! * **Expiry**: each entry's deadline lives in the entry; the `Expiry`
//!   impl hands moka the time left, so moka drops it in time. Lookups
//!   check the deadline themselves as well, against the injected clock, so
//!   an expired entry is never returned even before moka removes it.
//! * **Eviction listener**: counts evictions by cause. moka calls it only
//!   while it does its housekeeping, so a task drives `run_pending_tasks`
//!   on an interval; the listener never writes back into the cache.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use moka::Expiry;
use moka::notification::RemovalCause;
use moka::policy::EvictionPolicy as MokaPolicy;

use crate::cache::config::{CacheConfig, EvictionPolicy};
use crate::cache::item::Item;
use crate::cache::stats::Counters;
use crate::clock::{Clock, remaining};

/// The tier-1 cache: keys to shared entries.
pub(crate) type Tier1 = moka::future::Cache<String, Arc<Item>>;

/// How often housekeeping runs when nothing else triggers it.
pub(crate) const HOUSEKEEPING: Duration = Duration::from_millis(500);

struct ItemExpiry {
    clock: Clock,
}

/// The longest TTL handed to moka (it adds TTLs to an `Instant`, which a
/// TTL of centuries would overflow); our own deadline check still applies.
const MAX_MOKA_TTL: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

impl ItemExpiry {
    fn left(&self, item: &Item) -> Option<Duration> {
        item.deadline.map(|d| {
            remaining(d, self.clock.now())
                .unwrap_or(Duration::ZERO)
                .min(MAX_MOKA_TTL)
        })
    }
}

impl Expiry<String, Arc<Item>> for ItemExpiry {
    fn expire_after_create(&self, _: &String, v: &Arc<Item>, _: Instant) -> Option<Duration> {
        self.left(v)
    }
    fn expire_after_update(
        &self,
        _: &String,
        v: &Arc<Item>,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        self.left(v)
    }
}

/// Builds tier 1. `tier2_on` tells the listener whether an entry pushed out
/// of memory still lives in the cache (in tier 2) for the tag estimates.
pub(crate) fn build(
    config: &CacheConfig,
    clock: &Clock,
    counters: Arc<Counters>,
    generation: Arc<AtomicU64>,
    tier2_on: Arc<AtomicBool>,
) -> Tier1 {
    let policy = match config.eviction {
        EvictionPolicy::TinyLfu => MokaPolicy::tiny_lfu(),
        EvictionPolicy::Lru => MokaPolicy::lru(),
    };
    moka::future::Cache::builder()
        .name("bv-cache-tier1")
        .max_capacity(config.memory_bytes)
        .eviction_policy(policy)
        .weigher(|k: &String, v: &Arc<Item>| v.weight(k))
        .expire_after(ItemExpiry {
            clock: clock.clone(),
        })
        .eviction_listener(move |_k, item: Arc<Item>, cause| {
            let e = &counters.t1_evictions;
            let gone_from_cache = match cause {
                RemovalCause::Size => {
                    e.size.incr();
                    !tier2_on.load(Ordering::Relaxed)
                }
                RemovalCause::Expired => {
                    e.expired.incr();
                    true
                }
                RemovalCause::Explicit | RemovalCause::Replaced => true,
            };
            if gone_from_cache && item.generation == generation.load(Ordering::Relaxed) {
                for t in item.tags.iter().filter(|t| t.is_current()) {
                    t.state.add_member(-1);
                }
            }
        })
        .build()
}
