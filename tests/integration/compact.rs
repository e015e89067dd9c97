//! `Store::compact` / `bvstore compact`, and `bvstore health`: compaction
//! gives freed pages of both redb files back and loses nothing, even with
//! cache traffic going on; health exits by the store's status.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use std::time::Duration;

use bharatvoice_store::{Actor, Error, LifecycleConfig, PutOptions, Role, SessionId, Store, Turn};

use crate::blob_cli::{add_user, json, put_file};
use crate::common::{TestStore, bvstore, config, open_store};

/// A store whose purge takes soft-deleted records at once.
async fn open_purging() -> TestStore {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(
        config(dir.path()).lifecycle(LifecycleConfig::default().purge_grace(Duration::ZERO)),
    )
    .await
    .unwrap();
    TestStore { dir, store }
}

/// 200 sessions of 8 turns of 1 KiB, of which 150 are deleted and purged
/// (their pages are freed in `store.redb`); 40 cache values of 64 KiB, of
/// which 30 are deleted. Returns the sessions kept.
async fn grow_and_shrink(t: &TestStore) -> Vec<SessionId> {
    let store = &t.store;
    let u = t.bare_user("talker").await;
    let mut kept = Vec::new();
    for i in 0..200 {
        let s = store.sessions().create(u.id, None).await.unwrap();
        for n in 0..8 {
            let text = format!("{i}:{n}:{}", "बात ".repeat(100));
            store
                .sessions()
                .append_turn(s.id, Turn::new(Role::User, text))
                .await
                .unwrap();
        }
        if i % 4 == 0 {
            kept.push(s.id);
        } else {
            store.sessions().delete(s.id).await.unwrap();
        }
    }
    store.lifecycle().run_to_end("purge", false).await.unwrap();
    let cache = store.cache();
    for i in 0..40 {
        cache
            .set(&format!("k{i}"), &vec![i as u8; 64 << 10])
            .await
            .unwrap();
    }
    for i in 10..40 {
        assert!(cache.delete(&format!("k{i}")).await.unwrap());
    }
    store.flush().await.unwrap();
    kept
}

#[tokio::test]
async fn compaction_reclaims_freed_pages_of_both_files_and_keeps_everything() {
    let t = open_purging().await;
    let kept = grow_and_shrink(&t).await;
    let report = t.store.compact().await.unwrap();
    let [db, cache] = &report.files[..] else {
        panic!("two files: {report:?}")
    };
    assert_eq!((db.file, cache.file), ("store.redb", "cache.redb"));
    assert_eq!((&db.skipped, &cache.skipped), (&None, &None), "{report:?}");
    assert!(
        cache.reclaimed_bytes() >= 1 << 20,
        "30 deleted values of 64 KiB: {report:?}"
    );
    assert!(
        db.reclaimed_bytes() >= 512 << 10,
        "150 purged sessions of 8 KiB of turns: {report:?}"
    );
    assert_eq!(
        report.reclaimed_bytes,
        db.reclaimed_bytes() + cache.reclaimed_bytes()
    );
    for (file, f) in [("store.redb", db), ("cache.redb", cache)] {
        let on_disk = std::fs::metadata(t.path().join(file)).unwrap().len();
        assert_eq!(on_disk, f.after_bytes, "{file}");
    }

    // Everything is still there, and both files take writes.
    for id in &kept {
        let s = t.store.sessions().get(*id).unwrap();
        assert_eq!(s.context.len(), 8);
        assert!(s.context[7].text.ends_with("बात "));
    }
    for i in 0..10 {
        let v: Vec<u8> = t
            .store
            .cache()
            .get(&format!("k{i}"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(v, vec![i as u8; 64 << 10]);
    }
    assert!(
        t.store
            .cache()
            .get::<Vec<u8>>("k10")
            .await
            .unwrap()
            .is_none()
    );
    t.store.cache().set("after", &1u32).await.unwrap();
    let u = t.user("after").await;
    let f = t
        .put_as(&u, b"pcm", PutOptions::content_type("audio/wav"))
        .await;
    assert_eq!(
        t.store.files().read(Actor::User(u.id), f.id).await.unwrap(),
        b"pcm"
    );

    // Reopened from disk, the compacted files hold the same.
    let dir = t.path();
    t.store.close().await;
    drop(t.store);
    let store = Store::open(config(&dir)).await.unwrap();
    assert_eq!(store.cache().get::<u32>("after").await.unwrap(), Some(1));
    let v: Vec<u8> = store.cache().get("k3").await.unwrap().unwrap();
    assert_eq!(v.len(), 64 << 10);
    assert_eq!(store.users().get_by_username("after").unwrap().id, u.id);
    assert_eq!(store.sessions().get(kept[0]).unwrap().context.len(), 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_traffic_during_compaction_loses_nothing() {
    let t = open_purging().await;
    grow_and_shrink(&t).await;
    let stop = Arc::new(AtomicBool::new(false));
    let traffic = {
        let (store, stop) = (t.store.clone(), Arc::clone(&stop));
        tokio::spawn(async move {
            let mut n = 0u32;
            while !stop.load(Ordering::Relaxed) {
                let key = format!("live{}", n % 50);
                store.cache().set(&key, &n).await.unwrap();
                assert_eq!(store.cache().get::<u32>(&key).await.unwrap(), Some(n));
                let v: Vec<u8> = store.cache().get("k1").await.unwrap().unwrap();
                assert_eq!(v[0], 1);
                n += 1;
            }
            n
        })
    };
    for _ in 0..3 {
        t.store.compact().await.unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    let n = traffic.await.unwrap();
    assert!(n > 0);
    t.store.flush().await.unwrap();
    for i in n.saturating_sub(50)..n {
        let key = format!("live{}", i % 50);
        assert!(t.store.cache().get::<u32>(&key).await.unwrap().is_some());
    }
}

#[tokio::test]
async fn a_read_only_store_refuses_compaction() {
    let t = open_store().await;
    let dir = t.path();
    t.store.close().await;
    drop(t.store);
    let store = Store::open(config(&dir).read_only(true)).await.unwrap();
    assert!(matches!(store.compact().await, Err(Error::ReadOnly { .. })));
}

#[test]
fn the_cli_compacts_and_health_exits_by_status() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("data");
    crate::common::init(&d);
    add_user(&d, "mira");

    let report = json(&bvstore(&d, &["--json", "compact"]));
    assert_eq!(report["files"][0]["file"], "store.redb");
    assert_eq!(report["files"][1]["file"], "cache.redb");
    assert!(report["reclaimed_bytes"].is_u64());
    let text = bvstore(&d, &["compact"]);
    assert!(text.status.success());
    let text = crate::common::stdout(&text);
    assert!(
        text.contains("store.redb") && text.contains("reclaimed"),
        "{text}"
    );

    let healthy = bvstore(&d, &["--json", "health"]);
    assert_eq!(healthy.status.code(), Some(0));
    let doc = json(&healthy);
    assert_eq!(doc["status"], "healthy");
    assert!(doc["parts"].as_array().unwrap().len() >= 5);

    // A blob file removed behind the store's back, found by the orphan
    // pass: the store is degraded, and health exits 1.
    let input = dir.path().join("clip.wav");
    std::fs::write(&input, crate::blobs::speech_pcm(20_000, 1)).unwrap();
    let rec = put_file(&d, &input, "mira", &[]);
    let blob = rec["blob"].as_str().unwrap();
    let path = d
        .join("blobs")
        .join(&blob[0..2])
        .join(&blob[2..4])
        .join(blob);
    std::fs::remove_file(&path).unwrap();
    json(&bvstore(&d, &["--json", "gc", "--job", "orphans"]));
    let degraded = bvstore(&d, &["health"]);
    assert_eq!(degraded.status.code(), Some(1));
    let text = crate::common::stdout(&degraded);
    assert!(
        text.contains("store: degraded") && text.contains("integrity"),
        "{text}"
    );
}
