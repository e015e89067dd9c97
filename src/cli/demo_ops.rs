//! The demo's operations phase, on the user's own store: a backup into a
//! directory beside the data directory (a second run of the demo adds a
//! generation and copies only the new blobs; three are kept), a deep
//! verify of everything, and the store's health.

use std::path::{Path, PathBuf};
use std::time::Instant;

use bharatvoice_store::{BackupOptions, Error, HealthStatus, Store, VerifyOptions};
use serde::Serialize;

/// What the phase did.
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
}

/// `bharatvoice-data` backs up into `bharatvoice-data-backups` beside it.
fn backup_dir(data_dir: &Path) -> PathBuf {
    let name = data_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "bharatvoice-data".into());
    data_dir
        .parent()
        .unwrap_or(Path::new("."))
        .join(format!("{name}-backups"))
}

pub(crate) async fn run(store: &Store) -> Result<OpsPhase, Error> {
    let dir = backup_dir(&store.config().data_dir);
    let t0 = Instant::now();
    let options = BackupOptions {
        keep: Some(3),
        ..Default::default()
    };
    let backup = store.backup(&dir, options).await?;
    let backup_seconds = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    let verify = store
        .verify(VerifyOptions {
            deep: true,
            ..Default::default()
        })
        .await?;
    let verify_seconds = t1.elapsed().as_secs_f64();
    let health = store.health().await.status;
    Ok(OpsPhase {
        backup_dir: dir,
        generation: backup.generation,
        blobs: backup.blobs,
        blob_bytes_written: backup.bytes_copied,
        blob_bytes_skipped: backup.bytes_skipped + backup.bytes_linked,
        backup_seconds,
        verified_blobs: verify.blobs_read,
        problems: verify.problems.len(),
        verify_seconds,
        health,
    })
}

pub(crate) fn text(p: &OpsPhase) -> String {
    format!(
        "backup:            generation {g} in {dir}: {b} blobs, {w:.1} MB copied, {s:.1} MB linked or already there, {bs:.2} s\n\
         verify --deep:     {v} blobs read and authenticated, {pr} problem(s), {vs:.2} s\n\
         health:            {h}",
        g = p.generation,
        dir = super::clean_path(&p.backup_dir),
        b = p.blobs,
        w = p.blob_bytes_written as f64 / 1e6,
        s = p.blob_bytes_skipped as f64 / 1e6,
        bs = p.backup_seconds,
        v = p.verified_blobs,
        pr = p.problems,
        vs = p.verify_seconds,
        h = p.health,
    )
}
