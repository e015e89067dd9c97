//! `blobs/` on another file system than `tmp/` (an operator mounted a
//! larger card there): a rename from `tmp/` into `blobs/` would fail with
//! `EXDEV`, so the store stages new blobs in `blobs/staging/` and every put
//! still ends in one rename. The mount is a small tmpfs, so the same test
//! also fills a real file system: a put that meets `ENOSPC` fails clearly
//! and leaves nothing behind.
#![cfg(target_os = "linux")]

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use bharatvoice_store::{
    Actor, Config, ConsentKind, Error, ListFilter, ListOptions, NewUser, PutOptions, QuotaConfig,
    QuotaLimit, Store,
};

use crate::blobs::random_bytes;
use crate::common::config;

/// A file system of its own at `at`, removed on drop: a tmpfs of
/// `mib` MiB when this process may mount one (root), else a directory in
/// `/dev/shm` linked there when that is another file system.
struct OtherFs {
    at: PathBuf,
    mounted: bool,
    shm: Option<PathBuf>,
}

impl OtherFs {
    fn at(at: &Path, mib: u32) -> OtherFs {
        std::fs::create_dir_all(at).unwrap();
        let mounted = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={mib}m,mode=0700"),
                "tmpfs",
            ])
            .arg(at)
            .status()
            .is_ok_and(|s| s.success());
        if mounted {
            return OtherFs {
                at: at.to_owned(),
                mounted,
                shm: None,
            };
        }
        let shm = PathBuf::from(format!("/dev/shm/bv-other-fs-{}", std::process::id()));
        std::fs::create_dir_all(&shm).unwrap();
        std::fs::remove_dir(at).unwrap();
        std::os::unix::fs::symlink(&shm, at).unwrap();
        let other = OtherFs {
            at: at.to_owned(),
            mounted,
            shm: Some(shm),
        };
        assert_ne!(
            device(at),
            device(at.parent().unwrap()),
            "this test needs root (to mount a tmpfs) or /dev/shm on a file system of its own"
        );
        other
    }
}

impl Drop for OtherFs {
    fn drop(&mut self) {
        if self.mounted {
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(&self.at)
                .status();
        }
        if let Some(shm) = &self.shm {
            let _ = std::fs::remove_dir_all(shm);
        }
    }
}

fn device(p: &Path) -> u64 {
    std::fs::metadata(p).unwrap().dev()
}

/// The files of `dir`, recursively (links not followed).
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let t = e.file_type().unwrap();
        if t.is_dir() {
            out.extend(files_under(&e.path()));
        } else {
            out.push(e.path());
        }
    }
    out
}

/// A store on `data` without the free-space floor (64 MiB by default,
/// more than the 4 MiB file system holds): the test fills it for real.
async fn open(data: &Path) -> Store {
    Store::open(config(data).quota(QuotaConfig::default().min_free_bytes(0)))
        .await
        .expect("open")
}

#[tokio::test]
async fn blobs_on_another_file_system_are_staged_there_and_a_full_one_fails_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let other = OtherFs::at(&data.join("blobs"), 4);

    // The free-space floor is measured on the blobs' file system, not on
    // the one `tmp/` is on (which has gigabytes free).
    let floored = Store::open(config(&data)).await.expect("open");
    let user = floored
        .users()
        .create(NewUser::new("asha", "asha@example.in").consent(ConsentKind::AudioStorage))
        .await
        .unwrap();
    let me = Actor::User(user.id);
    let refused = floored
        .files()
        .put_bytes(me, user.id, b"a clip", PutOptions::default())
        .await
        .expect_err("under the 64 MiB floor");
    assert!(
        matches!(
            refused,
            Error::QuotaExceeded {
                which: QuotaLimit::FreeSpace,
                ..
            }
        ),
        "{refused:?}"
    );
    floored.close().await;
    drop(floored);

    let store = open(&data).await;
    let tmp = data.join("tmp");
    let staging = data.join("blobs/staging");
    assert_ne!(device(&tmp), device(&other.at), "tmp/ and blobs/ differ");
    assert!(
        staging.is_dir(),
        "new blobs are staged on blobs/' own file system"
    );

    // Puts land, read back, and leave no temporary anywhere.
    let put = |bytes: Vec<u8>| {
        let store = &store;
        async move {
            store
                .files()
                .put_bytes(me, user.id, &bytes, PutOptions::default())
                .await
        }
    };
    let mut files = Vec::new();
    for i in 0..3 {
        let bytes = random_bytes(200_000, i);
        let f = put(bytes.clone()).await.unwrap();
        files.push((f, bytes));
    }
    for (f, bytes) in &files {
        let back = store.files().read(Actor::System, f.id).await.unwrap();
        assert_eq!(&back, bytes);
    }
    assert_eq!(files_under(&tmp), Vec::<PathBuf>::new());
    assert_eq!(files_under(&staging), Vec::<PathBuf>::new());
    let blob_files = files_under(&other.at);
    assert_eq!(blob_files.len(), 3, "{blob_files:?}");

    // A put bigger than what is left of the file system: a clear error,
    // no record, no temporary, and the earlier files intact.
    let big = random_bytes(6 << 20, 9);
    let err = put(big)
        .await
        .expect_err("6 MiB do not fit in a 4 MiB file system");
    let text = err.to_string();
    assert!(
        text.contains("No space left") || text.contains("space"),
        "the error says the disk is full: {text}"
    );
    let listed = store
        .files()
        .list(
            Actor::System,
            user.id,
            ListFilter::default(),
            ListOptions::first(100),
        )
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 3, "no record for the failed put");
    assert_eq!(files_under(&staging), Vec::<PathBuf>::new());
    assert_eq!(files_under(&tmp), Vec::<PathBuf>::new());
    crate::common::assert_verifies_deep(&store, "after the full disk").await;
    let small = random_bytes(50_000, 10);
    let f = put(small.clone()).await.unwrap();
    assert_eq!(
        store.files().read(Actor::System, f.id).await.unwrap(),
        small
    );
    store.close().await;
    drop(store);

    // A temporary a crash left in staging is removed at the next open;
    // anything else there is left alone.
    let left = staging.join(format!("{}.part", "ab".repeat(16)));
    let foreign = staging.join("not-ours");
    std::fs::write(&left, b"half a blob").unwrap();
    std::fs::write(&foreign, b"someone else's").unwrap();
    let store = open(&data).await;
    assert!(
        !left.exists(),
        "the store's own left-over temporary is gone"
    );
    assert!(foreign.exists(), "what the store did not make stays");
    for (f, bytes) in &files {
        assert_eq!(
            &store.files().read(Actor::System, f.id).await.unwrap(),
            bytes
        );
    }
    store.close().await;
    drop(other);
}

/// The default layout keeps staging in `tmp/`: no `blobs/staging/`.
#[tokio::test]
async fn one_file_system_stages_in_tmp() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(Config::new(dir.path()).password_cost(8, 1))
        .await
        .unwrap();
    assert!(dir.path().join("tmp").is_dir());
    assert!(!dir.path().join("blobs/staging").exists());
    store.close().await;
}
