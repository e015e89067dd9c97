//! Tier 2 that cannot commit: whatever a call acknowledges is durable.
//!
//! A `delete`, `clear`, `invalidate_tag` or write-through set that returns
//! `Ok` survives a restart; one that cannot reach `cache.redb` fails with
//! [`Error::CacheUnavailable`] and changes nothing. NX, XX and `incr` on a
//! key tier 1 does not hold fail the same way instead of guessing what the
//! unreadable tier 2 holds.

use std::time::Duration;

use bharatvoice_store::{CacheConfig, Error, SetOptions, Tier2State, WriteMode};

use crate::cache::open_with;
use crate::cache_faults::quick_retry;
use crate::cache_tiers::eventually;
use crate::common::{bvstore, stderr, stdout};

const MODES: [WriteMode; 2] = [
    WriteMode::WriteThrough,
    WriteMode::WriteBehind {
        max_delay: Duration::from_millis(5),
    },
];

#[track_caller]
fn refused<T: std::fmt::Debug>(what: &str, r: Result<T, Error>) {
    assert!(
        matches!(r, Err(Error::CacheUnavailable { .. })),
        "{what}: {r:?}"
    );
}

/// Fills a store with rows that, after a restart, live only in tier 2.
async fn seed(dir: &std::path::Path, cfg: CacheConfig) {
    let store = open_with(dir, cfg).await;
    let c = store.cache();
    c.set("cold", &"v1").await.unwrap();
    c.set("cold2", &"w1").await.unwrap();
    c.set("counter", &5).await.unwrap();
    c.set_with("tagged", &"t1", &SetOptions::new().tag("t"))
        .await
        .unwrap();
    c.set("hot", &"h1").await.unwrap();
    store.close().await;
}

#[tokio::test]
async fn while_tier2_cannot_commit_nothing_is_acknowledged_that_a_restart_undoes() {
    for mode in MODES {
        let dir = tempfile::tempdir().unwrap();
        seed(dir.path(), quick_retry(mode)).await;

        let store = open_with(dir.path(), quick_retry(mode)).await;
        let c = store.cache();
        assert_eq!(c.get::<String>("hot").await.unwrap().as_deref(), Some("h1"));
        c.inject_tier2_fault(true);

        // The first write after the fault meets the failing commit itself.
        refused("delete meeting the failed commit", c.delete("cold").await);
        eventually("degraded", || c.stats().tier2.state == Tier2State::Degraded).await;

        // Degraded: nothing that must be durable is acknowledged.
        refused("delete of a tier-1 key", c.delete("hot").await);
        refused("delete of a tier-2 key", c.delete("cold").await);
        refused("invalidate_tag", c.invalidate_tag("t").await);
        refused("clear", c.clear().await);
        // Tier 1 lacks `cold2` and tier 2 cannot be read: no guessing.
        refused("set_nx over a tier-2 key", c.set_nx("cold2", &"w2").await);
        refused("set_xx over a tier-2 key", c.set_xx("cold2", &"w2").await);
        refused("expire of a tier-2 key", c.expire("cold2", None).await);
        refused("incr of a tier-2 counter", c.incr("counter", 1).await);
        // Tier 1 holds `hot`: that answer is sure.
        assert!(!c.set_nx("hot", &"h2").await.unwrap(), "{mode:?}");
        assert_eq!(c.get::<String>("hot").await.unwrap().as_deref(), Some("h1"));
        match mode {
            WriteMode::WriteThrough => refused("write-through set", c.set("hot", &"h3").await),
            // Write-behind: memory only until tier 2 is back (a crash may
            // lose it, as it may lose any write-behind window).
            _ => {
                c.set("mem", &1).await.unwrap();
                assert_eq!(c.get::<i32>("mem").await.unwrap(), Some(1));
            }
        }
        store.close().await;
        drop(store);

        // Restart without the fault: every refused call changed nothing.
        let store = open_with(dir.path(), quick_retry(mode)).await;
        let c = store.cache();
        assert_eq!(c.stats().tier2.state, Tier2State::Healthy);
        let get = |k: &'static str| async move { c.get::<String>(k).await.unwrap() };
        assert_eq!(get("cold").await.as_deref(), Some("v1"), "{mode:?}");
        assert_eq!(get("cold2").await.as_deref(), Some("w1"), "{mode:?}");
        assert_eq!(get("hot").await.as_deref(), Some("h1"), "{mode:?}");
        assert_eq!(get("tagged").await.as_deref(), Some("t1"), "{mode:?}");
        assert_eq!(c.get::<i64>("counter").await.unwrap(), Some(5), "{mode:?}");
    }
}

#[tokio::test]
async fn a_refused_delete_is_acknowledged_once_tier2_is_back() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = quick_retry(MODES[1]);
    seed(dir.path(), cfg.clone()).await;
    let store = open_with(dir.path(), cfg.clone()).await;
    let c = store.cache();
    c.inject_tier2_fault(true);
    refused("delete", c.delete("cold").await);
    c.inject_tier2_fault(false);
    eventually("recovered", || c.stats().tier2.state == Tier2State::Healthy).await;
    assert!(c.delete("cold").await.unwrap());
    assert_eq!(c.invalidate_tag("t").await.unwrap(), 1);
    store.close().await;
    drop(store);
    let store = open_with(dir.path(), cfg).await;
    let c = store.cache();
    assert_eq!(c.get::<String>("cold").await.unwrap(), None);
    assert_eq!(c.get::<String>("tagged").await.unwrap(), None);
}

/// `bvstore cache del` (and `set`) on a full disk must not exit 0: exit 13,
/// and the value is still there afterwards, the cache file not set aside.
#[cfg(unix)]
#[test]
fn cli_cache_del_on_a_full_disk_is_refused_with_its_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ok = |args: &[&str]| {
        let out = bvstore(d, args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        stdout(&out)
    };
    ok(&["init"]);
    ok(&["cache", "set", "k", "v1"]);
    for i in 0..40 {
        ok(&["cache", "set", &format!("fill{i}"), &"x".repeat(3000)]);
    }
    for args in [&["cache", "del", "k"][..], &["cache", "set", "k", "v2"]] {
        // 4 KiB, far below cache.redb's size: its commits fail as on a
        // full disk (EFBIG instead of ENOSPC).
        let refused = crate::disk_full::bvstore_limited(d, 4, args);
        assert_eq!(
            refused.status.code(),
            Some(13),
            "{args:?}: {}",
            stderr(&refused)
        );
        assert!(
            stderr(&refused).contains("cache.redb"),
            "{}",
            stderr(&refused)
        );
        assert_eq!(stdout(&refused), "");
    }
    assert_eq!(ok(&["cache", "get", "k"]), "v1\n");
    assert!(!d.join("cache.redb.damaged").exists());
}
