//! One holder at a time: a second open is a clear error, never a hang.

use std::time::{Duration, Instant};

use bharatvoice_store::{Error, Store};

use crate::common::{bvstore, config, open_store, stderr};

#[tokio::test]
async fn a_second_open_in_process_is_locked() {
    let t = open_store().await;
    let e = Store::open(config(t.dir.path())).await.unwrap_err();
    assert!(matches!(e, Error::Locked { .. }), "{e:?}");
    assert!(e.to_string().contains("in use"), "{e}");
}

#[tokio::test]
async fn another_process_gets_a_clear_error_quickly() {
    let t = open_store().await;
    let started = Instant::now();
    let out = bvstore(t.dir.path(), &["user", "list"]);
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the CLI hung on a held store"
    );
    assert_eq!(out.status.code(), Some(6), "stderr: {}", stderr(&out));
    assert!(
        stderr(&out).contains("in use by another process"),
        "{}",
        stderr(&out)
    );
    let path = t.path();
    drop(t.store);
    let out = bvstore(&path, &["user", "list"]);
    assert!(out.status.success(), "after release: {}", stderr(&out));
}
