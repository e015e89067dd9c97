//! Verify (fsck): finds every kind of damage a store can have, and with
//! `repair` fixes what is safe to fix.
//!
//! The checks, in order: redb's own integrity check of `store.redb`; the
//! metadata scan on one snapshot (`db::verify`: records decode, indexes
//! match rows both ways, reference counts and usage equal a recount);
//! every blob row's file exists, and every blob file older than the
//! orphan grace period is named by a row; with `deep`, every blob is read
//! through the normal read path (each chunk authenticated, the plaintext's
//! SHA-256 checked against its record), one at a time. The file checks
//! and the deep read walk the blob rows 1000 at a time, each batch from a
//! fresh snapshot, and the metadata scan keeps nothing per record, so
//! memory does not grow with the store.
//!
//! What `repair` fixes: everything derived from rows (file indexes,
//! `blobs_by_owner`, reference counts, usage: rebuilt in one
//! transaction), orphan files and rows whose file is missing (the orphan
//! collector: it deletes the first after their grace period and marks the
//! second damaged). It never rewrites or deletes a user, session, file or
//! blob row. A second pass then decides which problems are gone; the
//! report marks those `repaired` and leaves the rest.

use std::collections::BTreeSet;

/// Blob rows (and blob files) one step of the walks takes.
const BATCH: usize = 1000;

use serde::Serialize;

use crate::db::verify::{MetaScan, Problem, ProblemKind, blob_batch, have_rows};
use crate::error::Error;
use crate::ops::backup::Progress;
use crate::store::Store;
use crate::types::{BlobAddress, FileId, Timestamp};

/// How [`Store::verify`] runs. Default: metadata and blob files only, no
/// repair.
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// Also read every blob, authenticating it and checking its SHA-256.
    pub deep: bool,
    /// Fix what is safe to fix (see the module doc).
    pub repair: bool,
    /// Told the blobs read so far by a deep verify, of all.
    pub progress: Option<Progress>,
}

/// What [`Store::verify`] found (and fixed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct StoreVerifyReport {
    /// Whether every blob was read.
    pub deep: bool,
    /// Whether repairs were made.
    pub repair: bool,
    /// Records checked.
    pub users: u64,
    /// Sessions checked.
    pub sessions: u64,
    /// File records checked.
    pub files: u64,
    /// Blob rows checked.
    pub blobs: u64,
    /// Index entries checked.
    pub index_entries: u64,
    /// Blobs read and authenticated (deep).
    pub blobs_read: u64,
    /// Every problem found, each saying whether it was repaired.
    pub problems: Vec<Problem>,
    /// How long it took, in milliseconds.
    pub took_ms: u64,
}

impl StoreVerifyReport {
    /// True when nothing is wrong (any more): every problem found was
    /// repaired.
    pub fn is_clean(&self) -> bool {
        self.problems.iter().all(|p| p.repaired)
    }
}

impl Store {
    /// Checks the whole store (see [`VerifyOptions`]) and returns every
    /// problem found, with its ids.
    ///
    /// ```
    /// # use bharatvoice_store::*;
    /// # #[tokio::main] async fn main() -> Result<(), Error> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// let store = Store::open(Config::new(dir.path())).await?;
    /// let report = store.verify(VerifyOptions { deep: true, ..Default::default() }).await?;
    /// assert!(report.is_clean(), "{:?}", report.problems);
    /// # Ok(()) }
    /// ```
    #[tracing::instrument(skip_all, name = "verify", fields(deep = options.deep, repair = options.repair))]
    pub async fn verify(&self, options: VerifyOptions) -> Result<StoreVerifyReport, Error> {
        crate::telemetry::observe(
            &self.db().telemetry,
            crate::telemetry::op_key!("store.verify"),
            async {
                let t0 = std::time::Instant::now();
                let (scan, mut problems, blobs_read) = self.verify_pass(&options, true).await?;
                if options.repair && !problems.is_empty() {
                    self.repair(&problems).await?;
                    // The second pass skips redb's check: it holds the writer, and
                    // a failure of it is never counted as repaired anyway.
                    let quick = VerifyOptions::default();
                    let (_, after, _) = self.verify_pass(&quick, false).await?;
                    let left: BTreeSet<(ProblemKind, String)> =
                        after.into_iter().map(|p| (p.kind, p.id)).collect();
                    let damaged: BTreeSet<String> = self
                        .db()
                        .read(crate::db::lifecycle::damaged)?
                        .into_iter()
                        .map(|(a, _)| format!("blob {a}"))
                        .collect();
                    for p in &mut problems {
                        // A damaged blob is only found again by a deep pass.
                        p.repaired = p.kind != ProblemKind::DamagedBlob
                            && p.kind != ProblemKind::DatabaseIntegrity
                            && !left.contains(&(p.kind, p.id.clone()));
                        // A lost file cannot come back; its records are marked.
                        if p.kind == ProblemKind::MissingBlobFile && damaged.contains(&p.id) {
                            p.repaired = true;
                            p.detail
                                .push_str("; marked damaged (reads of its files say so)");
                        }
                    }
                }
                let report = StoreVerifyReport {
                    deep: options.deep,
                    repair: options.repair,
                    users: scan.users,
                    sessions: scan.sessions,
                    files: scan.files,
                    blobs: scan.blobs,
                    index_entries: scan.index_entries,
                    blobs_read,
                    problems,
                    took_ms: u64::try_from(t0.elapsed().as_millis()).unwrap_or(u64::MAX),
                };
                tracing::info!(
                    problems = report.problems.len(),
                    clean = report.is_clean(),
                    "verified"
                );
                Ok(report)
            },
        )
        .await
    }

    /// One pass of every check (redb's own only with `engine_check`): the
    /// scan, its problems, blobs read.
    async fn verify_pass(
        &self,
        options: &VerifyOptions,
        engine_check: bool,
    ) -> Result<(MetaScan, Vec<Problem>, u64), Error> {
        let mut problems = Vec::new();
        if engine_check && !self.is_read_only() && !self.db().check_integrity().await? {
            problems.push(Problem::new(
                ProblemKind::DatabaseIntegrity,
                "store.redb",
                "redb's integrity check failed (it repaired what it could)",
            ));
        }
        let mut scan = self.db().scan(crate::db::verify::scan).await?;
        problems.append(&mut scan.problems);
        problems.extend(self.check_blob_files().await?);
        let mut read = 0;
        if options.deep {
            let total = scan.blobs;
            let mut done = 0;
            let mut after = None;
            loop {
                let batch = self.db().read(|t| blob_batch(t, after, BATCH))?;
                after = batch.last().map(|b| b.0);
                for (address, file) in &batch {
                    done += 1;
                    if let Some(file) = file {
                        read += self.read_back(*address, *file, &mut problems).await?;
                    }
                    if let Some(p) = &options.progress {
                        p.tell(done.min(total), total);
                    }
                }
                if batch.len() < BATCH {
                    break;
                }
            }
        }
        Ok((scan, problems, read))
    }

    /// Reads `address` back through `file`: 1 if it was read (whole or
    /// found damaged), 0 if the file went since.
    async fn read_back(
        &self,
        address: BlobAddress,
        file: FileId,
        problems: &mut Vec<Problem>,
    ) -> Result<u64, Error> {
        // The record as it is now (live or in the trash).
        let Some(record) = self.db().read(|txn| crate::db::files::get(txn, file))? else {
            return Ok(0);
        };
        match self.files().verify_record(&record).await {
            Ok(_) => Ok(1),
            Err(e @ (Error::Integrity { .. } | Error::Corrupt { .. })) => {
                problems.push(Problem::new(
                    ProblemKind::DamagedBlob,
                    format!("blob {address}"),
                    format!("read through file {file}: {e}"),
                ));
                Ok(1)
            }
            // A file purged or erased since the snapshot.
            Err(Error::NotFound { .. } | Error::MissingKey { .. }) => Ok(0),
            // Already reported as a missing file.
            Err(Error::Io { .. }) => Ok(0),
            Err(e) => Err(e),
        }
    }

    /// Blob rows without files, and files without rows, a batch at a time
    /// (nothing is kept per blob). A row found without its file is looked
    /// up again before it is reported: the purge removes a row, then its
    /// file, and may have done both since the batch was read.
    async fn check_blob_files(&self) -> Result<Vec<Problem>, Error> {
        let backend = std::sync::Arc::clone(&self.blob_store().backend);
        let mut problems = Vec::new();
        let mut after = None;
        loop {
            let batch = self.db().read(|t| blob_batch(t, after, BATCH))?;
            after = batch.last().map(|b| b.0);
            let addresses: Vec<BlobAddress> = batch.iter().map(|b| b.0).collect();
            let (b, list) = (std::sync::Arc::clone(&backend), addresses.clone());
            let present: Vec<bool> = tokio::task::spawn_blocking(move || {
                list.iter()
                    .map(|a| b.exists(*a))
                    .collect::<Result<_, Error>>()
            })
            .await
            .map_err(|e| Error::join("checking blob files", e))??;
            let missing: Vec<BlobAddress> = addresses
                .iter()
                .zip(&present)
                .filter(|(_, here)| !**here)
                .map(|(a, _)| *a)
                .collect();
            let rows = self.db().read(|t| have_rows(t, &missing))?;
            for (address, _) in missing.iter().zip(rows).filter(|(_, row)| *row) {
                problems.push(Problem::new(
                    ProblemKind::MissingBlobFile,
                    format!("blob {address}"),
                    "its row is there, its file is not",
                ));
            }
            if batch.len() < BATCH {
                break;
            }
        }
        let cutoff = Timestamp::now().minus(self.config().lifecycle.orphan_grace);
        let mut after = None;
        loop {
            let b = std::sync::Arc::clone(&backend);
            let page = tokio::task::spawn_blocking(move || b.list(after, BATCH))
                .await
                .map_err(|e| Error::join("listing blob files", e))??;
            let old: Vec<_> = page.iter().filter(|b| b.modified < cutoff).collect();
            let addresses: Vec<BlobAddress> = old.iter().map(|b| b.address).collect();
            let rows = self.db().read(|t| have_rows(t, &addresses))?;
            for (b, _) in old.iter().zip(rows).filter(|(_, row)| !*row) {
                problems.push(Problem::new(
                    ProblemKind::OrphanBlobFile,
                    format!("blob {}", b.address),
                    format!("{} bytes that no row names", b.bytes),
                ));
            }
            if page.len() < BATCH {
                break;
            }
            after = page.last().map(|b| b.address);
        }
        Ok(problems)
    }

    /// Fixes what is safe (see the module doc).
    async fn repair(&self, problems: &[Problem]) -> Result<(), Error> {
        let derived = problems.iter().any(|p| {
            matches!(
                p.kind,
                ProblemKind::MissingIndexEntry
                    | ProblemKind::DanglingIndexEntry
                    | ProblemKind::WrongRefcount
                    | ProblemKind::WrongUsage
            )
        });
        if derived {
            self.db().write(crate::db::verify::rebuild_derived).await?;
            tracing::warn!("verify rebuilt the file indexes, reference counts and usage");
        }
        let files = problems.iter().any(|p| {
            matches!(
                p.kind,
                ProblemKind::OrphanBlobFile | ProblemKind::MissingBlobFile
            )
        });
        if files {
            self.lifecycle().run_to_end("orphans", false).await?;
        }
        Ok(())
    }
}
