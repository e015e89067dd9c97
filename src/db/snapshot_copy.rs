//! A copy of `store.redb` taken from one read snapshot, for backups.
//!
//! redb has no online backup, and copying the file while the writer runs
//! could catch a commit half-written. So a backup copies every table, row
//! by row, from one read transaction into a new database file. A read
//! transaction is an MVCC snapshot: writes go on meanwhile and never show
//! in the copy, so the copy is the store at one instant (the instant the
//! transaction began).
//!
//! Every table of the schema is named here. A table the snapshot holds
//! and this list does not name is refused rather than left out: a newer
//! schema must add its tables here, or its backups would silently lose
//! them (a test checks the list against `schema::create_all`).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use redb::{
    Database, Durability, Key, MultimapTableHandle, ReadTransaction, ReadableTable,
    TableDefinition, TableHandle, Value,
};

use crate::db::schema::*;
use crate::error::{Error, StorageContext};
use crate::types::BlobAddress;

/// What the copy found in its snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SnapshotInfo {
    /// The schema version the copy has.
    pub(crate) schema_version: u32,
    /// The store's id (a UUID's 16 bytes, as hex).
    pub(crate) store_id: String,
    /// Every blob a row of the snapshot names, in address order.
    pub(crate) blobs: Arc<[BlobAddress]>,
    /// Rows copied, over all tables.
    pub(crate) rows: u64,
}

/// The tables a copy knows, by name.
const KNOWN: &[&str] = &[
    "meta",
    "users",
    "user_records_by_username",
    "user_records_by_email",
    "credentials",
    "profiles",
    "sessions",
    "sessions_by_user",
    "sessions_by_expiry",
    "files",
    "files_by_owner",
    "files_by_expiry",
    "files_by_blob",
    "metrics",
    "keys",
    "record_keys",
    "blobs",
    "blobs_by_owner",
    "grants",
    "audit",
    "audit_log",
    "files_by_deleted",
    "sessions_by_deleted",
    "damaged_blobs",
    "usage",
    "erasures",
];

/// Copies every table of `src` into a new database at `dest` (which must
/// not exist), durably, and says what the snapshot held. (A backup to
/// object storage; a local one uses [`copy_snapshot_beside`].)
#[cfg(feature = "s3")]
pub(crate) fn copy_snapshot(src: &ReadTransaction, dest: &Path) -> Result<SnapshotInfo, Error> {
    copy_tables(src, dest, blob_addresses(src)?.into())
}

/// [`copy_snapshot`], starting `beside` on another thread first with the
/// blob addresses the snapshot names (read from the same snapshot): a
/// backup copies the blob files while the tables are copied. Returns once
/// the tables are copied, so that the caller can end the read transaction
/// (a long one keeps redb from reusing the pages later writes free) while
/// `beside` goes on: wait for it with [`Beside::join`]. `beside` is told
/// to give up (its flag set) if the table copy fails, and if its handle is
/// dropped unjoined.
pub(crate) fn copy_snapshot_beside<T: Send + 'static>(
    src: &ReadTransaction,
    dest: &Path,
    beside: impl FnOnce(&[BlobAddress], &AtomicBool) -> Result<T, Error> + Send + 'static,
) -> Result<(SnapshotInfo, Beside<T>), Error> {
    let blobs: Arc<[BlobAddress]> = blob_addresses(src)?.into();
    let give_up = Arc::new(AtomicBool::new(false));
    let (b, g) = (Arc::clone(&blobs), Arc::clone(&give_up));
    let thread = std::thread::Builder::new()
        .name("bv-backup-blobs".into())
        .spawn(move || beside(&b, &g))
        .map_err(|e| Error::io("starting the blob copy", e))?;
    let other = Beside {
        thread: Some(thread),
        give_up,
    };
    match copy_tables(src, dest, blobs) {
        Ok(info) => Ok((info, other)),
        Err(e) => {
            // Told to give up, and waited for: nothing runs on after.
            other.give_up.store(true, Ordering::Relaxed);
            let _ = other.join();
            Err(e)
        }
    }
}

/// The work started beside a snapshot copy ([`copy_snapshot_beside`]).
pub(crate) struct Beside<T> {
    thread: Option<std::thread::JoinHandle<Result<T, Error>>>,
    give_up: Arc<AtomicBool>,
}

impl<T> Beside<T> {
    /// Waits for the work's end; a panic in it is an error, not a crash.
    pub(crate) fn join(mut self) -> Result<T, Error> {
        let Some(thread) = self.thread.take() else {
            return Err(Error::invalid("backup", "the blob copy was already joined"));
        };
        thread.join().unwrap_or_else(|p| {
            Err(crate::error::thread_panicked(
                "backup",
                "the thread beside the snapshot copy",
                p,
            ))
        })
    }
}

impl<T> Drop for Beside<T> {
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.give_up.store(true, Ordering::Relaxed);
        }
    }
}

/// The table copy of a snapshot; `blobs` goes into the info.
fn copy_tables(
    src: &ReadTransaction,
    dest: &Path,
    blobs: Arc<[BlobAddress]>,
) -> Result<SnapshotInfo, Error> {
    for table in src.list_tables().ctx("listing tables")? {
        if !KNOWN.contains(&table.name()) {
            return Err(Error::corrupt(
                "store.redb",
                format!(
                    "it holds a table {:?} this build does not know, so a backup would lose it",
                    table.name()
                ),
            ));
        }
    }
    if let Some(table) = src
        .list_multimap_tables()
        .ctx("listing multimap tables")?
        .next()
    {
        return Err(Error::corrupt(
            "store.redb",
            format!(
                "it holds a multimap table {:?} this build does not know",
                table.name()
            ),
        ));
    }
    let db = Database::create(dest).ctx("creating the snapshot file")?;
    let mut rows = 0;
    rows += copy(src, &db, META)?;
    rows += copy(src, &db, USERS)?;
    rows += copy(src, &db, USERS_BY_USERNAME)?;
    rows += copy(src, &db, USERS_BY_EMAIL)?;
    rows += copy(src, &db, CREDENTIALS)?;
    rows += copy(src, &db, PROFILES)?;
    rows += copy(src, &db, SESSIONS)?;
    rows += copy(src, &db, SESSIONS_BY_USER)?;
    rows += copy(src, &db, SESSIONS_BY_EXPIRY)?;
    rows += copy(src, &db, FILES)?;
    rows += copy(src, &db, FILES_BY_OWNER)?;
    rows += copy(src, &db, FILES_BY_EXPIRY)?;
    rows += copy(src, &db, FILES_BY_BLOB)?;
    rows += copy(src, &db, METRICS)?;
    rows += copy(src, &db, KEYS)?;
    rows += copy(src, &db, RECORD_KEYS)?;
    rows += copy(src, &db, BLOBS)?;
    rows += copy(src, &db, BLOBS_BY_OWNER)?;
    rows += copy(src, &db, GRANTS)?;
    rows += copy(src, &db, LEGACY_AUDIT)?;
    rows += copy(src, &db, AUDIT_LOG)?;
    rows += copy(src, &db, FILES_BY_DELETED)?;
    rows += copy(src, &db, SESSIONS_BY_DELETED)?;
    rows += copy(src, &db, DAMAGED_BLOBS)?;
    rows += copy(src, &db, USAGE)?;
    rows += copy(src, &db, ERASURES)?;
    // The copies above commit without a sync; this one makes them durable.
    let txn = db.begin_write().ctx("finishing the snapshot file")?;
    txn.commit().ctx("syncing the snapshot file")?;
    drop(db);
    Ok(SnapshotInfo {
        schema_version: schema_version(src)?,
        store_id: store_id(src)?,
        blobs,
        rows,
    })
}

/// Copies one table (if the snapshot has it) in one transaction, returning
/// the rows copied.
fn copy<K: Key + 'static, V: Value + 'static>(
    src: &ReadTransaction,
    dst: &Database,
    def: TableDefinition<'static, K, V>,
) -> Result<u64, Error> {
    let from = match src.open_table(def) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(0),
        Err(e) => return Err(Error::storage(format!("opening {}", def.name()), e)),
    };
    let mut txn = dst.begin_write().ctx("writing the snapshot file")?;
    txn.set_durability(Durability::None)
        .map_err(|e| Error::storage("writing the snapshot file", redb::Error::from(e)))?;
    let mut rows = 0;
    {
        let mut to = txn.open_table(def).ctx("creating a snapshot table")?;
        for row in from.iter().ctx("reading a table to back up")? {
            let (k, v) = row.ctx("reading a row to back up")?;
            to.insert(k.value(), v.value())
                .ctx("writing the snapshot file")?;
            rows += 1;
        }
    }
    txn.commit().ctx("writing the snapshot file")?;
    Ok(rows)
}

pub(crate) fn schema_version(src: &ReadTransaction) -> Result<u32, Error> {
    let meta = src.open_table(META).ctx("opening meta")?;
    let v = meta
        .get(SCHEMA_VERSION_KEY)
        .ctx("reading the schema version")?;
    let bytes = v
        .as_ref()
        .and_then(|v| <[u8; 4]>::try_from(v.value()).ok())
        .ok_or_else(|| Error::corrupt("store.redb", "no schema version in meta"))?;
    Ok(u32::from_le_bytes(bytes))
}

pub(crate) fn store_id(src: &ReadTransaction) -> Result<String, Error> {
    let meta = src.open_table(META).ctx("opening meta")?;
    let v = meta.get(STORE_ID_KEY).ctx("reading the store id")?;
    let bytes = v
        .as_ref()
        .and_then(|v| <[u8; 16]>::try_from(v.value()).ok())
        .ok_or_else(|| Error::corrupt("store.redb", "no store id in meta"))?;
    Ok(uuid::Uuid::from_bytes(bytes).to_string())
}

pub(crate) fn blob_addresses(src: &ReadTransaction) -> Result<Vec<BlobAddress>, Error> {
    let blobs = match src.open_table(BLOBS) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
        Err(e) => return Err(Error::storage("opening blobs", e)),
    };
    let mut out = Vec::new();
    for row in blobs.iter().ctx("reading blobs")? {
        let (k, _) = row.ctx("reading blobs")?;
        out.push(BlobAddress(k.value()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use redb::{ReadableDatabase, TableHandle};

    use super::KNOWN;

    /// Every table a new store has is one the copy knows.
    #[test]
    fn the_copy_knows_every_table_of_the_schema() {
        let dir = tempfile::tempdir().unwrap();
        let db = redb::Database::create(dir.path().join("s.redb")).unwrap();
        let txn = db.begin_write().unwrap();
        super::create_all(&txn).unwrap();
        txn.commit().unwrap();
        let r = db.begin_read().unwrap();
        for t in r.list_tables().unwrap() {
            assert!(KNOWN.contains(&t.name()), "{} is not copied", t.name());
        }
    }

    /// A database with a schema, a store id and two blobs.
    fn source(dir: &std::path::Path) -> redb::Database {
        use super::{BLOBS, META, SCHEMA_VERSION_KEY, STORE_ID_KEY};
        let db = redb::Database::create(dir.join("s.redb")).unwrap();
        let txn = db.begin_write().unwrap();
        super::create_all(&txn).unwrap();
        {
            let mut meta = txn.open_table(META).unwrap();
            meta.insert(SCHEMA_VERSION_KEY, &10u32.to_le_bytes()[..])
                .unwrap();
            meta.insert(STORE_ID_KEY, &[7u8; 16][..]).unwrap();
            let mut blobs = txn.open_table(BLOBS).unwrap();
            for b in [[1u8; 32], [2u8; 32]] {
                blobs.insert(b, &b"row"[..]).unwrap();
            }
        }
        txn.commit().unwrap();
        db
    }

    /// The work beside the copy gets the snapshot's blob addresses on
    /// another thread, and the copy returns (its read transaction can
    /// end) while that work is still running.
    #[test]
    fn beside_the_copy_runs_on_with_the_addresses_after_the_copy_returns() {
        use std::sync::mpsc;
        let dir = tempfile::tempdir().unwrap();
        let db = source(dir.path());
        let r = db.begin_read().unwrap();
        let me = std::thread::current().id();
        let (go, wait) = mpsc::channel::<()>();
        let (info, beside) =
            super::copy_snapshot_beside(&r, &dir.path().join("copy.redb"), move |a, _| {
                // Held until the test has the copy's result.
                wait.recv().unwrap();
                Ok((a.to_vec(), std::thread::current().id() != me))
            })
            .unwrap();
        drop(r);
        assert_eq!(info.blobs.len(), 2);
        assert_eq!(info.schema_version, 10);
        assert!(dir.path().join("copy.redb").exists());
        go.send(()).unwrap();
        let (addresses, other_thread) = beside.join().unwrap();
        assert!(other_thread);
        assert_eq!(&addresses[..], &info.blobs[..]);
    }

    /// A failed copy tells the work beside it to give up, waits for it and
    /// returns its own error; a dropped handle tells it to give up too; a
    /// panic beside a copy is an error, not a crash.
    #[test]
    fn the_work_beside_gives_up_when_told_and_a_panic_there_is_an_error() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::time::{Duration, Instant};
        let dir = tempfile::tempdir().unwrap();
        let db = source(dir.path());
        let r = db.begin_read().unwrap();
        // Waits (at most 30 s) to be told to give up; says whether it was.
        let waiter = |told: Arc<AtomicBool>| {
            move |_: &[crate::types::BlobAddress], give_up: &AtomicBool| {
                let t0 = Instant::now();
                while !give_up.load(Ordering::Relaxed) && t0.elapsed() < Duration::from_secs(30) {
                    std::thread::sleep(Duration::from_millis(1));
                }
                told.store(give_up.load(Ordering::Relaxed), Ordering::Relaxed);
                Err::<(), _>(crate::error::Error::invalid("beside", "gave up"))
            }
        };
        // The destination is a directory: the table copy cannot create it.
        let told = Arc::new(AtomicBool::new(false));
        let err = super::copy_snapshot_beside(&r, dir.path(), waiter(Arc::clone(&told)))
            .err()
            .unwrap();
        assert!(told.load(Ordering::Relaxed), "the work beside was told");
        assert!(
            !err.to_string().contains("gave up"),
            "the copy's error comes first: {err}"
        );
        // A copy that succeeds, its handle dropped unjoined.
        let told2 = Arc::new(AtomicBool::new(false));
        let (_, beside) =
            super::copy_snapshot_beside(&r, &dir.path().join("d.redb"), waiter(Arc::clone(&told2)))
                .unwrap();
        drop(beside);
        let t0 = Instant::now();
        while !told2.load(Ordering::Relaxed) && t0.elapsed() < Duration::from_secs(30) {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(told2.load(Ordering::Relaxed), "a dropped handle tells it");
        let (_, beside) =
            super::copy_snapshot_beside(&r, &dir.path().join("p.redb"), |_, _| -> Result<(), _> {
                panic!("beside")
            })
            .unwrap();
        let err = beside.join().unwrap_err();
        assert!(
            matches!(err, crate::error::Error::Corrupt { .. }),
            "{err:?}"
        );
    }
}
