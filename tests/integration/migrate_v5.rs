//! Schema 4 → 5: user records rewritten from format 2 (`postcard(User)`,
//! id repeated in the value) to format 3, in batches, with every lookup
//! path giving back the same users.

use std::collections::BTreeMap;

use bharatvoice_store::{ListOptions, NewUser, SCHEMA_VERSION, Store, User, UserId, UserUpdate};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use crate::common::config;

const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const USERS: TableDefinition<u128, &[u8]> = TableDefinition::new("users");
const BY_NAME: TableDefinition<&str, &[u8]> = TableDefinition::new("user_records_by_username");
const BY_EMAIL: TableDefinition<&str, &[u8]> = TableDefinition::new("user_records_by_email");

/// More than one batch of the step (4096 users).
const USERS_MADE: usize = 5000;

fn format_2(user: &User) -> Vec<u8> {
    postcard::to_extend(user, vec![2u8]).unwrap()
}

async fn make_users(store: &Store) -> Vec<User> {
    let mut made = Vec::with_capacity(USERS_MADE);
    for chunk in (0..USERS_MADE).collect::<Vec<_>>().chunks(500) {
        let mut set = tokio::task::JoinSet::new();
        for &i in chunk {
            let store = store.clone();
            set.spawn(async move {
                let mut new = NewUser::new(format!("m5_{i:05}"), format!("m5_{i:05}@example.in"));
                if i % 7 == 0 {
                    new = new.display_name(format!("उपयोगकर्ता {i}"));
                }
                store.users().create(new).await.unwrap()
            });
        }
        while let Some(u) = set.join_next().await {
            made.push(u.unwrap());
        }
    }
    made
}

#[tokio::test]
async fn a_schema_4_store_rewrites_its_users_in_format_3() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(config(dir.path())).await.unwrap();
    let mut made = make_users(&store).await;
    // A changed user (updated_at after created_at) and a soft-deleted one.
    let changed = store
        .users()
        .update(
            made[1].id,
            UserUpdate {
                email: Some("changed@example.in".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    made[1] = changed.clone();
    assert!(changed.updated_at > changed.created_at);
    made[2] = store.users().delete(made[2].id).await.unwrap();
    drop(store);

    // Turn the store back into schema 4: format-2 records in all three tables.
    let mut current = BTreeMap::new();
    {
        let db = Database::create(dir.path().join("store.redb")).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let (mut users, mut by_name, mut by_email) = (
                txn.open_table(USERS).unwrap(),
                txn.open_table(BY_NAME).unwrap(),
                txn.open_table(BY_EMAIL).unwrap(),
            );
            for user in &made {
                let key = user.id.as_uuid().as_u128();
                current.insert(key, users.get(key).unwrap().unwrap().value().to_vec());
                let old = format_2(user);
                users.insert(key, old.as_slice()).unwrap();
                by_name
                    .insert(user.username.as_str(), old.as_slice())
                    .unwrap();
                by_email
                    .insert(user.email.as_str(), old.as_slice())
                    .unwrap();
            }
            txn.open_table(META)
                .unwrap()
                .insert("schema_version", 4u32.to_le_bytes().as_slice())
                .unwrap();
        }
        txn.commit().unwrap();
    }
    let status = Store::migration_status(&config(dir.path())).await.unwrap();
    assert_eq!(
        (status.applied, status.pending.len()),
        (Some(4), SCHEMA_VERSION as usize - 4)
    );
    let file = dir.path().join("store.redb");
    let size_before = std::fs::metadata(&file).unwrap().len();

    let store = Store::open(config(dir.path())).await.unwrap();
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    // The rewrite doubles the pages in use until it commits; the store is
    // compacted after migrating, so it ends smaller than it started.
    let size_after = std::fs::metadata(&file).unwrap().len();
    assert!(size_after < size_before, "{size_before} -> {size_after}");
    for user in &made {
        if user.deleted_at.is_some() {
            assert!(store.users().get(user.id).is_err());
            continue;
        }
        assert_eq!(&store.users().get(user.id).unwrap(), user);
        assert_eq!(
            &store.users().get_by_username(&user.username).unwrap(),
            user
        );
        assert_eq!(&store.users().get_by_email(&user.email).unwrap(), user);
    }
    let mut listed = Vec::new();
    let mut options = ListOptions::first(1000);
    loop {
        let page = store.users().list(options.clone()).await.unwrap();
        listed.extend(page.items.into_iter().map(|u| u.id));
        match page.next {
            Some(c) => options.after = Some(c),
            None => break,
        }
    }
    let mut live: Vec<UserId> = made
        .iter()
        .filter(|u| u.deleted_at.is_none())
        .map(|u| u.id)
        .collect();
    live.sort_by_key(|id| std::cmp::Reverse(id.as_uuid().as_u128()));
    assert_eq!(listed, live);
    // The deleted user comes back whole.
    assert_eq!(
        store.users().restore(made[2].id).await.unwrap().username,
        made[2].username
    );
    drop(store);

    // On disk: what this version writes, smaller than format 2.
    let db = Database::create(dir.path().join("store.redb")).unwrap();
    let txn = db.begin_read().unwrap();
    let users = txn.open_table(USERS).unwrap();
    for user in &made[3..] {
        let key = user.id.as_uuid().as_u128();
        let stored = users.get(key).unwrap().unwrap().value().to_vec();
        // Format 4: format 3 with the display name sealed under a fresh
        // nonce each time it is written, so only unnamed users have the
        // very same bytes; a named one has as many, and no name in clear.
        match &user.display_name {
            None => assert_eq!(stored, current[&key], "{}", user.username),
            Some(name) => {
                assert_eq!(stored.len(), current[&key].len(), "{}", user.username);
                let name = name.as_bytes();
                assert!(!stored.windows(name.len()).any(|w| w == name));
            }
        }
        assert_eq!(stored[0], 4);
        // A sealed name costs a nonce, a tag and a length (29 or 30 bytes)
        // more.
        let sealing = if user.display_name.is_some() { 30 } else { 0 };
        assert!(
            stored.len() + 24 <= format_2(user).len() + sealing,
            "{}",
            user.username
        );
    }
}
