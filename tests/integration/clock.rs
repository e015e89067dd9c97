//! The store's one clock: every recorded time, expiry and retention
//! deadline is read from `Config::clock`, so expiry is tested by moving a
//! manual clock, never by sleeping.

use std::time::Duration;

use bharatvoice_store::{
    Actor, Config, ManualClock, NewUser, PutOptions, Role, Store, Timestamp, Turn,
};

use crate::common::config;

const T0: Timestamp = Timestamp::from_micros(1_800_000_000_000_000);
const MINUTE: Duration = Duration::from_secs(60);
const DAY: Duration = Duration::from_secs(86_400);

async fn open(dir: &std::path::Path, clock: &ManualClock) -> Store {
    let c: Config = config(dir)
        .clock(clock.clone())
        .session_idle_timeout(30 * MINUTE);
    Store::open(c).await.expect("open")
}

#[tokio::test]
async fn sessions_go_idle_by_the_store_clock() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let store = open(dir.path(), &clock).await;
    let user = store
        .users()
        .create(
            NewUser::new("asha", "asha@example.in")
                .consent(bharatvoice_store::ConsentKind::AudioStorage),
        )
        .await
        .unwrap();
    assert_eq!(user.created_at, T0);
    let s = store.sessions().create(user.id, None).await.unwrap();
    assert_eq!((s.created_at, s.last_active_at), (T0, T0));
    assert_eq!(s.expires_at, T0.plus(30 * MINUTE));
    let expired = |store: &Store, now| {
        let store = store.clone();
        async move {
            store
                .sessions()
                .find_expired(now, 10)
                .await
                .unwrap()
                .into_iter()
                .map(|s| s.id)
                .collect::<Vec<_>>()
        }
    };

    clock.advance(29 * MINUTE);
    assert!(
        expired(&store, clock.now()).await.is_empty(),
        "not idle yet"
    );
    let s = store
        .sessions()
        .append_turn(s.id, Turn::new(Role::User, "namaste"))
        .await
        .unwrap();
    assert_eq!(s.last_active_at, T0.plus(29 * MINUTE));
    assert_eq!(
        s.expires_at,
        T0.plus(59 * MINUTE),
        "a turn pushes expiry out"
    );

    clock.advance(30 * MINUTE);
    assert_eq!(expired(&store, clock.now()).await, vec![s.id]);
    let ended = store.sessions().end(s.id).await.unwrap();
    assert_eq!(ended.ended_at, Some(T0.plus(59 * MINUTE)));
    assert!(
        expired(&store, clock.now()).await.is_empty(),
        "ended: no expiry"
    );
    store.close().await;
}

#[tokio::test]
async fn file_retention_ends_by_the_store_clock() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let store = open(dir.path(), &clock).await;
    let asha = store
        .users()
        .create(
            NewUser::new("asha", "asha@example.in")
                .consent(bharatvoice_store::ConsentKind::AudioStorage),
        )
        .await
        .unwrap()
        .id;
    let mut options = PutOptions::content_type("audio/wav");
    options.retention_days = Some(7);
    let f = store
        .files()
        .put_bytes(Actor::User(asha), asha, b"RIFF....WAVE", options)
        .await
        .unwrap();
    assert_eq!(f.created_at, T0);
    assert_eq!(f.expires_at, Some(T0.plus(7 * DAY)));
    let expiring = |store: &Store, t| {
        let store = store.clone();
        async move {
            store
                .file_records()
                .expiring_before(t, 10)
                .await
                .unwrap()
                .into_iter()
                .map(|f| f.id)
                .collect::<Vec<_>>()
        }
    };

    clock.advance(7 * DAY - Duration::from_secs(1));
    assert!(
        expiring(&store, clock.now()).await.is_empty(),
        "still retained"
    );
    clock.advance(Duration::from_secs(2));
    assert_eq!(expiring(&store, clock.now()).await, vec![f.id]);

    // A refusal is audited at the store's time too.
    let ravi = store
        .users()
        .create(
            NewUser::new("ravi", "ravi@example.in")
                .consent(bharatvoice_store::ConsentKind::AudioStorage),
        )
        .await
        .unwrap()
        .id;
    assert!(store.files().read(Actor::User(ravi), f.id).await.is_err());
    store.flush().await.unwrap();
    let audit = store.audit_events(1).unwrap();
    assert_eq!(audit[0].at, clock.now());
    store.close().await;
}

/// The clock jumps back a year, then forward past the idle timeout but
/// short of the retention: nothing fresh expires, every job runs without
/// an error, and the data written before the jumps reads back.
#[tokio::test]
async fn clock_jumps_back_and_forth_expire_nothing_fresh() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let store = open(dir.path(), &clock).await;
    let u = store
        .users()
        .create(
            NewUser::new("jump", "jump@example.in")
                .consent(bharatvoice_store::ConsentKind::AudioStorage),
        )
        .await
        .unwrap();
    let mut options = PutOptions::content_type("audio/wav");
    options.retention_days = Some(7);
    let f = store
        .files()
        .put_bytes(Actor::User(u.id), u.id, b"RIFF....WAVE", options)
        .await
        .unwrap();
    let s = store.sessions().create(u.id, None).await.unwrap();

    // Back a year: the jobs run, nothing is "older" than it was.
    clock.set(T0.minus(365 * DAY));
    store
        .lifecycle()
        .run_all(false)
        .await
        .expect("jobs after a jump back");
    let s2 = store
        .sessions()
        .append_turn(s.id, Turn::new(Role::User, "after the jump"))
        .await
        .expect("a write after a jump back");
    assert_eq!(s2.context.len(), 1);
    // Forward again, by less than the retention: the file stays.
    clock.set(T0.plus(6 * DAY));
    store
        .lifecycle()
        .run_all(false)
        .await
        .expect("jobs after a jump forward");
    assert_eq!(
        store.files().read(Actor::System, f.id).await.unwrap(),
        b"RIFF....WAVE"
    );
    assert!(store.users().get(u.id).is_ok());
    store.close().await;
}
