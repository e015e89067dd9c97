//! Conversation sessions: bounded context, activity order, expiry, end.

use std::time::Duration;

use bharatvoice_store::{Entity, Error, Role, SessionId, Store, Timestamp, Turn};

use crate::common::{TestStore, config};

async fn store_with(max_turns: usize, max_bytes: usize) -> TestStore {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path())
        .session_max_turns(max_turns)
        .session_max_context_bytes(max_bytes)
        .session_idle_timeout(Duration::from_secs(60));
    let store = Store::open(cfg).await.unwrap();
    TestStore { dir, store }
}

#[tokio::test]
async fn context_keeps_the_newest_turns_within_turns_and_bytes() {
    let t = store_with(4, 40).await;
    let u = t.user("arjun").await;
    let s = t
        .store
        .sessions()
        .create(u.id, Some("hi-IN".parse().unwrap()))
        .await
        .unwrap();
    for i in 0..6 {
        t.store
            .sessions()
            .append_turn(s.id, Turn::new(Role::User, format!("turn {i}")))
            .await
            .unwrap();
    }
    let got = t.store.sessions().get(s.id).unwrap();
    assert_eq!(got.turn_count, 6);
    let texts: Vec<&str> = got.context.iter().map(|t| t.text.as_str()).collect();
    assert_eq!(
        texts,
        ["turn 2", "turn 3", "turn 4", "turn 5"],
        "oldest dropped by turn bound"
    );
    // 30 bytes + the 4 newest would exceed 40 bytes: older ones go first.
    let long = "x".repeat(30);
    let got = t
        .store
        .sessions()
        .append_turn(s.id, Turn::new(Role::Assistant, long.clone()))
        .await
        .unwrap();
    assert!(got.context_bytes() <= 40);
    assert_eq!(got.context.last().unwrap().text, long);
    assert_eq!(got.context.len(), 2);
    // A single turn larger than the bound is refused and changes nothing.
    let e = t
        .store
        .sessions()
        .append_turn(s.id, Turn::new(Role::User, "y".repeat(41)))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::InvalidInput { .. }));
    assert_eq!(t.store.sessions().get(s.id).unwrap().turn_count, 7);
}

#[tokio::test]
async fn list_is_newest_active_first_and_touch_reorders() {
    let t = store_with(8, 1024).await;
    let u = t.user("kavya").await;
    let other = t.user("bikash").await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(t.store.sessions().create(u.id, None).await.unwrap().id);
    }
    t.store.sessions().create(other.id, None).await.unwrap();
    let listed: Vec<SessionId> = t
        .store
        .sessions()
        .list_for_user(u.id, 10)
        .await
        .unwrap()
        .iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(listed, [ids[2], ids[1], ids[0]]);
    t.store.sessions().touch(ids[0]).await.unwrap();
    let listed: Vec<SessionId> = t
        .store
        .sessions()
        .list_for_user(u.id, 2)
        .await
        .unwrap()
        .iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(listed, [ids[0], ids[2]]);
    t.store.sessions().delete(ids[2]).await.unwrap();
    let listed: Vec<SessionId> = t
        .store
        .sessions()
        .list_for_user(u.id, 10)
        .await
        .unwrap()
        .iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(listed, [ids[0], ids[1]]);
    assert!(matches!(
        t.store.sessions().get(ids[2]),
        Err(Error::NotFound {
            entity: Entity::Session,
            ..
        })
    ));
}

#[tokio::test]
async fn find_expired_uses_the_idle_timeout_and_skips_ended_sessions() {
    let t = store_with(8, 1024).await;
    let u = t.user("anjali").await;
    let a = t.store.sessions().create(u.id, None).await.unwrap();
    let b = t.store.sessions().create(u.id, None).await.unwrap();
    let c = t.store.sessions().create(u.id, None).await.unwrap();
    assert_eq!(a.expires_at, a.last_active_at.plus(Duration::from_secs(60)));
    assert!(
        t.store
            .sessions()
            .find_expired(Timestamp::now(), 10)
            .await
            .unwrap()
            .is_empty()
    );
    t.store.sessions().end(b.id).await.unwrap();
    let later = Timestamp::now().plus(Duration::from_secs(61));
    let expired: Vec<SessionId> = t
        .store
        .sessions()
        .find_expired(later, 10)
        .await
        .unwrap()
        .iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(expired, [a.id, c.id]);
    // Touching `a` later pushes its expiry past `later`... relative to its new activity.
    let touched = t.store.sessions().touch(a.id).await.unwrap();
    let just_before = touched.expires_at.minus(Duration::from_micros(1));
    let expired: Vec<SessionId> = t
        .store
        .sessions()
        .find_expired(just_before, 10)
        .await
        .unwrap()
        .iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(expired, [c.id]);
    // Ended sessions refuse new turns.
    assert!(matches!(
        t.store
            .sessions()
            .append_turn(b.id, Turn::new(Role::User, "hi"))
            .await,
        Err(Error::InvalidInput { .. })
    ));
}

#[tokio::test]
async fn sessions_need_a_live_user_and_unknown_ids_are_not_found() {
    let t = store_with(8, 1024).await;
    let u = t.user("gurpreet").await;
    t.store.users().delete(u.id).await.unwrap();
    assert!(matches!(
        t.store.sessions().create(u.id, None).await,
        Err(Error::NotFound {
            entity: Entity::User,
            ..
        })
    ));
    let id = SessionId::new();
    assert!(matches!(
        t.store.sessions().get(id),
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        t.store.sessions().touch(id).await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        t.store.sessions().end(id).await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        t.store
            .sessions()
            .append_turn(id, Turn::new(Role::User, "x"))
            .await,
        Err(Error::NotFound { .. })
    ));
}
