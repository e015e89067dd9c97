//! Who may do what to a file.
//!
//! The owner may do everything; a user the file is granted to may read it
//! (stat, read, range, verify) but not change or re-grant it; the system
//! may do everything. Anyone else gets exactly the `NotFound` that an
//! unknown id gets — no existence oracle — and the refusal is written to
//! the audit log.

use crate::audit::Entry;
use crate::blob::Actor;
use crate::db::Db;
use crate::error::{Entity, Error};
use crate::model::file::AudioFile;
use crate::ratelimit::RateLimits;
use crate::types::FileId;

/// The kinds of operation, for the rules and the audit log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Read,
    Change,
}

/// What the actor is to a file.
fn relation(db: &Db, actor: Actor, file: &AudioFile) -> Result<Option<Op>, Error> {
    match actor {
        Actor::System => Ok(Some(Op::Change)),
        Actor::User(u) if u == file.owner => Ok(Some(Op::Change)),
        Actor::User(u) => db.read(|txn| {
            let granted = crate::db::grants::is_granted(txn, file.id, u)?;
            Ok(granted.then_some(Op::Read))
        }),
    }
}

/// Records a refusal in the audit log without waiting for its commit: a
/// refusal must answer in the time an unknown id does, or its timing would
/// tell the caller that the file exists. The record is queued before this
/// returns and committed durably with the next group commit (a crash in
/// that window loses it); a failure to record is logged, and the caller
/// still gets its refusal.
pub(crate) async fn record_refusal(db: &Db, actor: Actor, action: &'static str, target: String) {
    tracing::warn!(actor = %actor, action, target = %target, "refused");
    db.telemetry
        .anomalies
        .note(crate::telemetry::anomaly::Signal::Refusal);
    let entry = Entry::new(db.now(), actor.to_string(), action, target).outcome("refused");
    let auditor = db.auditor();
    if let Err(e) = db
        .write_detached("audit record", move |txn| {
            crate::audit::record(txn, &auditor, entry.clone())
        })
        .await
    {
        tracing::error!(error = %e, "could not record a refusal in the audit log");
    }
}

/// Loads a file the actor may `op`; `include_deleted` also finds
/// soft-deleted ones. The call first takes one token of the actor's
/// operations bucket.
pub(crate) async fn authorize(
    db: &Db,
    limits: &RateLimits,
    actor: Actor,
    id: FileId,
    op: Op,
    action: &'static str,
    include_deleted: bool,
) -> Result<AudioFile, Error> {
    limits.operation(actor)?;
    let file = db.read(|txn| crate::db::files::get(txn, id))?;
    let Some(file) = file.filter(|f| f.deleted_at.is_none() || include_deleted) else {
        return Err(Error::not_found(Entity::AudioFile, id));
    };
    match relation(db, actor, &file)? {
        Some(Op::Change) => Ok(file),
        Some(Op::Read) if op == Op::Read => Ok(file),
        Some(Op::Read) => {
            record_refusal(db, actor, action, format!("file:{id}")).await;
            Err(Error::PermissionDenied {
                actor: actor.to_string(),
                action,
                target: format!("file {id}"),
            })
        }
        None => {
            record_refusal(db, actor, action, format!("file:{id}")).await;
            Err(Error::not_found(Entity::AudioFile, id))
        }
    }
}

/// Checks that `actor` may act for `owner` (store or list its files),
/// after taking one token of the actor's operations bucket.
pub(crate) async fn authorize_owner(
    db: &Db,
    limits: &RateLimits,
    actor: Actor,
    owner: crate::UserId,
    action: &'static str,
) -> Result<(), Error> {
    limits.operation(actor)?;
    match actor {
        Actor::System => Ok(()),
        Actor::User(u) if u == owner => Ok(()),
        Actor::User(_) => {
            record_refusal(db, actor, action, format!("user:{owner}")).await;
            Err(Error::not_found(Entity::User, owner))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::{Actor, Config, Error, NewUser, PutOptions, Store};

    /// A refusal answers while the writer cannot commit anything, so its
    /// caller provably does not wait for the audit record's commit (before,
    /// it waited for one durable commit more than an unknown id: an
    /// existence oracle); the record is still committed once the writer
    /// runs on, and survives a reopen.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_refusal_does_not_wait_for_its_audit_commit() {
        let dir = tempfile::tempdir().unwrap();
        let config = Config::new(dir.path()).password_cost(8, 1);
        let store = Store::open(config.clone()).await.unwrap();
        let owner = store
            .users()
            .create(NewUser::new("owner", "o@example.in").consent(crate::ConsentKind::AudioStorage))
            .await
            .unwrap();
        let stranger = store
            .users()
            .create(
                NewUser::new("stranger", "s@example.in").consent(crate::ConsentKind::AudioStorage),
            )
            .await
            .unwrap();
        let file = store
            .files()
            .put_bytes(
                Actor::User(owner.id),
                owner.id,
                b"voice",
                PutOptions::default(),
            )
            .await
            .unwrap();
        // Hold the writer inside a transaction until released.
        let (release, hold) = std::sync::mpsc::channel::<()>();
        let (entered, inside) = tokio::sync::oneshot::channel::<()>();
        let mut entered = Some(entered);
        let blocker = {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .db()
                    .write(move |_txn| {
                        if let Some(e) = entered.take() {
                            let _ = e.send(());
                        }
                        let _ = hold.recv();
                        Ok(())
                    })
                    .await
            })
        };
        inside.await.unwrap();
        let refused = tokio::time::timeout(
            Duration::from_secs(60),
            store.files().read(Actor::User(stranger.id), file.id),
        )
        .await
        .expect("the refusal waited for the writer (its audit commit)");
        assert!(
            matches!(refused, Err(Error::NotFound { .. })),
            "{refused:?}"
        );
        release.send(()).unwrap();
        blocker.await.unwrap().unwrap();
        store.close().await;
        drop(store);
        let store = Store::open(config).await.unwrap();
        let events = store.audit_events(10).unwrap();
        assert!(
            events
                .iter()
                .any(|e| e.outcome == "refused" && e.target == format!("file:{}", file.id)),
            "{events:?}"
        );
    }
}
