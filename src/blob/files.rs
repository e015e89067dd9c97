//! The file API: `store.files()`. Every call names who asks ([`Actor`]).

use std::sync::Arc;

use tracing::instrument;

use crate::blob::access::{self, Op};
use crate::blob::keys::across_master_rotation;
use crate::blob::reader::{FileReader, OpenBlob, pump, pump_range};
use crate::blob::{Actor, BlobStore, ListFilter, VerifyReport};
use crate::db::Db;
use crate::db::blobs::get_row;
use crate::error::{Entity, Error};
use crate::model::file::AudioFile;
use crate::model::profile::ConsentKind;
use crate::types::{FileId, ListOptions, Page, UserId};

/// Stored files; from [`Store::files`](crate::Store::files).
///
/// ```
/// # use bharatvoice_store::*;
/// # #[tokio::main] async fn main() -> Result<(), Error> {
/// # let dir = tempfile::tempdir().unwrap();
/// # let store = Store::open(Config::new(dir.path())).await?;
/// let user = store.users().create(NewUser::new("asha", "asha@example.in").consent(ConsentKind::AudioStorage)).await?;
/// let me = Actor::User(user.id);
/// let pcm = vec![0u8; 100_000];
/// let file = store.files().put_bytes(me, user.id, &pcm, PutOptions::content_type("audio/wav")).await?;
/// assert_eq!(store.files().read(me, file.id).await?, pcm);
/// assert_eq!(store.files().read_range(me, file.id, 10, 5).await?, vec![0u8; 5]);
/// let stranger = store.users().create(NewUser::new("other", "other@example.in").consent(ConsentKind::AudioStorage)).await?;
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
    /// [`access::authorize`] with this store's rate limits.
    async fn authorize(
        &self,
        actor: Actor,
        id: FileId,
        op: Op,
        action: &'static str,
        include_deleted: bool,
    ) -> Result<AudioFile, Error> {
        let limits = &self.blobs.limits;
        access::authorize(self.db, limits, actor, id, op, action, include_deleted).await
    }

    /// The record of a file the actor may read.
    #[instrument(skip(self, actor, id), fields(actor = %actor, file = %id))]
    pub async fn stat(&self, actor: Actor, id: FileId) -> Result<AudioFile, Error> {
        crate::telemetry::observe(
            &self.db.telemetry,
            crate::telemetry::op_key!("files.stat"),
            async {
                let file = self
                    .authorize(actor, id, Op::Read, "file.stat", false)
                    .await?;
                self.note_read(actor, &file, "file.stat");
                Ok(file)
            },
        )
        .await
    }

    /// Opens a file's blob; `once` for a read that will not come back (a
    /// deep verify): it adds nothing to a remote backend's read cache.
    async fn open_blob(&self, file: &AudioFile, once: bool) -> Result<Arc<OpenBlob>, Error> {
        let key = across_master_rotation(|| self.blob_key(file))?;
        let backend = self.blobs.backend.clone();
        let (addr, len, what) = (file.blob, file.plain_bytes, format!("file {}", file.id));
        let blob = tokio::task::spawn_blocking(move || {
            OpenBlob::open(&*backend, addr, key.as_ref(), len, what, once)
        })
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
        crate::telemetry::observe(
            &self.db.telemetry,
            crate::telemetry::op_key!("files.open"),
            async {
                let file = self
                    .authorize(actor, id, Op::Read, "file.read", false)
                    .await?;
                self.count_read(actor, &file, "file.read");
                self.reader_of(&file, false).await
            },
        )
        .await
    }

    /// Counts a read (written to the record by the `access-counts` job)
    /// if the owner has given analytics consent (or the consent gate is
    /// off), and notes it for the audit log (appended by `audit-reads`).
    fn count_read(&self, actor: Actor, file: &AudioFile, action: &'static str) {
        if self.counts_reads_of(file.owner) {
            self.blobs.reads.note(file.id, self.db.now());
        }
        self.note_read(actor, file, action);
    }

    /// Whether the store may count reads of `owner`'s files. A failure to
    /// read the profile counts nothing (the read itself goes on).
    fn counts_reads_of(&self, owner: UserId) -> bool {
        !self.blobs.require_consent
            || self
                .db
                .read(|txn| crate::db::profiles::has_consent(txn, owner, ConsentKind::Analytics))
                .unwrap_or(false)
    }

    /// Notes a read for the audit log without a commit (see `crate::audit`).
    fn note_read(&self, actor: Actor, file: &AudioFile, action: &'static str) {
        self.db.auditor().note_read(crate::db::audit::NotedRead {
            at: self.db.now(),
            actor,
            action,
            file: file.id,
        });
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
        crate::telemetry::observe(
            &self.db.telemetry,
            crate::telemetry::op_key!("files.open_range"),
            async {
                let file = self
                    .authorize(actor, id, Op::Read, "file.read", false)
                    .await?;
                check_range(&file, offset)?;
                self.count_read(actor, &file, "file.read_range");
                let blob = self.open_blob(&file, false).await?;
                let (tx, rx) = tokio::sync::mpsc::channel(2);
                let end = offset.saturating_add(len);
                tokio::spawn(pump_range(blob, offset, end, None, self.blobs.depth, tx));
                Ok(FileReader::new(rx))
            },
        )
        .await
    }

    async fn reader_of(&self, file: &AudioFile, once: bool) -> Result<FileReader, Error> {
        let blob = self.open_blob(file, once).await?;
        let (tx, rx) = tokio::sync::mpsc::channel(2);
        tokio::spawn(pump(blob, file.sha256, self.blobs.depth, tx));
        Ok(FileReader::new(rx))
    }

    /// The whole file in memory.
    #[instrument(skip(self, actor, id), fields(actor = %actor, file = %id))]
    pub async fn read(&self, actor: Actor, id: FileId) -> Result<Vec<u8>, Error> {
        crate::telemetry::observe(
            &self.db.telemetry,
            crate::telemetry::op_key!("files.read"),
            async {
                let file = self
                    .authorize(actor, id, Op::Read, "file.read", false)
                    .await?;
                self.count_read(actor, &file, "file.read");
                let mut reader = self.reader_of(&file, false).await?;
                // The record's size (capped: it is only a hint) saves regrowing.
                let mut out = crate::blob::bigbuf::with_capacity(
                    usize::try_from(file.plain_bytes.min(1 << 30)).unwrap_or(0),
                );
                while let Some(piece) = reader.next_chunk().await {
                    out.extend_from_slice(&piece?);
                }
                Ok(out)
            },
        )
        .await
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
        crate::telemetry::observe(
            &self.db.telemetry,
            crate::telemetry::op_key!("files.read_range"),
            async {
                let file = self
                    .authorize(actor, id, Op::Read, "file.read", false)
                    .await?;
                check_range(&file, offset)?;
                self.count_read(actor, &file, "file.read_range");
                let blob = self.open_blob(&file, false).await?;
                tokio::task::spawn_blocking(move || blob.range(offset, len))
                    .await
                    .map_err(|e| Error::join("blob task", e))?
            },
        )
        .await
    }

    /// Reads and authenticates every chunk and checks the SHA-256.
    #[instrument(skip(self, actor, id), fields(actor = %actor, file = %id))]
    pub async fn verify(&self, actor: Actor, id: FileId) -> Result<VerifyReport, Error> {
        crate::telemetry::observe(
            &self.db.telemetry,
            crate::telemetry::op_key!("files.verify"),
            async {
                let file = self
                    .authorize(actor, id, Op::Read, "file.verify", false)
                    .await?;
                let plain = self.verify_record(&file).await?;
                let chunks = plain.div_ceil(u64::from(self.blobs.chunk_size)).max(1);
                Ok(VerifyReport {
                    file: id,
                    blob: file.blob,
                    chunks,
                    plain_bytes: plain,
                })
            },
        )
        .await
    }

    /// Reads and authenticates every chunk of a record's blob and checks
    /// the SHA-256, for the store itself (no access check, no read
    /// counted); returns the plaintext bytes read.
    pub(crate) async fn verify_record(&self, file: &AudioFile) -> Result<u64, Error> {
        let mut reader = self.reader_of(file, true).await?;
        let mut plain = 0u64;
        while let Some(piece) = reader.next_chunk().await {
            plain += piece?.len() as u64;
        }
        Ok(plain)
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
        crate::telemetry::observe(
            &self.db.telemetry,
            crate::telemetry::op_key!("files.list"),
            async {
                access::authorize_owner(self.db, &self.blobs.limits, actor, owner, "file.list")
                    .await?;
                // A filter may pass over many rows: only unfiltered pages run inline.
                let bound = if filter == ListFilter::default() {
                    options.effective_limit()
                } else {
                    usize::MAX
                };
                self.db
                    .list(bound, move |txn| {
                        crate::db::files::page_of_owner(txn, owner, &options, filter.deleted, |f| {
                            filter
                                .content_type
                                .as_ref()
                                .is_none_or(|c| *c == f.content_type)
                                && filter.session_id.is_none_or(|s| Some(s) == f.session_id)
                                && filter.tag.as_ref().is_none_or(|t| f.tags.contains(t))
                        })
                    })
                    .await
            },
        )
        .await
    }

    /// Soft-deletes a file (owner or system).
    #[instrument(skip(self, actor, id), fields(actor = %actor, file = %id))]
    pub async fn delete(&self, actor: Actor, id: FileId) -> Result<AudioFile, Error> {
        crate::telemetry::observe(
            &self.db.telemetry,
            crate::telemetry::op_key!("files.delete"),
            async {
                self.authorize(actor, id, Op::Change, "file.delete", false)
                    .await?;
                crate::db::files::soft_delete(self.db, id, actor.to_string()).await
            },
        )
        .await
    }

    /// Brings back a soft-deleted file (owner or system).
    #[instrument(skip(self, actor, id), fields(actor = %actor, file = %id))]
    pub async fn restore(&self, actor: Actor, id: FileId) -> Result<AudioFile, Error> {
        crate::telemetry::observe(
            &self.db.telemetry,
            crate::telemetry::op_key!("files.restore"),
            async {
                self.authorize(actor, id, Op::Change, "file.restore", true)
                    .await?;
                crate::db::files::restore(self.db, id, actor.to_string()).await
            },
        )
        .await
    }

    /// Lets user `to` read the file (owner or system).
    #[instrument(skip(self, actor, id, to), fields(actor = %actor, file = %id, to = %to))]
    pub async fn grant(&self, actor: Actor, id: FileId, to: UserId) -> Result<(), Error> {
        crate::telemetry::observe(
            &self.db.telemetry,
            crate::telemetry::op_key!("files.grant"),
            async {
                let file = self
                    .authorize(actor, id, Op::Change, "file.grant", false)
                    .await?;
                if to == file.owner {
                    return Err(Error::invalid("grantee", "the owner already has access"));
                }
                let now = self.db.now();
                self.db
                    .write_audited(
                        move |txn| {
                            crate::db::users::require_live(txn, to)?;
                            crate::db::grants::grant(txn, id, to)
                        },
                        move |_| grant_event(now, actor, "file.grant", id, to),
                    )
                    .await
            },
        )
        .await
    }

    /// Takes back a grant (owner or system); revoking an absent grant is a no-op.
    #[instrument(skip(self, actor, id, from), fields(actor = %actor, file = %id, from = %from))]
    pub async fn revoke(&self, actor: Actor, id: FileId, from: UserId) -> Result<(), Error> {
        crate::telemetry::observe(
            &self.db.telemetry,
            crate::telemetry::op_key!("files.revoke"),
            async {
                self.authorize(actor, id, Op::Change, "file.revoke", false)
                    .await?;
                let now = self.db.now();
                self.db
                    .write_audited(
                        move |txn| crate::db::grants::revoke(txn, id, from),
                        move |_| grant_event(now, actor, "file.revoke", id, from),
                    )
                    .await
            },
        )
        .await
    }

    /// Users the file is granted to (owner or system).
    pub async fn grantees(&self, actor: Actor, id: FileId) -> Result<Vec<UserId>, Error> {
        crate::telemetry::observe(
            &self.db.telemetry,
            crate::telemetry::op_key!("files.grantees"),
            async {
                self.authorize(actor, id, Op::Change, "file.grantees", false)
                    .await?;
                self.db.read(|txn| crate::db::grants::grantees(txn, id))
            },
        )
        .await
    }

    /// The reference count of a file's blob (how many records share it).
    pub async fn blob_refcount(&self, actor: Actor, id: FileId) -> Result<u64, Error> {
        crate::telemetry::observe(
            &self.db.telemetry,
            crate::telemetry::op_key!("files.blob_refcount"),
            async {
                let file = self
                    .authorize(actor, id, Op::Read, "file.stat", false)
                    .await?;
                let row = self.db.read(|txn| get_row(txn, file.blob))?;
                row.map(|r| r.refcount)
                    .ok_or_else(|| Error::not_found(Entity::AudioFile, id))
            },
        )
        .await
    }
}

/// The audit entry of a grant or revoke: the file as target, the grantee
/// in the outcome (an id).
fn grant_event(
    now: crate::Timestamp,
    actor: Actor,
    action: &str,
    id: FileId,
    user: UserId,
) -> Vec<crate::audit::Entry> {
    vec![
        crate::audit::Entry::new(now, actor.to_string(), action, format!("file:{id}"))
            .outcome(format!("user:{user}")),
    ]
}
