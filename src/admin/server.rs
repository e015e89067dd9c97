//! The admin socket's server: a task that accepts connections on
//! `admin.sock`, checks the peer is this process's user, and answers one
//! request per connection from the store it holds a weak handle to.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

use super::{AdminRequest, Answer, MAX_REQUEST, SOCKET_NAME};
use crate::error::Error;
use crate::store::WeakStore;

/// Connections served at once; more wait in the listen queue.
const CONCURRENT: usize = 8;
/// How long a client has to send its request.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// A running admin socket; stopping it (or dropping it) ends the task and
/// removes the socket file.
pub(crate) struct AdminServer {
    task: tokio::task::JoinHandle<()>,
    path: PathBuf,
}

impl AdminServer {
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for AdminServer {
    fn drop(&mut self) {
        self.task.abort();
        remove_if_socket(&self.path);
    }
}

/// Removes `path` if it is a socket: only the store makes one there, and
/// the store's lock (held by the caller) says no other store is using it.
fn remove_if_socket(path: &Path) {
    use std::os::unix::fs::FileTypeExt;
    if let Ok(meta) = std::fs::symlink_metadata(path)
        && meta.file_type().is_socket()
    {
        let _ = std::fs::remove_file(path);
    }
}

/// Binds `admin.sock` in `data_dir` (replacing a socket left by a process
/// that ended without removing it; refusing anything else there) and
/// starts serving.
pub(crate) fn start(data_dir: &Path, store: WeakStore) -> Result<AdminServer, Error> {
    use std::os::unix::fs::PermissionsExt;
    let path = data_dir.join(SOCKET_NAME);
    if std::fs::symlink_metadata(&path).is_ok() {
        remove_if_socket(&path);
        if std::fs::symlink_metadata(&path).is_ok() {
            return Err(Error::invalid(
                "admin socket",
                format!(
                    "{} exists and is not a socket; it was left alone",
                    path.display()
                ),
            ));
        }
    }
    let listener = UnixListener::bind(&path)
        .map_err(|e| Error::io(format!("binding the admin socket {}", path.display()), e))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| Error::io(format!("restricting {}", path.display()), e))?;
    // The socket file is this process's: its owner is the user to serve.
    let me = std::os::unix::fs::MetadataExt::uid(
        &std::fs::symlink_metadata(&path)
            .map_err(|e| Error::io(format!("reading {}", path.display()), e))?,
    );
    let limit = Arc::new(tokio::sync::Semaphore::new(CONCURRENT));
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            let Ok(permit) = Arc::clone(&limit).acquire_owned().await else {
                return;
            };
            let store = store.clone();
            tokio::spawn(async move {
                if let Err(e) = serve(stream, store, me).await {
                    tracing::debug!(error = %e, "admin connection ended with an error");
                }
                drop(permit);
            });
        }
    });
    tracing::info!(path = %path.display(), "admin socket listening");
    Ok(AdminServer { task, path })
}

/// Whether the peer runs as `me` (the owner of the socket file: this
/// process's user) or as root.
fn peer_allowed(stream: &UnixStream, me: u32) -> bool {
    match stream.peer_cred() {
        Ok(cred) => cred.uid() == me || cred.uid() == 0,
        Err(_) => false,
    }
}

async fn serve(stream: UnixStream, store: WeakStore, me: u32) -> std::io::Result<()> {
    if !peer_allowed(&stream, me) {
        tracing::warn!("admin socket: refused a peer running as another user");
        let answer = Answer::Error {
            kind: "permission_denied".into(),
            message: "the admin socket serves only the store's own user".into(),
        };
        return write_answer(stream, &answer).await;
    }
    let mut reader = BufReader::new(stream).take(MAX_REQUEST as u64);
    // Bytes, not a String: a line that is not UTF-8 is a bad request to
    // answer, not a read error that drops the connection unanswered.
    let mut line = Vec::new();
    let read = tokio::time::timeout(READ_TIMEOUT, reader.read_until(b'\n', &mut line)).await;
    let stream = reader.into_inner().into_inner();
    let answer = match read {
        Err(_) => error_answer(&Error::invalid("admin request", "none arrived in 10 s")),
        Ok(Err(e)) => return Err(e),
        Ok(Ok(_)) if !line.ends_with(b"\n") => error_answer(&Error::invalid(
            "admin request",
            format!("must be one line of at most {MAX_REQUEST} bytes"),
        )),
        Ok(Ok(_)) => match serde_json::from_slice::<AdminRequest>(&line) {
            Err(e) => error_answer(&Error::invalid("admin request", e.to_string())),
            Ok(request) => match store.upgrade() {
                None => error_answer(&Error::Closed),
                Some(store) => {
                    use tracing::Instrument;
                    let span = tracing::info_span!("admin", ?request);
                    match super::handle::handle(&store, request)
                        .instrument(span)
                        .await
                    {
                        Ok(v) => Answer::Ok(v),
                        Err(e) => error_answer(&e),
                    }
                }
            },
        },
    };
    write_answer(stream, &answer).await
}

fn error_answer(e: &Error) -> Answer {
    Answer::Error {
        kind: match e {
            Error::Remote { kind, .. } => kind.clone(),
            e => e.kind().to_owned(),
        },
        message: e.to_string(),
    }
}

async fn write_answer(mut stream: UnixStream, answer: &Answer) -> std::io::Result<()> {
    let mut bytes = serde_json::to_vec(answer).map_err(std::io::Error::other)?;
    bytes.push(b'\n');
    stream.write_all(&bytes).await?;
    stream.shutdown().await
}
