//! A delete, clear or tag invalidation that returned is never undone by a
//! crash, with write-behind on: the writer process is SIGKILLed mid-churn.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use bharatvoice_store::{CacheConfig, Tier2State};

use crate::cache::open_with;

/// Runs `bvstore debug cache-churn` until `lines` acknowledgements and then
/// one starting with `kill_after` (the moment a lost write would show),
/// then kills it. Returns the acknowledged events.
fn churn_then_kill(dir: &std::path::Path, lines: usize, kill_after: &str) -> Vec<String> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_bvstore"))
        .arg("--data-dir")
        .arg(dir)
        .args(["debug", "cache-churn", "--tasks", "8"])
        .env("BV_CACHE_WRITE_MODE", "write-behind")
        .env("BV_CACHE_WRITE_DELAY_MS", "5")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start bvstore");
    let out = child.stdout.take().expect("stdout");
    let mut events = Vec::new();
    for line in BufReader::new(out).lines() {
        let line = line.expect("read a line");
        let last = line.starts_with(kill_after);
        events.push(line);
        if events.len() >= lines && last {
            break;
        }
    }
    child.kill().expect("SIGKILL bvstore");
    child.wait().expect("reap bvstore");
    events
}

#[tokio::test]
async fn acknowledged_deletes_clears_and_invalidations_survive_sigkill() {
    let dir = crate::common::store_dir();
    let rounds = ["cleared", "del", "inv", "del", "inv"];
    for (round, kill_after) in rounds.into_iter().enumerate() {
        let lines = if kill_after == "cleared" { 1 } else { 400 };
        let events = churn_then_kill(dir.path(), lines, kill_after);
        assert!(events.len() >= lines, "round {round}");
        assert_eq!(events[0], "cleared");
        let store = open_with(dir.path(), CacheConfig::default()).await;
        let c = store.cache();
        assert_eq!(c.stats().tier2.state, Tier2State::Healthy);
        for i in 0..50 {
            assert!(c.get_bytes(&format!("c{i}")).await.unwrap().is_none());
        }
        let mut last_delete: HashMap<String, u64> = HashMap::new();
        let mut checked_tags = 0;
        for e in &events[1..] {
            let parts: Vec<&str> = e.split(' ').collect();
            match parts.as_slice() {
                ["del", key, r] => {
                    last_delete.insert(key.to_string(), r.parse().unwrap());
                }
                ["inv", t, r] => {
                    checked_tags += 1;
                    for j in 0..5 {
                        let key = format!("t{t}:{r}:{j}");
                        assert!(
                            c.get_bytes(&key).await.unwrap().is_none(),
                            "round {round}: {key} came back after its tag was invalidated"
                        );
                    }
                }
                _ => panic!("unexpected line {e:?}"),
            }
        }
        assert!(kill_after == "cleared" || (checked_tags > 0 && !last_delete.is_empty()));
        for (key, deleted_at) in &last_delete {
            if let Some(v) = c.get_bytes(key).await.unwrap() {
                let written_at: u64 = std::str::from_utf8(&v).unwrap().parse().unwrap();
                assert!(
                    written_at > *deleted_at,
                    "round {round}: {key} = {written_at} came back after its delete at {deleted_at}"
                );
            }
        }
        store.close().await;
    }
}
