//! The object backend throttled: a proxy in front of the gateway answers
//! the requests it is told to with `503 Slow Down` (S3's throttling
//! answer, XML code `SlowDown`) and passes the others on. A few of them
//! are absorbed by the client's retries with backoff; more than the
//! configured retries give a clear error. Needs a running engine
//! (`BV_TEST_S3_ENDPOINT`); without one each test says why it is skipped.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bharatvoice_store::{Actor, BlobBackendConfig, PutOptions, Store};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::backends::{ENGINE, config, s3_config, s3_endpoint};
use crate::common::{TestStore, noise};

const SLOW_DOWN: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>";

/// A proxy on 127.0.0.1 that refuses the first `refuse` connections'
/// requests with 503 (`u64::MAX`: all of them) and pipes the others to
/// the gateway. A refused connection is closed after its answer, so that
/// every retry comes on a new one and is counted.
struct Throttle {
    endpoint: String,
    refused: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Throttle {
    async fn start(upstream: &str, refuse: u64) -> Throttle {
        let upstream = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let refused = Arc::new(AtomicU64::new(0));
        let count = Arc::clone(&refused);
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let refuse_this = count
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                        (n < refuse).then_some(n + 1)
                    })
                    .is_ok();
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    if refuse_this {
                        let _ = slow_down(client).await;
                    } else {
                        let _ = pipe(client, &upstream).await;
                    }
                });
            }
        });
        Throttle {
            endpoint,
            refused,
            task,
        }
    }

    fn refused(&self) -> u64 {
        self.refused.load(Ordering::SeqCst)
    }
}

impl Drop for Throttle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads one request (its head, then the body its `Content-Length`
/// gives) and answers 503 SlowDown, closing the connection.
async fn slow_down(mut client: TcpStream) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if client.read(&mut byte).await? == 0 {
            return Ok(());
        }
        head.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&head).to_ascii_lowercase();
    let body: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    tokio::io::copy(&mut (&mut client).take(body), &mut tokio::io::sink()).await?;
    let answer = format!(
        "HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{SLOW_DOWN}",
        SLOW_DOWN.len()
    );
    client.write_all(answer.as_bytes()).await?;
    client.shutdown().await
}

async fn pipe(mut client: TcpStream, upstream: &str) -> std::io::Result<()> {
    let mut gateway = TcpStream::connect(upstream).await?;
    tokio::io::copy_bidirectional(&mut client, &mut gateway).await?;
    Ok(())
}

/// Two throttled answers in a row are retried (three retries allowed):
/// the store opens, stores a file and reads it back as if nothing had
/// happened.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttled_requests_are_retried_and_the_store_goes_on() {
    let Some(endpoint) = s3_endpoint() else {
        return eprintln!("skipped: BV_TEST_S3_ENDPOINT is not set");
    };
    let _engine = ENGINE.read().await;
    let throttle = Throttle::start(&endpoint, 2).await;
    let s3 = s3_config(&throttle.endpoint)
        .retries(3, Duration::from_secs(30))
        .timeouts(Duration::from_secs(10), Duration::from_secs(2));
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(config(dir.path(), BlobBackendConfig::S3(s3)))
        .await
        .expect("two 503s are within three retries");
    assert_eq!(
        throttle.refused(),
        2,
        "the first two requests were throttled"
    );
    let t = TestStore { dir, store };
    let u = t.user("throttled").await;
    let data = noise(300 << 10, 7);
    let f = t
        .put_as(&u, &data, PutOptions::content_type("audio/wav"))
        .await;
    let back = t.store.files().read(Actor::User(u.id), f.id).await.unwrap();
    assert!(back == data);
    t.store.close().await;
}

/// An engine that throttles every request: after the configured retries
/// (two here, so three requests) the open fails with a storage error
/// that names the endpoint and says the engine asked to slow down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_engine_that_keeps_throttling_is_a_clear_error_after_the_retries() {
    let Some(endpoint) = s3_endpoint() else {
        return eprintln!("skipped: BV_TEST_S3_ENDPOINT is not set");
    };
    let _engine = ENGINE.read().await;
    let throttle = Throttle::start(&endpoint, u64::MAX).await;
    let s3 = s3_config(&throttle.endpoint)
        .retries(2, Duration::from_secs(30))
        .timeouts(Duration::from_secs(10), Duration::from_secs(2));
    let dir = tempfile::tempdir().unwrap();
    let Err(err) = Store::open(config(dir.path(), BlobBackendConfig::S3(s3))).await else {
        panic!("an engine that throttles every request cannot be used");
    };
    eprintln!("the open's error: {err}");
    assert_eq!(err.kind(), "storage", "{err}");
    let text = err.to_string();
    assert!(
        text.contains(&throttle.endpoint) || text.contains("s3://"),
        "{text}"
    );
    assert!(text.contains("503") || text.contains("SlowDown"), "{text}");
    assert_eq!(throttle.refused(), 3, "one request and two retries");
}
