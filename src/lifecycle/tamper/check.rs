//! Checking one blob the watch heard of, and what follows.
//!
//! A blob no row names is not the watch's business: a put renames its blob
//! in before its row commits, and the purge removes the row before it
//! overwrites and unlinks the file. A blob with a row must have its file,
//! of the size the store wrote, and read back whole: every chunk
//! authenticated and the SHA-256 as recorded (the same reading as
//! `store.files().verify`). (A file the store placed itself, untouched
//! since and heard of only as placed, never comes here: see
//! `blob::backend::placed`.)
//!
//! A finding of damage is checked once more under the blob's address lock
//! (which a put holds from placing its blob to committing its row, and the
//! purge from removing the row to deleting the file), so the store's own
//! work on the blob can never be taken for tampering; the mark is then
//! written in a transaction that re-checks the row. A marked blob found
//! whole again (a file put back from a backup) loses its mark.

use std::sync::Arc;

use crate::blob::files::Files;
use crate::db::blobs::get_row;
use crate::db::lifecycle::{
    Damage, blob_rows_after, clear_damaged, damage_of, files_of_blob, mark_damaged,
};
use crate::error::Error;
use crate::jobs::JobOutcome;
use crate::lifecycle::Parts;
use crate::types::BlobAddress;

/// File ids named in a log line at most.
const LOGGED_FILES: usize = 16;

/// What checking one blob found.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Finding {
    /// No row names it.
    Untracked,
    /// Read back whole.
    Whole,
    /// Missing, or not what the store wrote: why.
    Damaged(String),
    /// Could not be checked (an I/O error, a key gone): why.
    Unchecked(String),
}

/// Checks one blob and acts on what it found: marks it damaged, or
/// clears a mark it no longer deserves.
pub(super) async fn check(
    parts: &Parts<'_>,
    address: BlobAddress,
    out: &mut JobOutcome,
) -> Result<(), Error> {
    let finding = match examine(parts, address).await? {
        Finding::Damaged(_) => {
            let _lock = parts.blobs.lock(address).await;
            let again = examine(parts, address).await?;
            if let Finding::Damaged(reason) = again {
                return mark(parts, address, reason, out).await;
            }
            again
        }
        other => other,
    };
    match finding {
        Finding::Untracked => out.skip("no_row", 1),
        Finding::Whole => {
            out.count("blobs_verified", 1);
            clear(parts, address, out).await?;
        }
        Finding::Unchecked(why) => {
            tracing::warn!(blob = %address, reason = %why, "could not check a blob file the tamper watch heard of");
            out.skip("could_not_check", 1);
        }
        Finding::Damaged(_) => {}
    }
    Ok(())
}

/// Looks at the blob's row and file, and reads the file back.
async fn examine(parts: &Parts<'_>, address: BlobAddress) -> Result<Finding, Error> {
    let Some(row) = parts.db.read(|txn| get_row(txn, address))? else {
        return Ok(Finding::Untracked);
    };
    let backend = Arc::clone(&parts.blobs.backend);
    let probe = tokio::task::spawn_blocking(move || {
        let local = backend.as_local()?;
        Some(std::fs::symlink_metadata(local.path_of(address)))
    })
    .await
    .map_err(|e| Error::join("checking a blob file", e))?;
    let Some(meta) = probe else {
        return Ok(Finding::Unchecked("not a local blob directory".into()));
    };
    let meta = match meta {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Finding::Damaged(
                "blob file removed outside the store".into(),
            ));
        }
        Err(e) => return Ok(Finding::Unchecked(format!("reading its metadata: {e}"))),
    };
    if !meta.file_type().is_file() {
        return Ok(Finding::Damaged(
            "blob file replaced outside the store by something that is not a regular file".into(),
        ));
    }
    if meta.len() != row.stored_bytes {
        return Ok(Finding::Damaged(format!(
            "blob file modified outside the store: {} bytes where the store wrote {}",
            meta.len(),
            row.stored_bytes
        )));
    }
    verify(parts, address).await
}

/// Reads the blob back through one of its records.
async fn verify(parts: &Parts<'_>, address: BlobAddress) -> Result<Finding, Error> {
    let records = parts.db.read(|txn| files_of_blob(txn, address, 1))?;
    let Some(file) = records.first() else {
        return Ok(Finding::Unchecked("no record names the blob".into()));
    };
    let files = Files {
        db: parts.db,
        blobs: parts.blobs,
    };
    let modified = |detail: &dyn std::fmt::Display| {
        Finding::Damaged(format!("blob file modified outside the store: {detail}"))
    };
    Ok(match files.verify_record(file).await {
        Ok(_) => Finding::Whole,
        Err(Error::Integrity { detail, .. }) => modified(&detail),
        Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            Finding::Damaged("blob file removed outside the store".into())
        }
        Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::UnexpectedEof => {
            modified(&"shorter than its own chunk table says")
        }
        Err(e) => Finding::Unchecked(e.to_string()),
    })
}

/// Marks the blob damaged if a row still names it, and says so.
async fn mark(
    parts: &Parts<'_>,
    address: BlobAddress,
    reason: String,
    out: &mut JobOutcome,
) -> Result<(), Error> {
    let damage = Damage {
        found_at: parts.db.now(),
        reason: reason.clone(),
    };
    let marked = parts
        .db
        .write(move |txn| {
            if get_row(txn, address)?.is_none() {
                return Ok(None);
            }
            let files = files_of_blob(txn, address, LOGGED_FILES)?;
            Ok(Some((mark_damaged(txn, address, &damage)?, files)))
        })
        .await?;
    match marked {
        None => out.skip("no_row", 1),
        Some((false, _)) => out.skip("already_marked", 1),
        Some((true, files)) => {
            let ids: Vec<String> = files.iter().map(|f| f.id.to_string()).collect();
            tracing::warn!(
                blob = %address,
                files = %ids.join(","),
                reason = %reason,
                "a blob file was changed or removed outside the store; its records are marked damaged"
            );
            out.count("blobs_marked_damaged", 1);
        }
    }
    Ok(())
}

/// Clears the mark of a blob found whole (its file was put back).
async fn clear(parts: &Parts<'_>, address: BlobAddress, out: &mut JobOutcome) -> Result<(), Error> {
    if parts.db.read(|txn| damage_of(txn, address))?.is_none() {
        return Ok(());
    }
    let cleared = parts
        .db
        .write(move |txn| match get_row(txn, address)? {
            Some(_) => clear_damaged(txn, address),
            None => Ok(false),
        })
        .await?;
    if cleared {
        tracing::info!(blob = %address, "a blob marked damaged reads whole again; its mark is cleared");
        out.count("blobs_found_whole_again", 1);
    }
    Ok(())
}

/// One batch of a rescan: the blob rows after `after` whose file is
/// missing, not a file, or not of the size the store wrote.
pub(super) struct RescanStep {
    pub(super) suspects: Vec<BlobAddress>,
    /// Rows looked at.
    pub(super) rows: u64,
    /// Where the next batch starts (`None`: the rescan is done).
    pub(super) next: Option<BlobAddress>,
}

/// Looks at up to `limit` blob rows after `after`.
pub(super) async fn rescan(
    parts: &Parts<'_>,
    after: Option<BlobAddress>,
    limit: usize,
) -> Result<RescanStep, Error> {
    let rows = parts
        .db
        .scan(move |txn| blob_rows_after(txn, after, limit))
        .await?;
    let next = (rows.len() == limit)
        .then(|| rows.last().map(|(a, _)| *a))
        .flatten();
    let count = rows.len() as u64;
    let backend = Arc::clone(&parts.blobs.backend);
    let suspects = tokio::task::spawn_blocking(move || {
        let Some(local) = backend.as_local() else {
            return Vec::new();
        };
        rows.into_iter()
            .filter(|(address, row)| {
                std::fs::symlink_metadata(local.path_of(*address)).map_or(true, |m| {
                    !m.file_type().is_file() || m.len() != row.stored_bytes
                })
            })
            .map(|(address, _)| address)
            .collect()
    })
    .await
    .map_err(|e| Error::join("rescanning blob files", e))?;
    Ok(RescanStep {
        suspects,
        rows: count,
        next,
    })
}
