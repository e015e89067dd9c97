//! What the tests of the blob backends need that the API does not give:
//! the objects a backend holds, and an object placed behind the store's
//! back (an orphan, as a put that died before its commit leaves one).

use crate::Store;
use crate::error::Error;
use crate::types::BlobAddress;

/// Every blob the store's backend holds: address (hex) and stored bytes.
pub async fn backend_blobs(store: &Store) -> Result<Vec<(String, u64)>, Error> {
    let backend = std::sync::Arc::clone(&store.blob_store().backend);
    tokio::task::spawn_blocking(move || {
        let mut out = Vec::new();
        let mut after = None;
        loop {
            let page = backend.list(after, 1000)?;
            let Some(last) = page.last() else {
                return Ok(out);
            };
            after = Some(last.address);
            out.extend(page.iter().map(|b| (b.address.to_string(), b.bytes)));
        }
    })
    .await
    .map_err(|e| Error::join("listing blobs", e))?
}

/// Places `bytes` at `address` through the backend, with no record.
pub async fn place_orphan(store: &Store, address: [u8; 32], bytes: &[u8]) -> Result<(), Error> {
    let blobs = store.blob_store();
    let backend = std::sync::Arc::clone(&blobs.backend);
    let tmp = blobs
        .tmp_dir
        .join(format!("orphan-{}.part", hex::encode(&address[..8])));
    std::fs::write(&tmp, bytes).map_err(|e| Error::io("writing an orphan", e))?;
    tokio::task::spawn_blocking(move || backend.commit(&tmp, BlobAddress(address)))
        .await
        .map_err(|e| Error::join("placing an orphan", e))?
}

/// Deletes the blob at `address` through the backend, leaving its rows:
/// `false` if there was none.
pub async fn remove_blob(store: &Store, address: [u8; 32]) -> Result<bool, Error> {
    let backend = std::sync::Arc::clone(&store.blob_store().backend);
    tokio::task::spawn_blocking(move || backend.delete(BlobAddress(address)))
        .await
        .map_err(|e| Error::join("deleting a blob", e))?
}

/// GET requests the store's backend has sent, if it is a remote one.
pub fn backend_gets(store: &Store) -> Option<u64> {
    store.blob_store().backend.gets_sent()
}

/// HEAD requests the store's backend has sent, if it is a remote one.
pub fn backend_heads(store: &Store) -> Option<u64> {
    store.blob_store().backend.heads_sent()
}

/// Deletes the object of `address` through a client of its own, as
/// someone else with access to the bucket would: the store's read cache
/// is not told. `false` if there was none.
#[cfg(feature = "s3")]
pub fn s3_delete_behind(config: &crate::S3Config, address: [u8; 32]) -> Result<bool, Error> {
    use crate::blob::backend::BlobBackend;
    crate::blob::backend::s3::S3Dir::new(config)?.delete(BlobAddress(address))
}

/// The multipart uploads left open under `config`'s prefix, as their
/// markers name them: (object key, upload id).
#[cfg(feature = "s3")]
pub fn s3_open_uploads(config: &crate::S3Config) -> Result<Vec<(String, String)>, Error> {
    crate::blob::backend::s3::S3Dir::new(config)?.open_uploads()
}

/// When each upload marker under `config`'s prefix was last put.
#[cfg(feature = "s3")]
pub fn s3_upload_marker_times(config: &crate::S3Config) -> Result<Vec<crate::Timestamp>, Error> {
    crate::blob::backend::s3::S3Dir::new(config)?.upload_marker_times()
}

/// Whether the upload `id` of `key` under `config`'s bucket still takes
/// parts (an aborted one does not).
#[cfg(feature = "s3")]
pub fn s3_upload_takes_parts(config: &crate::S3Config, key: &str, id: &str) -> Result<bool, Error> {
    crate::blob::backend::s3::S3Dir::new(config)?.upload_takes_parts(key, id)
}

/// The names of the objects under an `s3://` backup target's prefix.
#[cfg(feature = "s3")]
pub fn s3_objects(config: &crate::S3Config) -> Result<Vec<String>, Error> {
    crate::ops::backup::remote::probe::objects(config)
}

/// The bytes of the object `name` under `config`'s prefix; `None` if none.
#[cfg(feature = "s3")]
pub fn s3_object(config: &crate::S3Config, name: &str) -> Result<Option<Vec<u8>>, Error> {
    crate::ops::backup::remote::probe::get(config, name)
}

/// Writes the object `name` under `config`'s prefix, or deletes it.
#[cfg(feature = "s3")]
pub fn s3_set_object(
    config: &crate::S3Config,
    name: &str,
    bytes: Option<Vec<u8>>,
) -> Result<(), Error> {
    crate::ops::backup::remote::probe::set(config, name, bytes)
}
