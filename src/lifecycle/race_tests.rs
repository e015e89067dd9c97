//! A put that deduplicates against a blob whose last record the purge
//! removes between the put's check and its commit: the put stores its own
//! bytes, and the purge does not retire the file the put stored again.
//! (The purge's transaction takes no blob lock, so this interleaving is
//! possible; a test hook pauses the put at the point it happens.)

use std::time::Duration;

use crate::{Actor, Config, LifecycleConfig, NewUser, PutOptions, Store};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_whose_duplicate_is_purged_before_its_commit_stores_its_own_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config::new(dir.path())
        .password_cost(8, 1)
        .lifecycle(LifecycleConfig::default().purge_grace(Duration::ZERO));
    let store = Store::open(config).await.unwrap();
    let user = store
        .users()
        .create(NewUser::new("racer", "racer@example.in").consent(crate::ConsentKind::AudioStorage))
        .await
        .unwrap();
    let me = Actor::User(user.id);
    let bytes = vec![42u8; 10_000];
    let options = PutOptions::content_type("audio/wav");
    let old = store
        .files()
        .put_bytes(me, user.id, &bytes, options.clone())
        .await
        .unwrap();
    store.files().delete(me, old.id).await.unwrap();

    // The next put stops after `place` has seen the old blob's row.
    let (placed_tx, placed_rx) = tokio::sync::oneshot::channel();
    let (go_tx, go_rx) = tokio::sync::oneshot::channel();
    *store.blob_store().pause_after_place.lock().unwrap() = Some((placed_tx, go_rx));
    let putter = {
        let (store, bytes, options) = (store.clone(), bytes.clone(), options.clone());
        tokio::spawn(async move { store.files().put_bytes(me, user.id, &bytes, options).await })
    };
    placed_rx.await.unwrap();

    // The purge removes the old record and the blob's row, then waits for
    // the address lock the paused put holds.
    let purger = {
        let store = store.clone();
        tokio::spawn(async move { store.lifecycle().run("purge", false).await })
    };
    let references = store.file_records();
    for _ in 0..2000 {
        if references.blob_references(old.blob).unwrap() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(references.blob_references(old.blob).unwrap(), 0);
    go_tx.send(()).unwrap();

    let new = putter.await.unwrap().unwrap();
    assert_eq!(new.blob, old.blob, "same bytes, same address");
    let report = purger.await.unwrap().unwrap();
    assert_eq!(report.count("files_purged"), 1, "{report:?}");
    assert_eq!(report.skipped("blob_stored_again"), 1, "{report:?}");
    assert_eq!(store.files().read(me, new.id).await.unwrap(), bytes);
    assert!(store.lifecycle().damaged().unwrap().is_empty());
    let usage = store.quotas().usage(user.id).await.unwrap();
    assert_eq!(
        (usage.stored_bytes, usage.blobs),
        store.quotas().recount(user.id).await.unwrap()
    );
}
