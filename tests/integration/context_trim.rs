//! The context-trim job: contexts written under larger limits are trimmed
//! to the current ones, oldest turns first, a batch per pass; a dry run
//! changes nothing.

use std::time::Duration;

use bharatvoice_store::{Config, LifecycleConfig, Role, SessionId, Store, Turn, User};

use crate::common::config;

fn with_limits(dir: &std::path::Path, turns: usize, bytes: usize) -> Config {
    config(dir)
        .session_max_turns(turns)
        .session_max_context_bytes(bytes)
        .session_idle_timeout(Duration::from_secs(3600))
        .lifecycle(LifecycleConfig::default().batch(2))
}

async fn user(store: &Store) -> User {
    store
        .users()
        .create(bharatvoice_store::NewUser::new("trimmer", "t@example.in"))
        .await
        .unwrap()
}

async fn session_with_turns(store: &Store, user: &User, n: usize) -> SessionId {
    let s = store.sessions().create(user.id, None).await.unwrap();
    for i in 0..n {
        store
            .sessions()
            .append_turn(s.id, Turn::new(Role::User, format!("turn {i:02}")))
            .await
            .unwrap();
    }
    s.id
}

fn texts(store: &Store, id: SessionId) -> Vec<String> {
    store
        .sessions()
        .get(id)
        .unwrap()
        .context
        .into_iter()
        .map(|t| t.text)
        .collect()
}

#[tokio::test]
async fn contexts_over_lowered_limits_are_trimmed_oldest_first() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(with_limits(dir.path(), 32, 1 << 14))
        .await
        .unwrap();
    let u = user(&store).await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(session_with_turns(&store, &u, 8).await);
    }
    let short = session_with_turns(&store, &u, 2).await;
    let deleted = session_with_turns(&store, &u, 8).await;
    store.sessions().delete(deleted).await.unwrap();
    store.close().await;
    drop(store);

    // The limits are lowered: 3 turns. Nothing changes until the job runs.
    let store = Store::open(with_limits(dir.path(), 3, 1 << 14))
        .await
        .unwrap();
    assert_eq!(texts(&store, ids[0]).len(), 8);
    let dry = store.lifecycle().run("context-trim", true).await.unwrap();
    assert!(dry.dry_run);
    assert_eq!(
        (dry.count("sessions_trimmed"), dry.count("turns_dropped")),
        (5, 25)
    );
    assert_eq!(texts(&store, ids[0]).len(), 8, "a dry run changes nothing");

    // Batches of 2 sessions: the first pass says there is more.
    let first = store.lifecycle().run("context-trim", false).await.unwrap();
    assert!(first.more, "{first:?}");
    let report = store
        .lifecycle()
        .run_to_end("context-trim", false)
        .await
        .unwrap();
    assert_eq!(
        first.count("sessions_trimmed") + report.count("sessions_trimmed"),
        5,
        "{first:?} {report:?}"
    );
    for id in &ids {
        assert_eq!(texts(&store, *id), ["turn 05", "turn 06", "turn 07"]);
    }
    assert_eq!(texts(&store, short).len(), 2);
    let again = store
        .lifecycle()
        .run_to_end("context-trim", false)
        .await
        .unwrap();
    assert_eq!(again.count("sessions_trimmed"), 0, "{again:?}");
    store.close().await;
    drop(store);

    // A byte limit: "turn NN" is 7 bytes, so 15 bytes keep 2 turns.
    let store = Store::open(with_limits(dir.path(), 32, 15)).await.unwrap();
    store
        .lifecycle()
        .run_to_end("context-trim", false)
        .await
        .unwrap();
    assert_eq!(texts(&store, ids[4]), ["turn 06", "turn 07"]);
    assert_eq!(texts(&store, short), ["turn 00", "turn 01"]);
}
