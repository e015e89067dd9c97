//! The demo's lifecycle phase: on a scratch store of its own (so the
//! user's data directory keeps its data and its real clock), clips stored
//! with a one-day retention are expired and purged under a manual clock
//! moved by days, a crash's orphan blob is made and collected, and what
//! each job did is summed up.

use std::time::Duration;

use bharatvoice_store::{
    Actor, Config, Error, JobReport, LifecycleConfig, ManualClock, NewUser, PutOptions, Store,
    Timestamp,
};
use serde::Serialize;

use super::demo_phase::{Phases, templates};
use super::progress::Bar;

/// Clips stored with a one-day retention.
const SHORT: usize = 12;
/// Clips kept for a year.
const KEPT: usize = 4;

/// The phase's steps, for its bar: each clip, then three job passes.
const STEPS: usize = SHORT + KEPT + 3;

/// What the phase did.
#[derive(Debug, Serialize)]
pub(crate) struct LifecyclePhase {
    pub(crate) clips_kept: usize,
    pub(crate) clips_short_retention: usize,
    pub(crate) reports: Vec<JobReport>,
}

/// Runs the phase in a scratch directory under the system's temp dir,
/// removed afterwards; the bar counts [`STEPS`].
pub(crate) async fn run(tag: &str, phases: &mut Phases<'_>) -> Result<LifecyclePhase, Error> {
    let phase = phases.start("lifecycle", templates::STEPS, STEPS);
    let scratch = std::env::temp_dir().join(format!("bvstore-demo-lifecycle-{tag}"));
    let result = on_scratch(&scratch, phase.bar()).await;
    if let Err(e) = std::fs::remove_dir_all(&scratch) {
        tracing::warn!(dir = %scratch.display(), error = %e, "could not remove the demo's scratch store");
    }
    let done = result?;
    let passes = done.reports.len();
    let detail = format!("{} clips, {passes} job passes", SHORT + KEPT);
    phases.end(phase, passes as u64, "job passes", detail);
    Ok(done)
}

async fn on_scratch(dir: &std::path::Path, bar: &Bar) -> Result<LifecyclePhase, Error> {
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
    for i in 0..SHORT + KEPT {
        let mut options = PutOptions::content_type("audio/wav");
        options.name = Some(format!("reminder-{i}.wav"));
        options.retention_days = Some(if i < SHORT { 1 } else { 365 });
        let wav = super::demo_files::speech_wav(0.5, 1000 + i as u32);
        let f = store.files().put_bytes(me, user.id, &wav, options).await?;
        store.files().read(me, f.id).await?;
        bar.set(i as u64 + 1);
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
    let mut step = SHORT + KEPT + 1;
    bar.set(step as u64);
    clock.advance(Duration::from_secs(3 * 86_400));
    for job in ["purge", "orphans"] {
        reports.push(store.lifecycle().run_to_end(job, false).await?);
        step += 1;
        bar.set(step as u64);
    }
    store.close().await;
    Ok(LifecyclePhase {
        clips_kept: KEPT,
        clips_short_retention: SHORT,
        reports,
    })
}

/// What the phase's job passes did, summed by job and count, in the order
/// the jobs first report them (`expiry: files expired 12`).
pub(crate) fn work_done(phase: &LifecyclePhase) -> Vec<String> {
    let mut jobs: Vec<(&str, Vec<(&str, u64)>)> = Vec::new();
    for r in &phase.reports {
        let at = match jobs.iter().position(|(job, _)| *job == r.job) {
            Some(at) => at,
            None => {
                jobs.push((r.job, Vec::new()));
                jobs.len() - 1
            }
        };
        for (what, n) in r.counts.iter().filter(|(_, n)| *n > 0) {
            let counts = &mut jobs[at].1;
            match counts.iter_mut().find(|(w, _)| w == what) {
                Some((_, total)) => *total += n,
                None => counts.push((what, *n)),
            }
        }
    }
    jobs.into_iter()
        .filter(|(_, counts)| !counts.is_empty())
        .map(|(job, counts)| {
            let counts: Vec<String> = counts
                .iter()
                .map(|(w, n)| match w.starts_with("bytes") {
                    true => format!("{} {}", w.replace('_', " "), super::human::size(*n)),
                    false => format!("{} {n}", w.replace('_', " ")),
                })
                .collect();
            format!("{job}: {}", counts.join(", "))
        })
        .collect()
}
