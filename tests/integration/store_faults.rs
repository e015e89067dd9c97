//! `store.redb` through a fault-injecting backend: for every N, the N-th
//! write, sync or `set_len` of a workload fails (`EIO`, `ENOSPC`, or a
//! write cut short). The operation in whose commit the fault landed is
//! reported failed (a failed fsync is never taken for a durable commit);
//! no panic escapes; the same open store takes the next steps (it reopens
//! the file after the error by itself); once the fault is gone the store
//! opens cleanly with every acknowledged operation in it, and `verify`
//! finds nothing.

use std::sync::Arc;

use bharatvoice_store::store_faults::{self, FaultKind, StoreFaults};
use bharatvoice_store::{
    Actor, ConsentKind, Error, NewUser, PutOptions, Role, Store, Turn, UserId, UserUpdate,
};

use crate::common::config;

/// What an acknowledged step left in the store.
#[derive(Debug, Clone)]
enum Acked {
    User(UserId, String),
    Renamed(UserId, String),
    Turn(bharatvoice_store::SessionId, String),
    File(bharatvoice_store::FileId, [u8; 32]),
    Nothing,
}

/// One step of the workload: each is one commit of `store.redb` or more.
async fn step(store: &Store, i: usize, users: &mut Vec<UserId>) -> Result<Acked, Error> {
    let name = format!("fault{i}");
    match (i % 4, users.last().copied()) {
        (0, _) | (_, None) => {
            let new = NewUser::new(&name, format!("{name}@example.in"))
                .consent(ConsentKind::AudioStorage);
            let u = store.users().create(new).await?;
            users.push(u.id);
            Ok(Acked::User(u.id, name))
        }
        (1, Some(u)) => {
            let change = UserUpdate {
                display_name: Some(Some(name.clone())),
                ..UserUpdate::default()
            };
            store.users().update(u, change).await?;
            Ok(Acked::Renamed(u, name))
        }
        (2, Some(u)) => {
            let s = store.sessions().create(u, None).await?;
            store
                .sessions()
                .append_turn(s.id, Turn::new(Role::User, &name))
                .await?;
            Ok(Acked::Turn(s.id, name))
        }
        (3, Some(_)) if i % 8 == 7 => {
            let key = bharatvoice_store::MasterKey::generate().expect("a key");
            store.keys().rotate_master(key).await?;
            Ok(Acked::Nothing)
        }
        (_, Some(u)) => {
            let bytes = name.repeat(200);
            let f = store
                .files()
                .put_bytes(
                    Actor::User(u),
                    u,
                    bytes.as_bytes(),
                    PutOptions::content_type("audio/wav"),
                )
                .await?;
            Ok(Acked::File(f.id, f.sha256))
        }
    }
}

const STEPS: usize = 12;

async fn check(store: &Store, acked: &[Acked], context: &str) {
    for a in acked {
        match a {
            Acked::User(u, name) => {
                let user = store
                    .users()
                    .get(*u)
                    .unwrap_or_else(|e| panic!("{context}: acknowledged user lost: {e}"));
                assert_eq!(&user.username, name, "{context}");
            }
            Acked::Renamed(u, name) => {
                let user = store.users().get(*u).expect("renamed user");
                // A later acknowledged rename may have replaced it.
                let later = acked
                    .iter()
                    .skip_while(|x| !std::ptr::eq(*x, a))
                    .skip(1)
                    .any(|x| matches!(x, Acked::Renamed(v, _) if v == u));
                if !later {
                    assert_eq!(
                        user.display_name.as_deref(),
                        Some(name.as_str()),
                        "{context}"
                    );
                }
            }
            Acked::Turn(s, text) => {
                let session = store
                    .sessions()
                    .get(*s)
                    .unwrap_or_else(|e| panic!("{context}: acknowledged session lost: {e}"));
                assert!(
                    session.context.iter().any(|t| &t.text == text),
                    "{context}: acknowledged turn lost"
                );
            }
            Acked::File(f, sha) => {
                let record = store
                    .files()
                    .stat(Actor::System, *f)
                    .await
                    .unwrap_or_else(|e| panic!("{context}: acknowledged file lost: {e}"));
                assert_eq!(&record.sha256, sha, "{context}");
                store
                    .files()
                    .read(Actor::System, *f)
                    .await
                    .unwrap_or_else(|e| panic!("{context}: acknowledged file unreadable: {e}"));
            }
            Acked::Nothing => {}
        }
    }
    crate::common::assert_verifies_deep(store, context).await;
}

/// Runs the workload with the `n`-th mutating call failing as `kind`;
/// returns whether the fault landed (false once `n` is past the end).
async fn run_with_fault(n: u64, kind: FaultKind) -> bool {
    let dir = crate::common::store_dir();
    let plan = StoreFaults::new();
    store_faults::install(dir.path(), Arc::clone(&plan));
    let store = Store::open(config(dir.path())).await.expect("open");
    plan.fail_call(n, kind);
    let mut users = Vec::new();
    let mut acked = Vec::new();
    for i in 0..STEPS {
        let before = plan.calls();
        let outcome = step(&store, i, &mut users).await;
        let after = plan.calls();
        let tripped_here = plan
            .tripped()
            .is_some_and(|(at, _)| before < at && at <= after);
        match outcome {
            Ok(a) => {
                assert!(
                    !tripped_here,
                    "call {n} ({kind:?} on {:?}) failed inside step {i}, which was acknowledged",
                    plan.tripped()
                );
                acked.push(a);
            }
            Err(e) => {
                // Only the step the fault landed in may fail: the store
                // reopens the file after an I/O error by itself, so the
                // steps after it are taken (and checked below).
                assert!(
                    tripped_here,
                    "step {i} failed, but the fault ({:?}) did not land in it: {e}",
                    plan.tripped()
                );
                acked.push(Acked::Nothing);
            }
        }
    }
    let landed = plan.tripped().is_some();
    store.close().await;
    drop(store);
    store_faults::remove(dir.path());
    let context = format!("fault at call {n} ({kind:?}, {:?})", plan.tripped());
    let store = Store::open(config(dir.path()))
        .await
        .unwrap_or_else(|e| panic!("{context}: reopen once the fault is gone: {e}"));
    check(&store, &acked, &context).await;
    // And it takes writes again.
    store
        .users()
        .create(NewUser::new("after", "after@example.in"))
        .await
        .unwrap_or_else(|e| panic!("{context}: a write after the fault: {e}"));
    store.close().await;
    landed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_failed_write_sync_or_set_len_loses_nothing_acknowledged() {
    let kinds = [FaultKind::Io, FaultKind::ShortWrite, FaultKind::NoSpace];
    let mut landed = 0;
    for n in 1u64.. {
        let kind = kinds[(n % 3) as usize];
        if !run_with_fault(n, kind).await {
            break;
        }
        landed += 1;
    }
    assert!(landed > STEPS as u64, "only {landed} faults landed");
    eprintln!("{landed} injected faults, each at a different call of the workload");
}

/// `EIO` on every read of `store.redb`: the open (which verifies every
/// page) fails with a clear error, never a panic, and succeeds once reads
/// work again, with everything in it.
#[tokio::test]
async fn eio_on_read_fails_the_open_cleanly_and_passes() {
    let dir = crate::common::store_dir();
    let store = Store::open(config(dir.path())).await.expect("open");
    let u = store
        .users()
        .create(NewUser::new("reader", "reader@example.in"))
        .await
        .expect("create");
    store.close().await;
    drop(store);

    let plan = StoreFaults::new();
    plan.fail_reads(true);
    store_faults::install(dir.path(), Arc::clone(&plan));
    let refused = Store::open(config(dir.path())).await;
    let Err(e) = refused else {
        panic!("opened while every read fails");
    };
    let text = e.to_string();
    assert!(
        text.contains("store.redb") || text.contains("I/O") || text.contains("Input/output"),
        "an unclear error: {text}"
    );
    plan.clear();
    let store = Store::open(config(dir.path()))
        .await
        .expect("opens once reads work");
    assert_eq!(
        store.users().get(u.id).expect("still there").username,
        "reader"
    );
    store.close().await;
    store_faults::remove(dir.path());
}

/// A commit that meets a failing disk is refused; once the disk works
/// again the same open store takes writes: no restart needed.
#[tokio::test]
async fn the_open_store_takes_writes_again_once_the_disk_works() {
    for kind in [FaultKind::Io, FaultKind::NoSpace, FaultKind::ShortWrite] {
        let dir = tempfile::tempdir().unwrap();
        let plan = StoreFaults::new();
        store_faults::install(dir.path(), Arc::clone(&plan));
        let store = Store::open(config(dir.path())).await.expect("open");
        let create = |name: &'static str| {
            let store = &store;
            async move {
                store
                    .users()
                    .create(NewUser::new(name, format!("{name}@example.in")))
                    .await
            }
        };
        let asha = create("asha").await.expect("before the fault");
        plan.fail_call(1, kind);
        let e = create("bala").await.expect_err("the fault lands");
        eprintln!("{kind:?}: {e}");
        plan.clear();
        let chitra = create("chitra")
            .await
            .unwrap_or_else(|e| panic!("{kind:?}: a write once the disk works: {e}"));
        // Whether the refused create landed or not, a retry settles it.
        let bala = match create("bala").await {
            Ok(u) => u,
            Err(Error::Conflict { .. }) => store.users().get_by_username("bala").unwrap(),
            Err(e) => panic!("{kind:?}: retrying the refused create: {e}"),
        };
        store.close().await;
        drop(store);
        store_faults::remove(dir.path());
        let store = Store::open(config(dir.path())).await.expect("reopen");
        for u in [&asha, &bala, &chitra] {
            assert_eq!(store.users().get(u.id).unwrap().username, u.username);
        }
        store.close().await;
    }
}
