//! Writes: set (plain, NX, XX), delete, expire, incr, get-or-load, tag
//! invalidation and clear.
//!
//! Each per-key write runs inside moka's `and_compute_with` for that key:
//! it reads what the key holds in both tiers ([`Current`]), decides, writes
//! tier 2 (into the write-behind overlay, or waiting for the commit), and
//! returns the op for tier 1, all while holding the key's lock. That is
//! what makes NX/XX and incr atomic across tiers and tasks.
//!
//! # When tier 2 cannot commit
//!
//! What a call acknowledges holds after a crash. A `delete`, `clear`,
//! `invalidate_tag` or write-through set is acknowledged only once its
//! commit is durable; when tier 2 is degraded, or its commit fails, the call
//! returns [`Error::CacheUnavailable`] and memory is left as it was (`clear`
//! and tag bumps move memory only after the commit). A write that must know
//! what the key holds (NX/XX, `incr`, `expire`) and finds no entry in tier 1
//! while tier 2 cannot be read fails the same way rather than guess. Plain
//! write-behind writes still go to memory and wait there: a crash may lose
//! them, as it may lose any write-behind window.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use moka::ops::compute::Op;

use crate::cache::options::{Condition, SetOptions};
use crate::cache::read::Current;
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

pub(crate) fn parse_int(key: &str, bytes: &[u8]) -> Result<i64, Error> {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .ok_or_else(|| not_integer(key))
}

impl CacheCore {
    /// Writes `item` to tier 2 (call under the key's lock): `Err` if a
    /// write-through put is not durable.
    async fn persist(&self, key: &str, item: &Item) -> Result<(), Error> {
        match &self.tier2 {
            Some(t2) => t2.put(key, Self::row_of(item)).await,
            None => Ok(()),
        }
    }

    /// Deletes `key` from tier 2 durably (call under the key's lock).
    async fn unpersist(&self, key: &str) -> Result<(), Error> {
        match &self.tier2 {
            Some(t2) => t2.delete(key).await,
            None => Ok(()),
        }
    }

    /// What a key holds, or the error if that cannot be known (tier 1 has
    /// no entry and tier 2 cannot be read).
    fn known(&self, key: &str, in_tier1: Option<Arc<Item>>) -> Result<Current, Error> {
        match self.current(key, in_tier1) {
            Current::Unknown => Err(self.tier2_unavailable()),
            known => Ok(known),
        }
    }

    fn tier2_unavailable(&self) -> Error {
        match &self.tier2 {
            Some(t2) => t2.unavailable(),
            None => Error::Closed,
        }
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
        let mut result = Ok(false);
        let out = &mut result;
        let new = &item;
        self.tier1
            .entry_by_ref(key)
            .and_compute_with(move |cur| async move {
                let cur = cur.map(|e| e.into_value());
                let state = if when == Condition::Always {
                    None
                } else {
                    let state = match self.known(key, cur) {
                        Ok(s) => s,
                        Err(e) => {
                            *out = Err(e);
                            return Op::Nop;
                        }
                    };
                    let present = state.live().is_some();
                    if present != (when == Condition::IfPresent) {
                        return state.settle();
                    }
                    Some(state)
                };
                *out = self.persist(key, new).await.map(|()| true);
                match (&*out, state) {
                    (Ok(_), _) => Op::Put(Arc::clone(new)),
                    (Err(_), Some(state)) => state.settle(),
                    (Err(_), None) => Op::Nop,
                }
            })
            .await;
        if result.as_ref().is_ok_and(|w| *w) {
            self.inserted(&item);
        }
        result
    }

    /// Removes `key` from both tiers; returns whether it held a live value.
    pub(crate) async fn delete(&self, key: &str) -> Result<bool, Error> {
        validate_key(key)?;
        self.check_open()?;
        let mut result = Ok(false);
        let out = &mut result;
        self.tier1
            .entry_by_ref(key)
            .and_compute_with(move |cur| async move {
                let in_tier1 = cur.is_some();
                let state = self.current(key, cur.map(|e| e.into_value()));
                if (state.maybe_row() || in_tier1)
                    && let Err(e) = self.unpersist(key).await
                {
                    *out = Err(e);
                    return state.settle();
                }
                *out = Ok(state.live().is_some());
                if in_tier1 { Op::Remove } else { Op::Nop }
            })
            .await;
        if result.as_ref().is_ok_and(|e| *e) {
            self.counters.t1_evictions.explicit.incr();
        }
        result
    }

    /// Sets the TTL of a live `key` (`None`: no expiry; zero: delete it).
    pub(crate) async fn expire(&self, key: &str, ttl: Option<Duration>) -> Result<bool, Error> {
        validate_key(key)?;
        self.check_open()?;
        let mut result = Ok(false);
        let out = &mut result;
        self.tier1
            .entry_by_ref(key)
            .and_compute_with(move |cur| async move {
                let in_tier1 = cur.is_some();
                let state = match self.known(key, cur.map(|e| e.into_value())) {
                    Ok(s) => s,
                    Err(e) => {
                        *out = Err(e);
                        return Op::Nop;
                    }
                };
                let Some(live) = state.live() else {
                    return state.settle();
                };
                if ttl == Some(Duration::ZERO) {
                    *out = self.unpersist(key).await.map(|()| true);
                    return match (&*out, in_tier1) {
                        (Err(_), _) => state.settle(),
                        (Ok(_), true) => Op::Remove,
                        (Ok(_), false) => Op::Nop,
                    };
                }
                let item = Arc::new(Item {
                    value: live.value.clone(),
                    deadline: ttl.map(|d| self.clock.now().plus(d)),
                    generation: live.generation,
                    tags: live.tags.clone(),
                });
                *out = self.persist(key, &item).await.map(|()| true);
                if out.is_ok() {
                    Op::Put(item)
                } else {
                    state.settle()
                }
            })
            .await;
        result
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
                let state = match self.known(key, cur.map(|e| e.into_value())) {
                    Ok(s) => s,
                    Err(e) => {
                        *out = Err(e);
                        return Op::Nop;
                    }
                };
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
                if let Err(e) = self.persist(key, &item).await {
                    *out = Err(e);
                    return state.settle();
                }
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
                if let Err(e) = self.persist(key, &item).await {
                    // Write-through and tier 2 down: the value is the
                    // loader's, but it is not cached.
                    tracing::debug!(error = %e, "get_or_load: value not cached");
                    *out = Some(Ok(Loaded::Fresh(value)));
                    return state.settle();
                }
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
        let Some(t2) = &self.tier2 else {
            return Ok(state.bump());
        };
        // Durable first, then memory: a bump that fails changes nothing.
        // Entries written meanwhile carry the old version, so they go too.
        let (version, rows) = t2.bump_tag(Arc::clone(&state), state.version() + 1).await?;
        state.raise_to(version);
        state.take_members();
        Ok(rows)
    }

    /// Empties both tiers: tier 2 first (durably), then memory, so a clear
    /// that fails changes nothing.
    pub(crate) async fn clear(&self) -> Result<(), Error> {
        self.check_open()?;
        let mut generation = self.generation() + 1;
        if let Some(t2) = &self.tier2 {
            generation = t2.clear(generation).await?;
        }
        self.generation
            .fetch_max(generation, std::sync::atomic::Ordering::AcqRel);
        self.counters
            .t1_evictions
            .explicit
            .add(self.tier1.entry_count());
        self.tier1.invalidate_all();
        self.tags.reset_members();
        Ok(())
    }

    /// Waits until every write issued so far has reached tier 2; `Err` if
    /// tier 2 is degraded (writes made meanwhile are in memory only).
    pub(crate) async fn flush(&self) -> Result<(), Error> {
        match &self.tier2 {
            Some(t2) => t2.flush().await,
            None => Ok(()),
        }
    }
}
