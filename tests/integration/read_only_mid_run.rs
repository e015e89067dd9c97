//! The data directory turns read-only while the store runs (an operator's
//! mistake, a mount gone read-only): writes that need a new file (a blob's
//! temporary) must fail with a clear error and change nothing, reads and
//! the other writes must go on, nothing acknowledged may be lost, and once
//! the directory is writable again the same open store must take puts: no
//! restart.
//!
//! As root the data directory is bind-mounted on itself and the bind
//! remounted read-only: the store's open files keep working, as they do
//! on a real mount turned read-only under open files, while every new file
//! is refused with `EROFS`. Otherwise its directories lose their write
//! bits (`EACCES`). A `store.redb` whose own writes fail is covered by
//! `store_faults.rs`.
#![cfg(target_os = "linux")]

use std::path::Path;

use bharatvoice_store::{
    Actor, ConsentKind, ListFilter, ListOptions, NewUser, PutOptions, QuotaConfig, Role, Store,
    Turn,
};

use crate::blobs::random_bytes;
use crate::common::config;

async fn open(data: &Path) -> Store {
    Store::open(config(data).quota(QuotaConfig::default().min_free_bytes(0)))
        .await
        .expect("open")
}

/// Sets the write bits of every directory under `dir` (and `dir`) off, or
/// back on.
fn directories_writable(dir: &Path, writable: bool) {
    use std::os::unix::fs::PermissionsExt;
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            directories_writable(&e.path(), writable);
        }
    }
    let mode = if writable { 0o700 } else { 0o500 };
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// The data directory bind-mounted on itself, read-only, until dropped.
struct ReadOnlyBind(std::path::PathBuf);

impl ReadOnlyBind {
    fn over(dir: &Path) -> ReadOnlyBind {
        let run = |args: &[&str]| {
            let ok = std::process::Command::new("mount")
                .args(args)
                .arg(dir)
                .arg(dir)
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "mount {args:?} {}", dir.display());
        };
        run(&["--bind"]);
        let bind = ReadOnlyBind(dir.to_owned());
        let ok = std::process::Command::new("mount")
            .args(["-o", "remount,ro,bind"])
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "mount -o remount,ro,bind {}", dir.display());
        bind
    }
}

impl Drop for ReadOnlyBind {
    fn drop(&mut self) {
        // Writable first (always allowed), then detached lazily: a plain
        // umount is refused while any file is open through the bind.
        let _ = std::process::Command::new("mount")
            .args(["-o", "remount,rw,bind"])
            .arg(&self.0)
            .status();
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

#[tokio::test]
async fn a_data_directory_turning_read_only_mid_run_refuses_puts_and_recovers_without_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let store = open(&data).await;
    let user = store
        .users()
        .create(NewUser::new("asha", "asha@example.in").consent(ConsentKind::AudioStorage))
        .await
        .unwrap();
    let me = Actor::User(user.id);
    let clip = random_bytes(100_000, 1);
    let file = store
        .files()
        .put_bytes(me, user.id, &clip, PutOptions::default())
        .await
        .unwrap();
    let session = store.sessions().create(user.id, None).await.unwrap();
    store
        .sessions()
        .append_turn(session.id, Turn::new(Role::User, "namaste"))
        .await
        .unwrap();

    let bind = if is_root() {
        Some(ReadOnlyBind::over(&data))
    } else {
        directories_writable(&data, false);
        None
    };

    // A put fails, clearly, and leaves no record.
    let put = store
        .files()
        .put_bytes(me, user.id, &random_bytes(50_000, 2), PutOptions::default())
        .await
        .expect_err("no blob can be written");
    let text = put.to_string();
    assert!(
        matches!(put, bharatvoice_store::Error::Io { .. })
            && (text.contains("Read-only file system") || text.contains("Permission denied")),
        "an I/O error saying why: {put:?}"
    );
    let listed = store
        .files()
        .list(me, user.id, ListFilter::default(), ListOptions::first(10))
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 1, "no record for the refused put");
    // Reads, and writes to the files already open, go on.
    assert_eq!(store.users().get(user.id).unwrap().username, "asha");
    assert_eq!(store.files().read(me, file.id).await.unwrap(), clip);
    store
        .sessions()
        .append_turn(session.id, Turn::new(Role::Assistant, "namaskar"))
        .await
        .expect("store.redb is open already");

    match bind {
        Some(b) => drop(b),
        None => directories_writable(&data, true),
    }

    // The same open store takes puts again.
    let bala = store
        .users()
        .create(NewUser::new("bala", "bala@example.in").consent(ConsentKind::AudioStorage))
        .await
        .unwrap();
    let clip2 = random_bytes(50_000, 3);
    let file2 = store
        .files()
        .put_bytes(Actor::User(bala.id), bala.id, &clip2, PutOptions::default())
        .await
        .expect("a put once writable again");
    crate::common::assert_verifies_deep(&store, "writable again").await;
    store.close().await;
    drop(store);

    // And all of it is there after a restart.
    let store = open(&data).await;
    assert_eq!(store.files().read(me, file.id).await.unwrap(), clip);
    assert_eq!(
        store
            .files()
            .read(Actor::User(bala.id), file2.id)
            .await
            .unwrap(),
        clip2
    );
    let turns = store.sessions().get(session.id).unwrap().context;
    assert_eq!(turns.len(), 2, "{turns:?}");
    store.close().await;
}
