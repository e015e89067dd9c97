//! Per-user rate limits: a burst is refused past the bucket with
//! `RateLimited { retry_after }` and nothing written, the bucket refills
//! with the store's clock, one user's limit does not touch another's, the
//! system actor is never limited. (That `bvstore` runs without them
//! unless given `--rate-limits` is tested in `src/cli/mod.rs`.)

use std::time::Duration;

use bharatvoice_store::{
    Actor, Config, ConsentKind, Error, ListFilter, ListOptions, ManualClock, NewUser, PutOptions,
    RateLimit, RateLimitConfig, Store, Timestamp, User,
};

use crate::common::config;

const T0: Timestamp = Timestamp::from_micros(1_800_000_000_000_000);

async fn open(limits: RateLimitConfig) -> (tempfile::TempDir, Store, ManualClock) {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let store = Store::open(config(dir.path()).clock(clock.clone()).rate_limits(limits))
        .await
        .unwrap();
    (dir, store, clock)
}

async fn user(store: &Store, name: &str) -> User {
    let new = NewUser::new(name, format!("{name}@example.in")).consent(ConsentKind::AudioStorage);
    store.users().create(new).await.unwrap()
}

async fn put(store: &Store, actor: Actor, owner: &User, bytes: &[u8]) -> Result<(), Error> {
    store
        .files()
        .put_bytes(
            actor,
            owner.id,
            bytes,
            PutOptions::content_type("audio/wav"),
        )
        .await
        .map(|_| ())
}

async fn list(store: &Store, actor: Actor, owner: &User) -> Result<usize, Error> {
    let page = store
        .files()
        .list(
            actor,
            owner.id,
            ListFilter::default(),
            ListOptions::default(),
        )
        .await?;
    Ok(page.items.len())
}

fn retry_after(e: &Error, want: RateLimit) -> Duration {
    match e {
        Error::RateLimited {
            limit, retry_after, ..
        } if *limit == want => *retry_after,
        other => panic!("expected RateLimited({want:?}), got {other:?}"),
    }
}

#[tokio::test]
async fn a_burst_of_operations_is_refused_past_the_bucket_and_recovers() {
    let (_dir, store, clock) = open(RateLimitConfig::default().ops(10, 5)).await;
    let (a, b) = (user(&store, "asha").await, user(&store, "bala").await);
    let me = Actor::User(a.id);
    for i in 0..5 {
        assert_eq!(list(&store, me, &a).await.unwrap(), 0, "call {i}");
    }
    let refused = list(&store, me, &a).await.unwrap_err();
    let wait = retry_after(&refused, RateLimit::Operations);
    // 10 a second: the next token is 100 ms away.
    assert!(
        wait > Duration::ZERO && wait <= Duration::from_millis(100),
        "{wait:?}"
    );
    // A refused put writes nothing.
    let e = put(&store, me, &a, b"RIFF").await.unwrap_err();
    retry_after(&e, RateLimit::Operations);
    // Another user and the system are not touched by asha's bucket.
    assert_eq!(list(&store, Actor::User(b.id), &b).await.unwrap(), 0);
    put(&store, Actor::System, &a, b"system put").await.unwrap();
    for _ in 0..20 {
        list(&store, Actor::System, &a).await.unwrap();
    }
    // Recovery: after the wait it was given, one more call passes ...
    clock.advance(wait);
    assert_eq!(list(&store, me, &a).await.unwrap(), 1);
    assert!(list(&store, me, &a).await.is_err());
    // ... and after a full second the whole burst again.
    clock.advance(Duration::from_secs(1));
    for _ in 0..5 {
        list(&store, me, &a).await.unwrap();
    }
    assert!(list(&store, me, &a).await.is_err());
}

#[tokio::test]
async fn stored_bytes_are_limited_per_user_and_a_refused_put_leaves_nothing() {
    // 64 KiB a second, 128 KiB at once.
    let (dir, store, clock) = open(RateLimitConfig::default().bytes(64 << 10, 128 << 10)).await;
    let a = user(&store, "chitra").await;
    let me = Actor::User(a.id);
    put(&store, me, &a, &vec![1u8; 100 << 10]).await.unwrap();
    let refused = put(&store, me, &a, &vec![2u8; 64 << 10]).await.unwrap_err();
    let wait = retry_after(&refused, RateLimit::StoredBytes);
    // 28 KiB left in the bucket, 36 KiB missing: 36/64 s.
    let expect = Duration::from_micros(36 * 1_000_000 / 64);
    assert!(
        wait.abs_diff(expect) < Duration::from_millis(20),
        "{wait:?} vs {expect:?}"
    );
    // Nothing of the refused put: one file, its bytes, no temporary.
    assert_eq!(list(&store, me, &a).await.unwrap(), 1);
    let usage = store.quotas().usage(a.id).await.unwrap();
    assert_eq!(usage.blobs, 1);
    let tmp: Vec<_> = std::fs::read_dir(dir.path().join("tmp")).unwrap().collect();
    assert!(tmp.is_empty(), "{tmp:?}");
    clock.advance(wait);
    put(&store, me, &a, &vec![2u8; 64 << 10]).await.unwrap();
    // A put larger than the bucket passes when the bucket is full ...
    clock.advance(Duration::from_secs(10));
    put(&store, me, &a, &vec![3u8; 1 << 20]).await.unwrap();
    // ... and empties it.
    let e = put(&store, me, &a, b"x").await.unwrap_err();
    retry_after(&e, RateLimit::StoredBytes);
    // The system is never limited.
    put(&store, Actor::System, &a, &vec![4u8; 1 << 20])
        .await
        .unwrap();
    // Four files stored; listing is not limited (no operations limit set).
    assert_eq!(list(&store, me, &a).await.unwrap(), 4);
}

#[tokio::test]
async fn limits_come_from_toml_and_the_environment_and_are_checked() {
    let t = Config::from_toml_str(
        "[rate_limits]\nops_per_sec = 20\nops_burst = 40\nbytes_per_sec = 1048576",
    )
    .unwrap();
    assert_eq!(t.rate_limits.ops_per_sec, 20);
    assert_eq!(t.rate_limits.ops_burst, 40);
    assert_eq!(t.rate_limits.bytes_per_sec, 1 << 20);
    assert!(Config::from_toml_str("[rate_limits]\nops = 1").is_err());
    assert!(!Config::new("/tmp/x").rate_limits.is_on());
    let too_big = RateLimitConfig::default().bytes(u64::MAX, 0);
    let dir = tempfile::tempdir().unwrap();
    let opened = Store::open(config(dir.path()).rate_limits(too_big)).await;
    let Err(e) = opened else {
        panic!("a byte rate past 4 TiB is refused")
    };
    assert!(matches!(e, Error::Config { .. }), "{e:?}");
}

/// The default is no limit at all: a user may store and list as fast as
/// the store goes.
#[tokio::test]
async fn without_configured_limits_nothing_is_limited() {
    let (_dir, store, _clock) = open(RateLimitConfig::default()).await;
    let a = user(&store, "devi").await;
    let me = Actor::User(a.id);
    for _ in 0..3 {
        put(&store, me, &a, &vec![5u8; 4 << 20]).await.unwrap();
    }
    for _ in 0..200 {
        list(&store, me, &a).await.unwrap();
    }
}
