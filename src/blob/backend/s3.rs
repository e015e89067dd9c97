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

use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use futures_util::StreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as Key;
use object_store::{
    BackoffConfig, ClientOptions, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload,
    RetryConfig, WriteMultipart,
};

use super::{BlobBackend, BlobSource, StoredBlob};
use crate::blob::backend::choice::S3Config;
use crate::error::Error;
use crate::types::{BlobAddress, Timestamp};

/// Threads of the backend's own runtime (HTTP requests are I/O bound).
const CLIENT_THREADS: usize = 2;

/// Parts of a multipart upload in flight at once.
const PARTS_IN_FLIGHT: usize = 2;

/// A bucket (and prefix) holding blobs.
pub(crate) struct S3Dir {
    store: Arc<AmazonS3>,
    /// GET requests sent (ranged reads of objects).
    gets: Arc<std::sync::atomic::AtomicU64>,
    /// `<prefix>/blobs`.
    root: Key,
    part_bytes: usize,
    runtime: Runtime,
    /// `s3://bucket/prefix`, for messages.
    url: String,
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
        let mut builder = AmazonS3Builder::from_env().with_bucket_name(&config.bucket);
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
        let retry = RetryConfig {
            backoff: BackoffConfig::default(),
            max_retries: config.max_retries,
            retry_timeout: config.retry_timeout,
        };
        let store = builder
            .with_client_options(options)
            .with_retry(retry)
            .with_virtual_hosted_style_request(false)
            .build()
            .map_err(|e| Error::Config {
                reason: format!("blob_backend s3://{}: {e}", config.bucket),
            })?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(CLIENT_THREADS)
            .thread_name("bv-s3")
            .enable_all()
            .build()
            .map_err(|e| Error::io("starting the object store client", e))?;
        let prefix = config.prefix.trim_matches('/');
        let root = if prefix.is_empty() {
            Key::from("blobs")
        } else {
            Key::from(prefix).join("blobs")
        };
        Ok(S3Dir {
            store: Arc::new(store),
            gets: Default::default(),
            url: format!("s3://{}/{root}", config.bucket),
            root,
            part_bytes: config.part_bytes,
            runtime: Runtime(Some(runtime)),
        })
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

    fn context(&self, what: &str, address: BlobAddress) -> String {
        format!("{what} blob {address} at {}", self.url)
    }
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

/// The store's error for an object store's.
fn failed(context: String, e: object_store::Error) -> Error {
    Error::storage_from(context, e)
}

impl BlobBackend for S3Dir {
    fn name(&self) -> &'static str {
        "s3"
    }

    fn commit(&self, tmp: &Path, address: BlobAddress) -> Result<(), Error> {
        let result = self.upload(tmp, address);
        let _ = std::fs::remove_file(tmp);
        result
    }

    fn open(&self, address: BlobAddress) -> Result<Option<Box<dyn BlobSource>>, Error> {
        let (store, key) = (Arc::clone(&self.store), self.key(address));
        let context = self.context("looking up", address);
        let head = self.run(&context.clone(), async move {
            match store.head(&key).await {
                Ok(meta) => Ok(Some(meta.size)),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(failed(context, e)),
            }
        })?;
        Ok(head.map(|len| {
            Box::new(Object {
                dir: self.handle(),
                key: self.key(address),
                address,
                len,
                ahead: Default::default(),
            }) as Box<dyn BlobSource>
        }))
    }

    fn exists(&self, address: BlobAddress) -> Result<bool, Error> {
        Ok(self.open(address)?.is_some())
    }

    fn delete(&self, address: BlobAddress) -> Result<bool, Error> {
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

    fn gets_sent(&self) -> Option<u64> {
        Some(self.gets.load(std::sync::atomic::Ordering::Relaxed))
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
                let Some(address) = meta
                    .location
                    .prefix_match(&root)
                    .and_then(|mut parts| match (parts.next(), parts.next()) {
                        (Some(name), None) => BlobAddress::from_name(name.as_ref()),
                        _ => None,
                    })
                else {
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
    /// What an open object needs to read itself.
    fn handle(&self) -> Handle {
        Handle {
            store: Arc::clone(&self.store),
            gets: Arc::clone(&self.gets),
            runtime: self.runtime.0.as_ref().map(|rt| rt.handle().clone()),
            url: self.url.clone(),
        }
    }

    /// Sends the sealed file at `tmp` as the object of `address`.
    fn upload(&self, tmp: &Path, address: BlobAddress) -> Result<(), Error> {
        let mut file = std::fs::File::open(tmp)
            .map_err(|e| Error::io(format!("opening {}", tmp.display()), e))?;
        let len = file
            .metadata()
            .map_err(|e| Error::io(format!("reading {}", tmp.display()), e))?
            .len();
        let (store, key) = (Arc::clone(&self.store), self.key(address));
        let context = self.context("storing", address);
        if len <= self.part_bytes as u64 {
            let mut bytes = Vec::with_capacity(len as usize);
            std::io::Read::read_to_end(&mut file, &mut bytes)
                .map_err(|e| Error::io(format!("reading {}", tmp.display()), e))?;
            return self.run(&context.clone(), async move {
                let payload = PutPayload::from(bytes);
                let create = PutOptions {
                    mode: PutMode::Create,
                    ..Default::default()
                };
                match store.put_opts(&key, payload.clone(), create).await {
                    Ok(_) => Ok(()),
                    Err(object_store::Error::AlreadyExists { .. }) => {
                        // No record names it (the caller checked under the
                        // address lock): a put that died before its commit.
                        tracing::info!(%key, "replacing an object no record names");
                        store
                            .put(&key, payload)
                            .await
                            .map(drop)
                            .map_err(|e| failed(context, e))
                    }
                    Err(e) => Err(failed(context, e)),
                }
            });
        }
        // Multipart: the file read a part at a time as the upload takes
        // them; at most PARTS_IN_FLIGHT parts in flight, one being filled.
        let part = self.part_bytes;
        let name = tmp.display().to_string();
        let file = tokio::fs::File::from_std(file);
        self.run(&context.clone(), async move {
            let upload = store
                .put_multipart(&key)
                .await
                .map_err(|e| failed(context.clone(), e))?;
            let mut writer = WriteMultipart::new_with_chunk_size(upload, part);
            let sent = send_parts(file, &mut writer, part, &name, &context).await;
            match sent {
                Ok(()) => writer
                    .finish()
                    .await
                    .map(drop)
                    .map_err(|e| failed(context, e)),
                Err(e) => {
                    if let Err(a) = writer.abort().await {
                        tracing::warn!(%key, error = %a, "could not abort a failed multipart upload");
                    }
                    Err(e)
                }
            }
        })
    }
}

/// Feeds `file` to a multipart upload a part at a time.
async fn send_parts(
    mut file: tokio::fs::File,
    writer: &mut WriteMultipart,
    part: usize,
    name: &str,
    context: &str,
) -> Result<(), Error> {
    use tokio::io::AsyncReadExt;
    let mut buf = vec![0u8; part];
    loop {
        let mut n = 0;
        while n < part {
            let k = file
                .read(&mut buf[n..])
                .await
                .map_err(|e| Error::io(format!("reading {name}"), e))?;
            if k == 0 {
                break;
            }
            n += k;
        }
        if n == 0 {
            return Ok(());
        }
        writer
            .wait_for_capacity(PARTS_IN_FLIGHT)
            .await
            .map_err(|e| failed(context.to_string(), e))?;
        writer.write(&buf[..n]);
        if n < part {
            return Ok(());
        }
    }
}

/// The client, shared by the objects opened through it.
#[derive(Clone)]
struct Handle {
    store: Arc<AmazonS3>,
    /// GET requests sent through this client.
    gets: Arc<std::sync::atomic::AtomicU64>,
    runtime: Option<tokio::runtime::Handle>,
    url: String,
}

/// Bytes fetched ahead at most, within a run announced by
/// [`BlobSource::will_read`]: one ranged GET serves the chunks of up to
/// this many bytes, and no open object holds more.
const WINDOW: u64 = 8 << 20;

/// An object open for ranged reads. Reads within a run announced by
/// `will_read` are served from a window fetched with one ranged GET (of
/// the run, or of [`WINDOW`] bytes of it); any other read is one ranged
/// GET of exactly its bytes.
struct Object {
    dir: Handle,
    key: Key,
    address: BlobAddress,
    len: u64,
    ahead: std::sync::Mutex<Ahead>,
}

/// The announced run and the window fetched from it.
#[derive(Default)]
struct Ahead {
    run: Range<u64>,
    /// Where the window starts, and its bytes.
    window: Option<(u64, bytes::Bytes)>,
}

impl Object {
    /// One ranged GET.
    fn fetch(&self, range: Range<u64>) -> std::io::Result<bytes::Bytes> {
        let Some(rt) = &self.dir.runtime else {
            return Err(std::io::Error::other("the object store client is closed"));
        };
        let (store, key) = (Arc::clone(&self.dir.store), self.key.clone());
        let want = range.end - range.start;
        self.dir
            .gets
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let got = wait_on(rt, async move { store.get_range(&key, range).await })
            .ok_or_else(|| std::io::Error::other("the object store client stopped"))?
            .map_err(|e| {
                std::io::Error::other(format!(
                    "reading blob {} at {}: {e}",
                    self.address, self.dir.url
                ))
            })?;
        if got.len() as u64 != want {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        Ok(got)
    }
}

impl BlobSource for Object {
    fn len(&self) -> Result<u64, Error> {
        Ok(self.len)
    }

    fn will_read(&self, range: Range<u64>) {
        let mut ahead = self.ahead.lock().unwrap_or_else(|e| e.into_inner());
        ahead.run = range.start.min(self.len)..range.end.min(self.len);
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        if buf.is_empty() {
            return Ok(());
        }
        let end = offset
            .checked_add(buf.len() as u64)
            .filter(|end| *end <= self.len)
            .ok_or(std::io::ErrorKind::UnexpectedEof)?;
        // Held while fetching: reads ahead in parallel wait for the window
        // rather than each fetching it.
        let mut ahead = self.ahead.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((start, bytes)) = &ahead.window
            && offset >= *start
            && end <= start + bytes.len() as u64
        {
            let from = (offset - start) as usize;
            buf.copy_from_slice(&bytes[from..from + buf.len()]);
            return Ok(());
        }
        if ahead.run.start <= offset && end <= ahead.run.end {
            let to = ahead.run.end.min(offset.saturating_add(WINDOW)).max(end);
            let bytes = self.fetch(offset..to)?;
            buf.copy_from_slice(&bytes[..buf.len()]);
            ahead.window = Some((offset, bytes));
            return Ok(());
        }
        drop(ahead);
        let bytes = self.fetch(offset..end)?;
        buf.copy_from_slice(&bytes);
        Ok(())
    }
}
