//! `bvstore cache ...`: each run a new process, so values pass through
//! tier 2.

use std::time::Duration;

use bharatvoice_store::{CacheConfig, ManualClock, SetOptions, Timestamp};

use crate::cache::open_clocked;
use crate::common::{bvstore, stderr, stdout};

fn ok(dir: &std::path::Path, args: &[&str]) -> String {
    let out = bvstore(dir, args);
    assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    stdout(&out)
}

fn code(dir: &std::path::Path, args: &[&str]) -> (Option<i32>, String) {
    let out = bvstore(dir, args);
    (out.status.code(), stdout(&out))
}

#[test]
fn set_then_get_in_the_next_run() {
    let dir = crate::common::store_dir();
    let d = dir.path();
    assert_eq!(ok(d, &["cache", "set", "greeting", "नमस्ते दुनिया"]), "OK\n");
    assert_eq!(ok(d, &["cache", "get", "greeting"]), "नमस्ते दुनिया\n");
    assert_eq!(code(d, &["cache", "get", "nope"]), (Some(1), String::new()));
    let json: serde_json::Value =
        serde_json::from_str(&ok(d, &["--json", "cache", "get", "greeting"])).unwrap();
    assert_eq!(json["value"], "नमस्ते दुनिया");
    assert_eq!(ok(d, &["cache", "set", "dash", "--", "-5"]), "OK\n");
    assert_eq!(ok(d, &["cache", "get", "dash"]), "-5\n");
}

#[test]
fn nx_xx_del_and_ttl() {
    let dir = crate::common::store_dir();
    let d = dir.path();
    assert_eq!(code(d, &["cache", "set", "k", "v", "--xx"]).0, Some(1));
    assert_eq!(code(d, &["cache", "get", "k"]).0, Some(1));
    assert_eq!(
        ok(d, &["cache", "set", "k", "v1", "--nx", "--ttl", "100"]),
        "OK\n"
    );
    let (c, out) = code(d, &["cache", "set", "k", "v2", "--nx"]);
    assert_eq!((c, out.as_str()), (Some(1), ""));
    assert_eq!(ok(d, &["cache", "get", "k"]), "v1\n");
    let ttl: i64 = ok(d, &["cache", "ttl", "k"]).trim().parse().unwrap();
    assert!((99..=100).contains(&ttl), "{ttl}");
    assert_eq!(ok(d, &["cache", "set", "k", "v3", "--xx"]), "OK\n");
    assert_eq!(ok(d, &["cache", "ttl", "k"]), "-1\n");
    assert_eq!(
        code(d, &["cache", "ttl", "missing"]),
        (Some(1), String::new())
    );
    assert_eq!(ok(d, &["cache", "del", "k"]), "1\n");
    assert_eq!(ok(d, &["cache", "del", "k"]), "0\n");
    assert_eq!(code(d, &["cache", "get", "k"]).0, Some(1));
}

#[test]
fn incr_works_on_decimal_values_and_refuses_the_rest() {
    let dir = crate::common::store_dir();
    let d = dir.path();
    assert_eq!(ok(d, &["cache", "incr", "hits"]), "1\n");
    assert_eq!(ok(d, &["cache", "incr", "hits", "41"]), "42\n");
    assert_eq!(ok(d, &["cache", "incr", "hits", "-50"]), "-8\n");
    ok(d, &["cache", "set", "n", "9"]);
    assert_eq!(ok(d, &["cache", "incr", "n"]), "10\n");
    ok(d, &["cache", "set", "word", "dhanyavaad"]);
    let out = bvstore(d, &["cache", "incr", "word"]);
    assert_eq!(out.status.code(), Some(5));
    assert!(
        stderr(&out).contains("not a decimal integer"),
        "{}",
        stderr(&out)
    );
    assert_eq!(ok(d, &["cache", "get", "word"]), "dhanyavaad\n");
    ok(d, &["cache", "set", "big", &i64::MAX.to_string()]);
    let out = bvstore(d, &["cache", "incr", "big"]);
    assert_eq!(out.status.code(), Some(5));
    assert!(stderr(&out).contains("overflows"), "{}", stderr(&out));
    assert_eq!(ok(d, &["cache", "get", "big"]), format!("{}\n", i64::MAX));
}

#[test]
fn tags_clear_and_stats() {
    let dir = crate::common::store_dir();
    let d = dir.path();
    ok(d, &["cache", "set", "profile:1", "p", "--tag", "user:1"]);
    ok(
        d,
        &[
            "cache",
            "set",
            "session:1",
            "s",
            "--tag",
            "user:1",
            "--tag",
            "x",
        ],
    );
    ok(d, &["cache", "set", "profile:2", "q", "--tag", "user:2"]);
    assert_eq!(ok(d, &["cache", "invalidate-tag", "user:1"]), "2\n");
    assert_eq!(code(d, &["cache", "get", "profile:1"]).0, Some(1));
    assert_eq!(ok(d, &["cache", "get", "profile:2"]), "q\n");
    let stats: serde_json::Value =
        serde_json::from_str(&ok(d, &["--json", "cache", "stats"])).unwrap();
    assert_eq!(stats["tier2"]["state"], "healthy");
    // profile:1 was reclaimed when the `get` above met it; session:1 waits
    // for the sweep.
    assert_eq!(stats["tier2"]["entries"], 2);
    assert!(ok(d, &["cache", "stats"]).contains("hit ratio"));
    assert_eq!(ok(d, &["cache", "clear"]), "OK\n");
    assert_eq!(code(d, &["cache", "get", "profile:2"]).0, Some(1));
}

#[tokio::test]
async fn an_expired_key_is_missing_for_the_cli() {
    let dir = crate::common::store_dir();
    // Written by a process whose clock is an hour behind: the entry expired
    // 59 minutes ago by the system clock the CLI reads.
    let past = ManualClock::new(Timestamp::now().minus(Duration::from_secs(3600)));
    let store = open_clocked(dir.path(), &past, CacheConfig::default()).await;
    let ttl = SetOptions::new().ttl(Duration::from_secs(60));
    store
        .cache()
        .set_bytes_with("old", b"v", &ttl)
        .await
        .unwrap();
    store.cache().set_bytes("live", b"v").await.unwrap();
    store.close().await;
    drop(store);
    assert_eq!(code(dir.path(), &["cache", "get", "old"]).0, Some(1));
    assert_eq!(code(dir.path(), &["cache", "ttl", "old"]).0, Some(1));
    assert_eq!(ok(dir.path(), &["cache", "get", "live"]), "v\n");
}

#[test]
fn demo_reports_its_cache_phase() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    crate::common::init(&data);
    let out = bvstore(
        &data,
        &[
            "--json",
            "demo",
            "--users",
            "4",
            "--sessions",
            "1",
            "--wav-clips",
            "8",
            "--opus-clips",
            "4",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let cache = &report["cache"];
    // 8 rounds of 2 lookups per user; only the first round loads.
    assert_eq!(cache["loads_from_db"], 8);
    assert_eq!(cache["invalidated_entries"], 2);
    assert_eq!(cache["reloads_after_invalidation"], 2);
    assert!(cache["hit_ratio"].as_f64().unwrap() > 0.8, "{cache}");
    assert_eq!(cache["tier2_state"], "healthy");
}
