//! A data directory this process may not write: reads work (redb opened
//! read-only, the cache in memory only), writes are refused with
//! `ReadOnly` (exit 14) and change nothing.

use std::path::Path;
use std::process::{Command, Output};

use bharatvoice_store::{Config, Error, NewUser, Store};

use crate::common::{stderr, stdout};

const KEY: &str = "8f1e2d3c4b5a69788796a5b4c3d2e1f00112233445566778899aabbccddeeff0";

/// Runs `bvstore` as a user that may read `dir` but not write it: as
/// `nobody` through `setpriv` when the tests run as root (for whom
/// permission bits do not stop writes), else as ourselves.
fn bvstore_reader(dir: &Path, args: &[&str]) -> Output {
    let exe = env!("CARGO_BIN_EXE_bvstore");
    let mut cmd = if is_root() {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", exe]);
        c
    } else {
        Command::new(exe)
    };
    cmd.arg("--data-dir")
        .arg(dir)
        .args(args)
        .env_remove("BV_DATA_DIR")
        .env_remove("BV_CONFIG")
        .env("BV_MASTER_KEY", KEY)
        .output()
        .expect("run bvstore")
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Makes every directory 0555 and every file 0444 (readable, not writable).
fn make_read_only(p: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::symlink_metadata(p).unwrap();
    if meta.is_dir() {
        for e in std::fs::read_dir(p).unwrap() {
            make_read_only(&e.unwrap().path());
        }
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o555)).unwrap();
    } else if meta.is_file() {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o444)).unwrap();
    }
}

#[tokio::test]
async fn reads_work_on_a_read_only_data_directory_and_writes_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("data");
    let key = bharatvoice_store::MasterKey::parse(KEY).unwrap();
    let store = Store::open(Config::new(&d).master_key(key.clone()).password_cost(8, 1))
        .await
        .unwrap();
    let u = store
        .users()
        .create(
            NewUser::new("lata", "lata@example.in")
                .consent(bharatvoice_store::ConsentKind::AudioStorage),
        )
        .await
        .unwrap();
    let me = bharatvoice_store::Actor::User(u.id);
    let f = store
        .files()
        .put_bytes(me, u.id, b"a song", Default::default())
        .await
        .unwrap();
    store.close().await;
    drop(store);
    make_read_only(&d);
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let before = std::fs::read(d.join("store.redb")).unwrap();

    let list = bvstore_reader(&d, &["--json", "user", "list"]);
    assert!(list.status.success(), "{}", stderr(&list));
    assert!(
        stdout(&list).contains("lata@example.in"),
        "{}",
        stdout(&list)
    );
    let show = bvstore_reader(&d, &["user", "show", "lata"]);
    assert!(show.status.success(), "{}", stderr(&show));
    let ls = bvstore_reader(&d, &["--json", "file", "ls", "--user", "lata"]);
    assert!(ls.status.success(), "{}", stderr(&ls));
    assert!(stdout(&ls).contains(&f.id.to_string()), "{}", stdout(&ls));
    let id = f.id.to_string();
    let get = bvstore_reader(&d, &["file", "get", &id, "--user", "lata", "--out", "-"]);
    assert!(get.status.success(), "{}", stderr(&get));
    assert_eq!(get.stdout, b"a song");

    let add = bvstore_reader(
        &d,
        &[
            "user",
            "add",
            "--consent",
            "audio-storage",
            "--username",
            "ravi",
            "--email",
            "ravi@example.in",
        ],
    );
    assert_eq!(add.status.code(), Some(14), "{}", stderr(&add));
    assert!(stderr(&add).contains("read-only"), "{}", stderr(&add));
    assert_eq!(std::fs::read(d.join("store.redb")).unwrap(), before);

    // The library: asked for explicitly, the same holds.
    let store = Store::open(Config::new(&d).master_key(key).read_only(true))
        .await
        .unwrap();
    assert!(store.is_read_only());
    assert_eq!(store.users().get(u.id).unwrap().username, "lata");
    assert_eq!(store.files().read(me, f.id).await.unwrap(), b"a song");
    let e = store
        .users()
        .create(
            NewUser::new("ravi", "ravi@example.in")
                .consent(bharatvoice_store::ConsentKind::AudioStorage),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, Error::ReadOnly { .. }), "{e:?}");
}
