//! The steps of an erasure, each one small transaction (or one group of
//! blob files), re-reading what is left: an erasure cut off anywhere (a
//! crash, a close) resumes where it stood at the next pass of the
//! `erasure` job, which runs at open when one is unfinished.
//!
//! Order: the user's keys first (the crypto-shredding: from that commit
//! nothing of theirs opens), then file records with their blobs (row,
//! wrapped data key and file: retired under the address lock, then
//! overwritten and unlinked as the purge does), blob rows no file names,
//! sessions, grants others gave them, and last the account itself and its
//! cache entries (tag `user:<id>`). An audio erasure stops after the
//! blobs.

use std::time::Instant;

use crate::db::audit::{Entry, SYSTEM};
use crate::db::erasures as rows;
use crate::error::Error;
use crate::lifecycle::purge::{destroy_retired_of, retire_freed};
use crate::model::privacy::{ErasureScope, ErasureStage, PrivacyEvent};
use crate::privacy::{ErasureReport, Privacy};
use crate::types::UserId;

/// The audit entry of an erasure's step: `user.erase` or `audio.erase`
/// on `user:<id>`, by the system, with what happened as the outcome.
fn entry(now: crate::types::Timestamp, user: UserId, scope: ErasureScope, outcome: &str) -> Entry {
    let action = match scope {
        ErasureScope::User => "user.erase",
        ErasureScope::Audio => "audio.erase",
    };
    Entry::new(now, SYSTEM, action, format!("user:{user}")).outcome(outcome)
}

fn audited(
    now: crate::types::Timestamp,
    user: UserId,
    e: Option<&crate::Erasure>,
    outcome: &str,
) -> Vec<Entry> {
    e.map(|e| vec![entry(now, user, e.scope, outcome)])
        .unwrap_or_default()
}

/// Records one step removes.
pub(crate) const STEP: usize = 128;

/// What one step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// No erasure of this user is due (none, or its notice runs).
    NotDue,
    /// A step was made; more are left.
    More,
    /// The erasure is finished (now or before).
    Done,
}

impl Privacy<'_> {
    /// One step of the user's erasure, adding what it did to `report`.
    pub(crate) async fn step(
        &self,
        user: UserId,
        report: &mut ErasureReport,
    ) -> Result<Step, Error> {
        let Some(row) = self.db.read(|txn| rows::get(txn, user))? else {
            return Ok(Step::NotDue);
        };
        report.scope = row.scope;
        match row.stage {
            ErasureStage::Done => return Ok(Step::Done),
            ErasureStage::Scheduled => {
                let now = self.db.now();
                let done = self
                    .db
                    .write_audited(
                        move |txn| rows::destroy_keys(txn, user, now),
                        move |e| audited(now, user, e.as_ref(), "keys_destroyed"),
                    )
                    .await?;
                self.blobs.keyring.forget(user);
                self.db.forget_opened();
                return Ok(match done {
                    Some(e) => {
                        report.keys_destroyed_at = e.keys_destroyed_at;
                        tracing::info!(user = %user, scope = %e.scope, "erasure: keys destroyed");
                        Step::More
                    }
                    None => Step::NotDue,
                });
            }
            ErasureStage::KeysDestroyed => {}
        }
        report.keys_destroyed_at = row.keys_destroyed_at;
        // File records and their blobs.
        let files = self.db.read(|txn| rows::files_of(txn, user, STEP))?;
        if !files.is_empty() {
            let (n, freed) = self
                .db
                .write(move |txn| rows::erase_files(txn, user, &files))
                .await?;
            report.files += n;
            let doomed: Vec<_> = freed.iter().map(|(a, _)| *a).collect();
            self.destroy(&doomed, report).await?;
            return Ok(Step::More);
        }
        // Blob rows no file names (left by damage).
        let blobs = self.db.read(|txn| rows::blobs_of(txn, user, STEP))?;
        if !blobs.is_empty() {
            let doomed = self
                .db
                .write(move |txn| rows::drop_blobs(txn, user, &blobs))
                .await?;
            self.destroy(&doomed, report).await?;
            return Ok(Step::More);
        }
        if row.scope == ErasureScope::User {
            let sessions = self.db.read(|txn| rows::sessions_of(txn, user, STEP))?;
            if !sessions.is_empty() {
                report.sessions += self
                    .db
                    .write(move |txn| rows::erase_sessions(txn, user, &sessions))
                    .await?;
                return Ok(Step::More);
            }
            let grants = self
                .db
                .write(move |txn| rows::erase_grants_received(txn, user, STEP))
                .await?;
            report.grants_received += grants;
            if grants as usize == STEP {
                return Ok(Step::More);
            }
            // Entries cached under the user's tag are stale from here.
            self.cache.invalidate_tag(&format!("user:{user}")).await?;
        }
        let now = self.db.now();
        let scope = row.scope;
        self.db
            .write_audited(
                move |txn| rows::finish(txn, user, now),
                move |_| vec![entry(now, user, scope, "done")],
            )
            .await?;
        self.blobs.keyring.forget(user);
        self.db.forget_opened();
        tracing::info!(user = %user, scope = %row.scope, "erasure finished");
        let _ = self.db.settings.privacy_events.send(PrivacyEvent::Erased {
            user,
            scope: row.scope,
            files: report.files,
            sessions: report.sessions,
        });
        Ok(Step::Done)
    }

    /// Retires and destroys freed blob files.
    async fn destroy(
        &self,
        doomed: &[crate::types::BlobAddress],
        report: &mut ErasureReport,
    ) -> Result<(), Error> {
        let (stored_again, failed) = retire_freed(self.db, self.blobs, doomed).await?;
        report.blobs_destroyed += doomed.len() as u64 - stored_again - failed;
        destroy_retired_of(self.blobs).await?;
        Ok(())
    }

    /// Runs the user's erasure to its end (or until it is not due).
    pub(crate) async fn run(&self, user: UserId) -> Result<ErasureReport, Error> {
        let _one_at_a_time = self.lock.lock().await;
        self.run_locked(user).await
    }

    /// [`run`](Self::run) with the erasure lock held by the caller.
    pub(crate) async fn run_locked(&self, user: UserId) -> Result<ErasureReport, Error> {
        let started = Instant::now();
        let mut report = ErasureReport::new(user);
        loop {
            match self.step(user, &mut report).await? {
                Step::More => {}
                Step::NotDue => break,
                Step::Done => {
                    report.done = true;
                    break;
                }
            }
        }
        report.took_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        Ok(report)
    }
}
