//! Writes: set (plain, NX, XX), delete, expire, incr, get-or-load, tag
//! invalidation and clear.
//!
//! Each per-key write runs inside moka's `and_compute_with` for that key:
//! it reads what the key holds in both tiers ([`Current`]), decides, writes
//! tier 2 (into the write-behind overlay, or waiting for the commit), and
//! returns the op for tier 1, all while holding the key's lock. That is
//! what makes NX/XX and incr atomic across tiers and tasks.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use moka::ops::compute::Op;

use crate::cache::options::{Condition, SetOptions};
use crate::cache::read::Current;
use crate::cache::stats::Tier2State;
use crate::cache::tier2::Reply;
use crate::cache::{CacheCore, item::Item, validate_key, validate_value};
use crate::error::Error;

/// What `get_or_load` produced.
pub(crate) enum Loaded<V> {
    /// The key held a live value.
    Cached(Arc<Item>),
    /// The loader ran; its value is cached now.
    Fresh(V),
}

fn not_integer(key: &str) -> Error {
    Error::wrong_type(
        key,
        "a decimal integer",
        "incr and decr need a value that is a 64-bit decimal integer",
    )
}

fn parse_int(key: &str, bytes: &[u8]) -> Result<i64, Error> {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .ok_or_else(|| not_integer(key))
}

impl CacheCore {
    /// Writes `item` to tier 2 (call under the key's lock).
    async fn persist(&self, key: &str, item: &Item) {
        if let Some(t2) = &self.tier2 {
            t2.put(key, Self::row_of(item)).await;
        }
    }

    /// Deletes `key` from tier 2 durably (call under the key's lock).
    async fn unpersist(&self, key: &str) {
        if let Some(t2) = &self.tier2 {
            t2.delete(key).await;
        }
    }

    fn tier2_unhealthy(&self) -> bool {
        self.tier2
            .as_ref()
            .is_some_and(|t| t.state() != Tier2State::Healthy)
    }

    fn new_item(&self, value: Box<[u8]>, opts: &SetOptions) -> Arc<Item> {
        Arc::new(Item {
            value,
            deadline: opts.deadline(self.clock.now(), self.default_ttl),
            generation: self.generation(),
            tags: self.tag_refs(opts.tag_names()),
        })
    }

    fn inserted(&self, item: &Item) {
        self.counters.inserts.incr();
        for t in item.tags.iter() {
            t.state.add_member(1);
        }
    }

    /// Writes `value` under `key` if `opts`' condition holds; returns
    /// whether it wrote.
    pub(crate) async fn set(
        &self,
        key: &str,
        value: Box<[u8]>,
        opts: &SetOptions,
    ) -> Result<bool, Error> {
        validate_key(key)?;
        validate_value(&value)?;
        opts.validate()?;
        self.check_open()?;
        let item = self.new_item(value, opts);
        let when = opts.when();
        let mut written = false;
        let out = &mut written;
        let new = &item;
        self.tier1
            .entry_by_ref(key)
            .and_compute_with(move |cur| async move {
                let cur = cur.map(|e| e.into_value());
                if when == Condition::Always {
                    self.persist(key, new).await;
                    *out = true;
                    return Op::Put(Arc::clone(new));
                }
                let state = self.current(key, cur);
                let present = state.live().is_some();
                if present != (when == Condition::IfPresent) {
                    return state.settle();
                }
                self.persist(key, new).await;
                *out = true;
                Op::Put(Arc::clone(new))
            })
            .await;
        if written {
            self.inserted(&item);
        }
        Ok(written)
    }

    /// Removes `key` from both tiers; returns whether it held a live value.
    pub(crate) async fn delete(&self, key: &str) -> Result<bool, Error> {
        validate_key(key)?;
        self.check_open()?;
        let mut existed = false;
        let out = &mut existed;
        self.tier1
            .entry_by_ref(key)
            .and_compute_with(move |cur| async move {
                let in_tier1 = cur.is_some();
                let state = self.current(key, cur.map(|e| e.into_value()));
                let maybe_row = match &state {
                    Current::Tier1(_) | Current::Tier2(_) => true,
                    Current::Missing { maybe_row, .. } => *maybe_row,
                };
                *out = state.live().is_some();
                if maybe_row || in_tier1 || self.tier2_unhealthy() {
                    self.unpersist(key).await;
                }
                if in_tier1 { Op::Remove } else { Op::Nop }
            })
            .await;
        if existed {
            self.counters.t1_evictions.explicit.incr();
        }
        Ok(existed)
    }

    /// Sets the TTL of a live `key` (`None`: no expiry; zero: delete it).
    pub(crate) async fn expire(&self, key: &str, ttl: Option<Duration>) -> Result<bool, Error> {
        validate_key(key)?;
        self.check_open()?;
        let mut found = false;
        let out = &mut found;
        self.tier1
            .entry_by_ref(key)
            .and_compute_with(move |cur| async move {
                let in_tier1 = cur.is_some();
                let state = self.current(key, cur.map(|e| e.into_value()));
                let Some(live) = state.live() else {
                    return state.settle();
                };
                *out = true;
                if ttl == Some(Duration::ZERO) {
                    self.unpersist(key).await;
                    return if in_tier1 { Op::Remove } else { Op::Nop };
                }
                let item = Arc::new(Item {
                    value: live.value.clone(),
                    deadline: ttl.map(|d| self.clock.now().plus(d)),
                    generation: live.generation,
                    tags: live.tags.clone(),
                });
                self.persist(key, &item).await;
                Op::Put(item)
            })
            .await;
        Ok(found)
    }

    /// Adds `by` to the integer `key` holds (0 if none); keeps its TTL and
    /// tags. A value that is not an integer, or an overflow, changes nothing.
    pub(crate) async fn incr(&self, key: &str, by: i64) -> Result<i64, Error> {
        validate_key(key)?;
        self.check_open()?;
        let mut result = Err(Error::Closed);
        let out = &mut result;
        self.tier1
            .entry_by_ref(key)
            .and_compute_with(move |cur| async move {
                let state = self.current(key, cur.map(|e| e.into_value()));
                let base = state.live();
                let old = match base {
                    Some(i) => parse_int(key, &i.value),
                    None => Ok(0),
                };
                let new = old.and_then(|o| {
                    o.checked_add(by).ok_or_else(|| {
                        Error::invalid(
                            "by",
                            format!(
                                "adding {by} to {o} overflows a 64-bit integer; the value is unchanged"
                            ),
                        )
                    })
                });
                let n = match new {
                    Ok(n) => n,
                    Err(e) => {
                        *out = Err(e);
                        return state.settle();
                    }
                };
                let item = Arc::new(match base {
                    Some(b) => Item {
                        value: n.to_string().into_bytes().into(),
                        deadline: b.deadline,
                        generation: b.generation,
                        tags: b.tags.clone(),
                    },
                    None => Item {
                        value: n.to_string().into_bytes().into(),
                        deadline: self.default_ttl.map(|d| self.clock.now().plus(d)),
                        generation: self.generation(),
                        tags: Box::new([]),
                    },
                });
                self.persist(key, &item).await;
                *out = Ok(n);
                Op::Put(item)
            })
            .await;
        if result.is_ok() {
            self.counters.inserts.incr();
        }
        result
    }

    /// The live value of `key`, or the loader's (cached with `opts`). Callers
    /// racing on one missing key wait on its lock: one runs its loader, the
    /// others get that value. If the loader fails, nothing is cached and the
    /// next waiter runs its own.
    pub(crate) async fn get_or_load<V, E, F, Fut>(
        &self,
        key: &str,
        opts: &SetOptions,
        loader: F,
    ) -> Result<Loaded<V>, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(V, Box<[u8]>), E>>,
        E: From<Error>,
    {
        validate_key(key)?;
        opts.validate()?;
        if let Some(item) = self.lookup(key).await {
            return Ok(Loaded::Cached(item));
        }
        self.check_open()?;
        let mut result: Option<Result<Loaded<V>, E>> = None;
        let out = &mut result;
        let mut inserted = None;
        let inserted_out = &mut inserted;
        self.tier1
            .entry_by_ref(key)
            .and_compute_with(move |cur| async move {
                let state = self.current(key, cur.map(|e| e.into_value()));
                if let Some(live) = state.live() {
                    *out = Some(Ok(Loaded::Cached(Arc::clone(live))));
                    return state.settle();
                }
                let (value, bytes) = match loader().await {
                    Ok(v) => v,
                    Err(e) => {
                        *out = Some(Err(e));
                        return state.settle();
                    }
                };
                if let Err(e) = validate_value(&bytes) {
                    *out = Some(Err(e.into()));
                    return state.settle();
                }
                let item = self.new_item(bytes, opts);
                self.persist(key, &item).await;
                *out = Some(Ok(Loaded::Fresh(value)));
                *inserted_out = Some(Arc::clone(&item));
                Op::Put(item)
            })
            .await;
        if let Some(item) = inserted {
            self.inserted(&item);
        }
        result.unwrap_or(Err(Error::Closed.into()))
    }

    /// Makes every entry carrying `tag` stale; returns how many there were
    /// (tier 2's exact row count when it is on, else tier 1's estimate).
    pub(crate) async fn invalidate_tag(&self, tag: &str) -> Result<u64, Error> {
        crate::cache::tags::validate(tag)?;
        self.check_open()?;
        if self.tier2.is_none() {
            // Let the eviction listener catch up on removals first.
            self.tier1.run_pending_tasks().await;
        }
        let state = self.tag(tag);
        let (version, members) = state.bump();
        let Some(t2) = &self.tier2 else {
            return Ok(members);
        };
        match t2.bump_tag(Arc::clone(&state), version).await {
            Reply::Bumped { version, rows } => {
                state.raise_to(version);
                Ok(rows)
            }
            Reply::Done | Reply::Degraded => Ok(members),
        }
    }

    /// Empties both tiers.
    pub(crate) async fn clear(&self) -> Result<(), Error> {
        self.check_open()?;
        let generation = self
            .generation
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel)
            + 1;
        self.counters
            .t1_evictions
            .explicit
            .add(self.tier1.entry_count());
        self.tier1.invalidate_all();
        self.tags.reset_members();
        if let Some(t2) = &self.tier2 {
            t2.clear(generation).await;
        }
        Ok(())
    }

    /// Waits until every write issued so far has reached tier 2.
    pub(crate) async fn flush(&self) -> Result<(), Error> {
        if let Some(t2) = &self.tier2 {
            t2.flush().await;
        }
        Ok(())
    }
}
