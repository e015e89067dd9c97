//! The demo's operations phases, on the user's own store: a backup into a
//! directory beside the data directory (a second run of the demo adds a
//! generation and copies only the new blobs; three are kept), a deep
//! verify of everything, and the store's health. Both phases drive their
//! bars from the library's progress callbacks.

use std::path::{Path, PathBuf};

use bharatvoice_store::{BackupOptions, Error, HealthStatus, Store, VerifyOptions};
use serde::Serialize;

use super::demo_phase::{Phases, templates};

/// What the phases did.
#[derive(Debug, Serialize)]
pub(crate) struct OpsPhase {
    pub(crate) backup_dir: PathBuf,
    pub(crate) generation: u64,
    pub(crate) blobs: u64,
    pub(crate) blob_bytes_written: u64,
    pub(crate) blob_bytes_skipped: u64,
    pub(crate) backup_seconds: f64,
    pub(crate) verified_blobs: u64,
    pub(crate) problems: usize,
    pub(crate) verify_seconds: f64,
    pub(crate) health: HealthStatus,
    /// The parts that are not healthy, each as `part: what its probe saw`.
    pub(crate) health_notes: Vec<String>,
}

/// `bharatvoice-data` backs up into `bharatvoice-data-backups` beside it.
pub(crate) fn backup_dir(data_dir: &Path) -> PathBuf {
    let name = data_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "bharatvoice-data".into());
    data_dir
        .parent()
        .unwrap_or(Path::new("."))
        .join(format!("{name}-backups"))
}

/// Runs the backup and the deep verify, each a phase with its row, then
/// asks the store's health.
pub(crate) async fn run(store: &Store, phases: &mut Phases<'_>) -> Result<OpsPhase, Error> {
    let dir = backup_dir(&store.config().data_dir);
    let phase = phases.start("backup", templates::BYTES, 0);
    let options = BackupOptions {
        keep: Some(3),
        progress: phase.bar().progress(),
        ..Default::default()
    };
    let backup = store.backup(&dir, options).await?;
    let written = backup.bytes_copied;
    let skipped = backup.bytes_skipped + backup.bytes_linked;
    let detail = format!(
        "generation {}, {} blobs, {}",
        backup.generation,
        super::demo_summary::grouped(backup.blobs),
        super::human::size(written + skipped)
    );
    let backup_seconds = phases
        .end(phase, written + skipped, "bytes", detail)
        .seconds;
    let phase = phases.start("verify --deep", templates::BLOBS, 0);
    let verify = store
        .verify(VerifyOptions {
            deep: true,
            progress: phase.bar().progress(),
            ..Default::default()
        })
        .await?;
    let detail = format!(
        "{} blobs read, {} problem(s)",
        super::demo_summary::grouped(verify.blobs_read),
        verify.problems.len()
    );
    let verify_seconds = phases
        .end(phase, verify.blobs_read, "blobs", detail)
        .seconds;
    let health = store.health().await;
    let health_notes = health
        .parts
        .iter()
        .filter(|p| p.status != HealthStatus::Healthy)
        .map(|p| format!("{}: {}", p.part, p.detail))
        .collect();
    let ops = OpsPhase {
        backup_dir: dir,
        generation: backup.generation,
        blobs: backup.blobs,
        blob_bytes_written: written,
        blob_bytes_skipped: skipped,
        backup_seconds,
        verified_blobs: verify.blobs_read,
        problems: verify.problems.len(),
        verify_seconds,
        health: health.status,
        health_notes,
    };
    Ok(ops)
}
