//! NX and incr are atomic across both tiers and all tasks.

use bharatvoice_store::CacheConfig;

use crate::cache::open_with;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_nx_races_have_exactly_the_right_winners() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_with(dir.path(), CacheConfig::default()).await;
    store.cache().set("in-tier2", &"first").await.unwrap();
    store.close().await;
    drop(store);
    // After the restart, "in-tier2" exists only in tier 2.
    let store = open_with(dir.path(), CacheConfig::default()).await;
    assert_eq!(store.cache().stats().tier1.entries, 0);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..64 {
        for key in ["in-tier2", "nowhere"] {
            let store = store.clone();
            tasks.spawn(async move {
                let won = store
                    .cache()
                    .set_nx(key, &format!("task{i}"))
                    .await
                    .unwrap();
                (key, i, won)
            });
        }
    }
    let mut winners = Vec::new();
    while let Some(r) = tasks.join_next().await {
        let (key, i, won) = r.unwrap();
        if won {
            winners.push((key, i));
        }
    }
    assert_eq!(winners.len(), 1, "{winners:?}");
    let (key, i) = winners[0];
    assert_eq!(key, "nowhere");
    let c = store.cache();
    assert_eq!(
        c.get::<String>("nowhere").await.unwrap(),
        Some(format!("task{i}"))
    );
    assert_eq!(
        c.get::<String>("in-tier2").await.unwrap().as_deref(),
        Some("first")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incr_from_64_tasks_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_with(dir.path(), CacheConfig::default()).await;
    store.cache().set("counter", &0).await.unwrap();
    store.close().await;
    drop(store);
    // Starts in tier 2 only.
    let store = open_with(dir.path(), CacheConfig::default()).await;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..64 {
        let store = store.clone();
        tasks.spawn(async move {
            for _ in 0..1000 {
                store.cache().incr("counter", 1).await.unwrap();
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap();
    }
    assert_eq!(
        store.cache().get::<i64>("counter").await.unwrap(),
        Some(64_000)
    );
    store.close().await;
    drop(store);
    let store = open_with(dir.path(), CacheConfig::default()).await;
    assert_eq!(
        store.cache().get::<i64>("counter").await.unwrap(),
        Some(64_000)
    );
}
