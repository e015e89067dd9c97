//! Every exit code the README documents, one scenario each, through the
//! built `bvstore`.

use std::path::Path;
use std::process::Output;

use crate::blob_cli::add_user as add;
use crate::common::{bvstore, bvstore_stdin, init, stderr, stdout};

fn code(out: &Output) -> Option<i32> {
    out.status.code()
}

fn put(d: &Path, user: &str, path: &Path) -> String {
    let out = bvstore(
        d,
        &[
            "--json",
            "file",
            "put",
            path.to_str().unwrap(),
            "--user",
            user,
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    v["id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn every_documented_exit_code_has_its_cause() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("data");
    init(&d);
    add(&d, "asha");
    let bhanu = add(&d, "bhanu");
    let clip = dir.path().join("clip.wav");
    std::fs::write(&clip, vec![7u8; 50_000]).unwrap();
    let id = put(&d, "asha", &clip);
    let grant = bvstore(
        &d,
        &["file", "grant", &id, "--user", "asha", "--to", "bhanu"],
    );
    assert!(grant.status.success(), "{}", stderr(&grant));

    let mut seen = Vec::new();
    let mut expect = |want: i32, what: &str, out: Output| {
        assert_eq!(code(&out), Some(want), "{what}: {}", stderr(&out));
        if want != 0 {
            assert!(!stderr(&out).is_empty(), "{what}: no message");
        }
        seen.push(want);
    };
    expect(0, "ok", bvstore(&d, &["user", "show", "asha"]));
    expect(
        1,
        "missing cache key",
        bvstore(&d, &["cache", "get", "nothing"]),
    );
    expect(2, "usage", bvstore(&d, &["user", "frobnicate"]));
    expect(3, "not found", bvstore(&d, &["user", "show", "nobody"]));
    expect(
        4,
        "conflict",
        bvstore(
            &d,
            &[
                "user",
                "add",
                "--consent",
                "audio-storage",
                "--username",
                "asha",
                "--email",
                "x@example.in",
            ],
        ),
    );
    expect(
        5,
        "invalid input",
        bvstore_stdin(
            &d,
            &[
                "user",
                "add",
                "--consent",
                "audio-storage",
                "--username",
                "ok_name",
                "--email",
                "not an email",
            ],
            None,
        ),
    );
    {
        let held = bharatvoice_store::Store::open(crate::common::config(&d))
            .await
            .unwrap();
        expect(6, "locked", bvstore(&d, &["user", "list"]));
        drop(held);
    }
    expect(
        10,
        "permission denied",
        bvstore(&d, &["file", "rm", &id, "--user", &bhanu]),
    );
    expect(
        9,
        "wrong master key",
        std::process::Command::new(env!("CARGO_BIN_EXE_bvstore"))
            .arg("--data-dir")
            .arg(&d)
            .args(["user", "list"])
            .env(
                "BV_MASTER_KEY",
                "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
            )
            .output()
            .unwrap(),
    );
    expect(
        11,
        "no store",
        bvstore(&dir.path().join("typo"), &["user", "list"]),
    );
    expect(
        13,
        "cache cannot commit",
        crate::disk_full::bvstore_limited(&d, 4, &["cache", "del", "k"]),
    );
    // 8: a blob damaged on disk fails its integrity check.
    let rec = bvstore(&d, &["--json", "file", "ls", "--user", "asha"]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&rec)).unwrap();
    let blob = v["items"][0]["blob"].as_str().unwrap().to_string();
    let path = d
        .join("blobs")
        .join(&blob[0..2])
        .join(&blob[2..4])
        .join(&blob);
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&path, bytes).unwrap();
    expect(8, "corrupt blob", bvstore(&d, &["file", "verify", &id]));
    // 7: a store from a newer version.
    {
        let db = redb::Database::create(d.join("store.redb")).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(redb::TableDefinition::<&str, &[u8]>::new("meta"))
            .unwrap()
            .insert("schema_version", 99u32.to_le_bytes().as_slice())
            .unwrap();
        txn.commit().unwrap();
    }
    expect(7, "newer version", bvstore(&d, &["user", "list"]));
    // 12: store.redb gone beside the rest of the store.
    std::fs::remove_file(d.join("store.redb")).unwrap();
    expect(12, "incomplete store", bvstore(&d, &["user", "list"]));
    seen.sort_unstable();
    assert_eq!(seen, (0..=13).collect::<Vec<_>>(), "14 is read_only's test");
}
