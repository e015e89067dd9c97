//! The admin socket: while an application holds the data directory (redb
//! lets no other process open `store.redb`, not even to read), operators
//! still need its health, stats and metrics, and to run verify, backup
//! and gc. The store listens on `admin.sock` in the data directory (mode
//! 0600, the peer's uid checked) for those requests and no others: nothing
//! that writes a user's data is served there.
//!
//! The protocol is one JSON request line, one JSON answer line:
//! `{"op":"health"}` → `{"ok":{...}}` or `{"error":{"kind":..,"message":..}}`.

mod handle;
#[cfg(unix)]
pub(crate) mod server;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::Error;

/// The socket's file name in the data directory.
pub const SOCKET_NAME: &str = "admin.sock";

/// The longest request line the server reads.
pub(crate) const MAX_REQUEST: usize = 64 << 10;

/// The longest answer line a client reads (the largest real answer, a
/// metrics report, is tens of kilobytes): whatever listens on the socket,
/// a client's memory stays bounded.
pub(crate) const MAX_ANSWER: usize = 16 << 20;

/// What an operator may ask a live store through its admin socket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
#[non_exhaustive]
pub enum AdminRequest {
    /// [`Store::health`](crate::Store::health).
    Health,
    /// [`Store::stats`](crate::Store::stats).
    Stats,
    /// [`Store::metrics_report`](crate::Store::metrics_report).
    Metrics,
    /// [`Cache::stats`](crate::Cache::stats).
    CacheStats,
    /// [`Jobs::list`](crate::Jobs::list).
    Jobs,
    /// [`Store::audit_events`](crate::Store::audit_events).
    AuditTail {
        /// How many events, newest first.
        limit: usize,
    },
    /// The schema version the store runs (an open store is migrated).
    MigrateStatus,
    /// [`Store::verify`](crate::Store::verify) without repair (repairs
    /// need the store to themselves: stop the application first).
    Verify {
        /// Read and authenticate every blob.
        deep: bool,
    },
    /// [`Store::backup`](crate::Store::backup) into an absolute path or an
    /// `s3://` URL.
    Backup {
        /// The destination directory (absolute), or `s3://bucket/prefix`
        /// (the serving store's endpoint and credentials).
        dest: PathBuf,
        /// Generations to keep.
        keep: Option<usize>,
        /// Copy files instead of hard-linking them.
        no_links: bool,
        /// Accept a destination recorded in another region.
        allow_region_change: bool,
    },
    /// A lifecycle pass: one job (to the end) or all of them.
    Gc {
        /// The job's name, or every lifecycle job.
        job: Option<String>,
        /// Report what would be done, change nothing.
        dry_run: bool,
    },
}

/// One answer line.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Answer {
    Ok(serde_json::Value),
    Error { kind: String, message: String },
}

/// The client side: what `bvstore` uses when the store is locked.
///
/// ```no_run
/// # use bharatvoice_store::*;
/// # #[tokio::main] async fn main() -> Result<(), Error> {
/// let client = AdminClient::new("/var/lib/bharatvoice");
/// let health = client.request(&AdminRequest::Health).await?;
/// println!("{}", health["status"]);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct AdminClient {
    path: PathBuf,
}

impl AdminClient {
    /// A client of the store whose data directory is `data_dir`.
    pub fn new(data_dir: impl AsRef<Path>) -> AdminClient {
        AdminClient {
            path: data_dir.as_ref().join(SOCKET_NAME),
        }
    }

    /// The socket's path.
    pub fn socket_path(&self) -> &Path {
        &self.path
    }

    /// The running store's [`MetricsReport`](crate::MetricsReport).
    #[cfg(unix)]
    pub async fn metrics(&self) -> Result<crate::MetricsReport, Error> {
        let answer = self.request(&AdminRequest::Metrics).await?;
        serde_json::from_value(answer)
            .map_err(|e| Error::corrupt("the admin socket's metrics", e.to_string()))
    }

    /// Sends one request and returns the answer's JSON. A failure in the
    /// serving store is [`Error::Remote`]; no socket, or no store
    /// listening on it, is [`Error::Io`].
    #[cfg(unix)]
    pub async fn request(&self, request: &AdminRequest) -> Result<serde_json::Value, Error> {
        use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
        let context = || {
            format!(
                "talking to the store's admin socket {}",
                self.path.display()
            )
        };
        let mut stream = tokio::net::UnixStream::connect(&self.path)
            .await
            .map_err(|e| Error::io(context(), e))?;
        let mut line = serde_json::to_vec(request)
            .map_err(|e| Error::invalid("admin request", e.to_string()))?;
        line.push(b'\n');
        stream
            .write_all(&line)
            .await
            .map_err(|e| Error::io(context(), e))?;
        // Bytes, not a String: an answer that is not UTF-8 is a corrupt
        // answer, not a failure to talk to the socket.
        let mut answer = Vec::new();
        BufReader::new(stream)
            .take(MAX_ANSWER as u64 + 1)
            .read_until(b'\n', &mut answer)
            .await
            .map_err(|e| Error::io(context(), e))?;
        if answer.len() > MAX_ANSWER {
            return Err(Error::corrupt(
                "the admin socket's answer",
                format!("longer than {MAX_ANSWER} bytes"),
            ));
        }
        match serde_json::from_slice::<Answer>(&answer) {
            Ok(Answer::Ok(v)) => Ok(v),
            Ok(Answer::Error { kind, message }) => Err(Error::Remote { kind, message }),
            Err(e) => Err(Error::corrupt(
                "the admin socket's answer",
                if answer.is_empty() {
                    "the store closed the connection without an answer".to_owned()
                } else {
                    e.to_string()
                },
            )),
        }
    }
}
