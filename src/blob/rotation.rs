//! Rotating an owner's key: a new version for new writes, then the data
//! keys of its blobs re-wrapped in small steps, then the old versions
//! destroyed. Each step is one transaction, so a crash loses at most the
//! step in flight, and a reopened store resumes.

use serde::Serialize;

use crate::blob::crypto::{SecretKey, unwrap, wrap};
use crate::blob::keys::{Keyring, data_key_context, kek_context, unwrap_version};
use crate::db::Db;
use crate::db::blobs::put_row;
use crate::db::keys as stored_keys;
use crate::error::{Entity, Error};
use crate::jobs::JobOutcome;
use crate::types::UserId;

/// What one rotation step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RotationProgress {
    /// Blobs re-wrapped by this step.
    pub moved: usize,
    /// True once no blob is left on an old version and the old versions
    /// are destroyed (or no rotation was running).
    pub finished: bool,
    /// The version new writes use.
    pub current_version: u32,
}

/// Starts a rotation: a new key version becomes current for new writes.
pub(crate) async fn begin(db: &Db, keyring: &Keyring, owner: UserId) -> Result<u32, Error> {
    let kek = SecretKey::generate()?;
    let ring = keyring.clone();
    let now = db.now();
    let version = db
        .write_audited(
            move |txn| {
                let master = ring.master_in(txn)?;
                let mut row = stored_keys::get(txn, owner)?.ok_or_else(|| {
                    Error::not_found(
                        Entity::User,
                        format!("{owner} (no stored files, so no keys to rotate)"),
                    )
                })?;
                let next = row.versions.iter().map(|(v, _)| *v).max().unwrap_or(0) + 1;
                row.versions
                    .push((next, wrap(&master, &kek, &kek_context(owner, next))?));
                row.current = next;
                row.rotating = true;
                stored_keys::put(txn, owner, &row)?;
                Ok(next)
            },
            move |version| {
                vec![
                    crate::audit::Entry::new(
                        now,
                        crate::audit::SYSTEM,
                        "key.rotate_owner",
                        format!("user:{owner}"),
                    )
                    .outcome(format!("version:{version}")),
                ]
            },
        )
        .await?;
    keyring.forget(owner);
    tracing::info!(owner = %owner, version, "owner key rotation started");
    Ok(version)
}

/// Re-wraps up to `limit` blobs of `owner` onto the current version; when
/// none is left, destroys the old versions.
pub(crate) async fn step(
    db: &Db,
    keyring: &Keyring,
    owner: UserId,
    limit: usize,
) -> Result<RotationProgress, Error> {
    let limit = limit.max(1);
    let ring = keyring.clone();
    let progress = db
        .write(move |txn| {
            let master = ring.master_in(txn)?;
            let mut row = stored_keys::get(txn, owner)?
                .ok_or_else(|| Error::not_found(Entity::User, owner))?;
            if !row.rotating {
                return Ok(RotationProgress {
                    moved: 0,
                    finished: true,
                    current_version: row.current,
                });
            }
            let current = unwrap_version(&master, &row, owner, row.current)?;
            let todo = crate::db::blobs::of_owner_not_on(txn, owner, row.current, limit)?;
            let mut rewrapped = Vec::with_capacity(todo.len());
            for (address, mut b) in todo {
                if let Some(wrapped) = &b.data_key {
                    let old = unwrap_version(&master, &row, owner, b.key_version)?;
                    let ctx = data_key_context(address);
                    let dek = unwrap(&old, wrapped, &ctx).ok_or_else(|| {
                        Error::corrupt(format!("blob {address}"), "data key does not unwrap")
                    })?;
                    b.data_key = Some(wrap(&current, &dek, &ctx)?);
                }
                b.key_version = row.current;
                rewrapped.push((address, b));
            }
            let moved = rewrapped.len();
            for (address, b) in &rewrapped {
                put_row(txn, *address, b)?;
                crate::db::files::set_key_version_of_blob(txn, *address, b.key_version)?;
            }
            let finished = moved < limit;
            if finished {
                let keep = row.current;
                row.versions.retain(|(v, _)| *v == keep);
                row.rotating = false;
                stored_keys::put(txn, owner, &row)?;
            }
            Ok(RotationProgress {
                moved,
                finished,
                current_version: row.current,
            })
        })
        .await?;
    if progress.finished {
        keyring.forget(owner);
    }
    Ok(progress)
}

/// The name of the job that finishes rotations in the background.
pub(crate) const JOB: &str = "key-rotation";
/// Blobs one pass re-wraps per owner.
const PASS_LIMIT: usize = 256;

/// One pass of the rotation job: a step of up to 256 blobs for every owner
/// whose rotation is unfinished (an open store resumes the rotations a
/// crash or a close left). Each owner is tried even if another fails; the
/// first failure is returned after all were tried.
pub(crate) async fn pass(db: &Db, keyring: &Keyring) -> Result<JobOutcome, Error> {
    let mut out = JobOutcome::default();
    if db.is_read_only() {
        return Ok(out);
    }
    let mut first_error = None;
    for owner in unfinished(db).await? {
        match step(db, keyring, owner, PASS_LIMIT).await {
            Ok(p) => {
                out.count("blobs_rewrapped", p.moved as u64);
                if p.finished {
                    out.count("rotations_finished", 1);
                    tracing::info!(owner = %owner, version = p.current_version, "owner key rotation finished");
                } else {
                    out.more = true;
                }
            }
            Err(Error::Closed) => return Err(Error::Closed),
            Err(e) => {
                tracing::error!(owner = %owner, error = %e, "owner key rotation step failed; retried at the next pass");
                out.count("owners_failed", 1);
                first_error.get_or_insert(e);
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

/// Owners whose rotation has not finished.
pub(crate) async fn unfinished(db: &Db) -> Result<Vec<UserId>, Error> {
    db.scan(|txn| {
        Ok(stored_keys::all(txn)?
            .into_iter()
            .filter(|(_, row)| row.rotating)
            .map(|(owner, _)| owner)
            .collect())
    })
    .await
}
