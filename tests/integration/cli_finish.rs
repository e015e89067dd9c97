//! The finishing touches of `bvstore`, run as the built binary: shell
//! completions, `BV_DATA_DIR` and the short flags, `--quiet` and `-v`,
//! the cache's keyspace commands, `file put -`, restores by name and the
//! operations that change nothing and say so.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use crate::blob_cli::{add_user, json};
use crate::common::{bvstore, bvstore_command, stderr, stdout};

/// The built `bvstore` with these arguments only (no `--data-dir`), no
/// `BV_*` or `RUST_LOG` from the test's environment, and `envs`.
fn bare(args: &[&str], envs: &[(&str, &Path)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bvstore"));
    cmd.args(args)
        .env_remove("BV_DATA_DIR")
        .env_remove("BV_CONFIG")
        .env_remove("RUST_LOG")
        .env("BV_PASSWORD_MEMORY_KIB", "8")
        .env("BV_PASSWORD_ITERATIONS", "1");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.output().expect("run bvstore")
}

/// `bvstore --data-dir d ARGS` without `RUST_LOG`.
fn quiet_env(d: &Path, args: &[&str]) -> Output {
    bvstore_command(d, args)
        .env_remove("RUST_LOG")
        .output()
        .expect("run bvstore")
}

/// `bvstore --data-dir d ARGS` with `input` on stdin.
fn piped(d: &Path, args: &[&str], input: &[u8]) -> Output {
    use std::io::Write;
    let mut child = bvstore_command(d, args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run bvstore");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(input).expect("write stdin");
    drop(stdin);
    child.wait_with_output().expect("bvstore output")
}

fn code(o: &Output) -> Option<i32> {
    o.status.code()
}

#[test]
fn completions_cover_every_shell_without_a_store() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("none");
    for shell in ["bash", "zsh", "fish"] {
        let o = bvstore(&d, &["completions", shell]);
        assert!(o.status.success(), "{shell}: {}", stderr(&o));
        let script = stdout(&o);
        for word in ["bvstore", "rotate-user", "invalidate-tag", "--data-dir"] {
            assert!(script.contains(word), "{shell} script lacks {word}");
        }
    }
    let doc = json(&bvstore(&d, &["--json", "completions", "zsh"]));
    assert_eq!(doc["shell"], "zsh");
    assert!(doc["script"].as_str().unwrap().contains("#compdef bvstore"));
    assert_eq!(code(&bvstore(&d, &["completions", "tcsh"])), Some(2));
    assert!(!d.exists(), "completions need no store and make none");
}

#[test]
fn a_command_line_that_does_not_parse_is_a_json_error_under_json() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("none");
    // Text: clap's own message, exit 2.
    let o = bvstore(&d, &["completions", "tcsh"]);
    assert_eq!(code(&o), Some(2));
    assert!(stderr(&o).contains("tcsh"), "{}", stderr(&o));
    // With --json, anywhere on the line: one JSON object, kind `usage`.
    for args in [
        &["--json", "completions", "tcsh"][..],
        &["user", "add", "--json"][..],
        &["--json", "no-such-command"][..],
    ] {
        let o = bvstore(&d, args);
        assert_eq!(code(&o), Some(2), "{args:?}");
        let err: serde_json::Value = serde_json::from_str(stderr(&o).trim())
            .unwrap_or_else(|e| panic!("{args:?}: {e}: {}", stderr(&o)));
        assert_eq!(err["kind"], "usage", "{err}");
        assert_eq!(err["code"], 2, "{err}");
        assert!(!err["error"].as_str().unwrap().is_empty(), "{err}");
    }
    // Help is still help.
    let help = bvstore(&d, &["--json", "--help"]);
    assert_eq!(code(&help), Some(0));
    assert!(stdout(&help).contains("Usage"), "{}", stdout(&help));
}

#[test]
fn data_dir_comes_from_bv_data_dir_and_short_flags_work() {
    let dir = tempfile::tempdir().unwrap();
    let (env_dir, flag_dir) = (dir.path().join("env"), dir.path().join("flag"));
    let init = bare(&["-j", "init"], &[("BV_DATA_DIR", &env_dir)]);
    assert!(init.status.success(), "{}", stderr(&init));
    let doc: serde_json::Value = serde_json::from_str(&stdout(&init)).unwrap();
    assert_eq!(doc["data_dir"], env_dir.to_str().unwrap());
    let env = [("BV_DATA_DIR", env_dir.as_path())];
    for name in ["asha", "bela"] {
        let email = format!("{name}@example.in");
        let add = bare(
            &["user", "add", "--username", name, "--email", &email],
            &env,
        );
        assert!(add.status.success(), "{}", stderr(&add));
    }
    let page: serde_json::Value =
        serde_json::from_str(&stdout(&bare(&["-j", "user", "list", "-n", "1"], &env))).unwrap();
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    assert!(page["next"].is_string(), "{page}");
    // The flag wins over the variable.
    let f = flag_dir.to_str().unwrap();
    assert!(bare(&["-d", f, "init"], &env).status.success());
    let list = bare(&["-d", f, "-j", "user", "list"], &env);
    let empty: serde_json::Value = serde_json::from_str(&stdout(&list)).unwrap();
    assert_eq!(empty["items"].as_array().unwrap().len(), 0);
    // An empty variable means the default, as the library reads it.
    let blank = bare(
        &["-d", f, "user", "list"],
        &[("BV_DATA_DIR", Path::new(""))],
    );
    assert!(blank.status.success(), "{}", stderr(&blank));
    let help = stdout(&bare(&["--help"], &[]));
    assert!(help.contains("BV_DATA_DIR") && help.contains("-d, --data-dir"));
    assert!(help.contains("Exit codes:") && help.contains("11  no store"));
}

#[test]
fn quiet_drops_hints_and_notes_and_verbose_raises_the_log_level() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("data");
    let made = quiet_env(&d, &["-v", "init"]);
    assert!(
        stderr(&made).contains("created a new store"),
        "{}",
        stderr(&made)
    );
    add_user(&d, "asha");
    add_user(&d, "bela");
    let rm = quiet_env(&d, &["user", "rm", "asha"]);
    assert!(stdout(&rm).contains("restore with: bvstore user restore"));
    let rm = quiet_env(&d, &["-q", "user", "rm", "bela"]);
    assert!(
        stdout(&rm).starts_with("deleted user bela"),
        "{}",
        stdout(&rm)
    );
    assert!(!stdout(&rm).contains("restore with"), "{}", stdout(&rm));

    let miss = quiet_env(&d, &["cache", "get", "nope"]);
    assert!(stderr(&miss).contains("no such key"), "{}", stderr(&miss));
    let miss = quiet_env(&d, &["-q", "cache", "get", "nope"]);
    assert_eq!(
        (code(&miss), stdout(&miss), stderr(&miss)),
        (Some(1), "".into(), "".into())
    );
    let err = quiet_env(&d, &["-q", "user", "show", "nobody"]);
    assert_eq!(code(&err), Some(3));
    assert!(
        stderr(&err).contains("error: user nobody not found"),
        "{}",
        stderr(&err)
    );
    assert_eq!(code(&quiet_env(&d, &["-q", "-v", "health"])), Some(2));

    let plain = quiet_env(&d, &["cache", "get", "nope"]);
    assert!(!stderr(&plain).contains("INFO") && !stderr(&plain).contains("DEBUG"));
    let info = quiet_env(&d, &["-v", "cache", "get", "nope"]);
    assert!(!stderr(&info).contains("DEBUG"), "{}", stderr(&info));
    let debug = quiet_env(&d, &["-vv", "cache", "get", "nope"]);
    assert!(stderr(&debug).contains("DEBUG"), "{}", stderr(&debug));
    let overridden = bvstore_command(&d, &["-vv", "cache", "get", "nope"])
        .env("RUST_LOG", "error")
        .output()
        .unwrap();
    assert!(!stderr(&overridden).contains("DEBUG"), "RUST_LOG wins");
}

#[test]
fn cache_exists_keys_expire_persist_and_mget() {
    let dir = crate::common::store_dir();
    let d = dir.path();
    let ok = |args: &[&str]| {
        let o = bvstore(d, args);
        assert!(o.status.success(), "{args:?}: {}", stderr(&o));
        stdout(&o)
    };
    for (k, v) in [
        ("user:1", "a"),
        ("user:2", "b"),
        ("user:10", "c"),
        ("session:1", "s"),
    ] {
        assert_eq!(ok(&["cache", "set", k, v]), "OK\n");
    }
    ok(&["cache", "set", "short", "x", "--ttl", "1"]);
    let keys = json(&bvstore(d, &["--json", "cache", "keys", "user:*"]));
    assert_eq!(
        keys["keys"],
        serde_json::json!(["user:1", "user:10", "user:2"])
    );
    assert_eq!(ok(&["cache", "keys", "user:?"]), "user:1\nuser:2\n");
    let none = bvstore(d, &["cache", "keys", "nothing*"]);
    assert_eq!((code(&none), stdout(&none)), (Some(0), String::new()));
    assert!(stderr(&none).contains("no key matches nothing*"));
    assert_eq!(
        stderr(&bvstore(d, &["-q", "cache", "keys", "nothing*"])),
        ""
    );

    assert_eq!(ok(&["cache", "exists", "user:1"]), "1\n");
    let absent = bvstore(d, &["cache", "exists", "nope"]);
    assert_eq!((code(&absent), stdout(&absent)), (Some(1), "0\n".into()));
    let e = json(&bvstore(d, &["--json", "cache", "exists", "user:2"]));
    assert_eq!(e, serde_json::json!({ "key": "user:2", "exists": true }));

    assert_eq!(ok(&["cache", "expire", "user:1", "500"]), "OK\n");
    let ttl = json(&bvstore(d, &["--json", "cache", "ttl", "user:1"]));
    assert!(
        (499..=500).contains(&ttl["ttl_secs"].as_i64().unwrap()),
        "{ttl}"
    );
    let set = json(&bvstore(d, &["--json", "cache", "expire", "user:1", "300"]));
    assert_eq!(set["ttl_secs"], 300);
    assert_eq!(ok(&["cache", "persist", "user:1"]), "OK\n");
    assert_eq!(ok(&["cache", "ttl", "user:1"]), "-1\n");
    let again = json(&bvstore(d, &["--json", "cache", "persist", "user:1"]));
    assert_eq!(
        (again["changed"].clone(), again["ttl_secs"].clone()),
        (false.into(), (-1).into())
    );
    assert!(ok(&["cache", "persist", "user:1"]).contains("has no expiry: nothing changed"));
    for cmd in [
        &["cache", "expire", "nope", "5"][..],
        &["cache", "persist", "nope"][..],
    ] {
        let o = bvstore(d, cmd);
        assert_eq!((code(&o), stdout(&o)), (Some(1), String::new()), "{cmd:?}");
    }
    let missing = bvstore(d, &["--json", "cache", "expire", "nope", "5"]);
    let doc: serde_json::Value = serde_json::from_str(&stdout(&missing)).unwrap();
    assert_eq!(doc, serde_json::json!({ "key": "nope", "value": null }));
    assert_eq!(ok(&["cache", "expire", "session:1", "0"]), "OK\n");
    assert_eq!(
        code(&bvstore(d, &["cache", "exists", "session:1"])),
        Some(1)
    );

    assert_eq!(ok(&["cache", "mget", "user:10", "user:1"]), "c\na\n");
    let some = bvstore(d, &["cache", "mget", "user:1", "nope"]);
    assert_eq!((code(&some), stdout(&some)), (Some(1), "a\n(nil)\n".into()));
    let m = bvstore(d, &["--json", "cache", "mget", "user:2", "nope"]);
    assert_eq!(code(&m), Some(1));
    let m: serde_json::Value = serde_json::from_str(&stdout(&m)).unwrap();
    assert_eq!(
        m,
        serde_json::json!([{ "key": "user:2", "value": "b" }, { "key": "nope", "value": null }])
    );

    std::thread::sleep(std::time::Duration::from_millis(1500));
    let all = json(&bvstore(d, &["--json", "cache", "keys", "*"]));
    assert_eq!(
        all["keys"],
        serde_json::json!(["user:1", "user:10", "user:2"])
    );
}

#[test]
fn file_put_reads_stdin_and_get_returns_the_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("data");
    crate::common::init(&d);
    add_user(&d, "mira");
    let data = crate::common::noise(300_000, 0x9e37_79b9_7f4a_7c15);
    let put = piped(
        &d,
        &[
            "--json", "file", "put", "-", "-u", "mira", "--name", "clip.wav",
        ],
        &data,
    );
    let rec = json(&put);
    assert_eq!(rec["name"], "clip.wav");
    assert_eq!(rec["content_type"], "audio/wav");
    assert_eq!(rec["plain_bytes"], 300_000);
    let id = rec["id"].as_str().unwrap();
    let got = bvstore(&d, &["file", "get", id, "-u", "mira", "-o", "-"]);
    assert!(got.status.success(), "{}", stderr(&got));
    assert!(got.stdout == data, "the bytes read back differ");

    let bare = json(&piped(
        &d,
        &["--json", "file", "put", "-", "-u", "mira"],
        b"{}",
    ));
    assert_eq!(bare["name"], serde_json::Value::Null);
    assert_eq!(bare["content_type"], "application/octet-stream");

    let mixed = bvstore(
        &d,
        &["--json", "file", "get", id, "-u", "mira", "--out", "-"],
    );
    assert_eq!((code(&mixed), stdout(&mixed)), (Some(5), String::new()));
    let err: serde_json::Value = serde_json::from_str(stderr(&mixed).trim()).unwrap();
    assert_eq!(err["kind"], "invalid_input");
    let to = dir.path().join("out.wav");
    json(&bvstore(
        &d,
        &[
            "--json",
            "file",
            "get",
            id,
            "-u",
            "mira",
            "-o",
            to.to_str().unwrap(),
        ],
    ));
    assert!(std::fs::read(&to).unwrap() == data);
}

#[test]
fn restores_by_name_and_no_ops_say_so() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("data");
    crate::common::init(&d);
    add_user(&d, "asha");
    let ok = |args: &[&str]| {
        let o = bvstore(&d, args);
        assert!(o.status.success(), "{args:?}: {}", stderr(&o));
        stdout(&o)
    };
    let rotate = json(&bvstore(&d, &["--json", "keys", "rotate-user", "asha"]));
    assert_eq!(rotate["changed"], false);
    assert!(ok(&["keys", "rotate-user", "asha"]).contains("no keys yet"));

    ok(&["user", "rm", "asha"]);
    assert!(ok(&["user", "restore", "ASHA"]).starts_with("restored user asha"));
    assert!(ok(&["user", "restore", "asha"]).contains("is not deleted: nothing changed"));
    let u = json(&bvstore(&d, &["--json", "user", "restore", "asha"]));
    assert_eq!(
        (u["username"].as_str(), u["status"].as_str()),
        (Some("asha"), Some("active"))
    );
    assert_eq!(code(&bvstore(&d, &["user", "restore", "ghost"])), Some(3));

    let put = |name: &str, body: &[u8]| {
        let r = json(&piped(
            &d,
            &["--json", "file", "put", "-", "-u", "asha", "--name", name],
            body,
        ));
        r["id"].as_str().unwrap().to_string()
    };
    let note = put("note.txt", b"first");
    ok(&["file", "rm", &note, "-u", "asha"]);
    let back = ok(&["file", "restore", "note.txt", "-u", "asha"]);
    assert_eq!(back.trim(), format!("restored file {note}"));
    let again = ok(&["file", "restore", &note, "-u", "asha"]);
    assert_eq!(
        again.trim(),
        format!("file {note} is not deleted: nothing changed")
    );
    let twin = put("note.txt", b"second");
    ok(&["file", "rm", &note, "-u", "asha"]);
    ok(&["file", "rm", &twin, "-u", "asha"]);
    let two = bvstore(&d, &["file", "restore", "note.txt", "-u", "asha"]);
    assert_eq!(code(&two), Some(5));
    assert!(
        stderr(&two).contains(&note) && stderr(&two).contains(&twin),
        "{}",
        stderr(&two)
    );
    let gone = bvstore(&d, &["file", "restore", "other.txt", "-u", "asha"]);
    assert_eq!(code(&gone), Some(3));
    ok(&["file", "restore", &twin, "-u", "asha"]);

    let rotate = json(&bvstore(&d, &["--json", "keys", "rotate-user", "asha"]));
    assert_eq!(
        (rotate["changed"].clone(), rotate["key_version"].clone()),
        (true.into(), 2.into())
    );
    assert!(rotate["blobs_moved"].as_u64().unwrap() >= 1, "{rotate}");
    let tail = json(&bvstore(
        &d,
        &["--json", "audit", "tail", "-n", "1", "-u", "asha"],
    ));
    assert_eq!(tail.as_array().unwrap().len(), 1);
    assert_eq!(
        code(&bvstore(&d, &["audit", "tail", "--limit", "0"])),
        Some(2)
    );
    let export = dir.path().join("asha.tar.zst");
    let r = json(&bvstore(
        &d,
        &[
            "--json",
            "user",
            "export",
            "asha",
            "-o",
            export.to_str().unwrap(),
        ],
    ));
    assert_eq!(r["files"], 1);
}
