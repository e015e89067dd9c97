//! One behaviour for every blob backend: the same suite runs over the
//! local directory and, in a build with the `s3` feature and with
//! `BV_TEST_S3_ENDPOINT` set (`.ci/run` starts a one-node Ceph cluster
//! for it, see `scripts/ceph-dev.sh`), over a bucket of an S3-compatible
//! store. Without an endpoint the S3 half says why it is skipped and
//! passes, so `cargo test` on a laptop needs no server.

use std::time::Duration;

use bharatvoice_store::fuzzing::{backend_blobs, place_orphan, remove_blob};
#[cfg(feature = "s3")]
use bharatvoice_store::fuzzing::{
    backend_gets, backend_heads, s3_delete_behind, s3_object, s3_set_object,
};
use bharatvoice_store::{
    Actor, AudioFile, BlobBackendConfig, Config, LifecycleConfig, PutOptions, Store,
};

use crate::common::{TestStore, assert_verifies_deep, noise};

/// Plaintext bytes per chunk in these stores.
const CHUNK: usize = 64 << 10;

/// Which backend a run of the suite uses.
#[derive(Clone, Copy, Debug)]
enum Kind {
    Local,
    #[cfg(feature = "s3")]
    S3,
}

/// The backends this build and environment can test.
fn kinds() -> Vec<Kind> {
    #[allow(unused_mut)]
    let mut kinds = vec![Kind::Local];
    #[cfg(feature = "s3")]
    match s3_endpoint() {
        Some(_) => kinds.push(Kind::S3),
        None => eprintln!(
            "skipping the S3 backend: BV_TEST_S3_ENDPOINT is not set (scripts/ceph-dev.sh start DIR starts one)"
        ),
    }
    #[cfg(not(feature = "s3"))]
    eprintln!("skipping the S3 backend: built without the `s3` feature");
    kinds
}

/// Held shared by every test that uses the engine, and exclusively by
/// the one that stops its gateway.
pub(crate) static ENGINE: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

#[cfg(feature = "s3")]
pub(crate) fn s3_endpoint() -> Option<String> {
    std::env::var("BV_TEST_S3_ENDPOINT")
        .ok()
        .filter(|e| !e.is_empty())
}

/// The S3 settings of a test: its own prefix in the test bucket.
/// A test setting from the environment, or its default.
#[cfg(feature = "s3")]
pub(crate) fn s3_var(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.into())
}

#[cfg(feature = "s3")]
pub(crate) fn s3_config(endpoint: &str) -> bharatvoice_store::S3Config {
    let var = s3_var;
    bharatvoice_store::S3Config::new(var("BV_TEST_S3_BUCKET", "bvstore-test"))
        .endpoint(endpoint)
        .region("us-east-1")
        .prefix(format!("test-{}", uuid::Uuid::now_v7()))
        .credentials(
            var("BV_TEST_S3_ACCESS_KEY", "bvstore-access"),
            var("BV_TEST_S3_SECRET_KEY", "bvstore-secret"),
        )
        .part_bytes(5 << 20)
}

fn backend(kind: Kind) -> BlobBackendConfig {
    match kind {
        Kind::Local => BlobBackendConfig::Local,
        #[cfg(feature = "s3")]
        Kind::S3 => BlobBackendConfig::S3(s3_config(&s3_endpoint().unwrap_or_default())),
    }
}

pub(crate) fn config(dir: &std::path::Path, backend: BlobBackendConfig) -> Config {
    crate::common::config(dir)
        .blob_chunk_bytes(CHUNK as u32)
        .lifecycle(
            LifecycleConfig::default()
                .purge_grace(Duration::ZERO)
                .orphan_grace(Duration::ZERO),
        )
        .blob_backend(backend)
}

async fn open(kind: Kind) -> TestStore {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(config(dir.path(), backend(kind)))
        .await
        .unwrap_or_else(|e| panic!("{kind:?}: open: {e}"));
    TestStore { dir, store }
}

/// Regular files under `dir` (none if it is missing).
fn files_under(dir: &std::path::Path) -> usize {
    let mut n = 0;
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let t = e.file_type().unwrap();
        if t.is_dir() {
            n += files_under(&e.path());
        } else if t.is_file() {
            n += 1;
        }
    }
    n
}

async fn put(t: &TestStore, user: &bharatvoice_store::User, data: &[u8]) -> AudioFile {
    t.put_as(user, data, PutOptions::content_type("audio/wav"))
        .await
}

#[tokio::test]
async fn round_trips_of_every_size_class_read_back_whole_and_in_ranges() {
    let _engine = ENGINE.read().await;
    for kind in kinds() {
        let t = open(kind).await;
        let u = t.user("asha").await;
        let me = Actor::User(u.id);
        // 0 B, one chunk, a chunk and a byte, and (with 5 MiB parts) a
        // multipart upload of three parts.
        for (i, n) in [0, CHUNK, CHUNK + 1, 11 << 20].into_iter().enumerate() {
            let data = noise(n, i as u64 + 1);
            let f = put(&t, &u, &data).await;
            let back = t.store.files().read(me, f.id).await.unwrap();
            assert!(back == data, "{kind:?}: {n} bytes read back differently");
            if n > 2 * CHUNK {
                // A range across a chunk boundary, and the last byte.
                let (at, len) = (CHUNK as u64 - 100, 3 * CHUNK as u64);
                let range = t.store.files().read_range(me, f.id, at, len).await.unwrap();
                assert!(range == data[at as usize..(at + len) as usize], "{kind:?}");
                let last = t
                    .store
                    .files()
                    .read_range(me, f.id, n as u64 - 1, 1)
                    .await
                    .unwrap();
                assert_eq!(last, [data[n - 1]], "{kind:?}");
            }
        }
        assert_eq!(backend_blobs(&t.store).await.unwrap().len(), 4, "{kind:?}");
        let local_files = files_under(&t.dir.path().join("blobs"));
        match kind {
            Kind::Local => assert_eq!(local_files, 4),
            #[cfg(feature = "s3")]
            Kind::S3 => assert_eq!(local_files, 0, "no blob is kept on the device"),
        }
        assert_verifies_deep(&t.store, &format!("{kind:?}")).await;
        t.store.close().await;
    }
}

#[tokio::test]
async fn equal_bytes_are_stored_once_and_the_purge_deletes_the_object_with_the_last_reference() {
    let _engine = ENGINE.read().await;
    for kind in kinds() {
        let t = open(kind).await;
        let u = t.user("ravi").await;
        let me = Actor::User(u.id);
        let data = noise(3 * CHUNK, 7);
        let a = put(&t, &u, &data).await;
        let b = put(&t, &u, &data).await;
        assert_eq!(a.blob, b.blob, "{kind:?}");
        assert_eq!(backend_blobs(&t.store).await.unwrap().len(), 1, "{kind:?}");

        t.store.files().delete(me, a.id).await.unwrap();
        t.store
            .lifecycle()
            .run_to_end("purge", false)
            .await
            .unwrap();
        assert_eq!(
            backend_blobs(&t.store).await.unwrap().len(),
            1,
            "{kind:?}: still referenced"
        );
        assert_eq!(t.store.files().read(me, b.id).await.unwrap(), data);

        t.store.files().delete(me, b.id).await.unwrap();
        let r = t
            .store
            .lifecycle()
            .run_to_end("purge", false)
            .await
            .unwrap();
        assert_eq!(r.count("blobs_destroyed"), 1, "{kind:?}: {r:?}");
        assert!(
            backend_blobs(&t.store).await.unwrap().is_empty(),
            "{kind:?}"
        );
        t.store.close().await;
    }
}

#[tokio::test]
async fn an_object_no_record_names_is_collected_and_a_missing_one_is_reported() {
    let _engine = ENGINE.read().await;
    for kind in kinds() {
        let t = open(kind).await;
        let u = t.user("meera").await;
        let kept = put(&t, &u, &noise(1000, 3)).await;
        // A put that died after its upload and before its commit.
        place_orphan(
            &t.store,
            [0xab; 32],
            b"sealed bytes of a put that never committed",
        )
        .await
        .unwrap();
        assert_eq!(backend_blobs(&t.store).await.unwrap().len(), 2, "{kind:?}");
        let r = t
            .store
            .lifecycle()
            .run_to_end("orphans", false)
            .await
            .unwrap();
        assert_eq!(r.count("orphans_removed"), 1, "{kind:?}: {r:?}");
        let left = backend_blobs(&t.store).await.unwrap();
        assert_eq!(left.len(), 1, "{kind:?}: {left:?}");
        assert_eq!(left[0].0, kept.blob.to_string(), "{kind:?}");

        // The object of a record taken away behind the store's back: the
        // collector reports it and marks the record damaged, and a read
        // says the blob is missing.
        assert!(
            remove_blob(&t.store, kept.blob.0).await.unwrap(),
            "{kind:?}"
        );
        let r = t
            .store
            .lifecycle()
            .run_to_end("orphans", false)
            .await
            .unwrap();
        assert_eq!(r.count("blobs_missing"), 1, "{kind:?}: {r:?}");
        let read = t.store.files().read(Actor::User(u.id), kept.id).await;
        assert!(
            matches!(read, Err(bharatvoice_store::Error::Integrity { .. })),
            "{kind:?}: {read:?}"
        );
        t.store.close().await;
    }
}

/// Object reads fetch the byte ranges they need with one ranged GET per
/// contiguous run (its body streamed), not one per chunk: opening an
/// object reads its header (from the first 64 KiB) and its trailer and
/// chunk table (from the last 64 KiB, one GET for both). What was fetched
/// stays in the read cache, so reading a hot file again downloads
/// nothing; with the cache off, every read fetches again.
#[cfg(feature = "s3")]
#[tokio::test]
async fn object_reads_take_one_ranged_get_per_run_of_chunks() {
    if s3_endpoint().is_none() {
        return eprintln!("skipped: BV_TEST_S3_ENDPOINT is not set");
    }
    let _engine = ENGINE.read().await;
    let t = open(Kind::S3).await;
    let u = t.user("kiran").await;
    let me = Actor::User(u.id);
    let n = 11 << 20; // 176 chunks of 64 KiB
    let data = noise(n, 11);
    let f = put(&t, &u, &data).await;
    let gets = || backend_gets(&t.store).expect("a remote backend counts its GETs");

    let before = gets();
    let (at, len) = (5 * CHUNK as u64 + 17, 3 * CHUNK as u64);
    let range = t.store.files().read_range(me, f.id, at, len).await.unwrap();
    assert!(range == data[at as usize..(at + len) as usize]);
    assert_eq!(
        gets() - before,
        2 + 1,
        "four chunks: one GET after the open's two"
    );

    let before = gets();
    assert!(t.store.files().read(me, f.id).await.unwrap() == data);
    assert_eq!(
        gets() - before,
        1,
        "the open from the cache; the 11 MiB run in one GET"
    );
    let before = gets();
    assert!(t.store.files().read(me, f.id).await.unwrap() == data);
    assert_eq!(gets() - before, 0, "all of it from the read cache");
    t.store.close().await;

    // The same with the cache off.
    let dir = tempfile::tempdir().unwrap();
    let s3 = s3_config(&s3_endpoint().unwrap_or_default()).read_cache_bytes(0);
    let store = Store::open(config(dir.path(), BlobBackendConfig::S3(s3)))
        .await
        .unwrap();
    let t = TestStore { dir, store };
    let u = t.user("kiran").await;
    let me = Actor::User(u.id);
    let f = put(&t, &u, &data).await;
    for _ in 0..2 {
        let before = backend_gets(&t.store).unwrap();
        assert!(t.store.files().read(me, f.id).await.unwrap() == data);
        assert_eq!(backend_gets(&t.store).unwrap() - before, 2 + 1);
    }
    t.store.close().await;
}

/// An object opened from the read cache sends no `HEAD`: the GET of the
/// run it reads confirms it is still there, and a run the cache holds too
/// is confirmed by one `HEAD` before any of it is handed out. So an
/// object deleted behind the store's back (by another client of the
/// bucket, which the store's cache never hears of) is never served from
/// the cache: every read says the blob is missing; put back, it reads
/// again; replaced by other bytes, it is refused and its cached bytes
/// dropped.
#[cfg(feature = "s3")]
#[tokio::test]
async fn a_cached_object_deleted_behind_the_store_is_not_served() {
    let Some(endpoint) = s3_endpoint() else {
        return eprintln!("skipped: BV_TEST_S3_ENDPOINT is not set");
    };
    let _engine = ENGINE.read().await;
    let s3 = s3_config(&endpoint);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(config(dir.path(), BlobBackendConfig::S3(s3.clone())))
        .await
        .unwrap();
    let t = TestStore { dir, store };
    let u = t.user("tara").await;
    let me = Actor::User(u.id);
    let data = noise(2 << 20, 5);
    let f = put(&t, &u, &data).await;
    let requests = || {
        (
            backend_heads(&t.store).expect("counts HEADs"),
            backend_gets(&t.store).expect("counts GETs"),
        )
    };
    let read_at = |at: usize| {
        let files = t.store.files();
        async move { files.read_range(me, f.id, at as u64, CHUNK as u64).await }
    };
    let (a, b) = (3 * CHUNK + 5, 20 * CHUNK + 9);

    // Cold: a HEAD, the open's GETs and the run's.
    assert!(read_at(a).await.unwrap() == data[a..a + CHUNK]);
    // Warm metadata, another run: no HEAD, one GET.
    let (heads, gets) = requests();
    assert!(read_at(b).await.unwrap() == data[b..b + CHUNK]);
    assert_eq!(requests(), (heads, gets + 1), "opened from the cache");
    // All of it cached: one HEAD confirms it, no GET.
    assert!(read_at(b).await.unwrap() == data[b..b + CHUNK]);
    assert_eq!(requests(), (heads + 1, gets + 1), "confirmed by a HEAD");

    let name = format!("blobs/{}", f.blob);
    let set_behind = |bytes: Option<Vec<u8>>| {
        let (config, name) = (s3.clone(), name.clone());
        tokio::task::spawn_blocking(move || s3_set_object(&config, &name, bytes))
    };
    let copy = {
        let (config, name) = (s3.clone(), name.clone());
        tokio::task::spawn_blocking(move || s3_object(&config, &name))
            .await
            .unwrap()
            .unwrap()
            .expect("the object")
    };
    let address = f.blob.0;
    let config = s3.clone();
    let gone = tokio::task::spawn_blocking(move || s3_delete_behind(&config, address))
        .await
        .unwrap();
    assert!(gone.unwrap(), "the object was there");
    for read in [
        read_at(a).await,
        read_at(b).await,
        t.store.files().read(me, f.id).await,
    ] {
        match read {
            Err(bharatvoice_store::Error::Integrity { detail, .. }) => {
                assert!(detail.contains("missing"), "{detail}")
            }
            other => panic!("a deleted object was read: {:?}", other.map(|b| b.len())),
        }
    }

    // Put back as it was: read again.
    set_behind(Some(copy)).await.unwrap().unwrap();
    assert!(read_at(b).await.unwrap() == data[b..b + CHUNK]);
    // Replaced by other bytes (another length): the read that finds it
    // out fails and drops what the cache held, so the next open asks the
    // server and finds bytes that are no blob.
    set_behind(Some(vec![7; 1000])).await.unwrap().unwrap();
    assert!(read_at(b).await.is_err(), "the old length is refused");
    let again = read_at(b).await;
    assert!(
        matches!(again, Err(bharatvoice_store::Error::Integrity { .. })),
        "{:?}",
        again.map(|b| b.len())
    );
    t.store.close().await;
}

/// A 200 MiB recording goes up as a multipart upload (40 parts of 5 MiB)
/// and reads back whole.
#[cfg(feature = "s3")]
#[tokio::test]
async fn a_200_mib_file_goes_up_in_parts_and_reads_back() {
    if s3_endpoint().is_none() {
        return eprintln!("skipped: BV_TEST_S3_ENDPOINT is not set");
    }
    let _engine = ENGINE.read().await;
    let t = open(Kind::S3).await;
    let u = t.user("big").await;
    // 1 MiB of noise, 200 times: no 64 KiB chunk compresses.
    let data = noise(1 << 20, 200).repeat(200);
    let f = put(&t, &u, &data).await;
    let blobs = backend_blobs(&t.store).await.unwrap();
    assert_eq!(blobs.len(), 1);
    assert!(blobs[0].1 > 200 << 20, "{blobs:?}");
    let back = t.store.files().read(Actor::User(u.id), f.id).await.unwrap();
    assert!(back == data, "200 MiB read back differently");
    assert_verifies_deep(&t.store, "200 MiB on S3").await;
    t.store.close().await;
}

/// An endpoint nobody answers: the open fails with the store's error,
/// naming the bucket, within its retry budget.
#[cfg(feature = "s3")]
#[tokio::test]
async fn an_unreachable_endpoint_is_a_clear_error_at_open() {
    let dir = tempfile::tempdir().unwrap();
    // A port nothing listens on.
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = free.local_addr().unwrap().port();
    drop(free);
    let s3 = bharatvoice_store::S3Config::new("nowhere")
        .endpoint(format!("http://127.0.0.1:{port}"))
        .region("us-east-1")
        .credentials("a", "b")
        .retries(1, Duration::from_secs(5))
        .timeouts(Duration::from_secs(2), Duration::from_secs(1));
    let started = std::time::Instant::now();
    let e = Store::open(config(dir.path(), BlobBackendConfig::S3(s3)))
        .await
        .expect_err("an open against nothing fails");
    eprintln!("the error: {e}");
    assert_eq!(e.kind(), "storage", "{e}");
    assert!(e.to_string().contains("s3://nowhere"), "{e}");
    assert!(started.elapsed() < Duration::from_secs(60), "{e}");
}

/// A build without the feature refuses an S3 configuration, before it
/// makes anything, rather than keeping blobs where the configuration did
/// not say.
#[cfg(not(feature = "s3"))]
#[tokio::test]
async fn a_build_without_the_feature_refuses_an_s3_backend() {
    let dir = tempfile::tempdir().unwrap();
    let s3 = bharatvoice_store::S3Config::new("b").endpoint("http://127.0.0.1:1");
    let e = Store::open(config(dir.path(), BlobBackendConfig::S3(s3)))
        .await
        .expect_err("refused");
    assert_eq!(e.kind(), "config", "{e}");
    assert!(e.to_string().contains("s3"), "{e}");
    assert!(!dir.path().join("store.redb").exists());
}
