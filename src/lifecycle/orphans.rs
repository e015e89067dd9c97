//! The orphan collector. A crash between a put's placing of its blob and
//! the commit of its record leaves a blob file no row names; a crash in a
//! put leaves a temporary in `tmp/` (and, on object storage, a multipart
//! upload left open, which the backend aborts); a file deleted or lost behind the
//! store's back leaves a row without its blob. Each pass takes a batch of
//! the backend's listing (resuming where the last pass stopped), deletes
//! the files no row names that are older than the grace period, removes
//! old temporaries, and marks the rows whose blob is missing as damaged
//! (reported, never silently dropped: the record keeps saying what was
//! lost).
//!
//! A put in flight is never taken: its blob file is younger than the grace
//! period, and the collector checks for the row under the blob's address
//! lock, which a put holds from placing its blob until its record commits.

use std::sync::Mutex;

use crate::db::blobs::get_row;
use crate::db::lifecycle::{Damage, blob_rows_after, mark_damaged};
use crate::error::Error;
use crate::jobs::JobOutcome;
use crate::lifecycle::Parts;
use crate::types::{BlobAddress, Timestamp};

pub(crate) const JOB: &str = "orphans";

/// Where one of a pass's two walks (the backend's listing, the blob rows)
/// stands. A walk that ended waits for the other: were it started over,
/// a run to the end would last until both ended on the same pass (the
/// least common multiple of their lengths in batches).
#[derive(Clone, Copy, Default)]
enum Walk {
    #[default]
    Start,
    After(BlobAddress),
    Ended,
}

impl Walk {
    /// Where the walk's next batch begins after (`None`: the start).
    fn after(self) -> Option<BlobAddress> {
        match self {
            Walk::After(a) => Some(a),
            Walk::Start | Walk::Ended => None,
        }
    }

    /// Where a batch that returned `next` leaves the walk.
    fn from_next(next: Option<BlobAddress>) -> Walk {
        next.map_or(Walk::Ended, Walk::After)
    }
}

/// Where the next pass resumes, for both walks.
#[derive(Default)]
pub(crate) struct OrphanCursor {
    at: Mutex<(Walk, Walk)>,
}

impl OrphanCursor {
    fn get(&self) -> (Walk, Walk) {
        *self.at.lock().unwrap_or_else(|e| e.into_inner())
    }
    fn set(&self, files: Walk, rows: Walk) {
        *self.at.lock().unwrap_or_else(|e| e.into_inner()) = (files, rows);
    }
}

/// One pass; a dry run covers everything from the start.
pub(crate) async fn pass(parts: &Parts<'_>, dry_run: bool) -> Result<JobOutcome, Error> {
    let now = parts.db.now();
    let cutoff = now.minus(parts.config.orphan_grace);
    let (limit, (files_at, rows_at)) = if dry_run {
        (usize::MAX, (Walk::Start, Walk::Start))
    } else {
        (parts.config.batch, parts.cursors.orphans.get())
    };
    let mut out = JobOutcome::default();
    let files_next = match files_at {
        Walk::Ended => Walk::Ended,
        at => Walk::from_next(
            orphan_files(parts, at.after(), limit, cutoff, dry_run, &mut out).await?,
        ),
    };
    if !dry_run {
        crate::lifecycle::purge::destroy_retired(parts).await?;
    }
    let rows_next = match rows_at {
        Walk::Ended => Walk::Ended,
        at => {
            Walk::from_next(missing_blobs(parts, at.after(), limit, now, dry_run, &mut out).await?)
        }
    };
    let tmp = parts.blobs.tmp_dir.clone();
    let (n, bytes) = tokio::task::spawn_blocking(move || {
        crate::datadir::remove_old_temporaries(&tmp, cutoff, dry_run)
    })
    .await
    .map_err(|e| Error::join("collecting temporaries", e))??;
    out.count("temporaries_removed", n);
    out.count("bytes_freed", bytes);
    let backend = std::sync::Arc::clone(&parts.blobs.backend);
    let aborted = tokio::task::spawn_blocking(move || backend.collect_uploads(cutoff, dry_run))
        .await
        .map_err(|e| Error::join("collecting interrupted uploads", e))??;
    if aborted > 0 {
        out.count("uploads_aborted", aborted);
    }
    let ended = matches!((files_next, rows_next), (Walk::Ended, Walk::Ended));
    out.more = !ended;
    if !dry_run {
        if ended {
            parts.cursors.orphans.set(Walk::Start, Walk::Start);
        } else {
            parts.cursors.orphans.set(files_next, rows_next);
        }
    }
    Ok(out)
}

/// Blob files no row names, older than `cutoff`; returns where the next
/// pass resumes (`None`: the listing is done).
async fn orphan_files(
    parts: &Parts<'_>,
    after: Option<BlobAddress>,
    limit: usize,
    cutoff: Timestamp,
    dry_run: bool,
    out: &mut JobOutcome,
) -> Result<Option<BlobAddress>, Error> {
    let backend = std::sync::Arc::clone(&parts.blobs.backend);
    let listed = tokio::task::spawn_blocking(move || backend.list(after, limit))
        .await
        .map_err(|e| Error::join("listing blobs", e))??;
    let next = (listed.len() == limit)
        .then(|| listed.last().map(|b| b.address))
        .flatten();
    for blob in listed {
        if blob.modified >= cutoff {
            out.skip("younger_than_grace", 1);
            continue;
        }
        let address = blob.address;
        // A backup copying blob files keeps them until it is done.
        let _unpinned = if dry_run {
            None
        } else {
            Some(parts.blobs.unpinned().await)
        };
        // A put holds this lock from placing its blob to committing its row.
        let _lock = parts.blobs.lock(address).await;
        if parts.db.read(|txn| get_row(txn, address))?.is_some() {
            continue;
        }
        if !dry_run {
            let backend = std::sync::Arc::clone(&parts.blobs.backend);
            // Retired under the lock, destroyed with the pass's others.
            let deleted = tokio::task::spawn_blocking(move || backend.retire(address))
                .await
                .map_err(|e| Error::join("retiring an orphan", e))??;
            if !deleted {
                continue;
            }
            tracing::info!(blob = %address, bytes = blob.bytes, "collected an orphan blob");
        }
        out.count("orphans_removed", 1);
        out.count("bytes_freed", blob.bytes);
    }
    Ok(next)
}

/// Rows whose blob file is missing: marked damaged (once) and counted.
async fn missing_blobs(
    parts: &Parts<'_>,
    after: Option<BlobAddress>,
    limit: usize,
    now: Timestamp,
    dry_run: bool,
    out: &mut JobOutcome,
) -> Result<Option<BlobAddress>, Error> {
    let rows = parts
        .db
        .scan(move |txn| blob_rows_after(txn, after, limit))
        .await?;
    let next = (rows.len() == limit)
        .then(|| rows.last().map(|(a, _)| *a))
        .flatten();
    let addresses: Vec<BlobAddress> = rows.into_iter().map(|(a, _)| a).collect();
    let backend = std::sync::Arc::clone(&parts.blobs.backend);
    let missing = tokio::task::spawn_blocking(move || {
        let mut missing = Vec::new();
        for a in addresses {
            if !backend.exists(a)? {
                missing.push(a);
            }
        }
        Ok::<_, Error>(missing)
    })
    .await
    .map_err(|e| Error::join("checking blobs", e))??;
    for address in missing {
        let _lock = parts.blobs.lock(address).await;
        // Purged, or put back, since the listing: not damaged.
        let backend = std::sync::Arc::clone(&parts.blobs.backend);
        let exists = tokio::task::spawn_blocking(move || backend.exists(address))
            .await
            .map_err(|e| Error::join("checking a blob", e))??;
        if exists || parts.db.read(|txn| get_row(txn, address))?.is_none() {
            continue;
        }
        out.count("blobs_missing", 1);
        if dry_run {
            continue;
        }
        let damage = Damage {
            found_at: now,
            reason: "the blob file is missing".into(),
        };
        let new = parts
            .db
            .write(move |txn| mark_damaged(txn, address, &damage))
            .await?;
        if new {
            tracing::error!(blob = %address, "a stored blob's file is missing; its records are marked damaged");
            out.count("blobs_marked_damaged", 1);
        }
    }
    Ok(next)
}
