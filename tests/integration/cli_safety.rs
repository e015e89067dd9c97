//! Data safety of the CLI: a failed `file get --out` leaves the target as
//! it was, a refused `user add` creates nothing, settings out of range and
//! bad master keys fail clearly, and text output never prints raw control
//! characters or Rust debug names.

use std::path::{Path, PathBuf};
use std::process::Output;

use crate::blob_cli::{add_user, json};
use crate::common::{bvstore, bvstore_stdin, stderr, stdout};

fn init(d: &Path) {
    let o = bvstore(d, &["init"]);
    assert!(o.status.success(), "init: {}", stderr(&o));
}

/// Runs `bvstore` with extra environment variables.
fn bvstore_env(dir: &Path, env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_bvstore"));
    cmd.arg("--data-dir").arg(dir).args(args);
    cmd.env_remove("BV_DATA_DIR")
        .env_remove("BV_CONFIG")
        .env_remove("BV_MASTER_KEY")
        .env_remove("BV_MASTER_KEY_FILE")
        .env("BV_PASSWORD_MEMORY_KIB", "8")
        .env("BV_PASSWORD_ITERATIONS", "1");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.stdin(std::process::Stdio::null());
    cmd.output().expect("run bvstore")
}

// ---- file get --out ----------------------------------------------------

/// `bvstore --json file put PATH --user USER`: the record.
fn put(d: &Path, path: &Path, user: &str) -> serde_json::Value {
    let path = path.to_str().unwrap();
    json(&bvstore(
        d,
        &["--json", "file", "put", path, "--user", user],
    ))
}

/// A store with users `mira` (owning one 300,000-byte file) and `nikhil`,
/// and a pre-existing output file. Returns (tempdir, data dir, file id,
/// the stored bytes, the output path).
fn get_fixture() -> (tempfile::TempDir, PathBuf, String, Vec<u8>, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("data");
    init(&d);
    add_user(&d, "mira");
    add_user(&d, "nikhil");
    let input = dir.path().join("clip.wav");
    let data = crate::blobs::speech_pcm(300_000, 5);
    std::fs::write(&input, &data).unwrap();
    let rec = put(&d, &input, "mira");
    let id = rec["id"].as_str().unwrap().to_string();
    let out_dir = dir.path().join("out");
    std::fs::create_dir(&out_dir).unwrap();
    let target = out_dir.join("keep.bin");
    std::fs::write(&target, b"precious bytes that must survive").unwrap();
    (dir, d, id, data, target)
}

/// `target` still holds its old bytes and nothing else sits beside it.
fn assert_untouched(target: &Path, o: &Output, what: &str) {
    assert!(!o.status.success(), "{what}: expected a failure");
    assert_eq!(
        std::fs::read(target).unwrap(),
        b"precious bytes that must survive",
        "{what}: the output file changed ({})",
        stderr(o)
    );
    let names: Vec<String> = std::fs::read_dir(target.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["keep.bin"], "{what}: left-over files");
}

fn get_to(d: &Path, id: &str, user: &str, target: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "file",
        "get",
        id,
        "--user",
        user,
        "--out",
        target.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    bvstore(d, &args)
}

#[test]
fn file_get_out_with_an_unknown_id_leaves_the_target_unchanged() {
    let (_dir, d, _id, _, target) = get_fixture();
    let o = get_to(
        &d,
        "0192f0c0-0000-7000-8000-000000000000",
        "mira",
        &target,
        &[],
    );
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert_untouched(&target, &o, "unknown id");
}

#[test]
fn file_get_out_with_an_out_of_range_range_leaves_the_target_unchanged() {
    let (_dir, d, id, _, target) = get_fixture();
    let o = get_to(&d, &id, "mira", &target, &["--range", "400000:10"]);
    assert_untouched(&target, &o, "range past the end");
}

#[test]
fn file_get_out_refused_to_another_user_leaves_the_target_unchanged() {
    let (_dir, d, id, _, target) = get_fixture();
    let o = get_to(&d, &id, "nikhil", &target, &[]);
    assert_untouched(&target, &o, "another user");
}

#[test]
fn file_get_out_of_a_damaged_blob_leaves_the_target_unchanged() {
    let (_dir, d, id, _, target) = get_fixture();
    // Damage the second chunk so that the first is written out before the
    // failure is seen.
    let blob = crate::blobs::walk(&d.join("blobs")).pop().unwrap();
    let mut bytes = std::fs::read(&blob).unwrap();
    let at = bytes.len() - 100;
    bytes[at] ^= 1;
    std::fs::write(&blob, bytes).unwrap();
    let o = get_to(&d, &id, "mira", &target, &[]);
    assert_eq!(o.status.code(), Some(8), "{}", stderr(&o));
    assert_untouched(&target, &o, "damaged blob");
}

#[test]
fn file_get_out_replaces_the_target_on_success() {
    let (_dir, d, id, data, target) = get_fixture();
    let o = get_to(&d, &id, "mira", &target, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(std::fs::read(&target).unwrap(), data);
    let o = get_to(&d, &id, "mira", &target, &["--range", "10:5"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(std::fs::read(&target).unwrap(), &data[10..15]);
    let entries = std::fs::read_dir(target.parent().unwrap()).unwrap().count();
    assert_eq!(entries, 1, "no temporary file is left");
}

#[test]
fn file_get_out_refuses_the_stores_own_files() {
    let (_dir, d, id, _data, _target) = get_fixture();
    let key = std::fs::read(d.join("master.key")).unwrap();
    for name in ["store.redb", "master.key", "cache.redb", "blobs/new-file"] {
        let dest = d.join(name);
        let o = get_to(&d, &id, "mira", &dest, &[]);
        assert_eq!(o.status.code(), Some(5), "{name}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("inside the data directory"),
            "{}",
            stderr(&o)
        );
    }
    // (store.redb and cache.redb change with every open; the key does not.)
    assert!(std::fs::read(d.join("master.key")).unwrap() == key);
    assert!(!d.join("blobs/new-file").exists());
    let o = bvstore(&d, &["user", "show", "mira"]);
    assert!(o.status.success(), "the store still opens: {}", stderr(&o));
}

// ---- user add --password-stdin -----------------------------------------

#[test]
fn user_add_with_an_invalid_password_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("data");
    init(&d);
    let args = [
        "user",
        "add",
        "--consent",
        "audio-storage",
        "--username",
        "asha",
        "--email",
        "asha@example.in",
        "--password-stdin",
    ];
    let short = bvstore_stdin(&d, &args, Some("short\n"));
    assert_eq!(short.status.code(), Some(5), "{}", stderr(&short));
    assert!(stderr(&short).contains("password"), "{}", stderr(&short));
    let list = json(&bvstore(&d, &["--json", "user", "list"]));
    assert_eq!(list["items"].as_array().unwrap().len(), 0, "{list}");
    let ok = bvstore_stdin(&d, &args, Some("long enough secret\n"));
    assert!(ok.status.success(), "{}", stderr(&ok));
    let shown = json(&bvstore(&d, &["--json", "user", "show", "asha"]));
    assert_eq!(shown["has_password"], true);
}

// ---- settings out of range and long echoes -----------------------------

#[test]
fn huge_max_batch_from_the_environment_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("data");
    init(&d);
    for v in ["18446744073709551615", "100000000000"] {
        let o = bvstore_env(&d, &[("BV_MAX_BATCH", v)], &["user", "list"]);
        let code = o.status.code();
        assert!(
            code.is_some() && code != Some(101) && code != Some(134),
            "BV_MAX_BATCH={v}: {:?} {}",
            o.status,
            stderr(&o)
        );
        assert!(!o.status.success(), "BV_MAX_BATCH={v} was accepted");
        let err = stderr(&o);
        assert!(
            err.contains("max_batch") && err.contains("65536") && !err.contains("panicked"),
            "BV_MAX_BATCH={v}: {err}"
        );
    }
}

#[test]
fn a_100_kb_username_is_not_echoed_whole() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("data");
    init(&d);
    let name = "a".repeat(100_000);
    let o = bvstore(
        &d,
        &[
            "user",
            "add",
            "--consent",
            "audio-storage",
            "--username",
            &name,
            "--email",
            "a@example.in",
        ],
    );
    assert_eq!(o.status.code(), Some(5), "{}", stderr(&o));
    assert!(o.stderr.len() < 1024, "{} bytes of stderr", o.stderr.len());
    let o = bvstore(&d, &["user", "show", &name]);
    assert!(!o.status.success());
    assert!(o.stderr.len() < 1024, "{} bytes of stderr", o.stderr.len());
}

// ---- master key exit codes ---------------------------------------------

#[test]
fn an_unparsable_bv_master_key_exits_9() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("data");
    init(&d);
    let o = bvstore_env(&d, &[("BV_MASTER_KEY", "not a key")], &["user", "list"]);
    assert_eq!(o.status.code(), Some(9), "{}", stderr(&o));
    assert!(stderr(&o).contains("BV_MASTER_KEY"), "{}", stderr(&o));
    assert!(!stderr(&o).contains("not a key"), "the key is echoed");
}

#[test]
fn an_empty_or_garbage_master_key_file_exits_9() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("data");
    init(&d);
    let key = d.join("master.key");
    for content in [&b""[..], b"garbage, not a key\n"] {
        std::fs::write(&key, content).unwrap();
        let o = bvstore(&d, &["user", "list"]);
        assert_eq!(o.status.code(), Some(9), "{content:?}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("master.key"),
            "names the file: {}",
            stderr(&o)
        );
    }
}

// ---- output: hex digests, CLI spellings, escaped control characters ---

#[test]
fn json_prints_sha256_and_blob_as_hex() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("data");
    init(&d);
    add_user(&d, "mira");
    let input = dir.path().join("clip.wav");
    let data = crate::blobs::speech_pcm(10_000, 5);
    std::fs::write(&input, &data).unwrap();
    let rec = put(&d, &input, "mira");
    let expected: String =
        sha2::Digest::finalize(<sha2::Sha256 as sha2::Digest>::new_with_prefix(&data))
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
    assert_eq!(rec["sha256"], expected.as_str(), "{rec}");
    let blob = rec["blob"].as_str().unwrap_or_else(|| panic!("{rec}"));
    let on_disk = crate::blobs::walk(&d.join("blobs")).pop().unwrap();
    assert_eq!(on_disk.file_name().unwrap().to_str().unwrap(), blob);
    let ls = json(&bvstore(&d, &["--json", "file", "ls", "--user", "mira"]));
    assert_eq!(ls["items"][0]["sha256"], expected.as_str());
}

#[test]
fn text_output_uses_the_cli_spelling_of_names() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("data");
    init(&d);
    add_user(&d, "mira");
    let show = bvstore(&d, &["user", "show", "mira"]);
    assert!(
        stdout(&show).lines().any(|l| l == "status:      active"),
        "{}",
        stdout(&show)
    );
    assert!(!stdout(&show).contains("Active"), "{}", stdout(&show));
    let c = bvstore(&d, &["user", "consent", "mira", "--grant", "audio-storage"]);
    assert!(c.status.success(), "{}", stderr(&c));
    assert!(stdout(&c).contains("audio-storage given"), "{}", stdout(&c));
    assert!(!stdout(&c).contains("AudioStorage"), "{}", stdout(&c));
}

#[test]
fn file_put_refuses_a_file_name_with_control_characters() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("data");
    init(&d);
    add_user(&d, "mira");
    let input = dir.path().join("a\x1b[2Jb.wav");
    std::fs::write(&input, b"RIFF").unwrap();
    let o = bvstore(
        &d,
        &["file", "put", input.to_str().unwrap(), "--user", "mira"],
    );
    assert_eq!(o.status.code(), Some(5), "{}", stderr(&o));
    assert!(!o.stderr.contains(&0x1b), "stderr holds a raw ESC");
}

#[tokio::test]
async fn text_output_escapes_control_characters_of_stored_records() {
    use bharatvoice_store::{Actor, PutOptions, Store};

    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("data");
    init(&d);
    add_user(&d, "mira");
    let store = Store::open(crate::common::config(&d)).await.unwrap();
    let u = store.users().get_by_username("mira").unwrap();
    let f = store
        .files()
        .put_bytes(
            Actor::User(u.id),
            u.id,
            b"hello",
            PutOptions::content_type("audio/wav"),
        )
        .await
        .unwrap();
    store.close().await;
    drop(store);
    // A record written before control characters were refused.
    let mut slipped = f.clone();
    slipped.name = Some("evil\x1b[2J\rname".into());
    slipped.tags = vec!["t\u{202e}ag".into()];
    crate::tamper::put_file_record(&d, &slipped);
    let ls = bvstore(&d, &["file", "ls", "--user", "mira"]);
    assert!(ls.status.success(), "{}", stderr(&ls));
    assert!(!ls.stdout.contains(&0x1b), "raw ESC: {}", stdout(&ls));
    assert!(!ls.stdout.contains(&b'\r'), "raw CR: {}", stdout(&ls));
    assert!(
        stdout(&ls).contains(r"evil\u{1b}[2J\rname"),
        "{}",
        stdout(&ls)
    );
    // JSON keeps the exact text (serde_json escapes it).
    let ls = json(&bvstore(&d, &["--json", "file", "ls", "--user", "mira"]));
    assert_eq!(ls["items"][0]["name"], "evil\x1b[2J\rname");
}
