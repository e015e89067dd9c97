//! Storage limits: a per-user quota on the bytes a user's blobs take (a
//! store default and a per-user override, off by default) and a
//! store-wide floor of free space on the disk holding the blobs, so that
//! one user cannot fill a device and no user can fill its disk.
//!
//! A put is checked three times: before it streams (nothing fits: refused
//! at once), while it streams (it stops as soon as its stored bytes pass
//! what is left, and removes what it wrote), and in the transaction that
//! commits its blob (the usage there is authoritative, so two puts racing
//! for the last bytes cannot both pass). The usage is kept per user in
//! `store.redb` (`db::usage`), updated in the same transactions as the
//! blob rows; [`Quotas::recount`] counts it again from the rows.
//!
//! Usage counts the stored (compressed, encrypted) bytes of each blob
//! once, however many files share it; a soft-deleted file's blob counts
//! until the purge removes it.

use std::path::Path;

use serde::{Deserialize, Serialize};
use tracing::instrument;

use crate::db::Db;
use crate::error::{Error, QuotaLimit};
use crate::types::UserId;

/// Storage limits (`Config::quota`).
///
/// | setting | default | TOML (`[quota]`) | env |
/// |---|---|---|---|
/// | `user_bytes` | none: no per-user quota | `user_bytes` | `BV_QUOTA_USER_BYTES` |
/// | `min_free_bytes` | 64 MiB kept free on the blob disk (`0`: no floor) | `min_free_bytes` | `BV_QUOTA_MIN_FREE_BYTES` |
///
/// ```
/// use bharatvoice_store::{Config, QuotaConfig};
/// let config = Config::new("/tmp/bv-example")
///     .quota(QuotaConfig::default().user_bytes(Some(1 << 30)));
/// assert_eq!(config.quota.user_bytes, Some(1 << 30));
/// let t = Config::from_toml_str("[quota]\nmin_free_bytes = 0").unwrap();
/// assert_eq!(t.quota.min_free_bytes, 0);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct QuotaConfig {
    /// The stored bytes each user's blobs may take, unless the user has a
    /// quota of their own ([`Quotas::set_limit`]).
    pub user_bytes: Option<u64>,
    /// Free bytes a put must leave on the disk holding the blobs.
    pub min_free_bytes: u64,
}

impl Default for QuotaConfig {
    fn default() -> Self {
        QuotaConfig {
            user_bytes: None,
            min_free_bytes: 64 << 20,
        }
    }
}

/// The TOML shape of `[quota]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileQuotaConfig {
    user_bytes: Option<u64>,
    min_free_bytes: Option<u64>,
}

impl QuotaConfig {
    pub(crate) fn from_file(f: FileQuotaConfig) -> QuotaConfig {
        let d = QuotaConfig::default();
        QuotaConfig {
            user_bytes: f.user_bytes.or(d.user_bytes),
            min_free_bytes: f.min_free_bytes.unwrap_or(d.min_free_bytes),
        }
    }

    pub(crate) fn apply_env(&mut self, get: &impl Fn(&str) -> Option<String>) -> Result<(), Error> {
        let num = |name: &str, v: String| {
            v.trim().parse::<u64>().map_err(|_| Error::Config {
                reason: format!("{name}={} is not a number", crate::error::quote(&v)),
            })
        };
        if let Some(v) = get("BV_QUOTA_USER_BYTES") {
            self.user_bytes = match v.trim() {
                "" | "none" | "off" => None,
                _ => Some(num("BV_QUOTA_USER_BYTES", v)?),
            };
        }
        if let Some(v) = get("BV_QUOTA_MIN_FREE_BYTES") {
            self.min_free_bytes = num("BV_QUOTA_MIN_FREE_BYTES", v)?;
        }
        Ok(())
    }

    /// Sets the default per-user quota (`None`: none).
    pub fn user_bytes(mut self, bytes: Option<u64>) -> Self {
        self.user_bytes = bytes;
        self
    }

    /// Sets the free-space floor (`0`: none).
    pub fn min_free_bytes(mut self, bytes: u64) -> Self {
        self.min_free_bytes = bytes;
        self
    }
}

/// A user's storage usage and the quota that applies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Usage {
    /// The user.
    pub user: UserId,
    /// Stored bytes of the user's blobs (live or awaiting purge).
    pub stored_bytes: u64,
    /// How many blobs the user has.
    pub blobs: u64,
    /// The quota that applies: the user's own, else the store default.
    pub limit: Option<u64>,
    /// The user's own quota, if set.
    pub own_limit: Option<u64>,
}

/// Space on the disk holding the blobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct DiskSpace {
    /// Bytes available to the store's process.
    pub available: u64,
    /// The disk's size.
    pub total: u64,
    /// The floor puts keep free.
    pub floor: u64,
}

/// Usage and quotas; from [`Store::quotas`](crate::Store::quotas).
///
/// ```
/// # use bharatvoice_store::*;
/// # #[tokio::main] async fn main() -> Result<(), Error> {
/// # let dir = tempfile::tempdir().unwrap();
/// # let store = Store::open(Config::new(dir.path())).await?;
/// let user = store.users().create(NewUser::new("asha", "asha@example.in").consent(ConsentKind::AudioStorage)).await?;
/// store.quotas().set_limit(user.id, Some(1000)).await?;
/// let big = vec![7u8; 100_000];
/// let put = store.files().put_bytes(Actor::User(user.id), user.id, &big, PutOptions::content_type("audio/ogg")).await;
/// assert!(matches!(put, Err(Error::QuotaExceeded { limit: 1000, .. })));
/// assert_eq!(store.quotas().usage(user.id).await?.stored_bytes, 0);
/// # Ok(()) }
/// ```
pub struct Quotas<'a> {
    pub(crate) db: &'a Db,
    pub(crate) config: &'a QuotaConfig,
    pub(crate) blob_dir: &'a Path,
}

impl Quotas<'_> {
    /// A user's usage as kept.
    #[instrument(skip(self, user), fields(user = %user))]
    pub async fn usage(&self, user: UserId) -> Result<Usage, Error> {
        crate::telemetry::observe(
            &self.db.telemetry,
            crate::telemetry::op_key!("quotas.usage"),
            async {
                let default = self.config.user_bytes;
                self.db
                    .scan(move |txn| {
                        let row = crate::db::usage::of_live_user(txn, user)?;
                        Ok(usage_of(user, &row, default))
                    })
                    .await
            },
        )
        .await
    }

    /// Sets the user's own quota, overriding the store default (`None`:
    /// the default applies again). Files already stored stay, even over
    /// the new quota; further puts are refused until usage is under it.
    #[instrument(skip(self, user), fields(user = %user))]
    pub async fn set_limit(&self, user: UserId, limit: Option<u64>) -> Result<Usage, Error> {
        crate::telemetry::observe(
            &self.db.telemetry,
            crate::telemetry::op_key!("quotas.set_limit"),
            async {
                let default = self.config.user_bytes;
                let row = self
                    .db
                    .write(move |txn| crate::db::usage::set_limit(txn, user, limit))
                    .await?;
                tracing::info!(?limit, "user quota set");
                Ok(usage_of(user, &row, default))
            },
        )
        .await
    }

    /// The user's usage counted again from the blob rows (stored bytes,
    /// blobs): equal to [`usage`](Self::usage) unless the kept count is
    /// wrong.
    pub async fn recount(&self, user: UserId) -> Result<(u64, u64), Error> {
        crate::telemetry::observe(
            &self.db.telemetry,
            crate::telemetry::op_key!("quotas.recount"),
            async {
                self.db
                    .scan(move |txn| crate::db::usage::recount(txn, user))
                    .await
            },
        )
        .await
    }

    /// Space on the blob disk and the floor puts keep free (`None` where
    /// the platform cannot tell).
    pub fn disk_space(&self) -> Result<Option<DiskSpace>, Error> {
        crate::telemetry::observe_sync(
            &self.db.telemetry,
            crate::telemetry::op_key!("quotas.disk_space"),
            || disk_space(self.blob_dir, self.config.min_free_bytes),
        )
    }
}

fn usage_of(user: UserId, row: &crate::db::usage::UsageRow, default: Option<u64>) -> Usage {
    Usage {
        user,
        stored_bytes: row.stored_bytes,
        blobs: row.blobs,
        limit: crate::db::usage::limit_of(row, default),
        own_limit: row.limit,
    }
}

/// What a put may still store before it passes a limit.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Allowance {
    /// Stored bytes the put may write.
    pub(crate) bytes: u64,
    which: QuotaLimit,
    limit: u64,
    usage: u64,
}

impl Allowance {
    /// The error for a put that got to `needed` stored bytes.
    pub(crate) fn exceeded(&self, needed: u64) -> Error {
        Error::QuotaExceeded {
            which: self.which,
            limit: self.limit,
            usage: self.usage,
            needed,
        }
    }
}

/// The tighter of the owner's quota and the free-space floor for a put
/// about to stream (`None`: no limit applies); refused at once if nothing
/// fits.
pub(crate) fn allowance(
    db: &Db,
    config: &QuotaConfig,
    blob_dir: &Path,
    owner: UserId,
) -> Result<Option<Allowance>, Error> {
    let row = db.read(|txn| crate::db::usage::get(txn, owner))?;
    let user = crate::db::usage::limit_of(&row, config.user_bytes).map(|limit| Allowance {
        bytes: limit.saturating_sub(row.stored_bytes),
        which: QuotaLimit::User(owner),
        limit,
        usage: row.stored_bytes,
    });
    let disk = match disk_space(blob_dir, config.min_free_bytes)? {
        Some(d) if d.floor > 0 => {
            let limit = d.total.saturating_sub(d.floor);
            Some(Allowance {
                bytes: d.available.saturating_sub(d.floor),
                which: QuotaLimit::FreeSpace,
                limit,
                usage: limit.saturating_sub(d.available.saturating_sub(d.floor)),
            })
        }
        _ => None,
    };
    let tighter = match (user, disk) {
        (Some(u), Some(d)) => Some(if d.bytes < u.bytes { d } else { u }),
        (u, d) => u.or(d),
    };
    match tighter {
        Some(a) if a.bytes == 0 => Err(a.exceeded(1)),
        other => Ok(other),
    }
}

/// Space on the disk holding `dir`.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
pub(crate) fn disk_space(dir: &Path, floor: u64) -> Result<Option<DiskSpace>, Error> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| Error::invalid("blob directory", "contains a NUL byte"))?;
    // SAFETY: `path` is NUL-terminated; `st` is written by statvfs.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::statvfs(path.as_ptr(), &mut st) };
    if rc != 0 {
        return Err(Error::io(
            format!("reading the free space of {}", dir.display()),
            std::io::Error::last_os_error(),
        ));
    }
    // The field types differ between targets (u32 on some 32-bit ones).
    #[allow(clippy::unnecessary_cast)]
    let (unit, available, total) = (st.f_frsize as u64, st.f_bavail as u64, st.f_blocks as u64);
    Ok(Some(DiskSpace {
        available: available.saturating_mul(unit),
        total: total.saturating_mul(unit),
        floor,
    }))
}

#[cfg(not(target_os = "linux"))]
fn disk_space(_dir: &Path, _floor: u64) -> Result<Option<DiskSpace>, Error> {
    Ok(None)
}
