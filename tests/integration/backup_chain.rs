//! Incremental metadata: a local backup copies `store.redb` as a file, and
//! the next one into the same destination only the pages written since (a
//! delta on the chain's base). Every generation of a chain restores to its
//! own instant; a reopened store, an erasure, a long chain or one whose
//! deltas outweigh half its base starts a new base; `keep` deletes the parts no kept generation names.

use std::path::{Path, PathBuf};

use bharatvoice_store::{
    BackupOptions, BackupReport, Config, ConsentKind, MasterKey, NewUser, RestoreOptions, Store,
    UserId, VerifyOptions,
};

struct World {
    dir: tempfile::TempDir,
    key: MasterKey,
}

impl World {
    fn new() -> World {
        World {
            dir: tempfile::tempdir().unwrap(),
            key: MasterKey::generate().unwrap(),
        }
    }

    fn config(&self, name: &str) -> Config {
        crate::common::config(&self.dir.path().join(name)).master_key(self.key.clone())
    }

    async fn open(&self) -> Store {
        Store::open(self.config("data")).await.unwrap()
    }

    fn backups(&self) -> PathBuf {
        self.dir.path().join("backups")
    }

    fn pool(&self) -> Vec<String> {
        let mut out: Vec<String> = std::fs::read_dir(self.backups().join("metadata"))
            .map(|d| {
                d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        out.sort();
        out
    }

    async fn backup(&self, store: &Store, keep: Option<usize>) -> BackupReport {
        let options = BackupOptions {
            keep,
            ..Default::default()
        };
        store.backup(self.backups(), options).await.unwrap()
    }

    /// Restores `generation` into a new directory, checks it deeply, and
    /// says which of `users` it holds.
    async fn restored_users(&self, generation: u64, users: &[UserId]) -> Vec<bool> {
        let target = self.config(&format!("restored-{generation}"));
        let options = RestoreOptions {
            generation: Some(generation),
            ..Default::default()
        };
        Store::restore(self.backups(), &target, options)
            .await
            .unwrap();
        let store = Store::open(target).await.unwrap();
        let report = store
            .verify(VerifyOptions {
                deep: true,
                ..Default::default()
            })
            .await
            .unwrap();
        assert!(report.is_clean(), "generation {generation}: {report:?}");
        let held = users
            .iter()
            .map(|u| store.users().get(*u).is_ok_and(|u| u.deleted_at.is_none()))
            .collect();
        store.close().await;
        held
    }
}

async fn add_users(store: &Store, prefix: &str, n: usize) -> Vec<UserId> {
    let mut out = Vec::new();
    for i in 0..n {
        let name = format!("{prefix}{i}");
        let u = store
            .users()
            .create(
                NewUser::new(&name, format!("{name}@example.in"))
                    .consent(ConsentKind::AudioStorage),
            )
            .await
            .unwrap();
        out.push(u.id);
    }
    out
}

fn file_len(p: &Path) -> u64 {
    std::fs::metadata(p).unwrap().len()
}

#[tokio::test]
async fn each_later_backup_copies_only_the_pages_written_since_and_every_generation_restores() {
    let w = World::new();
    let store = w.open().await;
    let first_users = add_users(&store, "asha", 300).await;
    let first = w.backup(&store, None).await;
    assert_eq!((first.rows, first.metadata_parts), (0, 2), "{first:?}");
    let live = file_len(&w.dir.path().join("data/store.redb"));
    assert!(first.metadata_bytes >= live, "the base is the whole file");

    let one = add_users(&store, "bala", 1).await;
    let second = w.backup(&store, None).await;
    assert_eq!(second.metadata_parts, 3, "{second:?}");
    assert!(
        second.metadata_bytes * 4 < first.metadata_bytes,
        "a delta of one user: {} bytes against a base of {}",
        second.metadata_bytes,
        first.metadata_bytes
    );
    store.users().delete(first_users[0]).await.unwrap();
    let two = add_users(&store, "chitra", 1).await;
    let third = w.backup(&store, None).await;
    assert_eq!(third.metadata_parts, 4);
    assert_eq!(w.pool().len(), 4, "one base, three deltas");
    store.close().await;

    let who = [first_users[0], first_users[299], one[0], two[0]];
    assert_eq!(w.restored_users(1, &who).await, [true, true, false, false]);
    assert_eq!(w.restored_users(2, &who).await, [true, true, true, false]);
    assert_eq!(w.restored_users(3, &who).await, [false, true, true, true]);
}

#[tokio::test]
async fn a_reopened_store_or_an_erasure_starts_a_new_base() {
    let w = World::new();
    let store = w.open().await;
    let users = add_users(&store, "devi", 20).await;
    assert_eq!(w.backup(&store, None).await.metadata_parts, 2);
    assert_eq!(w.backup(&store, None).await.metadata_parts, 3);
    store.close().await;
    drop(store);

    // The page marks were in the closed store's memory.
    let store = w.open().await;
    assert_eq!(w.backup(&store, None).await.metadata_parts, 2);
    assert_eq!(w.backup(&store, None).await.metadata_parts, 3);

    // An erasure: no delta keeps the erased user's keys in an old base.
    store.privacy().erase_user(users[3]).await.unwrap();
    assert_eq!(w.backup(&store, None).await.metadata_parts, 2);

    // Deltas that outweigh half their base: the next backup takes a base.
    add_users(&store, "ishaan", 200).await;
    let big = w.backup(&store, None).await;
    assert_eq!(big.metadata_parts, 3);
    assert_eq!(w.backup(&store, None).await.metadata_parts, 2);

    store.close().await;
}

#[tokio::test]
async fn a_chain_holds_a_base_and_fifteen_deltas_at_most() {
    let w = World::new();
    let store = w.open().await;
    add_users(&store, "hema", 3000).await;
    w.backup(&store, None).await;
    // Each backup records itself in the store (one small commit): the
    // next one has a delta to take.
    let mut parts = Vec::new();
    for _ in 0..16 {
        parts.push(w.backup(&store, None).await.metadata_parts);
    }
    assert_eq!(
        parts,
        [3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 2, 3]
    );
    store.close().await;
}

#[tokio::test]
async fn keep_deletes_the_parts_no_kept_generation_names() {
    let w = World::new();
    let store = w.open().await;
    add_users(&store, "farah", 10).await;
    for _ in 0..3 {
        w.backup(&store, None).await;
    }
    assert_eq!(w.pool().len(), 4);
    store.close().await;
    drop(store);
    let store = w.open().await;
    add_users(&store, "gita", 1).await;
    let fourth = w.backup(&store, Some(1)).await;
    assert_eq!(fourth.generations_removed, [1, 2, 3]);
    assert_eq!(w.pool().len(), 2, "the new base and its delta");
    // A part left by a backup that crashed before its manifest (its
    // partial generation left too) is swept by the next backup; a file
    // the backup did not make is left alone.
    std::fs::create_dir(w.backups().join("generations/.000005.partial")).unwrap();
    std::fs::write(w.backups().join("metadata").join("a".repeat(64)), b"x").unwrap();
    std::fs::write(w.backups().join("metadata/notes.txt"), b"mine").unwrap();
    w.backup(&store, None).await;
    let pool = w.pool();
    assert_eq!(pool.len(), 4, "{pool:?}");
    assert!(pool.contains(&"notes.txt".to_string()));
    assert!(!pool.contains(&"a".repeat(64)));
    store.close().await;
    assert_eq!(
        w.restored_users(5, &[]).await,
        Vec::<bool>::new(),
        "the newest generation restores"
    );
}
