//! Verify (fsck): each kind of damage, injected directly into the files
//! of a closed store, is found with its id; `repair` fixes what is safe
//! (derived tables, orphans, lost files marked damaged) and leaves the
//! rest reported.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bharatvoice_store::{
    Actor, AudioFile, Config, ConsentKind, LifecycleConfig, NewUser, ProblemKind, PutOptions,
    Store, StoreVerifyReport, User, VerifyOptions,
};
use redb::{Database, ReadableTable, TableDefinition};

const USERS: TableDefinition<u128, &[u8]> = TableDefinition::new("users");
const FILES: TableDefinition<u128, &[u8]> = TableDefinition::new("files");
const FILES_BY_OWNER: TableDefinition<(u128, u128), ()> = TableDefinition::new("files_by_owner");
const FILES_BY_BLOB: TableDefinition<([u8; 32], u128), ()> = TableDefinition::new("files_by_blob");
const SESSIONS_BY_USER: TableDefinition<(u128, i64, u128), ()> =
    TableDefinition::new("sessions_by_user");
const USAGE: TableDefinition<u128, &[u8]> = TableDefinition::new("usage");

pub(crate) fn config(dir: &Path) -> Config {
    crate::common::config(dir).lifecycle(
        LifecycleConfig::default()
            .orphan_grace(Duration::ZERO)
            .tamper_watch(false),
    )
}

/// A store with two users, a shared blob (two records), a deleted file
/// and a session; closed.
pub(crate) struct Fixture {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) asha: User,
    pub(crate) bina: User,
    files: Vec<AudioFile>,
}

impl Fixture {
    pub(crate) async fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(config(dir.path())).await.unwrap();
        let mut users = Vec::new();
        for name in ["asha", "bina"] {
            users.push(
                store
                    .users()
                    .create(
                        NewUser::new(name, format!("{name}@example.in"))
                            .consent(ConsentKind::AudioStorage),
                    )
                    .await
                    .unwrap(),
            );
        }
        let mut files = Vec::new();
        for (u, bytes) in [
            (0, "one"),
            (0, "one"),
            (0, "two"),
            (1, "three"),
            (1, "four"),
        ] {
            let u: &User = &users[u];
            files.push(
                store
                    .files()
                    .put_bytes(
                        Actor::User(u.id),
                        u.id,
                        bytes.repeat(300).as_bytes(),
                        PutOptions::content_type("audio/wav"),
                    )
                    .await
                    .unwrap(),
            );
        }
        store
            .files()
            .delete(Actor::System, files[4].id)
            .await
            .unwrap();
        store.sessions().create(users[0].id, None).await.unwrap();
        store.close().await;
        let bina = users.pop().unwrap();
        let asha = users.pop().unwrap();
        Fixture {
            dir,
            asha,
            bina,
            files,
        }
    }

    pub(crate) fn db(&self) -> Database {
        Database::open(self.dir.path().join("store.redb")).unwrap()
    }

    fn blob(&self, i: usize) -> PathBuf {
        crate::common::blob_file(self.dir.path(), &self.files[i])
    }

    pub(crate) async fn verify(&self, deep: bool, repair: bool) -> StoreVerifyReport {
        let store = Store::open(config(self.dir.path())).await.unwrap();
        let options = VerifyOptions {
            deep,
            repair,
            ..Default::default()
        };
        let report = store.verify(options).await.unwrap();
        store.close().await;
        report
    }
}

/// The problems of a kind, by id.
pub(crate) fn of(report: &StoreVerifyReport, kind: ProblemKind) -> Vec<(String, bool)> {
    report
        .problems
        .iter()
        .filter(|p| p.kind == kind)
        .map(|p| (p.id.clone(), p.repaired))
        .collect()
}

#[tokio::test]
async fn a_sound_store_verifies_clean_deep() {
    let f = Fixture::new().await;
    let r = f.verify(true, false).await;
    assert!(r.is_clean(), "{:?}", r.problems);
    assert_eq!((r.users, r.sessions, r.files, r.blobs), (2, 1, 5, 4));
    assert_eq!(r.blobs_read, 4);
    assert!(r.index_entries >= 12, "{r:?}");
}

#[tokio::test]
async fn index_refcount_and_usage_damage_is_found_and_repaired() {
    let f = Fixture::new().await;
    let (asha, file0, file1) = (f.asha.id, &f.files[0], &f.files[1]);
    {
        let db = f.db();
        let txn = db.begin_write().unwrap();
        // A record's owner entry gone.
        txn.open_table(FILES_BY_OWNER)
            .unwrap()
            .remove((asha.as_uuid().as_u128(), id_key(file0)))
            .unwrap();
        // The second record of the shared blob gone, its entries and the
        // blob's count of 2 left behind.
        txn.open_table(FILES)
            .unwrap()
            .remove(id_key(file1))
            .unwrap();
        // Bina's usage row gone.
        txn.open_table(USAGE)
            .unwrap()
            .remove(f.bina.id.as_uuid().as_u128())
            .unwrap();
        txn.commit().unwrap();
    }
    let r = f.verify(false, false).await;
    assert_eq!(
        of(&r, ProblemKind::MissingIndexEntry),
        [(format!("files_by_owner file {}", file0.id), false)]
    );
    let dangling = of(&r, ProblemKind::DanglingIndexEntry);
    assert!(
        dangling.contains(&(format!("files_by_owner file {}", file1.id), false)),
        "{dangling:?}"
    );
    assert!(
        dangling.contains(&(format!("files_by_blob file {}", file1.id), false)),
        "{dangling:?}"
    );
    assert_eq!(
        of(&r, ProblemKind::WrongRefcount),
        [(format!("blob {}", file0.blob), false)]
    );
    assert_eq!(
        of(&r, ProblemKind::WrongUsage),
        [(format!("user {}", f.bina.id), false)]
    );
    let fixed = f.verify(false, true).await;
    assert!(fixed.is_clean(), "{:?}", fixed.problems);
    assert_eq!(fixed.problems.len(), r.problems.len());
    let again = f.verify(true, false).await;
    assert!(
        again.is_clean() && again.problems.is_empty(),
        "{:?}",
        again.problems
    );
}

fn id_key(f: &AudioFile) -> u128 {
    f.id.as_uuid().as_u128()
}

#[tokio::test]
async fn orphan_and_missing_blob_files_are_found_and_repaired() {
    let f = Fixture::new().await;
    // A blob file no row names, and a row whose file is gone.
    let orphan_hex = "ab".repeat(32);
    let orphan = f.dir.path().join("blobs/ab/ab").join(&orphan_hex);
    std::fs::create_dir_all(orphan.parent().unwrap()).unwrap();
    std::fs::write(&orphan, b"left by a crash").unwrap();
    std::fs::remove_file(f.blob(2)).unwrap();
    let r = f.verify(false, false).await;
    assert_eq!(
        of(&r, ProblemKind::OrphanBlobFile),
        [(format!("blob {orphan_hex}"), false)]
    );
    assert_eq!(
        of(&r, ProblemKind::MissingBlobFile),
        [(format!("blob {}", f.files[2].blob), false)]
    );
    let fixed = f.verify(false, true).await;
    assert!(fixed.is_clean(), "{:?}", fixed.problems);
    assert!(!orphan.exists());
    // The lost file's record now says it is damaged.
    let store = Store::open(config(f.dir.path())).await.unwrap();
    let read = store.files().read(Actor::System, f.files[2].id).await;
    assert!(read.is_err(), "{read:?}");
}

#[tokio::test]
async fn a_changed_blob_is_found_only_by_a_deep_verify_and_left_as_it_is() {
    let f = Fixture::new().await;
    let path = f.blob(3);
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 20;
    bytes[last] ^= 0x40;
    std::fs::write(&path, &bytes).unwrap();
    assert!(f.verify(false, false).await.is_clean());
    let deep = f.verify(true, true).await;
    assert_eq!(
        of(&deep, ProblemKind::DamagedBlob),
        [(format!("blob {}", f.files[3].blob), false)]
    );
    assert!(!deep.is_clean());
}

#[tokio::test]
async fn an_undecodable_row_is_reported_and_left_while_session_index_damage_is_repaired() {
    let f = Fixture::new().await;
    {
        let db = f.db();
        let txn = db.begin_write().unwrap();
        let bina = f.bina.id.as_uuid().as_u128();
        txn.open_table(USERS)
            .unwrap()
            .insert(bina, b"garbage".as_slice())
            .unwrap();
        let mut by_user = txn.open_table(SESSIONS_BY_USER).unwrap();
        let key = by_user.first().unwrap().unwrap().0.value();
        by_user.remove(key).unwrap();
        drop(by_user);
        txn.commit().unwrap();
        let _ = FILES_BY_BLOB;
    }
    let r = f.verify(false, true).await;
    assert_eq!(
        of(&r, ProblemKind::Undecodable),
        [(format!("user {}", f.bina.id), false)]
    );
    let missing = of(&r, ProblemKind::MissingIndexEntry);
    assert_eq!(missing.len(), 1, "{r:?}");
    assert!(
        missing[0].0.starts_with("sessions_by_user session "),
        "{r:?}"
    );
    assert!(missing[0].1, "the entry is rebuilt from its row: {r:?}");
    // The user row stays as it is: a repair never rewrites a row.
    assert!(!r.is_clean());
    let again = f.verify(false, false).await;
    assert_eq!(of(&again, ProblemKind::MissingIndexEntry), []);
}

/// redb checks integrity only with no read transaction open. Readers that
/// keep reading while verify runs (the application in use, the store's
/// own jobs) must not make it fail: it waits for the reads in flight, and
/// no new one begins meanwhile. A 10-minute soak met
/// `TransactionInProgress` here.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn verify_succeeds_while_readers_keep_reading() {
    let dir = crate::common::store_dir();
    let store = Store::open(config(dir.path())).await.unwrap();
    let mut users = Vec::new();
    for i in 0..8 {
        users.push(
            store
                .users()
                .create(NewUser::new(
                    format!("reader{i}"),
                    format!("r{i}@example.in"),
                ))
                .await
                .unwrap()
                .id,
        );
    }
    /// Stops the readers however the test ends (a failed round too).
    struct Stop(std::sync::Arc<std::sync::atomic::AtomicBool>);
    impl Drop for Stop {
        fn drop(&mut self) {
            self.0.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let guard = Stop(std::sync::Arc::clone(&stop));
    let mut readers = Vec::new();
    for u in users.clone() {
        let (store, stop) = (store.clone(), std::sync::Arc::clone(&stop));
        readers.push(tokio::task::spawn_blocking(move || {
            let mut reads = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                store.users().get(u).expect("a read beside verify");
                reads += 1;
            }
            reads
        }));
    }
    for round in 0..20 {
        let report = store
            .verify(VerifyOptions::default())
            .await
            .unwrap_or_else(|e| panic!("verify {round} beside readers: {e}"));
        assert!(report.is_clean(), "{:?}", report.problems);
        // A write between rounds, so the readers' snapshot changes.
        store
            .users()
            .update(
                users[round % users.len()],
                bharatvoice_store::UserUpdate {
                    display_name: Some(Some(format!("round {round}"))),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
    }
    drop(guard);
    for r in readers {
        assert!(r.await.unwrap() > 0, "a reader read nothing");
    }
    store.close().await;
}
