//! Passes over every blob go around the object backend's read cache: a
//! backup into a directory, a backup uploaded into a bucket and a deep
//! verify each read a blob once, and keep none of what they fetch, so
//! the hot audio the cache is for is not pushed out by them. Needs
//! `BV_TEST_S3_ENDPOINT` (skipped without it).

use bharatvoice_store::fuzzing::backend_gets;
use bharatvoice_store::{Actor, BackupOptions, BackupTarget, PutOptions, VerifyOptions};

use crate::backends_backup::{InBucket, store_in_bucket};
use crate::backends_cross::other_users_bucket;
use crate::common::noise;

#[tokio::test]
async fn backups_and_deep_verify_add_nothing_to_the_read_cache() {
    let Some(InBucket {
        store,
        user,
        endpoint,
        dir,
        ..
    }) = store_in_bucket("read-once").await
    else {
        return;
    };
    let me = Actor::User(user.id);
    let gets = || backend_gets(&store).expect("counts GETs");
    let mut seed = 60;
    let mut put = || {
        seed += 2; // `noise` ors its seed with 1
        let (files, data) = (store.files(), noise(300 << 10, seed));
        async move {
            let f = files
                .put_bytes(me, user.id, &data, PutOptions::content_type("audio/wav"))
                .await
                .unwrap();
            (f.id, data)
        }
    };

    // An ordinary read is kept: read again, it sends no GET.
    let (hot, hot_data) = put().await;
    assert!(store.files().read(me, hot).await.unwrap() == hot_data);
    let before = gets();
    assert!(store.files().read(me, hot).await.unwrap() == hot_data);
    assert_eq!(gets(), before, "an ordinary read was not kept");

    // Another user's bucket: the engine cannot copy from the store's
    // bucket there, so that backup reads every blob through the backend.
    let uploaded = other_users_bucket(&endpoint);
    for pass in [
        "backup into a directory",
        "backup uploaded",
        "verify --deep",
    ] {
        // A file no read has touched, then the pass over every blob.
        let (cold, cold_data) = put().await;
        let read_by_pass = gets();
        match pass {
            "backup into a directory" => {
                let r = store
                    .backup(dir.path().join("backup"), BackupOptions::default())
                    .await
                    .unwrap();
                assert!(r.blobs_copied >= 1, "{r:?}");
            }
            "backup uploaded" => {
                let r = store
                    .backup(BackupTarget::S3(uploaded.clone()), BackupOptions::default())
                    .await
                    .unwrap();
                assert_eq!(r.blobs_copied_by_engine, 0, "{r:?}");
                assert!(r.blobs_copied >= 1, "{r:?}");
            }
            _ => {
                let r = store
                    .verify(VerifyOptions {
                        deep: true,
                        ..Default::default()
                    })
                    .await
                    .unwrap();
                assert!(r.is_clean() && r.blobs_read >= 2, "{r:?}");
            }
        }
        assert!(gets() > read_by_pass, "{pass}: the pass read nothing");
        // The pass read the new file, but an ordinary read of it still has
        // to fetch it: the pass kept none of it.
        let after_pass = gets();
        assert!(store.files().read(me, cold).await.unwrap() == cold_data);
        assert!(
            gets() > after_pass,
            "{pass}: the file it read came from the read cache afterwards"
        );
    }
    // And the hot file is still served from the cache.
    let before = gets();
    assert!(store.files().read(me, hot).await.unwrap() == hot_data);
    assert_eq!(gets(), before, "the hot file was pushed out");
    store.close().await;
}
