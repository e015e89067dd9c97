//! Who may do what to a file.
//!
//! The owner may do everything; a user the file is granted to may read it
//! (stat, read, range, verify) but not change or re-grant it; the system
//! may do everything. Anyone else gets exactly the `NotFound` that an
//! unknown id gets — no existence oracle — and the refusal is written to
//! the audit log.

use crate::blob::Actor;
use crate::db::audit::{AuditEvent, append};
use crate::db::schema::{FILES, GRANTS};
use crate::db::{Db, get_record};
use crate::error::{Entity, Error, StorageContext};
use crate::model::file::AudioFile;
use crate::types::{FileId, Timestamp};

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
            let grants = txn.open_table(GRANTS).ctx("opening grants")?;
            let granted = grants
                .get((file.id.to_key(), u.to_key()))
                .ctx("reading grants")?
                .is_some();
            Ok(granted.then_some(Op::Read))
        }),
    }
}

/// Records a refusal in the audit log (best effort: a failure to record is
/// logged, and the caller still gets its refusal).
pub(crate) async fn record_refusal(db: &Db, actor: Actor, action: &'static str, target: String) {
    tracing::warn!(actor = %actor, action, target = %target, "refused");
    let event = AuditEvent {
        id: uuid::Uuid::now_v7(),
        at: Timestamp::now(),
        actor: actor.to_string(),
        action: action.to_string(),
        target,
        outcome: "refused".into(),
    };
    if let Err(e) = db.write(move |txn| append(txn, &event)).await {
        tracing::error!(error = %e, "could not record a refusal in the audit log");
    }
}

/// Loads a file the actor may `op`; `include_deleted` also finds
/// soft-deleted ones.
pub(crate) async fn authorize(
    db: &Db,
    actor: Actor,
    id: FileId,
    op: Op,
    action: &'static str,
    include_deleted: bool,
) -> Result<AudioFile, Error> {
    let file = db.read(|txn| {
        let files = txn.open_table(FILES).ctx("opening files")?;
        get_record::<AudioFile>(&files, id.to_key(), id)
    })?;
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

/// Checks that `actor` may act for `owner` (store or list its files).
pub(crate) async fn authorize_owner(
    db: &Db,
    actor: Actor,
    owner: crate::UserId,
    action: &'static str,
) -> Result<(), Error> {
    match actor {
        Actor::System => Ok(()),
        Actor::User(u) if u == owner => Ok(()),
        Actor::User(_) => {
            record_refusal(db, actor, action, format!("user:{owner}")).await;
            Err(Error::not_found(Entity::User, owner))
        }
    }
}
