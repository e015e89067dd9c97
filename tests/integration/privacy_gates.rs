//! The analytics consent gates what the store itself records about a
//! user: access counts of their files, and metric samples labelled with
//! their id. With `privacy.require_consent` off nothing is gated.

use bharatvoice_store::{
    Actor, ConsentKind, Error, MetricSample, PrivacyConfig, PutOptions, Store, Timestamp, User,
};

use crate::common::config;

async fn open(require_consent: bool) -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let privacy = PrivacyConfig::default().require_consent(require_consent);
    let store = Store::open(config(dir.path()).privacy(privacy))
        .await
        .unwrap();
    (dir, store)
}

async fn user(store: &Store, name: &str, analytics: bool) -> User {
    let mut new = bharatvoice_store::NewUser::new(name, format!("{name}@example.in"))
        .consent(ConsentKind::AudioStorage);
    if analytics {
        new = new.consent(ConsentKind::Analytics);
    }
    store.users().create(new).await.unwrap()
}

/// Reads every file of `u` once, flushes the counts, and returns them.
async fn counts_after_a_read(store: &Store, u: &User) -> u64 {
    let me = Actor::User(u.id);
    let f = store
        .files()
        .put_bytes(me, u.id, b"RIFF", PutOptions::content_type("audio/wav"))
        .await
        .unwrap();
    store.files().read(me, f.id).await.unwrap();
    store.files().read_range(me, f.id, 0, 2).await.unwrap();
    store.lifecycle().run("access-counts", false).await.unwrap();
    store.files().stat(me, f.id).await.unwrap().access_count
}

#[tokio::test]
async fn reads_are_counted_only_for_owners_who_allow_analytics() {
    let (_dir, store) = open(true).await;
    let yes = user(&store, "yess", true).await;
    let no = user(&store, "nope", false).await;
    assert_eq!(counts_after_a_read(&store, &yes).await, 2);
    assert_eq!(counts_after_a_read(&store, &no).await, 0);
    // Withdrawn: counting stops.
    store
        .profiles()
        .set_consent(yes.id, ConsentKind::Analytics, false)
        .await
        .unwrap();
    assert_eq!(counts_after_a_read(&store, &yes).await, 0);
    // With the gate off every read is counted.
    let (_dir, open_store) = open(false).await;
    let any = user(&open_store, "anyone", false).await;
    assert_eq!(counts_after_a_read(&open_store, &any).await, 2);
}

#[tokio::test]
async fn a_metric_labelled_with_a_user_id_needs_that_users_analytics_consent() {
    let (_dir, store) = open(true).await;
    let yes = user(&store, "yess", true).await;
    let no = user(&store, "nope", false).await;
    let at = Timestamp::from_micros(1_800_000_000_000_000);
    let sample = |u: &User| {
        MetricSample::new("asr.latency_ms", 120.0)
            .at(at)
            .label("user", u.id.to_string())
    };
    store.metrics().record(sample(&yes)).await.unwrap();
    let refused = store.metrics().record(sample(&no)).await.unwrap_err();
    assert!(
        matches!(
            refused,
            Error::ConsentRequired { user, consent: ConsentKind::Analytics } if user == no.id
        ),
        "{refused:?}"
    );
    // The label's key does not matter, only that its value names a user;
    // a sample with no user in it needs nothing.
    let hidden = MetricSample::new("asr.latency_ms", 1.0)
        .at(at)
        .label("speaker", no.id.to_string());
    assert!(store.metrics().record(hidden).await.is_err());
    let plain = MetricSample::new("asr.latency_ms", 2.0)
        .at(at)
        .label("lang", "ta-IN");
    store.metrics().record(plain).await.unwrap();
    let end = Timestamp::from_micros(at.as_micros() + 1);
    let got = store
        .metrics()
        .query("asr.latency_ms", at, end)
        .await
        .unwrap();
    let values: Vec<f64> = got.iter().map(|s| s.value).collect();
    assert_eq!(values.len(), 2, "{values:?}");
    assert!(values.contains(&120.0) && values.contains(&2.0));
    // Gate off: recorded.
    let (_dir, open_store) = open(false).await;
    let any = user(&open_store, "anyone", false).await;
    open_store.metrics().record(sample(&any)).await.unwrap();
}
