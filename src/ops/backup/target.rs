//! Where a backup goes and where a restore reads from: a directory, or a
//! prefix in a bucket of an S3-compatible object store (feature `s3`).
//!
//! The type exists whatever the features, so that code naming an `s3://`
//! target compiles everywhere; a build without `s3` refuses one with
//! [`Error::Config`].

use std::path::{Path, PathBuf};

use crate::blob::backend::choice::S3Config;
use crate::error::Error;

/// A backup destination ([`Store::backup`](crate::Store::backup),
/// [`Store::restore`](crate::Store::restore), [`Store::backups`](crate::Store::backups)).
///
/// A path converts into a directory target; a string is read with
/// [`BackupTarget::parse`] (`s3://bucket/prefix`, or a directory).
///
/// ```
/// use bharatvoice_store::{BackupTarget, S3Config};
///
/// let dir: BackupTarget = std::path::Path::new("/srv/backups").into();
/// assert!(matches!(dir, BackupTarget::Dir(_)));
/// let s3 = BackupTarget::parse("s3://fleet-backups/device-42", None);
/// let BackupTarget::S3(config) = &s3 else { unreachable!() };
/// assert_eq!((config.bucket.as_str(), config.prefix.as_str()), ("fleet-backups", "device-42"));
/// assert_eq!(s3.to_string(), "s3://fleet-backups/device-42");
/// ```
// Built once per backup: a plain variant reads better than a box.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackupTarget {
    /// A directory on a file system the store can reach.
    Dir(PathBuf),
    /// A prefix in a bucket: `S3Config::prefix` is the destination's root
    /// (blobs, generations and the destination record go below it).
    S3(S3Config),
}

impl BackupTarget {
    /// Reads `s3://bucket/prefix` as an object-storage target, anything
    /// else as a directory. The endpoint, region and credentials of an
    /// `s3://` target come from `like` when given (the store's own blob
    /// bucket, say: the same engine), else from the usual `AWS_*`
    /// variables (`AWS_ENDPOINT_URL`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`,
    /// ...).
    pub fn parse(text: &str, like: Option<&S3Config>) -> BackupTarget {
        let Some(rest) = text.strip_prefix("s3://") else {
            return BackupTarget::Dir(PathBuf::from(text));
        };
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let mut config = match like {
            Some(l) => S3Config {
                bucket: bucket.to_string(),
                ..l.clone()
            },
            None => {
                let c = S3Config::new(bucket);
                match std::env::var("AWS_ENDPOINT_URL").or_else(|_| std::env::var("AWS_ENDPOINT")) {
                    Ok(url) if !url.is_empty() => c.endpoint(url),
                    _ => c,
                }
            }
        };
        config.prefix = prefix.trim_matches('/').to_string();
        // Backups are read once and written once: nothing to cache.
        config.read_cache_bytes = 0;
        BackupTarget::S3(config)
    }

    /// The directory, if this is one.
    pub fn as_dir(&self) -> Option<&Path> {
        match self {
            BackupTarget::Dir(p) => Some(p),
            BackupTarget::S3(_) => None,
        }
    }

    /// Fails with [`Error::Config`] on an `s3://` target that cannot work
    /// (no bucket, or a build without the `s3` feature).
    pub(crate) fn check(&self) -> Result<(), Error> {
        let BackupTarget::S3(c) = self else {
            return Ok(());
        };
        if !cfg!(feature = "s3") {
            return Err(Error::Config {
                reason: format!(
                    "backup target {self}: this build has no object storage (cargo feature `s3`)"
                ),
            });
        }
        if c.bucket.is_empty() {
            return Err(Error::Config {
                reason: "backup target s3://: no bucket named".into(),
            });
        }
        if c.prefix.split('/').any(|p| p == "." || p == "..") {
            return Err(Error::Config {
                reason: format!("backup target {self}: a prefix may not hold . or .."),
            });
        }
        Ok(())
    }
}

impl std::fmt::Display for BackupTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BackupTarget::Dir(p) => write!(f, "{}", p.display()),
            BackupTarget::S3(c) if c.prefix.is_empty() => write!(f, "s3://{}", c.bucket),
            BackupTarget::S3(c) => write!(f, "s3://{}/{}", c.bucket, c.prefix),
        }
    }
}

impl From<PathBuf> for BackupTarget {
    fn from(p: PathBuf) -> Self {
        BackupTarget::Dir(p)
    }
}

impl From<&Path> for BackupTarget {
    fn from(p: &Path) -> Self {
        BackupTarget::Dir(p.to_path_buf())
    }
}

impl From<&PathBuf> for BackupTarget {
    fn from(p: &PathBuf) -> Self {
        BackupTarget::Dir(p.clone())
    }
}

impl From<&str> for BackupTarget {
    /// [`BackupTarget::parse`] with the endpoint from the environment.
    fn from(text: &str) -> Self {
        BackupTarget::parse(text, None)
    }
}

impl From<String> for BackupTarget {
    /// [`BackupTarget::parse`] with the endpoint from the environment.
    fn from(text: String) -> Self {
        BackupTarget::parse(&text, None)
    }
}

impl From<S3Config> for BackupTarget {
    fn from(c: S3Config) -> Self {
        BackupTarget::S3(c)
    }
}
