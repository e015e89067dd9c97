//! Which blob backend a store uses, as configured: the local directory
//! (the default), or a bucket of an S3-compatible object store.
//!
//! The types exist whatever the crate's features, so that a configuration
//! file naming `s3` parses everywhere; a build without the `s3` feature
//! refuses to open such a store with [`Error::Config`] rather than storing
//! blobs somewhere the configuration did not say.

use std::time::Duration;

use serde::Deserialize;

use crate::error::Error;

/// Where a store keeps its sealed blobs ([`Config::blob_backend`](crate::Config::blob_backend)).
///
/// ```
/// use bharatvoice_store::{BlobBackendConfig, Config, S3Config};
///
/// let s3 = S3Config::new("voice-blobs")
///     .endpoint("http://127.0.0.1:7480")
///     .prefix("device-42");
/// let config = Config::new("/srv/bv").blob_backend(BlobBackendConfig::S3(s3));
/// assert!(matches!(config.blob_backend, BlobBackendConfig::S3(_)));
/// ```
// Built once per open: its size does not matter, a plain variant reads better.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum BlobBackendConfig {
    /// `blobs/` under the data directory.
    #[default]
    Local,
    /// Objects in a bucket of an S3-compatible store (needs the crate's
    /// `s3` feature). Blobs are sealed on the device before they leave it;
    /// the metadata stays in `store.redb`.
    S3(S3Config),
}

/// A bucket of an S3-compatible object store (AWS S3, Ceph RADOS Gateway,
/// MinIO, ...). Anything left unset is taken from the usual `AWS_*`
/// variables (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`,
/// `AWS_ENDPOINT`, ...), as the AWS tools do.
#[derive(Clone, PartialEq, Eq)]
pub struct S3Config {
    /// The bucket; it must exist.
    pub bucket: String,
    /// The endpoint URL (`None`: AWS, or `AWS_ENDPOINT`).
    pub endpoint: Option<String>,
    /// The region (`None`: `AWS_REGION`, else `us-east-1`).
    pub region: Option<String>,
    /// Key prefix under which this store's objects live (`blobs/<address>`
    /// below it); two stores must not share one.
    pub prefix: String,
    /// Access key id (`None`: from the environment).
    pub access_key_id: Option<String>,
    /// Secret access key (`None`: from the environment). Never printed.
    pub secret_access_key: Option<String>,
    /// Whether plain `http://` endpoints are allowed (a test cluster on
    /// 127.0.0.1, say).
    pub allow_http: bool,
    /// Retries of a failed request (5xx, throttling, a timeout or a broken
    /// connection), with exponential backoff.
    pub max_retries: usize,
    /// The longest a request and its retries may take.
    pub retry_timeout: Duration,
    /// The longest one HTTP request may take.
    pub request_timeout: Duration,
    /// The longest a connection may take to open.
    pub connect_timeout: Duration,
    /// Blobs larger than this go up as multipart uploads of parts of this
    /// size (5 MiB to 512 MiB); at most two parts are held in memory.
    pub part_bytes: usize,
    /// Bytes of recently read objects kept in memory (still sealed), so
    /// that hot audio is not downloaded again; 0 turns it off. 64 MiB by
    /// default.
    pub read_cache_bytes: u64,
}

impl std::fmt::Debug for S3Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Config")
            .field("bucket", &self.bucket)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("prefix", &self.prefix)
            .field("access_key_id", &self.access_key_id)
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "[secret]"),
            )
            .field("allow_http", &self.allow_http)
            .field("max_retries", &self.max_retries)
            .field("retry_timeout", &self.retry_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("part_bytes", &self.part_bytes)
            .field("read_cache_bytes", &self.read_cache_bytes)
            .finish()
    }
}

/// The smallest part S3 accepts (but for the last).
const MIN_PART: usize = 5 << 20;
/// The largest part this store sends.
const MAX_PART: usize = 512 << 20;

impl S3Config {
    /// A bucket, everything else by default (credentials and endpoint from
    /// the environment, no prefix, 10 retries within 3 minutes, 8 MiB
    /// parts).
    pub fn new(bucket: impl Into<String>) -> S3Config {
        S3Config {
            bucket: bucket.into(),
            endpoint: None,
            region: None,
            prefix: String::new(),
            access_key_id: None,
            secret_access_key: None,
            allow_http: false,
            max_retries: 10,
            retry_timeout: Duration::from_secs(180),
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
            part_bytes: 8 << 20,
            read_cache_bytes: 64 << 20,
        }
    }

    /// The endpoint URL; an `http://` one is allowed.
    pub fn endpoint(mut self, url: impl Into<String>) -> S3Config {
        let url = url.into();
        if url.starts_with("http://") {
            self.allow_http = true;
        }
        self.endpoint = Some(url);
        self
    }

    /// The region.
    pub fn region(mut self, region: impl Into<String>) -> S3Config {
        self.region = Some(region.into());
        self
    }

    /// The key prefix of this store's objects.
    pub fn prefix(mut self, prefix: impl Into<String>) -> S3Config {
        self.prefix = prefix.into();
        self
    }

    /// Credentials, instead of the environment's.
    pub fn credentials(
        mut self,
        access_key_id: impl Into<String>,
        secret: impl Into<String>,
    ) -> S3Config {
        self.access_key_id = Some(access_key_id.into());
        self.secret_access_key = Some(secret.into());
        self
    }

    /// Retries of a failed request, and the longest they may take in all.
    pub fn retries(mut self, max_retries: usize, within: Duration) -> S3Config {
        self.max_retries = max_retries;
        self.retry_timeout = within;
        self
    }

    /// The longest one request may take, and a connection to open.
    pub fn timeouts(mut self, request: Duration, connect: Duration) -> S3Config {
        self.request_timeout = request;
        self.connect_timeout = connect;
        self
    }

    /// The part size of multipart uploads (5 MiB to 512 MiB).
    pub fn part_bytes(mut self, n: usize) -> S3Config {
        self.part_bytes = n;
        self
    }

    /// Bytes of recently read objects kept in memory (0: none).
    pub fn read_cache_bytes(mut self, n: u64) -> S3Config {
        self.read_cache_bytes = n;
        self
    }

    /// Fails with [`Error::Config`] on a setting that cannot work.
    pub(crate) fn validate(&self) -> Result<(), Error> {
        let bad = |reason: String| Err(Error::Config { reason });
        if self.bucket.is_empty() {
            return bad("blob_backend.bucket must not be empty".into());
        }
        if !(MIN_PART..=MAX_PART).contains(&self.part_bytes) {
            return bad(format!(
                "blob_backend.part_bytes must be {MIN_PART} to {MAX_PART}, got {}",
                self.part_bytes
            ));
        }
        if self.prefix.split('/').any(|p| p == "." || p == "..") {
            return bad(format!(
                "blob_backend.prefix {:?} holds . or ..",
                self.prefix
            ));
        }
        for (name, d) in [
            ("retry_timeout", self.retry_timeout),
            ("request_timeout", self.request_timeout),
            ("connect_timeout", self.connect_timeout),
        ] {
            if d.is_zero() {
                return bad(format!("blob_backend.{name} must not be zero"));
            }
        }
        Ok(())
    }
}

/// The TOML shape: `[blob_backend]` with `kind = "local"` or `"s3"`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileBlobBackend {
    kind: String,
    bucket: Option<String>,
    endpoint: Option<String>,
    region: Option<String>,
    prefix: Option<String>,
    access_key_id: Option<String>,
    secret_access_key: Option<String>,
    allow_http: Option<bool>,
    max_retries: Option<usize>,
    retry_timeout_secs: Option<u64>,
    request_timeout_secs: Option<u64>,
    connect_timeout_secs: Option<u64>,
    part_bytes: Option<usize>,
    read_cache_bytes: Option<u64>,
}

impl BlobBackendConfig {
    pub(crate) fn from_file(f: FileBlobBackend) -> Result<BlobBackendConfig, Error> {
        match f.kind.as_str() {
            "local" => Ok(BlobBackendConfig::Local),
            "s3" => {
                let Some(bucket) = f.bucket else {
                    return Err(Error::Config {
                        reason: "blob_backend kind = \"s3\" needs a bucket".into(),
                    });
                };
                let mut s = S3Config::new(bucket);
                if let Some(e) = f.endpoint {
                    s = s.endpoint(e);
                }
                s.region = f.region;
                s.prefix = f.prefix.unwrap_or_default();
                s.access_key_id = f.access_key_id;
                s.secret_access_key = f.secret_access_key;
                s.allow_http = f.allow_http.unwrap_or(s.allow_http);
                s.max_retries = f.max_retries.unwrap_or(s.max_retries);
                let secs = |v: Option<u64>, d: Duration| v.map_or(d, Duration::from_secs);
                s.retry_timeout = secs(f.retry_timeout_secs, s.retry_timeout);
                s.request_timeout = secs(f.request_timeout_secs, s.request_timeout);
                s.connect_timeout = secs(f.connect_timeout_secs, s.connect_timeout);
                s.part_bytes = f.part_bytes.unwrap_or(s.part_bytes);
                s.read_cache_bytes = f.read_cache_bytes.unwrap_or(s.read_cache_bytes);
                Ok(BlobBackendConfig::S3(s))
            }
            other => Err(Error::Config {
                reason: format!("blob_backend.kind must be \"local\" or \"s3\", got {other:?}"),
            }),
        }
    }

    /// Fails with [`Error::Config`] on a setting that cannot work.
    pub(crate) fn validate(&self) -> Result<(), Error> {
        match self {
            BlobBackendConfig::Local => Ok(()),
            #[cfg(feature = "s3")]
            BlobBackendConfig::S3(s) => s.validate(),
            #[cfg(not(feature = "s3"))]
            BlobBackendConfig::S3(s) => {
                s.validate()?;
                Err(Error::Config {
                    reason: format!(
                        "blob_backend s3://{} needs a build with the `s3` feature (cargo build --features s3)",
                        s.bucket
                    ),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_secret_never_reaches_debug_output() {
        let s = S3Config::new("b").credentials("AKID", "very-secret-key");
        let shown = format!("{:?}", BlobBackendConfig::S3(s));
        assert!(!shown.contains("very-secret-key"), "{shown}");
        assert!(
            shown.contains("AKID") && shown.contains("[secret]"),
            "{shown}"
        );
    }

    #[test]
    fn the_configuration_file_names_the_backend() {
        let parse = |body: &str| crate::Config::from_toml_str(&format!("[blob_backend]\n{body}"));
        let local = parse("kind = \"local\"").unwrap();
        assert_eq!(local.blob_backend, BlobBackendConfig::Local);
        let e = parse("kind = \"ftp\"").unwrap_err().to_string();
        assert!(e.contains("\"local\" or \"s3\""), "{e}");
        assert!(
            parse("kind = \"s3\"")
                .unwrap_err()
                .to_string()
                .contains("bucket")
        );
        let s3 = parse(
            "kind = \"s3\"\nbucket = \"b\"\nendpoint = \"http://127.0.0.1:7480\"\nprefix = \"p\"\npart_bytes = 16777216\nread_cache_bytes = 0",
        );
        if cfg!(feature = "s3") {
            let BlobBackendConfig::S3(s) = s3.unwrap().blob_backend else {
                panic!("not s3");
            };
            assert_eq!((s.bucket.as_str(), s.prefix.as_str()), ("b", "p"));
            assert!(s.allow_http, "an http:// endpoint is allowed");
            assert_eq!(s.part_bytes, 16 << 20);
            assert_eq!(s.read_cache_bytes, 0);
        } else {
            let e = s3.unwrap_err().to_string();
            assert!(e.contains("`s3` feature"), "{e}");
        }
    }

    #[test]
    fn settings_that_cannot_work_are_refused() {
        assert!(S3Config::new("b").validate().is_ok());
        assert!(S3Config::new("").validate().is_err());
        assert!(S3Config::new("b").part_bytes(1 << 20).validate().is_err());
        assert!(S3Config::new("b").prefix("a/../b").validate().is_err());
        let zero = S3Config::new("b").timeouts(Duration::ZERO, Duration::from_secs(1));
        assert!(zero.validate().is_err());
    }
}
