//! The demo's privacy phase, on this run's demo users: one withdraws
//! audio-storage consent (their recordings are erased at once, keys
//! first), another asks to be erased (everything of theirs goes), a third
//! is exported to a `.tar.zst` in the system's temporary directory (read
//! back for its size, then removed), the audit chain is verified, and the
//! events the application would see are collected (`--json` lists them).

use bharatvoice_store::{
    Actor, AuditReport, ConsentKind, ErasureReport, Error, ExportReport, PrivacyEvent, Store,
    UserId,
};
use serde::Serialize;

use super::demo_phase::{Phases, templates};

/// The phase's steps, for its bar: withdrawal, erasure, export, audit.
const STEPS: usize = 4;

/// What the phase did.
#[derive(Debug, Serialize)]
pub(crate) struct PrivacyPhase {
    /// The user who withdrew audio-storage consent, and the files they
    /// had before.
    pub(crate) withdrew: Option<(UserId, usize)>,
    /// The erasure of the user who asked to be erased.
    pub(crate) erased: Option<ErasureReport>,
    /// The export of a third user.
    pub(crate) exported: Option<ExportReport>,
    /// The audit chain's verification after all of it.
    pub(crate) audit: Option<AuditReport>,
    /// The events a subscriber saw.
    pub(crate) events: Vec<PrivacyEvent>,
}

async fn file_count(store: &Store, user: UserId) -> Result<usize, Error> {
    let page = store
        .files()
        .list(
            Actor::System,
            user,
            Default::default(),
            bharatvoice_store::ListOptions::first(100),
        )
        .await?;
    Ok(page.items.len())
}

/// Runs the phase on `consenting` (this run's users with audio consent);
/// the bar counts [`STEPS`].
pub(crate) async fn run(
    store: &Store,
    consenting: &[UserId],
    phases: &mut Phases<'_>,
) -> Result<PrivacyPhase, Error> {
    let started = phases.start("privacy", templates::STEPS, STEPS);
    let bar = started.bar();
    let mut rx = store.privacy().subscribe();
    let mut phase = PrivacyPhase {
        withdrew: None,
        erased: None,
        exported: None,
        audit: None,
        events: Vec::new(),
    };
    if let Some(&u) = consenting.first() {
        let had = file_count(store, u).await?;
        store
            .profiles()
            .set_consent(u, ConsentKind::AudioStorage, false)
            .await?;
        // Due at once: run it now rather than wait for the job.
        store.privacy().run_due().await?;
        phase.withdrew = Some((u, had));
    }
    bar.set(1);
    if let Some(&u) = consenting.get(1) {
        phase.erased = Some(store.privacy().erase_user(u).await?);
    }
    bar.set(2);
    if let Some(&u) = consenting.get(2) {
        phase.exported = Some(export(store, u).await?);
    }
    bar.set(3);
    phase.audit = Some(store.audit().verify().await?);
    bar.set(4);
    while let Ok(e) = rx.try_recv() {
        phase.events.push(e);
    }
    phases.end(
        started,
        users_acted_on(&phase) as u64,
        "users",
        detail(&phase),
    );
    Ok(phase)
}

/// Exports `user` to a fresh archive in the temporary directory, then
/// removes it (the demo leaves nothing outside its data directory).
async fn export(store: &Store, user: UserId) -> Result<ExportReport, Error> {
    let dest = std::env::temp_dir().join(format!(
        "bvstore-demo-export-{}-{user}.tar.zst",
        std::process::id()
    ));
    let report = store.privacy().export_user(user, &dest).await?;
    let _ = tokio::fs::remove_file(&dest).await;
    Ok(report)
}

/// How many users the phase acted on (withdrew, erased, exported).
fn users_acted_on(p: &PrivacyPhase) -> usize {
    usize::from(p.withdrew.is_some())
        + usize::from(p.erased.is_some())
        + usize::from(p.exported.is_some())
}

/// What the phase did, for its row in the table.
fn detail(p: &PrivacyPhase) -> String {
    let done: Vec<&str> = [
        (p.withdrew.is_some(), "withdrew"),
        (p.erased.is_some(), "erased"),
        (p.exported.is_some(), "exported"),
    ]
    .into_iter()
    .filter_map(|(did, what)| did.then_some(what))
    .collect();
    match done.is_empty() {
        true => "audit chain only".to_string(),
        false => format!("{} users: {}", done.len(), done.join(", ")),
    }
}

/// The phase in a few lines, for under the summary table.
pub(crate) fn lines(p: &PrivacyPhase) -> Vec<String> {
    let mut lines = Vec::new();
    if let Some((_, had)) = p.withdrew {
        lines.push(format!(
            "a user withdrew audio-storage consent: their {had} recording(s) erased, keys first"
        ));
    }
    if let Some(r) = &p.erased {
        lines.push(format!(
            "a user asked to be erased: {} file(s) and {} session(s) erased",
            r.files, r.sessions
        ));
    }
    if let Some(x) = &p.exported {
        lines.push(format!(
            "a user was exported: {} file(s), {} session(s), a {} .tar.zst with a SHA-256 manifest",
            x.files,
            x.sessions,
            super::human::size(x.bytes)
        ));
    }
    if let Some(a) = &p.audit {
        let verdict = match &a.problem {
            None => "intact".to_string(),
            Some(problem) => format!("PROBLEM at entry {}: {:?}", problem.seq, problem.kind),
        };
        lines.push(format!(
            "audit chain: {} entries verified, {verdict}; {} privacy event(s) seen",
            super::demo_summary::grouped(a.checked),
            p.events.len()
        ));
    }
    lines
}
