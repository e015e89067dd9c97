//! What each admin request does: the store's own public operations, their
//! results as JSON.

use serde::Serialize;

use super::AdminRequest;
use crate::error::Error;
use crate::store::Store;

fn json<T: Serialize>(value: &T) -> Result<serde_json::Value, Error> {
    serde_json::to_value(value).map_err(|e| Error::invalid("admin answer", e.to_string()))
}

/// Runs one request against the live store.
pub(crate) async fn handle(
    store: &Store,
    request: AdminRequest,
) -> Result<serde_json::Value, Error> {
    match request {
        AdminRequest::Health => json(&store.health().await),
        AdminRequest::Stats => json(&store.stats().await?),
        AdminRequest::Metrics => json(&store.metrics_report().await?),
        AdminRequest::CacheStats => json(&store.cache().stats()),
        AdminRequest::Jobs => json(&store.jobs().list()),
        AdminRequest::AuditTail { limit } => json(&store.audit_events(limit.clamp(1, 10_000))?),
        // A running store is migrated: nothing pending. The same shape as
        // `Store::migration_status` gives a closed store.
        AdminRequest::MigrateStatus => json(&crate::MigrationStatus {
            applied: Some(store.schema_version()?),
            latest: crate::SCHEMA_VERSION,
            pending: Vec::new(),
        }),
        AdminRequest::Verify { deep } => {
            let options = crate::VerifyOptions {
                deep,
                ..Default::default()
            };
            json(&store.verify(options).await?)
        }
        AdminRequest::Backup {
            dest,
            keep,
            no_links,
            allow_region_change,
        } => {
            let like = match &store.config().blob_backend {
                crate::BlobBackendConfig::S3(c) => Some(c),
                crate::BlobBackendConfig::Local => None,
            };
            let target = match dest.to_str() {
                Some(url) if url.starts_with("s3://") => crate::BackupTarget::parse(url, like),
                _ if dest.is_absolute() => crate::BackupTarget::Dir(dest),
                _ => {
                    return Err(Error::invalid(
                        "backup destination",
                        "must be an absolute path or an s3:// URL over the admin socket",
                    ));
                }
            };
            let options = crate::BackupOptions {
                keep,
                no_links,
                allow_region_change,
                ..Default::default()
            };
            json(&store.backup(target, options).await?)
        }
        AdminRequest::Gc { job, dry_run } => {
            let lifecycle = store.lifecycle();
            match job {
                Some(name) => json(&vec![lifecycle.run_to_end(&name, dry_run).await?]),
                None => json(&lifecycle.run_all(dry_run).await?),
            }
        }
    }
}
