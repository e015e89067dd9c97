//! Verify decodes every row the store needs to read again, beyond users,
//! sessions, files and blobs: record keys, password hashes and metric
//! snapshots (key rows, erasure records and damaged-blob marks too, but a
//! damaged one of those stops the open, or verify, first).

use bharatvoice_store::{ProblemKind, Store};
use redb::TableDefinition;

use crate::verify::{Fixture, config, of};

const RECORD_KEYS: TableDefinition<u128, &[u8]> = TableDefinition::new("record_keys");
const CREDENTIALS: TableDefinition<u128, &str> = TableDefinition::new("credentials");
const METRICS: TableDefinition<(&str, i64, u128), &[u8]> = TableDefinition::new("metrics");

#[tokio::test]
async fn every_kind_of_row_is_decoded_and_a_bad_one_named() {
    let f = Fixture::new().await;
    {
        // Real rows of each kind first: a password, an erasure, metric
        // snapshots. None of them is a problem.
        let store = Store::open(config(f.dir.path())).await.unwrap();
        store
            .users()
            .set_password(f.asha.id, "correct horse battery")
            .await
            .unwrap();
        store.privacy().erase_user(f.bina.id).await.unwrap();
        store.close().await;
    }
    let clean = f.verify(false, false).await;
    assert!(clean.is_clean(), "{:?}", clean.problems);

    let ghost = 0x0123_4567_89ab_cdef_0123_4567_89ab_cdef_u128;
    {
        let db = f.db();
        let txn = db.begin_write().unwrap();
        // (A `keys` or `erasures` row that does not decode stops the store
        // from opening at all, and a `damaged_blobs` row stops verify: each
        // is a `Corrupt` error naming the row, not a listed problem.)
        txn.open_table(RECORD_KEYS)
            .unwrap()
            .insert(ghost, b"\x01not a record".as_slice())
            .unwrap();
        txn.open_table(CREDENTIALS)
            .unwrap()
            .insert(ghost, "plain text, not a hash")
            .unwrap();
        txn.open_table(METRICS)
            .unwrap()
            .insert(("bv_test", 5, 6), b"".as_slice())
            .unwrap();
        txn.commit().unwrap();
    }
    let r = f.verify(false, true).await;
    let user = bharatvoice_store::UserId::from(uuid::Uuid::from_u128(ghost));
    let mut found = of(&r, ProblemKind::Undecodable);
    found.sort();
    let mut want = vec![
        (format!("record_keys user {user}"), false),
        (format!("credentials user {user}"), false),
        ("metrics bv_test 5 6".to_string(), false),
    ];
    want.sort();
    assert_eq!(found, want, "{r:?}");
    assert!(!r.is_clean(), "a repair leaves undecodable rows");
}
