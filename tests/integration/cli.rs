//! The `bvstore` binary, run in a temporary data directory.

use crate::common::{bvstore, bvstore_stdin, stderr, stdout};

fn json(out: &std::process::Output) -> serde_json::Value {
    assert!(out.status.success(), "bvstore failed: {}", stderr(out));
    serde_json::from_str(&stdout(out))
        .unwrap_or_else(|e| panic!("not one JSON document ({e}): {}", stdout(out)))
}

#[test]
fn init_user_lifecycle_and_json_output() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let init = json(&bvstore(d, &["--json", "init"]));
    assert_eq!(init["schema_version"], bharatvoice_store::SCHEMA_VERSION);
    assert!(d.join("store.redb").exists());

    let added = json(&bvstore_stdin(
        d,
        &[
            "--json",
            "user",
            "add",
            "--username",
            "Ravi",
            "--email",
            "ravi@example.in",
            "--password-stdin",
        ],
        Some("a long passphrase\n"),
    ));
    assert_eq!(added["username"], "ravi");
    assert_eq!(added["has_password"], true);
    let text = serde_json::to_string(&added).unwrap();
    assert!(
        !text.contains("argon2") && !text.contains("passphrase"),
        "{text}"
    );
    let id = added["id"].as_str().unwrap().to_string();

    let shown = json(&bvstore(d, &["--json", "user", "show", "RAVI"]));
    assert_eq!(shown["id"], id.as_str());
    let by_id = bvstore(d, &["user", "show", &id]);
    assert!(stdout(&by_id).contains("ravi@example.in"));

    let dup = bvstore(
        d,
        &[
            "user",
            "add",
            "--username",
            "ravi",
            "--email",
            "x@example.in",
        ],
    );
    assert_eq!(dup.status.code(), Some(4));
    assert!(
        stderr(&dup).contains("username ravi is already used"),
        "{}",
        stderr(&dup)
    );
    assert!(stdout(&dup).is_empty());

    json(&bvstore(
        d,
        &[
            "--json",
            "user",
            "add",
            "--username",
            "meena",
            "--email",
            "meena@example.in",
        ],
    ));
    let list = json(&bvstore(d, &["--json", "user", "list"]));
    let names: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["meena", "ravi"]);

    let page = json(&bvstore(d, &["--json", "user", "list", "--limit", "1"]));
    let cursor = page["next"].as_str().unwrap().to_string();
    let rest = json(&bvstore(
        d,
        &["--json", "user", "list", "--limit", "1", "--after", &cursor],
    ));
    assert_eq!(rest["items"][0]["username"], "ravi");

    let rm = json(&bvstore(d, &["--json", "user", "rm", &id]));
    assert!(rm["deleted_at"].is_string());
    assert_eq!(bvstore(d, &["user", "show", "ravi"]).status.code(), Some(3));
    json(&bvstore(d, &["--json", "user", "restore", &id]));
    assert!(bvstore(d, &["user", "show", "ravi"]).status.success());
}

#[test]
fn profile_and_consent_commands() {
    let dir = crate::common::store_dir();
    let d = dir.path();
    json(&bvstore(
        d,
        &[
            "--json",
            "user",
            "add",
            "--username",
            "kavya",
            "--email",
            "kavya@example.in",
        ],
    ));
    assert_eq!(
        bvstore(d, &["user", "profile", "kavya"]).status.code(),
        Some(3),
        "no profile yet"
    );
    let p = json(&bvstore(
        d,
        &[
            "--json",
            "user",
            "profile",
            "kavya",
            "--languages",
            "kn-IN,en-in",
            "--retention-days",
            "30",
        ],
    ));
    assert_eq!(p["languages"], serde_json::json!(["kn-IN", "en-IN"]));
    assert_eq!(p["audio_retention_days"], 30);
    let bad = bvstore(d, &["user", "profile", "kavya", "--languages", "kannada!"]);
    assert_eq!(bad.status.code(), Some(5));
    assert!(stderr(&bad).contains("language tag"), "{}", stderr(&bad));
    let c = json(&bvstore(
        d,
        &[
            "--json",
            "user",
            "consent",
            "kavya",
            "--grant",
            "audio-storage",
        ],
    ));
    assert_eq!(c["consents"]["audio-storage"]["granted"], true);
    let c = json(&bvstore(
        d,
        &[
            "--json",
            "user",
            "consent",
            "kavya",
            "--withdraw",
            "audio-storage",
        ],
    ));
    assert_eq!(c["consents"]["audio-storage"]["granted"], false);
    assert_eq!(
        bvstore(d, &["user", "consent", "kavya", "--grant", "marketing"])
            .status
            .code(),
        Some(5)
    );
    let text = bvstore(d, &["user", "profile", "kavya"]);
    assert!(stdout(&text).contains("kn-IN, en-IN"), "{}", stdout(&text));
}

#[test]
fn errors_go_to_stderr_as_json_with_codes() {
    let dir = crate::common::store_dir();
    let out = bvstore(dir.path(), &["--json", "user", "show", "nobody"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(stdout(&out).is_empty());
    let err: serde_json::Value = serde_json::from_str(stderr(&out).trim()).unwrap();
    assert_eq!(err["code"], 3);
    assert_eq!(err["kind"], "not_found");
    assert!(err["error"].as_str().unwrap().contains("not found"));
    let no_backup = bvstore(dir.path(), &["--json", "restore", "/nonexistent-backups"]);
    let err: serde_json::Value = serde_json::from_str(stderr(&no_backup).trim()).unwrap();
    assert_eq!(
        (err["kind"].as_str(), err["code"].as_u64()),
        (Some("not_found"), Some(3))
    );
    // Not an id: looked up as the username of a deleted user, and absent.
    assert_eq!(
        bvstore(dir.path(), &["user", "restore", "not-a-uuid"])
            .status
            .code(),
        Some(3)
    );
    assert_eq!(
        bvstore(dir.path(), &["user", "list", "--after", "not-a-cursor"])
            .status
            .code(),
        Some(5)
    );
    assert_eq!(
        bvstore(dir.path(), &["user", "frobnicate"]).status.code(),
        Some(2)
    );
}

#[test]
fn data_dir_comes_from_the_environment_too() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_bvstore"))
        .args(["--json", "init"])
        .env("BV_DATA_DIR", dir.path().join("from-env"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(dir.path().join("from-env/store.redb").exists());
}

#[test]
fn migrate_status_on_an_empty_directory() {
    let dir = tempfile::tempdir().unwrap();
    let out = bvstore(&dir.path().join("nothing"), &["migrate", "status"]);
    assert_eq!(out.status.code(), Some(11), "{}", stderr(&out));
    assert!(stderr(&out).contains("no store at"), "{}", stderr(&out));
    assert!(
        !dir.path().join("nothing").exists(),
        "status changes nothing"
    );
}

#[test]
fn version_names_the_formats_and_page_limits_outside_1_to_1000_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let v = bvstore(d, &["--version"]);
    assert!(v.status.success());
    assert_eq!(
        stdout(&v).trim(),
        format!(
            "bvstore {} (store schema {}, blob format {})",
            env!("CARGO_PKG_VERSION"),
            bharatvoice_store::SCHEMA_VERSION,
            bharatvoice_store::BLOB_FORMAT_VERSION
        )
    );
    crate::common::init(d);
    for bad in ["0", "1001"] {
        for cmd in [
            &["user", "list", "--limit", bad][..],
            &["file", "ls", "--user", "x", "--limit", bad][..],
        ] {
            let o = bvstore(d, cmd);
            assert_eq!(o.status.code(), Some(2), "{cmd:?}");
            assert!(
                stderr(&o).contains("is not in 1..=1000"),
                "{cmd:?}: {}",
                stderr(&o)
            );
        }
    }
    assert!(
        bvstore(d, &["user", "list", "--limit", "1000"])
            .status
            .success()
    );
}
