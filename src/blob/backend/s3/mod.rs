//! Sealed blobs as objects in an S3-compatible bucket (feature `s3`),
//! through the Apache Arrow `object_store` crate.
//!
//! A blob is the object `<prefix>/blobs/<address in hex>`: the same
//! container as on a local disk, sealed and authenticated on the device
//! before it leaves it. Keys sort as addresses do, so a listing resumes
//! from its last address as the local directory's does.
//!
//! The crash-safe order holds: [`commit`](BlobBackend::commit) returns
//! once the server has acknowledged the whole object, and only then does
//! the caller commit the record. A blob larger than one part goes up as a
//! multipart upload that holds at most two parts in memory; an upload that
//! fails is aborted (one the process did not live to abort is left to the
//! bucket's lifecycle rule for incomplete uploads, see `docs/OBJECT-STORAGE.md`).
//! Puts are create-only (`If-None-Match: *`) where the engine enforces
//! it; an object already there is one no record names (the caller holds
//! the address lock and found no row), left by a put that died before its
//! record committed, so it is replaced. Correctness never depends on the
//! engine enforcing create-only: the address lock and the row check do.
//!
//! The trait's methods block (callers run them on the blocking pool). The
//! HTTP client runs on a small runtime of its own, so a call works from
//! any thread, and its connections outlive no caller's runtime.

use std::path::Path;
use std::sync::Arc;

use futures_util::StreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as Key;
use object_store::{BackoffConfig, ClientOptions, ObjectStore, ObjectStoreExt, RetryConfig};

mod cross_copy;
mod object;
mod upload;

pub(crate) use cross_copy::{CrossCopier, CrossCopy};

use super::{BlobBackend, BlobSource, StoredBlob};
use crate::blob::backend::choice::S3Config;
use crate::error::Error;
use crate::types::{BlobAddress, Timestamp};
use object::{Handle, Object, ReadCache};

/// Threads of the backend's own runtime (HTTP requests are I/O bound).
const CLIENT_THREADS: usize = 2;

/// The longest a health check waits for the bucket to answer.
const PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// An object of a bucket on an engine: where a blob lies in object
/// storage ([`BlobBackend::object_of`]).
pub(crate) struct ObjectName {
    /// The engine's endpoint (`None`: AWS).
    pub(crate) endpoint: Option<String>,
    pub(crate) bucket: String,
    pub(crate) key: Key,
}

impl ObjectName {
    /// Whether this object lies in the bucket `config` names on the same
    /// engine, where one request copies it.
    pub(crate) fn shares_bucket(&self, config: &S3Config) -> bool {
        self.bucket == config.bucket && self.shares_engine(config)
    }

    /// Whether this object lies on the engine `config` names (any bucket),
    /// where the engine can copy it into `config`'s bucket.
    pub(crate) fn shares_engine(&self, config: &S3Config) -> bool {
        let endpoint =
            |e: &Option<String>| e.as_deref().map(|e| e.trim_end_matches('/').to_string());
        endpoint(&self.endpoint) == endpoint(&config.endpoint)
    }
}

/// A bucket (and prefix) holding blobs.
pub(crate) struct S3Dir {
    store: Arc<AmazonS3>,
    /// The same bucket without retries and with a short timeout, for
    /// health checks.
    probe: Arc<AmazonS3>,
    /// GET requests sent (ranged reads of objects).
    gets: Arc<std::sync::atomic::AtomicU64>,
    /// HEAD requests sent (opens, existence checks).
    heads: Arc<std::sync::atomic::AtomicU64>,
    /// `<prefix>/blobs`.
    root: Key,
    /// `<prefix>/uploads`: a marker per multipart upload in flight.
    uploads: Key,
    part_bytes: usize,
    runtime: Runtime,
    /// `s3://bucket/prefix`, for messages.
    url: String,
    /// The endpoint (`None`: AWS) and bucket, which tell whether a backup
    /// target shares them.
    endpoint: Option<String>,
    bucket: String,
    /// Recently read bytes (see [`object`]), if on.
    cache: Option<ReadCache>,
    /// How often an upload in flight puts its marker again (see
    /// [`S3Dir::refresh_markers`]); never if `None`.
    marker_refresh: Option<std::time::Duration>,
}

/// The client's runtime, shut down without blocking when the backend goes
/// (it may go inside another runtime, where a blocking shutdown panics).
struct Runtime(Option<tokio::runtime::Runtime>);

impl Drop for Runtime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

impl S3Dir {
    /// A client for the configured bucket. Nothing is sent yet: the first
    /// request (the store's open lists one object) finds out whether the
    /// bucket answers.
    pub(crate) fn new(config: &S3Config) -> Result<S3Dir, Error> {
        let store = client(config)?;
        // Health checks ask once, briefly: a dead endpoint is reported in
        // seconds, not after the puts' whole retry budget.
        let probe_timeout = config.request_timeout.min(PROBE_TIMEOUT);
        let (builder, options) = builder(config);
        let probe = build(
            config,
            builder
                .with_client_options(
                    options
                        .with_timeout(probe_timeout)
                        .with_connect_timeout(config.connect_timeout.min(probe_timeout)),
                )
                .with_retry(RetryConfig {
                    backoff: BackoffConfig::default(),
                    max_retries: 0,
                    retry_timeout: probe_timeout,
                }),
        )?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(CLIENT_THREADS)
            .thread_name("bv-s3")
            .enable_all()
            .build()
            .map_err(|e| Error::io("starting the object store client", e))?;
        let prefix = config.prefix.trim_matches('/');
        let under = |name: &str| {
            if prefix.is_empty() {
                Key::from(name)
            } else {
                Key::from(prefix).join(name)
            }
        };
        let (root, uploads) = (under("blobs"), under("uploads"));
        Ok(S3Dir {
            store: Arc::new(store),
            probe: Arc::new(probe),
            gets: Default::default(),
            heads: Default::default(),
            url: format!("s3://{}/{root}", config.bucket),
            endpoint: config.endpoint.clone(),
            bucket: config.bucket.clone(),
            root,
            uploads,
            part_bytes: config.part_bytes,
            runtime: Runtime(Some(runtime)),
            cache: object::read_cache(config.read_cache_bytes),
            marker_refresh: None,
        })
    }

    /// Keeps the markers of uploads in flight younger than `grace` (the
    /// orphan collector's: it aborts an upload whose marker is older):
    /// each is put again every quarter of it while its parts go up, so an
    /// upload that takes longer than the grace is not taken for one a dead
    /// process left. A grace of 0 (tests) collects every upload it sees.
    pub(crate) fn refresh_markers(mut self, grace: std::time::Duration) -> S3Dir {
        self.marker_refresh =
            (!grace.is_zero()).then(|| (grace / 4).max(std::time::Duration::from_millis(10)));
        self
    }

    fn key(&self, address: BlobAddress) -> Key {
        self.root.clone().join(address.to_string())
    }

    /// Runs `work` on the client's runtime and waits for it, from any
    /// thread (a panic in the client comes back as an error).
    fn run<T: Send + 'static>(
        &self,
        what: &str,
        work: impl Future<Output = Result<T, Error>> + Send + 'static,
    ) -> Result<T, Error> {
        let Some(rt) = &self.runtime.0 else {
            return Err(Error::Closed);
        };
        wait_on(rt.handle(), work).unwrap_or_else(|| {
            Err(Error::io(
                what,
                std::io::Error::other("the object store client stopped (panicked?)"),
            ))
        })
    }

    /// Drops what the read cache holds of `address` (its object is being
    /// replaced or deleted).
    fn forget(&self, address: BlobAddress) {
        if let Some(cache) = &self.cache {
            cache.invalidate(&address);
        }
    }

    /// The length of the object of `address`, if there is one (a `HEAD`).
    fn head(&self, address: BlobAddress) -> Result<Option<u64>, Error> {
        let sent = head_size(&self.store, &self.heads, self.key(address));
        let context = self.context("looking up", address);
        let head = self.run(&context.clone(), async move {
            match sent.await {
                Ok(size) => Ok(Some(size)),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(failed(context, e)),
            }
        })?;
        if head.is_none() {
            self.forget(address);
        }
        Ok(head)
    }

    fn context(&self, what: &str, address: BlobAddress) -> String {
        format!("{what} blob {address} at {}", self.url)
    }
}

/// One `HEAD` of `key`, counted in `heads` (see
/// [`BlobBackend::heads_sent`]): the object's size.
fn head_size(
    store: &Arc<AmazonS3>,
    heads: &std::sync::atomic::AtomicU64,
    key: Key,
) -> impl std::future::Future<Output = object_store::Result<u64>> + Send + 'static {
    let store = Arc::clone(store);
    heads.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    async move { store.head(&key).await.map(|meta| meta.size) }
}

/// The configured bucket's builder and client options (credentials and
/// anything unset from the `AWS_*` variables).
fn builder(config: &S3Config) -> (AmazonS3Builder, ClientOptions) {
    let mut builder = AmazonS3Builder::from_env()
        .with_bucket_name(&config.bucket)
        .with_virtual_hosted_style_request(false);
    if let Some(endpoint) = &config.endpoint {
        builder = builder.with_endpoint(endpoint);
    }
    if let Some(region) = &config.region {
        builder = builder.with_region(region);
    }
    if let Some(id) = &config.access_key_id {
        builder = builder.with_access_key_id(id);
    }
    if let Some(secret) = &config.secret_access_key {
        builder = builder.with_secret_access_key(secret);
    }
    let options = ClientOptions::new()
        .with_allow_http(config.allow_http)
        .with_timeout(config.request_timeout)
        .with_connect_timeout(config.connect_timeout);
    (builder, options)
}

fn build(config: &S3Config, builder: AmazonS3Builder) -> Result<AmazonS3, Error> {
    builder.build().map_err(|e| Error::Config {
        reason: format!("s3://{}: {e}", config.bucket),
    })
}

/// A client of the configured bucket with its retries and timeouts
/// (nothing is sent yet).
pub(crate) fn client(config: &S3Config) -> Result<AmazonS3, Error> {
    let (builder, options) = builder(config);
    let retry = RetryConfig {
        backoff: BackoffConfig::default(),
        max_retries: config.max_retries,
        retry_timeout: config.retry_timeout,
    };
    build(
        config,
        builder.with_client_options(options).with_retry(retry),
    )
}

/// Runs `work` on the client's runtime and waits for its output from
/// this (blocking) thread; `None` if the task panicked or the runtime is
/// gone.
fn wait_on<T: Send + 'static>(
    rt: &tokio::runtime::Handle,
    work: impl Future<Output = T> + Send + 'static,
) -> Option<T> {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    rt.spawn(async move {
        let _ = tx.send(work.await);
    });
    rx.recv().ok()
}

/// The address of the blob `key` names, if it is `<root>/<address>`.
fn address_under(root: &Key, key: &Key) -> Option<BlobAddress> {
    let mut parts = key.prefix_match(root)?;
    match (parts.next(), parts.next()) {
        (Some(name), None) => BlobAddress::from_name(name.as_ref()),
        _ => None,
    }
}

/// The store's error for an object store's.
fn failed(context: String, e: object_store::Error) -> Error {
    Error::storage_from(context, e)
}

impl BlobBackend for S3Dir {
    fn name(&self) -> &'static str {
        "s3"
    }

    fn commit(&self, tmp: &Path, address: BlobAddress) -> Result<(), Error> {
        self.forget(address);
        let result = self.upload(tmp, address);
        let _ = std::fs::remove_file(tmp);
        result
    }

    /// Opens the object of `address` (see [`S3Dir::open_object`]).
    fn open(&self, address: BlobAddress) -> Result<Option<Box<dyn BlobSource>>, Error> {
        self.open_object(address, true)
    }

    fn open_once(&self, address: BlobAddress) -> Result<Option<Box<dyn BlobSource>>, Error> {
        self.open_object(address, false)
    }

    fn exists(&self, address: BlobAddress) -> Result<bool, Error> {
        Ok(self.head(address)?.is_some())
    }

    fn delete(&self, address: BlobAddress) -> Result<bool, Error> {
        self.forget(address);
        if !self.exists(address)? {
            return Ok(false);
        }
        let (store, key) = (Arc::clone(&self.store), self.key(address));
        let context = self.context("deleting", address);
        self.run(&context.clone(), async move {
            match store.delete(&key).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(true),
                Err(e) => Err(failed(context, e)),
            }
        })
    }

    fn probe(&self) -> Result<(), Error> {
        let (store, root) = (Arc::clone(&self.probe), self.root.clone());
        let context = format!("listing blobs at {}", self.url);
        self.run(&context.clone(), async move {
            match store.list(Some(&root)).next().await {
                None | Some(Ok(_)) => Ok(()),
                Some(Err(e)) => Err(failed(context, e)),
            }
        })
    }

    fn collect_uploads(&self, cutoff: Timestamp, dry_run: bool) -> Result<u64, Error> {
        self.collect_open_uploads(cutoff, dry_run)
    }

    fn gets_sent(&self) -> Option<u64> {
        Some(self.gets.load(std::sync::atomic::Ordering::Relaxed))
    }

    fn object_of(&self, address: BlobAddress) -> Option<ObjectName> {
        Some(ObjectName {
            endpoint: self.endpoint.clone(),
            bucket: self.bucket.clone(),
            key: self.key(address),
        })
    }

    fn heads_sent(&self) -> Option<u64> {
        Some(self.heads.load(std::sync::atomic::Ordering::Relaxed))
    }

    fn list(&self, after: Option<BlobAddress>, limit: usize) -> Result<Vec<StoredBlob>, Error> {
        let (store, root) = (Arc::clone(&self.store), self.root.clone());
        let offset = after.map(|a| self.key(a));
        let context = format!("listing blobs at {}", self.url);
        self.run(&context.clone(), async move {
            let mut listing = match &offset {
                Some(o) => store.list_with_offset(Some(&root), o),
                None => store.list(Some(&root)),
            };
            let mut out = Vec::new();
            while out.len() < limit {
                let Some(meta) = listing.next().await else {
                    break;
                };
                let meta = meta.map_err(|e| failed(context.clone(), e))?;
                // Anything that is not `<root>/<address>` is not ours.
                let Some(address) = address_under(&root, &meta.location) else {
                    continue;
                };
                out.push(StoredBlob {
                    address,
                    bytes: meta.size,
                    modified: Timestamp::from_micros(meta.last_modified.timestamp_micros()),
                });
            }
            Ok(out)
        })
    }
}

impl S3Dir {
    /// Opens the object of `address`. When the read cache holds some of
    /// it, its length is taken from there and nothing is sent: the first
    /// request the reads make confirms the object is still there (see
    /// [`Object`]). Otherwise one `HEAD`. With `keep` what its reads fetch
    /// goes into the read cache.
    fn open_object(
        &self,
        address: BlobAddress,
        keep: bool,
    ) -> Result<Option<Box<dyn BlobSource>>, Error> {
        let known = self.cache.as_ref().and_then(|c| c.get(&address));
        let (len, confirmed) = match known {
            Some(cached) => (cached.len, false),
            None => match self.head(address)? {
                Some(len) => (len, true),
                None => return Ok(None),
            },
        };
        Ok(Some(Box::new(Object {
            dir: self.handle(),
            key: self.key(address),
            address,
            len,
            keep,
            confirmed: Arc::new(std::sync::atomic::AtomicBool::new(confirmed)),
            ahead: Default::default(),
        })))
    }

    /// What an open object needs to read itself.
    fn handle(&self) -> Handle {
        Handle {
            store: Arc::clone(&self.store),
            gets: Arc::clone(&self.gets),
            heads: Arc::clone(&self.heads),
            runtime: self.runtime.0.as_ref().map(|rt| rt.handle().clone()),
            url: self.url.clone(),
            cache: self.cache.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Key, ObjectName};
    use crate::blob::backend::choice::S3Config;

    #[test]
    fn only_the_same_bucket_on_the_same_engine_is_shared() {
        let object = |endpoint: Option<&str>, bucket: &str| ObjectName {
            endpoint: endpoint.map(str::to_string),
            bucket: bucket.into(),
            key: Key::from("store/blobs/ab"),
        };
        let target = S3Config::new("audio").endpoint("http://127.0.0.1:7480");
        assert!(object(Some("http://127.0.0.1:7480"), "audio").shares_bucket(&target));
        assert!(object(Some("http://127.0.0.1:7480/"), "audio").shares_bucket(&target));
        assert!(!object(Some("http://127.0.0.1:7480"), "backups").shares_bucket(&target));
        assert!(!object(Some("http://10.0.0.2:7480"), "audio").shares_bucket(&target));
        assert!(!object(None, "audio").shares_bucket(&target));
        assert!(object(None, "audio").shares_bucket(&S3Config::new("audio")));
    }
}
