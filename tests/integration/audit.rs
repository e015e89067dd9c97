//! The audit log: every operation leaves its entry in the same commit,
//! reads are appended by a flush, nothing is appended when it is off, the
//! old table migrates into the chain, and the CLI reads and verifies it.

use std::time::Duration;

use bharatvoice_store::{
    Actor, AuditConfig, AuditEvent, AuditFilter, ConsentKind, MasterKey, NewUser, PutOptions,
    Store, UserUpdate,
};

use crate::common::{bvstore, config, open_store, stdout};

async fn all(store: &Store) -> Vec<AuditEvent> {
    store
        .audit()
        .tail(AuditFilter::last(usize::MAX))
        .await
        .unwrap()
}

/// The last entry, which must be `action` on `target` by `actor`.
#[track_caller]
fn assert_last(events: &[AuditEvent], actor: &str, action: &str, target: &str) {
    let last = events.last().expect("no audit entry");
    assert_eq!(
        (
            last.actor.as_str(),
            last.action.as_str(),
            last.target.as_str()
        ),
        (actor, action, target),
        "{events:#?}"
    );
}

#[tokio::test]
async fn every_operation_appends_its_entry_and_the_chain_verifies() {
    let t = open_store().await;
    let s = &t.store;
    // Asha gives her consent below (a consent given again is no change).
    let asha = t.bare_user("asha").await;
    let ravi = t.user("ravi").await;
    let (a, r) = (format!("user:{}", asha.id), format!("user:{}", ravi.id));
    assert_last(&all(s).await, "system", "user.create", &r);

    let change = UserUpdate {
        display_name: Some(Some("Asha K".into())),
        ..Default::default()
    };
    s.users().update(asha.id, change).await.unwrap();
    assert_last(&all(s).await, "system", "user.update", &a);

    s.profiles()
        .set_consent(asha.id, ConsentKind::AudioStorage, true)
        .await
        .unwrap();
    let e = all(s).await;
    assert_last(&e, "system", "consent.give", &a);
    assert_eq!(e.last().unwrap().outcome, "audio-storage");
    assert_eq!(e[e.len() - 2].action, "profile.update");
    s.profiles()
        .set_consent(asha.id, ConsentKind::Analytics, false)
        .await
        .unwrap();
    assert_last(&all(s).await, "system", "consent.withdraw", &a);

    let me = Actor::User(asha.id);
    let file = s
        .files()
        .put_bytes(
            me,
            asha.id,
            b"RIFF-audio",
            PutOptions::content_type("audio/wav"),
        )
        .await
        .unwrap();
    let f = format!("file:{}", file.id);
    assert_last(&all(s).await, &a, "file.put", &f);

    s.files().grant(me, file.id, ravi.id).await.unwrap();
    let e = all(s).await;
    assert_last(&e, &a, "file.grant", &f);
    assert_eq!(e.last().unwrap().outcome, r);
    s.files().revoke(me, file.id, ravi.id).await.unwrap();
    assert_last(&all(s).await, &a, "file.revoke", &f);

    // Reads commit nothing until the flush.
    let before = all(s).await.len();
    s.files().stat(me, file.id).await.unwrap();
    s.files().read(me, file.id).await.unwrap();
    s.files().read_range(me, file.id, 1, 2).await.unwrap();
    assert_eq!(all(s).await.len(), before, "a read committed");
    assert_eq!(s.audit().flush_reads().await.unwrap(), 3);
    let e = all(s).await;
    let reads: Vec<&str> = e[before..].iter().map(|e| e.action.as_str()).collect();
    assert_eq!(reads, ["file.stat", "file.read", "file.read_range"]);
    assert!(e[before..].iter().all(|e| e.actor == a && e.target == f));

    // A refusal (ravi no longer has the grant) is recorded too.
    assert!(s.files().read(Actor::User(ravi.id), file.id).await.is_err());
    s.flush().await.unwrap();
    let e = all(s).await;
    assert_last(&e, &r, "file.read", &f);
    assert_eq!(e.last().unwrap().outcome, "refused");

    s.files().delete(me, file.id).await.unwrap();
    assert_last(&all(s).await, &a, "file.delete", &f);
    s.files().restore(me, file.id).await.unwrap();
    assert_last(&all(s).await, &a, "file.restore", &f);

    s.keys().rotate_owner(asha.id).await.unwrap();
    assert_last(&all(s).await, "system", "key.rotate_owner", &a);
    s.keys()
        .rotate_master(MasterKey::generate().unwrap())
        .await
        .unwrap();
    assert_last(&all(s).await, "system", "key.rotate_master", "store");

    s.users().delete(ravi.id).await.unwrap();
    assert_last(&all(s).await, "system", "user.delete", &r);

    s.lifecycle().run("expiry", false).await.unwrap();
    s.files().delete(me, file.id).await.unwrap();
    s.lifecycle().run("audit-reads", false).await.unwrap();

    let e = all(s).await;
    let seqs: Vec<u64> = e.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=e.len() as u64).collect::<Vec<_>>());
    // No personal data: never a username or email.
    let text = serde_json::to_string(&e).unwrap();
    assert!(
        !text.contains("asha@") && !text.contains("\"asha\""),
        "{text}"
    );
    let report = s.audit().verify().await.unwrap();
    assert!(report.ok(), "{report:?}");
    assert_eq!(report.checked, e.len() as u64);

    // The chain still verifies after the master key rotation and a reopen.
    let dir = t.path();
    s.close().await;
    drop(t.store);
    let again = Store::open(config(&dir)).await.unwrap();
    assert!(again.audit().verify().await.unwrap().ok());
    again.close().await;
}

#[tokio::test]
async fn reads_noted_before_close_are_appended_by_close() {
    let t = open_store().await;
    let u = t.user("meera").await;
    let me = Actor::User(u.id);
    let file = t
        .store
        .files()
        .put_bytes(me, u.id, b"bytes", PutOptions::content_type("audio/wav"))
        .await
        .unwrap();
    t.store.files().read(me, file.id).await.unwrap();
    let dir = t.path();
    t.store.close().await;
    drop(t.store);
    let again = Store::open(config(&dir)).await.unwrap();
    assert_last(
        &all(&again).await,
        &me.to_string(),
        "file.read",
        &format!("file:{}", file.id),
    );
    again.close().await;
}

#[tokio::test]
async fn with_auditing_off_nothing_is_appended() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path()).audit(AuditConfig::default().enabled(false));
    let s = Store::open(cfg).await.unwrap();
    let u = s
        .users()
        .create(NewUser::new("off", "off@example.in").consent(ConsentKind::AudioStorage))
        .await
        .unwrap();
    let me = Actor::User(u.id);
    let file = s
        .files()
        .put_bytes(me, u.id, b"bytes", PutOptions::content_type("audio/wav"))
        .await
        .unwrap();
    s.files().read(me, file.id).await.unwrap();
    s.audit().flush_reads().await.unwrap();
    s.lifecycle().run_all(false).await.unwrap();
    assert!(all(&s).await.is_empty());
    assert!(s.audit_events(10).unwrap().is_empty());
    assert!(s.audit().verify().await.unwrap().ok());
    s.close().await;
}

#[tokio::test]
async fn tail_filters_by_user_action_and_time() {
    let t = open_store().await;
    let a = t.user("anil").await;
    let mid = bharatvoice_store::Timestamp::now();
    tokio::time::sleep(Duration::from_millis(2)).await;
    let b = t.user("bina").await;
    t.store.users().delete(a.id).await.unwrap();
    let mut f = AuditFilter::last(10);
    f.user = Some(a.id);
    let got: Vec<String> = t
        .store
        .audit()
        .tail(f)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert_eq!(got, ["user.create", "user.delete"]);
    let mut f = AuditFilter::last(10);
    f.since = Some(mid);
    f.action = Some("user.create".into());
    let got = t.store.audit().tail(f).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].target, format!("user:{}", b.id));
    let mut f = AuditFilter::last(1);
    f.action = Some("user.".into());
    assert_eq!(
        t.store.audit().tail(f).await.unwrap()[0].action,
        "user.delete"
    );
}

#[test]
fn cli_tail_and_verify() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    crate::common::init(d);
    let add = bvstore(
        d,
        &[
            "user",
            "add",
            "--username",
            "kavya",
            "--email",
            "k@example.in",
        ],
    );
    assert!(add.status.success());
    let tail = bvstore(
        d,
        &["--json", "audit", "tail", "-n", "5", "--user", "kavya"],
    );
    assert!(tail.status.success(), "{}", crate::common::stderr(&tail));
    let v: serde_json::Value = serde_json::from_str(&stdout(&tail)).unwrap();
    assert_eq!(v[0]["action"], "user.create");
    assert!(!stdout(&tail).contains("kavya"));
    let text = stdout(&bvstore(d, &["audit", "tail", "--action", "user.create"]));
    assert!(text.contains("user.create"), "{text}");
    let ok = bvstore(d, &["audit", "verify"]);
    assert_eq!(ok.status.code(), Some(0), "{}", stdout(&ok));
    crate::audit_tamper::change_outcome(&d.join("store.redb"), 1);
    let broken = bvstore(d, &["--json", "audit", "verify"]);
    assert_eq!(broken.status.code(), Some(8));
    let v: serde_json::Value = serde_json::from_str(&stdout(&broken)).unwrap();
    assert_eq!(v["problem"]["seq"], 1);
    assert_eq!(v["problem"]["kind"], "changed");
}
