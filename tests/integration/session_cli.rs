//! `bvstore session`: list a user's sessions, show one's turns, end one.

use bharatvoice_store::{Role, SessionId, Store, Turn, UserId};

use crate::blob_cli::{add_user, json};
use crate::common::{bvstore, config, stdout};

/// Two sessions of `mira` made through the library: the first with two
/// turns, the second newer and empty.
async fn sessions(d: &std::path::Path, user: &str) -> (SessionId, SessionId) {
    let store = Store::open(config(d)).await.unwrap();
    let user: UserId = user.parse().unwrap();
    let s = store.sessions();
    let a = s
        .create(user, Some("hi-IN".parse().unwrap()))
        .await
        .unwrap();
    s.append_turn(a.id, Turn::new(Role::User, "कल मौसम कैसा रहेगा?"))
        .await
        .unwrap();
    s.append_turn(a.id, Turn::new(Role::Assistant, "कल धूप रहेगी।"))
        .await
        .unwrap();
    let b = s.create(user, None).await.unwrap();
    store.close().await;
    drop(store);
    (a.id, b.id)
}

#[tokio::test]
async fn the_cli_lists_shows_and_ends_a_users_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("data");
    crate::common::init(&d);
    let mira = add_user(&d, "mira");
    let (a, b) = sessions(&d, &mira).await;
    let (a, b) = (a.to_string(), b.to_string());

    let list = json(&bvstore(&d, &["--json", "session", "list", "mira"]));
    let listed: Vec<_> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        listed,
        [b.as_str(), a.as_str()],
        "most recently active first"
    );
    let table = stdout(&bvstore(&d, &["session", "list", &mira, "--limit", "1"]));
    assert!(table.starts_with("ID "), "{table}");
    assert_eq!(table.lines().count(), 2, "{table}");

    let shown = json(&bvstore(&d, &["--json", "session", "show", &a]));
    assert_eq!(shown["turn_count"], 2);
    assert_eq!(shown["context"][0]["text"], "कल मौसम कैसा रहेगा?");
    assert_eq!(shown["context"][1]["role"], "assistant");
    let text = stdout(&bvstore(&d, &["session", "show", &a]));
    assert!(text.contains("2 appended, 2 kept"), "{text}");
    assert!(text.contains("कल धूप रहेगी।"), "{text}");

    let ended = json(&bvstore(&d, &["--json", "session", "end", &a]));
    assert!(ended["ended_at"].is_string(), "{ended}");
    let again = stdout(&bvstore(&d, &["session", "end", &a]));
    assert!(again.contains("had already ended"), "{again}");
    let list = stdout(&bvstore(&d, &["session", "list", "mira"]));
    assert!(list.contains("ended "), "{list}");

    let unknown = bvstore(&d, &["session", "show", &SessionId::new().to_string()]);
    assert_eq!(unknown.status.code(), Some(3), "not found");
    let empty = add_user(&d, "ravi");
    let none = stdout(&bvstore(&d, &["session", "list", &empty]));
    assert!(none.contains("has no live sessions"), "{none}");
}
