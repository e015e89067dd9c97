//! Operation metrics: the registry, the Prometheus text (parsed back with
//! a real parser), the `metrics` facade, snapshots into the metrics table
//! and the node_exporter textfile.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bharatvoice_store::{Error, MetricsConfig, NewUser, Store, UserId};
use prometheus_parse::{Scrape, Value};

use crate::common::{bvstore, config, stderr};

fn parse(text: &str) -> Scrape {
    Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).expect("valid exposition")
}

fn find<'a>(scrape: &'a Scrape, metric: &str, labels: &[(&str, &str)]) -> Option<&'a Value> {
    scrape
        .samples
        .iter()
        .find(|s| s.metric == metric && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| &s.value)
}

#[tokio::test]
async fn the_prometheus_text_parses_back_with_every_operation_and_error() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(config(dir.path())).await.unwrap();
    store
        .users()
        .create(NewUser::new("asha", "asha@example.in"))
        .await
        .unwrap();
    let missing = store.users().get(UserId::new());
    assert!(matches!(missing, Err(Error::NotFound { .. })));
    store.cache().set("k", "v").await.unwrap();
    let report = store.metrics_report().await.unwrap();
    let scrape = parse(&report.prometheus());
    assert_eq!(
        find(&scrape, "bv_operations_total", &[("op", "users.create")]),
        Some(&Value::Counter(1.0))
    );
    assert_eq!(
        find(
            &scrape,
            "bv_operation_errors_total",
            &[("op", "users.get"), ("kind", "not_found")]
        ),
        Some(&Value::Counter(1.0))
    );
    match find(
        &scrape,
        "bv_operation_duration_seconds",
        &[("op", "users.create")],
    ) {
        Some(Value::Summary(qs)) => {
            assert_eq!(qs.len(), 3);
            assert!(qs.iter().all(|q| q.count > 0.0 && q.count < 10.0), "{qs:?}");
        }
        other => panic!("no summary for users.create: {other:?}"),
    }
    match find(&scrape, "bv_file_bytes", &[("file", "store.redb")]) {
        Some(Value::Gauge(v)) => assert!(*v > 0.0),
        other => panic!("{other:?}"),
    }
    assert!(find(&scrape, "bv_disk_available_bytes", &[]).is_some());
    assert!(find(&scrape, "bv_job_runs_total", &[("job", "metrics-snapshot")]).is_some());
    let op = report.operation("users.get").unwrap();
    assert_eq!((op.calls, op.error_count()), (1, 1));
    store.close().await;
    drop(store);

    // The CLI's exposition of a store nobody holds parses too.
    let out = bvstore(dir.path(), &["metrics", "--prometheus"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let scrape = parse(&String::from_utf8(out.stdout).unwrap());
    assert!(find(&scrape, "bv_file_bytes", &[("file", "store.redb")]).is_some());
}

#[derive(Default)]
struct Seen {
    counters: Mutex<HashMap<String, Arc<AtomicU64>>>,
    histograms: Mutex<HashMap<String, Arc<AtomicU64>>>,
}

struct TestCounter(Arc<AtomicU64>);
impl metrics::CounterFn for TestCounter {
    fn increment(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    fn absolute(&self, n: u64) {
        self.0.store(n, Ordering::Relaxed);
    }
}
struct TestHistogram(Arc<AtomicU64>);
impl metrics::HistogramFn for TestHistogram {
    fn record(&self, _: f64) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

struct Recorder(Arc<Seen>);

fn key_name(key: &metrics::Key) -> String {
    let labels: Vec<String> = key
        .labels()
        .map(|l| format!("{}={}", l.key(), l.value()))
        .collect();
    format!("{}{{{}}}", key.name(), labels.join(","))
}

impl metrics::Recorder for Recorder {
    fn describe_counter(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn describe_gauge(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn describe_histogram(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn register_counter(&self, key: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Counter {
        let cell = Arc::clone(
            self.0
                .counters
                .lock()
                .unwrap()
                .entry(key_name(key))
                .or_default(),
        );
        metrics::Counter::from_arc(Arc::new(TestCounter(cell)))
    }
    fn register_gauge(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Gauge {
        metrics::Gauge::noop()
    }
    fn register_histogram(
        &self,
        key: &metrics::Key,
        _: &metrics::Metadata<'_>,
    ) -> metrics::Histogram {
        let cell = Arc::clone(
            self.0
                .histograms
                .lock()
                .unwrap()
                .entry(key_name(key))
                .or_default(),
        );
        metrics::Histogram::from_arc(Arc::new(TestHistogram(cell)))
    }
}

#[tokio::test]
async fn health_flush_audit_and_the_metrics_report_are_counted_too() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(config(dir.path())).await.unwrap();
    store.health().await;
    store.health().await;
    store.flush().await.unwrap();
    store.audit_events(10).unwrap();
    store.metrics_report().await.unwrap();
    let report = store.metrics_report().await.unwrap();
    let calls = |op: &str| {
        report
            .operations
            .iter()
            .find(|o| o.op == op)
            .map(|o| o.calls)
            .unwrap_or_else(|| panic!("{op} not counted: {:?}", report.operations))
    };
    assert_eq!(calls("store.health"), 2);
    assert!(calls("store.flush") >= 1);
    assert_eq!(calls("store.audit_events"), 1);
    // A call is counted when it begins: the report counts itself.
    assert!(calls("store.metrics_report") >= 2);
    store.close().await;
}

#[tokio::test]
async fn an_applications_recorder_sees_the_stores_operations() {
    let seen = Arc::new(Seen::default());
    metrics::set_global_recorder(Recorder(Arc::clone(&seen))).expect("the only recorder");
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(config(dir.path())).await.unwrap();
    // An operation name no other test uses, so the counts are this test's.
    for _ in 0..3 {
        store.quotas().disk_space().unwrap();
    }
    let _ = store.privacy().summary(UserId::new()).await;
    let count = |map: &Mutex<HashMap<String, Arc<AtomicU64>>>, k: &str| {
        map.lock()
            .unwrap()
            .get(k)
            .map(|c| c.load(Ordering::Relaxed))
    };
    assert!(count(&seen.counters, "bv_operations_total{op=quotas.disk_space}").unwrap() >= 3);
    assert!(
        count(
            &seen.histograms,
            "bv_operation_duration_seconds{op=quotas.disk_space}"
        )
        .unwrap()
            >= 3
    );
    assert!(
        count(
            &seen.counters,
            "bv_operation_errors_total{op=privacy.summary,kind=not_found}"
        )
        .unwrap()
            >= 1
    );
    store.close().await;
}

#[tokio::test]
async fn snapshots_hold_what_happened_since_the_last_one() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(config(dir.path())).await.unwrap();
    assert_eq!(store.last_metrics_snapshot().await.unwrap(), None);
    let asha = store
        .users()
        .create(NewUser::new("asha", "asha@example.in"))
        .await
        .unwrap();
    store.jobs().run("metrics-snapshot").await.unwrap();
    let (first_at, first) = store.last_metrics_snapshot().await.unwrap().unwrap();
    let calls = |samples: &[bharatvoice_store::MetricSample], op: &str| {
        samples
            .iter()
            .find(|s| s.name == "bv.op.calls" && s.labels.get("op").map(String::as_str) == Some(op))
            .map(|s| s.value)
    };
    assert_eq!(calls(&first, "users.create"), Some(1.0));
    assert!(first.iter().any(|s| s.name == "bv.file_bytes"));
    for _ in 0..2 {
        store.users().get(asha.id).unwrap();
    }
    store.jobs().run("metrics-snapshot").await.unwrap();
    let (second_at, second) = store.last_metrics_snapshot().await.unwrap().unwrap();
    assert!(second_at > first_at);
    assert_eq!(calls(&second, "users.get"), Some(2.0));
    assert_eq!(
        calls(&second, "users.create"),
        None,
        "no create since the first"
    );
    store.close().await;
    drop(store);

    // `bvstore metrics` on the closed store shows that last snapshot.
    let out = bvstore(dir.path(), &["--json", "metrics"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let samples = v["snapshot"]["samples"].as_array().unwrap();
    assert!(
        samples
            .iter()
            .any(|s| s["name"] == "bv.op.calls" && s["labels"]["op"] == "users.get")
    );
}

#[tokio::test]
async fn the_textfile_is_replaced_whole_for_node_exporter() {
    let dir = tempfile::tempdir().unwrap();
    let collector = tempfile::tempdir().unwrap();
    let path = collector.path().join("bharatvoice.prom");
    std::fs::write(&path, "stale").unwrap();
    let store = Store::open(config(dir.path()).metrics(MetricsConfig::default().textfile(&path)))
        .await
        .unwrap();
    store
        .users()
        .create(NewUser::new("asha", "asha@example.in"))
        .await
        .unwrap();
    store.jobs().run("metrics-textfile").await.unwrap();
    let scrape = parse(&std::fs::read_to_string(&path).unwrap());
    assert_eq!(
        find(&scrape, "bv_operations_total", &[("op", "users.create")]),
        Some(&Value::Counter(1.0))
    );
    let names: Vec<_> = std::fs::read_dir(collector.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        names,
        vec![std::ffi::OsString::from("bharatvoice.prom")],
        "no temporaries left"
    );
    store.close().await;
}

#[tokio::test]
async fn a_burst_of_refusals_turns_health_degraded_with_the_reason() {
    use bharatvoice_store::{Actor, ConsentKind, HealthStatus, MetricsConfig, PutOptions};
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(config(dir.path()).metrics(MetricsConfig::default().refusal_burst(5)))
        .await
        .unwrap();
    let owner = store
        .users()
        .create(NewUser::new("asha", "asha@example.in").consent(ConsentKind::AudioStorage))
        .await
        .unwrap();
    let stranger = store
        .users()
        .create(NewUser::new("ravi", "ravi@example.in"))
        .await
        .unwrap();
    let file = store
        .files()
        .put_bytes(
            Actor::User(owner.id),
            owner.id,
            b"clip",
            PutOptions::content_type("audio/ogg"),
        )
        .await
        .unwrap();
    for _ in 0..5 {
        assert!(
            store
                .files()
                .read(Actor::User(stranger.id), file.id)
                .await
                .is_err()
        );
    }
    let h = store.health().await;
    assert_eq!(
        h.part("anomalies").unwrap().status,
        HealthStatus::Healthy,
        "at the limit: {h:?}"
    );
    assert!(
        store
            .files()
            .read(Actor::User(stranger.id), file.id)
            .await
            .is_err()
    );
    let h = store.health().await;
    let part = h.part("anomalies").unwrap();
    assert_eq!(part.status, HealthStatus::Degraded);
    assert!(part.detail.contains("6 access refusals"), "{}", part.detail);
    assert_eq!(h.status, HealthStatus::Degraded);
    store.close().await;
}
