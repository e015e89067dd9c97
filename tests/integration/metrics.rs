//! System metric samples.

use bharatvoice_store::{Error, MetricSample, Timestamp};

use crate::common::open_store;

#[tokio::test]
async fn record_and_query_a_time_range() {
    let t = open_store().await;
    for (name, at, v) in [
        ("asr.latency_ms", 10, 1.0),
        ("asr.latency_ms", 20, 2.0),
        ("asr.latency_ms", 20, 2.5),
        ("asr.latency_ms", 30, 3.0),
        ("tts.latency_ms", 20, 9.0),
    ] {
        t.store
            .metrics()
            .record(
                MetricSample::new(name, v)
                    .at(Timestamp::from_micros(at))
                    .label("lang", "hi-IN"),
            )
            .await
            .unwrap();
    }
    let got = t
        .store
        .metrics()
        .query(
            "asr.latency_ms",
            Timestamp::from_micros(15),
            Timestamp::from_micros(30),
        )
        .await
        .unwrap();
    let mut values: Vec<f64> = got.iter().map(|m| m.value).collect();
    values.sort_by(f64::total_cmp);
    assert_eq!(values, [2.0, 2.5], "[from, to) and only this name");
    assert!(got.iter().all(|m| m.labels["lang"] == "hi-IN"));
    assert!(
        t.store
            .metrics()
            .query(
                "asr.latency_ms",
                Timestamp::from_micros(30),
                Timestamp::from_micros(30)
            )
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        t.store
            .metrics()
            .query("asr.latency_ms", Timestamp::MIN, Timestamp::MAX)
            .await
            .unwrap()
            .len(),
        4
    );
}

#[tokio::test]
async fn bad_samples_are_refused() {
    let t = open_store().await;
    for bad in [
        MetricSample::new("", 1.0),
        MetricSample::new("has space", 1.0),
        MetricSample::new("ok", f64::NAN),
    ] {
        assert!(matches!(
            t.store.metrics().record(bad).await,
            Err(Error::InvalidInput { .. })
        ));
    }
}
