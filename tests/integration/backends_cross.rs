//! Backups into another bucket of the store's engine: the engine copies
//! each blob out of the store's bucket (a `CopyObject` naming the other
//! bucket, signed by the store), the store reads none of them, and the
//! backup restores into a store that passes `verify --deep`. With
//! credentials that cannot read the store's bucket the engine refuses,
//! and the blobs are uploaded instead. Needs `BV_TEST_S3_ENDPOINT` and the
//! buckets and second user `scripts/ceph-dev.sh start` makes (skipped
//! without the endpoint).

use bharatvoice_store::fuzzing::backend_gets;
use bharatvoice_store::{
    Actor, BackupOptions, BackupReport, BackupTarget, BlobBackendConfig, MasterKey, PutOptions,
    RestoreOptions, S3Config, Store,
};

use crate::backends::{s3_config, s3_var};
use crate::backends_backup::{InBucket, config, store_in_bucket, verify_deep};
use crate::common::noise;

/// Restores the newest generation of `target` into `dir` (local blobs)
/// and checks it deeply and file by file.
async fn restore_and_check(
    target: &S3Config,
    dir: &std::path::Path,
    key: &MasterKey,
    user: Actor,
    files: &[(bharatvoice_store::FileId, Vec<u8>)],
) {
    let local = config(dir, key, BlobBackendConfig::Local);
    let report = Store::restore(
        BackupTarget::S3(target.clone()),
        &local,
        RestoreOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(report.blobs, files.len() as u64);
    let restored = Store::open(local).await.unwrap();
    verify_deep(&restored, files.len() as u64, "restored").await;
    for (id, data) in files {
        let back = restored.files().read(user, *id).await.unwrap();
        assert!(back == *data, "file {id} read back differently");
    }
    restored.close().await;
}

/// A prefix in the second test user's bucket, under that user's keys:
/// it cannot read the first user's bucket.
pub(crate) fn other_users_bucket(endpoint: &str) -> S3Config {
    let mut other = s3_config(endpoint);
    other.bucket = s3_var("BV_TEST_S3_OTHER_BUCKET", "bvstore-other");
    other.access_key_id = Some(s3_var(
        "BV_TEST_S3_OTHER_ACCESS_KEY",
        "bvstore-other-access",
    ));
    other.secret_access_key = Some(s3_var(
        "BV_TEST_S3_OTHER_SECRET_KEY",
        "bvstore-other-secret",
    ));
    other
}

fn counts(r: &BackupReport) -> (u64, u64, u64) {
    (r.blobs, r.blobs_copied, r.blobs_copied_by_engine)
}

#[tokio::test]
async fn a_backup_into_another_bucket_of_the_engine_is_copied_by_the_engine() {
    let Some(InBucket {
        store,
        user,
        key,
        endpoint,
        dir,
        ..
    }) = store_in_bucket("cross-bucket").await
    else {
        return;
    };
    let me = Actor::User(user.id);
    // 0 B, one chunk + 1, and 7 MiB (a multipart object at 5 MiB parts).
    let mut files = Vec::new();
    for (i, n) in [0usize, (64 << 10) + 1, 7 << 20].into_iter().enumerate() {
        let data = noise(n, 40 + i as u64);
        let f = store
            .files()
            .put_bytes(me, user.id, &data, PutOptions::content_type("audio/wav"))
            .await
            .unwrap();
        files.push((f.id, data));
    }

    // The backup bucket, same engine and user: every blob copied by the
    // engine, none read by the store.
    let mut target = s3_config(&endpoint);
    target.bucket = s3_var("BV_TEST_S3_BACKUP_BUCKET", "bvstore-test-backups");
    let gets = backend_gets(&store);
    let first = store
        .backup(BackupTarget::S3(target.clone()), BackupOptions::default())
        .await
        .unwrap();
    assert_eq!(counts(&first), (3, 0, 3), "{first:?}");
    assert!(first.bytes_copied_by_engine > 7 << 20, "{first:?}");
    assert_eq!(backend_gets(&store), gets, "the store read its own blobs");
    // Incremental: a new file is copied by the engine too.
    let late = noise(300 << 10, 49);
    let f = store
        .files()
        .put_bytes(me, user.id, &late, PutOptions::content_type("audio/wav"))
        .await
        .unwrap();
    files.push((f.id, late));
    let second = store
        .backup(BackupTarget::S3(target.clone()), BackupOptions::default())
        .await
        .unwrap();
    assert_eq!(
        (counts(&second), second.blobs_skipped),
        ((4, 0, 1), 3),
        "{second:?}"
    );

    // Another user's bucket on the same engine: that user cannot read the
    // store's bucket, the engine refuses the copies, and the blobs are
    // uploaded instead.
    let other = other_users_bucket(&endpoint);
    let refused = store
        .backup(BackupTarget::S3(other.clone()), BackupOptions::default())
        .await
        .unwrap();
    assert_eq!(counts(&refused), (4, 4, 0), "{refused:?}");
    store.close().await;

    restore_and_check(&target, &dir.path().join("restored"), &key, me, &files).await;
    restore_and_check(&other, &dir.path().join("uploaded"), &key, me, &files).await;
}
