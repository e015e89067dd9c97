//! Personal fields at rest: what a person said (a session's turns) and
//! who they are (a profile's languages, region, accent, voice and
//! preferences, their display name) never reach `store.redb` in clear, through updates,
//! deletion and erasure; a store written before they were sealed seals
//! them at its first open.

use bharatvoice_store::fuzzing::{plain_profile_bytes, plain_session_bytes, plain_user_bytes};
use bharatvoice_store::{
    ConsentKind, ConversationSession, Error, ListOptions, NewUser, ProfileUpdate, Role,
    SCHEMA_VERSION, Store, Turn, User, UserId, UserUpdate, VoicePreferences,
};
use redb::{Database, ReadableTable, TableDefinition, TableHandle};

use crate::common::{TestStore, config, open_store};

const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const SESSIONS: TableDefinition<u128, &[u8]> = TableDefinition::new("sessions");
const PROFILES: TableDefinition<u128, &[u8]> = TableDefinition::new("profiles");
const USERS: TableDefinition<u128, &[u8]> = TableDefinition::new("users");
const BY_USERNAME: TableDefinition<&str, &[u8]> = TableDefinition::new("user_records_by_username");
const BY_EMAIL: TableDefinition<&str, &[u8]> = TableDefinition::new("user_records_by_email");

/// Markers no other part of a store writes: ASCII and Devanagari.
const MARKERS: [&str; 2] = ["kesar-chai-marker-7731", "गुप्तशब्दसात"];

/// The markers found in the raw bytes of `store.redb`.
fn markers_in_file(dir: &std::path::Path) -> Vec<&'static str> {
    let raw = std::fs::read(dir.join("store.redb")).unwrap();
    MARKERS
        .into_iter()
        .filter(|m| raw.windows(m.len()).any(|w| w == m.as_bytes()))
        .collect()
}

fn turn(i: usize) -> Turn {
    let role = if i.is_multiple_of(2) {
        Role::User
    } else {
        Role::Assistant
    };
    Turn::new(role, format!("turn {i}: {} / {}", MARKERS[0], MARKERS[1]))
}

/// A profile change that puts a marker in every personal field.
fn marked_profile(n: usize) -> ProfileUpdate {
    let marked = |what: &str| format!("{what} {n} {} {}", MARKERS[0], MARKERS[1]);
    ProfileUpdate {
        region: Some(Some(marked("region"))),
        accent: Some(Some(marked("accent"))),
        voice: Some(VoicePreferences {
            voice: Some(marked("voice")),
            ..VoicePreferences::default()
        }),
        preferences: vec![
            (format!("{}-{n}", MARKERS[0]), Some(marked("value"))),
            ("city".into(), Some(marked("city"))),
        ],
        ..ProfileUpdate::default()
    }
}

async fn mark_profile(t: &TestStore, user: UserId, n: usize) {
    let p = t
        .store
        .profiles()
        .upsert(user, marked_profile(n))
        .await
        .unwrap();
    assert!(p.accent.as_deref().unwrap().contains(MARKERS[1]));
    assert_eq!(t.store.profiles().get(user).unwrap(), p);
}

fn marked_name(n: usize) -> String {
    format!("{} {n} {}", MARKERS[0], MARKERS[1])
}

/// A user whose display name carries the markers.
async fn named_user(t: &TestStore, name: &str) -> User {
    let u = t
        .store
        .users()
        .create(
            NewUser::new(name, format!("{name}@example.in"))
                .display_name(marked_name(0))
                .consent(ConsentKind::AudioStorage),
        )
        .await
        .unwrap();
    assert_eq!(u.display_name.as_deref(), Some(marked_name(0).as_str()));
    u
}

/// Every read path gives the display name back opened.
async fn assert_named(t: &TestStore, u: &User, n: usize) {
    let name = Some(marked_name(n));
    let users = t.store.users();
    assert_eq!(users.get(u.id).unwrap().display_name, name);
    assert_eq!(
        users.get_by_username(&u.username).unwrap().display_name,
        name
    );
    assert_eq!(users.get_by_email(&u.email).unwrap().display_name, name);
    let page = users.list(ListOptions::first(100)).await.unwrap();
    let listed = page.items.iter().find(|x| x.id == u.id).unwrap();
    assert_eq!(listed.display_name, name);
}

async fn reopen(t: TestStore) -> TestStore {
    let TestStore { dir, store } = t;
    store.close().await;
    drop(store);
    let store = Store::open(config(dir.path())).await.unwrap();
    TestStore { dir, store }
}

#[tokio::test]
async fn turns_never_reach_the_file_in_clear() {
    let t = open_store().await;
    let u = named_user(&t, "meera").await;
    assert_named(&t, &u, 0).await;
    mark_profile(&t, u.id, 0).await;
    let s = t.store.sessions().create(u.id, None).await.unwrap();
    for i in 0..6 {
        t.store.sessions().append_turn(s.id, turn(i)).await.unwrap();
    }
    let read = t.store.sessions().get(s.id).unwrap();
    let texts: Vec<String> = read.context.iter().map(|t| t.text.clone()).collect();
    assert_eq!(texts, (0..6).map(|i| turn(i).text).collect::<Vec<_>>());
    assert!(read.context[5].text.contains(MARKERS[1]));
    let t = reopen(t).await;
    assert_eq!(
        markers_in_file(t.dir.path()),
        Vec::<&str>::new(),
        "after appends"
    );
    assert_eq!(t.store.sessions().get(s.id).unwrap().context, read.context);

    // Updates: more turns, a touch, the end, then deletion; the profile
    // changed twice.
    mark_profile(&t, u.id, 1).await;
    mark_profile(&t, u.id, 2).await;
    let renamed = t
        .store
        .users()
        .update(
            u.id,
            UserUpdate {
                display_name: Some(Some(marked_name(1))),
                ..UserUpdate::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(renamed.display_name, Some(marked_name(1)));
    t.store
        .users()
        .set_password(u.id, "a long secret")
        .await
        .unwrap();
    assert!(
        t.store
            .users()
            .verify_password(u.id, "a long secret")
            .await
            .unwrap()
    );
    assert_named(&t, &u, 1).await;
    let deleted = t.store.users().delete(u.id).await.unwrap();
    assert_eq!(deleted.display_name, Some(marked_name(1)));
    let restored = t.store.users().restore(u.id).await.unwrap();
    assert_eq!(restored.display_name, Some(marked_name(1)));
    t.store.sessions().append_turn(s.id, turn(6)).await.unwrap();
    t.store.sessions().touch(s.id).await.unwrap();
    let ended = t.store.sessions().end(s.id).await.unwrap();
    assert_eq!(ended.context.len(), 7);
    let listed = t.store.sessions().list_for_user(u.id, 10).await.unwrap();
    assert_eq!(listed[0].context, ended.context);
    let second = t.store.sessions().create(u.id, None).await.unwrap();
    t.store
        .sessions()
        .append_turn(second.id, turn(0))
        .await
        .unwrap();
    t.store.sessions().delete(second.id).await.unwrap();
    let t = reopen(t).await;
    assert_eq!(
        markers_in_file(t.dir.path()),
        Vec::<&str>::new(),
        "after updates and deletion"
    );
    assert_named(&t, &u, 1).await;

    // Erasure destroys the record key: the sessions go, nothing opens.
    t.store.privacy().erase_user(u.id).await.unwrap();
    assert!(matches!(
        t.store.sessions().get(s.id),
        Err(Error::NotFound { .. })
    ));
    let t = reopen(t).await;
    assert_eq!(
        markers_in_file(t.dir.path()),
        Vec::<&str>::new(),
        "after erasure"
    );
}

/// A session row moved to another session's id does not open: the sealed
/// turns are bound to their record.
#[tokio::test]
async fn sealed_turns_moved_to_another_row_do_not_open() {
    let t = open_store().await;
    let u = t.user("arjun").await;
    let a = t.store.sessions().create(u.id, None).await.unwrap();
    let b = t.store.sessions().create(u.id, None).await.unwrap();
    t.store.sessions().append_turn(a.id, turn(0)).await.unwrap();
    let TestStore { dir, store } = t;
    store.close().await;
    drop(store);
    {
        let db = Database::create(dir.path().join("store.redb")).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut sessions = txn.open_table(SESSIONS).unwrap();
            let bytes = sessions
                .get(a.id.as_uuid().as_u128())
                .unwrap()
                .unwrap()
                .value()
                .to_vec();
            // Same owner, same clear fields but the id: only the sealed
            // context's binding to session `a` is wrong.
            let mut moved = bytes.clone();
            let (from, to) = (a.id.as_uuid(), b.id.as_uuid());
            let at = moved
                .windows(16)
                .position(|w| w == from.as_bytes())
                .unwrap();
            moved[at..at + 16].copy_from_slice(to.as_bytes());
            sessions
                .insert(b.id.as_uuid().as_u128(), moved.as_slice())
                .unwrap();
        }
        txn.commit().unwrap();
    }
    let store = Store::open(config(dir.path())).await.unwrap();
    assert_eq!(store.sessions().get(a.id).unwrap().context.len(), 1);
    assert!(matches!(
        store.sessions().get(b.id),
        Err(Error::Corrupt { .. })
    ));
}

#[tokio::test]
async fn a_store_from_before_sealing_seals_its_plain_turns_at_open() {
    let t = open_store().await;
    let u = named_user(&t, "kavya").await;
    let s = t.store.sessions().create(u.id, None).await.unwrap();
    t.store.sessions().append_turn(s.id, turn(0)).await.unwrap();
    mark_profile(&t, u.id, 0).await;
    let old_profile = t.store.profiles().get(u.id).unwrap();
    let mut old: ConversationSession = t.store.sessions().get(s.id).unwrap();
    old.context.push(turn(1));
    old.turn_count = 2;
    let TestStore { dir, store } = t;
    store.close().await;
    drop(store);

    // Back to schema 9: the session in format 1 (turns in clear), the
    // profile in format 2 (all in clear), no record keys.
    {
        let db = Database::create(dir.path().join("store.redb")).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(SESSIONS)
            .unwrap()
            .insert(
                s.id.as_uuid().as_u128(),
                plain_session_bytes(&old).as_slice(),
            )
            .unwrap();
        txn.open_table(PROFILES)
            .unwrap()
            .insert(
                u.id.as_uuid().as_u128(),
                plain_profile_bytes(&old_profile).as_slice(),
            )
            .unwrap();
        let [row, by_username, by_email] = plain_user_bytes(&u);
        txn.open_table(USERS)
            .unwrap()
            .insert(u.id.as_uuid().as_u128(), row.as_slice())
            .unwrap();
        txn.open_table(BY_USERNAME)
            .unwrap()
            .insert(u.username.as_str(), by_username.as_slice())
            .unwrap();
        txn.open_table(BY_EMAIL)
            .unwrap()
            .insert(u.email.as_str(), by_email.as_slice())
            .unwrap();
        let record_keys = txn
            .list_tables()
            .unwrap()
            .find(|t| t.name() == "record_keys")
            .expect("the table exists at schema 10");
        txn.delete_table(record_keys).unwrap();
        txn.open_table(META)
            .unwrap()
            .insert("schema_version", 9u32.to_le_bytes().as_slice())
            .unwrap();
        txn.commit().unwrap();
    }
    assert_eq!(markers_in_file(dir.path()), MARKERS.to_vec(), "the fixture");

    let store = Store::open(config(dir.path())).await.unwrap();
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    assert_eq!(store.sessions().get(s.id).unwrap(), old);
    assert_eq!(store.profiles().get(u.id).unwrap(), old_profile);
    assert_eq!(store.users().get(u.id).unwrap(), u);
    store.close().await;
    drop(store);
    assert_eq!(
        markers_in_file(dir.path()),
        Vec::<&str>::new(),
        "after the first open"
    );
    let store = Store::open(config(dir.path())).await.unwrap();
    assert_eq!(store.sessions().get(s.id).unwrap(), old);
    assert_eq!(store.profiles().get(u.id).unwrap(), old_profile);
    assert_eq!(store.users().get(u.id).unwrap(), u);
    assert_eq!(store.users().get_by_email(&u.email).unwrap(), u);
}

/// A master key rotation re-wraps record keys with the rest: the sealed
/// fields read back right after it and after a reopen under the new key.
#[tokio::test]
async fn sealed_fields_read_back_after_a_master_key_rotation() {
    let t = open_store().await;
    let u = named_user(&t, "ishaan").await;
    mark_profile(&t, u.id, 0).await;
    let s = t.store.sessions().create(u.id, None).await.unwrap();
    t.store.sessions().append_turn(s.id, turn(0)).await.unwrap();
    let profile = t.store.profiles().get(u.id).unwrap();
    let session = t.store.sessions().get(s.id).unwrap();
    let new = bharatvoice_store::MasterKey::generate().unwrap();
    t.store.keys().rotate_master(new).await.unwrap();
    assert_named(&t, &u, 0).await;
    let t = reopen(t).await;
    assert_named(&t, &u, 0).await;
    assert_eq!(t.store.profiles().get(u.id).unwrap(), profile);
    assert_eq!(t.store.sessions().get(s.id).unwrap(), session);
}
