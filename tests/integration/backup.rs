//! Backup and restore: a backup taken while writers run restores to one
//! instant of the store; a damaged, missing or altered backup file is
//! refused and named; a second backup copies only what is new; a restore
//! never lands on a directory that holds something.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bharatvoice_store::{
    Actor, AudioFile, BackupOptions, Config, ConsentKind, Error, FileId, LifecycleConfig,
    MasterKey, NewUser, PutOptions, RestoreOptions, Store, User, UserId, VerifyOptions,
};

fn config(dir: &Path, key: &MasterKey) -> Config {
    crate::common::config(dir)
        .master_key(key.clone())
        .lifecycle(LifecycleConfig::default().purge_grace(Duration::ZERO))
}

struct World {
    dir: tempfile::TempDir,
    key: MasterKey,
    store: Store,
}

impl World {
    async fn new() -> World {
        let dir = tempfile::tempdir().unwrap();
        let key = MasterKey::generate().unwrap();
        let store = Store::open(config(&dir.path().join("data"), &key))
            .await
            .unwrap();
        World { dir, key, store }
    }

    fn backups(&self) -> PathBuf {
        self.dir.path().join("backups")
    }

    fn target(&self, name: &str) -> Config {
        config(&self.dir.path().join(name), &self.key)
    }

    async fn user(&self, name: &str) -> User {
        user(&self.store, name).await
    }

    async fn put(&self, u: &User, bytes: &[u8]) -> AudioFile {
        put(&self.store, u.id, bytes).await
    }
}

async fn user(store: &Store, name: &str) -> User {
    store
        .users()
        .create(NewUser::new(name, format!("{name}@example.in")).consent(ConsentKind::AudioStorage))
        .await
        .unwrap()
}

async fn put(store: &Store, owner: UserId, bytes: &[u8]) -> AudioFile {
    store
        .files()
        .put_bytes(
            Actor::User(owner),
            owner,
            bytes,
            PutOptions::content_type("audio/wav"),
        )
        .await
        .unwrap()
}

/// What a writer did, in order, each step acknowledged before the next.
#[derive(Debug, Clone, Copy)]
enum Op {
    User(UserId),
    Put(FileId),
    Delete(FileId),
}

/// The users and live files after the first `n` steps of `log`.
fn state_after(log: &[Op], n: usize) -> (Vec<UserId>, Vec<FileId>) {
    let (mut users, mut files) = (Vec::new(), Vec::new());
    for op in &log[..n] {
        match *op {
            Op::User(u) => users.push(u),
            Op::Put(f) => files.push(f),
            Op::Delete(f) => files.retain(|x| *x != f),
        }
    }
    (users, files)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backup_taken_while_eight_tasks_write_restores_one_instant_of_the_store() {
    let w = World::new().await;
    let store = Arc::new(w.store);
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for t in 0..8 {
        let (store, stop) = (Arc::clone(&store), Arc::clone(&stop));
        writers.push(tokio::spawn(async move {
            let mut log = Vec::new();
            let mut k = 0;
            let mut last: Option<FileId> = None;
            while !stop.load(Ordering::Relaxed) {
                let u = user(&store, &format!("w{t}n{k}")).await;
                log.push(Op::User(u.id));
                let bytes = format!("clip {t}/{k} ").repeat(200 + k);
                // Two records of the same bytes: one blob, two references.
                let a = put(&store, u.id, bytes.as_bytes()).await;
                log.push(Op::Put(a.id));
                let b = put(&store, u.id, bytes.as_bytes()).await;
                log.push(Op::Put(b.id));
                if let Some(prev) = last.take() {
                    store.files().delete(Actor::System, prev).await.unwrap();
                    log.push(Op::Delete(prev));
                }
                last = Some(b.id);
                k += 1;
            }
            log
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let report = store
        .backup(w.dir.path().join("backups"), BackupOptions::default())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::Relaxed);
    let mut logs = Vec::new();
    for h in writers {
        logs.push(h.await.unwrap());
    }
    assert!(report.blobs > 0 && report.missing.is_empty(), "{report:?}");
    // The writers went on after the backup: the store has more than it.
    let total_puts: usize = logs
        .iter()
        .map(|l| l.iter().filter(|o| matches!(o, Op::Put(_))).count())
        .sum();
    store.close().await;

    let target = config(&w.dir.path().join("restored"), &w.key).lifecycle(
        LifecycleConfig::default()
            .purge_grace(Duration::ZERO)
            .orphan_grace(Duration::ZERO),
    );
    let restored_report = Store::restore(
        w.dir.path().join("backups"),
        &target,
        RestoreOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(restored_report.blobs, report.blobs);
    let restored = Store::open(target).await.unwrap();
    let deep = restored
        .verify(VerifyOptions {
            deep: true,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(
        deep.is_clean() && deep.blobs_read == report.blobs,
        "{deep:?}"
    );
    let mut seen_puts = 0;
    for (t, log) in logs.iter().enumerate() {
        // What the restored store holds of this writer's work...
        let mut users = Vec::new();
        let mut files = Vec::new();
        for op in log {
            match *op {
                Op::User(u) => {
                    if restored.users().get(u).is_ok() {
                        users.push(u);
                    }
                }
                Op::Put(f) => {
                    if let Ok(bytes) = restored.files().read(Actor::System, f).await {
                        let stat = restored.files().stat(Actor::System, f).await.unwrap();
                        assert_eq!(bytes.len() as u64, stat.plain_bytes);
                        files.push(f);
                        seen_puts += 1;
                    }
                }
                Op::Delete(_) => {}
            }
        }
        // ...is exactly its state after some prefix of its steps.
        let prefix =
            (0..=log.len()).find(|n| state_after(log, *n) == (users.clone(), files.clone()));
        assert!(
            prefix.is_some(),
            "writer {t}: the restored store is not one instant of its work ({} users, {} files of {} steps)",
            users.len(),
            files.len(),
            log.len()
        );
    }
    assert!(
        seen_puts < total_puts,
        "nothing written after the snapshot may be in it"
    );
    // Every reference resolves and the counts are exact: deleting every
    // live file and purging leaves no blob file behind.
    for log in &logs {
        for op in log {
            if let Op::Put(f) = op {
                let _ = restored.files().delete(Actor::System, *f).await;
            }
        }
    }
    restored
        .lifecycle()
        .run_to_end("purge", false)
        .await
        .unwrap();
    let orphans = restored
        .lifecycle()
        .run_to_end("orphans", false)
        .await
        .unwrap();
    assert_eq!(orphans.count("orphans_removed"), 0, "{orphans:?}");
    assert_eq!(blob_files(&w.dir.path().join("restored")), 0);
}

/// Blob files under a data directory.
fn blob_files(data: &Path) -> usize {
    fn walk(p: &Path, n: &mut usize) {
        for e in std::fs::read_dir(p).into_iter().flatten().flatten() {
            let t = e.file_type().unwrap();
            if t.is_dir() {
                walk(&e.path(), n);
            } else if e.file_name().len() == 64 {
                *n += 1;
            }
        }
    }
    let mut n = 0;
    walk(&data.join("blobs"), &mut n);
    n
}

#[tokio::test]
async fn a_second_backup_copies_only_the_blobs_the_destination_lacks() {
    let w = World::new().await;
    let never = w.store.health().await;
    assert_eq!(never.part("backup").unwrap().detail, "no backup recorded");
    let u = w.user("asha").await;
    for i in 0..3 {
        w.put(&u, format!("first {i} ").repeat(500).as_bytes())
            .await;
    }
    let copying = BackupOptions {
        no_links: true,
        ..Default::default()
    };
    let first = w.store.backup(w.backups(), copying.clone()).await.unwrap();
    assert_eq!(
        (first.blobs, first.blobs_copied, first.blobs_skipped),
        (3, 3, 0)
    );
    w.put(&u, b"one more clip").await;
    let second = w.store.backup(w.backups(), copying).await.unwrap();
    assert_eq!(second.generation, 2);
    assert_eq!(
        (second.blobs, second.blobs_copied, second.blobs_skipped),
        (4, 1, 3)
    );
    assert_eq!(second.bytes_skipped, first.bytes_copied);
    // On the same file system the default links instead of copying.
    w.put(&u, b"and another").await;
    let third = w
        .store
        .backup(w.backups(), BackupOptions::default())
        .await
        .unwrap();
    assert_eq!(
        (third.blobs_linked, third.blobs_copied, third.blobs_skipped),
        (1, 0, 4)
    );
    assert_eq!(third.bytes_copied, 0);
    let listed = Store::backups(w.backups()).unwrap();
    assert_eq!(
        listed.iter().map(|g| g.generation).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    // Health says when the newest was taken.
    let health = w.store.health().await;
    let part = health.part("backup").unwrap();
    assert!(part.detail.starts_with("generation 3 taken "), "{part:?}");
}

#[tokio::test]
async fn keep_deletes_old_generations_and_the_blobs_only_they_held() {
    let w = World::new().await;
    let u = w.user("bina").await;
    let old = w.put(&u, &b"old clip ".repeat(100)).await;
    w.store
        .backup(w.backups(), BackupOptions::default())
        .await
        .unwrap();
    w.store.files().delete(Actor::System, old.id).await.unwrap();
    w.store
        .lifecycle()
        .run_to_end("purge", false)
        .await
        .unwrap();
    w.put(&u, b"new clip").await;
    let keep = BackupOptions {
        keep: Some(1),
        ..Default::default()
    };
    let report = w.store.backup(w.backups(), keep).await.unwrap();
    assert_eq!(report.generations_removed, [1]);
    assert_eq!(report.blobs_removed, 1);
    assert_eq!(blob_files(&w.backups()), 1);
    let listed = Store::backups(w.backups()).unwrap();
    assert_eq!(listed.iter().map(|g| g.generation).collect::<Vec<_>>(), [2]);
}

#[tokio::test]
async fn a_purge_after_a_linked_backup_leaves_the_backup_whole() {
    let w = World::new().await;
    let u = w.user("chitra").await;
    let clip = b"a clip the purge will destroy ".repeat(300);
    let f = w.put(&u, &clip).await;
    let report = w
        .store
        .backup(w.backups(), BackupOptions::default())
        .await
        .unwrap();
    assert_eq!(report.blobs_linked, 1, "{report:?}");
    w.store.files().delete(Actor::System, f.id).await.unwrap();
    w.store
        .lifecycle()
        .run_to_end("purge", false)
        .await
        .unwrap();
    assert_eq!(blob_files(&w.dir.path().join("data")), 0);
    w.store.close().await;
    let target = w.target("restored");
    Store::restore(w.backups(), &target, RestoreOptions::default())
        .await
        .unwrap();
    let restored = Store::open(target).await.unwrap();
    assert_eq!(
        restored.files().read(Actor::System, f.id).await.unwrap(),
        clip
    );
}

/// A backup of one user's clip, and the store closed.
async fn one_backup() -> (World, AudioFile) {
    let w = World::new().await;
    let u = w.user("devi").await;
    let f = w.put(&u, &b"devi's clip ".repeat(400)).await;
    w.store
        .backup(w.backups(), BackupOptions::default())
        .await
        .unwrap();
    w.store.close().await;
    (w, f)
}

fn backup_blob(w: &World, f: &AudioFile) -> PathBuf {
    crate::common::blob_file(&w.backups(), f)
}

fn assert_refused(r: Result<bharatvoice_store::RestoreReport, Error>, names: &str, target: &Path) {
    match r {
        Err(e @ Error::Integrity { .. }) => {
            assert!(e.to_string().contains(names), "{e} does not name {names}")
        }
        other => panic!("expected an integrity error naming {names}, got {other:?}"),
    }
    assert!(
        !target.join("store.redb").exists(),
        "a refused restore wrote a store"
    );
}

#[tokio::test]
async fn a_corrupted_or_missing_backup_file_is_refused_and_named() {
    let (w, f) = one_backup().await;
    let blob = backup_blob(&w, &f);
    let hex = f.blob.to_string();
    // One byte changed (on a copy: the backup's file is a link to the
    // store's, and a real disk error would not reach the store).
    let mut bytes = std::fs::read(&blob).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 1;
    std::fs::remove_file(&blob).unwrap();
    std::fs::write(&blob, &bytes).unwrap();
    let target = w.target("t1");
    let r = Store::restore(w.backups(), &target, RestoreOptions::default()).await;
    assert_refused(r, &hex, &target.data_dir);

    std::fs::remove_file(&blob).unwrap();
    let target = w.target("t2");
    let r = Store::restore(w.backups(), &target, RestoreOptions::default()).await;
    assert_refused(r, &hex, &target.data_dir);

    // Each part of the metadata (its base, its delta) damaged in turn.
    let parts: Vec<PathBuf> = std::fs::read_dir(w.backups().join("metadata"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(parts.len(), 2, "a base and its delta");
    for (i, part) in parts.iter().enumerate() {
        let kept = std::fs::read(part).unwrap();
        std::fs::write(part, b"not a database").unwrap();
        let target = w.target(&format!("t3-{i}"));
        let r = Store::restore(w.backups(), &target, RestoreOptions::default()).await;
        let name = part.file_name().unwrap().to_str().unwrap();
        assert_refused(r, name, &target.data_dir);
        std::fs::write(part, kept).unwrap();
    }
}

#[tokio::test]
async fn an_altered_manifest_or_another_key_is_refused() {
    let (w, _) = one_backup().await;
    let other = config(&w.dir.path().join("t0"), &MasterKey::generate().unwrap());
    let r = Store::restore(w.backups(), &other, RestoreOptions::default()).await;
    assert_refused(r, "manifest.json", &other.data_dir);

    let manifest = w.backups().join("generations/000001/manifest.json");
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(&manifest, text.replacen("\"bytes\": ", "\"bytes\": 1", 1)).unwrap();
    let target = w.target("t1");
    let r = Store::restore(w.backups(), &target, RestoreOptions::default()).await;
    assert_refused(r, "manifest.json", &target.data_dir);
}

/// `backups` reads manifests without the key (nothing is checked): sizes
/// that add past `u64::MAX` give a saturated total, not a panic, and a
/// restore still refuses the manifest.
#[tokio::test]
async fn a_manifest_whose_sizes_overflow_is_listed_and_refused_without_a_panic() {
    let (w, _) = one_backup().await;
    let manifest = w.backups().join("generations/000001/manifest.json");
    let text = std::fs::read_to_string(&manifest).unwrap();
    let huge = with_numbers_after(&text, "\"bytes\": ", u64::MAX);
    assert_ne!(huge, text);
    std::fs::write(&manifest, huge).unwrap();
    let listed = Store::backups(w.backups()).expect("listed");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].bytes, u64::MAX);
    let target = w.target("t1");
    let r = Store::restore(w.backups(), &target, RestoreOptions::default()).await;
    assert_refused(r, "manifest.json", &target.data_dir);
}

/// `text` with the number after each `key` replaced by `n`.
fn with_numbers_after(text: &str, key: &str, n: u64) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find(key) {
        let (head, tail) = rest.split_at(at + key.len());
        out.push_str(head);
        out.push_str(&n.to_string());
        rest = tail.trim_start_matches(|c: char| c.is_ascii_digit());
    }
    out.push_str(rest);
    out
}

#[tokio::test]
async fn a_restore_into_a_directory_that_holds_something_is_refused_unless_forced() {
    let (w, f) = one_backup().await;
    let target = w.target("busy");
    std::fs::create_dir_all(&target.data_dir).unwrap();
    std::fs::write(target.data_dir.join("notes.txt"), b"mine").unwrap();
    let r = Store::restore(w.backups(), &target, RestoreOptions::default()).await;
    assert!(matches!(r, Err(Error::InvalidInput { .. })), "{r:?}");
    assert!(!target.data_dir.join("store.redb").exists());
    let forced = RestoreOptions {
        force: true,
        ..Default::default()
    };
    Store::restore(w.backups(), &target, forced.clone())
        .await
        .unwrap();
    let restored = Store::open(target.clone()).await.unwrap();
    // Not even forced over a store that is open.
    let r = Store::restore(w.backups(), &target, forced).await;
    assert!(matches!(r, Err(Error::Locked { .. })), "{r:?}");
    assert!(restored.files().read(Actor::System, f.id).await.is_ok());
    assert_eq!(
        std::fs::read(target.data_dir.join("notes.txt")).unwrap(),
        b"mine"
    );
}

#[tokio::test]
async fn a_backup_refuses_a_destination_that_is_not_its_own() {
    let w = World::new().await;
    let foreign = w.dir.path().join("foreign");
    std::fs::create_dir_all(&foreign).unwrap();
    std::fs::write(foreign.join("photo.jpg"), b"x").unwrap();
    let r = w.store.backup(&foreign, BackupOptions::default()).await;
    assert!(matches!(r, Err(Error::InvalidInput { .. })), "{r:?}");
    assert_eq!(std::fs::read_dir(&foreign).unwrap().count(), 1);

    // Another store's destination.
    w.store
        .backup(w.backups(), BackupOptions::default())
        .await
        .unwrap();
    let other = World::new().await;
    let r = other
        .store
        .backup(w.backups(), BackupOptions::default())
        .await;
    assert!(matches!(r, Err(Error::InvalidInput { .. })), "{r:?}");
}

#[tokio::test]
async fn a_backup_carries_its_region_and_a_restore_elsewhere_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let key = MasterKey::generate().unwrap();
    let store = Store::open(config(&dir.path().join("data"), &key).region("IN"))
        .await
        .unwrap();
    store
        .backup(dir.path().join("b"), BackupOptions::default())
        .await
        .unwrap();
    let listed = Store::backups(dir.path().join("b")).unwrap();
    assert_eq!(listed[0].region.as_deref(), Some("IN"));
    let target = config(&dir.path().join("sg"), &key).region("SG");
    let r = Store::restore(dir.path().join("b"), &target, RestoreOptions::default()).await;
    assert!(matches!(r, Err(Error::RegionMismatch { .. })), "{r:?}");
    assert!(!target.data_dir.join("store.redb").exists());
}
