//! Tier 2 under tier 1: restarts, promotion, byte bounds, the sweep.

use std::time::{Duration, Instant};

use bharatvoice_store::{CacheConfig, EvictionPolicy, SetOptions, Tier2State, Ttl, WriteMode};

use crate::cache::{manual, open_clocked, open_with};

/// Polls `f` for up to five seconds.
pub async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "timed out: {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn tier2_serves_misses_promotes_and_survives_restart() {
    for mode in [
        WriteMode::WriteThrough,
        WriteMode::WriteBehind {
            max_delay: Duration::from_millis(20),
        },
    ] {
        let dir = tempfile::tempdir().unwrap();
        let clock = manual();
        let store = open_clocked(dir.path(), &clock, CacheConfig::default().write_mode(mode)).await;
        let opts = SetOptions::new().ttl(Duration::from_secs(60)).tag("user:1");
        store.cache().set_with("a", &"alpha", &opts).await.unwrap();
        store.cache().set("b", &2).await.unwrap();
        store.cache().incr("n", 7).await.unwrap();
        store.close().await;
        drop(store);

        let store = open_clocked(dir.path(), &clock, CacheConfig::default().write_mode(mode)).await;
        let c = store.cache();
        assert_eq!(
            c.get::<String>("a").await.unwrap().as_deref(),
            Some("alpha")
        );
        assert_eq!(c.incr("n", 1).await.unwrap(), 8, "{mode:?}");
        assert_eq!(
            c.ttl("a").await.unwrap(),
            Ttl::Remaining(Duration::from_secs(60))
        );
        let s = c.stats();
        assert_eq!(s.tier2.hits, 1, "{mode:?}: {s:?}");
        assert_eq!(s.tier1.misses, 1);
        assert_eq!(s.tier2.state, Tier2State::Healthy);
        // Promoted: the next get is a tier-1 hit.
        assert_eq!(c.get::<i32>("b").await.unwrap(), Some(2));
        assert_eq!(c.get::<i32>("b").await.unwrap(), Some(2));
        let s = c.stats();
        assert_eq!((s.tier1.hits, s.tier2.hits), (2, 2), "{s:?}");
        // The tag version and the rows carrying it come back too.
        assert_eq!(c.invalidate_tag("user:1").await.unwrap(), 1);
        assert_eq!(c.get::<String>("a").await.unwrap(), None);
        store.close().await;
    }
}

#[tokio::test]
async fn dropping_the_last_handle_flushes_write_behind() {
    let dir = tempfile::tempdir().unwrap();
    let slow = CacheConfig::default().write_mode(WriteMode::WriteBehind {
        max_delay: Duration::from_secs(30),
    });
    let store = open_with(dir.path(), slow.clone()).await;
    let clone = store.clone();
    store.cache().set("k", &"v").await.unwrap();
    assert_eq!(store.cache().stats().tier2.pending_writes, 1);
    drop(store);
    drop(clone);
    let store = open_with(dir.path(), slow).await;
    assert_eq!(
        store.cache().get::<String>("k").await.unwrap().as_deref(),
        Some("v")
    );
}

#[tokio::test]
async fn expired_entries_are_not_returned_from_tier2_even_unswept() {
    let dir = tempfile::tempdir().unwrap();
    let clock = manual();
    let store = open_clocked(dir.path(), &clock, CacheConfig::default()).await;
    let ttl = SetOptions::new().ttl(Duration::from_secs(10));
    store.cache().set_with("short", &1, &ttl).await.unwrap();
    store.cache().set("long", &2).await.unwrap();
    store.close().await;
    drop(store);
    clock.advance(Duration::from_secs(10));
    let store = open_clocked(dir.path(), &clock, CacheConfig::default()).await;
    let c = store.cache();
    assert_eq!(c.stats().tier2.entries, 2, "not swept yet");
    assert_eq!(c.get::<i32>("short").await.unwrap(), None);
    assert_eq!(c.ttl("short").await.unwrap(), Ttl::Missing);
    assert!(c.set_nx("short", &3).await.unwrap());
    assert_eq!(c.get::<i32>("long").await.unwrap(), Some(2));
}

#[tokio::test]
async fn tag_versions_survive_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_with(dir.path(), CacheConfig::default()).await;
    for i in 0..20 {
        let opts = SetOptions::new().tag("lang:hi-IN");
        store
            .cache()
            .set_with(&format!("k{i}"), &i, &opts)
            .await
            .unwrap();
    }
    store
        .cache()
        .set_with("old", &0, &SetOptions::new().tag("gone"))
        .await
        .unwrap();
    assert_eq!(store.cache().invalidate_tag("gone").await.unwrap(), 1);
    store.close().await;
    drop(store);
    let store = open_with(dir.path(), CacheConfig::default()).await;
    let c = store.cache();
    assert_eq!(c.get::<i32>("old").await.unwrap(), None);
    assert_eq!(c.get::<i32>("k3").await.unwrap(), Some(3));
    // The version is read back from cache.redb, so this bump is seen by
    // rows written in the previous run.
    assert_eq!(c.invalidate_tag("lang:hi-IN").await.unwrap(), 20);
    assert_eq!(c.get::<i32>("k3").await.unwrap(), None);
    assert_eq!(c.get::<i32>("k4").await.unwrap(), None);
    store.close().await;
    drop(store);
    let store = open_with(dir.path(), CacheConfig::default()).await;
    assert_eq!(store.cache().get::<i32>("k5").await.unwrap(), None);
}

#[tokio::test]
async fn tier1_stays_within_its_byte_bound() {
    for (tier2, policy) in [
        (false, EvictionPolicy::TinyLfu),
        (true, EvictionPolicy::Lru),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let bound: u64 = 1 << 20;
        let store = open_with(
            dir.path(),
            CacheConfig::default()
                .memory_bytes(bound)
                .tier2(tier2)
                .eviction(policy),
        )
        .await;
        let c = store.cache();
        let value = vec![7u8; 4096];
        // Ten times the bound.
        let n = 10 * bound as usize / value.len();
        for i in 0..n {
            c.set_bytes(&format!("key:{i}"), &value).await.unwrap();
        }
        c.run_pending_tasks().await;
        let s = c.stats();
        assert!(s.tier1.bytes <= bound, "{} > {bound}", s.tier1.bytes);
        assert!(s.tier1.bytes > 0);
        assert!(s.tier1.evictions.size >= (n as u64) * 8 / 10, "{s:?}");
        if tier2 {
            // What memory dropped, tier 2 still serves.
            assert_eq!(&*c.get_bytes("key:0").await.unwrap().unwrap(), &value[..]);
        }
    }
}

#[tokio::test]
async fn the_sweep_removes_expired_and_stale_rows() {
    let dir = tempfile::tempdir().unwrap();
    let clock = manual();
    let store = open_clocked(
        dir.path(),
        &clock,
        CacheConfig::default().sweep_interval(Duration::from_millis(10)),
    )
    .await;
    let c = store.cache();
    for i in 0..50 {
        let opts = SetOptions::new().ttl(Duration::from_secs(1));
        c.set_with(&format!("e{i}"), &i, &opts).await.unwrap();
        c.set_with(&format!("t{i}"), &i, &SetOptions::new().tag("t"))
            .await
            .unwrap();
        c.set(&format!("keep{i}"), &i).await.unwrap();
    }
    c.flush().await.unwrap();
    assert_eq!(c.stats().tier2.entries, 150);
    clock.advance(Duration::from_secs(2));
    c.invalidate_tag("t").await.unwrap();
    eventually("the sweep", || c.stats().tier2.entries == 50).await;
    let e = c.stats().tier2.evictions;
    assert_eq!((e.expired, e.tag), (50, 50), "{e:?}");
    assert_eq!(c.get::<i32>("keep7").await.unwrap(), Some(7));
}

#[tokio::test]
async fn the_sweep_runs_on_demand_and_reports_what_it_removed() {
    let dir = tempfile::tempdir().unwrap();
    let clock = manual();
    // An hour between scheduled sweeps: only the pass asked for below runs.
    let store = open_clocked(
        dir.path(),
        &clock,
        CacheConfig::default().sweep_interval(Duration::from_secs(3600)),
    )
    .await;
    let c = store.cache();
    for i in 0..20 {
        let opts = SetOptions::new().ttl(Duration::from_secs(1));
        c.set_with(&format!("e{i}"), &i, &opts).await.unwrap();
        c.set(&format!("keep{i}"), &i).await.unwrap();
    }
    c.flush().await.unwrap();
    clock.advance(Duration::from_secs(2));
    let names: Vec<_> = store.jobs().list().iter().map(|j| j.name).collect();
    assert!(names.contains(&"cache-sweep"), "{names:?}");
    assert_eq!(store.jobs().status("cache-sweep").unwrap().runs, 0);
    let report = store.jobs().run("cache-sweep").await.unwrap();
    assert_eq!(report.count("expired"), 20, "{report:?}");
    assert_eq!(c.stats().tier2.entries, 20);
    let status = store.jobs().status("cache-sweep").unwrap();
    assert_eq!(status.runs, 1);
    assert_eq!(status.last_report.map(|r| r.count("expired")), Some(20));
    // A second pass finds nothing left to do.
    let again = store.jobs().run("cache-sweep").await.unwrap();
    assert_eq!(again.count("expired"), 0, "{again:?}");
    assert!(matches!(
        store.jobs().run("no-such-job").await,
        Err(bharatvoice_store::Error::InvalidInput { .. })
    ));
}

#[tokio::test]
async fn tier2_keeps_within_its_capacity_oldest_first() {
    let dir = tempfile::tempdir().unwrap();
    let cap = 65_536;
    let config = CacheConfig::default()
        .tier2_bytes(cap)
        .memory_bytes(8192)
        .write_mode(WriteMode::WriteThrough);
    let store = open_with(dir.path(), config.clone()).await;
    let c = store.cache();
    for i in 0..200 {
        c.set_bytes(&format!("k{i:03}"), &[1u8; 1000])
            .await
            .unwrap();
    }
    let s = c.stats();
    assert!(s.tier2.bytes <= cap, "{s:?}");
    assert!(s.tier2.evictions.size >= 130, "{s:?}");
    store.close().await;
    drop(store);
    let store = open_with(dir.path(), config).await;
    assert!(store.cache().get_bytes("k199").await.unwrap().is_some());
    assert!(store.cache().get_bytes("k000").await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_write_through_sets_share_commits() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_with(
        dir.path(),
        CacheConfig::default().write_mode(WriteMode::WriteThrough),
    )
    .await;
    let before = store.cache().stats().tier2.commits;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..64 {
        let store = store.clone();
        tasks.spawn(async move { store.cache().set(&format!("k{i}"), &i).await.unwrap() });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap();
    }
    let s = store.cache().stats();
    // Each set returned after its commit, and they shared commits.
    assert_eq!(s.tier2.entries, 64);
    assert!(
        s.tier2.commits - before < 64,
        "{} commits",
        s.tier2.commits - before
    );
}
