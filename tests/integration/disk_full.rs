//! The file system refuses a write in the middle of a blob. A real full disk
//! needs a small file system to fill; `ulimit -f` (RLIMIT_FSIZE, with
//! SIGXFSZ ignored) makes the same `write` fail with EFBIG, through the same
//! code path as ENOSPC. The put must fail with a clear error naming the
//! file, leave nothing in `tmp/` and no record, and the store must go on
//! working: earlier files read back and verify, and the next put succeeds.
#![cfg(unix)]

use std::path::Path;
use std::process::Command;

use crate::blobs::random_bytes;
use crate::common::{bvstore, stderr, stdout};

/// Runs `bvstore` with its files limited to `limit_kib` KiB.
pub fn bvstore_limited(dir: &Path, limit_kib: u64, args: &[&str]) -> std::process::Output {
    Command::new("sh")
        .arg("-c")
        // dash counts `ulimit -f` in 512-byte blocks, bash in KiB: ask for
        // twice as many blocks and accept either.
        .arg(format!(
            "trap '' XFSZ; ulimit -f {}; exec \"$0\" \"$@\"",
            limit_kib * 2
        ))
        .arg(env!("CARGO_BIN_EXE_bvstore"))
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .env_remove("BV_DATA_DIR")
        .env_remove("BV_CONFIG")
        .output()
        .expect("run bvstore under sh")
}

fn args(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[test]
fn a_write_refused_mid_blob_fails_cleanly_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let small = dir.path().join("small.ogg");
    let big = dir.path().join("big.ogg");
    std::fs::write(&small, random_bytes(300_000, 1)).unwrap();
    std::fs::write(&big, random_bytes(24 << 20, 2)).unwrap();
    crate::common::init(&data);
    let ok = |o: &std::process::Output| assert!(o.status.success(), "{}", stderr(o));
    ok(&bvstore(
        &data,
        &[
            "user",
            "add",
            "--consent",
            "audio-storage",
            "--username",
            "filler",
            "--email",
            "f@example.in",
        ],
    ));
    let put = |path: &Path| {
        vec![
            "file".to_string(),
            "put".into(),
            path.display().to_string(),
            "--user".into(),
            "filler".into(),
            "--content-type".into(),
            "audio/ogg".into(),
        ]
    };
    let first = bvstore(&data, &args(&[vec!["--json".into()], put(&small)].concat()));
    ok(&first);
    let first: serde_json::Value = serde_json::from_str(&stdout(&first)).unwrap();
    let first_id = first["id"].as_str().unwrap().to_string();

    // 8 MiB (or 16 MiB, see above) is room for the store, not for the blob.
    let refused = bvstore_limited(&data, 8 << 10, &args(&put(&big)));
    assert_eq!(refused.status.code(), Some(1), "{}", stderr(&refused));
    let err = stderr(&refused);
    assert!(
        err.contains("writing") && err.contains(".part") && err.contains("too large"),
        "{err}"
    );
    assert_eq!(std::fs::read_dir(data.join("tmp")).unwrap().count(), 0);

    // Only the first file exists, and it is intact.
    let ls = bvstore(&data, &["--json", "file", "ls", "--user", "filler"]);
    ok(&ls);
    let ls: serde_json::Value = serde_json::from_str(&stdout(&ls)).unwrap();
    let items = ls["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{ls}");
    assert_eq!(items[0]["id"], first_id.as_str());
    ok(&bvstore(&data, &["file", "verify", &first_id]));
    let out = dir.path().join("back.ogg");
    ok(&bvstore(
        &data,
        &[
            "file",
            "get",
            &first_id,
            "--user",
            "filler",
            "--out",
            &out.display().to_string(),
        ],
    ));
    assert_eq!(std::fs::read(&out).unwrap(), random_bytes(300_000, 1));

    // Without the limit, the same put goes through.
    ok(&bvstore(&data, &args(&put(&big))));
}
