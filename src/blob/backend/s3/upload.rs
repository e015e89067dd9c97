//! Putting sealed blobs into the bucket: one create-only PUT for a small
//! blob, a multipart upload for a large one (two parts in flight, each a
//! part's worth of the temporary file read as it goes), and the markers
//! that let an upload a dead process left open be found and aborted.

use std::path::Path;
use std::sync::Arc;

use futures_util::StreamExt;
use object_store::aws::AmazonS3;
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path as Key;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};

use super::{S3Dir, failed};
use crate::error::Error;
use crate::types::{BlobAddress, Timestamp};

/// Parts of a multipart upload in flight at once.
const PARTS_IN_FLIGHT: usize = 2;

impl S3Dir {
    /// Sends the sealed file at `tmp` as the object of `address`.
    pub(super) fn upload(&self, tmp: &Path, address: BlobAddress) -> Result<(), Error> {
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
        // Multipart: the file read a part at a time, at most
        // PARTS_IN_FLIGHT parts in flight and one being filled. A marker
        // object names the upload while it is open, so that one this
        // process does not live to finish is found and aborted
        // (`collect_uploads`).
        let part = self.part_bytes;
        let name = tmp.display().to_string();
        let file = tokio::fs::File::from_std(file);
        let marker = self.uploads.clone().join(uuid::Uuid::now_v7().to_string());
        let refresh = self.marker_refresh;
        self.run(&context.clone(), async move {
            let id = store
                .create_multipart(&key)
                .await
                .map_err(|e| failed(context.clone(), e))?;
            let named = format!("{key}\n{id}");
            let sent = match store.put(&marker, PutPayload::from(named.clone())).await {
                Ok(_) => {
                    let parts = send_parts(&store, &key, &id, file, part, &name, &context);
                    refreshing(parts, refresh, &store, &marker, &named).await
                }
                Err(e) => Err(failed(context.clone(), e)),
            };
            let done = match sent {
                Ok(parts) => store
                    .complete_multipart(&key, &id, parts)
                    .await
                    .map(drop)
                    .map_err(|e| failed(context, e)),
                Err(e) => {
                    if let Err(a) = store.abort_multipart(&key, &id).await {
                        tracing::warn!(%key, error = %a, "could not abort a failed multipart upload");
                    }
                    Err(e)
                }
            };
            // Left behind, the marker only makes a later pass abort an
            // upload that is already over (which changes nothing).
            if let Err(e) = store.delete(&marker).await {
                tracing::warn!(%marker, error = %e, "could not delete an upload's marker");
            }
            done
        })
    }

    /// Aborts the multipart uploads a process left open (it died mid-put),
    /// as their markers name them, when the marker is older than
    /// `cutoff`; returns how many (a dry run only counts them).
    pub(super) fn collect_open_uploads(
        &self,
        cutoff: Timestamp,
        dry_run: bool,
    ) -> Result<u64, Error> {
        let (store, uploads, root) = (
            Arc::clone(&self.store),
            self.uploads.clone(),
            self.root.clone(),
        );
        let context = format!("collecting interrupted uploads at {}", self.url);
        self.run(&context.clone(), async move {
            let markers: Vec<_> = store
                .list(Some(&uploads))
                .collect::<Vec<_>>()
                .await
                .into_iter()
                .collect::<Result<_, _>>()
                .map_err(|e| failed(context.clone(), e))?;
            let mut aborted = 0;
            for meta in markers {
                let modified = Timestamp::from_micros(meta.last_modified.timestamp_micros());
                if modified >= cutoff {
                    continue;
                }
                let named = match read_marker(&store, &meta.location, &root).await {
                    Ok(Some(named)) => named,
                    Ok(None) => continue,
                    Err(e) => return Err(failed(context.clone(), e)),
                };
                let Some((key, id)) = named else {
                    tracing::warn!(marker = %meta.location, "an upload marker that names no blob of this store; left alone");
                    continue;
                };
                aborted += 1;
                if dry_run {
                    continue;
                }
                match store.abort_multipart(&key, &id).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                    Err(e) => return Err(failed(context.clone(), e)),
                }
                tracing::info!(%key, "aborted a multipart upload a put left open");
                match store.delete(&meta.location).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                    Err(e) => return Err(failed(context.clone(), e)),
                }
            }
            Ok(aborted)
        })
    }
}

#[cfg(feature = "fuzzing")]
impl S3Dir {
    /// The uploads the markers name: (object key, upload id).
    pub(crate) fn open_uploads(&self) -> Result<Vec<(String, String)>, Error> {
        let (store, uploads, root) = (
            Arc::clone(&self.store),
            self.uploads.clone(),
            self.root.clone(),
        );
        self.run("listing upload markers", async move {
            let mut out = Vec::new();
            let mut listing = store.list(Some(&uploads));
            while let Some(meta) = listing.next().await {
                let failed = |e| failed("listing upload markers".into(), e);
                let meta = meta.map_err(failed)?;
                let named = read_marker(&store, &meta.location, &root).await;
                if let Some(Some((key, id))) = named.map_err(failed)? {
                    out.push((key.to_string(), id));
                }
            }
            Ok(out)
        })
    }

    /// When each upload marker was last put.
    pub(crate) fn upload_marker_times(&self) -> Result<Vec<Timestamp>, Error> {
        let (store, uploads) = (Arc::clone(&self.store), self.uploads.clone());
        self.run("listing upload markers", async move {
            let mut out = Vec::new();
            let mut listing = store.list(Some(&uploads));
            while let Some(meta) = listing.next().await {
                let meta = meta.map_err(|e| failed("listing upload markers".into(), e))?;
                out.push(Timestamp::from_micros(
                    meta.last_modified.timestamp_micros(),
                ));
            }
            Ok(out)
        })
    }

    /// Whether upload `id` of `key` still takes parts (sends a small one).
    pub(crate) fn upload_takes_parts(&self, key: &str, id: &str) -> Result<bool, Error> {
        let (store, key, id) = (Arc::clone(&self.store), Key::from(key), id.to_string());
        self.run("sending a probe part", async move {
            let probe = PutPayload::from_static(b"probe");
            Ok(store.put_part(&key, &id, 9_998, probe).await.is_ok())
        })
    }
}

/// Runs `work` (an upload's parts going up), putting its marker again
/// every `every` meanwhile: the orphan collector aborts the uploads whose
/// marker is older than its grace, and a live upload may take longer.
async fn refreshing<T>(
    work: impl Future<Output = T>,
    every: Option<std::time::Duration>,
    store: &AmazonS3,
    marker: &Key,
    named: &str,
) -> T {
    let Some(every) = every else {
        return work.await;
    };
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await; // The first tick is now: the marker was just put.
    tokio::pin!(work);
    loop {
        tokio::select! {
            out = &mut work => return out,
            _ = tick.tick() => {
                // The parts go on meanwhile (each is a task of its own).
                if let Err(e) = store.put(marker, PutPayload::from(named.to_string())).await {
                    tracing::warn!(%marker, error = %e, "could not refresh an upload's marker");
                }
            }
        }
    }
}

/// The marker at `location`: `None` if it is gone, else the object and
/// upload id it names if the object is one of the blobs under `root`
/// (nothing else is ever aborted).
async fn read_marker(
    store: &AmazonS3,
    location: &Key,
    root: &Key,
) -> object_store::Result<Option<Option<(Key, String)>>> {
    let body = match store.get(location).await {
        Ok(got) => got.bytes().await,
        Err(e) => Err(e),
    };
    match body {
        Ok(body) => Ok(Some(upload_named(&body, root))),
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The object and upload id a marker's body names, if the object is one
/// of the blobs under `root`.
fn upload_named(body: &[u8], root: &Key) -> Option<(Key, String)> {
    let text = std::str::from_utf8(body).ok()?;
    let (key, id) = text.split_once('\n')?;
    let key = Key::parse(key).ok()?;
    let ours = super::address_under(root, &key).is_some();
    (ours && !id.is_empty() && !id.contains('\n')).then(|| (key, id.to_string()))
}

/// Sends `file` as the parts of upload `id`, at most PARTS_IN_FLIGHT at
/// once; returns their ids in order. On an error the parts still in
/// flight are cancelled (the caller aborts the upload).
async fn send_parts(
    store: &Arc<AmazonS3>,
    key: &Key,
    id: &str,
    mut file: tokio::fs::File,
    part: usize,
    name: &str,
    context: &str,
) -> Result<Vec<PartId>, Error> {
    use tokio::io::AsyncReadExt;
    let mut in_flight = InFlight(std::collections::VecDeque::new());
    let mut done = Vec::new();
    for index in 0.. {
        let mut buf = vec![0u8; part];
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
        if n == 0 && index > 0 {
            break;
        }
        if in_flight.0.len() == PARTS_IN_FLIGHT {
            done.push(in_flight.next(context).await?);
        }
        buf.truncate(n);
        let (store, key, id) = (Arc::clone(store), key.clone(), id.to_string());
        in_flight.0.push_back(tokio::spawn(async move {
            store
                .put_part(&key, &id, index, PutPayload::from(buf))
                .await
        }));
        if n < part {
            break;
        }
    }
    while !in_flight.0.is_empty() {
        done.push(in_flight.next(context).await?);
    }
    Ok(done)
}

/// Parts being sent, oldest first; those left when it goes are cancelled.
struct InFlight(std::collections::VecDeque<tokio::task::JoinHandle<object_store::Result<PartId>>>);

impl InFlight {
    /// The oldest part's id, once the server has it.
    async fn next(&mut self, context: &str) -> Result<PartId, Error> {
        let Some(task) = self.0.pop_front() else {
            return Err(Error::io(
                context,
                std::io::Error::other("no part in flight"),
            ));
        };
        match task.await {
            Ok(sent) => sent.map_err(|e| failed(context.to_string(), e)),
            Err(e) => Err(Error::join("sending a part", e)),
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}
