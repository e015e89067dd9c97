//! `bvstore watch`: the built binary ingesting a temporary folder, once
//! (`--once`) and until it is signalled.

use std::time::{Duration, Instant};

use crate::common::{bvstore, bvstore_command, stderr, stdout, store_dir};
use crate::ingest::{audio, names_in};

/// A data directory with a store and the user `username` (made through
/// `bvstore`), and an empty folder to ingest from.
fn cli_store_with_user(username: &str) -> (tempfile::TempDir, tempfile::TempDir) {
    let data = store_dir();
    let email = format!("{username}@example.in");
    let args = [
        "user",
        "add",
        "--consent",
        "audio-storage",
        "--username",
        username,
        "--email",
        &email,
    ];
    let added = bvstore(data.path(), &args);
    assert!(added.status.success(), "{}", stderr(&added));
    (data, tempfile::tempdir().unwrap())
}

/// `--json watch --ingest DIR --user USER` and `more`.
fn watch_args<'a>(dir: &'a str, user: &'a str, more: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["--json", "watch", "--ingest", dir, "--user", user];
    args.extend_from_slice(more);
    args
}

#[test]
fn cli_watch_once_stores_the_folder_and_prints_what_it_did() {
    let (data, inbox) = cli_store_with_user("meera");
    let d = data.path();
    let dir = inbox.path().to_str().unwrap();
    std::fs::write(inbox.path().join("a.wav"), audio(1, 3000)).unwrap();
    std::fs::write(inbox.path().join("b.flac"), audio(2, 3000)).unwrap();
    std::fs::write(inbox.path().join(".keep"), b"").unwrap();
    let args = watch_args(dir, "meera", &["--once", "--stable-ms", "50"]);
    let out = bvstore(d, &args);
    assert!(out.status.success(), "{}", stderr(&out));
    let doc: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(doc["stats"]["stored"], 2, "{doc}");
    assert_eq!(doc["stats"]["failed"], 0, "{doc}");
    assert_eq!(names_in(inbox.path()), [".keep"]);
    let ls = bvstore(d, &["--json", "file", "ls", "--user", "meera"]);
    let page: serde_json::Value = serde_json::from_str(&stdout(&ls)).unwrap();
    assert_eq!(page["items"].as_array().map(Vec::len), Some(2), "{page}");

    let text = bvstore(d, &args[1..]);
    assert!(text.status.success(), "{}", stderr(&text));
    assert_eq!(
        stdout(&text).trim(),
        "stored 0 files, 0 already stored, 0 failed"
    );
}

/// `bvstore watch` without `--once` runs until it is told to stop
/// (SIGTERM here, as a service manager sends), then prints its summary.
#[test]
fn cli_watch_runs_until_sigterm() {
    let (data, inbox) = cli_store_with_user("arun");
    let d = data.path();
    let dir = inbox.path().to_str().unwrap();
    let args = watch_args(dir, "arun", &["--stable-ms", "100"]);
    let child = bvstore_command(d, &args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let path = inbox.path().join("live.wav");
    std::fs::write(&path, audio(3, 4000)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while path.exists() {
        assert!(Instant::now() < deadline, "the file was not taken");
        std::thread::sleep(Duration::from_millis(20));
    }
    let pid = libc::pid_t::try_from(child.id()).unwrap();
    // SAFETY: sends a signal to the child this test started.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let doc: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(doc["stats"]["stored"], 1, "{doc}");
}
