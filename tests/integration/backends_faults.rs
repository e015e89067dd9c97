//! The object backend when things go wrong on the way to the engine: a
//! `bvstore file put` killed in the middle of its multipart upload, an
//! upload that outlasts the orphan grace beside the collector, and
//! the gateway killed and started again while a store uses it. Needs a
//! running engine (`BV_TEST_S3_ENDPOINT`); the gateway test also needs
//! the cluster's directory (`BV_TEST_CEPH_DIR`, the one given to
//! `scripts/ceph-dev.sh start`), since it stops and starts radosgw itself
//! (holding the suite's engine lock, so no other test sees it down).
//! Without them each test says why it is skipped.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use bharatvoice_store::fuzzing::{
    backend_blobs, s3_open_uploads, s3_upload_marker_times, s3_upload_takes_parts,
};
use bharatvoice_store::{
    Actor, BlobBackendConfig, ConsentKind, HealthStatus, LifecycleConfig, ListOptions, NewUser,
    PutOptions, S3Config, Store,
};

use crate::backends::{ENGINE, config, s3_config, s3_endpoint, s3_var};
use crate::common::{TestStore, assert_verifies_deep, bvstore_command, noise, stderr};

/// A fresh prefix in the test bucket, as settings and as the config file
/// a `bvstore` child reads.
fn bucket(endpoint: &str) -> (S3Config, String) {
    let (bucket, prefix) = (
        s3_var("BV_TEST_S3_BUCKET", "bvstore-test"),
        format!("test-{}", uuid::Uuid::now_v7()),
    );
    let (id, secret) = (
        s3_var("BV_TEST_S3_ACCESS_KEY", "bvstore-access"),
        s3_var("BV_TEST_S3_SECRET_KEY", "bvstore-secret"),
    );
    let part = 5 << 20;
    let s3 = S3Config::new(&bucket)
        .endpoint(endpoint)
        .region("us-east-1")
        .prefix(&prefix)
        .credentials(&id, &secret)
        .part_bytes(part);
    let toml = format!(
        "[blob_backend]\nkind = \"s3\"\nbucket = \"{bucket}\"\nendpoint = \"{endpoint}\"\n\
         region = \"us-east-1\"\nprefix = \"{prefix}\"\naccess_key_id = \"{id}\"\n\
         secret_access_key = \"{secret}\"\npart_bytes = {part}\n"
    );
    (s3, toml)
}

async fn open_uploads(s3: &S3Config) -> Vec<(String, String)> {
    let s3 = s3.clone();
    tokio::task::spawn_blocking(move || s3_open_uploads(&s3))
        .await
        .unwrap()
        .expect("list the upload markers")
}

async fn takes_parts(s3: &S3Config, key: &str, id: &str) -> bool {
    let (s3, key, id) = (s3.clone(), key.to_string(), id.to_string());
    tokio::task::spawn_blocking(move || s3_upload_takes_parts(&s3, &key, &id))
        .await
        .unwrap()
        .expect("send a probe part")
}

/// `bvstore --config FILE ...` on `data_dir`, which must succeed.
fn bvstore_ok(data_dir: &Path, conf: &Path, args: &[&str]) {
    let conf = conf.to_str().unwrap();
    let out = bvstore_command(data_dir, &[&["--config", conf], args].concat())
        .output()
        .unwrap();
    assert!(out.status.success(), "{args:?}: {}", stderr(&out));
}

/// A put killed while its parts go up commits no record and leaves no
/// object; the upload it left open (its parts take space on the server)
/// is aborted by the orphan collector once older than the grace period,
/// not before, and not by a dry run. The same file then goes up whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_killed_mid_upload_commits_nothing_and_its_upload_is_aborted() {
    let Some(endpoint) = s3_endpoint() else {
        return eprintln!("skipped: BV_TEST_S3_ENDPOINT is not set");
    };
    let _engine = ENGINE.read().await;
    let (s3, toml) = bucket(&endpoint);
    let dir = tempfile::tempdir().unwrap();
    let (data_dir, conf) = (dir.path().join("data"), dir.path().join("bvstore.toml"));
    std::fs::write(&conf, toml).unwrap();
    bvstore_ok(&data_dir, &conf, &["init"]);
    let add = [
        "user",
        "add",
        "--consent",
        "audio-storage",
        "--username",
        "cut",
    ];
    bvstore_ok(
        &data_dir,
        &conf,
        &[&add[..], &["--email", "cut@example.in"]].concat(),
    );
    let input = dir.path().join("long.bin");
    let data = noise(96 << 20, 5);
    std::fs::write(&input, &data).unwrap();
    let put = ["file", "put", input.to_str().unwrap(), "--user", "cut"];
    let mut child = bvstore_command(
        &data_dir,
        &[&["--config", conf.to_str().unwrap()], &put[..]].concat(),
    )
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    // Killed as soon as its upload is seen to have begun.
    let started = Instant::now();
    let open = loop {
        let open = open_uploads(&s3).await;
        if !open.is_empty() {
            break open;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the put ended ({status}) before its upload was seen");
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "no upload began"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(open.len(), 1, "{open:?}");
    let (key, id) = &open[0];
    assert!(
        takes_parts(&s3, key, id).await,
        "the killed put's upload is open"
    );

    let reopen = |grace: Duration| {
        let lifecycle = LifecycleConfig::default().orphan_grace(grace);
        let backend = BlobBackendConfig::S3(s3.clone());
        Store::open(
            crate::common::config(&data_dir)
                .blob_backend(backend)
                .lifecycle(lifecycle),
        )
    };
    let store = reopen(Duration::from_secs(3600)).await.unwrap();
    let user = store.users().get_by_username("cut").unwrap();
    let me = Actor::User(user.id);
    let listed = store
        .files()
        .list(me, user.id, Default::default(), ListOptions::first(10))
        .await
        .unwrap();
    assert!(listed.items.is_empty(), "no record: {:?}", listed.items);
    assert!(backend_blobs(&store).await.unwrap().is_empty(), "no object");
    let r = store
        .lifecycle()
        .run_to_end("orphans", false)
        .await
        .unwrap();
    assert_eq!(
        r.count("uploads_aborted"),
        0,
        "younger than the grace: {r:?}"
    );
    assert!(takes_parts(&s3, key, id).await);
    store.close().await;
    drop(store);

    let store = reopen(Duration::ZERO).await.unwrap();
    let dry = store.lifecycle().run_to_end("orphans", true).await.unwrap();
    assert_eq!(dry.count("uploads_aborted"), 1, "{dry:?}");
    assert!(takes_parts(&s3, key, id).await, "a dry run aborts nothing");
    let r = store
        .lifecycle()
        .run_to_end("orphans", false)
        .await
        .unwrap();
    assert_eq!(r.count("uploads_aborted"), 1, "{r:?}");
    assert!(!takes_parts(&s3, key, id).await, "the upload was aborted");
    assert!(
        open_uploads(&s3).await.is_empty(),
        "its marker went with it"
    );
    store.close().await;
    drop(store);

    bvstore_ok(&data_dir, &conf, &put);
    let store = reopen(Duration::from_secs(3600)).await.unwrap();
    let files = store
        .files()
        .list(me, user.id, Default::default(), ListOptions::first(10))
        .await
        .unwrap()
        .items;
    assert_eq!(files.len(), 1);
    let back = store.files().read(me, files[0].id).await.unwrap();
    assert!(back == data, "the file put again reads back");
    assert!(
        open_uploads(&s3).await.is_empty(),
        "a finished put leaves no marker"
    );
    store.close().await;
}

/// radosgw, stopped and started with `scripts/ceph-dev.sh`; started again
/// when dropped, so a failing test leaves the suite a running gateway.
struct Gateway {
    cluster: String,
    down: bool,
}

impl Gateway {
    fn run(&mut self, what: &str) {
        let out = std::process::Command::new("scripts/ceph-dev.sh")
            .args([what, &self.cluster])
            .output()
            .expect("run scripts/ceph-dev.sh");
        assert!(out.status.success(), "{what}: {}", stderr(&out));
        self.down = what == "stop-rgw";
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if self.down {
            let _ = std::process::Command::new("scripts/ceph-dev.sh")
                .args(["start-rgw", &self.cluster])
                .output();
        }
    }
}

/// With the gateway gone, a put fails with a storage error naming the
/// bucket and commits no record, a read fails the same way, and health
/// says the backend does not answer (after one short request, not the
/// puts' retry budget); once it is back, the same store puts and reads
/// again and verifies clean, with no restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_killed_mid_run_gives_clear_errors_and_the_store_recovers() {
    let Some(endpoint) = s3_endpoint() else {
        return eprintln!("skipped: BV_TEST_S3_ENDPOINT is not set");
    };
    let Some(cluster) = std::env::var("BV_TEST_CEPH_DIR")
        .ok()
        .filter(|d| !d.is_empty())
    else {
        return eprintln!(
            "skipped: BV_TEST_CEPH_DIR is not set (the directory given to scripts/ceph-dev.sh start)"
        );
    };
    let _engine = ENGINE.write().await;
    let s3 = s3_config(&endpoint)
        .retries(2, Duration::from_secs(10))
        .timeouts(Duration::from_secs(10), Duration::from_secs(2));
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(config(dir.path(), BlobBackendConfig::S3(s3)))
        .await
        .unwrap();
    let t = TestStore { dir, store };
    let u = t.user("gateway").await;
    let me = Actor::User(u.id);
    let first = noise(3 << 20, 1);
    let a = t
        .put_as(&u, &first, PutOptions::content_type("audio/wav"))
        .await;
    let healthy = t.store.health().await;
    let blobs = healthy.part("blobs").unwrap().clone();
    assert_eq!(blobs.status, HealthStatus::Healthy, "{blobs:?}");
    assert!(blobs.detail.contains("s3 backend answers ("), "{blobs:?}");

    let mut gateway = Gateway {
        cluster,
        down: false,
    };
    gateway.run("stop-rgw");
    let second = noise(6 << 20, 2);
    let put = t
        .store
        .files()
        .put_bytes(me, u.id, &second, PutOptions::content_type("audio/wav"))
        .await
        .expect_err("a put with the gateway down fails");
    eprintln!("the put's error: {put}");
    assert_eq!(put.kind(), "storage", "{put}");
    assert!(put.to_string().contains("s3://"), "{put}");
    let read = t
        .store
        .files()
        .read(me, a.id)
        .await
        .expect_err("so does a read");
    eprintln!("the read's error: {read}");
    assert!(read.to_string().contains("s3://"), "{read}");
    let listed = t
        .store
        .files()
        .list(me, u.id, Default::default(), ListOptions::first(10))
        .await
        .unwrap()
        .items;
    assert_eq!(listed.len(), 1, "the failed put committed no record");
    let sick = t.store.health().await;
    let blobs = sick.part("blobs").unwrap().clone();
    eprintln!("health with the gateway down: {blobs:?}");
    assert_eq!(blobs.status, HealthStatus::Unhealthy, "{blobs:?}");
    assert!(blobs.detail.contains("does not answer"), "{blobs:?}");

    gateway.run("start-rgw");
    let b = t
        .put_as(&u, &second, PutOptions::content_type("audio/wav"))
        .await;
    assert!(t.store.files().read(me, a.id).await.unwrap() == first);
    assert!(t.store.files().read(me, b.id).await.unwrap() == second);
    assert_eq!(backend_blobs(&t.store).await.unwrap().len(), 2);
    let health = t.store.health().await;
    assert_eq!(health.part("blobs").unwrap().status, HealthStatus::Healthy);
    assert_verifies_deep(&t.store, "after the gateway came back").await;
    t.store.close().await;
}

/// An upload that takes longer than the orphan grace is not taken for
/// one a dead process left: its marker is put again every quarter of the
/// grace while the parts go up, so the collector, run again and again
/// beside it, leaves it alone and the file reads back whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_upload_keeps_its_marker_fresh_past_the_orphan_grace() {
    let Some(endpoint) = s3_endpoint() else {
        return eprintln!("skipped: BV_TEST_S3_ENDPOINT is not set");
    };
    let _engine = ENGINE.read().await;
    let s3 = s3_config(&endpoint);
    let grace = Duration::from_millis(500);
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), BlobBackendConfig::S3(s3.clone())).lifecycle(
        LifecycleConfig::default()
            .purge_grace(Duration::ZERO)
            .orphan_grace(grace),
    );
    let store = std::sync::Arc::new(Store::open(config).await.unwrap());
    let user = store
        .users()
        .create(NewUser::new("slow", "slow@example.in").consent(ConsentKind::AudioStorage))
        .await
        .unwrap();
    // 1 MiB of noise 200 times: 40 parts of 5 MiB, well over the grace.
    let data = noise(1 << 20, 9).repeat(200);
    let put = {
        let (store, data) = (std::sync::Arc::clone(&store), data.clone());
        tokio::spawn(async move {
            store
                .files()
                .put_bytes(
                    Actor::User(user.id),
                    user.id,
                    &data,
                    PutOptions::content_type("audio/wav"),
                )
                .await
        })
    };
    // Each poll: the markers' times, then one collector pass.
    let (mut seen, mut passes) = (std::collections::BTreeSet::new(), 0);
    let (mut first, mut last) = (None, None);
    while !put.is_finished() {
        let times = {
            let s3 = s3.clone();
            tokio::task::spawn_blocking(move || s3_upload_marker_times(&s3))
                .await
                .unwrap()
                .unwrap()
        };
        if !times.is_empty() {
            first.get_or_insert_with(Instant::now);
            last = Some(Instant::now());
        }
        seen.extend(times);
        store.lifecycle().run("orphans", false).await.unwrap();
        passes += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let file = put.await.unwrap().expect("the put survives the collector");
    assert!(
        store
            .files()
            .read(Actor::User(user.id), file.id)
            .await
            .unwrap()
            == data,
        "read back whole"
    );
    // How long the upload was seen open: longer than the grace, or the
    // collector would have left even a stale marker alone.
    let open = match (first, last) {
        (Some(first), Some(last)) => last - first,
        _ => Duration::ZERO,
    };
    eprintln!(
        "upload seen open for {open:?}; {passes} collector passes; marker times seen: {}",
        seen.len()
    );
    assert!(
        open > grace,
        "the upload must be seen open longer than the grace for this test to mean anything: {open:?}"
    );
    assert!(
        seen.len() >= 2,
        "the marker was put again while the upload was open for {open:?}: {seen:?}"
    );
}
