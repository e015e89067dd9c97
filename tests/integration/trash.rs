//! The trash: soft-deleted files and users are listed apart from the live
//! ones (library and CLI), until they are restored or purged.

use std::time::Duration;

use bharatvoice_store::{Actor, LifecycleConfig, ListFilter, ListOptions, PutOptions, Store};

use crate::blob_cli::{add_user, json, put_file};
use crate::common::{TestStore, bvstore, config};

fn ids<T, I: PartialEq>(items: &[T], id: impl Fn(&T) -> I) -> Vec<I> {
    items.iter().map(id).collect()
}

#[tokio::test]
async fn deleted_files_and_users_are_listed_in_the_trash_until_restored_or_purged() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(
        config(dir.path()).lifecycle(LifecycleConfig::default().purge_grace(Duration::ZERO)),
    )
    .await
    .unwrap();
    let t = TestStore { dir, store };
    let u = t.user("mira").await;
    let me = Actor::User(u.id);
    let wav = PutOptions::content_type("audio/wav");
    let mut files = Vec::new();
    for n in 0..4u8 {
        files.push(t.put_as(&u, &[n; 100], wav.clone()).await.id);
    }
    for id in [files[0], files[2]] {
        t.store.files().delete(me, id).await.unwrap();
    }
    let list = |deleted| {
        let store = t.store.clone();
        async move {
            let filter = ListFilter {
                deleted,
                ..Default::default()
            };
            let page = store
                .files()
                .list(me, u.id, filter, ListOptions::default())
                .await
                .unwrap();
            ids(&page.items, |f| f.id)
        }
    };
    assert_eq!(list(false).await, [files[3], files[1]]);
    assert_eq!(list(true).await, [files[2], files[0]], "newest first");

    // A page of one walks the trash with its cursor.
    let trash = ListFilter {
        deleted: true,
        ..Default::default()
    };
    let first = t
        .store
        .files()
        .list(me, u.id, trash.clone(), ListOptions::first(1))
        .await
        .unwrap();
    let cursor = first.next.expect("a second page");
    let second = t
        .store
        .files()
        .list(me, u.id, trash, ListOptions::after(cursor, 1))
        .await
        .unwrap();
    assert_eq!(ids(&second.items, |f| f.id), [files[0]]);

    t.store.files().restore(me, files[2]).await.unwrap();
    assert_eq!(list(true).await, [files[0]]);
    t.store
        .lifecycle()
        .run_to_end("purge", false)
        .await
        .unwrap();
    assert!(list(true).await.is_empty(), "the purge empties the trash");
    assert_eq!(list(false).await, [files[3], files[2], files[1]]);

    // Users.
    let (a, b) = (t.bare_user("asha").await, t.bare_user("ravi").await);
    t.store.users().delete(a.id).await.unwrap();
    t.store.users().delete(b.id).await.unwrap();
    let trashed_users = || async {
        let page = t.store.users().list_deleted(ListOptions::default()).await;
        ids(&page.unwrap().items, |u| u.id)
    };
    assert_eq!(trashed_users().await, [b.id, a.id]);
    let live = t.store.users().list(ListOptions::default()).await.unwrap();
    assert_eq!(ids(&live.items, |u| u.id), [u.id]);
    t.store.users().restore(a.id).await.unwrap();
    assert_eq!(trashed_users().await, [b.id]);
}

#[test]
fn the_cli_lists_the_trash_with_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("data");
    crate::common::init(&d);
    add_user(&d, "mira");
    let gone = add_user(&d, "gone");
    let input = dir.path().join("clip.wav");
    std::fs::write(&input, b"RIFF pcm").unwrap();
    let id = put_file(&d, &input, "mira", &[])["id"]
        .as_str()
        .unwrap()
        .to_string();
    json(&bvstore(
        &d,
        &["--json", "file", "rm", &id, "--user", "mira"],
    ));
    json(&bvstore(&d, &["--json", "user", "rm", &gone]));

    let live = json(&bvstore(&d, &["--json", "file", "ls", "--user", "mira"]));
    assert_eq!(live["items"].as_array().unwrap().len(), 0);
    let trash = json(&bvstore(
        &d,
        &["--json", "file", "ls", "--user", "mira", "--deleted"],
    ));
    assert_eq!(trash["items"][0]["id"], id.as_str());
    assert!(trash["items"][0]["deleted_at"].is_string());

    let users = json(&bvstore(&d, &["--json", "user", "list", "--deleted"]));
    let names: Vec<_> = users["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["gone"]);
}
