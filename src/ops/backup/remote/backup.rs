//! A backup into object storage: the local backup's order (pin blob
//! deletions, snapshot, blobs, manifest last), with uploads in place of
//! links and copies.
//!
//! Blob files are read through the store's own backend (a local
//! directory, or another bucket) and streamed up in parts, hashed on the
//! way: memory holds at most a few parts per upload, whatever the blob's
//! size. When the store's blobs are in the target's bucket on the same
//! engine, the engine copies each one instead (one `CopyObject` request,
//! nothing uploaded) and the copy is read back once for its digest; a
//! copy the engine refuses (too large for one request, no permission)
//! falls back to the upload. A blob the destination already holds at the
//! size an earlier manifest gives is skipped, so a second backup uploads
//! only what is new.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt;
use object_store::ObjectStoreExt;
use object_store::buffered::BufWriter;
use object_store::path::Path as Key;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::{Bucket, seal};
use crate::blob::backend::BlobSource;
use crate::blob::backend::choice::S3Config;
use crate::blob::backend::s3::{CrossCopier, CrossCopy, ObjectName};
use crate::error::Error;
use crate::ops::backup::manifest::{self, BlobEntry, FileDigest, Manifest};
use crate::ops::backup::{BackupOptions, BackupReport, blocking, record_last};
use crate::store::Store;
use crate::types::BlobAddress;

/// Blobs uploaded at once.
const UPLOADS: usize = 4;
/// Parts of one upload in flight at once.
const PARTS_IN_FLIGHT: usize = 2;
/// Bytes read from a blob at a time.
const PIECE: usize = 4 << 20;

/// What became of one blob.
enum Outcome {
    Skipped(FileDigest),
    Uploaded(FileDigest),
    CopiedByEngine(FileDigest),
    Missing,
}

pub(crate) async fn backup(
    store: &Store,
    target: &S3Config,
    options: BackupOptions,
) -> Result<BackupReport, Error> {
    let t0 = std::time::Instant::now();
    let bucket = Bucket::new(target)?;
    let db = store.db();
    let store_id = db.read(crate::db::snapshot_copy::store_id)?;
    let region = store.region().map(str::to_string);
    let lock = bucket
        .open_for_backup(&store_id, region.as_deref(), options.allow_region_change)
        .await?;
    let result = locked(store, &bucket, target, store_id, region, options, t0).await;
    lock.release(&bucket).await;
    result
}

async fn locked(
    store: &Store,
    bucket: &Bucket,
    target: &S3Config,
    store_id: String,
    region: Option<String>,
    options: BackupOptions,
    t0: std::time::Instant,
) -> Result<BackupReport, Error> {
    let (complete, partial) = bucket.generations().await?;
    for g in &partial {
        tracing::info!(
            generation = g,
            "deleting a partial generation a dead backup left"
        );
        bucket.remove_generation(*g).await?;
    }
    let generation = complete.last().max(partial.last()).map_or(1, |g| g + 1);
    let known = bucket.known_blobs(&complete).await?;
    let stored = bucket.stored_blobs().await?;

    // 1. Hold blob deletions off, then the snapshot under its master key.
    let db = store.db();
    let blobs = store.blob_store();
    let pinned = blobs.pin_all().await;
    let rotation = blobs.keyring.lock_master_rotation().await;
    let master = blobs.keyring.master();
    let created_at = db.now();
    let staged = Staged::new(&blobs.tmp_dir)?;
    let plain = staged.plain.clone();
    let info = db
        .scan(move |txn| crate::db::snapshot_copy::copy_snapshot(txn, &plain))
        .await?;
    drop(rotation);

    // 2. The blob files, then the sealed snapshot. Blobs in another bucket
    //    of the target's engine are copied by the engine.
    let copier = info
        .blobs
        .first()
        .and_then(|a| blobs.backend.object_of(*a))
        .filter(|o| o.shares_engine(target) && !o.shares_bucket(target))
        .and_then(|_| match CrossCopier::new(target, Arc::clone(&bucket.store)) {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::debug!(error = %e, "no engine copies from the store's bucket; uploading");
                None
            }
        });
    let total: u64 = match blobs.backend.as_local() {
        Some(local) => info
            .blobs
            .iter()
            .filter_map(|a| std::fs::symlink_metadata(local.path_of(*a)).ok())
            .map(|m| m.len())
            .sum(),
        None => 0,
    };
    let done = std::sync::atomic::AtomicU64::new(0);
    let outcomes: Vec<(BlobAddress, Result<Outcome, Error>)> =
        futures_util::stream::iter(info.blobs.iter().copied())
            .map(|address| {
                let (known, stored, backend) = (&known, &stored, Arc::clone(&blobs.backend));
                let (done, progress, copier) = (&done, options.progress.as_ref(), &copier);
                async move {
                    let outcome = match known.get(&address) {
                        Some(d) if stored.get(&address) == Some(&d.bytes) => {
                            Ok(Outcome::Skipped(d.clone()))
                        }
                        _ => transfer_blob(bucket, target, copier.as_ref(), backend, address).await,
                    };
                    if let Ok(
                        Outcome::Skipped(d) | Outcome::Uploaded(d) | Outcome::CopiedByEngine(d),
                    ) = &outcome
                    {
                        let so_far =
                            done.fetch_add(d.bytes, std::sync::atomic::Ordering::Relaxed) + d.bytes;
                        if let Some(p) = progress {
                            p.tell(so_far, total.max(so_far));
                        }
                    }
                    (address, outcome)
                }
            })
            .buffered(UPLOADS)
            .collect()
            .await;
    drop(pinned);
    let (plain, sealed) = (staged.plain.clone(), staged.sealed.clone());
    let master2 = master.clone();
    let metadata = blocking("sealing the metadata snapshot", move || {
        seal::seal_file(&plain, &sealed, &master2)
    })
    .await?;
    upload_file(bucket, &bucket.snapshot_key(generation), &staged.sealed).await?;
    drop(staged);

    let mut report = BackupReport {
        destination: std::path::PathBuf::from(&bucket.url),
        generation,
        created_at,
        rows: info.rows,
        metadata_bytes: metadata.bytes,
        metadata_parts: 1,
        writes_paused_us: 0,
        blobs: 0,
        blobs_copied: 0,
        bytes_copied: 0,
        blobs_copied_by_engine: 0,
        bytes_copied_by_engine: 0,
        blobs_linked: 0,
        bytes_linked: 0,
        blobs_skipped: 0,
        bytes_skipped: 0,
        missing: Vec::new(),
        generations_removed: Vec::new(),
        blobs_removed: 0,
        took_ms: 0,
    };
    let mut entries = Vec::with_capacity(outcomes.len());
    for (address, outcome) in outcomes {
        let digest = match outcome? {
            Outcome::Skipped(d) => {
                report.blobs_skipped += 1;
                report.bytes_skipped += d.bytes;
                d
            }
            Outcome::Uploaded(d) => {
                report.blobs_copied += 1;
                report.bytes_copied += d.bytes;
                d
            }
            Outcome::CopiedByEngine(d) => {
                report.blobs_copied_by_engine += 1;
                report.bytes_copied_by_engine += d.bytes;
                d
            }
            Outcome::Missing => {
                tracing::warn!(blob = %address, "a blob the snapshot names has no file; the backup lists it as missing");
                report.missing.push(address);
                continue;
            }
        };
        entries.push(BlobEntry { address, digest });
    }
    report.blobs = entries.len() as u64;

    // 3. The manifest, which completes the generation; then `keep`.
    let manifest = Manifest {
        format: manifest::FORMAT,
        store_id,
        schema_version: info.schema_version,
        region,
        generation,
        created_at,
        metadata,
        blobs: entries,
        missing: report.missing.clone(),
        chain: None,
    };
    let (body, mac) = manifest::encode(&manifest, &master)?;
    bucket.publish(generation, body, mac).await?;
    if let Some(keep) = options.keep {
        let mut all = complete;
        all.push(generation);
        (report.generations_removed, report.blobs_removed) = bucket.prune(&all, keep).await?;
    }
    report.took_ms = u64::try_from(t0.elapsed().as_millis()).unwrap_or(u64::MAX);
    record_last(db, &report).await;
    tracing::info!(
        generation,
        blobs = report.blobs,
        uploaded = report.blobs_copied,
        copied_by_engine = report.blobs_copied_by_engine,
        skipped = report.blobs_skipped,
        destination = %bucket.url,
        "backup complete"
    );
    Ok(report)
}

/// The snapshot's local files, deleted when the backup is done with them
/// (or fails).
struct Staged {
    plain: std::path::PathBuf,
    sealed: std::path::PathBuf,
}

impl Staged {
    fn new(tmp: &std::path::Path) -> Result<Staged, Error> {
        crate::fsutil::create_private_dir_all(tmp)
            .map_err(|e| Error::io(format!("creating {}", tmp.display()), e))?;
        let id = uuid::Uuid::now_v7();
        Ok(Staged {
            plain: tmp.join(format!("backup-{id}.redb")),
            sealed: tmp.join(format!("backup-{id}.sealed")),
        })
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.plain);
        let _ = std::fs::remove_file(&self.sealed);
    }
}

/// Puts one blob into the backup: copied by the engine when the store's
/// backend keeps it on the target's engine (in the target's bucket, or in
/// another one through `copier`), else uploaded.
async fn transfer_blob(
    bucket: &Bucket,
    target: &S3Config,
    copier: Option<&CrossCopier>,
    backend: Arc<dyn crate::blob::backend::BlobBackend>,
    address: BlobAddress,
) -> Result<Outcome, Error> {
    if let Some(from) = backend.object_of(address)
        && from.shares_engine(target)
        && let Some(outcome) = engine_copy(bucket, target, copier, &from, address).await?
    {
        return Ok(outcome);
    }
    upload_blob(bucket, backend, address).await
}

/// Has the engine copy the object `from` (of the target's engine) to the
/// blob's key in the backup, then reads the copy back for its digest: the
/// manifest's SHA-256 is of the bytes the backup holds. `Missing` if there
/// is no such object; `None` if the engine refuses the copy, or no copier
/// was made for another bucket (the caller uploads instead).
async fn engine_copy(
    bucket: &Bucket,
    target: &S3Config,
    copier: Option<&CrossCopier>,
    from: &ObjectName,
    address: BlobAddress,
) -> Result<Option<Outcome>, Error> {
    let to = bucket.blob_key(address);
    let done = if from.shares_bucket(target) {
        if from.key == to {
            return Ok(None);
        }
        match bucket.store.copy(&from.key, &to).await {
            Ok(()) => CrossCopy::Copied,
            Err(object_store::Error::NotFound { .. }) => CrossCopy::NoSuchObject,
            Err(e) => CrossCopy::Refused(e.to_string()),
        }
    } else if let Some(copier) = copier {
        copier.copy(from, &to).await
    } else {
        return Ok(None);
    };
    match done {
        CrossCopy::Copied => {}
        CrossCopy::NoSuchObject => return Ok(Some(Outcome::Missing)),
        CrossCopy::Refused(why) => {
            tracing::debug!(blob = %address, error = %why, "the engine did not copy the blob; uploading it");
            return Ok(None);
        }
    }
    let mut body = bucket
        .store
        .get(&to)
        .await
        .map_err(|e| bucket.fail("reading back the copy", &to, e))?
        .into_stream();
    let (mut hash, mut bytes) = (Sha256::new(), 0u64);
    while let Some(piece) = body.next().await {
        let piece = piece.map_err(|e| bucket.fail("reading back the copy", &to, e))?;
        hash.update(&piece);
        bytes += piece.len() as u64;
    }
    Ok(Some(Outcome::CopiedByEngine(FileDigest {
        bytes,
        sha256: hash.finalize().into(),
    })))
}

/// Uploads one blob from the store's backend; `Missing` if it has none.
async fn upload_blob(
    bucket: &Bucket,
    backend: Arc<dyn crate::blob::backend::BlobBackend>,
    address: BlobAddress,
) -> Result<Outcome, Error> {
    let source = blocking("opening a blob", move || {
        let Some(source) = backend.open_once(address)? else {
            return Ok(None);
        };
        let len = source.len()?;
        source.will_read(0..len);
        Ok(Some((Arc::<dyn BlobSource>::from(source), len)))
    })
    .await?;
    let Some((source, len)) = source else {
        return Ok(Outcome::Missing);
    };
    let key = bucket.blob_key(address);
    let read = move |offset: u64, n: usize, mut hash: Sha256| {
        let source = Arc::clone(&source);
        async move {
            blocking("reading a blob", move || {
                let mut buf = vec![0u8; n];
                source
                    .read_exact_at(&mut buf, offset)
                    .map_err(|e| Error::io(format!("reading blob {address}"), e))?;
                hash.update(&buf);
                Ok((buf, hash))
            })
            .await
        }
    };
    upload(bucket, &key, len, read).await.map(Outcome::Uploaded)
}

/// Uploads a local file.
async fn upload_file(
    bucket: &Bucket,
    key: &Key,
    path: &std::path::Path,
) -> Result<FileDigest, Error> {
    let file = Arc::new(
        std::fs::File::open(path)
            .map_err(|e| Error::io(format!("reading {}", path.display()), e))?,
    );
    let len = BlobSource::len(&*file)?;
    let path = path.to_path_buf();
    let read = move |offset: u64, n: usize, mut hash: Sha256| {
        let (file, path) = (Arc::clone(&file), path.clone());
        async move {
            blocking("reading a file", move || {
                let mut buf = vec![0u8; n];
                BlobSource::read_exact_at(&*file, &mut buf, offset)
                    .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
                hash.update(&buf);
                Ok((buf, hash))
            })
            .await
        }
    };
    upload(bucket, key, len, read).await
}

/// Streams `len` bytes, read a piece at a time by `read`, to `key`: one
/// PUT for a small object, a multipart upload (aborted on failure) for a
/// large one. Returns the bytes' size and SHA-256.
async fn upload<F, Fut>(bucket: &Bucket, key: &Key, len: u64, read: F) -> Result<FileDigest, Error>
where
    F: Fn(u64, usize, Sha256) -> Fut,
    Fut: Future<Output = Result<(Vec<u8>, Sha256), Error>>,
{
    let store: Arc<dyn object_store::ObjectStore> = bucket.store.clone();
    let mut writer = BufWriter::with_capacity(store, key.clone(), bucket.part_bytes)
        .with_max_concurrency(PARTS_IN_FLIGHT);
    let (mut hash, mut offset) = (Sha256::new(), 0u64);
    while offset < len {
        let n = usize::try_from((len - offset).min(PIECE as u64)).unwrap_or(PIECE);
        let (buf, h) = match read(offset, n, hash).await {
            Ok(v) => v,
            Err(e) => return Err(abandon(&mut writer, e).await),
        };
        hash = h;
        if let Err(e) = writer.put(Bytes::from(buf)).await {
            return Err(abandon(&mut writer, bucket.fail("uploading", key, e)).await);
        }
        offset += n as u64;
    }
    writer
        .shutdown()
        .await
        .map_err(|e| Error::io(format!("uploading {}", bucket.display(key)), e))?;
    Ok(FileDigest {
        bytes: len,
        sha256: hash.finalize().into(),
    })
}

/// Aborts a failed upload (its parts take space on the server) and
/// passes its error on.
async fn abandon(writer: &mut BufWriter, e: Error) -> Error {
    if let Err(abort) = writer.abort().await {
        tracing::warn!(error = %abort, "could not abort an upload; the bucket's lifecycle rule collects it");
    }
    e
}
