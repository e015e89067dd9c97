//! Access counts without a commit per read: every read of a file is
//! counted in memory, and the `access-counts` job writes the counts and
//! the last read time into the file records in batches. It runs at its
//! interval (60 s by default), and at once when 4096 files have reads
//! waiting, so a scan of every file does not grow the counts in memory. A
//! crash loses at most the reads since the last pass;
//! [`Store::close`](crate::Store::close) writes them first.

use crate::db::lifecycle::add_reads;
use crate::error::Error;
use crate::jobs::JobOutcome;
use crate::lifecycle::Parts;

pub(crate) const JOB: &str = "access-counts";

/// One pass: a batch of files' counts written in one transaction (a file
/// purged since its read is skipped).
pub(crate) async fn pass(parts: &Parts<'_>, dry_run: bool) -> Result<JobOutcome, Error> {
    let mut out = JobOutcome::default();
    if dry_run {
        out.count("files_updated", parts.blobs.reads.len() as u64);
        return Ok(out);
    }
    let (taken, more) = parts.blobs.reads.take(parts.config.batch);
    out.more = more;
    if taken.is_empty() {
        out.count("files_updated", 0);
        return Ok(out);
    }
    let reads: u64 = taken.iter().map(|(_, n, _)| n).sum();
    let batch = taken.clone();
    match parts
        .db
        .write(move |txn| {
            let mut updated = 0u64;
            for (id, n, at) in &batch {
                updated += u64::from(add_reads(txn, *id, *n, *at)?);
            }
            Ok(updated)
        })
        .await
    {
        Ok(updated) => {
            out.count("files_updated", updated);
            out.count("reads_written", reads);
            out.skip("file_gone", taken.len() as u64 - updated);
            Ok(out)
        }
        Err(e) => {
            parts.blobs.reads.give_back(taken);
            Err(e)
        }
    }
}
