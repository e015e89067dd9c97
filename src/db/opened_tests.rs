//! The opened-context cache (`db::opened`) seen through the store: reads
//! follow every change, a row changed behind the cache is opened (or
//! refused) again, and an erasure leaves no opened text in memory.

use redb::ReadableTable;

use crate::db::schema::SESSIONS;
use crate::error::{Error, StorageContext};
use crate::model::session::{Role, Turn};
use crate::types::{SessionId, UserId};
use crate::{Config, NewUser, Store};

async fn store(dir: &std::path::Path) -> Store {
    Store::open(Config::new(dir).password_cost(8, 1))
        .await
        .unwrap()
}

/// A new user `name` with one session holding one turn of `text`.
async fn session_with_turn(store: &Store, name: &str, text: &str) -> (UserId, SessionId) {
    let user = store
        .users()
        .create(NewUser::new(name, format!("{name}@example.in")))
        .await
        .unwrap();
    let s = store.sessions().create(user.id, None).await.unwrap();
    store
        .sessions()
        .append_turn(s.id, Turn::new(Role::User, text))
        .await
        .unwrap();
    (user.id, s.id)
}

fn texts(turns: &[Turn]) -> Vec<&str> {
    turns.iter().map(|t| t.text.as_str()).collect()
}

#[tokio::test]
async fn reads_follow_every_change_to_a_session() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path()).await;
    let user = store
        .users()
        .create(NewUser::new("meera", "meera@example.in"))
        .await
        .unwrap();
    let s = store.sessions().create(user.id, None).await.unwrap();
    let sessions = store.sessions();
    for (i, text) in ["नमस्ते", "मौसम कैसा है?", "धूप है"].iter().enumerate()
    {
        sessions
            .append_turn(s.id, Turn::new(Role::User, *text))
            .await
            .unwrap();
        // Twice: the first read may open, the second is served from memory.
        for _ in 0..2 {
            let got = sessions.get(s.id).unwrap();
            assert_eq!(got.context.len(), i + 1);
            assert_eq!(got.context[i].text, *text);
        }
    }
    assert!(store.db().sealer().unwrap().opened().len() >= 1);
    sessions.end(s.id).await.unwrap();
    assert!(sessions.get(s.id).unwrap().ended_at.is_some());
    sessions.delete(s.id).await.unwrap();
    assert!(matches!(sessions.get(s.id), Err(Error::NotFound { .. })));
}

/// Rewrites session `id`'s stored row with `change` applied to its bytes.
async fn change_row(store: &Store, id: SessionId, change: impl Fn(&mut Vec<u8>) + Send + 'static) {
    store
        .db()
        .write(move |txn| {
            let mut table = txn.open_table(SESSIONS).ctx("opening sessions")?;
            let mut bytes = table
                .get(id.to_key())
                .ctx("reading")?
                .expect("the row")
                .value()
                .to_vec();
            change(&mut bytes);
            table.insert(id.to_key(), bytes.as_slice()).ctx("writing")?;
            Ok(())
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn a_row_changed_behind_the_cache_is_opened_again_or_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path()).await;
    let user = store
        .users()
        .create(NewUser::new("arjun", "arjun@example.in"))
        .await
        .unwrap();
    let sessions = store.sessions();
    let a = sessions.create(user.id, None).await.unwrap();
    let b = sessions.create(user.id, None).await.unwrap();
    // Long enough that the sealed body is most of the row.
    let words = "first words ".repeat(40);
    sessions
        .append_turn(a.id, Turn::new(Role::User, words.clone()))
        .await
        .unwrap();
    sessions
        .append_turn(b.id, Turn::new(Role::User, "other words"))
        .await
        .unwrap();
    assert_eq!(texts(&sessions.get(a.id).unwrap().context), [&words]);

    // B's sealed context copied into A's row (same owner, same key): it
    // must not open there (bound to B's id), cached turns or not.
    let b_row = store
        .db()
        .read(|txn| {
            let t = txn.open_table(SESSIONS).ctx("opening sessions")?;
            Ok(t.get(b.id.to_key())
                .ctx("reading")?
                .unwrap()
                .value()
                .to_vec())
        })
        .unwrap();
    let a_row = store
        .db()
        .read(|txn| {
            let t = txn.open_table(SESSIONS).ctx("opening sessions")?;
            Ok(t.get(a.id.to_key())
                .ctx("reading")?
                .unwrap()
                .value()
                .to_vec())
        })
        .unwrap();
    // B's row with A's id in place of its own.
    let (a_id, b_id) = (a.id.as_uuid(), b.id.as_uuid());
    let swapped: Vec<u8> = {
        let mut out = b_row.clone();
        let at = out
            .windows(16)
            .position(|w| w == b_id.as_bytes())
            .expect("B's id in its row");
        out[at..at + 16].copy_from_slice(a_id.as_bytes());
        out
    };
    change_row(&store, a.id, move |bytes| *bytes = swapped.clone()).await;
    assert!(
        matches!(sessions.get(a.id), Err(Error::Corrupt { .. })),
        "{:?}",
        sessions.get(a.id)
    );

    // The original bytes back: the turns read as before.
    change_row(&store, a.id, move |bytes| *bytes = a_row.clone()).await;
    assert_eq!(texts(&sessions.get(a.id).unwrap().context), [&words]);

    // One bit in the middle of the row flipped, inside the sealed body
    // (about 500 of its 600 bytes): refused, though the nonce is the one
    // the cache holds.
    change_row(&store, a.id, |bytes| {
        let middle = bytes.len() / 2;
        bytes[middle] ^= 1;
    })
    .await;
    assert!(matches!(sessions.get(a.id), Err(Error::Corrupt { .. })));
}

#[tokio::test]
async fn an_erasure_leaves_no_opened_context_in_memory() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path()).await;
    let (user, s) = session_with_turn(&store, "kabir", "मेरा पता").await;
    store.sessions().get(s).unwrap();
    let opened = store.db().sealer().unwrap();
    assert_eq!(opened.opened().len(), 1);
    store.privacy().erase_user(user).await.unwrap();
    assert_eq!(opened.opened().len(), 0);
    assert!(store.sessions().get(s).is_err());
}

#[tokio::test]
async fn a_store_without_the_cache_reads_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(
        Config::new(dir.path())
            .password_cost(8, 1)
            .session_cache_bytes(0),
    )
    .await
    .unwrap();
    let (_, s) = session_with_turn(&store, "isha", "hello").await;
    assert_eq!(texts(&store.sessions().get(s).unwrap().context), ["hello"]);
    assert_eq!(store.db().sealer().unwrap().opened().len(), 0);
}
