//! The cache's Redis operations, on one store.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bharatvoice_store::{
    CacheConfig, Config, Error, ManualClock, SetOptions, Store, Timestamp, Ttl,
};

use crate::common::config;

pub fn manual() -> ManualClock {
    ManualClock::new(Timestamp::from_micros(1_800_000_000_000_000))
}

pub async fn open_with(dir: &std::path::Path, cache: CacheConfig) -> Store {
    Store::open(config(dir).cache(cache))
        .await
        .expect("open store")
}

/// Opens a store whose clock is `clock`.
pub async fn open_clocked(dir: &std::path::Path, clock: &ManualClock, cache: CacheConfig) -> Store {
    Store::open(config(dir).clock(clock.clone()).cache(cache))
        .await
        .expect("open store")
}

#[tokio::test]
async fn typed_and_raw_values_and_wrong_types() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_with(dir.path(), CacheConfig::default()).await;
    let c = store.cache();
    #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
    struct Profile {
        name: String,
        langs: Vec<String>,
    }
    let p = Profile {
        name: "Meenakshi".into(),
        langs: vec!["ta-IN".into()],
    };
    c.set("p:1", &p).await.unwrap();
    assert_eq!(c.get::<Profile>("p:1").await.unwrap(), Some(p));
    assert_eq!(c.get::<Profile>("p:none").await.unwrap(), None);
    let err = c.get::<u64>("p:1").await.unwrap_err();
    assert!(matches!(err, Error::WrongType { .. }), "{err}");
    assert!(err.to_string().contains("\"p:1\""), "{err}");

    c.set_bytes("raw", b"\xff\x00bytes").await.unwrap();
    assert_eq!(
        &*c.get_bytes("raw").await.unwrap().unwrap(),
        b"\xff\x00bytes"
    );
    assert!(matches!(
        c.get::<String>("raw").await,
        Err(Error::WrongType { .. })
    ));
    // JSON numbers and raw decimal text are the same integer.
    c.set("n", &41).await.unwrap();
    assert_eq!(c.incr("n", 1).await.unwrap(), 42);
    assert_eq!(c.get::<i64>("n").await.unwrap(), Some(42));
    assert_eq!(&*c.get_bytes("n").await.unwrap().unwrap(), b"42");

    let many: Vec<Option<i64>> = c.get_many(&["n", "nope", "n"]).await.unwrap();
    assert_eq!(many, vec![Some(42), None, Some(42)]);
    assert!(matches!(
        c.set_bytes("", b"x").await,
        Err(Error::InvalidInput { field: "key", .. })
    ));
    assert!(matches!(
        c.set_with("k", &1, &SetOptions::new().ttl(Duration::ZERO))
            .await,
        Err(Error::InvalidInput { field: "ttl", .. })
    ));
}

#[tokio::test]
async fn nx_xx_delete_and_incr_rules() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_with(dir.path(), CacheConfig::default()).await;
    let c = store.cache();
    assert!(!c.set_xx("k", &"a").await.unwrap());
    assert_eq!(c.get::<String>("k").await.unwrap(), None);
    assert!(c.set_nx("k", &"a").await.unwrap());
    assert!(!c.set_nx("k", &"b").await.unwrap());
    assert!(c.set_xx("k", &"c").await.unwrap());
    assert_eq!(c.get::<String>("k").await.unwrap().as_deref(), Some("c"));
    assert!(c.delete("k").await.unwrap());
    assert!(!c.delete("k").await.unwrap());
    assert_eq!(c.get::<String>("k").await.unwrap(), None);

    assert_eq!(c.incr("ctr", 5).await.unwrap(), 5);
    assert_eq!(c.decr("ctr", 7).await.unwrap(), -2);
    c.set_bytes("text", b"hello").await.unwrap();
    assert!(matches!(
        c.incr("text", 1).await,
        Err(Error::WrongType { .. })
    ));
    assert_eq!(&*c.get_bytes("text").await.unwrap().unwrap(), b"hello");
    c.set_bytes("max", i64::MAX.to_string().as_bytes())
        .await
        .unwrap();
    assert!(matches!(
        c.incr("max", 1).await,
        Err(Error::InvalidInput { field: "by", .. })
    ));
    assert_eq!(c.get::<i64>("max").await.unwrap(), Some(i64::MAX));
    c.set_bytes("float", b"1.5").await.unwrap();
    assert!(c.incr("float", 1).await.is_err());
}

#[tokio::test]
async fn ttl_expire_and_default_ttl_follow_the_injected_clock() {
    let dir = tempfile::tempdir().unwrap();
    let clock = manual();
    let store = open_clocked(
        dir.path(),
        &clock,
        CacheConfig::default().default_ttl(Some(Duration::from_secs(100))),
    )
    .await;
    let c = store.cache();
    c.set("d", &1).await.unwrap();
    assert_eq!(
        c.ttl("d").await.unwrap(),
        Ttl::Remaining(Duration::from_secs(100))
    );
    c.set_with("t", &1, &SetOptions::new().ttl(Duration::from_secs(10)))
        .await
        .unwrap();
    c.set_with("forever", &1, &SetOptions::new().no_expiry())
        .await
        .unwrap();
    assert_eq!(c.ttl("forever").await.unwrap(), Ttl::NoExpiry);
    assert_eq!(c.ttl("missing").await.unwrap(), Ttl::Missing);
    clock.advance(Duration::from_secs(9));
    assert_eq!(c.get::<i32>("t").await.unwrap(), Some(1));
    assert!(c.expire("t", Some(Duration::from_secs(30))).await.unwrap());
    clock.advance(Duration::from_secs(29));
    assert_eq!(
        c.ttl("t").await.unwrap(),
        Ttl::Remaining(Duration::from_secs(1))
    );
    clock.advance(Duration::from_secs(1));
    // Expired, though nothing has swept it yet.
    assert_eq!(c.get::<i32>("t").await.unwrap(), None);
    assert_eq!(c.ttl("t").await.unwrap(), Ttl::Missing);
    assert!(!c.expire("t", None).await.unwrap());
    assert!(c.expire("d", None).await.unwrap());
    assert_eq!(c.ttl("d").await.unwrap(), Ttl::NoExpiry);
    assert!(c.expire("forever", Some(Duration::ZERO)).await.unwrap());
    assert_eq!(c.get::<i32>("forever").await.unwrap(), None);
    // incr keeps the TTL; NX on an expired key writes.
    c.set_with("n", &1, &SetOptions::new().ttl(Duration::from_secs(5)))
        .await
        .unwrap();
    assert_eq!(c.incr("n", 1).await.unwrap(), 2);
    assert_eq!(
        c.ttl("n").await.unwrap(),
        Ttl::Remaining(Duration::from_secs(5))
    );
    clock.advance(Duration::from_secs(5));
    assert!(c.set_nx("n", &7).await.unwrap());
    assert!(c.stats().tier1.evictions.expired >= 1);
}

#[tokio::test]
async fn get_or_insert_with_runs_the_loader_once_for_concurrent_callers() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_with(dir.path(), CacheConfig::default()).await;
    let calls = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..64 {
        let store = store.clone();
        let calls = Arc::clone(&calls);
        tasks.spawn(async move {
            store
                .cache()
                .get_or_insert_with("slow", &SetOptions::new().tag("t"), || async move {
                    calls.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    Ok::<_, Error>(vec![1u8, 2, 3])
                })
                .await
        });
    }
    while let Some(r) = tasks.join_next().await {
        assert_eq!(r.unwrap().unwrap(), vec![1, 2, 3]);
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    // A failing loader caches nothing; the next call loads again.
    let failed: Result<u8, Error> = store
        .cache()
        .get_or_insert_with("flaky", &SetOptions::new(), || async { Err(Error::Closed) })
        .await;
    assert!(failed.is_err());
    let ok: u8 = store
        .cache()
        .get_or_insert_with("flaky", &SetOptions::new(), || async { Ok::<_, Error>(9) })
        .await
        .unwrap();
    assert_eq!(ok, 9);
    assert_eq!(store.cache().invalidate_tag("t").await.unwrap(), 1);
}

#[tokio::test]
async fn tags_invalidate_entries_and_count_them() {
    for tier2 in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let store = open_with(dir.path(), CacheConfig::default().tier2(tier2)).await;
        let c = store.cache();
        for i in 0..100 {
            let opts = SetOptions::new().tag(format!("user:{}", i % 2)).tag("all");
            c.set_with(&format!("k{i}"), &i, &opts).await.unwrap();
        }
        c.delete("k0").await.unwrap();
        let n = c.invalidate_tag("user:0").await.unwrap();
        assert_eq!(n, 49, "tier2 {tier2}");
        assert_eq!(c.get::<i32>("k2").await.unwrap(), None);
        assert_eq!(c.get::<i32>("k3").await.unwrap(), Some(3));
        // Rewritten after the invalidation: fresh again.
        c.set_with("k2", &2, &SetOptions::new().tag("user:0"))
            .await
            .unwrap();
        assert_eq!(c.get::<i32>("k2").await.unwrap(), Some(2));
        assert_eq!(c.invalidate_tag("nobody").await.unwrap(), 0);
        // An estimate: the 49 entries user:0 made stale still carry "all"
        // until they are reclaimed.
        let all = c.invalidate_tag("all").await.unwrap();
        assert!((50..=99).contains(&all), "tier2 {tier2}: {all}");
        assert_eq!(c.get::<i32>("k3").await.unwrap(), None);
        assert_eq!(c.get::<i32>("k2").await.unwrap(), Some(2));
        assert!(c.stats().tier1.evictions.tag >= 2);
    }
}

#[tokio::test]
async fn clear_empties_both_tiers_and_stats_add_up() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_with(dir.path(), CacheConfig::default()).await;
    let c = store.cache();
    for i in 0..10 {
        c.set(&format!("k{i}"), &i).await.unwrap();
    }
    for i in 0..20 {
        c.get::<i32>(&format!("k{i}")).await.unwrap();
    }
    let s = c.stats();
    assert_eq!(s.inserts, 10);
    assert_eq!(s.lookups, 20);
    assert_eq!(s.hits, 10);
    assert_eq!(s.tier1.hits, 10);
    assert_eq!(s.tier2.misses, 10);
    assert!((s.hit_ratio - 0.5).abs() < 1e-9);
    c.flush().await.unwrap();
    assert_eq!(c.stats().tier2.entries, 10);
    c.clear().await.unwrap();
    assert_eq!(c.get::<i32>("k1").await.unwrap(), None);
    let s = c.stats();
    assert_eq!(s.tier2.entries, 0);
    assert_eq!(s.tier2.bytes, 0);
    store.close().await;
    drop(store);
    let store = open_with(dir.path(), CacheConfig::default()).await;
    assert_eq!(store.cache().get::<i32>("k1").await.unwrap(), None);
    assert!(matches!(
        Config::from_toml_str("[cache]\nwrite_mode = 'sideways'"),
        Err(Error::Config { .. })
    ));
}

#[test]
fn cache_settings_come_from_toml_and_the_environment() {
    use bharatvoice_store::{EvictionPolicy, WriteMode};
    let c = Config::from_toml_str(
        "[cache]\nmemory_bytes = 1048576\neviction = 'lru'\ndefault_ttl_secs = 60\n\
         tier2 = true\ntier2_bytes = 1000000\nwrite_mode = 'write-behind'\nwrite_delay_ms = 7\n\
         sweep_interval_secs = 5\nretry_interval_ms = 250\n",
    )
    .unwrap();
    let cache = &c.cache;
    assert_eq!(cache.memory_bytes, 1 << 20);
    assert_eq!(cache.eviction, EvictionPolicy::Lru);
    assert_eq!(cache.default_ttl, Some(Duration::from_secs(60)));
    assert_eq!(cache.tier2_bytes, 1_000_000);
    assert_eq!(
        cache.write_mode,
        WriteMode::WriteBehind {
            max_delay: Duration::from_millis(7)
        }
    );
    assert_eq!(cache.sweep_interval, Duration::from_secs(5));
    assert_eq!(cache.retry_interval, Duration::from_millis(250));
    assert!(Config::from_toml_str("[cache]\nmemroy_bytes = 1").is_err());
    assert!(Config::from_toml_str("[cache]\nmemory_bytes = 10").is_err());

    let env: std::collections::HashMap<&str, &str> = [
        ("BV_CACHE_MEMORY_BYTES", "2097152"),
        ("BV_CACHE_EVICTION", "LRU"),
        ("BV_CACHE_DEFAULT_TTL_SECS", "0"),
        ("BV_CACHE_TIER2", "false"),
        ("BV_CACHE_WRITE_MODE", "write-through"),
        ("BV_CACHE_SWEEP_SECS", "9"),
    ]
    .into_iter()
    .collect();
    let mut c = Config::default();
    c.apply_env(|k| env.get(k).map(|v| v.to_string())).unwrap();
    assert_eq!(c.cache.memory_bytes, 2 << 20);
    assert_eq!(c.cache.eviction, EvictionPolicy::Lru);
    assert_eq!(c.cache.default_ttl, None);
    assert!(!c.cache.tier2);
    assert_eq!(c.cache.write_mode, WriteMode::WriteThrough);
    assert_eq!(c.cache.sweep_interval, Duration::from_secs(9));
    let mut bad = Config::default();
    assert!(
        bad.apply_env(|k| (k == "BV_CACHE_TIER2").then(|| "maybe".to_string()))
            .is_err()
    );
}

#[tokio::test]
async fn huge_ttls_and_odd_keys_do_not_panic() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_with(dir.path(), CacheConfig::default()).await;
    let c = store.cache();
    let forever = SetOptions::new().ttl(Duration::from_secs(u64::MAX));
    c.set_with("k", &1, &forever).await.unwrap();
    assert!(
        matches!(c.ttl("k").await.unwrap(), Ttl::Remaining(d) if d > Duration::from_secs(1 << 40))
    );
    let odd = "\0ключ\u{1F600}\n";
    c.set(odd, &2).await.unwrap();
    assert_eq!(c.get::<i32>(odd).await.unwrap(), Some(2));
    let long = "k".repeat(70_000);
    assert!(matches!(
        c.set(&long, &1).await,
        Err(Error::InvalidInput { .. })
    ));
    let tags: Vec<String> = (0..40).map(|i| format!("t{i}")).collect();
    assert!(matches!(
        c.set_with("k", &1, &SetOptions::new().tags(tags)).await,
        Err(Error::InvalidInput { field: "tags", .. })
    ));
    assert!(matches!(
        c.invalidate_tag("").await,
        Err(Error::InvalidInput { .. })
    ));
    assert!(matches!(
        c.decr("k", i64::MIN).await,
        Err(Error::InvalidInput { .. })
    ));
    store.close().await;
    assert!(matches!(c.set("after", &1).await, Err(Error::Closed)));
}
