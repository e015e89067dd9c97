//! Storing a file, in four steps:
//!
//! 1. **Validate** what the caller gave (who asks, the record's fields,
//!    the retention) once, before anything is written.
//! 2. **Seal** the stream into a temporary blob under `tmp/` (hashed,
//!    compressed, encrypted under a fresh data key, written directly; see
//!    [`writer`](crate::blob::writer)). Its content address is known when
//!    the stream ends.
//! 3. **Place** it, under the address lock: a blob no row names yet is
//!    committed to the backend; the same bytes already stored by their
//!    owner are dropped (deduplication).
//! 4. **Commit** the record and the blob row (new, or one more reference)
//!    in one transaction that re-checks the owner's key version: a rotation
//!    that moved on while the blob was sealed is caught up there.
//!
//! Storage limits ([`quota`](crate::quota)) are checked before step 2
//! (nothing fits: refused at once), during it (the stream stops once its
//! stored bytes pass what is left) and in step 4 (authoritative). A commit
//! that fails removes the blob step 3 placed, still under the address
//! lock; a crash between 3 and 4 leaves a blob no row names (an orphan for
//! the collector, never a row without its blob).

use tokio::io::AsyncRead;
use tracing::instrument;

use crate::blob::access;
use crate::blob::crypto::{SecretKey, wrap};
use crate::blob::files::Files;
use crate::blob::format::Cipher;
use crate::blob::keys::data_key_context;
use crate::blob::writer::{WriteSpec, WrittenBlob, address, write_blob};
use crate::blob::{Actor, PutOptions};
use crate::db::blobs::{BlobRow, commit_file, get_row};
use crate::db::profiles::require_consent;
use crate::error::Error;
use crate::model::file::{AudioFile, Codec, Encryption, NewAudioFile};
use crate::model::profile::ConsentKind::AudioStorage;
use crate::types::{BlobAddress, UserId};

/// What step 3 did with the sealed blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Placed {
    /// It is the blob at its address now.
    Stored,
    /// A row names its address: its bytes are stored already.
    Duplicate,
}

/// A blob sealed in `tmp/`, with what its record needs.
struct Sealed {
    address: BlobAddress,
    written: WrittenBlob,
    data_key: Option<SecretKey>,
    key_version: u32,
    /// The owner's key of that version, which wraps `data_key`.
    kek: SecretKey,
    level: Option<i32>,
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
        // Counted once, as `files.put`, by put_with_progress.
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
        crate::telemetry::observe(
            &self.db.telemetry,
            crate::telemetry::op_key!("files.put"),
            async {
                access::authorize_owner(self.db, &self.blobs.limits, actor, owner, "file.put")
                    .await?;
                let probe = validate(owner, &options)?;
                if self.blobs.require_consent {
                    self.db
                        .read(|txn| require_consent(txn, owner, AudioStorage))?;
                }
                let allowance = crate::quota::allowance(
                    self.db,
                    &self.blobs.quota,
                    &self.blobs.tmp_dir,
                    owner,
                )?;
                let sealed = self
                    .seal(owner, reader, &options, allowance, progress)
                    .await?;
                if let Err(e) = self.blobs.limits.stored(actor, sealed.written.plain_len) {
                    let _ = tokio::fs::remove_file(&sealed.written.tmp_path).await;
                    return Err(e);
                }
                let (new, row) = self.records(probe, &options, &sealed)?;
                let _one_put_per_address = self.blobs.lock(sealed.address).await;
                let direct_bytes = sealed.written.direct_bytes;
                let mut placed = self.place(&sealed).await?;
                #[cfg(test)]
                self.blobs.paused_after_place().await;
                let committed = loop {
                    let expect_row = placed == Placed::Duplicate;
                    match self
                        .commit(actor, &new, &row, &sealed.data_key, expect_row)
                        .await
                    {
                        // The purge removed the row this put deduplicated against
                        // after `place` saw it: store these bytes after all.
                        Ok(None) => placed = self.place_new(&sealed).await?,
                        Ok(Some(done)) => break Ok(done),
                        Err(e) => break Err(e),
                    }
                };
                if placed == Placed::Duplicate {
                    let _ = tokio::fs::remove_file(&sealed.written.tmp_path).await;
                }
                let (file, dedup) = match committed {
                    Ok(done) => done,
                    Err(e) => {
                        // Only a refused request surely wrote nothing. A
                        // commit that failed in the engine (a write or sync
                        // error) may be on disk all the same, naming this
                        // blob: it stays, and the orphan collector takes it
                        // if the record is not there after all.
                        if placed == Placed::Stored && e.surely_wrote_nothing() {
                            self.unplace(sealed.address).await;
                        }
                        return Err(e);
                    }
                };
                tracing::debug!(
                    file = %file.id,
                    blob = %file.blob,
                    dedup,
                    bytes = file.plain_bytes,
                    direct_bytes,
                    "stored"
                );
                Ok(file)
            },
        )
        .await
    }

    /// Step 2: the stream sealed into `tmp/` under the owner's current key
    /// version; the backend prepares the address while the last chunks are
    /// written.
    async fn seal<R: AsyncRead + Unpin + Send>(
        &self,
        owner: UserId,
        reader: R,
        options: &PutOptions,
        allowance: Option<crate::quota::Allowance>,
        progress: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<Sealed, Error> {
        let (key_version, kek, address_key) = self.blobs.keyring.write_keys(self.db, owner).await?;
        let cipher = if options.encrypt {
            Cipher::Aes256GcmSivStream
        } else {
            Cipher::None
        };
        let data_key = options.encrypt.then(SecretKey::generate).transpose()?;
        let level = options.level();
        let spec = WriteSpec {
            cipher,
            level,
            chunk_size: self.blobs.chunk_size,
            key_version,
            data_key: data_key.clone(),
            depth: self.blobs.depth,
            cache_limit: self.blobs.cache_limit,
            for_upload: self.blobs.backend.as_local().is_none(),
            allowance,
        };
        let pending = write_blob(&self.blobs.tmp_dir, reader, spec, progress).await?;
        let address = address(
            &address_key,
            &pending.sha256,
            cipher,
            level,
            self.blobs.chunk_size,
        )?;
        let backend = self.blobs.backend.clone();
        let prepared = tokio::task::spawn_blocking(move || backend.prepare(address));
        let written = pending.finish().await?;
        if let Err(e) = prepared
            .await
            .map_err(|e| Error::join("blob task", e))
            .and_then(|r| r)
        {
            let _ = std::fs::remove_file(&written.tmp_path);
            return Err(e);
        }
        Ok(Sealed {
            address,
            written,
            data_key,
            key_version,
            kek,
            level,
        })
    }

    /// The record and blob row the commit writes, the data key wrapped
    /// under the key version the blob was sealed with.
    fn records(
        &self,
        probe: NewAudioFile,
        options: &PutOptions,
        sealed: &Sealed,
    ) -> Result<(NewAudioFile, BlobRow), Error> {
        let owner = probe.owner;
        let (addr, written) = (sealed.address, &sealed.written);
        let wrapped = sealed
            .data_key
            .as_ref()
            .map(|k| wrap(&sealed.kek, k, &data_key_context(addr)))
            .transpose()?;
        let retention = match options.retention_days {
            Some(d) => d,
            None => self.retention_days(owner)?,
        };
        let now = self.db.now();
        let new = NewAudioFile {
            blob: addr,
            plain_bytes: written.plain_len,
            stored_bytes: written.stored_len,
            sha256: written.sha256,
            encryption: if sealed.data_key.is_some() {
                Encryption::Aes256GcmSiv
            } else {
                Encryption::None
            },
            codec: if sealed.level.is_some() {
                Codec::Zstd
            } else {
                Codec::None
            },
            key_version: sealed.key_version,
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
            key_version: sealed.key_version,
            data_key: wrapped,
            created_at: now,
        };
        Ok((new, row))
    }

    /// Step 3 (the caller holds the address lock): the temporary blob
    /// becomes the stored one, unless a row says its bytes are stored (the
    /// temporary is then kept until the commit, in case the purge removes
    /// that row first).
    async fn place(&self, sealed: &Sealed) -> Result<Placed, Error> {
        let addr = sealed.address;
        if self.db.read(|txn| get_row(txn, addr))?.is_some() {
            return Ok(Placed::Duplicate);
        }
        self.place_new(sealed).await
    }

    /// The temporary blob becomes the blob at its address (replacing a
    /// file the purge freed but has not retired yet: no row names it).
    async fn place_new(&self, sealed: &Sealed) -> Result<Placed, Error> {
        let (addr, tmp) = (sealed.address, sealed.written.tmp_path.clone());
        let backend = self.blobs.backend.clone();
        tokio::task::spawn_blocking(move || backend.commit(&tmp, addr))
            .await
            .map_err(|e| Error::join("blob task", e))??;
        Ok(Placed::Stored)
    }

    /// Undoes step 3 after a failed commit (the caller still holds the
    /// address lock, so no other put can have named the blob since): the
    /// blob placed is removed unless a row names it after all. Best
    /// effort: what stays is an orphan for the collector.
    async fn unplace(&self, addr: BlobAddress) {
        let named = self.db.read(|txn| get_row(txn, addr)).map(|r| r.is_some());
        if !matches!(named, Ok(false)) {
            return;
        }
        let backend = self.blobs.backend.clone();
        let removed = tokio::task::spawn_blocking(move || backend.delete(addr)).await;
        if !matches!(removed, Ok(Ok(_))) {
            tracing::warn!(blob = %addr, "could not remove a blob whose commit failed; the orphan collector will");
        }
    }

    /// Step 4: the record and the blob's reference in one transaction,
    /// on the owner's key version as that transaction sees it. `None`
    /// (nothing written) if `expect_row` and the blob's row is gone.
    async fn commit(
        &self,
        actor: Actor,
        new: &NewAudioFile,
        row: &BlobRow,
        data_key: &Option<SecretKey>,
        expect_row: bool,
    ) -> Result<Option<(AudioFile, bool)>, Error> {
        let keyring = self.blobs.keyring.clone();
        let quota = self.blobs.quota.user_bytes;
        let consent = self.blobs.require_consent;
        let (new, row, data_key) = (new.clone(), row.clone(), data_key.clone());
        let now = self.db.now();
        let entries_of = move |done: &Option<(AudioFile, bool)>| match done {
            Some((file, _)) => vec![crate::audit::Entry::new(
                now,
                actor.to_string(),
                "file.put",
                format!("file:{}", file.id),
            )],
            None => Vec::new(),
        };
        self.db
            .write_audited(
                move |txn| {
                    // Authoritative: a withdrawal may have committed since
                    // the put began (and its erasure destroyed the owner's
                    // keys).
                    if consent {
                        require_consent(txn, new.owner, AudioStorage)?;
                    }
                    if expect_row && get_row(txn, new.blob)?.is_none() {
                        return Ok(None);
                    }
                    // The key version may have moved on while the blob was written.
                    let (version, wrapped) = keyring.wrap_for_commit(
                        txn,
                        new.owner,
                        new.blob,
                        row.key_version,
                        data_key.as_ref(),
                        row.data_key.clone(),
                    )?;
                    let row = BlobRow {
                        key_version: version,
                        data_key: wrapped,
                        ..row.clone()
                    };
                    commit_file(txn, &new, &row, quota).map(Some)
                },
                entries_of,
            )
            .await
    }

    fn retention_days(&self, owner: UserId) -> Result<u32, Error> {
        self.db.read(|txn| {
            let p = crate::db::profiles::get(txn, owner)?;
            Ok(p.and_then(|p| p.audio_retention_days)
                .unwrap_or(self.blobs.default_retention_days))
        })
    }
}

/// Step 1: the caller's fields checked once; the record to fill in.
fn validate(owner: UserId, options: &PutOptions) -> Result<NewAudioFile, Error> {
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
    Ok(probe)
}
