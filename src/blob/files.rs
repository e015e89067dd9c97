//! The file API: `store.files()`. Every call names who asks ([`Actor`]).

use std::sync::Arc;

use tokio::io::AsyncRead;
use tracing::instrument;

use crate::blob::access::{self, Op};
use crate::blob::crypto::{SecretKey, wrap};
use crate::blob::format::Cipher;
use crate::blob::keys::{across_master_rotation, data_key_context};
use crate::blob::reader::{FileReader, OpenBlob, pump, pump_range};
use crate::blob::writer::{WriteSpec, address, write_blob};
use crate::blob::{Actor, BlobStore, ListFilter, PutOptions, VerifyReport};
use crate::db::Db;
use crate::db::blobs::{BlobRow, commit_file, get_row};
use crate::error::{Entity, Error};
use crate::model::file::{AudioFile, Codec, Encryption, NewAudioFile};
use crate::types::{FileId, ListOptions, Page, UserId};

/// Stored files; from [`Store::files`](crate::Store::files).
///
/// ```
/// # use bharatvoice_store::*;
/// # #[tokio::main] async fn main() -> Result<(), Error> {
/// # let dir = tempfile::tempdir().unwrap();
/// # let store = Store::open(Config::new(dir.path())).await?;
/// let user = store.users().create(NewUser::new("asha", "asha@example.in")).await?;
/// let me = Actor::User(user.id);
/// let pcm = vec![0u8; 100_000];
/// let file = store.files().put_bytes(me, user.id, &pcm, PutOptions::content_type("audio/wav")).await?;
/// assert_eq!(store.files().read(me, file.id).await?, pcm);
/// assert_eq!(store.files().read_range(me, file.id, 10, 5).await?, vec![0u8; 5]);
/// let stranger = store.users().create(NewUser::new("other", "other@example.in")).await?;
/// assert!(matches!(store.files().read(Actor::User(stranger.id), file.id).await, Err(Error::NotFound { .. })));
/// # Ok(()) }
/// ```
pub struct Files<'a> {
    pub(crate) db: &'a Db,
    pub(crate) blobs: &'a BlobStore,
}

/// A range must start inside the file (or at its end).
fn check_range(file: &AudioFile, offset: u64) -> Result<(), Error> {
    if offset > file.plain_bytes {
        return Err(Error::invalid(
            "range",
            format!(
                "offset {offset} is past the end ({} bytes)",
                file.plain_bytes
            ),
        ));
    }
    Ok(())
}

impl Files<'_> {
    /// Stores everything `reader` yields as a file of `owner`.
    #[instrument(skip_all, fields(actor = %actor, owner = %owner))]
    pub async fn put<R: AsyncRead + Unpin + Send>(
        &self,
        actor: Actor,
        owner: UserId,
        reader: R,
        options: PutOptions,
    ) -> Result<AudioFile, Error> {
        self.put_with_progress(actor, owner, reader, options, &|_| {})
            .await
    }

    /// Stores `bytes` as a file of `owner`.
    pub async fn put_bytes(
        &self,
        actor: Actor,
        owner: UserId,
        bytes: &[u8],
        options: PutOptions,
    ) -> Result<AudioFile, Error> {
        self.put(actor, owner, bytes, options).await
    }

    /// [`put`](Self::put), calling `progress` with the bytes read so far.
    pub async fn put_with_progress<R: AsyncRead + Unpin + Send>(
        &self,
        actor: Actor,
        owner: UserId,
        reader: R,
        options: PutOptions,
        progress: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<AudioFile, Error> {
        access::authorize_owner(self.db, actor, owner, "file.put").await?;
        let probe = NewAudioFile {
            owner,
            blob: Default::default(),
            name: options.name.clone(),
            content_type: options.content_type.clone(),
            plain_bytes: 0,
            stored_bytes: 0,
            sha256: [0; 32],
            encryption: Encryption::None,
            codec: Codec::None,
            key_version: 0,
            session_id: options.session_id,
            tags: options.tags.clone(),
            expires_at: None,
        };
        crate::db::files::check(&probe)?;
        if let Some(d) = options.retention_days
            && !(1..=3650).contains(&d)
        {
            return Err(Error::invalid(
                "retention days",
                format!("{d} must be 1 to 3650"),
            ));
        }
        let (version, kek, address_key) = self.blobs.keyring.write_keys(self.db, owner).await?;
        let cipher = if options.encrypt {
            Cipher::Aes256GcmSivStream
        } else {
            Cipher::None
        };
        let data_key = if options.encrypt {
            Some(SecretKey::generate()?)
        } else {
            None
        };
        let level = options.level();
        let spec = WriteSpec {
            cipher,
            level,
            chunk_size: self.blobs.chunk_size,
            key_version: version,
            data_key: data_key.clone(),
            depth: self.blobs.depth,
            cache_limit: self.blobs.cache_limit,
        };
        let pending = write_blob(&self.blobs.tmp_dir, reader, spec, progress).await?;
        let addr = address(
            &address_key,
            &pending.sha256,
            cipher,
            level,
            self.blobs.chunk_size,
        )?;
        // The blob's directory is made while its last chunks are written.
        let dest = self.blobs.path_of(addr);
        let dir_dest = dest.clone();
        let dir_job = tokio::task::spawn_blocking(move || {
            crate::fsutil::ensure_parent(&dir_dest).map(|_| ())
        });
        let written = pending.finish().await?;
        if let Err(e) = dir_job
            .await
            .map_err(|e| Error::join("blob task", e))
            .and_then(|r| r)
        {
            let _ = std::fs::remove_file(&written.tmp_path);
            return Err(e);
        }
        let direct_bytes = written.direct_bytes;
        let wrapped = data_key
            .as_ref()
            .map(|k| wrap(&kek, k, &data_key_context(addr)))
            .transpose()?;
        let retention = options
            .retention_days
            .unwrap_or(self.retention_days(owner)?);
        let now = self.db.now();
        let new = NewAudioFile {
            blob: addr,
            plain_bytes: written.plain_len,
            stored_bytes: written.stored_len,
            sha256: written.sha256,
            encryption: if options.encrypt {
                Encryption::Aes256GcmSiv
            } else {
                Encryption::None
            },
            codec: if level.is_some() {
                Codec::Zstd
            } else {
                Codec::None
            },
            key_version: version,
            expires_at: Some(now.plus(std::time::Duration::from_secs(
                u64::from(retention) * 86_400,
            ))),
            ..probe
        };
        let row = BlobRow {
            owner,
            refcount: 1,
            plain_bytes: written.plain_len,
            stored_bytes: written.stored_len,
            key_version: version,
            data_key: wrapped,
            created_at: now,
        };
        let _guard = self.blobs.lock(addr).await;
        let exists = self.db.read(|txn| get_row(txn, addr))?.is_some();
        let tmp = written.tmp_path.clone();
        tokio::task::spawn_blocking(move || {
            if exists {
                std::fs::remove_file(&tmp).map_err(|e| Error::io("removing a duplicate blob", e))
            } else {
                crate::fsutil::persist(&tmp, &dest)
            }
        })
        .await
        .map_err(|e| Error::join("blob task", e))??;
        let keyring = self.blobs.keyring.clone();
        let (file, dedup) = self
            .db
            .write(move |txn| {
                // The key version may have moved on while the blob was written.
                let (version, data_key) = keyring.wrap_for_commit(
                    txn,
                    owner,
                    addr,
                    row.key_version,
                    data_key.as_ref(),
                    row.data_key.clone(),
                )?;
                let row = BlobRow {
                    key_version: version,
                    data_key,
                    ..row.clone()
                };
                commit_file(txn, &new, &row)
            })
            .await?;
        tracing::debug!(
            file = %file.id,
            blob = %addr,
            dedup,
            bytes = file.plain_bytes,
            direct_bytes,
            "stored"
        );
        Ok(file)
    }

    fn retention_days(&self, owner: UserId) -> Result<u32, Error> {
        self.db.read(|txn| {
            let p = crate::db::profiles::get(txn, owner)?;
            Ok(p.and_then(|p| p.audio_retention_days)
                .unwrap_or(self.blobs.default_retention_days))
        })
    }

    /// The record of a file the actor may read.
    #[instrument(skip(self, actor, id), fields(actor = %actor, file = %id))]
    pub async fn stat(&self, actor: Actor, id: FileId) -> Result<AudioFile, Error> {
        access::authorize(self.db, actor, id, Op::Read, "file.stat", false).await
    }

    async fn open_blob(&self, file: &AudioFile) -> Result<Arc<OpenBlob>, Error> {
        let key = across_master_rotation(|| self.blob_key(file))?;
        let path = self.blobs.path_of(file.blob);
        let (len, what) = (file.plain_bytes, format!("file {}", file.id));
        let blob =
            tokio::task::spawn_blocking(move || OpenBlob::open(&path, key.as_ref(), len, what))
                .await
                .map_err(|e| Error::join("blob task", e))??;
        Ok(Arc::new(blob))
    }

    /// The data key of a file's blob (`None` if stored unencrypted), from
    /// the blob row and the owner's key row of one snapshot.
    fn blob_key(&self, file: &AudioFile) -> Result<Option<crate::blob::crypto::SecretKey>, Error> {
        let (row, keys) = self.db.read(|txn| {
            let row = get_row(txn, file.blob)?;
            let keys = match &row {
                Some(r) => crate::db::keys::get(txn, r.owner)?,
                None => None,
            };
            Ok((row, keys))
        })?;
        let row = row.ok_or_else(|| Error::Integrity {
            what: format!("file {}", file.id),
            detail: "its blob row is missing".into(),
        })?;
        row.data_key
            .as_ref()
            .map(|w| {
                self.blobs
                    .keyring
                    .data_key(keys.as_ref(), row.owner, file.blob, row.key_version, w)
            })
            .transpose()
    }

    /// A stream of the file's bytes; it ends with an error if the file was
    /// damaged (see [`FileReader`]).
    #[instrument(skip(self, actor, id), fields(actor = %actor, file = %id))]
    pub async fn open(&self, actor: Actor, id: FileId) -> Result<FileReader, Error> {
        let file = access::authorize(self.db, actor, id, Op::Read, "file.read", false).await?;
        self.reader_of(&file).await
    }

    /// A stream of `len` bytes from `offset` (fewer at the end of the
    /// file), decrypting only the chunks they lie in; memory stays bounded
    /// by the chunk size whatever the range (each chunk is authenticated;
    /// the file's SHA-256 is checked only by whole reads).
    #[instrument(skip(self, actor, id), fields(actor = %actor, file = %id))]
    pub async fn open_range(
        &self,
        actor: Actor,
        id: FileId,
        offset: u64,
        len: u64,
    ) -> Result<FileReader, Error> {
        let file = access::authorize(self.db, actor, id, Op::Read, "file.read", false).await?;
        check_range(&file, offset)?;
        let blob = self.open_blob(&file).await?;
        let (tx, rx) = tokio::sync::mpsc::channel(2);
        let end = offset.saturating_add(len);
        tokio::spawn(pump_range(blob, offset, end, None, self.blobs.depth, tx));
        Ok(FileReader::new(rx))
    }

    async fn reader_of(&self, file: &AudioFile) -> Result<FileReader, Error> {
        let blob = self.open_blob(file).await?;
        let (tx, rx) = tokio::sync::mpsc::channel(2);
        tokio::spawn(pump(blob, file.sha256, self.blobs.depth, tx));
        Ok(FileReader::new(rx))
    }

    /// The whole file in memory.
    #[instrument(skip(self, actor, id), fields(actor = %actor, file = %id))]
    pub async fn read(&self, actor: Actor, id: FileId) -> Result<Vec<u8>, Error> {
        let file = access::authorize(self.db, actor, id, Op::Read, "file.read", false).await?;
        let mut reader = self.reader_of(&file).await?;
        // The record's size (capped: it is only a hint) saves regrowing.
        let mut out = crate::blob::bigbuf::with_capacity(
            usize::try_from(file.plain_bytes.min(1 << 30)).unwrap_or(0),
        );
        while let Some(piece) = reader.next_chunk().await {
            out.extend_from_slice(&piece?);
        }
        Ok(out)
    }

    /// `len` bytes from `offset` (fewer at the end of the file), decrypting
    /// only the chunks they lie in. The bytes are returned in memory: for a
    /// large range, stream it with [`open_range`](Self::open_range).
    #[instrument(skip(self, actor, id), fields(actor = %actor, file = %id))]
    pub async fn read_range(
        &self,
        actor: Actor,
        id: FileId,
        offset: u64,
        len: u64,
    ) -> Result<Vec<u8>, Error> {
        let file = access::authorize(self.db, actor, id, Op::Read, "file.read", false).await?;
        check_range(&file, offset)?;
        let blob = self.open_blob(&file).await?;
        tokio::task::spawn_blocking(move || blob.range(offset, len))
            .await
            .map_err(|e| Error::join("blob task", e))?
    }

    /// Reads and authenticates every chunk and checks the SHA-256.
    #[instrument(skip(self, actor, id), fields(actor = %actor, file = %id))]
    pub async fn verify(&self, actor: Actor, id: FileId) -> Result<VerifyReport, Error> {
        let file = access::authorize(self.db, actor, id, Op::Read, "file.verify", false).await?;
        let mut reader = self.reader_of(&file).await?;
        let mut plain = 0u64;
        while let Some(piece) = reader.next_chunk().await {
            plain += piece?.len() as u64;
        }
        let chunks = plain.div_ceil(u64::from(self.blobs.chunk_size)).max(1);
        Ok(VerifyReport {
            file: id,
            blob: file.blob,
            chunks,
            plain_bytes: plain,
        })
    }

    /// An owner's live files, newest first, filtered.
    #[instrument(skip(self, filter, actor, owner), fields(actor = %actor, owner = %owner))]
    pub async fn list(
        &self,
        actor: Actor,
        owner: UserId,
        filter: ListFilter,
        options: ListOptions,
    ) -> Result<Page<AudioFile>, Error> {
        access::authorize_owner(self.db, actor, owner, "file.list").await?;
        // A filter may pass over many rows: only unfiltered pages run inline.
        let bound = if filter == ListFilter::default() {
            options.effective_limit()
        } else {
            usize::MAX
        };
        self.db
            .list(bound, move |txn| {
                crate::db::files::page_of_owner(txn, owner, &options, |f| {
                    filter
                        .content_type
                        .as_ref()
                        .is_none_or(|c| *c == f.content_type)
                        && filter.session_id.is_none_or(|s| Some(s) == f.session_id)
                        && filter.tag.as_ref().is_none_or(|t| f.tags.contains(t))
                })
            })
            .await
    }

    /// Soft-deletes a file (owner or system).
    #[instrument(skip(self, actor, id), fields(actor = %actor, file = %id))]
    pub async fn delete(&self, actor: Actor, id: FileId) -> Result<AudioFile, Error> {
        access::authorize(self.db, actor, id, Op::Change, "file.delete", false).await?;
        crate::db::files::soft_delete(self.db, id).await
    }

    /// Brings back a soft-deleted file (owner or system).
    #[instrument(skip(self, actor, id), fields(actor = %actor, file = %id))]
    pub async fn restore(&self, actor: Actor, id: FileId) -> Result<AudioFile, Error> {
        access::authorize(self.db, actor, id, Op::Change, "file.restore", true).await?;
        crate::db::files::restore(self.db, id).await
    }

    /// Lets user `to` read the file (owner or system).
    #[instrument(skip(self, actor, id, to), fields(actor = %actor, file = %id, to = %to))]
    pub async fn grant(&self, actor: Actor, id: FileId, to: UserId) -> Result<(), Error> {
        let file = access::authorize(self.db, actor, id, Op::Change, "file.grant", false).await?;
        if to == file.owner {
            return Err(Error::invalid("grantee", "the owner already has access"));
        }
        self.db
            .write(move |txn| {
                crate::db::users::require_live(txn, to)?;
                crate::db::grants::grant(txn, id, to)
            })
            .await
    }

    /// Takes back a grant (owner or system); revoking an absent grant is a no-op.
    #[instrument(skip(self, actor, id, from), fields(actor = %actor, file = %id, from = %from))]
    pub async fn revoke(&self, actor: Actor, id: FileId, from: UserId) -> Result<(), Error> {
        access::authorize(self.db, actor, id, Op::Change, "file.revoke", false).await?;
        self.db
            .write(move |txn| crate::db::grants::revoke(txn, id, from))
            .await
    }

    /// Users the file is granted to (owner or system).
    pub async fn grantees(&self, actor: Actor, id: FileId) -> Result<Vec<UserId>, Error> {
        access::authorize(self.db, actor, id, Op::Change, "file.grantees", false).await?;
        self.db.read(|txn| crate::db::grants::grantees(txn, id))
    }

    /// The reference count of a file's blob (how many records share it).
    pub async fn blob_refcount(&self, actor: Actor, id: FileId) -> Result<u64, Error> {
        let file = access::authorize(self.db, actor, id, Op::Read, "file.stat", false).await?;
        let row = self.db.read(|txn| get_row(txn, file.blob))?;
        row.map(|r| r.refcount)
            .ok_or_else(|| Error::not_found(Entity::AudioFile, id))
    }
}
