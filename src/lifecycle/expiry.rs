//! The expiry job (files past their retention and sessions idle past
//! their expiry are soft-deleted) and the metric-retention job (samples
//! older than the window are dropped).

use crate::db::lifecycle::{
    expire_file, expire_session, expired_files, expired_sessions, old_metrics, remove_metrics,
};
use crate::error::Error;
use crate::jobs::JobOutcome;
use crate::lifecycle::Parts;

pub(crate) const JOB: &str = "expiry";
pub(crate) const METRICS_JOB: &str = "metric-retention";

/// One pass: plan from a snapshot, then soft-delete in one transaction
/// what is still due there.
pub(crate) async fn pass(parts: &Parts<'_>, dry_run: bool) -> Result<JobOutcome, Error> {
    let now = parts.db.now();
    let limit = if dry_run {
        usize::MAX
    } else {
        parts.config.batch
    };
    let (files, sessions) = parts
        .db
        .scan(move |txn| {
            Ok((
                expired_files(txn, now, limit)?,
                expired_sessions(txn, now, limit)?,
            ))
        })
        .await?;
    let mut out = JobOutcome::default();
    if dry_run {
        out.count("files_expired", files.len() as u64);
        out.count("sessions_expired", sessions.len() as u64);
        return Ok(out);
    }
    out.more = files.len() == limit || sessions.len() == limit;
    let planned = (files.len() + sessions.len()) as u64;
    let sealer = parts.db.sealer()?;
    let (f, s) = parts
        .db
        .write(move |txn| {
            let mut f = 0u64;
            for id in &files {
                f += u64::from(expire_file(txn, *id, now)?);
            }
            let mut s = 0u64;
            for id in &sessions {
                s += u64::from(expire_session(txn, &sealer, *id, now)?);
            }
            Ok((f, s))
        })
        .await?;
    out.count("files_expired", f);
    out.count("sessions_expired", s);
    out.skip("no_longer_due", planned - f - s);
    if f + s > 0 {
        tracing::info!(files = f, sessions = s, "expired");
    }
    Ok(out)
}

/// One pass of the metric retention: up to a batch of samples older than
/// the window, dropped in one transaction.
pub(crate) async fn metrics_pass(parts: &Parts<'_>, dry_run: bool) -> Result<JobOutcome, Error> {
    let cutoff = parts.db.now().minus(parts.config.metric_retention);
    let mut out = JobOutcome::default();
    if dry_run {
        let n = parts
            .db
            .scan(move |txn| Ok(old_metrics(txn, cutoff, usize::MAX)?.len() as u64))
            .await?;
        out.count("samples_dropped", n);
        return Ok(out);
    }
    let limit = parts.config.batch;
    let n = parts
        .db
        .write(move |txn| {
            let doomed = old_metrics(txn, cutoff, limit)?;
            remove_metrics(txn, &doomed)
        })
        .await?;
    out.count("samples_dropped", n);
    out.more = n == limit as u64;
    Ok(out)
}
