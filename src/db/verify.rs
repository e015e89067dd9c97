//! The metadata half of `verify` (fsck): from one snapshot, every record
//! decodes, every index entry names a row that says the same, every row
//! has its entries, and every blob's reference count and every owner's
//! usage equal a recount from the records. Problems are collected, not
//! returned at the first.
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
use crate::types::{BlobAddress, FileId, SessionId, UserId};

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
    /// Every blob row, with one file record that names it (if any).
    pub(crate) blobs: BTreeMap<BlobAddress, Option<FileId>>,
    pub(crate) index_entries: u64,
}

/// Runs every metadata check on one snapshot.
pub(crate) fn scan(txn: &ReadTransaction) -> Result<MetaScan, Error> {
    let mut s = MetaScan::default();
    users(txn, &mut s)?;
    sessions(txn, &mut s)?;
    let refs = files(txn, &mut s)?;
    blobs(txn, &mut s, &refs)?;
    Ok(s)
}

fn users(txn: &ReadTransaction, s: &mut MetaScan) -> Result<(), Error> {
    let table = txn.open_table(USERS).ctx("opening users")?;
    for row in table.iter().ctx("scanning users")? {
        let (k, v) = row.ctx("scanning users")?;
        let id = UserId::from_key(k.value());
        s.users += 1;
        if let Err(e) = crate::db::user_record::decode_row(v.value(), id) {
            s.problems.push(Problem::new(
                ProblemKind::Undecodable,
                format!("user {id}"),
                e.to_string(),
            ));
        }
    }
    let profiles = txn.open_table(PROFILES).ctx("opening profiles")?;
    for row in profiles.iter().ctx("scanning profiles")? {
        let (k, v) = row.ctx("scanning profiles")?;
        let id = UserId::from_key(k.value());
        if let Err(e) = crate::db::profile_row::ProfileRow::decode(v.value(), id) {
            s.problems.push(Problem::new(
                ProblemKind::Undecodable,
                format!("profile {id}"),
                e.to_string(),
            ));
        }
    }
    Ok(())
}

fn sessions(txn: &ReadTransaction, s: &mut MetaScan) -> Result<(), Error> {
    let table = txn.open_table(SESSIONS).ctx("opening sessions")?;
    let by_user = txn
        .open_table(SESSIONS_BY_USER)
        .ctx("opening sessions_by_user")?;
    // The (user, last active) a session row says, if it decodes.
    let head_of = |id: u128, bytes: &[u8]| {
        crate::db::session_row::SessionRow::decode(bytes, SessionId::from_key(id)).map(|r| {
            let h = r.head();
            (h.user_id.to_key(), h.last_active_at.as_micros())
        })
    };
    for row in table.iter().ctx("scanning sessions")? {
        let (k, v) = row.ctx("scanning sessions")?;
        let id = SessionId::from_key(k.value());
        s.sessions += 1;
        match head_of(k.value(), v.value()) {
            Ok((user, at)) => {
                if by_user
                    .get((user, at, k.value()))
                    .ctx("reading sessions_by_user")?
                    .is_none()
                {
                    s.problems.push(Problem::new(
                        ProblemKind::MissingIndexEntry,
                        format!("sessions_by_user session {id}"),
                        "the session is not in its user's index",
                    ));
                }
            }
            Err(e) => s.problems.push(Problem::new(
                ProblemKind::Undecodable,
                format!("session {id}"),
                e.to_string(),
            )),
        }
    }
    for e in by_user.iter().ctx("scanning sessions_by_user")? {
        let (user, at, id) = e.ctx("scanning sessions_by_user")?.0.value();
        s.index_entries += 1;
        let says = table
            .get(id)
            .ctx("reading sessions")?
            .and_then(|row| head_of(id, row.value()).ok());
        if says != Some((user, at)) {
            s.problems.push(Problem::new(
                ProblemKind::DanglingIndexEntry,
                format!("sessions_by_user session {}", SessionId::from_key(id)),
                "no session row with this user and last-active time",
            ));
        }
    }
    for def in [SESSIONS_BY_EXPIRY, SESSIONS_BY_DELETED] {
        let index = txn.open_table(def).ctx("opening a session index")?;
        for e in index.iter().ctx("scanning a session index")? {
            let (_, id) = e.ctx("scanning a session index")?.0.value();
            s.index_entries += 1;
            if table.get(id).ctx("reading sessions")?.is_none() {
                s.problems.push(Problem::new(
                    ProblemKind::DanglingIndexEntry,
                    format!(
                        "{} session {}",
                        redb::TableHandle::name(&def),
                        SessionId::from_key(id)
                    ),
                    "no session row",
                ));
            }
        }
    }
    Ok(())
}

/// A file index entry in one comparable shape: the table, (owner or 0,
/// file), the blob address of `files_by_blob`, the time of the two
/// time-keyed indexes.
type Entry = (&'static str, [u128; 2], Option<[u8; 32]>, Option<i64>);

/// The file index entries a record should have.
fn file_entries(f: &AudioFile) -> Vec<Entry> {
    let id = f.id.to_key();
    let mut out = vec![
        ("files_by_owner", [f.owner.to_key(), id], None, None),
        ("files_by_blob", [0, id], Some(f.blob.0), None),
    ];
    match (f.deleted_at, f.expires_at) {
        (Some(d), _) => out.push(("files_by_deleted", [0, id], None, Some(d.as_micros()))),
        (None, Some(e)) => out.push(("files_by_expiry", [0, id], None, Some(e.as_micros()))),
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
        let [owner, file] = e.1;
        let found = match (e.0, e.2, e.3) {
            ("files_by_owner", _, _) => self.by_owner.get((owner, file)),
            ("files_by_blob", Some(b), _) => self.by_blob.get((b, file)),
            ("files_by_expiry", _, Some(t)) => self.by_expiry.get((t, file)),
            ("files_by_deleted", _, Some(t)) => self.by_deleted.get((t, file)),
            _ => return Ok(false),
        };
        Ok(found.ctx("reading a file index")?.is_some())
    }

    /// Every entry of the four indexes, one at a time.
    fn each(&self, mut f: impl FnMut(Entry) -> Result<(), Error>) -> Result<(), Error> {
        let scanning = "scanning a file index";
        for e in self.by_owner.iter().ctx(scanning)? {
            let (o, file) = e.ctx(scanning)?.0.value();
            f(("files_by_owner", [o, file], None, None))?;
        }
        for e in self.by_blob.iter().ctx(scanning)? {
            let (b, file) = e.ctx(scanning)?.0.value();
            f(("files_by_blob", [0, file], Some(b), None))?;
        }
        for (name, table) in [
            ("files_by_expiry", &self.by_expiry),
            ("files_by_deleted", &self.by_deleted),
        ] {
            for e in table.iter().ctx(scanning)? {
                let (t, file) = e.ctx(scanning)?.0.value();
                f((name, [0, file], None, Some(t)))?;
            }
        }
        Ok(())
    }
}

/// How many file records name each blob, and one of them.
type BlobRefs = BTreeMap<BlobAddress, (u64, FileId)>;

/// Checks the file records and their four indexes both ways, by point
/// lookups (so the scan keeps nothing per file); returns who names which
/// blob.
fn files(txn: &ReadTransaction, s: &mut MetaScan) -> Result<BlobRefs, Error> {
    let table = txn.open_table(FILES).ctx("opening files")?;
    let indexes = FileIndexes::open(txn)?;
    let name = |e: &Entry| format!("{} file {}", e.0, FileId::from_key(e.1[1]));
    let record = |id: u128, bytes: &[u8]| {
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
    };
    let mut refs = BlobRefs::new();
    for row in table.iter().ctx("scanning files")? {
        let (k, v) = row.ctx("scanning files")?;
        s.files += 1;
        match record(k.value(), v.value()) {
            Ok(f) => {
                for e in file_entries(&f) {
                    if !indexes.has(&e)? {
                        s.problems.push(Problem::new(
                            ProblemKind::MissingIndexEntry,
                            name(&e),
                            "the record has no entry here",
                        ));
                    }
                }
                refs.entry(f.blob).or_insert((0, f.id)).0 += 1;
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
        let backed = match table.get(e.1[1]).ctx("reading files")? {
            Some(row) => record(e.1[1], row.value()).is_ok_and(|f| file_entries(&f).contains(&e)),
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
    Ok(refs)
}

fn blobs(txn: &ReadTransaction, s: &mut MetaScan, refs: &BlobRefs) -> Result<(), Error> {
    let table = txn.open_table(BLOBS).ctx("opening blobs")?;
    let by_owner = txn
        .open_table(BLOBS_BY_OWNER)
        .ctx("opening blobs_by_owner")?;
    let mut usage: BTreeMap<u128, (u64, u64)> = BTreeMap::new();
    for row in table.iter().ctx("scanning blobs")? {
        let (k, v) = row.ctx("scanning blobs")?;
        let address = BlobAddress(k.value());
        let named = refs.get(&address).map(|r| r.1);
        s.blobs.insert(address, named);
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
        let counted = refs.get(&address).map_or(0, |r| r.0);
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
    for (address, (_, file)) in refs {
        if !s.blobs.contains_key(address) {
            s.problems.push(Problem::new(
                ProblemKind::MissingBlobRow,
                format!("file {file}"),
                format!("its blob {address} has no row"),
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
