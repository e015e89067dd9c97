//! The demo's lifecycle phase: on a scratch store of its own (so the
//! user's data directory keeps its data and its real clock), clips stored
//! with a one-day retention are expired and purged under a manual clock
//! moved by days, a crash's orphan blob is made and collected, and each
//! job's report is shown.

use std::time::Duration;

use bharatvoice_store::{
    Actor, Config, Error, JobReport, LifecycleConfig, ManualClock, NewUser, PutOptions, Store,
    Timestamp,
};
use serde::Serialize;

/// What the phase did.
#[derive(Debug, Serialize)]
pub(crate) struct LifecyclePhase {
    pub(crate) clips_kept: usize,
    pub(crate) clips_short_retention: usize,
    pub(crate) reports: Vec<JobReport>,
}

/// Runs the phase in a scratch directory under the system's temp dir,
/// removed afterwards.
pub(crate) async fn run(tag: &str) -> Result<LifecyclePhase, Error> {
    let scratch = std::env::temp_dir().join(format!("bvstore-demo-lifecycle-{tag}"));
    let result = phase(&scratch).await;
    if let Err(e) = std::fs::remove_dir_all(&scratch) {
        tracing::warn!(dir = %scratch.display(), error = %e, "could not remove the demo's scratch store");
    }
    result
}

async fn phase(dir: &std::path::Path) -> Result<LifecyclePhase, Error> {
    let clock = ManualClock::new(Timestamp::now());
    let config = Config::new(dir)
        .clock(clock.clone())
        .password_cost(8, 1)
        .lifecycle(LifecycleConfig::default().purge_grace(Duration::from_secs(86_400)));
    let store = Store::open(config).await?;
    let user = store
        .users()
        .create(
            NewUser::new("lifecycle_demo", "lifecycle@example.in")
                .consent(bharatvoice_store::ConsentKind::AudioStorage)
                // Reads are counted only for owners who allow analytics.
                .consent(bharatvoice_store::ConsentKind::Analytics),
        )
        .await?;
    let me = Actor::User(user.id);
    let (short, kept) = (12, 4);
    for i in 0..short + kept {
        let mut options = PutOptions::content_type("audio/wav");
        options.name = Some(format!("reminder-{i}.wav"));
        options.retention_days = Some(if i < short { 1 } else { 365 });
        let wav = super::demo_files::speech_wav(0.5, 1000 + i as u32);
        let f = store.files().put_bytes(me, user.id, &wav, options).await?;
        store.files().read(me, f.id).await?;
    }
    // A crash between writing a blob and committing its record leaves this.
    let orphan = dir
        .join("blobs")
        .join("0f")
        .join("0f")
        .join("0f".repeat(32));
    if let Some(parent) = orphan.parent() {
        std::fs::create_dir_all(parent).map_err(|e| Error::io("making the demo orphan", e))?;
    }
    std::fs::write(&orphan, b"sealed bytes no record names")
        .map_err(|e| Error::io("making the demo orphan", e))?;
    // Two days later the short clips are past their retention; three days
    // after that, past the purge's grace period too.
    clock.advance(Duration::from_secs(2 * 86_400));
    let mut reports = store.lifecycle().run_all(false).await?;
    clock.advance(Duration::from_secs(3 * 86_400));
    for job in ["purge", "orphans"] {
        reports.push(store.lifecycle().run_to_end(job, false).await?);
    }
    store.close().await;
    Ok(LifecyclePhase {
        clips_kept: kept,
        clips_short_retention: short,
        reports,
    })
}

/// The phase as text: one line per job pass with what it counted.
pub(crate) fn text(phase: &LifecyclePhase) -> String {
    let mut lines = vec![format!(
        "lifecycle:         {} clips with 1-day retention, {} kept for a year \
         (scratch store, manual clock)",
        phase.clips_short_retention, phase.clips_kept
    )];
    for r in &phase.reports {
        let counts: Vec<String> = r
            .counts
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(w, n)| format!("{} {n}", w.replace('_', " ")))
            .collect();
        lines.push(format!(
            "  {:<17}{}",
            r.job,
            if counts.is_empty() {
                "nothing to do".to_string()
            } else {
                counts.join(", ")
            }
        ));
    }
    lines.join("\n")
}
