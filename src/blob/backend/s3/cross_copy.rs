//! An engine-side copy from another bucket of the same engine: S3's
//! `CopyObject` with an `x-amz-copy-source` naming the other bucket.
//!
//! Why here and by hand: `object_store`'s `copy` can only name its own
//! bucket as the source, so a store whose blobs sit in one bucket and
//! whose backups go to another on the same endpoint would read every blob
//! and upload it again. This one request is built here, signed with
//! `object_store`'s own SigV4 signer (`AwsAuthorizer`) under the target
//! client's credentials, and sent through an `object_store` HTTP client
//! with the target's options (TLS, timeouts, plain HTTP where allowed).
//! Anything the engine refuses (the target's credentials cannot read the
//! source bucket, an engine without cross-bucket copies) is reported as
//! refused, and the caller uploads instead.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use object_store::aws::{AmazonS3, AmazonS3ConfigKey, AwsAuthorizer};
use object_store::client::{HttpClient, HttpConnector, HttpRequest, ReqwestConnector};
use object_store::path::Path as Key;

use super::ObjectName;
use crate::blob::backend::choice::S3Config;
use crate::error::Error;

/// What the engine made of a copy.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum CrossCopy {
    /// The object is at its new key.
    Copied,
    /// The source bucket has no such object.
    NoSuchObject,
    /// The engine refused or failed (why, for the logs).
    Refused(String),
}

/// Sends copies into one bucket from other buckets of its engine.
pub(crate) struct CrossCopier {
    http: HttpClient,
    /// The endpoint, no trailing slash (requests are path-style).
    endpoint: String,
    bucket: String,
    region: String,
    /// The target's client: its credentials sign the copies.
    store: Arc<AmazonS3>,
    /// Set once the engine has refused a copy for good (no permission,
    /// no such operation): the rest are not asked for.
    given_up: AtomicBool,
}

impl CrossCopier {
    /// A copier into the bucket `config` names, signing with `store`'s
    /// credentials (the client of that bucket).
    pub(crate) fn new(config: &S3Config, store: Arc<AmazonS3>) -> Result<CrossCopier, Error> {
        let (builder, options) = super::builder(config);
        let region = builder
            .get_config_value(&AmazonS3ConfigKey::Region)
            .unwrap_or_else(|| "us-east-1".into());
        let endpoint = builder
            .get_config_value(&AmazonS3ConfigKey::Endpoint)
            .unwrap_or_else(|| format!("https://s3.{region}.amazonaws.com"));
        let http = ReqwestConnector::default()
            .connect(&options)
            .map_err(|e| Error::Config {
                reason: format!("s3://{}: {e}", config.bucket),
            })?;
        Ok(CrossCopier {
            http,
            endpoint: endpoint.trim_end_matches('/').to_string(),
            bucket: config.bucket.clone(),
            region,
            store,
            given_up: AtomicBool::new(false),
        })
    }

    /// Has the engine copy `from` (any bucket of this engine) to `to` in
    /// this bucket. One request, no retries: a refusal or a failure is
    /// `Refused`, and the caller falls back to an upload (which retries).
    /// After a refusal for good (`403`, `501`) no more copies are asked.
    pub(crate) async fn copy(&self, from: &ObjectName, to: &Key) -> CrossCopy {
        if self.given_up.load(Ordering::Relaxed) {
            return CrossCopy::Refused("the engine refused an earlier copy".into());
        }
        let request = match self.signed_request(from, to).await {
            Ok(r) => r,
            Err(why) => return CrossCopy::Refused(why),
        };
        let response = match self.http.execute(request).await {
            Ok(r) => r,
            Err(e) => return CrossCopy::Refused(e.to_string()),
        };
        let status = response.status();
        let body = match response.into_body().bytes().await {
            Ok(b) => b,
            Err(e) => return CrossCopy::Refused(format!("{status}: {e}")),
        };
        let verdict = judge(status.as_u16(), &body);
        if matches!(verdict, CrossCopy::Refused(_)) && matches!(status.as_u16(), 403 | 501) {
            self.given_up.store(true, Ordering::Relaxed);
        }
        verdict
    }

    async fn signed_request(&self, from: &ObjectName, to: &Key) -> Result<HttpRequest, String> {
        let credential = self
            .store
            .credentials()
            .get_credential()
            .await
            .map_err(|e| e.to_string())?;
        let url = format!(
            "{}/{}/{}",
            self.endpoint,
            encode(&self.bucket),
            encode(to.as_ref())
        );
        let source = format!("{}/{}", encode(&from.bucket), encode(from.key.as_ref()));
        let mut request = http::Request::builder()
            .method(http::Method::PUT)
            .uri(url)
            .header("x-amz-copy-source", source)
            .header(http::header::CONTENT_LENGTH, "0")
            .body(Vec::new().into())
            .map_err(|e| e.to_string())?;
        // The signer unwraps a few parses of what it is given; a panic in
        // it is a refusal, not a crash.
        let signed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            AwsAuthorizer::new(&credential, "s3", &self.region).try_authorize(&mut request, None)
        }));
        match signed {
            Ok(Ok(())) => Ok(request),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("the request signer panicked".into()),
        }
    }
}

/// Reads the engine's answer to a `CopyObject`: a 200 can still carry an
/// error document (S3 sends the status before the copy ends), so success
/// is a 2xx with a `CopyObjectResult`.
fn judge(status: u16, body: &[u8]) -> CrossCopy {
    let text = String::from_utf8_lossy(body);
    let code = text
        .split_once("<Code>")
        .and_then(|(_, rest)| rest.split_once("</Code>"))
        .map(|(code, _)| code.to_string());
    match (status, code.as_deref()) {
        (200..=299, None) if text.contains("CopyObjectResult") => CrossCopy::Copied,
        (_, Some("NoSuchKey")) => CrossCopy::NoSuchObject,
        (_, Some(code)) => CrossCopy::Refused(format!("{status} {code}")),
        _ => CrossCopy::Refused(format!("{status} without a copy result")),
    }
}

/// Percent-encodes all but S3's unreserved characters and `/`.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                out.push(char::from(b));
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_encoded_as_s3_signs_them() {
        assert_eq!(encode("p/blobs/ab12"), "p/blobs/ab12");
        assert_eq!(encode("a b+c=ग"), "a%20b%2Bc%3D%E0%A4%97");
        assert_eq!(encode("x~y_z.-"), "x~y_z.-");
    }

    #[test]
    fn only_a_copy_result_is_a_copy() {
        let ok = b"<?xml version=\"1.0\"?><CopyObjectResult><ETag>\"e\"</ETag></CopyObjectResult>";
        assert_eq!(judge(200, ok), CrossCopy::Copied);
        // A 200 that carries an error document is not a copy.
        let late = b"<Error><Code>InternalError</Code><Message>m</Message></Error>";
        assert_eq!(
            judge(200, late),
            CrossCopy::Refused("200 InternalError".into())
        );
        let missing = b"<Error><Code>NoSuchKey</Code></Error>";
        assert_eq!(judge(404, missing), CrossCopy::NoSuchObject);
        let denied = b"<Error><Code>AccessDenied</Code></Error>";
        assert_eq!(
            judge(403, denied),
            CrossCopy::Refused("403 AccessDenied".into())
        );
        assert_eq!(
            judge(200, b""),
            CrossCopy::Refused("200 without a copy result".into())
        );
        assert_eq!(
            judge(502, b"<html>bad gateway</html>"),
            CrossCopy::Refused("502 without a copy result".into())
        );
    }
}
