//! Backups off the device: a store (its blobs local or in the bucket)
//! backed up to an `s3://` prefix, incrementally, and restored from there
//! into an empty directory that then passes `verify --deep`; a damaged,
//! missing or altered object in the backup is refused and named before
//! anything is written. Needs `BV_TEST_S3_ENDPOINT` (skipped without it).

use std::time::Duration;

use bharatvoice_store::fuzzing::{backend_gets, s3_object, s3_objects, s3_set_object};
use bharatvoice_store::{
    Actor, BackupOptions, BackupTarget, BlobBackendConfig, Config, Error, LifecycleConfig,
    MasterKey, NewUser, PutOptions, RestoreOptions, S3Config, Store, VerifyOptions,
};

use crate::backends::{ENGINE, s3_config, s3_endpoint};
use crate::common::noise;

/// A name that appears in `store.redb` in clear (usernames are looked up)
/// and so must not appear in the uploaded snapshot.
const MARKER: &str = "marker-user-7f3e";

/// A store's settings for these tests (the object-storage suites share it).
pub(crate) fn config(dir: &std::path::Path, key: &MasterKey, backend: BlobBackendConfig) -> Config {
    crate::common::config(dir)
        .master_key(key.clone())
        .blob_chunk_bytes(64 << 10)
        .lifecycle(
            LifecycleConfig::default()
                .purge_grace(Duration::ZERO)
                .orphan_grace(Duration::ZERO),
        )
        .blob_backend(backend)
}

/// A store in `dir/data` over `backend`, and one user (`name`) with
/// audio-storage consent.
pub(crate) async fn store_with_user(
    dir: &std::path::Path,
    key: &MasterKey,
    backend: BlobBackendConfig,
    name: &str,
) -> (Store, bharatvoice_store::User) {
    let store = Store::open(config(&dir.join("data"), key, backend))
        .await
        .unwrap();
    let user = store
        .users()
        .create(
            NewUser::new(name, format!("{name}@example.in"))
                .consent(bharatvoice_store::ConsentKind::AudioStorage),
        )
        .await
        .unwrap();
    (store, user)
}

/// A test's store with its blobs in the test bucket and one user, while
/// it holds the suite's engine lock for reading. Fields drop in order:
/// the store before its directory, the lock last.
pub(crate) struct InBucket {
    pub(crate) store: Store,
    pub(crate) user: bharatvoice_store::User,
    pub(crate) key: MasterKey,
    pub(crate) endpoint: String,
    pub(crate) dir: tempfile::TempDir,
    _engine: tokio::sync::RwLockReadGuard<'static, ()>,
}

/// [`InBucket`] for the user `name`; `None` (the reason printed: the test
/// is skipped) without `BV_TEST_S3_ENDPOINT`.
pub(crate) async fn store_in_bucket(name: &str) -> Option<InBucket> {
    let Some(endpoint) = s3_endpoint() else {
        eprintln!("skipped: BV_TEST_S3_ENDPOINT is not set");
        return None;
    };
    let engine = ENGINE.read().await;
    let dir = tempfile::tempdir().unwrap();
    let key = MasterKey::generate().unwrap();
    let backend = BlobBackendConfig::S3(s3_config(&endpoint));
    let (store, user) = store_with_user(dir.path(), &key, backend, name).await;
    Some(InBucket {
        store,
        user,
        key,
        endpoint,
        dir,
        _engine: engine,
    })
}

/// Asserts a clean `verify --deep` that read `blobs` blobs.
pub(crate) async fn verify_deep(store: &Store, blobs: u64, what: &str) {
    let deep = store
        .verify(VerifyOptions {
            deep: true,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(
        deep.is_clean() && deep.blobs_read == blobs,
        "{what}: {deep:?}"
    );
}

/// The whole round: backups (full, then incremental), restores of the
/// newest and an older generation, for a store with local blobs and one
/// with its blobs in the bucket.
#[tokio::test]
async fn a_backup_to_s3_restored_into_an_empty_directory_passes_verify_deep() {
    let Some(endpoint) = s3_endpoint() else {
        return eprintln!("skipped: BV_TEST_S3_ENDPOINT is not set");
    };
    let _engine = ENGINE.read().await;
    for source in [
        BlobBackendConfig::Local,
        BlobBackendConfig::S3(s3_config(&endpoint)),
    ] {
        let source_kind = source.clone();
        let kind = match &source {
            BlobBackendConfig::Local => "local blobs",
            BlobBackendConfig::S3(_) => "blobs in the bucket",
        };
        let dir = tempfile::tempdir().unwrap();
        let key = MasterKey::generate().unwrap();
        let store = Store::open(config(&dir.path().join("data"), &key, source))
            .await
            .unwrap();
        let user = store
            .users()
            .create(
                NewUser::new(MARKER, "m@example.in")
                    .consent(bharatvoice_store::ConsentKind::AudioStorage),
            )
            .await
            .unwrap();
        // 0 B, one chunk, chunk+1, and 12 MiB (multipart at 5 MiB parts).
        let sizes = [0usize, 64 << 10, (64 << 10) + 1, 12 << 20];
        let mut files = Vec::new();
        for (i, n) in sizes.iter().enumerate() {
            let data = noise(*n, i as u64 + 1);
            let f = store
                .files()
                .put_bytes(
                    Actor::User(user.id),
                    user.id,
                    &data,
                    PutOptions::content_type("audio/wav"),
                )
                .await
                .unwrap();
            files.push((f.id, data));
        }
        // Another prefix of the same bucket: with the store's blobs in the
        // bucket, the engine copies them (the store reads none of them).
        let target = s3_config(&endpoint);
        let gets_before = backend_gets(&store);
        let first = store
            .backup(BackupTarget::S3(target.clone()), BackupOptions::default())
            .await
            .unwrap_or_else(|e| panic!("{kind}: backup: {e}"));
        assert_eq!(first.generation, 1);
        assert_eq!(first.blobs, sizes.len() as u64, "{kind}: {first:?}");
        let in_bucket = matches!(source_kind, BlobBackendConfig::S3(_));
        let (uploaded, by_engine) = if in_bucket {
            (0, first.blobs)
        } else {
            (first.blobs, 0)
        };
        assert_eq!(
            (first.blobs_copied, first.blobs_copied_by_engine),
            (uploaded, by_engine),
            "{kind}: {first:?}"
        );
        assert_eq!(
            backend_gets(&store),
            gets_before,
            "{kind}: the store read its own blobs for the backup"
        );
        if in_bucket {
            let stored: u64 = sizes.len() as u64;
            assert_eq!(first.blobs_copied_by_engine, stored);
            assert!(first.bytes_copied_by_engine > 12 << 20, "{first:?}");
        }
        assert!(first.destination.to_string_lossy().starts_with("s3://"));

        // The snapshot left sealed: no username in clear.
        let snapshot = s3_object(&target, "generations/000001/store.redb.sealed")
            .unwrap()
            .expect("the snapshot object");
        assert!(
            !snapshot
                .windows(MARKER.len())
                .any(|w| w == MARKER.as_bytes()),
            "{kind}: the uploaded snapshot holds a username in clear"
        );

        // Incremental: nothing new, nothing uploaded; one new file, one.
        let second = store
            .backup(BackupTarget::S3(target.clone()), BackupOptions::default())
            .await
            .unwrap();
        assert_eq!(
            (second.generation, second.blobs_copied, second.blobs_skipped),
            (2, 0, first.blobs),
            "{kind}: {second:?}"
        );
        let late = noise(300 << 10, 99);
        store
            .files()
            .put_bytes(
                Actor::User(user.id),
                user.id,
                &late,
                PutOptions::content_type("audio/wav"),
            )
            .await
            .unwrap();
        let third = store
            .backup(BackupTarget::S3(target.clone()), BackupOptions::default())
            .await
            .unwrap();
        assert_eq!(
            (
                third.generation,
                third.blobs_copied + third.blobs_copied_by_engine,
                third.blobs_skipped
            ),
            (3, 1, first.blobs),
            "{kind}: {third:?}"
        );
        assert_eq!(third.blobs_copied_by_engine, u64::from(in_bucket));
        let listed = Store::backups(BackupTarget::S3(target.clone())).unwrap();
        assert_eq!(
            listed.iter().map(|g| g.generation).collect::<Vec<_>>(),
            vec![1, 2, 3]
        );
        store.close().await;

        // The newest generation, into an empty directory with local blobs.
        let restored_dir = dir.path().join("restored");
        let local = config(&restored_dir, &key, BlobBackendConfig::Local);
        let report = Store::restore(
            BackupTarget::S3(target.clone()),
            &local,
            RestoreOptions::default(),
        )
        .await
        .unwrap_or_else(|e| panic!("{kind}: restore: {e}"));
        assert_eq!((report.generation, report.blobs), (3, 5), "{kind}");
        let restored = Store::open(local.clone()).await.unwrap();
        verify_deep(&restored, 5, kind).await;
        for (id, data) in &files {
            let back = restored
                .files()
                .read(Actor::User(user.id), *id)
                .await
                .unwrap();
            assert!(back == *data, "{kind}: file {id} read back differently");
        }
        restored.close().await;

        // An older generation: the store as it was then.
        let older = config(&dir.path().join("older"), &key, BlobBackendConfig::Local);
        let report = Store::restore(
            BackupTarget::S3(target.clone()),
            &older,
            RestoreOptions {
                generation: Some(1),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        assert_eq!((report.generation, report.blobs), (1, 4));
        let restored = Store::open(older).await.unwrap();
        verify_deep(&restored, 4, kind).await;
        restored.close().await;

        // A restore onto the restored store (not empty) is refused.
        let again =
            Store::restore(BackupTarget::S3(target), &local, RestoreOptions::default()).await;
        assert!(
            matches!(again, Err(Error::InvalidInput { .. })),
            "{again:?}"
        );
    }
}

/// A store whose blobs are in the bucket backs up to a local directory:
/// each blob read through the backend into the backup (nothing to link),
/// incrementally, a blob the bucket lost listed as missing; the backup
/// restores into a store with local blobs that passes `verify --deep`.
#[tokio::test]
async fn a_store_with_its_blobs_in_the_bucket_backs_up_to_a_directory() {
    let Some(endpoint) = s3_endpoint() else {
        return eprintln!("skipped: BV_TEST_S3_ENDPOINT is not set");
    };
    let _engine = ENGINE.read().await;
    let dir = tempfile::tempdir().unwrap();
    let key = MasterKey::generate().unwrap();
    let blobs = s3_config(&endpoint);
    let store = Store::open(config(
        &dir.path().join("data"),
        &key,
        BlobBackendConfig::S3(blobs.clone()),
    ))
    .await
    .unwrap();
    let user = store
        .users()
        .create(
            NewUser::new("dir-backup", "db@example.in")
                .consent(bharatvoice_store::ConsentKind::AudioStorage),
        )
        .await
        .unwrap();
    let me = Actor::User(user.id);
    let put = |data: Vec<u8>| {
        let store = &store;
        async move {
            let f = store
                .files()
                .put_bytes(me, user.id, &data, PutOptions::content_type("audio/wav"))
                .await
                .unwrap();
            (f.id, data)
        }
    };
    let mut files = Vec::new();
    for (i, n) in [0usize, 64 << 10, (64 << 10) + 1, 7 << 20]
        .iter()
        .enumerate()
    {
        files.push(put(noise(*n, i as u64 + 40)).await);
    }
    let dest = dir.path().join("backups");
    let first = store
        .backup(dest.clone(), BackupOptions::default())
        .await
        .unwrap_or_else(|e| panic!("backup of a bucket-backed store to a directory: {e}"));
    assert_eq!(first.generation, 1);
    assert_eq!(
        (first.blobs, first.blobs_copied, first.blobs_linked),
        (4, 4, 0),
        "{first:?}"
    );
    assert!(first.missing.is_empty(), "{first:?}");
    let stored: u64 = s3_objects(&blobs)
        .unwrap()
        .iter()
        .filter(|n| n.starts_with("blobs/"))
        .map(|n| s3_object(&blobs, n).unwrap().unwrap().len() as u64)
        .sum();
    assert_eq!(first.bytes_copied, stored, "every sealed object, whole");

    // Incremental: one new file, one copied; the rest skipped.
    files.push(put(noise(300 << 10, 47)).await);
    let second = store
        .backup(dest.clone(), BackupOptions::default())
        .await
        .unwrap();
    assert_eq!(
        (second.generation, second.blobs_copied, second.blobs_skipped),
        (2, 1, 4),
        "{second:?}"
    );

    // The newest generation restores into a store with local blobs.
    let restored_config = config(&dir.path().join("restored"), &key, BlobBackendConfig::Local);
    let report = Store::restore(dest.clone(), &restored_config, RestoreOptions::default())
        .await
        .unwrap();
    assert_eq!((report.generation, report.blobs), (2, 5));
    let restored = Store::open(restored_config).await.unwrap();
    verify_deep(&restored, 5, "restored from a directory").await;
    for (id, data) in &files {
        let back = restored.files().read(me, *id).await.unwrap();
        assert!(back == *data, "file {id} read back differently");
    }
    restored.close().await;

    // A blob the bucket lost behind the store is listed as missing (the
    // newest generation already holds it: a new destination).
    let lost = s3_objects(&blobs)
        .unwrap()
        .into_iter()
        .find(|n| n.starts_with("blobs/"))
        .expect("a blob object");
    s3_set_object(&blobs, &lost, None).unwrap();
    let third = store
        .backup(dir.path().join("fresh"), BackupOptions::default())
        .await
        .unwrap();
    assert_eq!(third.missing.len(), 1, "{third:?}");
    assert!(
        lost.ends_with(&third.missing[0].to_string()),
        "{lost} vs {third:?}"
    );
    assert_eq!(third.blobs_copied, 4, "{third:?}");
    store.close().await;
}

/// Each kind of damage to a backup in the bucket is refused, naming the
/// object, and leaves the target without a store.
#[tokio::test]
async fn a_damaged_s3_backup_is_refused_naming_the_object() {
    let Some(endpoint) = s3_endpoint() else {
        return eprintln!("skipped: BV_TEST_S3_ENDPOINT is not set");
    };
    let _engine = ENGINE.read().await;
    let dir = tempfile::tempdir().unwrap();
    let key = MasterKey::generate().unwrap();
    let (store, user) = store_with_user(dir.path(), &key, BlobBackendConfig::Local, "damage").await;
    store
        .files()
        .put_bytes(
            Actor::User(user.id),
            user.id,
            &noise(200 << 10, 5),
            PutOptions::content_type("audio/wav"),
        )
        .await
        .unwrap();
    let target: S3Config = s3_config(&endpoint);
    store
        .backup(BackupTarget::S3(target.clone()), BackupOptions::default())
        .await
        .unwrap();
    store.close().await;
    let names = s3_objects(&target).unwrap();
    let blob = names
        .iter()
        .find(|n| n.starts_with("blobs/"))
        .expect("a blob object")
        .clone();
    let restore_into = |name: &str| {
        let target = target.clone();
        let config = config(&dir.path().join(name), &key, BlobBackendConfig::Local);
        async move {
            let r =
                Store::restore(BackupTarget::S3(target), &config, RestoreOptions::default()).await;
            assert!(
                r.is_ok() || !config.data_dir.join("store.redb").exists(),
                "a refused restore left a store.redb"
            );
            r
        }
    };
    let expect_integrity = |r: Result<bharatvoice_store::RestoreReport, Error>, names: &str| match r
    {
        Err(Error::Integrity { what, detail }) => {
            assert!(
                what.contains(names),
                "{what}: {detail} (expected to name {names})"
            )
        }
        other => panic!("expected an integrity error naming {names}, got {other:?}"),
    };

    // A bit flipped in a blob.
    let original = s3_object(&target, &blob).unwrap().unwrap();
    let mut flipped = original.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 1;
    s3_set_object(&target, &blob, Some(flipped)).unwrap();
    expect_integrity(restore_into("flipped").await, &blob);
    // The blob gone.
    s3_set_object(&target, &blob, None).unwrap();
    expect_integrity(restore_into("missing").await, &blob);
    s3_set_object(&target, &blob, Some(original)).unwrap();
    restore_into("whole")
        .await
        .expect("the mended backup restores");

    // The sealed snapshot altered.
    let snap = "generations/000001/store.redb.sealed";
    let sealed = s3_object(&target, snap).unwrap().unwrap();
    let mut altered = sealed.clone();
    let at = altered.len() - 3;
    altered[at] ^= 0x40;
    s3_set_object(&target, snap, Some(altered)).unwrap();
    expect_integrity(restore_into("snapshot").await, snap);
    s3_set_object(&target, snap, Some(sealed)).unwrap();

    // The manifest altered, and a restore under another master key.
    let manifest = "generations/000001/manifest.json";
    let body = s3_object(&target, manifest).unwrap().unwrap();
    let text = String::from_utf8(body.clone()).unwrap();
    s3_set_object(
        &target,
        manifest,
        Some(text.replacen("\"bytes\": ", "\"bytes\": 1", 1).into_bytes()),
    )
    .unwrap();
    expect_integrity(restore_into("manifest").await, "manifest.json");
    s3_set_object(&target, manifest, Some(body)).unwrap();
    let other_key = config(
        &dir.path().join("other-key"),
        &MasterKey::generate().unwrap(),
        BlobBackendConfig::Local,
    );
    let r = Store::restore(
        BackupTarget::S3(target.clone()),
        &other_key,
        RestoreOptions::default(),
    )
    .await;
    expect_integrity(r, "manifest.json");
}

/// A prefix that holds things other than backups is refused; so is a
/// second store's backup into the first's prefix.
#[tokio::test]
async fn an_s3_prefix_of_other_things_or_another_store_is_refused() {
    let Some(endpoint) = s3_endpoint() else {
        return eprintln!("skipped: BV_TEST_S3_ENDPOINT is not set");
    };
    let _engine = ENGINE.read().await;
    let dir = tempfile::tempdir().unwrap();
    let key = MasterKey::generate().unwrap();
    let open = |name: &str| {
        Store::open(config(
            &dir.path().join(name),
            &key,
            BlobBackendConfig::Local,
        ))
    };
    let (a, b) = (open("a").await.unwrap(), open("b").await.unwrap());
    let target = s3_config(&endpoint);
    s3_set_object(&target, "notes.txt", Some(b"not a backup".to_vec())).unwrap();
    let r = a
        .backup(BackupTarget::S3(target.clone()), BackupOptions::default())
        .await;
    assert!(matches!(r, Err(Error::InvalidInput { .. })), "{r:?}");
    assert_eq!(s3_objects(&target).unwrap(), vec!["notes.txt".to_string()]);

    let target = s3_config(&endpoint);
    a.backup(BackupTarget::S3(target.clone()), BackupOptions::default())
        .await
        .unwrap();
    let r = b
        .backup(BackupTarget::S3(target.clone()), BackupOptions::default())
        .await;
    assert!(matches!(r, Err(Error::InvalidInput { .. })), "{r:?}");
    // `keep` deletes the older generations' objects and only theirs.
    for _ in 0..2 {
        a.backup(BackupTarget::S3(target.clone()), BackupOptions::default())
            .await
            .unwrap();
    }
    let kept = a
        .backup(
            BackupTarget::S3(target.clone()),
            BackupOptions {
                keep: Some(1),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(kept.generations_removed, vec![1, 2, 3]);
    let generations: Vec<_> = Store::backups(BackupTarget::S3(target.clone()))
        .unwrap()
        .iter()
        .map(|g| g.generation)
        .collect();
    assert_eq!(generations, vec![4]);
    assert!(
        s3_objects(&target)
            .unwrap()
            .iter()
            .all(|n| !n.starts_with("generations/00000") || n.starts_with("generations/000004/")),
        "{:?}",
        s3_objects(&target)
    );
    a.close().await;
    b.close().await;
}
