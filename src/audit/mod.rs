//! The audit log as the rest of the crate and its users see it: what
//! operations record, the view [`Audit`] (verify, tail), and the two jobs
//! that keep it (`audit-reads`, `audit-retention`).
//!
//! The chain itself (format, MACs, head, anchor) is in `db::audit`; this
//! module holds what needs more than one transaction.
//!
//! # Recording from other modules
//!
//! Inside the write transaction of the operation, after it wrote:
//!
//! ```ignore
//! let audit = db.auditor();
//! db.write(move |txn| {
//!     erase_rows(txn, user)?;
//!     crate::audit::record(txn, &audit, Entry::new(now, actor, "user.erase", format!("user:{user}")))
//! }).await
//! ```
//!
//! Actions are `<thing>.<verb>` (`user.create`, `file.grant`,
//! `consent.withdraw`, `key.rotate_master`, `job.run`); the actor is
//! `user:<id>` for a request made through an [`Actor`](crate::Actor),
//! else [`SYSTEM`]; targets are ids (`user:<id>`, `file:<id>`,
//! `job:<name>`); outcomes are `ok`, `refused`, or a word naming what
//! happened. Never put a name, email, file name or secret in an entry.
//!
//! # Reads
//!
//! `file.stat`, `file.read` and range reads do not commit: they are noted
//! in memory ([`Auditor::note_read`]) and the `audit-reads` job appends
//! them every `AuditConfig::read_flush_interval` (10 s by default), and
//! at once when 4096 reads wait, as does
//! [`Store::close`](crate::Store::close). A crash loses the reads
//! noted since the last flush; past 65 536 pending reads, further reads
//! are only counted, and the flush appends one `audit.reads_dropped`
//! entry saying how many.

pub(crate) mod config;

use redb::WriteTransaction;

use crate::db::Db;
use crate::db::audit::{AuditEvent, PendingReads};
pub(crate) use crate::db::audit::{Auditor, Entry, SYSTEM};
use crate::db::audit_verify::AuditReport;
use crate::error::Error;
use crate::jobs::JobOutcome;
use crate::types::Timestamp;

/// The job that appends noted reads.
pub(crate) const READS_JOB: &str = "audit-reads";
/// The job that drops entries past the retention.
pub(crate) const RETENTION_JOB: &str = "audit-retention";

/// Appends `entry` in `txn` (see the module doc).
pub(crate) fn record(txn: &WriteTransaction, auditor: &Auditor, entry: Entry) -> Result<(), Error> {
    crate::db::audit::record(txn, auditor, entry)
}

/// Which entries [`Audit::tail`] returns.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AuditFilter {
    /// At most this many (the newest of those that match).
    pub limit: usize,
    /// Only entries whose actor or target is this user.
    pub user: Option<crate::UserId>,
    /// Only this action (`file.read`), or a family of them (`file.`).
    pub action: Option<String>,
    /// Only entries at or after this time.
    pub since: Option<Timestamp>,
}

impl Default for AuditFilter {
    fn default() -> Self {
        AuditFilter {
            limit: 20,
            user: None,
            action: None,
            since: None,
        }
    }
}

impl AuditFilter {
    /// The newest `n` entries.
    pub fn last(n: usize) -> Self {
        AuditFilter {
            limit: n,
            ..Default::default()
        }
    }

    fn keeps(&self, e: &AuditEvent) -> bool {
        let user = self.user.map(|u| format!("user:{u}"));
        user.is_none_or(|u| e.actor == u || e.target == u)
            && self
                .action
                .as_deref()
                .is_none_or(|a| e.action == a || (a.ends_with('.') && e.action.starts_with(a)))
            && self.since.is_none_or(|t| e.at >= t)
    }
}

/// The audit log; from [`Store::audit`](crate::Store::audit).
///
/// ```
/// # use bharatvoice_store::*;
/// # #[tokio::main] async fn main() -> Result<(), Error> {
/// # let dir = tempfile::tempdir().unwrap();
/// let store = Store::open(Config::new(dir.path())).await?;
/// let asha = store.users().create(NewUser::new("asha", "asha@example.in")).await?;
/// let last = store.audit().tail(AuditFilter::last(1)).await?;
/// assert_eq!(last[0].action, "user.create");
/// assert_eq!(last[0].target, format!("user:{}", asha.id));
/// assert!(store.audit().verify().await?.ok());
/// # Ok(()) }
/// ```
pub struct Audit<'a> {
    pub(crate) db: &'a Db,
}

impl Audit<'_> {
    /// Recomputes the whole chain and reports the first problem, if any.
    #[tracing::instrument(skip(self))]
    pub async fn verify(&self) -> Result<AuditReport, Error> {
        crate::telemetry::observe(
            &self.db.telemetry,
            crate::telemetry::op_key!("audit.verify"),
            async {
                let key = self.db.auditor().key()?;
                self.db
                    .scan(move |txn| crate::db::audit_verify::verify(txn, &key))
                    .await
            },
        )
        .await
    }

    /// The newest entries matching `filter`, newest last. Reads noted but
    /// not yet flushed are not included ([`flush_reads`](Self::flush_reads)).
    pub async fn tail(&self, filter: AuditFilter) -> Result<Vec<AuditEvent>, Error> {
        crate::telemetry::observe(
            &self.db.telemetry,
            crate::telemetry::op_key!("audit.tail"),
            async {
                self.db
                    .scan(move |txn| crate::db::audit::tail(txn, filter.limit, |e| filter.keeps(e)))
                    .await
            },
        )
        .await
    }

    /// Appends every noted read now.
    pub async fn flush_reads(&self) -> Result<u64, Error> {
        crate::telemetry::observe(
            &self.db.telemetry,
            crate::telemetry::op_key!("audit.flush_reads"),
            async {
                let mut total = 0;
                loop {
                    let out = flush_reads(self.db).await?;
                    total += out
                        .counts
                        .iter()
                        .find(|(what, _)| *what == "reads_appended")
                        .map_or(0, |(_, n)| *n);
                    if !out.more {
                        return Ok(total);
                    }
                }
            },
        )
        .await
    }
}

/// One pass of `audit-reads`: every noted read appended in one transaction.
pub(crate) async fn flush_reads(db: &Db) -> Result<JobOutcome, Error> {
    let mut out = JobOutcome::default();
    let auditor = db.auditor();
    let taken = auditor.take_reads();
    let n = taken.entries.len() as u64;
    if n == 0 && taken.overflow == 0 {
        out.count("reads_appended", 0);
        return Ok(out);
    }
    // Shared with the write, not copied: given back whole if it fails.
    let entries = std::sync::Arc::new(taken.entries);
    let overflow = taken.overflow;
    let now = db.now();
    let a = auditor.clone();
    let shared = std::sync::Arc::clone(&entries);
    let written = db
        .write(move |txn| {
            for r in shared.iter() {
                record(txn, &a, r.entry())?;
            }
            if overflow > 0 {
                let e = Entry::new(now, SYSTEM, "audit.reads_dropped", "audit:reads")
                    .outcome(overflow.to_string());
                record(txn, &a, e)?;
            }
            Ok(())
        })
        .await;
    match written {
        Ok(()) => {
            out.count("reads_appended", n);
            out.count("reads_dropped", overflow);
            Ok(out)
        }
        Err(e) => {
            auditor.give_back(PendingReads {
                entries: std::sync::Arc::try_unwrap(entries).unwrap_or_else(|a| a.to_vec()),
                overflow,
            });
            Err(e)
        }
    }
}

/// One pass of `audit-retention`: up to `batch` entries older than the
/// retention dropped from the front, the anchor moved.
pub(crate) async fn retention_pass(
    db: &Db,
    config: &config::AuditConfig,
    batch: usize,
    dry_run: bool,
) -> Result<JobOutcome, Error> {
    let mut out = JobOutcome::default();
    let cutoff = db.now().minus(config.retention);
    let key = db.auditor().key()?;
    if dry_run {
        let due = db
            .scan(move |txn| {
                crate::db::audit::tail(txn, usize::MAX, |e| e.at < cutoff).map(|v| v.len())
            })
            .await?;
        out.count("entries_dropped", due as u64);
        return Ok(out);
    }
    let (dropped, more) = db
        .write(move |txn| crate::db::audit_retention::drop_before(txn, &key, cutoff, batch))
        .await?;
    out.count("entries_dropped", dropped);
    out.more = more;
    Ok(out)
}
