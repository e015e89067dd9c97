//! The metadata half of `verify` (fsck): from one snapshot, every record
//! decodes, every index entry names a row that says the same, every row
//! has its entries, every file's blob has its row, and every blob's
//! reference count and every owner's usage equal a recount from the
//! records. Problems are collected, not returned at the first.
//!
//! Everything is checked by walking one table and looking each entry up
//! in the others, so the scan keeps nothing per file or per blob (a
//! store of millions of recordings verifies in the memory of a few). A
//! blob's count is recounted through the `files_by_blob` entries under
//! its address, each followed to its record, plus the records found
//! without their entry (kept only for a damaged index). The checks of
//! blob files that follow the scan walk the blob rows again in batches
//! ([`blob_batch`]).
//!
//! What is derived can be rebuilt ([`rebuild_derived`]): the file indexes
//! and `blobs_by_owner` from their rows, reference counts from the file
//! records, usage from the blob rows. The rows themselves (users,
//! sessions, files, blobs) are never rewritten by a repair.

use std::collections::{BTreeMap, BTreeSet};

use redb::{ReadTransaction, ReadableTable};
use serde::Serialize;

use crate::db::blobs::BlobRow;
use crate::db::codec;
use crate::db::schema::*;
use crate::error::{Error, StorageContext};
use crate::model::file::AudioFile;
use crate::types::{BlobAddress, FileId, UserId};

pub(crate) use super::verify_repair::rebuild_derived;

/// What kind of damage a verify found.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ProblemKind {
    /// redb's own check of `store.redb` failed (a page's checksum).
    DatabaseIntegrity,
    /// A row does not decode as the record it should hold.
    Undecodable,
    /// A row lacks an index entry it should have.
    MissingIndexEntry,
    /// An index entry names a row that is not there, or says otherwise.
    DanglingIndexEntry,
    /// A file record names a blob that has no blob row.
    MissingBlobRow,
    /// A blob row's reference count is not the number of records naming it.
    WrongRefcount,
    /// An owner's kept usage is not the sum of their blob rows.
    WrongUsage,
    /// A blob row whose file the blob directory does not hold.
    MissingBlobFile,
    /// A blob file no row names (a crash between placing and committing).
    OrphanBlobFile,
    /// A blob file that does not authenticate or whose SHA-256 differs
    /// (found by a deep verify).
    DamagedBlob,
}

/// One problem: its kind, the id of what it concerns, and what was seen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Problem {
    /// The kind of damage.
    pub kind: ProblemKind,
    /// What it concerns: a table and key, a file, blob, user or session id.
    pub id: String,
    /// What was seen.
    pub detail: String,
    /// Whether `--repair` fixed it.
    pub repaired: bool,
}

impl Problem {
    pub(crate) fn new(kind: ProblemKind, id: impl ToString, detail: impl Into<String>) -> Self {
        Problem {
            kind,
            id: id.to_string(),
            detail: detail.into(),
            repaired: false,
        }
    }
}

/// What the metadata scan found.
#[derive(Debug, Default)]
pub(crate) struct MetaScan {
    pub(crate) problems: Vec<Problem>,
    pub(crate) users: u64,
    pub(crate) sessions: u64,
    pub(crate) files: u64,
    /// Blob rows.
    pub(crate) blobs: u64,
    pub(crate) index_entries: u64,
}

/// Runs every metadata check on one snapshot.
pub(crate) fn scan(txn: &ReadTransaction) -> Result<MetaScan, Error> {
    let mut s = MetaScan::default();
    super::verify_users::check(txn, &mut s)?;
    super::verify_sessions::check(txn, &mut s)?;
    super::verify_records::check(txn, &mut s)?;
    let unindexed = files(txn, &mut s)?;
    blobs(txn, &mut s, &unindexed)?;
    Ok(s)
}

/// A file index entry: which index, and its key (the file id last).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Entry {
    /// `files_by_owner`: (owner, file).
    Owner(u128, u128),
    /// `files_by_blob`: (blob address, file).
    Blob([u8; 32], u128),
    /// `files_by_expiry`: (expiry in µs, file).
    Expiry(i64, u128),
    /// `files_by_deleted`: (deletion time in µs, file).
    Deleted(i64, u128),
}

impl Entry {
    fn table(&self) -> &'static str {
        match self {
            Entry::Owner(..) => "files_by_owner",
            Entry::Blob(..) => "files_by_blob",
            Entry::Expiry(..) => "files_by_expiry",
            Entry::Deleted(..) => "files_by_deleted",
        }
    }

    fn file(&self) -> u128 {
        match *self {
            Entry::Owner(_, f) | Entry::Blob(_, f) | Entry::Expiry(_, f) | Entry::Deleted(_, f) => {
                f
            }
        }
    }
}

/// The file index entries a record should have.
fn file_entries(f: &AudioFile) -> Vec<Entry> {
    let id = f.id.to_key();
    let mut out = vec![
        Entry::Owner(f.owner.to_key(), id),
        Entry::Blob(f.blob.0, id),
    ];
    match (f.deleted_at, f.expires_at) {
        (Some(d), _) => out.push(Entry::Deleted(d.as_micros(), id)),
        (None, Some(e)) => out.push(Entry::Expiry(e.as_micros(), id)),
        (None, None) => {}
    }
    out
}

/// The four file indexes of one snapshot.
struct FileIndexes {
    by_owner: redb::ReadOnlyTable<(u128, u128), ()>,
    by_blob: redb::ReadOnlyTable<([u8; 32], u128), ()>,
    by_expiry: redb::ReadOnlyTable<(i64, u128), ()>,
    by_deleted: redb::ReadOnlyTable<(i64, u128), ()>,
}

impl FileIndexes {
    fn open(txn: &ReadTransaction) -> Result<FileIndexes, Error> {
        Ok(FileIndexes {
            by_owner: txn
                .open_table(FILES_BY_OWNER)
                .ctx("opening files_by_owner")?,
            by_blob: txn.open_table(FILES_BY_BLOB).ctx("opening files_by_blob")?,
            by_expiry: txn
                .open_table(FILES_BY_EXPIRY)
                .ctx("opening files_by_expiry")?,
            by_deleted: txn
                .open_table(FILES_BY_DELETED)
                .ctx("opening files_by_deleted")?,
        })
    }

    /// Whether the index holds `e`.
    fn has(&self, e: &Entry) -> Result<bool, Error> {
        let found = match *e {
            Entry::Owner(owner, file) => self.by_owner.get((owner, file)),
            Entry::Blob(blob, file) => self.by_blob.get((blob, file)),
            Entry::Expiry(t, file) => self.by_expiry.get((t, file)),
            Entry::Deleted(t, file) => self.by_deleted.get((t, file)),
        };
        Ok(found.ctx("reading a file index")?.is_some())
    }

    /// Every entry of the four indexes, one at a time.
    fn each(&self, mut f: impl FnMut(Entry) -> Result<(), Error>) -> Result<(), Error> {
        let scanning = "scanning a file index";
        for e in self.by_owner.iter().ctx(scanning)? {
            let (o, file) = e.ctx(scanning)?.0.value();
            f(Entry::Owner(o, file))?;
        }
        for e in self.by_blob.iter().ctx(scanning)? {
            let (b, file) = e.ctx(scanning)?.0.value();
            f(Entry::Blob(b, file))?;
        }
        for (deleted, table) in [(false, &self.by_expiry), (true, &self.by_deleted)] {
            for e in table.iter().ctx(scanning)? {
                let (t, file) = e.ctx(scanning)?.0.value();
                f(match deleted {
                    false => Entry::Expiry(t, file),
                    true => Entry::Deleted(t, file),
                })?;
            }
        }
        Ok(())
    }
}

/// The file record in a row of `files` keyed `id`.
fn record(id: u128, bytes: &[u8]) -> Result<AudioFile, Error> {
    codec::decode::<AudioFile>(bytes, FileId::from_key(id)).and_then(|f| {
        if f.id.to_key() == id {
            Ok(f)
        } else {
            Err(Error::corrupt(
                format!("file {}", FileId::from_key(id)),
                format!("the record says it is file {}", f.id),
            ))
        }
    })
}

/// Per blob, the records naming it that lack their `files_by_blob` entry
/// (found damaged; empty in a sound store).
type Unindexed = BTreeMap<BlobAddress, u64>;

/// Checks the file records and their four indexes both ways, and that
/// each record's blob has its row, by point lookups.
fn files(txn: &ReadTransaction, s: &mut MetaScan) -> Result<Unindexed, Error> {
    let table = txn.open_table(FILES).ctx("opening files")?;
    let blob_rows = txn.open_table(BLOBS).ctx("opening blobs")?;
    let indexes = FileIndexes::open(txn)?;
    let name = |e: &Entry| format!("{} file {}", e.table(), FileId::from_key(e.file()));
    let mut unindexed = Unindexed::new();
    for row in table.iter().ctx("scanning files")? {
        let (k, v) = row.ctx("scanning files")?;
        s.files += 1;
        match record(k.value(), v.value()) {
            Ok(f) => {
                for e in file_entries(&f) {
                    if !indexes.has(&e)? {
                        if let Entry::Blob(..) = e {
                            *unindexed.entry(f.blob).or_default() += 1;
                        }
                        s.problems.push(Problem::new(
                            ProblemKind::MissingIndexEntry,
                            name(&e),
                            "the record has no entry here",
                        ));
                    }
                }
                if blob_rows.get(f.blob.0).ctx("reading blobs")?.is_none() {
                    s.problems.push(Problem::new(
                        ProblemKind::MissingBlobRow,
                        format!("file {}", f.id),
                        format!("its blob {} has no row", f.blob),
                    ));
                }
            }
            Err(e) => s.problems.push(Problem::new(
                ProblemKind::Undecodable,
                format!("file {}", FileId::from_key(k.value())),
                e.to_string(),
            )),
        }
    }
    indexes.each(|e| {
        s.index_entries += 1;
        let backed = match table.get(e.file()).ctx("reading files")? {
            Some(row) => record(e.file(), row.value()).is_ok_and(|f| file_entries(&f).contains(&e)),
            None => false,
        };
        if !backed {
            s.problems.push(Problem::new(
                ProblemKind::DanglingIndexEntry,
                name(&e),
                "no record says what this entry says",
            ));
        }
        Ok(())
    })?;
    Ok(unindexed)
}

/// How many file records name `address`: those its `files_by_blob`
/// entries lead to (an entry whose record is gone or names another blob
/// does not count), and those that lack their entry.
fn named_by(
    by_blob: &redb::ReadOnlyTable<([u8; 32], u128), ()>,
    files: &redb::ReadOnlyTable<u128, &[u8]>,
    address: BlobAddress,
    unindexed: &Unindexed,
) -> Result<u64, Error> {
    let mut n = unindexed.get(&address).copied().unwrap_or(0);
    for e in by_blob
        .range((address.0, 0)..=(address.0, u128::MAX))
        .ctx("scanning files_by_blob")?
    {
        let file = e.ctx("scanning files_by_blob")?.0.value().1;
        if let Some(row) = files.get(file).ctx("reading files")?
            && record(file, row.value()).is_ok_and(|f| f.blob == address)
        {
            n += 1;
        }
    }
    Ok(n)
}

fn blobs(txn: &ReadTransaction, s: &mut MetaScan, unindexed: &Unindexed) -> Result<(), Error> {
    let table = txn.open_table(BLOBS).ctx("opening blobs")?;
    let files = txn.open_table(FILES).ctx("opening files")?;
    let by_blob = txn.open_table(FILES_BY_BLOB).ctx("opening files_by_blob")?;
    let by_owner = txn
        .open_table(BLOBS_BY_OWNER)
        .ctx("opening blobs_by_owner")?;
    let mut usage: BTreeMap<u128, (u64, u64)> = BTreeMap::new();
    for row in table.iter().ctx("scanning blobs")? {
        let (k, v) = row.ctx("scanning blobs")?;
        let address = BlobAddress(k.value());
        s.blobs += 1;
        let b: BlobRow = match codec::decode(v.value(), address) {
            Ok(b) => b,
            Err(e) => {
                s.problems.push(Problem::new(
                    ProblemKind::Undecodable,
                    format!("blob {address}"),
                    e.to_string(),
                ));
                continue;
            }
        };
        let counted = named_by(&by_blob, &files, address, unindexed)?;
        if b.refcount != counted {
            s.problems.push(Problem::new(
                ProblemKind::WrongRefcount,
                format!("blob {address}"),
                format!("reference count {}, {counted} records name it", b.refcount),
            ));
        }
        let u = usage.entry(b.owner.to_key()).or_default();
        u.0 = u.0.saturating_add(b.stored_bytes);
        u.1 += 1;
        if by_owner
            .get((b.owner.to_key(), address.0))
            .ctx("reading blobs_by_owner")?
            .is_none()
        {
            s.problems.push(Problem::new(
                ProblemKind::MissingIndexEntry,
                format!("blobs_by_owner blob {address}"),
                format!("owner {} has no entry for it", b.owner),
            ));
        }
    }
    for e in by_owner.iter().ctx("scanning blobs_by_owner")? {
        let (o, a) = e.ctx("scanning blobs_by_owner")?.0.value();
        s.index_entries += 1;
        let address = BlobAddress(a);
        let backed = match table.get(a).ctx("reading blobs")? {
            Some(row) => {
                codec::decode::<BlobRow>(row.value(), address).is_ok_and(|b| b.owner.to_key() == o)
            }
            None => false,
        };
        if !backed {
            s.problems.push(Problem::new(
                ProblemKind::DanglingIndexEntry,
                format!("blobs_by_owner blob {address}"),
                format!("no blob row of owner {}", UserId::from_key(o)),
            ));
        }
    }
    let kept = txn.open_table(USAGE).ctx("opening usage")?;
    let mut owners: BTreeSet<u128> = usage.keys().copied().collect();
    for e in kept.iter().ctx("scanning usage")? {
        owners.insert(e.ctx("scanning usage")?.0.value());
    }
    for o in owners {
        let owner = UserId::from_key(o);
        let row = crate::db::usage::get(txn, owner)?;
        let (bytes, count) = usage.get(&o).copied().unwrap_or_default();
        if (row.stored_bytes, row.blobs) != (bytes, count) {
            s.problems.push(Problem::new(
                ProblemKind::WrongUsage,
                format!("user {owner}"),
                format!(
                    "usage says {} bytes in {} blobs, the blob rows {bytes} in {count}",
                    row.stored_bytes, row.blobs
                ),
            ));
        }
    }
    Ok(())
}

/// Up to `limit` blob addresses after `after`, in order, each with one
/// file record naming it (if any): the walk of the checks that follow the
/// scan, one batch per snapshot.
pub(crate) fn blob_batch(
    txn: &ReadTransaction,
    after: Option<BlobAddress>,
    limit: usize,
) -> Result<Vec<(BlobAddress, Option<FileId>)>, Error> {
    let table = txn.open_table(BLOBS).ctx("opening blobs")?;
    let by_blob = txn.open_table(FILES_BY_BLOB).ctx("opening files_by_blob")?;
    let rows = match after {
        Some(a) => table.range((std::ops::Bound::Excluded(a.0), std::ops::Bound::Unbounded)),
        None => table.range::<[u8; 32]>(..),
    }
    .ctx("scanning blobs")?;
    let mut out = Vec::new();
    for row in rows.take(limit) {
        let address = BlobAddress(row.ctx("scanning blobs")?.0.value());
        let first = by_blob
            .range((address.0, 0)..=(address.0, u128::MAX))
            .ctx("scanning files_by_blob")?
            .next()
            .transpose()
            .ctx("scanning files_by_blob")?
            .map(|e| FileId::from_key(e.0.value().1));
        out.push((address, first));
    }
    Ok(out)
}

/// Whether each of `addresses` has a blob row.
pub(crate) fn have_rows(
    txn: &ReadTransaction,
    addresses: &[BlobAddress],
) -> Result<Vec<bool>, Error> {
    let table = txn.open_table(BLOBS).ctx("opening blobs")?;
    addresses
        .iter()
        .map(|a| Ok(table.get(a.0).ctx("reading blobs")?.is_some()))
        .collect()
}
