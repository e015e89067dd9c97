//! Acknowledged writes survive the process being killed.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use bharatvoice_store::{Store, UserId};

use crate::common::config;

fn kill_after_acks(dir: &std::path::Path, acks: usize) -> Vec<UserId> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_bvstore"))
        .arg("--data-dir")
        .arg(dir)
        .args(["debug", "ack-writes", "--callers", "16"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start bvstore");
    let out = child.stdout.take().expect("stdout");
    let mut ids = Vec::new();
    for line in BufReader::new(out).lines() {
        let line = line.expect("read ack");
        let id = line
            .strip_prefix("ack ")
            .expect("ack line")
            .parse()
            .expect("an id");
        ids.push(id);
        if ids.len() == acks {
            break;
        }
    }
    child.kill().expect("SIGKILL bvstore");
    child.wait().expect("reap bvstore");
    ids
}

#[tokio::test]
async fn acknowledged_creates_survive_sigkill() {
    let dir = crate::common::store_dir();
    for round in 0..2 {
        let acked = kill_after_acks(dir.path(), 200);
        assert_eq!(acked.len(), 200, "round {round}");
        let store = Store::open(config(dir.path()))
            .await
            .expect("reopen after kill");
        for id in &acked {
            store
                .users()
                .get(*id)
                .unwrap_or_else(|e| panic!("acknowledged user {id} lost: {e}"));
        }
    }
}

/// Kills `bvstore file put` part-way through a large file, several times at
/// different moments: afterwards `tmp/` is emptied at open and every file
/// record that exists reads back completely.
#[tokio::test]
async fn a_put_killed_midway_leaves_no_half_blob_behind() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    crate::common::init(&data_dir);
    let out = crate::common::bvstore(
        &data_dir,
        &[
            "--json",
            "user",
            "add",
            "--consent",
            "audio-storage",
            "--username",
            "crashy",
            "--email",
            "crashy@example.in",
        ],
    );
    assert!(out.status.success());
    let input = dir.path().join("big.bin");
    std::fs::write(&input, crate::blobs::random_bytes(24 << 20, 9)).unwrap();
    for delay_ms in [50u64, 150, 400] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_bvstore"))
            .arg("--data-dir")
            .arg(&data_dir)
            .args(["file", "put", input.to_str().unwrap(), "--user", "crashy"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        let _ = child.kill();
        child.wait().unwrap();
        let store = Store::open(config(&data_dir))
            .await
            .expect("reopen after kill");
        assert!(
            crate::blobs::walk(&data_dir.join("tmp")).is_empty(),
            "tmp/ emptied at open"
        );
        let user = store.users().get_by_username("crashy").unwrap();
        let me = bharatvoice_store::Actor::User(user.id);
        let page = store
            .files()
            .list(
                me,
                user.id,
                Default::default(),
                bharatvoice_store::ListOptions::first(100),
            )
            .await
            .unwrap();
        for f in page.items {
            let back = store
                .files()
                .read(me, f.id)
                .await
                .expect("a committed record reads back");
            assert_eq!(back.len(), 24 << 20);
        }
    }
}
