//! The object-storage half of the blob bench (feature `s3`): the store with
//! its blobs in a bucket, beside the same store on the local disk and the
//! raw `object_store` calls moving the same bytes to the same bucket (the
//! engine's own limit here), all in one run.
//!
//! ```text
//! scripts/ceph-dev.sh start /tmp/ceph
//! BV_BENCH_S3_ENDPOINT=http://127.0.0.1:7480 cargo bench --features s3 --bench blob -- s3_
//! ```
//!
//! Bucket and keys as the tests take them (`BV_TEST_S3_BUCKET`, default
//! `bvstore-test`; `BV_TEST_S3_ACCESS_KEY` / `BV_TEST_S3_SECRET_KEY`);
//! without `BV_BENCH_S3_ENDPOINT` this half says so and is skipped.
//!
//! Groups (random bytes stored as `audio/ogg`, so zstd is skipped and the
//! sealed blob is the size of the file; throughput in plaintext bytes):
//!
//! * `s3_4MiB`, `s3_64MiB`: `put/local`, `put/s3` (`put_bytes` of a new
//!   blob; the store's default 8 MiB parts, two in flight), `put/raw` (one
//!   `put`, or above 8 MiB a `WriteMultipart` of 8 MiB parts with two in
//!   flight); `get/local`, `get/s3` (`read` of the whole file), `get/raw`
//!   (`get` then `bytes`).
//! * `s3_range_64KiB_of_64MiB`: `read_range` of 64 KiB at a pseudo-random
//!   offset (`local`, `s3`), and one ranged `get_range` of the same length
//!   (`raw`).
//!
//! * `s3_backup_1GiB`, `s3_backup_in_bucket_1GiB`: see
//!   `benches/blob/s3_backup.rs`.
//!
//! The objects of the measured store puts are deleted after each sample,
//! through the raw client (behind the store: those records are never read
//! again), so that an in-memory engine does not fill up.

use std::sync::Arc;

use bharatvoice_store::{BlobBackendConfig, S3Config};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as Key;
use object_store::{ObjectStoreExt, PutPayload, WriteMultipart};

use super::*;

/// Part size of the raw multipart puts: the store's default.
const PART: usize = 8 << 20;

fn var(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.into())
}

/// The bucket's raw client and the store's prefix in it.
pub(super) struct Raw {
    pub(super) client: Arc<AmazonS3>,
    pub(super) prefix: String,
}

impl Raw {
    /// Where the store keeps the blob of `file`.
    fn blob_key(&self, file: &AudioFile) -> Key {
        Key::from(format!("{}/blobs/{}", self.prefix, file.blob))
    }

    pub(super) async fn put(&self, key: &Key, data: &[u8]) {
        if data.len() <= PART {
            let payload = PutPayload::from(data.to_vec());
            self.client.put(key, payload).await.expect("raw put");
            return;
        }
        let upload = self.client.put_multipart(key).await.expect("raw upload");
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART);
        for part in data.chunks(PART) {
            writer.wait_for_capacity(2).await.expect("raw part");
            writer.write(part);
        }
        writer.finish().await.expect("raw upload finish");
    }
}

/// Times `iters` store puts of a new blob each; their objects are deleted
/// afterwards, untimed.
fn bench_put_remote(b: &mut Bencher<'_>, fx: &Fixture, raw: &Raw, data: &[u8]) {
    let mut buf = Some(data.to_vec());
    b.iter_custom(|iters| {
        let mut bytes = buf.take().expect("put buffer");
        let (store, owner) = (fx.store.clone(), fx.owner);
        let (elapsed, back, files) = fx.rt.block_on(async move {
            tokio::spawn(async move {
                let me = Actor::User(owner);
                let mut files = Vec::new();
                let start = Instant::now();
                for _ in 0..iters {
                    stamp(&mut bytes);
                    let options = (RANDOM_AUTO.options)();
                    let file = store
                        .files()
                        .put_bytes(me, owner, black_box(&bytes), options)
                        .await
                        .expect("put");
                    files.push(file);
                }
                (start.elapsed(), bytes, files)
            })
            .await
            .expect("bench task")
        });
        fx.rt.block_on(async {
            for f in &files {
                raw.client.delete(&raw.blob_key(f)).await.expect("delete");
            }
        });
        buf = Some(back);
        elapsed
    });
}

/// Times `iters` raw puts of `data` (over one key: the engine keeps one).
fn bench_put_raw(b: &mut Bencher<'_>, fx: &Fixture, raw: &Raw, data: &[u8]) {
    let key = Key::from(format!("{}/raw/put-{}", raw.prefix, data.len()));
    b.iter_custom(|iters| {
        fx.rt.block_on(async {
            let start = Instant::now();
            for _ in 0..iters {
                raw.put(&key, black_box(data)).await;
            }
            start.elapsed()
        })
    });
}

/// Times `iters` raw whole-object gets.
fn bench_get_raw(b: &mut Bencher<'_>, fx: &Fixture, raw: &Raw, key: &Key, len: usize) {
    b.iter_custom(|iters| {
        fx.rt.block_on(async {
            let start = Instant::now();
            for _ in 0..iters {
                let got = raw.client.get(key).await.expect("raw get");
                let bytes = got.bytes().await.expect("raw body");
                assert_eq!(black_box(bytes).len(), len);
            }
            start.elapsed()
        })
    });
}

/// Times `iters` raw ranged gets of `RANGE_LEN` bytes.
fn bench_range_raw(b: &mut Bencher<'_>, fx: &Fixture, raw: &Raw, key: &Key, len: usize) {
    b.iter_custom(|iters| {
        fx.rt.block_on(async {
            let mut rng = Rng(iters.wrapping_mul(0x2545_F491_4F6C_DD1D));
            let span = (len - RANGE_LEN + 1) as u64;
            let start = Instant::now();
            for _ in 0..iters {
                let at = rng.below(span);
                let got = raw
                    .client
                    .get_range(key, at..at + RANGE_LEN as u64)
                    .await
                    .expect("raw range");
                assert_eq!(black_box(got).len(), RANGE_LEN);
            }
            start.elapsed()
        })
    });
}

/// The `s3_*` groups, beside `local` (the bench's local store).
pub(super) fn bench(c: &mut Criterion, local: &Fixture) {
    let Some(endpoint) = std::env::var("BV_BENCH_S3_ENDPOINT")
        .ok()
        .filter(|e| !e.is_empty())
    else {
        eprintln!(
            "s3_*: skipped (BV_BENCH_S3_ENDPOINT is not set; scripts/ceph-dev.sh start DIR starts an engine)"
        );
        return;
    };
    let bucket = var("BV_TEST_S3_BUCKET", "bvstore-test");
    let (access, secret) = (
        var("BV_TEST_S3_ACCESS_KEY", "bvstore-access"),
        var("BV_TEST_S3_SECRET_KEY", "bvstore-secret"),
    );
    let prefix = format!("bench-{}", uuid::Uuid::now_v7());
    let settings = S3Config::new(&bucket)
        .endpoint(&endpoint)
        .region("us-east-1")
        .prefix(&prefix)
        .credentials(&access, &secret);
    let remote =
        Fixture::with(|dir| Config::new(dir).blob_backend(BlobBackendConfig::S3(settings.clone())));
    let client = AmazonS3Builder::new()
        .with_bucket_name(&bucket)
        .with_endpoint(&endpoint)
        .with_region("us-east-1")
        .with_access_key_id(&access)
        .with_secret_access_key(&secret)
        .with_allow_http(true)
        .with_virtual_hosted_style_request(false)
        .build()
        .expect("raw client");
    let raw = Raw {
        client: Arc::new(client),
        prefix,
    };
    let data = random();
    let kind = RANDOM_AUTO;
    let mut range = None;
    for (label, size) in [("4MiB", 4 << 20), ("64MiB", MAX_SIZE)] {
        let bytes = &data[..size];
        let (on_disk, in_bucket) = (
            local.put(bytes, (kind.options)()),
            remote.put(bytes, (kind.options)()),
        );
        let key = Key::from(format!("{}/raw/get-{size}", raw.prefix));
        remote.rt.block_on(raw.put(&key, bytes));
        let mut group = c.benchmark_group(format!("s3_{label}"));
        configure(&mut group, size);
        group.bench_function("put/local", |b| {
            bench_put(b, local, bytes, &(kind.options)())
        });
        group.bench_function("put/s3", |b| bench_put_remote(b, &remote, &raw, bytes));
        group.bench_function("put/raw", |b| bench_put_raw(b, &remote, &raw, bytes));
        group.bench_function("get/local", |b| {
            bench_get(b, local, on_disk.id, size, false)
        });
        group.bench_function("get/s3", |b| {
            bench_get(b, &remote, in_bucket.id, size, false)
        });
        group.bench_function("get/raw", |b| bench_get_raw(b, &remote, &raw, &key, size));
        group.finish();
        if size == MAX_SIZE {
            range = Some((on_disk.id, in_bucket.id, key));
        }
    }
    let Some((on_disk, in_bucket, key)) = range else {
        return;
    };
    let mut group = c.benchmark_group("s3_range_64KiB_of_64MiB");
    group
        .sample_size(SAMPLES)
        .throughput(Throughput::Bytes(RANGE_LEN as u64))
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    group.bench_function("local", |b| bench_range(b, local, on_disk, MAX_SIZE));
    group.bench_function("s3", |b| bench_range(b, &remote, in_bucket, MAX_SIZE));
    group.bench_function("raw", |b| bench_range_raw(b, &remote, &raw, &key, MAX_SIZE));
    group.finish();
    remote.rt.block_on(remote.store.close());
    super::s3_backup::bench(c, &raw, &settings);
    super::s3_backup::bench_in_bucket(c, &raw, &settings);
}
