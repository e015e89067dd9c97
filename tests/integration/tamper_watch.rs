//! The tamper watch: blob files removed, rewritten or replaced behind the
//! store's back are marked damaged while the store runs, logged, and make
//! health degraded; the store's own work (puts, dedup, purge, orphan
//! collection, key rotation) never is. Polls are bounded; nothing sleeps a
//! fixed time except where the test is that nothing happens.

use std::io::{Seek, SeekFrom, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use bharatvoice_store::{
    Actor, AudioFile, BlobAddress, Error, HealthStatus, LifecycleConfig, PutOptions, Store,
};

use crate::blobs::random_bytes;
use crate::common::{TestStore, blob_file, config};
use crate::logs::capture;

/// A store with 4 KiB chunks and the given lifecycle settings.
async fn store_with(lifecycle: LifecycleConfig) -> TestStore {
    let dir = tempfile::tempdir().unwrap();
    let c = config(dir.path())
        .blob_chunk_bytes(4096)
        .lifecycle(lifecycle);
    let store = Store::open(c).await.unwrap();
    TestStore { dir, store }
}

async fn put(t: &TestStore, owner: &bharatvoice_store::User, bytes: &[u8]) -> AudioFile {
    t.store
        .files()
        .put_bytes(
            Actor::User(owner.id),
            owner.id,
            bytes,
            PutOptions::content_type("audio/wav"),
        )
        .await
        .unwrap()
}

fn damaged(store: &Store) -> Vec<(BlobAddress, String)> {
    store
        .lifecycle()
        .damaged()
        .unwrap()
        .into_iter()
        .map(|(a, _, why)| (a, why))
        .collect()
}

/// Polls every 20 ms, up to 10 s, until `blob` is marked damaged; returns
/// the reason.
async fn marked(store: &Store, blob: BlobAddress, what: &str) -> String {
    let start = Instant::now();
    loop {
        if let Some((_, why)) = damaged(store).into_iter().find(|(a, _)| *a == blob) {
            return why;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{what}: not marked damaged within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls until `blob` is no longer marked damaged.
async fn unmarked(store: &Store, blob: BlobAddress, what: &str) {
    let start = Instant::now();
    while damaged(store).iter().any(|(a, _)| *a == blob) {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{what}: still marked after 10 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The watch's job has finished the pass it was in.
async fn watch_idle(store: &Store) {
    let start = Instant::now();
    while store.jobs().status("tamper-watch").unwrap().running {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "watch still busy"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn integrity(store: &Store) -> (HealthStatus, HealthStatus, String) {
    let h = store.health().await;
    let part = h.part("integrity").expect("an integrity part").clone();
    (h.status, part.status, part.detail)
}

/// Replaces `path` with `bytes` the way editors and sync tools do: a
/// temporary beside it, renamed over it.
fn replace_by_rename(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension("swap");
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[tokio::test]
async fn a_blob_file_deleted_behind_the_stores_back_is_marked_logged_and_degrades_health() {
    let (logs, _guard) = capture(tracing::Level::INFO, false);
    let t = store_with(LifecycleConfig::default()).await;
    let (status, part, detail) = integrity(&t.store).await;
    assert_eq!(
        (status, part),
        (HealthStatus::Healthy, HealthStatus::Healthy)
    );
    assert!(detail.contains("tamper watch is on"), "{detail}");

    let u = t.user("deepa").await;
    let bytes = random_bytes(10_000, 7);
    let f = put(&t, &u, &bytes).await;
    // The same bytes again: one blob, two records.
    let g = put(&t, &u, &bytes).await;
    assert_eq!(f.blob, g.blob);
    let kept = put(&t, &u, &random_bytes(5_000, 8)).await;

    std::fs::remove_file(blob_file(t.dir.path(), &f)).unwrap();
    let why = marked(&t.store, f.blob, "deleted blob").await;
    assert!(why.contains("removed outside the store"), "{why}");
    assert_eq!(damaged(&t.store).len(), 1, "only the deleted blob");

    let (status, part, detail) = integrity(&t.store).await;
    assert_eq!(
        (status, part),
        (HealthStatus::Degraded, HealthStatus::Degraded)
    );
    assert!(detail.contains("1 blob(s) marked damaged"), "{detail}");
    let e = t.store.files().read(Actor::System, g.id).await.unwrap_err();
    assert!(matches!(e, Error::Integrity { .. }), "{e}");
    assert_eq!(
        t.store
            .files()
            .read(Actor::System, kept.id)
            .await
            .unwrap()
            .len(),
        5_000
    );

    // Logged with the blob and both records, never a key.
    let log = logs.text();
    let line = log
        .lines()
        .find(|l| l.contains("outside the store") && l.contains("WARN"))
        .unwrap_or_else(|| panic!("no warning logged:\n{log}"));
    for id in [f.blob.to_string(), f.id.to_string(), g.id.to_string()] {
        assert!(line.contains(&id), "{id} not in {line}");
    }
    assert!(!line.to_ascii_lowercase().contains("key"), "{line}");
}

#[tokio::test]
async fn rewritten_truncated_and_swapped_blob_files_are_marked_and_a_restored_one_is_cleared() {
    let t = store_with(LifecycleConfig::default()).await;
    let u = t.user("farah").await;
    let a = put(&t, &u, &random_bytes(10_000, 1)).await;
    let b = put(&t, &u, &random_bytes(10_000, 2)).await;
    let c = put(&t, &u, &random_bytes(10_000, 3)).await;
    let d = put(&t, &u, &random_bytes(10_000, 4)).await;

    // In place, same length, a few bytes flipped in the middle.
    let path = blob_file(t.dir.path(), &a);
    let good_a = std::fs::read(&path).unwrap();
    let mut file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.seek(SeekFrom::Start(good_a.len() as u64 / 2)).unwrap();
    file.write_all(&[!good_a[good_a.len() / 2]; 3]).unwrap();
    drop(file);
    let why = marked(&t.store, a.blob, "flipped bytes").await;
    assert!(why.contains("modified outside the store"), "{why}");

    // A truncated copy renamed over it.
    let path = blob_file(t.dir.path(), &b);
    let good_b = std::fs::read(&path).unwrap();
    replace_by_rename(&path, &good_b[..good_b.len() - 100]);
    let why = marked(&t.store, b.blob, "truncated replacement").await;
    assert!(why.contains("modified outside the store"), "{why}");
    assert!(why.contains("bytes where the store wrote"), "{why}");

    // Another blob's bytes (same length) renamed over it: only reading
    // it back tells.
    let path = blob_file(t.dir.path(), &c);
    replace_by_rename(&path, &std::fs::read(blob_file(t.dir.path(), &d)).unwrap());
    let why = marked(&t.store, c.blob, "swapped for another blob").await;
    assert!(why.contains("modified outside the store"), "{why}");

    // A put, at once replaced by a same-length copy before the watch looked.
    let e = put(&t, &u, &random_bytes(10_000, 5)).await;
    let path = blob_file(t.dir.path(), &e);
    let mut bad = std::fs::read(&path).unwrap();
    let last = bad.len() - 30;
    bad[last] ^= 1;
    replace_by_rename(&path, &bad);
    marked(&t.store, e.blob, "replaced right after its put").await;

    assert_eq!(damaged(&t.store).len(), 4);
    assert!(!damaged(&t.store).iter().any(|(x, _)| *x == d.blob));
    let (status, part, _) = integrity(&t.store).await;
    assert_eq!(
        (status, part),
        (HealthStatus::Degraded, HealthStatus::Degraded)
    );

    // Put back from a backup: whole again, the mark goes.
    replace_by_rename(&blob_file(t.dir.path(), &a), &good_a);
    unmarked(&t.store, a.blob, "restored blob").await;
    assert_eq!(
        t.store.files().read(Actor::System, a.id).await.unwrap(),
        random_bytes(10_000, 1)
    );
    assert_eq!(damaged(&t.store).len(), 3);
}

#[tokio::test]
async fn the_stores_own_work_is_never_taken_for_tampering() {
    let t = store_with(
        LifecycleConfig::default()
            .purge_grace(Duration::ZERO)
            .orphan_grace(Duration::ZERO),
    )
    .await;
    let u = t.user("gita").await;
    let v = t.user("hari").await;
    let me = Actor::User(u.id);
    let mut files = Vec::new();
    for i in 0..12u64 {
        // Some large enough to leave the page cache, some with dedup.
        let n = if i % 4 == 0 { 1_500_000 } else { 9_000 };
        let owner = if i % 3 == 0 { &v } else { &u };
        files.push(put(&t, owner, &random_bytes(n, i % 6)).await);
    }
    for f in &files {
        assert!(
            !t.store
                .files()
                .read(Actor::System, f.id)
                .await
                .unwrap()
                .is_empty()
        );
    }
    // Delete and purge: the purge overwrites and unlinks blob files.
    for f in files.iter().filter(|f| f.owner == u.id).take(4) {
        t.store.files().delete(me, f.id).await.unwrap();
    }
    let purge = t
        .store
        .lifecycle()
        .run_to_end("purge", false)
        .await
        .unwrap();
    assert!(purge.count("blobs_destroyed") >= 1, "{purge:?}");
    // An orphan (a blob file no row names), collected.
    let orphan = t.dir.path().join("blobs/ab/ab").join("ab".repeat(32));
    std::fs::create_dir_all(orphan.parent().unwrap()).unwrap();
    std::fs::write(&orphan, b"sealed bytes nobody names").unwrap();
    let orphans = t.store.lifecycle().run("orphans", false).await.unwrap();
    assert_eq!(orphans.count("orphans_removed"), 1, "{orphans:?}");
    // Key rotations: the owner's key re-wraps data keys, the master key
    // re-wraps owner keys; no blob file is rewritten.
    t.store.keys().rotate_owner(u.id).await.unwrap();
    while !t
        .store
        .keys()
        .rotation_step(u.id, 2)
        .await
        .unwrap()
        .finished
    {}
    let master = bharatvoice_store::MasterKey::generate().unwrap();
    t.store.keys().rotate_master(master).await.unwrap();
    let more = put(&t, &u, &random_bytes(20_000, 99)).await;

    // A canary removed last: once it is marked, the watch has seen
    // everything before it.
    let canary = put(&t, &v, &random_bytes(3_000, 1234)).await;
    std::fs::remove_file(blob_file(t.dir.path(), &canary)).unwrap();
    marked(&t.store, canary.blob, "canary").await;
    watch_idle(&t.store).await;
    let all = damaged(&t.store);
    assert_eq!(all.len(), 1, "only the canary: {all:?}");
    assert_eq!(all[0].0, canary.blob);
    assert_eq!(
        t.store.files().read(me, more.id).await.unwrap(),
        random_bytes(20_000, 99)
    );
    let status = t.store.jobs().status("tamper-watch").unwrap();
    assert!(status.runs >= 1 && status.failures == 0, "{status:?}");
}

#[tokio::test]
async fn switched_off_nothing_is_watched() {
    let t = store_with(LifecycleConfig::default().tamper_watch(false)).await;
    let (status, part, detail) = integrity(&t.store).await;
    assert_eq!(
        (status, part),
        (HealthStatus::Healthy, HealthStatus::Healthy)
    );
    assert!(detail.contains("switched off"), "{detail}");
    assert!(
        !t.store
            .jobs()
            .list()
            .iter()
            .any(|j| j.name == "tamper-watch"),
        "no watch job"
    );
    let u = t.user("indu").await;
    let f = put(&t, &u, &random_bytes(10_000, 1)).await;
    std::fs::remove_file(blob_file(t.dir.path(), &f)).unwrap();
    // That nothing happens takes a wait: ten times the default debounce.
    for _ in 0..25 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(damaged(&t.store).is_empty());
    }
    assert_eq!(integrity(&t.store).await.1, HealthStatus::Healthy);
}

#[tokio::test]
async fn the_watch_stops_with_the_store_and_a_reopened_one_rescans() {
    let t = store_with(LifecycleConfig::default()).await;
    let u = t.user("jaya").await;
    let f = put(&t, &u, &random_bytes(10_000, 1)).await;
    let g = put(&t, &u, &random_bytes(10_000, 2)).await;
    let h = put(&t, &u, &random_bytes(10_000, 3)).await;
    t.store.close().await;
    assert!(!t.store.jobs().status("tamper-watch").unwrap().running);
    let detail = integrity(&t.store).await.2;
    assert!(detail.contains("the store is closed"), "{detail}");
    // Behind the closed store's back: one removed, one cut short, one
    // changed in place (same size).
    std::fs::remove_file(blob_file(t.dir.path(), &f)).unwrap();
    let path = blob_file(t.dir.path(), &g);
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let path = blob_file(t.dir.path(), &h);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[100] ^= 1;
    std::fs::write(&path, &bytes).unwrap();
    let dir = t.path();
    drop(t.store);
    // Reopened at once: the files were free. The rescan at open finds
    // what a size tells; a same-size change made while closed is left to
    // reads and verification.
    let store = Store::open(config(&dir).blob_chunk_bytes(4096))
        .await
        .unwrap();
    assert!(integrity(&store).await.2.contains("tamper watch is on"));
    let why = marked(&store, f.blob, "removed while closed").await;
    assert!(why.contains("removed outside the store"), "{why}");
    let why = marked(&store, g.blob, "cut short while closed").await;
    assert!(why.contains("bytes where the store wrote"), "{why}");
    watch_idle(&store).await;
    assert!(!damaged(&store).iter().any(|(a, _)| *a == h.blob));
    assert!(store.files().verify(Actor::System, h.id).await.is_err());
    // And the new watch hears.
    let k = store
        .files()
        .put_bytes(Actor::User(u.id), u.id, b"again", PutOptions::default())
        .await
        .unwrap();
    std::fs::remove_file(blob_file(&dir, &k)).unwrap();
    marked(&store, k.blob, "after reopening").await;
}
