//! The demo's privacy phase, on this run's demo users: one withdraws
//! audio-storage consent (their recordings are erased at once, keys
//! first), another asks to be erased (everything of theirs goes), a third
//! is exported to a `.tar.zst` in the system's temporary directory (read
//! back for its size, then removed), the audit chain is verified, and the
//! events the application would see are shown.

use bharatvoice_store::{
    Actor, AuditReport, ConsentKind, ErasureReport, Error, ExportReport, PrivacyEvent, Store,
    UserId,
};
use serde::Serialize;

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

/// Runs the phase on `consenting` (this run's users with audio consent).
pub(crate) async fn run(store: &Store, consenting: &[UserId]) -> Result<PrivacyPhase, Error> {
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
    if let Some(&u) = consenting.get(1) {
        phase.erased = Some(store.privacy().erase_user(u).await?);
    }
    if let Some(&u) = consenting.get(2) {
        phase.exported = Some(export(store, u).await?);
    }
    phase.audit = Some(store.audit().verify().await?);
    while let Ok(e) = rx.try_recv() {
        phase.events.push(e);
    }
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

/// The phase as text.
pub(crate) fn text(p: &PrivacyPhase) -> String {
    let mut lines = Vec::new();
    if let Some((u, had)) = p.withdrew {
        lines.push(format!(
            "privacy:           user {u} withdrew audio-storage consent: \
             their {had} recording(s) erased, keys first"
        ));
    }
    if let Some(r) = &p.erased {
        lines.push(format!(
            "                   user {} erased on request: {} file(s), {} blob file(s), \
             {} session(s); only the erasure record and audit trail keep their id",
            r.user, r.files, r.blobs_destroyed, r.sessions
        ));
    }
    if let Some(x) = &p.exported {
        lines.push(format!(
            "                   user {} exported: {} file(s), {} session(s), {} entries, \
             {} bytes in a .tar.zst with a SHA-256 manifest (then removed)",
            x.user, x.files, x.sessions, x.entries, x.bytes
        ));
    }
    if let Some(a) = &p.audit {
        let verdict = match &a.problem {
            None => "intact".to_string(),
            Some(problem) => format!("PROBLEM at entry {}: {:?}", problem.seq, problem.kind),
        };
        lines.push(format!(
            "                   audit chain: {} entries verified, {verdict}",
            a.checked
        ));
    }
    let kinds: Vec<&str> = p
        .events
        .iter()
        .map(|e| match e {
            PrivacyEvent::ConsentChanged { .. } => "consent changed",
            PrivacyEvent::ErasureScheduled { .. } => "erasure scheduled",
            PrivacyEvent::ErasureCancelled { .. } => "erasure cancelled",
            PrivacyEvent::Erased { .. } => "erased",
            _ => "other",
        })
        .collect();
    lines.push(format!(
        "                   events seen: {}",
        kinds.join(", ")
    ));
    lines.join("\n")
}
