//! Corrupt bytes on disk: a clear error, never a panic, nothing else lost.

use bharatvoice_store::{Error, ListOptions, Store};
use redb::{Database, TableDefinition};

use crate::common::{bvstore, config, open_store, stderr};

const USERS: TableDefinition<u128, &[u8]> = TableDefinition::new("users");
const BY_NAME: TableDefinition<&str, &[u8]> = TableDefinition::new("user_records_by_username");
const BY_EMAIL: TableDefinition<&str, &[u8]> = TableDefinition::new("user_records_by_email");

#[tokio::test]
async fn a_corrupt_user_record_is_reported_not_trusted() {
    let t = open_store().await;
    let good = t.user("good").await;
    let bad = t.user("damaged").await;
    let path = t.path();
    drop(t.store);
    for garbage in [
        vec![],
        vec![3u8],
        vec![3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x0f],
        vec![9, 1, 2, 3],
    ] {
        {
            let db = Database::create(path.join("store.redb")).unwrap();
            let txn = db.begin_write().unwrap();
            // The record and its two index copies.
            txn.open_table(USERS)
                .unwrap()
                .insert(bad.id.as_uuid().as_u128(), garbage.as_slice())
                .unwrap();
            txn.open_table(BY_NAME)
                .unwrap()
                .insert("damaged", garbage.as_slice())
                .unwrap();
            txn.open_table(BY_EMAIL)
                .unwrap()
                .insert("damaged@example.in", garbage.as_slice())
                .unwrap();
            txn.commit().unwrap();
        }
        let store = Store::open(config(&path)).await.unwrap();
        let e = store.users().get(bad.id).unwrap_err();
        assert!(matches!(e, Error::Corrupt { .. }), "{garbage:?}: {e:?}");
        assert!(e.to_string().contains(&bad.id.to_string()), "{e}");
        assert!(matches!(
            store.users().get_by_username("damaged"),
            Err(Error::Corrupt { .. })
        ));
        assert!(matches!(
            store.users().get_by_email("damaged@example.in"),
            Err(Error::Corrupt { .. })
        ));
        assert!(matches!(
            store.users().list(ListOptions::first(10)).await,
            Err(Error::Corrupt { .. })
        ));
        // The rest of the store is untouched.
        assert_eq!(store.users().get(good.id).unwrap().username, "good");
    }
    let out = bvstore(&path, &["user", "show", "damaged"]);
    assert_eq!(out.status.code(), Some(8), "{}", stderr(&out));
}

#[tokio::test]
async fn a_file_that_is_not_a_store_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("store.redb"),
        b"this is not a redb file at all, just some text bytes",
    )
    .unwrap();
    let e = Store::open(config(dir.path())).await.unwrap_err();
    assert!(
        matches!(
            e,
            Error::Storage { .. } | Error::Corrupt { .. } | Error::Io { .. }
        ),
        "{e:?}"
    );
}
