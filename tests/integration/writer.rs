//! The group-commit writer: batching, and failures that stay alone.

use bharatvoice_store::{Error, NewUser};

use crate::common::open_store;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_request_leaves_its_batch_mates_committed() {
    let t = open_store().await;
    t.user("taken").await;
    let mut round = 0;
    // Batches form from whatever is queued; a round of 64 concurrent callers
    // practically always mixes refused and accepted requests in one commit.
    while t.store.write_stats().mixed_commits == 0 {
        round += 1;
        assert!(
            round <= 5,
            "no commit mixed refused and accepted requests: {:?}",
            t.store.write_stats()
        );
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..64 {
            let store = t.store.clone();
            tasks.spawn(async move {
                let name = if i % 2 == 0 {
                    "taken".to_string()
                } else {
                    format!("fresh{round}x{i}")
                };
                (
                    name.clone(),
                    store
                        .users()
                        .create(NewUser::new(&name, format!("r{round}u{i}@example.in")))
                        .await,
                )
            });
        }
        let (mut ok, mut conflicts) = (0, 0);
        while let Some(joined) = tasks.join_next().await {
            let (name, result) = joined.unwrap();
            match result {
                Ok(user) => {
                    ok += 1;
                    // Acknowledged means committed: visible by id and name.
                    assert_eq!(t.store.users().get(user.id).unwrap().username, name);
                    assert_eq!(t.store.users().get_by_username(&name).unwrap().id, user.id);
                }
                Err(Error::Conflict {
                    field: "username", ..
                }) => conflicts += 1,
                Err(other) => panic!("unexpected error {other:?}"),
            }
        }
        assert_eq!((ok, conflicts), (32, 32));
    }
    let stats = t.store.write_stats();
    assert!(
        stats.commits < stats.requests,
        "requests were batched: {stats:?}"
    );
    assert!(stats.largest_batch > 1, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_creates_of_one_name_have_exactly_one_winner() {
    let t = open_store().await;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..32 {
        let store = t.store.clone();
        tasks.spawn(async move {
            store
                .users()
                .create(NewUser::new("contested", format!("c{i}@example.in")))
                .await
        });
    }
    let mut winners = 0;
    while let Some(r) = tasks.join_next().await {
        match r.unwrap() {
            Ok(_) => winners += 1,
            Err(e) => assert!(
                matches!(
                    e,
                    Error::Conflict {
                        field: "username",
                        ..
                    }
                ),
                "{e:?}"
            ),
        }
    }
    assert_eq!(winners, 1);
}

#[tokio::test]
async fn writes_after_close_fail_cleanly() {
    let t = open_store().await;
    t.user("before").await;
    t.store.close().await;
    let e = t
        .store
        .users()
        .create(NewUser::new("after", "after@example.in"))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Closed), "{e:?}");
    // Reads still work on the open file.
    assert!(t.store.users().get_by_username("before").is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_write_is_visible_to_the_next_read() {
    // Readers hammer the shared snapshot while writers commit; each writer
    // reads its own write right after the acknowledgement.
    let t = open_store().await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut readers = Vec::new();
    for _ in 0..2 {
        let (store, stop) = (t.store.clone(), stop.clone());
        readers.push(tokio::spawn(async move {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = store.users().get_by_username("nobody-here");
                tokio::task::yield_now().await;
            }
        }));
    }
    let mut writers = tokio::task::JoinSet::new();
    for w in 0..8 {
        let store = t.store.clone();
        writers.spawn(async move {
            for i in 0..40 {
                let name = format!("w{w}n{i}");
                let u = store
                    .users()
                    .create(NewUser::new(&name, format!("{name}@example.in")))
                    .await
                    .unwrap();
                assert_eq!(
                    store.users().get_by_username(&name).unwrap().id,
                    u.id,
                    "own write not visible"
                );
                assert_eq!(store.users().get(u.id).unwrap().username, name);
            }
        });
    }
    while let Some(r) = writers.join_next().await {
        r.unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for r in readers {
        r.await.unwrap();
    }
}
