//! The purge: soft-deleted files and sessions past the grace period are
//! removed for good, and a blob whose last reference goes is destroyed.
//!
//! It works as plan, then apply (as rustic's prune does). The plan is read
//! from one snapshot: the oldest soft-deleted records deleted before the
//! cutoff. The apply re-checks every record in its write transaction: a
//! file restored since the plan is kept, and a blob that gained a
//! reference since the plan keeps its row, because references are counted
//! in that transaction. The transaction takes no blob lock (a put waits
//! for it only as for any write batch): a put that deduplicated against a
//! row the transaction removes finds the row gone when it commits and
//! stores its own bytes instead (`blob::put`). Only then are the freed
//! blobs' address locks taken, a group of 32 at a time, to retire their
//! files, skipping any address a put has stored again since. A request's
//! freed blobs are retired while the next request is written: at 100 000
//! files and sessions this took the purge from 19 700–19 800 to
//! 22 000–23 500 records/s (`benches/lifecycle.rs`; the retirement of a
//! pass's 1000 files took ~21 ms of its ~95).
//!
//! A batch is written in several requests, so a foreground write waits
//! for one such request rather than the whole batch. On an idle store a
//! request carries 512 files and 512 sessions (128 took three times as
//! many commits for a batch: 9 instead of 3, about 60 ms more a pass). While other writes commit
//! beside a request of the purge (and for a pass's first request), the
//! requests shrink to 16 and 16 and the purge pauses after each as long
//! as it took, so it takes about half of the writer (and of the disk's
//! syncs) while the store is busy. In `benches/lifecycle.rs` this brought
//! a small put's p99 during a purge from 9.7–10.4× its p99 alone to
//! 2.9–4.9× (the purge under load runs at 2 400 instead of 5 300
//! records/s). Once others were seen writing, those small requests *ride*
//! with their commits (`Db::write_beside`, see `db::riders`) instead of
//! committing on their own, so a put no longer waits for a commit of the
//! purge before its own: its p99 during a purge went from 3.8–4.4 ms to
//! 3.3–3.6 ms (1.44–1.84× its p99 alone in four runs, where 1.57–2.36×
//! before), and the purge under that load from 2 100–2 300 to 1 900–2 300
//! records/s.
//!
//! A blob's row holds its wrapped data key, and it goes in the same
//! transaction as the blob's last reference: from that commit the sealed
//! bytes cannot be decrypted, even with the master key (crypto-shredding,
//! NIST SP 800-88's "cryptographic erase"). The file is then retired
//! (moved out of its address) while the locks are still held, and, with
//! the locks released, the batch's retired files are overwritten once,
//! synced together and unlinked, best effort (see `docs/LIFECYCLE.md` for
//! why the overwrite is no guarantee on flash and copy-on-write file
//! systems). A put waits for the batch's transaction and renames, never
//! for the destruction. A file that cannot be retired is left for the
//! orphan collector; retired files a crash left are destroyed by the next
//! pass.
//!
//! On an idle store with more to do, a batch's destruction runs behind
//! the next pass's transaction (`blob::shred`): in `benches/lifecycle.rs`
//! at 20 000 files and sessions this took the purge from 7 152 to 10 781
//! records/s, with 512-record requests and the tamper watch no longer
//! hearing `blobs/retired/`. While others write, the destruction is done
//! in the pass, one file at a time, each overwrite synced by itself rather
//! than by one `syncfs` (which makes every writer's next `fsync` wait for
//! the whole file system), and followed by a pause as long as it took: a
//! small put's p99 during a purge went from 16.7–17.8 ms to 9.3 ms with
//! the per-file syncs, and its median during a purge from 1.2–1.4× to
//! 0.8–1.1× its median alone with one file at a time and the pause (the
//! purge under that load: ~2 400 → ~1 300 records/s).
//!
//! A request's records are removed through one [`Removal`], which opens
//! each table once: the closures of a pass of 1000 + 1000 took 24–37 ms
//! instead of 45–83 ms.

use std::collections::HashMap;

use crate::blob::BlobStore;
use crate::blob::backend::OverwriteSync;
use crate::db::Db;
use crate::db::blobs::get_row;
use crate::db::lifecycle::{
    FilePurge, purge_file, purge_session, purgeable_files, purgeable_sessions,
};
use crate::db::removal::Removal;
use crate::error::Error;
use crate::jobs::JobOutcome;
use crate::lifecycle::Parts;
use crate::types::{BlobAddress, FileId, SessionId, Timestamp};

pub(crate) const JOB: &str = "purge";

/// Records of each kind one write request of the purge removes while no
/// other write commits beside it.
const WRITE_CHUNK_IDLE: usize = 512;

/// Records of each kind per request while other writes commit beside the
/// purge (each such request is followed by a pause as long as it took).
const WRITE_CHUNK_BUSY: usize = 16;

/// How long a request of the purge waits, while others write, for a
/// batch of theirs to ride with before it commits alone.
const RIDE_WAIT: std::time::Duration = std::time::Duration::from_millis(20);

/// Freed blobs retired under one set of address locks: a put waits for
/// at most this many renames, not for the whole batch's.
const RETIRE_GROUP: usize = 32;

/// What one snapshot says is due.
struct Plan {
    files: Vec<(FileId, BlobAddress)>,
    sessions: Vec<SessionId>,
    /// For a dry run: blobs the plan would free, and their stored bytes.
    freed: Vec<(BlobAddress, u64)>,
}

fn plan(
    txn: &redb::ReadTransaction,
    cutoff: Timestamp,
    limit: usize,
    preview: bool,
) -> Result<Plan, Error> {
    let files = purgeable_files(txn, cutoff, limit)?;
    let sessions = purgeable_sessions(txn, cutoff, limit)?;
    let mut freed = Vec::new();
    if preview {
        let mut refs: HashMap<BlobAddress, (u64, u64)> = HashMap::new();
        for (_, address) in &files {
            if let std::collections::hash_map::Entry::Vacant(e) = refs.entry(*address)
                && let Some(row) = get_row(txn, *address)?
            {
                e.insert((row.refcount, row.stored_bytes));
            }
            if let Some((left, bytes)) = refs.get_mut(address) {
                *left = left.saturating_sub(1);
                if *left == 0 {
                    freed.push((*address, *bytes));
                }
            }
        }
    }
    Ok(Plan {
        files,
        sessions,
        freed,
    })
}

/// One pass: a batch of files and a batch of sessions.
pub(crate) async fn pass(parts: &Parts<'_>, dry_run: bool) -> Result<JobOutcome, Error> {
    let cutoff = parts.db.now().minus(parts.config.purge_grace);
    let limit = if dry_run {
        usize::MAX
    } else {
        parts.config.batch
    };
    let plan = parts
        .db
        .scan(move |txn| plan(txn, cutoff, limit, dry_run))
        .await?;
    let mut out = JobOutcome::default();
    for what in [
        "files_purged",
        "sessions_purged",
        "blobs_destroyed",
        "bytes_freed",
    ] {
        out.count(what, 0);
    }
    if dry_run {
        out.count("files_purged", plan.files.len() as u64);
        out.count("sessions_purged", plan.sessions.len() as u64);
        out.count("blobs_destroyed", plan.freed.len() as u64);
        out.count("bytes_freed", plan.freed.iter().map(|(_, b)| b).sum());
        return Ok(out);
    }
    out.more = plan.files.len() == limit || plan.sessions.len() == limit;
    let (files, sessions) = (plan.files, plan.sessions);
    let planned_sessions = sessions.len() as u64;
    // Each request's freed blobs are retired while the next request is
    // written (the retirement re-checks every row under its locks, as it
    // does against a put). The sender goes when the requests are done
    // (or one failed).
    let (freed_tx, mut freed_rx) = tokio::sync::mpsc::unbounded_channel::<Vec<BlobAddress>>();
    let writes = async move {
        let mut results = Vec::with_capacity(files.len());
        let mut sessions_purged = 0u64;
        let (mut files, mut sessions) = (files.as_slice(), sessions.as_slice());
        let mut pace = Pace::new(parts.db);
        while !files.is_empty() || !sessions.is_empty() {
            let chunk = pace.chunk();
            let (f, rest) = files.split_at(files.len().min(chunk));
            files = rest;
            let (s, rest) = sessions.split_at(sessions.len().min(chunk));
            sessions = rest;
            let (f, s) = (f.to_vec(), s.to_vec());
            let started = std::time::Instant::now();
            let request = move |txn: &redb::WriteTransaction| {
                let mut removal = Removal::new(txn);
                let mut results = Vec::with_capacity(f.len());
                for (id, _) in &f {
                    results.push(purge_file(&mut removal, *id, cutoff)?);
                }
                let mut n = 0u64;
                for id in &s {
                    n += u64::from(purge_session(&mut removal, *id, cutoff)?);
                }
                Ok((results, n))
            };
            let (r, n) = if pace.rides() {
                parts.db.write_beside(request, RIDE_WAIT).await?
            } else {
                parts.db.write(request).await?
            };
            let freed = r
                .iter()
                .filter_map(|r| match r {
                    FilePurge::RemovedWithBlob(address, _) => Some(*address),
                    _ => None,
                })
                .collect::<Vec<_>>();
            if !freed.is_empty() {
                // The receiver lives until this future is done.
                let _ = freed_tx.send(freed);
            }
            results.extend(r);
            sessions_purged += n;
            pace.after(parts.db, started, !files.is_empty() || !sessions.is_empty())
                .await;
        }
        Ok::<_, Error>((results, sessions_purged, pace.busy))
    };
    let retirements = async {
        let (mut stored_again, mut failed) = (0u64, 0u64);
        while let Some(doomed) = freed_rx.recv().await {
            let (again, fail) = retire_freed(parts.db, parts.blobs, &doomed).await?;
            stored_again += again;
            failed += fail;
        }
        Ok::<_, Error>((stored_again, failed))
    };
    // Both run to their end (neither is cancelled halfway through a
    // request or under its locks); a write error still lets the requests
    // already committed retire their blobs.
    let (written, retired) = tokio::join!(writes, retirements);
    let (results, sessions_purged, busy) = written?;
    let (stored_again, failed) = retired?;
    out.count("sessions_purged", sessions_purged);
    out.skip(
        "session_gone_since_plan",
        planned_sessions - sessions_purged,
    );
    for result in results {
        match result {
            FilePurge::NotDue => out.skip("file_restored_since_plan", 1),
            FilePurge::Removed => {
                out.count("files_purged", 1);
                out.skip("blob_still_referenced", 1);
            }
            FilePurge::RemovedWithBlob(_, row) => {
                out.count("files_purged", 1);
                out.count("blobs_destroyed", 1);
                out.count("bytes_freed", row.stored_bytes);
            }
        }
    }
    out.skip("blob_stored_again", stored_again);
    out.skip("blob_file_delete_failed", failed);
    if busy {
        // Others write: one file at a time, each overwrite synced by itself
        // (a `syncfs` would hold up their next commits), then a pause as
        // long as the destruction took before the next pass, as after
        // each of this pass's requests.
        let started = std::time::Instant::now();
        parts
            .blobs
            .shredder
            .now(&parts.blobs.backend, OverwriteSync::EachFile)
            .await?;
        if out.more {
            tokio::time::sleep(started.elapsed()).await;
        }
    } else if out.more {
        // The next pass's transaction runs while these files are destroyed.
        parts.blobs.shredder.behind(&parts.blobs.backend).await;
    } else {
        destroy_retired(parts).await?;
    }
    let purged = out.counts.iter().map(|(_, n)| *n).sum::<u64>();
    if purged > 0 {
        tracing::info!(counts = ?out.counts, "purged");
    }
    Ok(out)
}

/// How the purge shares the writer: big requests while it has the store
/// to itself, small ones and a pause after each while other writes commit.
/// A pass starts small: its first request finds out which.
struct Pace {
    busy: bool,
    /// Whether `busy` was seen (after a request) rather than assumed.
    looked: bool,
    /// The writer's request count when last looked at.
    seen: u64,
}

impl Pace {
    fn new(db: &Db) -> Pace {
        Pace {
            busy: true,
            looked: false,
            seen: db.write_stats().requests,
        }
    }

    fn chunk(&self) -> usize {
        if self.busy {
            WRITE_CHUNK_BUSY
        } else {
            WRITE_CHUNK_IDLE
        }
    }

    /// Whether the next request rides with others' commits (see
    /// `db::riders`): only once others were seen writing, so that a pass
    /// on an idle store does not wait for a batch that never comes.
    fn rides(&self) -> bool {
        self.busy && self.looked
    }

    /// After a request that began at `started`: whether others wrote since
    /// the last look (the request itself is one of the count), and if so a
    /// pause as long as the request took before the next one (`more`).
    async fn after(&mut self, db: &Db, started: std::time::Instant, more: bool) {
        let took = started.elapsed();
        let now = db.write_stats().requests;
        self.busy = now.saturating_sub(self.seen) > 1;
        self.looked = true;
        if self.busy && more {
            tokio::time::sleep(took).await;
        }
        // Writes during the pause count towards the next look.
        self.seen = now;
    }
}

/// Retires freed blobs (their rows are gone) a group of [`RETIRE_GROUP`]
/// at a time under their address locks, skipping any a put has stored
/// again since (each group is re-checked under its locks): how many were
/// skipped so, and how many could not be retired (left to the orphan
/// collector). The purge and erasure share it.
pub(crate) async fn retire_freed(
    db: &Db,
    blobs: &BlobStore,
    doomed: &[BlobAddress],
) -> Result<(u64, u64), Error> {
    let (mut stored_again, mut failed) = (0u64, 0u64);
    // A backup copying blob files keeps them until it is done.
    let _unpinned = if doomed.is_empty() {
        None
    } else {
        Some(blobs.unpinned().await)
    };
    for group in doomed.chunks(RETIRE_GROUP) {
        let locks = blobs.lock_many(group.iter().copied()).await;
        let free = db.read(|txn| {
            let mut free = Vec::with_capacity(group.len());
            for a in group {
                if get_row(txn, *a)?.is_none() {
                    free.push(*a);
                }
            }
            Ok(free)
        })?;
        stored_again += (group.len() - free.len()) as u64;
        let backend = std::sync::Arc::clone(&blobs.backend);
        failed += tokio::task::spawn_blocking(move || {
            let mut failed = 0u64;
            for (address, r) in free.iter().zip(backend.retire_many(&free)) {
                if let Err(e) = r {
                    tracing::warn!(blob = %address, error = %e, "a freed blob's file could not be retired; the orphan collector will delete it");
                    failed += 1;
                }
            }
            failed
        })
        .await
        .map_err(|e| Error::join("retiring freed blobs", e))?;
        drop(locks);
    }
    Ok((stored_again, failed))
}

/// Destroys the blobs retired by this pass (and any a crash left), with no
/// lock held, once the destruction running behind an earlier pass is done.
pub(crate) async fn destroy_retired(parts: &Parts<'_>) -> Result<u64, Error> {
    destroy_retired_of(parts.blobs).await
}

/// [`destroy_retired`] for any holder of the blob store.
pub(crate) async fn destroy_retired_of(blobs: &BlobStore) -> Result<u64, Error> {
    blobs
        .shredder
        .now(&blobs.backend, OverwriteSync::Together)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One purge request (an empty write) and the look after it; how
    /// long the request took.
    async fn request(db: &Db, pace: &mut Pace, other_writes: u32) -> std::time::Duration {
        let started = std::time::Instant::now();
        db.write(|_| Ok(())).await.unwrap();
        for _ in 0..other_writes {
            db.write(|_| Ok(())).await.unwrap();
        }
        let took = started.elapsed();
        pace.after(db, started, true).await;
        took
    }

    #[tokio::test]
    async fn the_purge_takes_small_requests_while_others_write_and_big_ones_alone() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::Store::open(crate::Config::new(dir.path()).password_cost(8, 1))
            .await
            .unwrap();
        let db = store.db();
        let mut pace = Pace::new(db);
        assert_eq!(pace.chunk(), WRITE_CHUNK_BUSY, "a pass starts small");
        assert!(!pace.rides(), "but does not wait for others' commits");

        // The purge's request alone: big requests from then on.
        request(db, &mut pace, 0).await;
        assert_eq!(pace.chunk(), WRITE_CHUNK_IDLE);

        // Another write commits beside the next request: small again, and
        // a pause as long as the request took.
        let started = std::time::Instant::now();
        let took = request(db, &mut pace, 1).await;
        assert_eq!(pace.chunk(), WRITE_CHUNK_BUSY);
        assert!(pace.rides(), "others seen writing: ride with their commits");
        assert!(started.elapsed() >= took * 2, "paused as long as it took");

        // A write between two looks (during the pause) counts.
        db.write(|_| Ok(())).await.unwrap();
        request(db, &mut pace, 0).await;
        assert_eq!(pace.chunk(), WRITE_CHUNK_BUSY);

        // Quiet again: big requests, committed on their own.
        request(db, &mut pace, 0).await;
        assert_eq!(pace.chunk(), WRITE_CHUNK_IDLE);
        assert!(!pace.rides());
    }
}
