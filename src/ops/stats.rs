//! Statistics a person can read: what the store holds and what it costs
//! on disk (the seed's "compression analysis" included: which content
//! types shrink and which are stored raw), counted from one snapshot.

use std::path::Path;

use serde::Serialize;

use crate::cache::stats::CacheStats;
use crate::error::Error;
use crate::store::Store;
use crate::types::UserId;

/// How many of the largest users [`StoreStats::top_users`] lists.
pub const TOP_USERS: usize = 10;

/// What [`Store::stats`] counted.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct StoreStats {
    /// Live users, and users deleted but not yet purged or erased.
    pub users: u64,
    /// Soft-deleted users.
    pub users_deleted: u64,
    /// Live conversation sessions.
    pub sessions: u64,
    /// Soft-deleted sessions awaiting the purge.
    pub sessions_deleted: u64,
    /// Turns ever appended to the live sessions.
    pub turns: u64,
    /// Live files.
    pub files: u64,
    /// Soft-deleted files awaiting the purge.
    pub files_deleted: u64,
    /// Plaintext bytes of the live files.
    pub plain_bytes: u64,
    /// Stored bytes the live files would take without deduplication.
    pub referenced_stored_bytes: u64,
    /// Blobs on disk (live, or awaiting the purge of their last file).
    pub blobs: u64,
    /// Their stored (compressed, encrypted) bytes.
    pub blob_stored_bytes: u64,
    /// Stored bytes deduplication saves: what the live files' records
    /// reference, less what their blobs take (never below 0).
    pub dedup_saved_bytes: u64,
    /// Live files by content type, largest stored bytes first.
    pub by_content_type: Vec<ContentTypeStats>,
    /// The users whose blobs take the most space, largest first (at most
    /// [`TOP_USERS`]).
    pub top_users: Vec<UserStats>,
    /// The cache since open (hits, misses, hit ratio, both tiers).
    pub cache: CacheStats,
    /// Size of `store.redb`.
    pub db_file_bytes: u64,
    /// Size of `cache.redb` (0 with tier 2 off).
    pub cache_file_bytes: u64,
    /// Retention of audio when a profile sets none, in days.
    pub default_retention_days: u32,
    /// The per-user quota of stored bytes, if any.
    pub user_quota_bytes: Option<u64>,
    /// Free bytes a put must leave on the blob disk.
    pub min_free_bytes: u64,
    /// The store's data region, if recorded.
    pub data_region: Option<String>,
}

/// Live files of one content type.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct ContentTypeStats {
    /// The content type, as stored.
    pub content_type: String,
    /// How many files.
    pub files: u64,
    /// Their plaintext bytes.
    pub plain_bytes: u64,
    /// Their stored bytes (each file counting its blob in full).
    pub stored_bytes: u64,
    /// Stored bytes per plaintext byte (1.0 for empty files): below 1,
    /// compression pays; about 1, the type does not shrink.
    pub ratio: f64,
    /// Files stored without compression (asked for, or judged not to
    /// shrink at put).
    pub uncompressed_files: u64,
}

/// One user's share of the blob storage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct UserStats {
    /// The user.
    pub user: UserId,
    /// Their blobs.
    pub blobs: u64,
    /// Stored bytes of their blobs.
    pub stored_bytes: u64,
}

impl Store {
    /// Counts what the store holds, from one snapshot of the metadata
    /// (a scan of the users, sessions, files, blobs and usage tables: it
    /// takes time in proportion to the records, and reads only).
    ///
    /// ```
    /// # use bharatvoice_store::*;
    /// # #[tokio::main] async fn main() -> Result<(), Error> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// let store = Store::open(Config::new(dir.path())).await?;
    /// store.users().create(NewUser::new("asha", "asha@example.in")).await?;
    /// let stats = store.stats().await?;
    /// assert_eq!((stats.users, stats.files), (1, 0));
    /// # Ok(()) }
    /// ```
    #[tracing::instrument(skip_all)]
    pub async fn stats(&self) -> Result<StoreStats, Error> {
        crate::telemetry::observe(
            &self.db().telemetry,
            crate::telemetry::op_key!("store.stats"),
            async {
                let c = self.db().scan(crate::db::stats::count).await?;
                let config = self.config();
                let mut by_content_type: Vec<ContentTypeStats> = c
                    .by_type
                    .into_iter()
                    .map(
                        |(content_type, (files, plain, stored, raw))| ContentTypeStats {
                            content_type,
                            files,
                            plain_bytes: plain,
                            stored_bytes: stored,
                            ratio: if plain == 0 {
                                1.0
                            } else {
                                stored as f64 / plain as f64
                            },
                            uncompressed_files: raw,
                        },
                    )
                    .collect();
                by_content_type.sort_by(|a, b| {
                    (b.stored_bytes, &a.content_type).cmp(&(a.stored_bytes, &b.content_type))
                });
                let plain_bytes = by_content_type
                    .iter()
                    .fold(0u64, |sum, t| sum.saturating_add(t.plain_bytes));
                Ok(StoreStats {
                    users: c.users,
                    users_deleted: c.users_deleted,
                    sessions: c.sessions,
                    sessions_deleted: c.sessions_deleted,
                    turns: c.turns,
                    files: c.files,
                    files_deleted: c.files_deleted,
                    plain_bytes,
                    referenced_stored_bytes: c.referenced_stored_bytes,
                    blobs: c.blobs,
                    blob_stored_bytes: c.blob_stored_bytes,
                    dedup_saved_bytes: c
                        .referenced_stored_bytes
                        .saturating_sub(c.blob_stored_bytes),
                    by_content_type,
                    top_users: c
                        .by_owner
                        .into_iter()
                        .take(TOP_USERS)
                        .map(|(user, blobs, stored_bytes)| UserStats {
                            user,
                            blobs,
                            stored_bytes,
                        })
                        .collect(),
                    cache: self.cache().stats(),
                    db_file_bytes: file_size(&config.db_path()),
                    cache_file_bytes: file_size(&config.cache_path()),
                    default_retention_days: config.default_retention_days,
                    user_quota_bytes: config.quota.user_bytes,
                    min_free_bytes: config.quota.min_free_bytes,
                    data_region: self.region().map(str::to_string),
                })
            },
        )
        .await
    }
}

fn file_size(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}
