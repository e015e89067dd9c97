//! **bharatvoice-store**: the embedded storage layer of an on-device voice
//! assistant for Indian languages. One crate, no external server.
//!
//! # Features
//!
//! * Users, profiles (languages such as `hi-IN`, `ta-IN`, consent flags),
//!   conversation sessions, audio-file metadata and system metrics in
//!   [`redb`](https://docs.rs/redb) tables with secondary indexes written in
//!   the same transaction as their rows.
//! * A group-commit writer: concurrent writes share one durable commit; every
//!   caller is answered only once its write is on disk.
//! * Versioned records (serde + postcard) that refuse corrupt bytes with
//!   [`Error::Corrupt`], and ordered schema migrations run at open.
//! * argon2id password hashes kept apart from user records.
//! * A tiered cache ([`Store::cache`]): `moka` in memory, bounded in bytes,
//!   over its own redb file (`cache.redb`) that survives restarts; per-entry
//!   TTLs, O(1) tag invalidation, and the Redis operations applications
//!   rely on (NX/XX, incr, TTL, get-or-load with stampede protection). A
//!   failing cache file degrades the cache to memory, never the store.
//! * Watched-folder ingest ([`Ingestor`]): files dropped into a folder are
//!   stored for a user once complete and then removed, exactly once across
//!   restarts; refused ones go to `failed/` with the reason.
//!
//! # What it is not
//!
//! * Not a server: it is linked into the process that uses it, and one
//!   process at a time holds a data directory ([`Error::Locked`]).
//! * Not a general SQL database: the queries are the ones the assistant needs,
//!   each backed by an index.
//! * Not a Redis server: the cache is in-process and speaks no wire
//!   protocol; its data types are byte strings and serde values (no lists,
//!   sets or pub/sub).
//!
//! # Example
//!
//! ```
//! use bharatvoice_store::{Config, NewUser, ProfileUpdate, Role, Store, Turn};
//! # #[tokio::main] async fn main() -> bharatvoice_store::Result<()> {
//! # let dir = tempfile::tempdir().unwrap();
//! let store = Store::open(Config::new(dir.path())).await?;
//! let user = store.users().create(NewUser::new("priya", "priya@example.in")).await?;
//! let langs = vec!["hi-IN".parse()?, "en-IN".parse()?];
//! store.profiles().upsert(user.id, ProfileUpdate { languages: Some(langs), ..Default::default() }).await?;
//! let session = store.sessions().create(user.id, Some("hi-IN".parse()?)).await?;
//! store.sessions().append_turn(session.id, Turn::new(Role::User, "नमस्ते")).await?;
//! assert_eq!(store.sessions().get(session.id)?.turn_count, 1);
//! # Ok(()) }
//! ```

// No unsafe code, except kernel hints std does not offer: two page-cache
// hints (`sync_file_range` in `fsutil`, `posix_fadvise` in `blob::sink`), a
// huge-page hint (`madvise`) in `blob::bigbuf`; and the free space of a
// disk (`statvfs`) in `quota`.
#![deny(unsafe_code)]
#![deny(missing_docs)]

mod admin;
mod audit;
mod blob;
mod bytesize;
mod cache;
mod clock;
mod config;
mod datadir;
mod db;
mod error;
mod fsutil;
mod health;
mod ingest;
mod jobs;
mod lifecycle;
mod model;
mod ops;
mod privacy;
mod quota;
mod ratelimit;
mod store;
mod telemetry;
mod types;

#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;

/// The default data directory, relative to the working directory.
pub const DEFAULT_DATA_DIR: &str = "./bharatvoice-data";

pub use admin::{AdminClient, AdminRequest};
pub use audit::config::AuditConfig;
pub use audit::{Audit, AuditFilter};
pub use blob::backend::choice::{BlobBackendConfig, S3Config};
pub use blob::crypto::SecretKey as MasterKey;
pub use blob::files::Files;
pub use blob::format::FORMAT_VERSION as BLOB_FORMAT_VERSION;
pub use blob::keys::MasterKeySource;
pub use blob::keys_view::{KeyStatus, Keys, MasterRotation};
pub use blob::reader::FileReader;
pub use blob::rotation::RotationProgress;
pub use blob::{Actor, Compression, ListFilter, PutOptions, VerifyReport};
pub use bytesize::ByteSize;
pub use cache::Cache;
pub use cache::config::{CacheConfig, EvictionPolicy, WriteMode};
pub use cache::item::CacheValue;
pub use cache::options::{Condition, SetOptions, Ttl};
pub use cache::stats::{CacheStats, Evictions, Tier1Stats, Tier2State, Tier2Stats};
pub use clock::{Clock, ManualClock};
pub use config::Config;
pub use datadir::OpenMode;
pub use db::audit::AuditEvent;
pub use db::audit_verify::{AuditProblem, AuditProblemKind, AuditReport};
/// The fault plans of `store.redb` for the crate's own tests; not API.
#[cfg(feature = "fault-injection")]
#[doc(hidden)]
pub use db::fault as store_faults;
pub use db::files::FileRecords;
pub use db::metrics::Metrics;
pub use db::migrate::{MigrationStatus, PendingStep, SCHEMA_VERSION};
pub use db::profiles::Profiles;
pub use db::sessions::Sessions;
pub use db::users::Users;
pub use db::verify::{Problem, ProblemKind};
pub use db::writer::WriteStats;
pub use error::{Entity, Error, QuotaLimit};
pub use fsutil::AtomicFile;
pub use health::{Health, HealthStatus, PartHealth};
pub use ingest::{IngestConfig, IngestStats, Ingestor};
pub use jobs::{JobReport, JobStatus, Jobs};
pub use lifecycle::{JOBS as LIFECYCLE_JOBS, Lifecycle, LifecycleConfig};
pub use model::file::{AudioFile, Codec, Encryption, NewAudioFile};
pub use model::metric::MetricSample;
pub use model::privacy::{Erasure, ErasureScope, ErasureStage, PrivacyEvent};
pub use model::profile::{ConsentKind, ConsentState, ProfileUpdate, UserProfile, VoicePreferences};
pub use model::session::{ConversationSession, Role, Turn};
pub use model::user::{NewUser, User, UserStatus, UserUpdate};
pub use model::validate::{LanguageTag, is_control_or_bidi, normalize_email, normalize_username};
pub use ops::backup::restore::{BackupGeneration, RestoreOptions, RestoreReport};
pub use ops::backup::{BackupOptions, BackupReport, BackupTarget, Progress};
pub use ops::compact::{CompactReport, CompactedFile};
pub use ops::stats::{ContentTypeStats, StoreStats, TOP_USERS, UserStats};
pub use ops::verify::{StoreVerifyReport, VerifyOptions};
pub use privacy::{
    ConsentSummary, ErasureReport, ErasureStep, ExportReport, FileCounts, GrantCounts, Privacy,
    PrivacyConfig, ProfileSummary, SessionCounts, TypeCount, UserSummary,
};
pub use quota::{DiskSpace, QuotaConfig, Quotas, Usage};
pub use ratelimit::{RateLimit, RateLimitConfig};
pub use store::Store;
pub use telemetry::{MetricValue, MetricsConfig, MetricsReport, OperationStats};
pub use types::{
    BlobAddress, Cursor, FileId, ListOptions, MetricId, Page, ProfileId, SessionId, Timestamp,
    UserId,
};

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
