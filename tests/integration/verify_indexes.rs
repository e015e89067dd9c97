//! Verify and repair of the user and session indexes: each index damaged
//! both ways (a row without its entry, an entry no row calls for, an
//! entry that says otherwise), found with its id and repaired from the
//! rows, after which every lookup path works again.

use bharatvoice_store::{ConversationSession, ProblemKind, Store};
use redb::{ReadableTable, TableDefinition};

use crate::verify::{Fixture, config, of};

const BY_USERNAME: TableDefinition<&str, &[u8]> = TableDefinition::new("user_records_by_username");
const BY_EMAIL: TableDefinition<&str, &[u8]> = TableDefinition::new("user_records_by_email");
const BY_USER: TableDefinition<(u128, i64, u128), ()> = TableDefinition::new("sessions_by_user");
const BY_EXPIRY: TableDefinition<(i64, u128), ()> = TableDefinition::new("sessions_by_expiry");
const BY_DELETED: TableDefinition<(i64, u128), ()> = TableDefinition::new("sessions_by_deleted");

fn key(s: &ConversationSession) -> u128 {
    s.id.as_uuid().as_u128()
}

#[tokio::test]
async fn user_index_damage_is_found_both_ways_and_repaired() {
    let f = Fixture::new().await;
    let (asha, bina) = (f.asha.id, f.bina.id);
    {
        let db = f.db();
        let txn = db.begin_write().unwrap();
        {
            let mut by_name = txn.open_table(BY_USERNAME).unwrap();
            let mut by_email = txn.open_table(BY_EMAIL).unwrap();
            // asha has no username entry.
            by_name.remove("asha").unwrap();
            // bina's email entry holds asha's copy.
            let asha_copy = by_email
                .get("asha@example.in")
                .unwrap()
                .unwrap()
                .value()
                .to_vec();
            by_email
                .insert("bina@example.in", asha_copy.as_slice())
                .unwrap();
            // An entry that names no one.
            by_name.insert("ghost", b"\x01garbage".as_slice()).unwrap();
        }
        txn.commit().unwrap();
    }
    let r = f.verify(false, false).await;
    assert_eq!(
        of(&r, ProblemKind::MissingIndexEntry),
        [(format!("user_records_by_username user {asha}"), false)],
        "{r:?}"
    );
    let dangling = of(&r, ProblemKind::DanglingIndexEntry);
    assert!(
        dangling.contains(&(format!("user_records_by_email user {asha}"), false)),
        "{dangling:?}"
    );
    let ghost: Vec<_> = dangling
        .iter()
        .filter(|(id, _)| id.starts_with("user_records_by_username entry "))
        .collect();
    assert_eq!(ghost.len(), 1, "{dangling:?}");
    assert!(!ghost[0].0.contains("ghost"), "no key in a problem id");
    assert_eq!(dangling.len(), 2, "{dangling:?}");

    let fixed = f.verify(false, true).await;
    assert!(fixed.is_clean(), "{:?}", fixed.problems);
    assert!(f.verify(false, false).await.is_clean());
    let store = Store::open(config(f.dir.path())).await.unwrap();
    assert_eq!(store.users().get_by_username("asha").unwrap().id, asha);
    let b = store.users().get_by_email("bina@example.in").unwrap();
    assert_eq!((b.id, b.username.as_str()), (bina, "bina"));
    assert!(store.users().get_by_username("ghost").is_err());
    store.close().await;
}

#[tokio::test]
async fn a_copy_that_differs_from_its_row_is_found_and_rewritten() {
    let f = Fixture::new().await;
    let bina = f.bina.id;
    {
        let db = f.db();
        let txn = db.begin_write().unwrap();
        {
            let mut by_name = txn.open_table(BY_USERNAME).unwrap();
            let email_copy = txn
                .open_table(BY_EMAIL)
                .unwrap()
                .get("bina@example.in")
                .unwrap()
                .unwrap()
                .value()
                .to_vec();
            // Same user, same key, but not the username index's copy.
            by_name.insert("bina", email_copy.as_slice()).unwrap();
        }
        txn.commit().unwrap();
    }
    let r = f.verify(false, false).await;
    assert_eq!(
        of(&r, ProblemKind::DanglingIndexEntry),
        [(format!("user_records_by_username user {bina}"), false)],
        "{r:?}"
    );
    let fixed = f.verify(false, true).await;
    assert!(fixed.is_clean(), "{:?}", fixed.problems);
    let store = Store::open(config(f.dir.path())).await.unwrap();
    let b = store.users().get_by_username("bina").unwrap();
    assert_eq!(b, store.users().get(bina).unwrap());
    store.close().await;
}

#[tokio::test]
async fn session_index_damage_is_found_both_ways_and_repaired() {
    let f = Fixture::new().await;
    let (open, ended, deleted) = {
        let store = Store::open(config(f.dir.path())).await.unwrap();
        let s = store.sessions();
        let open = s.list_for_user(f.asha.id, 10).await.unwrap().remove(0);
        let ended = s.create(f.asha.id, None).await.unwrap();
        let ended = s.end(ended.id).await.unwrap();
        let gone = s.create(f.bina.id, None).await.unwrap();
        let deleted = s.delete(gone.id).await.unwrap();
        store.close().await;
        drop(store);
        (open, ended, deleted)
    };
    let deleted_at = deleted.deleted_at.unwrap().as_micros();
    let stranger = u128::MAX - 7;
    {
        let db = f.db();
        let txn = db.begin_write().unwrap();
        {
            let mut by_expiry = txn.open_table(BY_EXPIRY).unwrap();
            let mut by_deleted = txn.open_table(BY_DELETED).unwrap();
            let mut by_user = txn.open_table(BY_USER).unwrap();
            // The open session is missing from the expiry walk, the
            // ended one is in it.
            assert!(
                by_expiry
                    .remove((open.expires_at.as_micros(), key(&open)))
                    .unwrap()
                    .is_some()
            );
            by_expiry.insert((0, key(&ended)), ()).unwrap();
            // The deleted session is missing from the purge's walk; an
            // entry names a session that never was.
            assert!(
                by_deleted
                    .remove((deleted_at, key(&deleted)))
                    .unwrap()
                    .is_some()
            );
            by_deleted.insert((1, stranger), ()).unwrap();
            // The open session's user entry has the wrong time.
            let u = f.asha.id.as_uuid().as_u128();
            assert!(
                by_user
                    .remove((u, open.last_active_at.as_micros(), key(&open)))
                    .unwrap()
                    .is_some()
            );
            by_user.insert((u, 1, key(&open)), ()).unwrap();
        }
        txn.commit().unwrap();
    }
    let r = f.verify(false, false).await;
    let mut missing = of(&r, ProblemKind::MissingIndexEntry);
    missing.sort();
    assert_eq!(
        missing,
        [
            (format!("sessions_by_deleted session {}", deleted.id), false),
            (format!("sessions_by_expiry session {}", open.id), false),
            (format!("sessions_by_user session {}", open.id), false),
        ],
        "{r:?}"
    );
    let mut dangling = of(&r, ProblemKind::DanglingIndexEntry);
    dangling.sort();
    let stranger_id = bharatvoice_store::SessionId::from(uuid::Uuid::from_u128(stranger));
    let mut want = vec![
        (format!("sessions_by_deleted session {stranger_id}"), false),
        (format!("sessions_by_expiry session {}", ended.id), false),
        (format!("sessions_by_user session {}", open.id), false),
    ];
    want.sort();
    assert_eq!(dangling, want, "{r:?}");

    let fixed = f.verify(false, true).await;
    assert!(fixed.is_clean(), "{:?}", fixed.problems);
    assert!(f.verify(false, false).await.is_clean());
    // The walks see the sessions again: the open one expires, the ended
    // one does not, and the user's list is whole.
    let store = Store::open(config(f.dir.path())).await.unwrap();
    let far = bharatvoice_store::Timestamp::from_micros(i64::MAX / 2);
    let due: Vec<_> = store
        .sessions()
        .find_expired(far, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(due, [open.id]);
    let listed = store.sessions().list_for_user(f.asha.id, 10).await.unwrap();
    assert_eq!(listed.len(), 2, "{listed:?}");
    store.close().await;
}
