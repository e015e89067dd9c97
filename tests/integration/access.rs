//! Every file operation × {owner, grantee, other user, system}.

use bharatvoice_store::{Actor, Error, FileId, ListFilter, ListOptions, PutOptions, Store, UserId};

use crate::common::open_store;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Outcome {
    Ok,
    NotFound,
    Denied,
}

fn outcome<T>(r: Result<T, Error>) -> Outcome {
    match r {
        Ok(_) => Outcome::Ok,
        Err(Error::NotFound { .. }) => Outcome::NotFound,
        Err(Error::PermissionDenied { .. }) => Outcome::Denied,
        Err(e) => panic!("unexpected error {e:?}"),
    }
}

async fn run_op(
    store: &Store,
    op: &str,
    actor: Actor,
    file: FileId,
    owner: UserId,
    third: UserId,
) -> Outcome {
    let files = store.files();
    match op {
        "stat" => outcome(files.stat(actor, file).await),
        "read" => outcome(files.read(actor, file).await),
        "open" => outcome(files.open(actor, file).await),
        "range" => outcome(files.read_range(actor, file, 0, 3).await),
        "verify" => outcome(files.verify(actor, file).await),
        "list" => outcome(
            files
                .list(actor, owner, ListFilter::default(), ListOptions::first(10))
                .await,
        ),
        "put" => outcome(
            files
                .put_bytes(actor, owner, b"new", PutOptions::default())
                .await,
        ),
        "grant" => outcome(files.grant(actor, file, third).await),
        "revoke" => outcome(files.revoke(actor, file, third).await),
        "grantees" => outcome(files.grantees(actor, file).await),
        "delete" => {
            let r = outcome(files.delete(actor, file).await);
            if r == Outcome::Ok {
                files.restore(Actor::System, file).await.unwrap();
            }
            r
        }
        "restore" => {
            files.delete(Actor::System, file).await.unwrap();
            let r = outcome(files.restore(actor, file).await);
            if r != Outcome::Ok {
                files.restore(Actor::System, file).await.unwrap();
            }
            r
        }
        _ => unreachable!(),
    }
}

#[tokio::test]
async fn every_operation_for_every_kind_of_caller() {
    use Outcome::*;
    let t = open_store().await;
    let owner = t.user("owner").await;
    let grantee = t.user("grantee").await;
    let other = t.user("other").await;
    let third = t.user("third").await;
    let file = t
        .store
        .files()
        .put_bytes(
            Actor::User(owner.id),
            owner.id,
            b"private voice note",
            PutOptions::default(),
        )
        .await
        .unwrap();
    t.store
        .files()
        .grant(Actor::User(owner.id), file.id, grantee.id)
        .await
        .unwrap();
    let callers = [
        ("owner", Actor::User(owner.id)),
        ("grantee", Actor::User(grantee.id)),
        ("other", Actor::User(other.id)),
        ("system", Actor::System),
    ];
    // Expected outcome per operation for owner, grantee, other, system.
    let table: &[(&str, [Outcome; 4])] = &[
        ("stat", [Ok, Ok, NotFound, Ok]),
        ("read", [Ok, Ok, NotFound, Ok]),
        ("open", [Ok, Ok, NotFound, Ok]),
        ("range", [Ok, Ok, NotFound, Ok]),
        ("verify", [Ok, Ok, NotFound, Ok]),
        ("list", [Ok, NotFound, NotFound, Ok]),
        ("put", [Ok, NotFound, NotFound, Ok]),
        ("grant", [Ok, Denied, NotFound, Ok]),
        ("revoke", [Ok, Denied, NotFound, Ok]),
        ("grantees", [Ok, Denied, NotFound, Ok]),
        ("delete", [Ok, Denied, NotFound, Ok]),
        ("restore", [Ok, Denied, NotFound, Ok]),
    ];
    for (op, expected) in table {
        for ((who, actor), want) in callers.iter().zip(expected) {
            let before = t.store.audit_events(1000).unwrap().len();
            let got = run_op(&t.store, op, *actor, file.id, owner.id, third.id).await;
            assert_eq!(got, *want, "{op} by {who}");
            t.store.flush().await.unwrap();
            let events = t.store.audit_events(1000).unwrap();
            let after = events.len();
            // Changes are audited as `ok` (the op's own set-up and clean-up
            // by the system too); a refusal as `refused`.
            let new = &events[..after - before];
            if *want == Ok {
                assert!(
                    new.iter().all(|e| e.outcome != "refused"),
                    "{op} by {who} audited as refused"
                );
            } else {
                let refused: Vec<_> = new.iter().filter(|e| e.outcome == "refused").collect();
                assert_eq!(refused.len(), 1, "{op} by {who}: {new:#?}");
                assert_eq!(refused[0].actor, actor.to_string());
            }
        }
        t.store
            .files()
            .grant(Actor::System, file.id, grantee.id)
            .await
            .unwrap();
    }
    // No existence oracle: a refused id and an unknown id give the same error text.
    let refused = t
        .store
        .files()
        .stat(Actor::User(other.id), file.id)
        .await
        .unwrap_err()
        .to_string();
    let unknown_id = FileId::new();
    let unknown = t
        .store
        .files()
        .stat(Actor::User(other.id), unknown_id)
        .await
        .unwrap_err()
        .to_string();
    assert_eq!(
        refused.replace(&file.id.to_string(), "ID"),
        unknown.replace(&unknown_id.to_string(), "ID")
    );
    // A revoked grantee loses access.
    t.store
        .files()
        .revoke(Actor::User(owner.id), file.id, grantee.id)
        .await
        .unwrap();
    assert!(matches!(
        t.store.files().read(Actor::User(grantee.id), file.id).await,
        Err(Error::NotFound { .. })
    ));
}
