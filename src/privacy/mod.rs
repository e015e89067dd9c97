//! Privacy: consent and erasure, so that an application storing the
//! voices of people in India can honour the Digital Personal Data
//! Protection Act 2023: consent before processing (s.6), withdrawal as
//! easy as giving it, and erasure on withdrawal or request (s.8(7), s.12).
//!
//! * **The consent gate.** With [`PrivacyConfig::require_consent`] on
//!   (the default) a put for a user without audio-storage consent is
//!   [`Error::ConsentRequired`], checked before anything is streamed and
//!   again in the put's commit transaction (a withdrawal may commit while
//!   the bytes stream).
//! * **Withdrawal.** Withdrawing audio-storage consent
//!   ([`Profiles::set_consent`](crate::Profiles::set_consent)) schedules
//!   the erasure of the user's audio after
//!   [`PrivacyConfig::consent_notice`] (0, at once, by default), in the
//!   same transaction; giving it back before then cancels it.
//! * **Erasure** ([`Privacy::erase_user`], and the `erasure` job for the
//!   scheduled ones): the user's key row goes first, in one transaction
//!   (crypto-shredding: from that commit, every blob of theirs is
//!   unreadable even with the master key), then their records, in small
//!   steps that resume after a crash (`erase`). What remains of an erased
//!   user is their id in the audit log and the erasure record.
//! * **Events** ([`Privacy::subscribe`]): consent changes, erasures
//!   scheduled, cancelled and finished, sent after they commit.
//! * **Access** (s.11): [`Privacy::summary`] says what the store holds
//!   about a user; [`Privacy::export_user`] writes all of it, decrypted,
//!   to a directory or a `.tar.zst` archive.

pub(crate) mod config;
mod erase;
#[cfg(test)]
mod erase_tests;
mod export;
mod export_sink;
pub(crate) mod region;
mod summary;

use serde::Serialize;
use tracing::instrument;

use crate::blob::BlobStore;
use crate::cache::CacheCore;
use crate::db::Db;
use crate::error::Error;
use crate::jobs::JobOutcome;
use crate::model::privacy::{Erasure, ErasureScope, ErasureStage, PrivacyEvent};
use crate::types::{Timestamp, UserId};

pub use config::PrivacyConfig;
pub use erase::Step as ErasureStep;
pub use export::ExportReport;
pub use summary::{
    ConsentSummary, FileCounts, GrantCounts, ProfileSummary, SessionCounts, TypeCount, UserSummary,
};

/// The job that runs due erasures and resumes cut-off ones.
pub(crate) const JOB: &str = "erasure";

/// Consent and erasure; from [`Store::privacy`](crate::Store::privacy).
///
/// ```
/// # use bharatvoice_store::*;
/// # #[tokio::main] async fn main() -> Result<(), Error> {
/// # let dir = tempfile::tempdir().unwrap();
/// # let store = Store::open(Config::new(dir.path())).await?;
/// let user = store.users().create(NewUser::new("kiran", "kiran@example.in")).await?;
/// let me = Actor::User(user.id);
/// let refused = store.files().put_bytes(me, user.id, b"RIFF", PutOptions::content_type("audio/wav")).await;
/// assert!(matches!(refused, Err(Error::ConsentRequired { .. })));
/// store.profiles().set_consent(user.id, ConsentKind::AudioStorage, true).await?;
/// let file = store.files().put_bytes(me, user.id, b"RIFF", PutOptions::content_type("audio/wav")).await?;
/// let report = store.privacy().erase_user(user.id).await?;
/// assert_eq!(report.files, 1);
/// assert!(store.users().get(user.id).is_err());
/// # Ok(()) }
/// ```
pub struct Privacy<'a> {
    pub(crate) db: &'a Db,
    pub(crate) blobs: &'a BlobStore,
    pub(crate) cache: &'a CacheCore,
    /// One erasure runs at a time (the job and a caller's may meet).
    pub(crate) lock: &'a tokio::sync::Mutex<()>,
    /// The store's data region, for summaries.
    pub(crate) region: Option<&'a str>,
}

/// What an erasure did (in this call: an erasure resumed after a crash
/// counts only what was left).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ErasureReport {
    /// Whose data.
    pub user: UserId,
    /// What was erased.
    pub scope: ErasureScope,
    /// Whether it is finished.
    pub done: bool,
    /// Whether it had finished before this call (nothing was done).
    pub already_done: bool,
    /// When the user's keys were destroyed: from then on nothing of
    /// theirs could be decrypted.
    pub keys_destroyed_at: Option<Timestamp>,
    /// File records removed.
    pub files: u64,
    /// Blob files destroyed.
    pub blobs_destroyed: u64,
    /// Sessions removed.
    pub sessions: u64,
    /// Grants others had given the user, removed.
    pub grants_received: u64,
    /// How long this call took, in microseconds.
    pub took_us: u64,
}

impl ErasureReport {
    fn new(user: UserId) -> Self {
        ErasureReport {
            user,
            scope: ErasureScope::User,
            done: false,
            already_done: false,
            keys_destroyed_at: None,
            files: 0,
            blobs_destroyed: 0,
            sessions: 0,
            grants_received: 0,
            took_us: 0,
        }
    }
}

impl Privacy<'_> {
    /// Erases everything the store holds about `user`: their keys first
    /// (every blob of theirs is unreadable from that commit on, even with
    /// the master key), then their files and blobs, sessions, grants they
    /// gave and were given, password hash, profile, account and cache
    /// entries. What remains is the erasure record (their id and times)
    /// and the audit trail. Idempotent: erasing an erased user reports
    /// `already_done`. A user the store has no trace of is `NotFound`.
    #[instrument(skip(self, user), fields(user = %user))]
    pub async fn erase_user(&self, user: UserId) -> Result<ErasureReport, Error> {
        crate::telemetry::observe(
            &self.db.telemetry,
            crate::telemetry::op_key!("privacy.erase_user"),
            async {
                // Held from the request on, so that the job (woken by the request)
                // does not run this erasure under the caller.
                let _one_at_a_time = self.lock.lock().await;
                let now = self.db.now();
                let (row, new) = self
                    .db
                    .write(move |txn| crate::db::erasures::request_user(txn, user, now))
                    .await?;
                if row.stage == ErasureStage::Done {
                    let mut r = ErasureReport::new(user);
                    r.done = true;
                    r.already_done = true;
                    r.keys_destroyed_at = row.keys_destroyed_at;
                    return Ok(r);
                }
                if new {
                    let _ = self
                        .db
                        .settings
                        .privacy_events
                        .send(PrivacyEvent::ErasureScheduled {
                            user,
                            scope: ErasureScope::User,
                            due: row.due,
                        });
                }
                self.run_locked(user).await
            },
        )
        .await
    }

    /// The erasure record of a user, if any (scheduled, running or done).
    pub fn erasure(&self, user: UserId) -> Result<Option<Erasure>, Error> {
        crate::telemetry::observe_sync(
            &self.db.telemetry,
            crate::telemetry::op_key!("privacy.erasure"),
            || self.db.read(|txn| crate::db::erasures::get(txn, user)),
        )
    }

    /// Every erasure record.
    pub fn erasures(&self) -> Result<Vec<Erasure>, Error> {
        crate::telemetry::observe_sync(
            &self.db.telemetry,
            crate::telemetry::op_key!("privacy.erasures"),
            || self.db.read(crate::db::erasures::all),
        )
    }

    /// Runs every erasure that is due (or was cut off) to its end: what the
    /// `erasure` job does on its interval.
    pub async fn run_due(&self) -> Result<Vec<ErasureReport>, Error> {
        crate::telemetry::observe(
            &self.db.telemetry,
            crate::telemetry::op_key!("privacy.run_due"),
            async {
                let now = self.db.now();
                let due: Vec<UserId> = self
                    .erasures()?
                    .into_iter()
                    .filter(|e| e.stage != ErasureStage::Done && e.due <= now)
                    .map(|e| e.user)
                    .collect();
                let mut out = Vec::with_capacity(due.len());
                for user in due {
                    out.push(self.run(user).await?);
                }
                Ok(out)
            },
        )
        .await
    }

    /// Privacy events from now on (consent changes, erasures scheduled,
    /// cancelled and finished). A receiver that falls more than 256
    /// events behind loses the oldest (`RecvError::Lagged`).
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<PrivacyEvent> {
        self.db.settings.privacy_events.subscribe()
    }

    /// One step of the user's erasure (for tests that cut an erasure off
    /// between steps, as a crash would).
    #[doc(hidden)]
    pub async fn erase_step(&self, user: UserId) -> Result<ErasureStep, Error> {
        crate::telemetry::observe(
            &self.db.telemetry,
            crate::telemetry::op_key!("privacy.erase_step"),
            async {
                let _one_at_a_time = self.lock.lock().await;
                let mut report = ErasureReport::new(user);
                self.step(user, &mut report).await
            },
        )
        .await
    }

    /// Requests the user's erasure without running it (for tests that cut
    /// an erasure off before its first step).
    #[doc(hidden)]
    pub async fn request_erasure(&self, user: UserId) -> Result<(), Error> {
        crate::telemetry::observe(
            &self.db.telemetry,
            crate::telemetry::op_key!("privacy.request_erasure"),
            async {
                let now = self.db.now();
                self.db
                    .write(move |txn| crate::db::erasures::request_user(txn, user, now))
                    .await
                    .map(drop)
            },
        )
        .await
    }

    /// The `erasure` job's pass.
    pub(crate) async fn pass(&self) -> Result<JobOutcome, Error> {
        let mut out = JobOutcome::default();
        for what in ["erasures_finished", "files", "blobs_destroyed", "sessions"] {
            out.count(what, 0);
        }
        for r in self.run_due().await? {
            out.count("erasures_finished", u64::from(r.done));
            out.count("files", r.files);
            out.count("blobs_destroyed", r.blobs_destroyed);
            out.count("sessions", r.sessions);
        }
        Ok(out)
    }
}

/// Whether the store holds an erasure that is due now (or was cut off).
pub(crate) fn any_due(db: &Db) -> Result<bool, Error> {
    let now = db.now();
    Ok(db
        .read(crate::db::erasures::all)?
        .iter()
        .any(|e| e.stage != ErasureStage::Done && e.due <= now))
}
