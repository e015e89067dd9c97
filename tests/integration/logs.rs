//! Capturing the store's log output in a test, safely beside other tests.
//!
//! `tracing` caches, once per call site and for the whole process, whether
//! anyone is interested in it. With one live dispatcher that answer comes
//! from the default of whichever thread first reaches the call site: a
//! sibling test's thread with no subscriber caches "never", and a capturing
//! test then misses the event (this made a direct-I/O test fail in a full
//! run). [`capture`] first installs, once, a global [`Anchor`] that never
//! records anything but answers "sometimes" for every call site, so the
//! cached interest can never be "never" and each event asks the emitting
//! thread's own subscriber.

use std::sync::{Arc, Mutex, Once};

use tracing::subscriber::{DefaultGuard, Interest};
use tracing::{Event, Metadata, Subscriber, span};
use tracing_subscriber::fmt::format::FmtSpan;

/// Log text written by a `fmt` subscriber on the capturing thread.
#[derive(Clone, Default)]
pub struct Logs(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer").extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    /// Everything captured so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("log buffer")).into_owned()
    }
}

/// Captures this thread's events at `level` and above (with span open and
/// close lines when `spans`), until the guard drops. Tests that capture run
/// on a current-thread runtime, so the store's async work logs here too.
pub fn capture(level: tracing::Level, spans: bool) -> (Logs, DefaultGuard) {
    static ANCHOR: Once = Once::new();
    ANCHOR.call_once(|| {
        // Fails only if a global default exists already, which then anchors.
        let _ = tracing::subscriber::set_global_default(Anchor);
    });
    let logs = Logs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_span_events(if spans { FmtSpan::FULL } else { FmtSpan::NONE })
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    (logs, tracing::subscriber::set_default(subscriber))
}

/// The process's global subscriber in the tests: interested "sometimes" in
/// everything, enabled for nothing.
struct Anchor;

impl Subscriber for Anchor {
    fn register_callsite(&self, _: &'static Metadata<'static>) -> Interest {
        Interest::sometimes()
    }
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        false
    }
    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        // Leaves the process's level to the capturing subscribers.
        Some(tracing::level_filters::LevelFilter::OFF)
    }
    fn new_span(&self, _: &span::Attributes<'_>) -> span::Id {
        span::Id::from_u64(1)
    }
    fn record(&self, _: &span::Id, _: &span::Record<'_>) {}
    fn record_follows_from(&self, _: &span::Id, _: &span::Id) {}
    fn event(&self, _: &Event<'_>) {}
    fn enter(&self, _: &span::Id) {}
    fn exit(&self, _: &span::Id) {}
}

/// A call site this test alone reaches.
fn probe_event(n: u32) {
    tracing::info!(probe = n, "log capture probe");
}

#[test]
fn a_call_site_first_reached_on_a_thread_without_a_subscriber_is_still_captured() {
    let (logs, _guard) = capture(tracing::Level::INFO, false);
    // Another thread, with no subscriber of its own, reaches the call site
    // first and so registers it.
    std::thread::spawn(|| probe_event(1))
        .join()
        .expect("probe thread");
    probe_event(2);
    let text = logs.text();
    assert!(text.contains("probe=2"), "event missed: {text:?}");
    assert!(
        !text.contains("probe=1"),
        "another thread's event: {text:?}"
    );
}
