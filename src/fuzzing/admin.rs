//! The `admin_request` target: both ends of the admin socket.
//!
//! The bytes are sent, as they are, to the `admin.sock` of a store opened
//! in a scratch directory: the server must answer with exactly one JSON
//! line, an `invalid_input` error for anything that is not one request
//! line, and a request it parsed must serialise back to itself. The same
//! bytes are then the answer of a stand-in server to an
//! [`AdminClient`](crate::AdminClient), which must return the answer's
//! value, [`Error::Remote`] or [`Error::Corrupt`].
//!
//! A `backup` request naming an absolute destination is parsed but not
//! sent: the store would write a backup wherever it names.

use std::path::PathBuf;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};

use crate::admin::{AdminRequest, Answer, MAX_REQUEST, SOCKET_NAME};
use crate::error::Error;
use crate::{AdminClient, Config, Store};

/// A store serving its admin socket and a stand-in server, with the
/// runtime they run on. Dropping it closes the store and removes its
/// directory.
pub struct AdminHarness {
    // Dropped in this order: the listener and the (closed) store before
    // their runtime.
    fake: tokio::net::UnixListener,
    store: Option<Store>,
    rt: tokio::runtime::Runtime,
    root: PathBuf,
    /// Removes `root` once the store is closed (fields drop after `drop`).
    _scratch: super::Scratch,
}

impl AdminHarness {
    /// Opens a store in a fresh scratch directory, and the stand-in.
    pub fn new() -> AdminHarness {
        let scratch = super::Scratch::new("admin");
        let root = scratch.path().to_owned();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a runtime");
        let config = Config::new(root.join("store"))
            .db_cache_bytes(4 << 20)
            .admin_socket(true);
        let store = rt
            .block_on(Store::open(config))
            .expect("the fuzz store opens");
        assert!(store.admin_socket().is_some(), "the admin socket listens");
        std::fs::create_dir_all(root.join("fake")).expect("a scratch directory");
        let fake = {
            let _entered = rt.enter();
            tokio::net::UnixListener::bind(root.join("fake").join(SOCKET_NAME))
                .expect("the stand-in binds")
        };
        AdminHarness {
            fake,
            store: Some(store),
            rt,
            root,
            _scratch: scratch,
        }
    }

    /// Runs `data` through both ends; returns 1 if the server ran it as a
    /// request, plus 1 if the client took it as an answer (a value or a
    /// remote error).
    pub fn run(&self, data: &[u8]) -> usize {
        usize::from(self.request(data)) + usize::from(self.answer(data))
    }

    /// `data` sent to the store's socket.
    fn request(&self, data: &[u8]) -> bool {
        let framed = &data[..data.len().min(MAX_REQUEST)];
        let line = framed
            .iter()
            .position(|b| *b == b'\n')
            .map(|at| &framed[..=at]);
        let parsed = line.and_then(|l| serde_json::from_slice::<AdminRequest>(l).ok());
        if let Some(request) = &parsed {
            let again = serde_json::to_vec(request).expect("a request serialises");
            let back: AdminRequest = serde_json::from_slice(&again).expect("a request reads back");
            assert_eq!(&back, request, "a request serialises back to itself");
            // A real backup (a directory, or a bucket on the network) is
            // not this harness's business.
            if matches!(request, AdminRequest::Backup { dest, .. }
                if dest.is_absolute() || dest.to_string_lossy().starts_with("s3://"))
            {
                return true;
            }
        }
        let socket = self.root.join("store").join(SOCKET_NAME);
        let reply = self.rt.block_on(async {
            let mut stream = tokio::net::UnixStream::connect(&socket)
                .await
                .expect("the admin socket accepts");
            // The server stops reading after the first line: the rest may
            // not be taken.
            if stream.write_all(data).await.is_err() || stream.shutdown().await.is_err() {
                return None;
            }
            let mut reply = Vec::new();
            stream.read_to_end(&mut reply).await.ok()?;
            Some(reply)
        });
        let Some(reply) = reply else {
            return parsed.is_some();
        };
        assert!(
            reply.ends_with(b"\n") && reply.iter().filter(|b| **b == b'\n').count() == 1,
            "the answer to {:?} is not one line: {:?}",
            String::from_utf8_lossy(data),
            String::from_utf8_lossy(&reply)
        );
        let answer: Answer = serde_json::from_slice(&reply).expect("the answer reads");
        match (&parsed, answer) {
            (Some(_), _) => {}
            (None, Answer::Error { kind, .. }) => {
                assert_eq!(kind, "invalid_input", "a bad request line is invalid input");
            }
            (None, Answer::Ok(v)) => panic!("a request that does not parse was answered: {v}"),
        }
        parsed.is_some()
    }

    /// `data` as the stand-in's answer to a `health` request.
    fn answer(&self, data: &[u8]) -> bool {
        let client = AdminClient::new(self.root.join("fake"));
        let answered = self.rt.block_on(async {
            let serve = async {
                let (stream, _) = self.fake.accept().await.expect("the client connects");
                let mut stream = tokio::io::BufReader::new(stream);
                let mut request = String::new();
                stream
                    .read_line(&mut request)
                    .await
                    .expect("a request line");
                let mut stream = stream.into_inner();
                // The client reads one line and may close before the rest.
                let _ = stream.write_all(data).await;
                let _ = stream.shutdown().await;
            };
            let (answered, ()) = tokio::join!(client.request(&AdminRequest::Health), serve);
            answered
        });
        match answered {
            Ok(_) | Err(Error::Remote { .. }) => true,
            Err(Error::Corrupt { .. }) => false,
            Err(other) => panic!("an answer gave a non-Remote, non-Corrupt error: {other}"),
        }
    }
}

impl Default for AdminHarness {
    fn default() -> Self {
        AdminHarness::new()
    }
}

impl Drop for AdminHarness {
    fn drop(&mut self) {
        if let Some(store) = self.store.take() {
            self.rt.block_on(store.close());
        }
    }
}

/// Runs `data` through a harness made on the first call and kept for the
/// process (the fuzz target's entry point).
pub fn admin_request(data: &[u8]) -> usize {
    static HARNESS: std::sync::OnceLock<AdminHarness> = std::sync::OnceLock::new();
    HARNESS.get_or_init(AdminHarness::new).run(data)
}

/// Request lines of every kind and answers, for the seed corpus and the
/// replay tests.
pub fn sample_admin_lines() -> Vec<(&'static str, Vec<u8>)> {
    let lines = [
        ("health", r#"{"op":"health"}"#),
        ("stats", r#"{"op":"stats"}"#),
        ("metrics", r#"{"op":"metrics"}"#),
        ("cache_stats", r#"{"op":"cache_stats"}"#),
        ("jobs", r#"{"op":"jobs"}"#),
        ("audit_tail", r#"{"op":"audit_tail","limit":20}"#),
        ("migrate_status", r#"{"op":"migrate_status"}"#),
        ("verify", r#"{"op":"verify","deep":true}"#),
        (
            "backup_relative",
            r#"{"op":"backup","dest":"backups/bv","keep":2,"no_links":true,"allow_region_change":false}"#,
        ),
        ("gc_job", r#"{"op":"gc","job":"purge","dry_run":true}"#),
        ("gc_all", r#"{"op":"gc","job":null,"dry_run":true}"#),
        ("answer_ok", r#"{"ok":{"status":"healthy","parts":[]}}"#),
        (
            "answer_error",
            r#"{"error":{"kind":"not_found","message":"no job named x"}}"#,
        ),
    ];
    lines
        .into_iter()
        .map(|(name, line)| (name, format!("{line}\n").into_bytes()))
        .collect()
}
