//! Schema 5 to 6: soft-deleted files and sessions of an older store get
//! their deletion-index entries, so the purge finds them.

use std::time::Duration;

use bharatvoice_store::{Actor, LifecycleConfig, NewUser, PutOptions, SCHEMA_VERSION, Store};
use redb::{Database, TableDefinition, TableHandle};

use crate::common::config;

const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

#[tokio::test]
async fn a_schema_5_store_gets_its_deletion_indexes() {
    let dir = tempfile::tempdir().unwrap();
    let lifecycle = LifecycleConfig::default().purge_grace(Duration::ZERO);
    let store = Store::open(config(dir.path()).lifecycle(lifecycle.clone()))
        .await
        .unwrap();
    let u = store
        .users()
        .create(
            NewUser::new("old", "old@example.in")
                .consent(bharatvoice_store::ConsentKind::AudioStorage),
        )
        .await
        .unwrap();
    let me = Actor::User(u.id);
    let gone = store
        .files()
        .put_bytes(
            me,
            u.id,
            b"deleted before the upgrade",
            PutOptions::content_type("audio/wav"),
        )
        .await
        .unwrap();
    let kept = store
        .files()
        .put_bytes(
            me,
            u.id,
            b"still live",
            PutOptions::content_type("audio/wav"),
        )
        .await
        .unwrap();
    store.files().delete(me, gone.id).await.unwrap();
    let s = store.sessions().create(u.id, None).await.unwrap();
    store.sessions().delete(s.id).await.unwrap();
    drop(store);

    // Back to schema 5: no deletion indexes, no damage table.
    {
        let db = Database::create(dir.path().join("store.redb")).unwrap();
        let txn = db.begin_write().unwrap();
        for name in ["files_by_deleted", "sessions_by_deleted", "damaged_blobs"] {
            let table = txn
                .list_tables()
                .unwrap()
                .find(|t| t.name() == name)
                .expect("the table exists at schema 6");
            txn.delete_table(table).unwrap();
        }
        txn.open_table(META)
            .unwrap()
            .insert("schema_version", 5u32.to_le_bytes().as_slice())
            .unwrap();
        txn.commit().unwrap();
    }

    let store = Store::open(config(dir.path()).lifecycle(lifecycle))
        .await
        .unwrap();
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    let report = store.lifecycle().run("purge", false).await.unwrap();
    assert_eq!(report.count("files_purged"), 1, "{report:?}");
    assert_eq!(report.count("sessions_purged"), 1);
    assert_eq!(
        store.files().read(me, kept.id).await.unwrap(),
        b"still live"
    );
    assert!(store.lifecycle().damaged().unwrap().is_empty());
}
