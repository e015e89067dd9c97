//! Tier 2 failing: the cache keeps serving, reports it, recovers; a
//! damaged or unknown `cache.redb` is set aside at open.

use std::time::Duration;

use bharatvoice_store::{CacheConfig, SetOptions, Tier2State, WriteMode};

use crate::cache::open_with;
use crate::cache_tiers::eventually;
use crate::common::TestStore;

pub fn quick_retry(mode: WriteMode) -> CacheConfig {
    CacheConfig::default()
        .write_mode(mode)
        .retry_interval(Duration::from_millis(10))
}

#[tokio::test]
async fn a_failing_tier2_degrades_then_recovers_without_a_restart() {
    for mode in [
        WriteMode::WriteThrough,
        WriteMode::WriteBehind {
            max_delay: Duration::from_millis(5),
        },
    ] {
        let dir = tempfile::tempdir().unwrap();
        let store = open_with(dir.path(), quick_retry(mode)).await;
        let c = store.cache();
        c.set("old", &"stale").await.unwrap();
        c.set_with("tagged", &1, &SetOptions::new().tag("t"))
            .await
            .unwrap();
        c.flush().await.unwrap();

        c.inject_tier2_fault(true);
        let during = c.set("during", &2).await;
        assert_eq!(
            during.is_ok(),
            mode != WriteMode::WriteThrough,
            "{during:?}"
        );
        assert!(c.flush().await.is_err());
        eventually("degraded", || c.stats().tier2.state == Tier2State::Degraded).await;
        let s = c.stats();
        assert!(
            s.tier2
                .last_error
                .as_deref()
                .unwrap_or("")
                .contains("fault"),
            "{s:?}"
        );
        // Tier 1 keeps answering; what must be durable is refused (see
        // cache_degraded.rs) until tier 2 is back.
        assert_eq!(
            c.get::<String>("old").await.unwrap().as_deref(),
            Some("stale")
        );
        assert!(c.delete("old").await.is_err());

        c.inject_tier2_fault(false);
        eventually("recovered", || c.stats().tier2.state == Tier2State::Healthy).await;
        assert_eq!(c.stats().tier2.last_error, None);
        assert!(c.delete("old").await.unwrap());
        assert_eq!(c.invalidate_tag("t").await.unwrap(), 1);
        assert_eq!(c.incr("n", 3).await.unwrap(), 3);
        assert!(c.set_nx("fresh", &1).await.unwrap());
        c.set("after", &"back").await.unwrap();
        store.close().await;
        drop(store);

        // What was deleted or invalidated after the recovery stays gone;
        // writes after the recovery reached the file.
        let store = open_with(dir.path(), quick_retry(mode)).await;
        let c = store.cache();
        assert_eq!(c.get::<String>("old").await.unwrap(), None, "{mode:?}");
        assert_eq!(c.get::<i32>("tagged").await.unwrap(), None, "{mode:?}");
        assert_eq!(
            c.get::<String>("after").await.unwrap().as_deref(),
            Some("back")
        );
    }
}

#[tokio::test]
async fn a_damaged_cache_file_is_set_aside_and_rebuilt() {
    let t = crate::common::open_store().await;
    let user = t.user("ravi").await;
    t.store.cache().set("k", &1).await.unwrap();
    t.store.close().await;
    let TestStore { dir, store } = t;
    drop(store);
    let path = dir.path().join("cache.redb");
    let len = std::fs::metadata(&path).unwrap().len() as usize;
    std::fs::write(&path, vec![0xA5u8; len.max(4096)]).unwrap();

    let store = bharatvoice_store::Store::open(crate::common::config(dir.path()))
        .await
        .expect("the store opens despite the damaged cache");
    assert_eq!(store.users().get(user.id).unwrap().username, "ravi");
    let c = store.cache();
    let s = c.stats();
    assert_eq!(s.tier2.state, Tier2State::Healthy);
    assert_eq!(
        s.tier2.set_aside,
        Some(dir.path().join("cache.redb.damaged"))
    );
    assert!(dir.path().join("cache.redb.damaged").exists());
    assert_eq!(c.get::<i32>("k").await.unwrap(), None);
    c.set("k", &2).await.unwrap();
    assert_eq!(c.get::<i32>("k").await.unwrap(), Some(2));
}

#[tokio::test]
async fn a_cache_file_from_an_unknown_version_is_set_aside() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_with(dir.path(), CacheConfig::default()).await;
    store.cache().set("k", &1).await.unwrap();
    store.close().await;
    drop(store);
    {
        let db = redb::Database::open(dir.path().join("cache.redb")).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let def: redb::TableDefinition<&str, u64> = redb::TableDefinition::new("meta");
            let mut meta = txn.open_table(def).unwrap();
            meta.insert("format_version", 99).unwrap();
        }
        txn.commit().unwrap();
    }
    let store = open_with(dir.path(), CacheConfig::default()).await;
    let s = store.cache().stats();
    assert!(s.tier2.set_aside.is_some(), "{s:?}");
    assert_eq!(store.cache().get::<i32>("k").await.unwrap(), None);
    assert_eq!(s.tier2.state, Tier2State::Healthy);
}
