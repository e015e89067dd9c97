//! Audio-file metadata records. The blob layer fills them; this module
//! keeps them and their indexes: by owner (newest first, since file ids are
//! time-ordered), by expiry, and by blob address (for reference counts).

use redb::{ReadableTable, WriteTransaction};
use tracing::instrument;

use crate::db::schema::{FILES, FILES_BY_BLOB, FILES_BY_DELETED, FILES_BY_EXPIRY, FILES_BY_OWNER};
use crate::db::txn::ReadTxn;
use crate::db::{Db, codec, get_record, put_record};
use crate::error::{Entity, Error, StorageContext, quote};
use crate::model::file::{AudioFile, NewAudioFile};
use crate::model::validate::check_line;
use crate::types::{BlobAddress, Cursor, FileId, ListOptions, Page, Timestamp, UserId};

/// Audio-file metadata; from [`Store::file_records`](crate::Store::file_records).
pub struct FileRecords<'a> {
    pub(crate) db: &'a Db,
}

/// Validates a new record's caller-given fields; a put calls it once,
/// before anything is written.
pub(crate) fn check(new: &NewAudioFile) -> Result<(), Error> {
    if new.content_type.is_empty()
        || new.content_type.len() > 128
        || !new.content_type.contains('/')
    {
        return Err(Error::invalid(
            "content type",
            format!("{} is not a MIME type", quote(&new.content_type)),
        ));
    }
    if new.name.as_ref().is_some_and(|n| n.len() > 255) {
        return Err(Error::invalid("file name", "at most 255 bytes"));
    }
    if new.tags.len() > 32 || new.tags.iter().any(|t| t.is_empty() || t.len() > 64) {
        return Err(Error::invalid("tags", "at most 32 tags of 1 to 64 bytes"));
    }
    check_line("content type", &new.content_type)?;
    if let Some(name) = &new.name {
        check_line("file name", name)?;
    }
    new.tags.iter().try_for_each(|t| check_line("tag", t))
}

/// Soft-deletes (`deleted`) or restores a record, moving it out of or
/// back into the expiry index and into or out of the deletion index.
pub(crate) fn set_deleted(
    txn: &WriteTransaction,
    id: FileId,
    deleted: bool,
    now: Timestamp,
) -> Result<AudioFile, Error> {
    let mut files = txn.open_table(FILES).ctx("opening files")?;
    let mut f: AudioFile = get_record(&files, id.to_key(), id)?
        .ok_or_else(|| Error::not_found(Entity::AudioFile, id))?;
    let mut by_expiry = txn
        .open_table(FILES_BY_EXPIRY)
        .ctx("opening files_by_expiry")?;
    let mut by_deleted = txn
        .open_table(FILES_BY_DELETED)
        .ctx("opening files_by_deleted")?;
    match (deleted, f.deleted_at) {
        (true, Some(_)) => return Err(Error::not_found(Entity::AudioFile, id)),
        (false, None) => return Ok(f),
        (true, None) => {
            f.deleted_at = Some(now);
            by_deleted
                .insert((now.as_micros(), id.to_key()), ())
                .ctx("writing files_by_deleted")?;
            if let Some(e) = f.expires_at {
                by_expiry
                    .remove((e.as_micros(), id.to_key()))
                    .ctx("writing files_by_expiry")?;
            }
        }
        (false, Some(was)) => {
            f.deleted_at = None;
            by_deleted
                .remove((was.as_micros(), id.to_key()))
                .ctx("writing files_by_deleted")?;
            if let Some(e) = f.expires_at {
                by_expiry
                    .insert((e.as_micros(), id.to_key()), ())
                    .ctx("writing files_by_expiry")?;
            }
        }
    }
    f.updated_at = now;
    put_record(&mut files, id.to_key(), &f)?;
    Ok(f)
}

/// A record, live or soft-deleted.
pub(crate) fn get(txn: &impl ReadTxn, id: FileId) -> Result<Option<AudioFile>, Error> {
    get_record(&txn.table(FILES)?, id.to_key(), id)
}

/// Sets the key version recorded in every file record of a blob (a key
/// rotation moved the blob's data key).
pub(crate) fn set_key_version_of_blob(
    txn: &WriteTransaction,
    blob: BlobAddress,
    version: u32,
) -> Result<(), Error> {
    let ids: Vec<FileId> = {
        let by_blob = txn.open_table(FILES_BY_BLOB).ctx("opening files_by_blob")?;
        let mut ids = Vec::new();
        for entry in by_blob
            .range((blob.0, 0)..=(blob.0, u128::MAX))
            .ctx("scanning files_by_blob")?
        {
            ids.push(FileId::from_key(
                entry.ctx("scanning files_by_blob")?.0.value().1,
            ));
        }
        ids
    };
    let mut files = txn.open_table(FILES).ctx("opening files")?;
    for id in ids {
        if let Some(mut f) = get_record::<AudioFile>(&files, id.to_key(), id)? {
            f.key_version = version;
            put_record(&mut files, id.to_key(), &f)?;
        }
    }
    Ok(())
}

/// Writes a new record and its indexes in `txn` (the record is validated
/// and the owner checked by the caller).
pub(crate) fn insert_record(
    txn: &WriteTransaction,
    new: &NewAudioFile,
    now: Timestamp,
) -> Result<AudioFile, Error> {
    let f = AudioFile {
        id: FileId::new(),
        owner: new.owner,
        blob: new.blob,
        name: new.name.clone(),
        content_type: new.content_type.clone(),
        plain_bytes: new.plain_bytes,
        stored_bytes: new.stored_bytes,
        sha256: new.sha256,
        encryption: new.encryption,
        codec: new.codec,
        key_version: new.key_version,
        session_id: new.session_id,
        tags: new.tags.clone(),
        expires_at: new.expires_at,
        access_count: 0,
        last_read_at: None,
        created_at: now,
        updated_at: now,
        deleted_at: None,
    };
    let key = f.id.to_key();
    put_record(&mut txn.open_table(FILES).ctx("opening files")?, key, &f)?;
    txn.open_table(FILES_BY_OWNER)
        .ctx("opening files_by_owner")?
        .insert((f.owner.to_key(), key), ())
        .ctx("writing files_by_owner")?;
    txn.open_table(FILES_BY_BLOB)
        .ctx("opening files_by_blob")?
        .insert((f.blob.0, key), ())
        .ctx("writing files_by_blob")?;
    if let Some(e) = f.expires_at {
        txn.open_table(FILES_BY_EXPIRY)
            .ctx("opening files_by_expiry")?
            .insert((e.as_micros(), key), ())
            .ctx("writing files_by_expiry")?;
    }
    Ok(f)
}

/// One page of an owner's live records (or, with `deleted`, of the
/// soft-deleted ones: the trash), newest first, keeping those `keep`
/// accepts (`files_by_owner` is keyed by time-ordered file ids).
pub(crate) fn page_of_owner(
    txn: &redb::ReadTransaction,
    owner: UserId,
    options: &ListOptions,
    deleted: bool,
    keep: impl Fn(&AudioFile) -> bool,
) -> Result<Page<AudioFile>, Error> {
    let limit = options.effective_limit();
    let before = options.after.map_or(u128::MAX, |c| c.0.as_u128());
    let by_owner = txn
        .open_table(FILES_BY_OWNER)
        .ctx("opening files_by_owner")?;
    let files = txn.open_table(FILES).ctx("opening files")?;
    let o = owner.to_key();
    let mut items: Vec<AudioFile> = Vec::with_capacity(limit.min(64));
    let mut next = None;
    for row in by_owner
        .range((o, 0)..(o, before))
        .ctx("listing files")?
        .rev()
    {
        let id = FileId::from_key(row.ctx("listing files")?.0.value().1);
        let f: AudioFile = get_record(&files, id.to_key(), id)?.ok_or_else(|| {
            Error::corrupt("files_by_owner", format!("points to missing file {id}"))
        })?;
        if f.deleted_at.is_some() != deleted || !keep(&f) {
            continue;
        }
        if items.len() == limit {
            next = items.last().map(|f| Cursor(f.id.as_uuid()));
            break;
        }
        items.push(f);
    }
    Ok(Page { items, next })
}

impl FileRecords<'_> {
    /// A live record.
    #[instrument(level = "debug", skip(self, id), fields(file = %id))]
    pub fn get(&self, id: FileId) -> Result<AudioFile, Error> {
        crate::telemetry::observe_sync(
            &self.db.telemetry,
            crate::telemetry::op_key!("file_records.get"),
            || {
                self.db.read(|txn| {
                    get(txn, id)?
                        .filter(|f| f.deleted_at.is_none())
                        .ok_or_else(|| Error::not_found(Entity::AudioFile, id))
                })
            },
        )
    }

    /// An owner's live records, newest first, a page at a time.
    #[instrument(skip(self, owner), fields(owner = %owner))]
    pub async fn list_by_owner(
        &self,
        owner: UserId,
        options: ListOptions,
    ) -> Result<Page<AudioFile>, Error> {
        crate::telemetry::observe(
            &self.db.telemetry,
            crate::telemetry::op_key!("file_records.list_by_owner"),
            async {
                let limit = options.effective_limit();
                self.db
                    .list(limit, move |txn| {
                        page_of_owner(txn, owner, &options, false, |_| true)
                    })
                    .await
            },
        )
        .await
    }

    /// Live records whose retention ends before `t`, soonest first.
    #[instrument(skip(self))]
    pub async fn expiring_before(
        &self,
        t: Timestamp,
        limit: usize,
    ) -> Result<Vec<AudioFile>, Error> {
        crate::telemetry::observe(
            &self.db.telemetry,
            crate::telemetry::op_key!("file_records.expiring_before"),
            async {
                let limit = ListOptions::first(limit).effective_limit();
                self.db
                    .scan(move |txn| {
                        let by_expiry = txn
                            .open_table(FILES_BY_EXPIRY)
                            .ctx("opening files_by_expiry")?;
                        let files = txn.open_table(FILES).ctx("opening files")?;
                        let mut out = Vec::new();
                        for row in by_expiry
                            .range(..(t.as_micros(), 0))
                            .ctx("scanning expiry")?
                        {
                            let id = FileId::from_key(row.ctx("scanning expiry")?.0.value().1);
                            let bytes = files.get(id.to_key()).ctx("reading a file")?;
                            let bytes = bytes.ok_or_else(|| {
                                Error::corrupt(
                                    "files_by_expiry",
                                    format!("points to missing file {id}"),
                                )
                            })?;
                            out.push(codec::decode::<AudioFile>(bytes.value(), id)?);
                            if out.len() == limit {
                                break;
                            }
                        }
                        Ok(out)
                    })
                    .await
            },
        )
        .await
    }

    /// How many records (live or soft-deleted) point at a blob.
    pub fn blob_references(&self, blob: BlobAddress) -> Result<u64, Error> {
        crate::telemetry::observe_sync(
            &self.db.telemetry,
            crate::telemetry::op_key!("file_records.blob_references"),
            || {
                self.db.read(|txn| {
                    let by_blob = txn.open_table(FILES_BY_BLOB).ctx("opening files_by_blob")?;
                    let mut n = 0;
                    for row in by_blob
                        .range((blob.0, 0)..=(blob.0, u128::MAX))
                        .ctx("counting references")?
                    {
                        row.ctx("counting references")?;
                        n += 1;
                    }
                    Ok(n)
                })
            },
        )
    }
}

/// Soft-deletes a record (it leaves lists and the expiry index); the
/// caller has checked who asks.
pub(crate) async fn soft_delete(db: &Db, id: FileId, actor: String) -> Result<AudioFile, Error> {
    let now = db.now();
    db.write_audited(
        move |txn| set_deleted(txn, id, true, now),
        move |_| file_event(now, &actor, "file.delete", id),
    )
    .await
}

fn file_event(
    now: Timestamp,
    actor: &str,
    action: &str,
    id: FileId,
) -> Vec<crate::db::audit::Entry> {
    vec![crate::db::audit::Entry::new(
        now,
        actor,
        action,
        format!("file:{id}"),
    )]
}

/// Brings back a soft-deleted record; the caller has checked who asks.
pub(crate) async fn restore(db: &Db, id: FileId, actor: String) -> Result<AudioFile, Error> {
    let now = db.now();
    db.write_audited(
        move |txn| set_deleted(txn, id, false, now),
        move |_| file_event(now, &actor, "file.restore", id),
    )
    .await
}
