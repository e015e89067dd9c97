//! What an open does to a data directory: it creates a store only where
//! none of its parts exist, never deletes what it did not make, and a
//! failed open leaves nothing running.

use bharatvoice_store::{Config, Error, MasterKey, OpenMode, Store, Tier2State};

use crate::common::{bvstore, config, open_store, stderr, stdout};

#[tokio::test]
async fn opening_leaves_foreign_files_in_tmp_alone() {
    let dir = tempfile::tempdir().unwrap();
    let tmp = dir.path().join("tmp");
    std::fs::create_dir_all(tmp.join("photos")).unwrap();
    std::fs::write(tmp.join("notes.txt"), b"mine").unwrap();
    std::fs::write(tmp.join("photos/a.jpg"), b"jpeg").unwrap();
    let own = tmp.join("0123456789abcdef0123456789abcdef.part");
    std::fs::write(&own, b"left over by a crash").unwrap();
    let store = Store::open(config(dir.path())).await.unwrap();
    drop(store);
    assert_eq!(std::fs::read(tmp.join("notes.txt")).unwrap(), b"mine");
    assert_eq!(std::fs::read(tmp.join("photos/a.jpg")).unwrap(), b"jpeg");
    assert!(!own.exists(), "the store's own left-over is removed");
}

#[cfg(unix)]
#[tokio::test]
async fn a_tmp_that_is_a_symlink_or_a_file_is_refused_and_not_followed() {
    let dir = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let victim = elsewhere
        .path()
        .join("0123456789abcdef0123456789abcdef.part");
    std::fs::write(&victim, b"not the store's").unwrap();
    std::fs::write(elsewhere.path().join("thesis.tex"), b"precious").unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::os::unix::fs::symlink(elsewhere.path(), data.join("tmp")).unwrap();
    let e = Store::open(config(&data)).await.unwrap_err();
    assert!(e.to_string().contains("symbolic link"), "{e}");
    assert_eq!(std::fs::read(&victim).unwrap(), b"not the store's");
    assert_eq!(
        std::fs::read(elsewhere.path().join("thesis.tex")).unwrap(),
        b"precious"
    );

    let data2 = dir.path().join("data2");
    std::fs::create_dir_all(&data2).unwrap();
    std::fs::write(data2.join("tmp"), b"a file").unwrap();
    let e = Store::open(config(&data2)).await.unwrap_err();
    assert!(e.to_string().contains("not a directory"), "{e}");
    assert_eq!(std::fs::read(data2.join("tmp")).unwrap(), b"a file");
}

/// A store with one user and one file, closed.
async fn populated() -> tempfile::TempDir {
    let t = open_store().await;
    let u = t.user("asha").await;
    t.store
        .files()
        .put_bytes(
            bharatvoice_store::Actor::User(u.id),
            u.id,
            b"some audio",
            Default::default(),
        )
        .await
        .unwrap();
    t.store.close().await;
    let crate::common::TestStore { dir, store } = t;
    drop(store);
    dir
}

#[tokio::test]
async fn a_missing_or_empty_store_file_beside_its_blobs_is_refused() {
    for empty in [false, true] {
        let dir = populated().await;
        let db = dir.path().join("store.redb");
        if empty {
            std::fs::write(&db, b"").unwrap();
        } else {
            std::fs::remove_file(&db).unwrap();
        }
        for mode in [OpenMode::OpenOrCreate, OpenMode::MustExist] {
            let e = Store::open(config(dir.path()).open_mode(mode))
                .await
                .unwrap_err();
            match &e {
                Error::StoreIncomplete {
                    missing, present, ..
                } => {
                    let what = if empty { "empty" } else { "missing" };
                    assert!(missing.contains(what), "{e}");
                    for part in ["blobs", "master.key", "cache.redb"] {
                        assert!(present.iter().any(|p| p == part), "{part}: {e}");
                    }
                }
                other => panic!("{other:?}"),
            }
            assert_eq!(db.exists(), empty, "nothing is created");
        }
        // The CLI says so with its own exit code, for reads and writes alike.
        for args in [&["user", "list"][..], &["init"], &["cache", "get", "k"]] {
            let out = bvstore(dir.path(), args);
            assert_eq!(out.status.code(), Some(12), "{args:?}: {}", stderr(&out));
            assert!(stderr(&out).contains("incomplete"), "{}", stderr(&out));
        }
        // Asked for explicitly, a new store is made beside the old files.
        let out = bvstore(dir.path(), &["init", "--force"]);
        assert!(out.status.success(), "{}", stderr(&out));
        let out = bvstore(dir.path(), &["--json", "user", "list"]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(!stdout(&out).contains("asha"));
    }
}

#[tokio::test]
async fn only_init_and_demo_create_a_store() {
    let dir = tempfile::tempdir().unwrap();
    let typo = dir.path().join("bharatvoce-data");
    for args in [
        &["user", "list"][..],
        &[
            "user",
            "add",
            "--consent",
            "audio-storage",
            "--username",
            "ravi",
            "--email",
            "r@example.in",
        ],
        &["file", "ls", "--user", "ravi"],
        &["keys", "status"],
        &["cache", "set", "k", "v"],
        &["migrate", "run"],
    ] {
        let out = bvstore(&typo, args);
        assert_eq!(out.status.code(), Some(11), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains("no store at"), "{}", stderr(&out));
        assert!(!typo.exists(), "{args:?} created the directory");
    }
    let e = Store::open(Config::new(&typo).open_mode(OpenMode::MustExist))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::NoStore { .. }), "{e:?}");
    assert!(!typo.exists());
    let out = bvstore(&typo, &["init"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(typo.join("store.redb").exists());
    let out = bvstore(&typo, &["user", "list"]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[tokio::test]
async fn a_failed_open_stops_what_it_started() {
    let dir = tempfile::tempdir().unwrap();
    let right = MasterKey::generate().unwrap();
    let store = Store::open(config(dir.path()).master_key(right.clone()))
        .await
        .unwrap();
    store.cache().set("k", &"v").await.unwrap();
    store.close().await;
    drop(store);
    let wrong = Store::open(config(dir.path()).master_key(MasterKey::generate().unwrap())).await;
    assert!(matches!(wrong, Err(Error::WrongKey { .. })), "{wrong:?}");
    // In the same process: the cache file must be free again.
    let store = Store::open(config(dir.path()).master_key(right))
        .await
        .unwrap();
    let stats = store.cache().stats();
    assert_eq!(stats.tier2.state, Tier2State::Healthy, "{stats:?}");
    assert_eq!(
        store.cache().get::<String>("k").await.unwrap().as_deref(),
        Some("v")
    );
}

/// A `blobs/` that holds no blob directory (a card mounted there before
/// the first open, with its `lost+found`) is no part of a store: the open
/// creates one. One two-hex-digit directory in it is enough to refuse.
#[tokio::test]
async fn an_empty_blobs_mount_point_is_not_an_incomplete_store() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("blobs/lost+found")).unwrap();
    let store = Store::open(config(dir.path())).await.expect("a new store");
    store.close().await;
    drop(store);

    let other = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(other.path().join("blobs/ab")).unwrap();
    let e = Store::open(config(other.path())).await.unwrap_err();
    assert!(matches!(e, Error::StoreIncomplete { .. }), "{e:?}");
    assert!(!other.path().join("store.redb").exists());
}
