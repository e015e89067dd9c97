//! `s3_backup_1GiB`: a full backup of a store holding 1 GiB of blobs (16
//! files of 64 MiB, random bytes, so the sealed blob is the file's size)
//! to a new `s3://` prefix, against the raw `object_store` upload of the
//! same 16 blob files (read from disk, 8 MiB parts, two in flight per
//! file, four files at once: what `aws s3 sync` or `rclone copy` does with
//! their default concurrency), in one run. Each sample is one whole
//! backup; its objects are deleted afterwards, untimed, so that an
//! in-memory engine does not fill up.

use std::path::PathBuf;

use bharatvoice_store::{BackupOptions, BackupTarget, S3Config};
use criterion::SamplingMode;
use futures_util::StreamExt;
use object_store::path::Path as Key;
use object_store::{ObjectStore, ObjectStoreExt};

use super::s3::Raw;
use super::*;

const FILES: usize = 16;

/// Every regular file under `dir`.
fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        match entry.file_type() {
            Ok(t) if t.is_dir() => files_under(&path, out),
            Ok(t) if t.is_file() => out.push(path),
            _ => {}
        }
    }
}

/// Deletes every object under `prefix`.
async fn clear(raw: &Raw, prefix: &str) {
    let under = Key::from(prefix);
    let keys: Vec<_> = raw
        .client
        .list(Some(&under))
        .map(|m| m.expect("listing").location)
        .collect()
        .await;
    for key in keys {
        raw.client.delete(&key).await.expect("delete");
    }
}

/// A group of whole-backup samples of `total` bytes each: 10, flat, up to
/// a minute.
fn backup_group<'a>(
    c: &'a mut Criterion,
    name: &str,
    total: u64,
) -> criterion::BenchmarkGroup<'a, criterion::measurement::WallTime> {
    let mut group = c.benchmark_group(name);
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .throughput(Throughput::Bytes(total))
        .warm_up_time(Duration::from_millis(1))
        .measurement_time(Duration::from_secs(60));
    group
}

/// Times `run` once per iteration, each under a fresh prefix
/// `<raw prefix>-<label>-<uuid>` of the bucket; then, untimed, checks
/// what it returned and deletes the prefix's objects (an in-memory engine
/// must not fill up).
fn per_prefix<R>(
    b: &mut Bencher<'_>,
    fx: &Fixture,
    raw: &Raw,
    label: &str,
    run: impl Fn(&str) -> R,
    check: impl Fn(R),
) {
    b.iter_custom(|iters| {
        let mut elapsed = Duration::ZERO;
        for _ in 0..iters {
            let prefix = format!("{}-{label}-{}", raw.prefix, uuid::Uuid::now_v7());
            let start = Instant::now();
            let out = run(&prefix);
            elapsed += start.elapsed();
            check(out);
            fx.rt.block_on(clear(raw, &prefix));
        }
        elapsed
    })
}

/// One full backup of the fixture's store to `prefix` of the bucket.
fn backup(fx: &Fixture, settings: &S3Config, prefix: &str) -> bharatvoice_store::BackupReport {
    let target = BackupTarget::S3(settings.clone().prefix(prefix));
    fx.rt
        .block_on(fx.store.backup(target, BackupOptions::default()))
        .expect("backup")
}

pub(super) fn bench(c: &mut Criterion, raw: &Raw, settings: &S3Config) {
    let fx = Fixture::new();
    let mut data = random()[..MAX_SIZE].to_vec();
    for _ in 0..FILES {
        stamp(&mut data);
        fx.put(&data, (RANDOM_AUTO.options)());
    }
    let mut blob_files = Vec::new();
    files_under(&fx.store.config().data_dir.join("blobs"), &mut blob_files);
    assert_eq!(blob_files.len(), FILES, "one blob file per put");
    let total: u64 = blob_files
        .iter()
        .map(|p| std::fs::metadata(p).expect("blob size").len())
        .sum();

    let mut group = backup_group(c, "s3_backup_1GiB", total);
    group.bench_function("store", |b| {
        per_prefix(
            b,
            &fx,
            raw,
            "backup",
            |prefix| backup(&fx, settings, prefix),
            |report| assert_eq!(report.blobs_copied as usize, FILES),
        )
    });
    group.bench_function("raw", |b| {
        per_prefix(
            b,
            &fx,
            raw,
            "copy",
            |prefix| {
                fx.rt.block_on(
                    futures_util::stream::iter(blob_files.iter().enumerate()).for_each_concurrent(
                        4,
                        |(i, path)| {
                            let key = Key::from(format!("{prefix}/blobs/{i}"));
                            async move {
                                let bytes = tokio::fs::read(path).await.expect("read blob");
                                raw.put(&key, black_box(&bytes)).await;
                            }
                        },
                    ),
                )
            },
            drop,
        )
    });
    group.finish();
    fx.rt.block_on(fx.store.close());
}

/// Every object under `prefix`, with its size.
async fn objects_under(raw: &Raw, prefix: &str) -> Vec<(Key, u64)> {
    raw.client
        .list(Some(&Key::from(prefix)))
        .map(|m| {
            let m = m.expect("listing");
            (m.location, m.size)
        })
        .collect()
        .await
}

/// `s3_backup_in_bucket_1GiB`: a store whose 1 GiB of blobs (16 × 64 MiB)
/// is in the bucket, backed up to another prefix of the same bucket: the
/// engine copies each object and the store reads the copy back once for
/// the manifest's digest. Peers in the same run: the raw `object_store`
/// `copy` of the same 16 objects, four at once (the engine's own copy
/// rate), and the raw upload of their bytes from memory (what such a
/// backup moved before the engine copied: every byte through the device).
pub(super) fn bench_in_bucket(c: &mut Criterion, raw: &Raw, settings: &S3Config) {
    let store_prefix = format!("{}-in-bucket", raw.prefix);
    let fx = Fixture::with(|dir| {
        Config::new(dir).blob_backend(bharatvoice_store::BlobBackendConfig::S3(
            settings.clone().prefix(&store_prefix),
        ))
    });
    let mut data = random()[..MAX_SIZE].to_vec();
    for _ in 0..FILES {
        stamp(&mut data);
        fx.put(&data, (RANDOM_AUTO.options)());
    }
    let objects = fx
        .rt
        .block_on(objects_under(raw, &format!("{store_prefix}/blobs")));
    assert_eq!(objects.len(), FILES, "one object per put");
    let total: u64 = objects.iter().map(|(_, n)| n).sum();
    let bodies: Vec<bytes::Bytes> = objects
        .iter()
        .map(|(key, _)| {
            fx.rt
                .block_on(async { raw.client.get(key).await?.bytes().await })
                .expect("object bytes")
        })
        .collect();

    let mut group = backup_group(c, "s3_backup_in_bucket_1GiB", total);
    group.bench_function("store", |b| {
        per_prefix(
            b,
            &fx,
            raw,
            "ib-backup",
            |prefix| backup(&fx, settings, prefix),
            |report| assert_eq!(report.blobs_copied_by_engine as usize, FILES),
        )
    });
    group.bench_function("raw_copy", |b| {
        per_prefix(
            b,
            &fx,
            raw,
            "ib-copy",
            |prefix| {
                fx.rt.block_on(
                    futures_util::stream::iter(objects.iter().enumerate()).for_each_concurrent(
                        4,
                        |(i, (from, _))| {
                            let to = Key::from(format!("{prefix}/blobs/{i}"));
                            async move { raw.client.copy(from, &to).await.expect("raw copy") }
                        },
                    ),
                )
            },
            drop,
        )
    });
    group.bench_function("raw_upload", |b| {
        per_prefix(
            b,
            &fx,
            raw,
            "ib-upload",
            |prefix| {
                fx.rt.block_on(
                    futures_util::stream::iter(bodies.iter().enumerate()).for_each_concurrent(
                        4,
                        |(i, body)| {
                            let key = Key::from(format!("{prefix}/blobs/{i}"));
                            async move { raw.put(&key, black_box(body)).await }
                        },
                    ),
                )
            },
            drop,
        )
    });
    group.finish();
    fx.rt.block_on(fx.store.close());
    fx.rt.block_on(clear(raw, &store_prefix));
}
