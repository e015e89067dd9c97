//! The one error type of the crate.
//!
//! # Error policy
//!
//! * Every public operation returns [`Result<T>`](crate::Result) with this
//!   [`Error`]. Callers match on the variant; the `Display` text is written
//!   for a person and names what to do or what was wrong.
//! * Input from users (names, ids, tags) that does not fit is
//!   [`Error::InvalidInput`]; nothing was changed.
//! * Bytes read from disk that do not decode are [`Error::Corrupt`]; they are
//!   never trusted, and decoding them never panics.
//! * Failures of the storage engine keep their source ([`Error::Storage`]);
//!   it is shared through an `Arc` because a failed group commit answers
//!   every caller of its batch with the same cause.
//! * Secrets (password hashes, keys) never appear in any variant.

use std::path::PathBuf;
use std::sync::Arc;

/// What kind of record an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Entity {
    /// A [`User`](crate::User).
    User,
    /// A [`UserProfile`](crate::UserProfile).
    Profile,
    /// A [`ConversationSession`](crate::ConversationSession).
    Session,
    /// An [`AudioFile`](crate::AudioFile) record.
    AudioFile,
    /// A [`MetricSample`](crate::MetricSample).
    Metric,
    /// A record of the store itself (schema version, store id).
    Meta,
    /// A backup destination, or a generation in one.
    Backup,
}

impl std::fmt::Display for Entity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Entity::User => "user",
            Entity::Profile => "profile",
            Entity::Session => "session",
            Entity::AudioFile => "audio file",
            Entity::Metric => "metric",
            Entity::Meta => "store metadata",
            Entity::Backup => "backup",
        })
    }
}

/// Which limit a put would pass ([`Error::QuotaExceeded`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "user")]
#[non_exhaustive]
pub enum QuotaLimit {
    /// The owner's stored-bytes quota (the store default or the user's
    /// own, see [`Quotas`](crate::Quotas)).
    User(crate::types::UserId),
    /// The store-wide floor of free space on the disk holding the blobs.
    FreeSpace,
}

impl std::fmt::Display for QuotaLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            QuotaLimit::User(u) => write!(f, "the storage quota of user {u}"),
            QuotaLimit::FreeSpace => f.write_str("the free-space floor of the blob disk"),
        }
    }
}

/// Every way an operation of this crate can fail.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No live record has this id or name (soft-deleted records count as absent).
    #[error("{entity} {id} not found")]
    NotFound {
        /// The kind of record looked for.
        entity: Entity,
        /// The id or name that was looked up.
        id: String,
    },
    /// A unique field already holds this value.
    #[error("{field} {value} is already used by {entity} {existing}")]
    Conflict {
        /// The kind of record that holds the value.
        entity: Entity,
        /// The unique field, e.g. `username` or `email`.
        field: &'static str,
        /// The value asked for (normalised).
        value: String,
        /// The id of the record that already holds it.
        existing: String,
    },
    /// Input that does not fit the rules for a field; nothing was changed.
    #[error("invalid {field}: {reason}")]
    InvalidInput {
        /// The field or argument at fault.
        field: &'static str,
        /// What is wrong and what is accepted.
        reason: String,
    },
    /// Bytes on disk did not decode as the record they should hold.
    #[error("corrupt {what}: {detail}")]
    Corrupt {
        /// What was being read, e.g. `user record 0192…`.
        what: String,
        /// Why it was refused.
        detail: String,
    },
    /// The store was written by a newer version of this crate.
    #[error(
        "the store at {path} has schema version {found}, but this build supports up to {supported}; upgrade bharatvoice-store to open it"
    )]
    VersionTooNew {
        /// Where the store is.
        path: PathBuf,
        /// The version found in the store.
        found: u32,
        /// The newest version this build understands.
        supported: u32,
    },
    /// No store exists in this data directory, and the open was not allowed
    /// to create one ([`OpenMode::MustExist`](crate::OpenMode::MustExist)).
    #[error(
        "no store at {data_dir} (it has no store.redb); check the data directory, or create a store there with `bvstore init`"
    )]
    NoStore {
        /// The data directory.
        data_dir: PathBuf,
    },
    /// `store.redb` is missing or empty while other parts of a store are
    /// there: opening would orphan them, so it is refused.
    #[error(
        "the store at {data_dir} is incomplete: {missing}, but {present:?} exist; restore store.redb from a backup, or start a new empty store beside them with `bvstore init --force` (their files become unreachable)"
    )]
    StoreIncomplete {
        /// The data directory.
        data_dir: PathBuf,
        /// What is wrong with `store.redb` ("store.redb is missing" or "... is empty").
        missing: String,
        /// The other parts of a store that are present.
        present: Vec<String>,
    },
    /// The store was opened read-only (its data directory is not writable
    /// by this process, or [`Config::read_only`](crate::Config::read_only)):
    /// reads work, this write was refused and nothing changed.
    #[error("the store at {path} is open read-only: {detail}")]
    ReadOnly {
        /// The database file.
        path: PathBuf,
        /// Why the operation needed to write.
        detail: String,
    },
    /// Another process (or another `Store` in this process) has the store open.
    #[error("the store at {path} is in use by another process or handle; close it first")]
    Locked {
        /// The database file that is held.
        path: PathBuf,
    },
    /// An operating-system I/O error.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The storage engine failed (redb today; an object store or a server
    /// behind a blob backend tomorrow, without a breaking change).
    #[error("{context}: {source}")]
    Storage {
        /// What was being done.
        context: String,
        /// The underlying error, opaque (`source.downcast_ref` finds the
        /// engine's own type), shared by every caller of a failed batch.
        #[source]
        source: Arc<dyn std::error::Error + Send + Sync + 'static>,
    },
    /// Work that needs the store to itself (compaction, say) could not get
    /// it in time; nothing changed, and it may be tried again.
    #[error("{what}: the store is busy ({detail}); try again")]
    Busy {
        /// What was being done.
        what: &'static str,
        /// What kept the store busy.
        detail: String,
    },
    /// The configuration could not be used.
    #[error("configuration: {reason}")]
    Config {
        /// What is wrong.
        reason: String,
    },
    /// The master key does not open this store (its check value fails).
    #[error("the master key does not open the store at {path}: wrong key")]
    WrongKey {
        /// The data directory.
        path: PathBuf,
    },
    /// The store holds encrypted keys but no master key was given.
    #[error("{reason}")]
    MissingKey {
        /// What is missing and where it was looked for.
        reason: String,
    },
    /// A master key (given as text, in `BV_MASTER_KEY`, or in a key file)
    /// that does not parse. Its text is never echoed.
    #[error(
        "{origin} does not hold a usable master key: expected 64 hex digits or base64 of 32 bytes (a key file may also hold the 32 raw bytes)"
    )]
    InvalidKey {
        /// Where the key came from, e.g. `BV_MASTER_KEY` or `key file /srv/bv/master.key`.
        origin: String,
    },
    /// A key file is readable by group or others, so it is refused.
    #[error("key file {path} has mode {mode:o}; make it private (chmod 600) before use")]
    InsecureKeyFile {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// Data read back does not match its recorded SHA-256: never returned as good.
    #[error("integrity check failed for {what}: {detail}")]
    Integrity {
        /// What was read.
        what: String,
        /// What did not match.
        detail: String,
    },
    /// The caller may see this record but not do this to it (a grantee
    /// deleting or re-granting a file, say).
    #[error("{actor} may not {action} {target}")]
    PermissionDenied {
        /// Who asked.
        actor: String,
        /// What was asked.
        action: &'static str,
        /// The record.
        target: String,
    },
    /// The cache's disk tier (`cache.redb`) cannot commit or cannot be
    /// read, so a cache operation that must be durable (`delete`, `clear`,
    /// `invalidate_tag`, a write-through set) or that must know what tier 2
    /// holds (NX/XX, `incr`, `expire` of a key memory does not hold) was
    /// refused; it changed nothing. Retry once
    /// [`stats().tier2.state`](crate::CacheStats) is healthy again.
    #[error(
        "the cache's disk tier (cache.redb) is unavailable, so this cache operation was refused and changed nothing; retry once it has recovered: {reason}"
    )]
    CacheUnavailable {
        /// Why tier 2 is unavailable (its last error).
        reason: String,
    },
    /// A put would pass a storage limit: the owner's quota (`usage` is the
    /// bytes the owner's blobs take) or the free-space floor (`usage` is
    /// the bytes in use on the disk, `limit` what may be used while the
    /// floor stays free). Nothing was stored; the bytes already streamed
    /// were removed.
    #[error(
        "{which} would be passed: limit {limit} bytes, in use {usage} bytes, this put needs at least {needed} more; nothing was stored"
    )]
    QuotaExceeded {
        /// The limit.
        which: QuotaLimit,
        /// The limit in bytes.
        limit: u64,
        /// The bytes in use against it before this put.
        usage: u64,
        /// What this put would add (as far as it got, if it was stopped
        /// while streaming).
        needed: u64,
    },
    /// The user has not given the consent this operation needs (storing
    /// audio needs [`ConsentKind::AudioStorage`](crate::ConsentKind) while
    /// `privacy.require_consent` is on). Nothing was written.
    #[error("user {user} has not given {consent} consent; nothing was stored")]
    ConsentRequired {
        /// The user whose consent is missing.
        user: crate::types::UserId,
        /// The consent that is missing.
        consent: crate::model::profile::ConsentKind,
    },
    /// The user's rate limit ([`RateLimitConfig`](crate::RateLimitConfig))
    /// refused the request; the same request passes after `retry_after`.
    /// Nothing was written.
    #[error("user {user} is over the limit of {limit}; retry after {} ms; nothing was written", retry_after.as_millis())]
    RateLimited {
        /// Whose limit.
        user: crate::types::UserId,
        /// Which bucket was empty.
        limit: crate::ratelimit::RateLimit,
        /// How long until the same request would pass.
        retry_after: std::time::Duration,
    },
    /// Data would leave its region: a store recorded in one data region
    /// opened by a deployment configured for another, or a backup or
    /// replica target that declares another region.
    #[error("{what} is in data region {found}, not {expected}; nothing was opened or copied")]
    RegionMismatch {
        /// What declared the other region.
        what: String,
        /// The region expected (configured, or the store's).
        expected: String,
        /// The region found.
        found: String,
    },
    /// The store has been closed, or its writer stopped.
    #[error("the store is closed")]
    Closed,
    /// A background job panicked in an earlier pass: it no longer runs
    /// (on its interval or on demand) until the store is reopened. The
    /// rest of the store is unaffected.
    #[error(
        "background job {job} is stopped: a pass panicked ({message}); reopen the store to run it again"
    )]
    JobPoisoned {
        /// The job's name.
        job: &'static str,
        /// What the panic said.
        message: String,
    },
    /// A request served by a live store's admin socket failed in that
    /// store's process; `kind` is that error's [`Error::kind`].
    #[error("the store's process answered: {message}")]
    Remote {
        /// The kind of the error in the serving process.
        kind: String,
        /// Its message.
        message: String,
    },
    /// A cached value is not of the type asked for (or not an integer for
    /// `incr`); the value is unchanged.
    #[error("cache key {key} holds a value that is not {expected}: {detail}")]
    WrongType {
        /// The key (quoted, cut to 64 characters).
        key: String,
        /// What was asked for: a Rust type name, or "a decimal integer".
        expected: &'static str,
        /// Why the value did not fit.
        detail: String,
    },
}

impl Error {
    /// A stable name for the variant (`not_found`, `integrity`, ...): the
    /// `kind` of `bvstore --json` errors and the `kind` label of the error
    /// metrics.
    ///
    /// ```
    /// # use bharatvoice_store::*;
    /// assert_eq!(Error::Closed.kind(), "closed");
    /// ```
    pub fn kind(&self) -> &'static str {
        match self {
            Error::NotFound { .. } => "not_found",
            Error::Conflict { .. } => "conflict",
            Error::InvalidInput { .. } => "invalid_input",
            Error::WrongType { .. } => "wrong_type",
            Error::Locked { .. } => "locked",
            Error::VersionTooNew { .. } => "version_too_new",
            Error::Corrupt { .. } => "corrupt",
            Error::Integrity { .. } => "integrity",
            Error::WrongKey { .. } => "wrong_key",
            Error::MissingKey { .. } => "missing_key",
            Error::InvalidKey { .. } => "invalid_key",
            Error::InsecureKeyFile { .. } => "insecure_key_file",
            Error::PermissionDenied { .. } => "permission_denied",
            Error::NoStore { .. } => "no_store",
            Error::StoreIncomplete { .. } => "store_incomplete",
            Error::CacheUnavailable { .. } => "cache_unavailable",
            Error::ReadOnly { .. } => "read_only",
            Error::QuotaExceeded { .. } => "quota_exceeded",
            Error::ConsentRequired { .. } => "consent_required",
            Error::RateLimited { .. } => "rate_limited",
            Error::RegionMismatch { .. } => "region_mismatch",
            Error::Io { .. } => "io",
            Error::Storage { .. } => "storage",
            Error::Busy { .. } => "busy",
            Error::Config { .. } => "config",
            Error::Closed => "closed",
            Error::JobPoisoned { .. } => "job_poisoned",
            Error::Remote { .. } => "remote",
        }
    }

    pub(crate) fn not_found(entity: Entity, id: impl std::fmt::Display) -> Self {
        Error::NotFound {
            entity,
            id: id.to_string(),
        }
    }

    pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Error::InvalidInput {
            field,
            reason: reason.into(),
        }
    }

    pub(crate) fn corrupt(what: impl Into<String>, detail: impl Into<String>) -> Self {
        Error::Corrupt {
            what: what.into(),
            detail: detail.into(),
        }
    }

    pub(crate) fn wrong_type(key: &str, expected: &'static str, detail: impl Into<String>) -> Self {
        Error::WrongType {
            key: quote(key),
            expected,
            detail: detail.into(),
        }
    }

    /// An [`Error::Io`] saying what was being done.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// The error of a task (a `spawn_blocking` job, a helper task) that
    /// panicked or was cancelled before it answered.
    pub fn join(context: &str, e: tokio::task::JoinError) -> Self {
        let why = if e.is_panic() {
            format!("panicked: {}", panic_message(&*e.into_panic()))
        } else {
            "cancelled".to_string()
        };
        Error::io(context, std::io::Error::other(why))
    }

    pub(crate) fn storage(context: impl Into<String>, source: impl Into<redb::Error>) -> Self {
        Error::storage_from(context, source.into())
    }

    /// A storage error from any engine's error type.
    pub(crate) fn storage_from(
        context: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Error::Storage {
            context: context.into(),
            source: Arc::new(source),
        }
    }

    /// True for errors about the request itself (not found, conflict,
    /// invalid input, a corrupt record it read): they are raised before the
    /// request writes anything, so they leave other requests alone.
    pub fn is_request_error(&self) -> bool {
        matches!(
            self,
            Error::NotFound { .. }
                | Error::Conflict { .. }
                | Error::InvalidInput { .. }
                | Error::Corrupt { .. }
                | Error::PermissionDenied { .. }
                | Error::WrongType { .. }
                | Error::QuotaExceeded { .. }
                | Error::ConsentRequired { .. }
                | Error::RateLimited { .. }
        )
    }

    /// Whether a write request that failed with this error surely changed
    /// nothing: only a refused request (see [`is_request_error`]). A commit
    /// that failed in the engine (a write or sync error) may be on disk all
    /// the same, so whatever it would name (a blob, a new key) must stay
    /// until a later open, rotation or the orphan collector settles it.
    ///
    /// [`is_request_error`]: Error::is_request_error
    pub(crate) fn surely_wrote_nothing(&self) -> bool {
        self.is_request_error()
    }

    /// A copy of this error for another waiter of the same failed batch.
    pub(crate) fn share(&self) -> Error {
        match self {
            Error::Storage { context, source } => Error::Storage {
                context: context.clone(),
                source: Arc::clone(source),
            },
            Error::Closed => Error::Closed,
            Error::Corrupt { what, detail } => Error::Corrupt {
                what: what.clone(),
                detail: detail.clone(),
            },
            other => Error::Storage {
                context: "group commit failed".into(),
                source: Arc::new(redb::Error::Io(std::io::Error::other(other.to_string()))),
            },
        }
    }
}

/// How many characters of a user's input an error quotes.
const QUOTED_CHARS: usize = 64;

/// Quotes a user's input for an error message: in double quotes with
/// control characters escaped (as `{:?}` does), cut to 64 characters with
/// `…` after the closing quote when longer. Every error that echoes input
/// goes through here, so a 100 KB name never makes 100 KB of stderr.
pub(crate) fn quote(input: &str) -> String {
    match input.char_indices().nth(QUOTED_CHARS) {
        Some((end, _)) => format!("{:?}…", &input[..end]),
        None => format!("{input:?}"),
    }
}

/// The error of a thread that panicked (`thread` says which) during work
/// on `subject`: [`Error::Corrupt`], with the panic's message.
pub(crate) fn thread_panicked(
    subject: &str,
    thread: &str,
    payload: Box<dyn std::any::Any + Send>,
) -> Error {
    Error::corrupt(
        subject,
        format!("{thread} panicked: {}", panic_message(&*payload)),
    )
}

/// The message a caught panic carried (its `&str` or `String` payload).
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".into())
}

/// Maps the engine's errors that can arise anywhere in a read or write.
pub(crate) trait StorageContext<T> {
    fn ctx(self, context: &str) -> Result<T, Error>;
}

impl<T, E: Into<redb::Error>> StorageContext<T> for Result<T, E> {
    fn ctx(self, context: &str) -> Result<T, Error> {
        self.map_err(|e| Error::storage(context, e))
    }
}
