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
    let dir = tempfile::tempdir().unwrap();
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
