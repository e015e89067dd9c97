//! Exclusive access (`Db::exclusive`, `compact`, `check_integrity`) with
//! writes and reads going on.

use std::sync::Arc;

use redb::{ReadableDatabase, ReadableTableMetadata};

use super::schema::USERS;
use crate::{Config, Error, NewUser, Store};

async fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(Config::new(dir.path())).await.unwrap();
    (dir, store)
}

fn users_in(db: &redb::Database) -> u64 {
    let txn = db.begin_read().unwrap();
    txn.open_table(USERS).unwrap().len().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exclusive_work_runs_after_the_writes_queued_before_it() {
    let (_dir, store) = store().await;
    let users = store.users();
    let before = users.create(NewUser::new("asha", "asha@example.in"));
    let count = store.db().exclusive(|db| Ok(users_in(db)));
    let (created, seen) = tokio::join!(before, count);
    created.unwrap();
    assert_eq!(seen.unwrap(), 1, "the write queued first committed first");
    // The writer serves on afterwards.
    users
        .create(NewUser::new("bala", "bala@example.in"))
        .await
        .unwrap();
    assert_eq!(
        store.db().exclusive(|db| Ok(users_in(db))).await.unwrap(),
        2
    );
}

#[tokio::test]
async fn a_panic_in_exclusive_work_is_corrupt_and_the_writer_goes_on() {
    let (_dir, store) = store().await;
    let e = store
        .db()
        .exclusive(|_db| -> Result<(), Error> { panic!("boom in exclusive work") })
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Error::Corrupt { detail, .. } if detail.contains("boom in exclusive work")),
        "{e:?}"
    );
    store
        .users()
        .create(NewUser::new("chitra", "chitra@example.in"))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_amid_writes_and_reads_loses_nothing() {
    let (_dir, store) = store().await;
    let store = Arc::new(store);
    let mut tasks = Vec::new();
    for t in 0..8 {
        let s = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            for i in 0..40 {
                let name = format!("u{t}_{i}");
                s.users()
                    .create(NewUser::new(&name, format!("{name}@example.in")))
                    .await
                    .unwrap();
                // Point reads keep the shared snapshot busy.
                s.users().get_by_username(&name).unwrap();
            }
        }));
    }
    // Compactions interleave with the commits; one kept busy by reads
    // says so and changes nothing.
    while !tasks.iter().all(|t| t.is_finished()) {
        match store.db().compact().await {
            Ok(_) | Err(Error::Busy { .. }) => {}
            Err(e) => panic!("{e:?}"),
        }
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert!(store.db().compact().await.is_ok(), "an idle store compacts");
    assert!(
        store.db().check_integrity().await.unwrap(),
        "every page verifies"
    );
    for t in 0..8 {
        for i in 0..40 {
            store.users().get_by_username(&format!("u{t}_{i}")).unwrap();
        }
    }
    assert_eq!(
        store.db().exclusive(|db| Ok(users_in(db))).await.unwrap(),
        320
    );
}

#[tokio::test]
async fn a_read_only_store_refuses_exclusive_work() {
    let dir = tempfile::tempdir().unwrap();
    let key = crate::MasterKey::generate().unwrap();
    let store = Store::open(Config::new(dir.path()).master_key(key.clone()))
        .await
        .unwrap();
    store.close().await;
    drop(store);
    let store = Store::open(Config::new(dir.path()).master_key(key).read_only(true))
        .await
        .unwrap();
    assert!(matches!(
        store.db().compact().await,
        Err(Error::ReadOnly { .. })
    ));
}
