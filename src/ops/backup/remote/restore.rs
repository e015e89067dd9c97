//! A restore from object storage: the generation is downloaded into a
//! staging directory under the target's `tmp/` and checked whole — the
//! manifest's MAC, the sealed snapshot opened under the master key, the
//! size and SHA-256 of the snapshot and of every blob — before anything
//! reaches the store's own places. Then, as a local restore does, blobs
//! go in first and `store.redb` last.

use std::path::{Path, PathBuf};

use futures_util::StreamExt;
use object_store::ObjectStoreExt;
use object_store::path::Path as Key;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::{Bucket, seal};
use crate::blob::backend::choice::S3Config;
use crate::blob::backend::local::LocalDir;
use crate::blob::crypto::SecretKey;
use crate::config::Config;
use crate::error::Error;
use crate::ops::backup::manifest::{self, FileDigest};
use crate::ops::backup::restore::{RestoreOptions, RestoreReport, check_target, same};
use crate::ops::backup::{blocking, copy};

/// Blobs downloaded at once.
const DOWNLOADS: usize = 4;

pub(crate) async fn restore(
    source: &S3Config,
    config: &Config,
    options: &RestoreOptions,
    master: &SecretKey,
) -> Result<RestoreReport, Error> {
    let bucket = Bucket::new(source)?;
    if bucket.record().await?.is_none() {
        return Err(Error::NotFound {
            entity: crate::error::Entity::Backup,
            id: format!("{} (it has no backup.json)", bucket.url),
        });
    }
    let (complete, _) = bucket.generations().await?;
    let generation = match options.generation {
        Some(g) => g,
        None => *complete.last().ok_or_else(|| Error::NotFound {
            entity: crate::error::Entity::Backup,
            id: format!("generation in {}", bucket.url),
        })?,
    };
    let place = format!("{}/generations/{generation:06}", bucket.url);
    let Some((body, mac)) = bucket
        .manifest_bytes(generation)
        .await?
        .filter(|_| complete.contains(&generation))
    else {
        return Err(Error::NotFound {
            entity: crate::error::Entity::Backup,
            id: format!("generation {generation} in {}", bucket.url),
        });
    };
    let m = manifest::decode(&body, &mac, master, &place)?;
    if let (Some(found), Some(expected)) = (m.region.as_deref(), config.region.as_deref())
        && found != expected
        && !options.allow_region_change
    {
        return Err(Error::RegionMismatch {
            what: format!("backup generation {generation} in {}", bucket.url),
            expected: expected.to_string(),
            found: found.to_string(),
        });
    }
    let data = config.data_dir.clone();
    let force = options.force;
    blocking("checking the restore target", move || {
        check_target(&data, force)
    })
    .await?;

    // Everything down into staging, checked.
    let data = &config.data_dir;
    let target = LocalDir::new(data.join("blobs"));
    let tmp = data.join("tmp");
    crate::fsutil::create_private_dir_all(&tmp)
        .map_err(|e| Error::io(format!("creating {}", tmp.display()), e))?;
    let blob_tmp =
        crate::datadir::blob_staging(&tmp, target.root())?.unwrap_or_else(|| tmp.clone());
    let id = uuid::Uuid::now_v7();
    let staging = Staging(vec![
        tmp.join(format!("restore-{id}")),
        blob_tmp.join(format!("restore-{id}-blobs")),
    ]);
    for dir in &staging.0 {
        crate::fsutil::create_private_dir_all(dir)
            .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    }
    let (meta_dir, blob_dir) = (&staging.0[0], &staging.0[1]);
    let total = m.total_bytes();
    let done = std::sync::atomic::AtomicU64::new(0);
    let tell = |n: u64| {
        let so_far = done.fetch_add(n, std::sync::atomic::Ordering::Relaxed) + n;
        if let Some(p) = &options.progress {
            p.tell(so_far, total.saturating_mul(2));
        }
    };
    let sealed = meta_dir.join("store.redb.sealed");
    let snapshot_key = bucket.snapshot_key(generation);
    download(&bucket, &snapshot_key, &sealed).await?;
    let plain = meta_dir.join("store.redb");
    let (sealed2, plain2, master2) = (sealed.clone(), plain.clone(), master.clone());
    let what = bucket.display(&snapshot_key);
    let what2 = what.clone();
    let found = blocking("opening the metadata snapshot", move || {
        seal::open_file(&sealed2, &plain2, &master2, &what2)
    })
    .await?;
    same(Path::new(&what), &m.metadata, &found)?;
    tell(m.metadata.bytes);
    let checked: Vec<Result<(), Error>> = futures_util::stream::iter(m.blobs.iter())
        .map(|b| {
            let (bucket, tell) = (&bucket, &tell);
            async move {
                let key = bucket.blob_key(b.address);
                let to = blob_dir.join(b.address.to_string());
                let found = download(bucket, &key, &to).await?;
                same(Path::new(&bucket.display(&key)), &b.digest, &found)?;
                tell(b.digest.bytes);
                Ok(())
            }
        })
        .buffer_unordered(DOWNLOADS)
        .collect()
        .await;
    checked.into_iter().collect::<Result<Vec<()>, Error>>()?;

    // All checked: blobs into place, then the metadata.
    let (blobs, data2, blob_dir2, plain2) = (
        m.blobs.iter().map(|b| b.address).collect::<Vec<_>>(),
        data.clone(),
        blob_dir.clone(),
        plain.clone(),
    );
    let install = (options.install_key
        && (config.master_key.is_some() || config.master_key_file.is_some()))
    .then(|| master.clone());
    blocking("placing the restored files", move || {
        for address in blobs {
            let to = target.path_of(address);
            if let Some(parent) = to.parent() {
                crate::fsutil::create_private_dir_all(parent)
                    .map_err(|e| Error::io(format!("creating {}", parent.display()), e))?;
            }
            let from = blob_dir2.join(address.to_string());
            std::fs::rename(&from, &to)
                .map_err(|e| Error::io(format!("renaming into {}", to.display()), e))?;
        }
        super::super::restore::ready_target(&data2, install.as_ref())?;
        let db = data2.join("store.redb");
        std::fs::rename(&plain2, &db)
            .map_err(|e| Error::io(format!("renaming into {}", db.display()), e))?;
        copy::sync_all(&data2)
    })
    .await?;
    tell(total);
    drop(staging);
    Ok(RestoreReport::of(data.clone(), generation, m))
}

/// Staging directories, removed with what is left in them.
struct Staging(Vec<PathBuf>);

impl Drop for Staging {
    fn drop(&mut self) {
        for dir in &self.0 {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Downloads `key` into the new file `to`, hashing; a missing object is
/// [`Error::Integrity`] naming it.
async fn download(bucket: &Bucket, key: &Key, to: &Path) -> Result<FileDigest, Error> {
    let got = match bucket.store.get(key).await {
        Ok(g) => g,
        Err(object_store::Error::NotFound { .. }) => {
            return Err(Error::Integrity {
                what: format!("backup file {}", bucket.display(key)),
                detail: "it is missing".into(),
            });
        }
        Err(e) => return Err(bucket.fail("downloading", key, e)),
    };
    let mut file = tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(to)
        .await
        .map_err(|e| Error::io(format!("creating {}", to.display()), e))?;
    let mut stream = got.into_stream();
    let (mut hash, mut bytes) = (Sha256::new(), 0u64);
    while let Some(piece) = stream.next().await {
        let piece = piece.map_err(|e| bucket.fail("downloading", key, e))?;
        hash.update(&piece);
        bytes += piece.len() as u64;
        file.write_all(&piece)
            .await
            .map_err(|e| Error::io(format!("writing {}", to.display()), e))?;
    }
    file.flush()
        .await
        .map_err(|e| Error::io(format!("writing {}", to.display()), e))?;
    Ok(FileDigest {
        bytes,
        sha256: hash.finalize().into(),
    })
}
