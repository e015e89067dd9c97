//! Backups in object storage (feature `s3`): the same generations,
//! manifests and incremental copies as a backup directory, under a prefix
//! of a bucket.
//!
//! ```text
//! <prefix>/backup.json                         which store, which data region
//! <prefix>/lock                                held by the backup writing here
//! <prefix>/blobs/<address>                     blob files, shared by generations
//! <prefix>/generations/000001/store.redb.sealed  the metadata snapshot (see [`seal`])
//! <prefix>/generations/000001/manifest.mac
//! <prefix>/generations/000001/manifest.json    written last: its generation is complete
//! ```
//!
//! Object storage has no rename, so a generation is complete when its
//! `manifest.json` exists (it is put last, after everything it names is
//! acknowledged); a generation without one is what a backup that died
//! left, and the next backup deletes it. Blob files are the store's
//! sealed blobs, byte for byte; the metadata snapshot is compressed and
//! sealed on the device before it leaves. The lock is an object put
//! create-only; one older than [`LOCK_STALE`] is a dead backup's and is
//! taken over. Only keys below the prefix that this layout names are ever
//! deleted.

pub(crate) mod backup;
pub(crate) mod restore;
pub(crate) mod seal;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use futures_util::StreamExt;
use object_store::aws::AmazonS3;
use object_store::path::Path as Key;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutPayload};

use crate::blob::backend::choice::S3Config;
use crate::error::Error;
use crate::ops::backup::destination::Record;
use crate::ops::backup::manifest::{self, FileDigest, Manifest};
use crate::types::BlobAddress;

/// A lock older than this is a dead backup's.
pub(crate) const LOCK_STALE: std::time::Duration = std::time::Duration::from_secs(3600);
const RECORD: &str = "backup.json";
const SNAPSHOT: &str = "store.redb.sealed";
/// The largest manifest or record read (a manifest of millions of blobs).
const SMALL_MAX: u64 = 1 << 30;

/// A backup destination in a bucket.
pub(crate) struct Bucket {
    pub(crate) store: Arc<AmazonS3>,
    root: Key,
    /// `s3://bucket/prefix`, for messages.
    pub(crate) url: String,
    pub(crate) part_bytes: usize,
}

impl Bucket {
    pub(crate) fn new(config: &S3Config) -> Result<Bucket, Error> {
        let prefix = config.prefix.trim_matches('/');
        Ok(Bucket {
            store: Arc::new(crate::blob::backend::s3::client(config)?),
            root: Key::from(prefix),
            url: if prefix.is_empty() {
                format!("s3://{}", config.bucket)
            } else {
                format!("s3://{}/{prefix}", config.bucket)
            },
            part_bytes: config.part_bytes,
        })
    }

    fn key(&self, name: &str) -> Key {
        let mut k = self.root.clone();
        for part in name.split('/').filter(|p| !p.is_empty()) {
            k = k.join(part);
        }
        k
    }

    pub(crate) fn blob_key(&self, address: BlobAddress) -> Key {
        self.key(&format!("blobs/{address}"))
    }

    fn generation_key(&self, generation: u64, name: &str) -> Key {
        self.key(&format!("generations/{generation:06}/{name}"))
    }

    pub(crate) fn snapshot_key(&self, generation: u64) -> Key {
        self.generation_key(generation, SNAPSHOT)
    }

    pub(crate) fn fail(&self, what: &str, key: &Key, e: object_store::Error) -> Error {
        Error::storage_from(format!("{what} {}", self.display(key)), e)
    }

    /// `s3://bucket/key`, for messages.
    pub(crate) fn display(&self, key: &Key) -> String {
        let bucket = self.url.trim_start_matches("s3://");
        let bucket = bucket.split('/').next().unwrap_or(bucket);
        format!("s3://{bucket}/{key}")
    }

    /// A small object's bytes; `None` if there is none.
    async fn get_small(&self, key: &Key) -> Result<Option<Vec<u8>>, Error> {
        let got = match self.store.get(key).await {
            Ok(g) => g,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(self.fail("reading", key, e)),
        };
        if got.meta.size > SMALL_MAX {
            return Err(Error::corrupt(
                self.display(key),
                format!("{} bytes: larger than any this build writes", got.meta.size),
            ));
        }
        let bytes = got
            .bytes()
            .await
            .map_err(|e| self.fail("reading", key, e))?;
        Ok(Some(bytes.to_vec()))
    }

    async fn put_small(&self, key: &Key, bytes: Vec<u8>) -> Result<(), Error> {
        self.store
            .put(key, PutPayload::from(bytes))
            .await
            .map(drop)
            .map_err(|e| self.fail("writing", key, e))
    }

    async fn delete(&self, key: &Key) -> Result<(), Error> {
        match self.store.delete(key).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.fail("deleting", key, e)),
        }
    }

    /// Every object below `name` (a listing by prefix).
    async fn list(&self, name: &str) -> Result<Vec<object_store::ObjectMeta>, Error> {
        let under = self.key(name);
        let mut listing = self.store.list(Some(&under));
        let mut out = Vec::new();
        while let Some(meta) = listing.next().await {
            out.push(meta.map_err(|e| self.fail("listing", &under, e))?);
        }
        Ok(out)
    }

    /// What `backup.json` says; `None` if there is none.
    pub(crate) async fn record(&self) -> Result<Option<Record>, Error> {
        let key = self.key(RECORD);
        let Some(bytes) = self.get_small(&key).await? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| Error::corrupt(self.display(&key), e.to_string()))
    }

    /// Opens the destination for a backup of the store `store_id` (creating
    /// its record under an empty prefix) and takes its lock. A prefix that
    /// holds other things, or another store's backups, is refused.
    pub(crate) async fn open_for_backup(
        &self,
        store_id: &str,
        region: Option<&str>,
        allow_region: bool,
    ) -> Result<Lock, Error> {
        let record = match self.record().await? {
            Some(r) => r,
            None => {
                let mut listing = self.store.list(Some(&self.root));
                if let Some(first) = listing.next().await {
                    let first = first.map_err(|e| self.fail("listing", &self.root, e))?;
                    return Err(Error::invalid(
                        "backup destination",
                        format!(
                            "{} is not empty ({} is there) and holds no backup.json: back up under an empty or new prefix",
                            self.url,
                            self.display(&first.location)
                        ),
                    ));
                }
                let record = Record::new(store_id, region);
                self.put_small(&self.key(RECORD), record.to_json()?).await?;
                record
            }
        };
        record.admits(store_id, region, allow_region, &self.url)?;
        self.lock().await
    }

    /// Puts the lock object create-only; one a dead backup left (older
    /// than [`LOCK_STALE`]) is taken over.
    async fn lock(&self) -> Result<Lock, Error> {
        let key = self.key("lock");
        let body = format!("pid {}\n", std::process::id()).into_bytes();
        let create = object_store::PutOptions::from(PutMode::Create);
        match self
            .store
            .put_opts(&key, PutPayload::from(body.clone()), create)
            .await
        {
            Ok(_) => {}
            Err(
                object_store::Error::AlreadyExists { .. }
                | object_store::Error::Precondition { .. },
            ) => {
                let meta = self
                    .store
                    .head(&key)
                    .await
                    .map_err(|e| self.fail("reading", &key, e))?;
                let age = age_of(&meta);
                if age < LOCK_STALE {
                    return Err(Error::Busy {
                        what: "backup",
                        detail: format!(
                            "another backup is writing to {} (its lock {} is {} s old; one older than {} s is taken over)",
                            self.url,
                            self.display(&key),
                            age.as_secs(),
                            LOCK_STALE.as_secs()
                        ),
                    });
                }
                tracing::warn!(lock = %self.display(&key), age_s = age.as_secs(), "taking over a dead backup's lock");
                self.put_small(&key, body).await?;
            }
            Err(e) => return Err(self.fail("locking", &key, e)),
        }
        Ok(Lock { key })
    }

    /// The complete generations (those with a manifest), oldest first, and
    /// the partial ones a dead backup left.
    pub(crate) async fn generations(&self) -> Result<(Vec<u64>, Vec<u64>), Error> {
        let root = self.key("generations");
        let mut seen: BTreeMap<u64, bool> = BTreeMap::new();
        for meta in self.list("generations").await? {
            let Some(mut parts) = meta.location.prefix_match(&root) else {
                continue;
            };
            let (Some(g), Some(name), None) = (parts.next(), parts.next(), parts.next()) else {
                continue;
            };
            let Some(g) = crate::ops::backup::destination::parse_generation(g.as_ref()) else {
                continue;
            };
            let complete = seen.entry(g).or_default();
            *complete |= name.as_ref() == manifest::MANIFEST;
        }
        let (complete, partial): (Vec<_>, Vec<_>) = seen.into_iter().partition(|(_, c)| *c);
        Ok((
            complete.into_iter().map(|(g, _)| g).collect(),
            partial.into_iter().map(|(g, _)| g).collect(),
        ))
    }

    /// Deletes what this layout puts in a generation (never anything else).
    pub(crate) async fn remove_generation(&self, generation: u64) -> Result<(), Error> {
        // The manifest first: from then on the generation is partial.
        for name in [manifest::MANIFEST, manifest::MAC, SNAPSHOT] {
            self.delete(&self.generation_key(generation, name)).await?;
        }
        Ok(())
    }

    /// A generation's manifest and MAC bytes.
    pub(crate) async fn manifest_bytes(
        &self,
        generation: u64,
    ) -> Result<Option<(Vec<u8>, Vec<u8>)>, Error> {
        let Some(body) = self
            .get_small(&self.generation_key(generation, manifest::MANIFEST))
            .await?
        else {
            return Ok(None);
        };
        let mac_key = self.generation_key(generation, manifest::MAC);
        let mac = self.get_small(&mac_key).await?.unwrap_or_default();
        Ok(Some((body, mac)))
    }

    /// A generation's manifest, unchecked (listing, reusing digests).
    pub(crate) async fn manifest_unchecked(&self, generation: u64) -> Result<Manifest, Error> {
        let place = self.display(&self.generation_key(generation, ""));
        let (body, _) = self
            .manifest_bytes(generation)
            .await?
            .ok_or_else(|| Error::NotFound {
                entity: crate::error::Entity::Backup,
                id: format!("generation {generation} in {}", self.url),
            })?;
        manifest::decode_unchecked(&body, place.trim_end_matches('/'))
    }

    /// Writes a generation's manifest: the MAC, then the manifest, which
    /// makes the generation complete.
    pub(crate) async fn publish(
        &self,
        generation: u64,
        body: Vec<u8>,
        mac: String,
    ) -> Result<(), Error> {
        self.put_small(
            &self.generation_key(generation, manifest::MAC),
            mac.into_bytes(),
        )
        .await?;
        self.put_small(&self.generation_key(generation, manifest::MANIFEST), body)
            .await
    }

    /// The blob files the destination holds, with their sizes.
    pub(crate) async fn stored_blobs(&self) -> Result<HashMap<BlobAddress, u64>, Error> {
        let root = self.key("blobs");
        let mut out = HashMap::new();
        for meta in self.list("blobs").await? {
            let Some(mut parts) = meta.location.prefix_match(&root) else {
                continue;
            };
            if let (Some(name), None) = (parts.next(), parts.next())
                && let Some(address) = BlobAddress::from_name(name.as_ref())
            {
                out.insert(address, meta.size);
            }
        }
        Ok(out)
    }

    /// What the complete generations' manifests say of each blob.
    pub(crate) async fn known_blobs(
        &self,
        generations: &[u64],
    ) -> Result<BTreeMap<BlobAddress, FileDigest>, Error> {
        let mut known = BTreeMap::new();
        for g in generations {
            for b in self.manifest_unchecked(*g).await?.blobs {
                known.insert(b.address, b.digest);
            }
        }
        Ok(known)
    }

    /// Deletes the oldest generations beyond `keep`, then the blob files
    /// only they named.
    pub(crate) async fn prune(&self, all: &[u64], keep: usize) -> Result<(Vec<u64>, u64), Error> {
        let cut = all.len().saturating_sub(keep.max(1));
        let (doomed, kept) = all.split_at(cut);
        if doomed.is_empty() {
            return Ok((Vec::new(), 0));
        }
        let named: HashSet<BlobAddress> = self.known_blobs(kept).await?.into_keys().collect();
        let mut orphaned: HashSet<BlobAddress> = HashSet::new();
        for g in doomed {
            if let Ok(m) = self.manifest_unchecked(*g).await {
                orphaned.extend(m.blobs.iter().map(|b| b.address));
            }
            self.remove_generation(*g).await?;
        }
        let mut removed = 0;
        for address in orphaned.difference(&named) {
            self.delete(&self.blob_key(*address)).await?;
            removed += 1;
        }
        Ok((doomed.to_vec(), removed))
    }
}

/// Every complete generation's manifest (unchecked), oldest first.
pub(crate) fn listing(config: &S3Config) -> Result<Vec<(u64, Manifest)>, Error> {
    let config = config.clone();
    on_own_runtime(|| async move {
        let bucket = Bucket::new(&config)?;
        if bucket.record().await?.is_none() {
            return Err(Error::NotFound {
                entity: crate::error::Entity::Backup,
                id: format!("{} (it has no backup.json)", bucket.url),
            });
        }
        let mut out = Vec::new();
        for g in bucket.generations().await?.0 {
            out.push((g, bucket.manifest_unchecked(g).await?));
        }
        Ok(out)
    })
}

/// Runs async work from a blocking caller, on a runtime of its own on a
/// thread of its own (the caller may be inside another runtime).
pub(crate) fn on_own_runtime<T: Send, F: Future<Output = Result<T, Error>>>(
    make: impl FnOnce() -> F + Send,
) -> Result<T, Error> {
    std::thread::scope(|s| {
        s.spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| Error::io("starting the object store client", e))?
                .block_on(make())
        })
        .join()
        .unwrap_or_else(|p| {
            Err(Error::io(
                "talking to the object store",
                std::io::Error::other(crate::error::panic_message(&*p)),
            ))
        })
    })
}

/// The test hooks' view of a bucket: objects by name under the prefix.
#[cfg(feature = "fuzzing")]
pub(crate) mod probe {
    use super::*;

    pub(crate) fn objects(config: &S3Config) -> Result<Vec<String>, Error> {
        let config = config.clone();
        on_own_runtime(|| async move {
            let bucket = Bucket::new(&config)?;
            let root = bucket.root.clone();
            Ok(bucket
                .list("")
                .await?
                .into_iter()
                .filter_map(|m| {
                    let parts: Vec<String> = m
                        .location
                        .prefix_match(&root)?
                        .map(|p| p.as_ref().to_string())
                        .collect();
                    Some(parts.join("/"))
                })
                .collect())
        })
    }

    pub(crate) fn get(config: &S3Config, name: &str) -> Result<Option<Vec<u8>>, Error> {
        let (config, name) = (config.clone(), name.to_string());
        on_own_runtime(|| async move {
            let bucket = Bucket::new(&config)?;
            bucket.get_small(&bucket.key(&name)).await
        })
    }

    pub(crate) fn set(config: &S3Config, name: &str, bytes: Option<Vec<u8>>) -> Result<(), Error> {
        let (config, name) = (config.clone(), name.to_string());
        on_own_runtime(|| async move {
            let bucket = Bucket::new(&config)?;
            let key = bucket.key(&name);
            match bytes {
                Some(b) => bucket.put_small(&key, b).await,
                None => bucket.delete(&key).await,
            }
        })
    }
}

/// The destination's lock: deleted by [`Lock::release`] (a backup that
/// dies leaves it, and it goes stale).
pub(crate) struct Lock {
    key: Key,
}

impl Lock {
    pub(crate) async fn release(self, bucket: &Bucket) {
        if let Err(e) = bucket.delete(&self.key).await {
            tracing::warn!(error = %e, "could not delete the backup lock; it goes stale in an hour");
        }
    }
}

/// How long ago an object was last written (zero if the clocks disagree).
fn age_of(meta: &object_store::ObjectMeta) -> std::time::Duration {
    let now_us = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX));
    let ago = now_us.saturating_sub(meta.last_modified.timestamp_micros());
    std::time::Duration::from_micros(u64::try_from(ago).unwrap_or(0))
}
