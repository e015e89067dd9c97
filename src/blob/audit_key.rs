//! The audit log's key: random, made once per store, kept in `meta`
//! wrapped under the master key, and unwrapped into the store's
//! [`Auditor`](crate::audit::Auditor) when the keyring opens.
//!
//! It lives here because wrapping under the master key is the blob
//! layer's business (`db` stores wrapped keys as opaque bytes). A key of
//! its own, rather than one derived from the master key's bytes, lets the
//! master key rotate without recomputing the chain: a rotation re-wraps
//! it ([`rewrap`]) in the same transaction as the owner rows.

use crate::blob::crypto::{SecretKey, unwrap, wrap};
use crate::blob::keys::Keyring;
use crate::db::Db;
use crate::db::audit::AuditKey;
use crate::db::keys as stored;
use crate::db::migrate_v9::seal_migrated;
use crate::error::Error;

const CONTEXT: &[u8] = b"bv/audit-key/v1";

fn unwrap_under(master: &SecretKey, wrapped: &stored::WrappedKey) -> Result<SecretKey, Error> {
    unwrap(master, wrapped, CONTEXT)
        .ok_or_else(|| Error::corrupt("audit key", "does not unwrap under the master key"))
}

fn to_audit(key: &SecretKey) -> AuditKey {
    AuditKey::from_bytes(*key.bytes())
}

/// Loads the audit key into the store's auditor, making it on first use
/// and sealing entries a migration moved in (`db::migrate_v9`). A store
/// that is read-only and has no key yet gets none (nothing can be
/// appended there anyway; `audit verify` then reports the missing key).
pub(crate) async fn load(db: &Db, keyring: &Keyring) -> Result<(), Error> {
    let auditor = db.auditor();
    let (existing, unsealed) = db.read(|txn| {
        Ok((
            stored::audit_key(txn)?,
            crate::db::migrate_v9::has_unsealed(txn)?,
        ))
    })?;
    if let Some(wrapped) = &existing
        && (!unsealed || db.is_read_only())
    {
        let key =
            crate::blob::keys::across_master_rotation(|| unwrap_under(&keyring.master(), wrapped))?;
        auditor.set_key(to_audit(&key));
        return Ok(());
    }
    if db.is_read_only() {
        return Ok(());
    }
    let fresh = SecretKey::generate()?;
    let keyring = keyring.clone();
    let key = db
        .write(move |txn| {
            let master = keyring.master_in(txn)?;
            let key = match stored::audit_key(txn)? {
                Some(wrapped) => unwrap_under(&master, &wrapped)?,
                None => {
                    stored::set_audit_key(txn, &wrap(&master, &fresh, CONTEXT)?)?;
                    fresh.clone()
                }
            };
            let key = to_audit(&key);
            seal_migrated(txn, &key)?;
            Ok(key)
        })
        .await?;
    auditor.set_key(key);
    Ok(())
}

/// Re-wraps the audit key from `old` to `new` in `txn` (a master key
/// rotation); nothing when the store has none yet.
pub(crate) fn rewrap(
    txn: &redb::WriteTransaction,
    old: &SecretKey,
    new: &SecretKey,
) -> Result<(), Error> {
    if let Some(wrapped) = stored::audit_key(txn)? {
        let key = unwrap_under(old, &wrapped)?;
        stored::set_audit_key(txn, &wrap(new, &key, CONTEXT)?)?;
    }
    Ok(())
}
