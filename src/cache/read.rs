//! Lookups: tier 1 without a lock; on a miss, tier 2 under the key's lock,
//! promoting what it finds.
//!
//! The hot path is one moka `get`, an `Arc` clone, the freshness check
//! (generation, one atomic load per tag, a clock read if the entry has a
//! deadline) and one striped counter: no allocation of ours. The miss path
//! takes moka's per-key lock so that a promotion can never put back a value
//! that a concurrent write or delete has just replaced.

use std::sync::Arc;

use moka::ops::compute::Op;

use crate::cache::CacheCore;
use crate::cache::item::{Item, Staleness};
use crate::cache::tags::TagRef;
use crate::cache::tier2::Lookup;
use crate::cache::tier2::row::Row;

/// What a key holds, seen under its lock.
pub(crate) enum Current {
    /// A live entry in tier 1.
    Tier1(Arc<Item>),
    /// A live row in tier 2, not in tier 1 (promote it with `Op::Put`).
    Tier2(Arc<Item>),
    /// No live value.
    Missing {
        /// Tier 1 holds a dead entry (remove it with `Op::Remove`).
        dead_in_tier1: bool,
        /// Tier 2 holds a dead row.
        maybe_row: bool,
    },
    /// Tier 1 has no entry and tier 2 could not be read (degraded, or a
    /// read failed): the key may hold a live value there.
    Unknown,
}

impl Current {
    pub(crate) fn live(&self) -> Option<&Arc<Item>> {
        match self {
            Current::Tier1(i) | Current::Tier2(i) => Some(i),
            Current::Missing { .. } | Current::Unknown => None,
        }
    }

    /// Whether tier 2 may hold a row for the key.
    pub(crate) fn maybe_row(&self) -> bool {
        match self {
            Current::Tier1(_) | Current::Tier2(_) | Current::Unknown => true,
            Current::Missing { maybe_row, .. } => *maybe_row,
        }
    }

    /// The op that leaves tier 1 as it should be when nothing is written.
    pub(crate) fn settle(&self) -> Op<Arc<Item>> {
        match self {
            Current::Tier2(i) => Op::Put(Arc::clone(i)),
            Current::Missing {
                dead_in_tier1: true,
                ..
            } => Op::Remove,
            _ => Op::Nop,
        }
    }
}

impl CacheCore {
    /// The live entry of `key`, from either tier.
    #[inline]
    pub(crate) async fn lookup(&self, key: &str) -> Option<Arc<Item>> {
        if let Some(item) = self.tier1.get(key).await
            && item.check(&self.clock, self.generation()) == Staleness::Fresh
        {
            self.counters.t1_hits.incr();
            return Some(item);
        }
        self.lookup_locked(key).await
    }

    async fn lookup_locked(&self, key: &str) -> Option<Arc<Item>> {
        let mut found: Option<(Arc<Item>, bool)> = None;
        let out = &mut found;
        self.tier1
            .entry_by_ref(key)
            .and_compute_with(move |cur| {
                let state = self.current(key, cur.map(|e| e.into_value()));
                let op = state.settle();
                *out = match state {
                    Current::Tier1(i) => Some((i, true)),
                    Current::Tier2(i) => Some((i, false)),
                    Current::Missing { .. } | Current::Unknown => None,
                };
                std::future::ready(op)
            })
            .await;
        match found {
            Some((item, true)) => {
                self.counters.t1_hits.incr();
                Some(item)
            }
            Some((item, false)) => {
                self.counters.t1_misses.incr();
                self.counters.t2_hits.incr();
                Some(item)
            }
            None => {
                self.counters.t1_misses.incr();
                if self.tier2.is_some() {
                    self.counters.t2_misses.incr();
                }
                None
            }
        }
    }

    /// What `key` holds given tier 1's entry; reads tier 2 if tier 1 has
    /// none. Call under the key's lock.
    pub(crate) fn current(&self, key: &str, in_tier1: Option<Arc<Item>>) -> Current {
        if let Some(item) = in_tier1 {
            let e = &self.counters.t1_evictions;
            match item.check(&self.clock, self.generation()) {
                Staleness::Fresh => return Current::Tier1(item),
                Staleness::Expired => e.expired.incr(),
                Staleness::Stale => e.tag.incr(),
            }
            if let Some(t2) = &self.tier2 {
                t2.reclaim(key);
            }
            return Current::Missing {
                dead_in_tier1: true,
                maybe_row: self.tier2.is_some(),
            };
        }
        let Some(t2) = &self.tier2 else {
            return Current::Missing {
                dead_in_tier1: false,
                maybe_row: false,
            };
        };
        match t2.lookup(key) {
            Lookup::Absent => Current::Missing {
                dead_in_tier1: false,
                maybe_row: false,
            },
            Lookup::Unavailable => Current::Unknown,
            Lookup::Row(row) => {
                let item = self.item_of(row);
                if item.check(&self.clock, self.generation()) == Staleness::Fresh {
                    Current::Tier2(Arc::new(item))
                } else {
                    t2.reclaim(key);
                    Current::Missing {
                        dead_in_tier1: false,
                        maybe_row: true,
                    }
                }
            }
        }
    }

    /// A tier-2 row as a tier-1 entry.
    pub(crate) fn item_of(&self, row: Row) -> Item {
        let tags = row
            .tags
            .iter()
            .map(|(name, version)| TagRef {
                state: self.tag(name),
                version: *version,
            })
            .collect();
        Item {
            value: row.value,
            deadline: row.deadline,
            generation: row.generation,
            tags,
        }
    }

    /// A tier-1 entry as a tier-2 row.
    pub(crate) fn row_of(item: &Item) -> Row {
        Row {
            deadline: item.deadline,
            seq: 0,
            generation: item.generation,
            tags: item
                .tags
                .iter()
                .map(|t| (t.state.name.clone(), t.version))
                .collect(),
            value: item.value.clone(),
        }
    }
}
