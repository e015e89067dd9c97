//! `store.health()`: one probe per part, and the worst of them.

use std::time::Duration;

use bharatvoice_store::{Config, HealthStatus, Store, WriteMode};

use crate::cache::open_with;
use crate::cache_faults::quick_retry;
use crate::common::config;

fn status(h: &bharatvoice_store::Health, part: &str) -> HealthStatus {
    h.part(part)
        .unwrap_or_else(|| panic!("no {part} in {h:?}"))
        .status
}

#[tokio::test]
async fn a_fresh_store_is_healthy_in_every_part() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(config(dir.path())).await.unwrap();
    let h = store.health().await;
    assert_eq!(h.status, HealthStatus::Healthy, "{h:?}");
    let parts: Vec<_> = h.parts.iter().map(|p| p.part).collect();
    assert_eq!(
        parts,
        [
            "database",
            "cache",
            "blobs",
            "jobs",
            "integrity",
            "backup",
            "anomalies"
        ]
    );
    assert!(
        h.part("database")
            .unwrap()
            .detail
            .contains(&format!("schema {}", bharatvoice_store::SCHEMA_VERSION)),
        "{h:?}"
    );
    // The database part went through the writer and knows the file's size;
    // the blobs part created a file where puts stage theirs, and left none.
    let db = &h.part("database").unwrap().detail;
    assert!(db.contains("writer answered in "), "{db}");
    assert!(db.contains(" KiB") || db.contains(" MiB"), "{db}");
    let leftovers: Vec<_> = walk(dir.path())
        .into_iter()
        .filter(|p| p.to_string_lossy().contains("health-probe"))
        .collect();
    assert_eq!(leftovers, Vec::<std::path::PathBuf>::new());
    // A closed store's writer refuses the probe: unhealthy, saying so.
    store.close().await;
    let h = store.health().await;
    assert_eq!(status(&h, "database"), HealthStatus::Unhealthy, "{h:?}");
    assert!(
        h.part("database").unwrap().detail.contains("writer"),
        "{h:?}"
    );
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if e.file_type().unwrap().is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[tokio::test]
async fn a_cache_that_cannot_commit_is_degraded_not_unhealthy() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_with(dir.path(), quick_retry(WriteMode::WriteThrough)).await;
    let c = store.cache();
    c.inject_tier2_fault(true);
    assert!(
        c.set("k", &1).await.is_err(),
        "a write-through set is refused"
    );
    let h = store.health().await;
    assert_eq!(status(&h, "cache"), HealthStatus::Degraded, "{h:?}");
    assert_eq!(status(&h, "database"), HealthStatus::Healthy);
    assert_eq!(h.status, HealthStatus::Degraded);
    // It recovers once the disk does.
    c.inject_tier2_fault(false);
    for _ in 0..500 {
        if store.health().await.status == HealthStatus::Healthy {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(store.health().await.status, HealthStatus::Healthy);
}

#[tokio::test]
async fn a_read_only_store_is_degraded() {
    let dir = tempfile::tempdir().unwrap();
    let key = bharatvoice_store::MasterKey::generate().unwrap();
    let store = Store::open(Config::new(dir.path()).master_key(key.clone()))
        .await
        .unwrap();
    store.close().await;
    drop(store);
    let store = Store::open(Config::new(dir.path()).master_key(key).read_only(true))
        .await
        .unwrap();
    let h = store.health().await;
    assert_eq!(status(&h, "database"), HealthStatus::Degraded, "{h:?}");
    assert!(h.part("database").unwrap().detail.contains("read-only"));
}

#[tokio::test]
async fn blob_storage_that_is_gone_is_unhealthy() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(config(dir.path())).await.unwrap();
    let tmp = dir.path().join("tmp");
    std::fs::remove_dir(&tmp).unwrap();
    std::fs::write(&tmp, b"not a directory").unwrap();
    let h = store.health().await;
    assert_eq!(status(&h, "blobs"), HealthStatus::Unhealthy, "{h:?}");
    assert_eq!(h.status, HealthStatus::Unhealthy);
}

#[tokio::test]
async fn a_closed_store_is_unhealthy() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(config(dir.path())).await.unwrap();
    store.close().await;
    let h = store.health().await;
    assert_eq!(status(&h, "database"), HealthStatus::Unhealthy, "{h:?}");
    assert_eq!(status(&h, "cache"), HealthStatus::Unhealthy, "{h:?}");
}

#[tokio::test]
async fn free_space_under_the_floor_degrades_the_blob_storage() {
    let dir = tempfile::tempdir().unwrap();
    let quota = |floor| bharatvoice_store::QuotaConfig::default().min_free_bytes(floor);
    let store = Store::open(config(dir.path()).quota(quota(u64::MAX / 2)))
        .await
        .unwrap();
    let h = store.health().await;
    assert_eq!(
        (h.status, status(&h, "blobs")),
        (HealthStatus::Degraded, HealthStatus::Degraded),
        "{h:?}"
    );
    let detail = &h.part("blobs").unwrap().detail;
    assert!(detail.contains("puts are refused"), "{detail}");
    store.close().await;
    drop(store);

    // The same disk under a floor it clears: healthy, with the figures.
    let store = Store::open(config(dir.path()).quota(quota(1)))
        .await
        .unwrap();
    let h = store.health().await;
    assert_eq!(status(&h, "blobs"), HealthStatus::Healthy, "{h:?}");
    assert!(
        h.part("blobs")
            .unwrap()
            .detail
            .contains("free on its disk (floor 1 B)"),
        "{h:?}"
    );
}
