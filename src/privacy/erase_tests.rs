//! Erasure from the inside: the keys go first (a copy of a blob and of
//! its wrapped data key taken before opens with nothing the store holds,
//! the master key included), and afterwards no table but the erasure
//! record and the audit log holds the user's id, whichever step the
//! erasure was cut off at.

use crate::lifecycle::shred_tests::{decrypt_with_any_key, read_blob};
use crate::types::UserId;
use crate::{
    Actor, Config, ConsentKind, ErasureStage, ErasureStep, NewUser, PutOptions, Role, Store, Turn,
};

/// Tables allowed to hold an erased user's id.
const KEPT: &[&str] = &["erasures", "audit", "audit_log"];

/// The tables (other than [`KEPT`]) whose keys or values hold `id`, as
/// raw 16 bytes (either order) or text.
fn tables_holding(store: &Store, id: UserId) -> Vec<String> {
    let be = *id.as_uuid().as_bytes();
    let mut le = be;
    le.reverse();
    let text = id.to_string().into_bytes();
    let has = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).any(|w| w == needle);
    let mut out: Vec<String> = store
        .db()
        .dump_all()
        .into_iter()
        .filter(|(t, _, _)| !KEPT.contains(&t.as_str()))
        .filter(|(_, k, v)| {
            [&be[..], &le[..], &text[..]]
                .iter()
                .any(|n| has(k, n) || has(v, n))
        })
        .map(|(t, _, _)| t)
        .collect();
    out.dedup();
    out
}

struct World {
    _dir: tempfile::TempDir,
    store: Store,
    gone: UserId,
    kept: UserId,
    gone_file: crate::AudioFile,
    kept_file: crate::AudioFile,
}

/// Two users with files, sessions, a password and grants both ways.
async fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(Config::new(dir.path()).password_cost(8, 1))
        .await
        .unwrap();
    let mk = |name: &str| {
        NewUser::new(name, format!("{name}@example.in")).consent(ConsentKind::AudioStorage)
    };
    let gone = store
        .users()
        .create_with_password(mk("gauri").display_name("Gauri Marker"), "a long secret")
        .await
        .unwrap()
        .id;
    let kept = store.users().create(mk("keshav")).await.unwrap().id;
    let put = |owner: UserId, bytes: Vec<u8>| {
        let store = store.clone();
        async move {
            store
                .files()
                .put_bytes(
                    Actor::User(owner),
                    owner,
                    &bytes,
                    PutOptions::content_type("audio/wav"),
                )
                .await
                .unwrap()
        }
    };
    let gone_file = put(gone, (0..300_000u32).map(|i| (i % 241) as u8).collect()).await;
    for i in 0..5u8 {
        put(gone, vec![i; 1000 + usize::from(i)]).await;
    }
    let kept_file = put(kept, b"keshav's clip".to_vec()).await;
    // Grants both ways.
    store
        .files()
        .grant(Actor::User(gone), gone_file.id, kept)
        .await
        .unwrap();
    store
        .files()
        .grant(Actor::User(kept), kept_file.id, gone)
        .await
        .unwrap();
    for _ in 0..3 {
        let s = store.sessions().create(gone, None).await.unwrap();
        store
            .sessions()
            .append_turn(s.id, Turn::new(Role::User, "gauri's words"))
            .await
            .unwrap();
    }
    store.sessions().create(kept, None).await.unwrap();
    World {
        _dir: dir,
        store,
        gone,
        kept,
        gone_file,
        kept_file,
    }
}

#[tokio::test]
async fn the_first_step_makes_every_blob_unreadable_with_any_key() {
    let w = world().await;
    let copy = read_blob(&w.store, w.gone_file.blob);
    assert!(
        decrypt_with_any_key(&w.store, &copy).is_some(),
        "readable before"
    );
    w.store.privacy().request_erasure(w.gone).await.unwrap();
    let step = w.store.privacy().erase_step(w.gone).await.unwrap();
    assert_eq!(step, ErasureStep::More);
    let e = w.store.privacy().erasure(w.gone).unwrap().unwrap();
    assert_eq!(e.stage, ErasureStage::KeysDestroyed);
    // The blob row (with its wrapped data key) and the file are still
    // there, but no key the store holds opens it.
    assert!(
        w.store
            .blob_store()
            .backend
            .exists(w.gone_file.blob)
            .unwrap()
    );
    assert_eq!(decrypt_with_any_key(&w.store, &copy), None);
    // The other user's blob still opens with the same procedure.
    let other = read_blob(&w.store, w.kept_file.blob);
    assert!(decrypt_with_any_key(&w.store, &other).is_some());
}

#[tokio::test]
async fn cut_off_at_any_step_the_erasure_ends_the_same() {
    // How many steps a whole erasure takes here.
    let total = {
        let w = world().await;
        w.store.privacy().request_erasure(w.gone).await.unwrap();
        let mut n = 0;
        while w.store.privacy().erase_step(w.gone).await.unwrap() != ErasureStep::Done {
            n += 1;
            assert!(n < 100, "the erasure does not end");
        }
        n
    };
    assert!(total >= 3, "keys, files, sessions, then the rest: {total}");
    for cut in 0..=total {
        let w = world().await;
        let dir = w._dir.path().to_path_buf();
        w.store.privacy().request_erasure(w.gone).await.unwrap();
        for _ in 0..cut {
            w.store.privacy().erase_step(w.gone).await.unwrap();
        }
        w.store.close().await;
        drop(w.store);
        // Reopened, the erasure job resumes it.
        let store = Store::open(Config::new(&dir).password_cost(8, 1))
            .await
            .unwrap();
        let mut waited = 0;
        while store.privacy().erasure(w.gone).unwrap().map(|e| e.stage) != Some(ErasureStage::Done)
        {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            waited += 1;
            assert!(waited < 1000, "cut after {cut} steps: not resumed");
        }
        assert_eq!(
            tables_holding(&store, w.gone),
            Vec::<String>::new(),
            "cut after {cut} steps"
        );
        assert!(!tables_holding(&store, w.kept).is_empty());
        // The other user's data is whole.
        let me = Actor::User(w.kept);
        assert_eq!(
            store.files().read(me, w.kept_file.id).await.unwrap(),
            b"keshav's clip"
        );
        assert!(
            store
                .files()
                .grantees(me, w.kept_file.id)
                .await
                .unwrap()
                .is_empty()
        );
        store.close().await;
    }
}

#[tokio::test]
async fn erase_user_is_idempotent_and_frees_the_names() {
    let w = world().await;
    let r = w.store.privacy().erase_user(w.gone).await.unwrap();
    assert!(r.done && !r.already_done, "{r:?}");
    assert_eq!(
        (r.files, r.blobs_destroyed, r.sessions, r.grants_received),
        (6, 6, 3, 1)
    );
    assert!(r.keys_destroyed_at.is_some());
    assert_eq!(tables_holding(&w.store, w.gone), Vec::<String>::new());
    let again = w.store.privacy().erase_user(w.gone).await.unwrap();
    assert!(again.already_done && again.done, "{again:?}");
    // The username and email are free again.
    w.store
        .users()
        .create(NewUser::new("gauri", "gauri@example.in"))
        .await
        .unwrap();
    assert!(matches!(
        w.store.privacy().erase_user(UserId::new()).await,
        Err(crate::Error::NotFound { .. })
    ));
}

/// A file record removed behind the store's back (its index entries and
/// blob row left) does not stop an audio erasure: the stale index entry
/// goes, and the blob row no file names is dropped with its bytes
/// refunded, so the kept usage is zero and equals a recount (a user who
/// gives consent again is not refused by a quota full of erased audio).
#[tokio::test]
async fn blob_rows_dropped_by_an_erasure_are_refunded() {
    let w = world().await;
    let id = w.gone_file.id;
    w.store
        .db()
        .write(move |txn| {
            crate::db::forget_file_record(txn, id);
            Ok(())
        })
        .await
        .unwrap();
    let before = w.store.quotas().usage(w.gone).await.unwrap();
    assert!(before.stored_bytes > 0);
    w.store
        .profiles()
        .set_consent(w.gone, ConsentKind::AudioStorage, false)
        .await
        .unwrap();
    // Before, the record-less index entry was found again at every step
    // and the erasure never ended.
    tokio::time::timeout(
        std::time::Duration::from_secs(60),
        w.store.privacy().run_due(),
    )
    .await
    .expect("the erasure ends")
    .unwrap();
    let after = w.store.quotas().usage(w.gone).await.unwrap();
    assert_eq!((after.stored_bytes, after.blobs), (0, 0));
    assert_eq!(w.store.quotas().recount(w.gone).await.unwrap(), (0, 0));
}

/// Records removed behind the store's back (a file's and a session's,
/// their index entries left) do not stop a user's erasure, and nothing of
/// the user is left in any table.
#[tokio::test]
async fn index_entries_without_records_do_not_stop_an_erasure() {
    let w = world().await;
    let file = w.gone_file.id;
    let session = w.store.sessions().list_for_user(w.gone, 1).await.unwrap()[0].id;
    w.store
        .db()
        .write(move |txn| {
            crate::db::forget_file_record(txn, file);
            crate::db::forget_session_record(txn, session);
            Ok(())
        })
        .await
        .unwrap();
    let privacy = w.store.privacy();
    let report = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        privacy.erase_user(w.gone),
    )
    .await
    .expect("the erasure ends")
    .unwrap();
    assert!(report.done);
    assert_eq!(tables_holding(&w.store, w.gone), Vec::<String>::new());
}
