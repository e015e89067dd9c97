//! A model test of the cache: random sequences of set (with TTL and tags),
//! get, delete, NX, XX, incr, expire, ttl, invalidate_tag, clear, moving
//! the injected clock and restarting, against a `HashMap` model. After
//! every step the cache must answer as the model does. Tier 1 is sometimes
//! tiny, so that tier 2 answers (and promotes) too.

use std::collections::HashMap;
use std::time::Duration;

use bharatvoice_store::{
    CacheConfig, Error, ManualClock, SetOptions, Store, Timestamp, Ttl, WriteMode,
};
use proptest::prelude::*;

use crate::common::config;

const KEYS: u8 = 4;
const TAGS: u8 = 3;

#[derive(Debug, Clone)]
enum Op {
    Set {
        key: u8,
        value: i64,
        text: bool,
        ttl: Option<u8>,
        tags: Vec<u8>,
    },
    Nx(u8, i64),
    Xx(u8, i64),
    Get(u8),
    Delete(u8),
    Incr(u8, i64),
    Expire(u8, Option<u8>),
    Ttl(u8),
    Invalidate(u8),
    Advance(u8),
    Clear,
    Restart,
}

fn op() -> impl Strategy<Value = Op> {
    let key = 0..KEYS;
    prop_oneof![
        4 => (key.clone(), -5i64..5, prop::bool::weighted(0.15),
              prop::option::weighted(0.5, 1u8..4), prop::collection::vec(0..TAGS, 0..3))
            .prop_map(|(key, value, text, ttl, tags)| Op::Set { key, value, text, ttl, tags }),
        1 => (key.clone(), -5i64..5).prop_map(|(k, v)| Op::Nx(k, v)),
        1 => (key.clone(), -5i64..5).prop_map(|(k, v)| Op::Xx(k, v)),
        4 => key.clone().prop_map(Op::Get),
        1 => key.clone().prop_map(Op::Delete),
        2 => (key.clone(), prop_oneof![Just(i64::MAX), -3i64..3]).prop_map(|(k, b)| Op::Incr(k, b)),
        1 => (key.clone(), prop::option::of(0u8..4)).prop_map(|(k, t)| Op::Expire(k, t)),
        1 => key.prop_map(Op::Ttl),
        1 => (0..TAGS).prop_map(Op::Invalidate),
        3 => (0u8..3).prop_map(Op::Advance),
        1 => Just(Op::Clear),
        1 => Just(Op::Restart),
    ]
}

#[derive(Debug, Clone)]
struct Entry {
    value: Vec<u8>,
    deadline: Option<Timestamp>,
    tags: Vec<(u8, u64)>,
}

#[derive(Default)]
struct Model {
    entries: HashMap<u8, Entry>,
    versions: HashMap<u8, u64>,
}

impl Model {
    fn live(&self, key: u8, now: Timestamp) -> Option<&Entry> {
        self.entries.get(&key).filter(|e| {
            e.deadline.is_none_or(|d| now < d)
                && e.tags
                    .iter()
                    .all(|(t, v)| self.versions.get(t).copied().unwrap_or(0) == *v)
        })
    }

    fn write(&mut self, key: u8, value: Vec<u8>, ttl: Option<u8>, tags: &[u8], now: Timestamp) {
        let mut recorded: Vec<(u8, u64)> = Vec::new();
        for t in tags {
            if !recorded.iter().any(|(r, _)| r == t) {
                recorded.push((*t, self.versions.get(t).copied().unwrap_or(0)));
            }
        }
        let deadline = ttl.map(|s| now.plus(Duration::from_secs(s.into())));
        self.entries.insert(
            key,
            Entry {
                value,
                deadline,
                tags: recorded,
            },
        );
    }
}

fn k(key: u8) -> String {
    format!("key:{key}")
}

fn opts(ttl: Option<u8>, tags: &[u8]) -> SetOptions {
    let mut o = SetOptions::new().tags(tags.iter().map(|t| format!("tag:{t}")));
    if let Some(s) = ttl {
        o = o.ttl(Duration::from_secs(s.into()));
    }
    o
}

async fn open(dir: &std::path::Path, clock: &ManualClock, cache: &CacheConfig) -> Store {
    Store::open(config(dir).clock(clock.clone()).cache(cache.clone()))
        .await
        .expect("open")
}

async fn run(ops: Vec<Op>, small_memory: bool, write_through: bool) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(Timestamp::from_micros(1_800_000_000_000_000));
    let mut cache = CacheConfig::default();
    if small_memory {
        cache = cache.memory_bytes(4096);
    }
    if write_through {
        cache = cache.write_mode(WriteMode::WriteThrough);
    }
    let mut store = open(dir.path(), &clock, &cache).await;
    let mut m = Model::default();
    for (step, op) in ops.into_iter().enumerate() {
        let now = clock.now();
        let c = store.cache();
        let ctx = format!("step {step}: {op:?}");
        match op {
            Op::Set {
                key,
                value,
                text,
                ttl,
                tags,
            } => {
                let bytes = if text {
                    format!("t{value}").into_bytes()
                } else {
                    value.to_string().into_bytes()
                };
                let wrote = c.set_bytes_with(&k(key), &bytes, &opts(ttl, &tags)).await;
                prop_assert_eq!(wrote.map_err(|e| e.to_string()), Ok(true), "{}", ctx);
                m.write(key, bytes, ttl, &tags, now);
            }
            Op::Nx(key, v) | Op::Xx(key, v) => {
                let nx = matches!(op, Op::Nx(..));
                let live = m.live(key, now).is_some();
                let o = if nx {
                    SetOptions::new().if_absent()
                } else {
                    SetOptions::new().if_present()
                };
                let bytes = v.to_string().into_bytes();
                let wrote = c.set_bytes_with(&k(key), &bytes, &o).await.unwrap();
                prop_assert_eq!(wrote, live != nx, "{}", ctx);
                if wrote {
                    m.write(key, bytes, None, &[], now);
                }
            }
            Op::Get(key) => {
                let got = c.get_bytes(&k(key)).await.unwrap().map(|v| v.to_vec());
                let want = m.live(key, now).map(|e| e.value.clone());
                prop_assert_eq!(got, want, "{}", ctx);
            }
            Op::Delete(key) => {
                let existed = c.delete(&k(key)).await.unwrap();
                prop_assert_eq!(existed, m.live(key, now).is_some(), "{}", ctx);
                m.entries.remove(&key);
            }
            Op::Incr(key, by) => {
                let got = c.incr(&k(key), by).await;
                match m.live(key, now).cloned() {
                    None => {
                        prop_assert_eq!(got.map_err(|e| e.to_string()), Ok(by), "{}", ctx);
                        m.write(key, by.to_string().into_bytes(), None, &[], now);
                    }
                    Some(e) => {
                        let old = std::str::from_utf8(&e.value)
                            .ok()
                            .and_then(|s| s.parse::<i64>().ok());
                        match old.map(|o| o.checked_add(by)) {
                            Some(Some(n)) => {
                                prop_assert_eq!(got.map_err(|e| e.to_string()), Ok(n), "{}", ctx);
                                let mut e = e;
                                e.value = n.to_string().into_bytes();
                                m.entries.insert(key, e);
                            }
                            None => prop_assert!(
                                matches!(got, Err(Error::WrongType { .. })),
                                "{}: {:?}",
                                ctx,
                                got
                            ),
                            Some(None) => prop_assert!(
                                matches!(got, Err(Error::InvalidInput { .. })),
                                "{}: {:?}",
                                ctx,
                                got
                            ),
                        }
                    }
                }
            }
            Op::Expire(key, ttl) => {
                let d = ttl.map(|s| Duration::from_secs(s.into()));
                let found = c.expire(&k(key), d).await.unwrap();
                let live = m.live(key, now).is_some();
                prop_assert_eq!(found, live, "{}", ctx);
                if live {
                    if ttl == Some(0) {
                        m.entries.remove(&key);
                    } else if let Some(e) = m.entries.get_mut(&key) {
                        e.deadline = d.map(|d| now.plus(d));
                    }
                }
            }
            Op::Ttl(key) => {
                let got = c.ttl(&k(key)).await.unwrap();
                let want = match m.live(key, now) {
                    None => Ttl::Missing,
                    Some(e) => match e.deadline {
                        None => Ttl::NoExpiry,
                        Some(d) => Ttl::Remaining(Duration::from_micros(
                            (d.as_micros() - now.as_micros()) as u64,
                        )),
                    },
                };
                prop_assert_eq!(got, want, "{}", ctx);
            }
            Op::Invalidate(t) => {
                c.invalidate_tag(&format!("tag:{t}")).await.unwrap();
                *m.versions.entry(t).or_insert(0) += 1;
            }
            Op::Advance(s) => clock.advance(Duration::from_secs(s.into())),
            Op::Clear => {
                c.clear().await.unwrap();
                m.entries.clear();
            }
            Op::Restart => {
                store.close().await;
                drop(store);
                store = open(dir.path(), &clock, &cache).await;
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 64,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn the_cache_agrees_with_a_hashmap_model(
        ops in prop::collection::vec(op(), 1..40),
        small_memory in any::<bool>(),
        write_through in any::<bool>(),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(run(ops, small_memory, write_through))?;
    }
}
