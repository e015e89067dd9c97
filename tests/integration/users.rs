//! Users: create, look up, change, soft delete, list, passwords.

use bharatvoice_store::{Entity, Error, ListOptions, NewUser, UserId, UserStatus, UserUpdate};

use crate::common::open_store;
use crate::logs::capture;

#[tokio::test]
async fn create_and_get_by_id_username_and_email() {
    let t = open_store().await;
    let u = t
        .store
        .users()
        .create(NewUser::new("  Ravi_K ", "Ravi.K@Example.IN").display_name("रवि"))
        .await
        .unwrap();
    assert_eq!(u.username, "ravi_k");
    assert_eq!(u.email, "ravi.k@example.in");
    assert_eq!(u.status, UserStatus::Active);
    assert_eq!(u.created_at, u.updated_at);
    assert_eq!(t.store.users().get(u.id).unwrap(), u);
    assert_eq!(t.store.users().get_by_username("RAVI_K").unwrap(), u);
    assert_eq!(
        t.store.users().get_by_email("RAVI.K@example.in").unwrap(),
        u
    );
}

#[tokio::test]
async fn duplicate_username_and_email_are_conflicts_naming_the_field() {
    let t = open_store().await;
    let first = t.user("ravi").await;
    let dup_name = t
        .store
        .users()
        .create(NewUser::new("RAVI", "other@example.in"))
        .await
        .unwrap_err();
    match &dup_name {
        Error::Conflict {
            entity: Entity::User,
            field: "username",
            value,
            existing,
        } => {
            assert_eq!(value, "ravi");
            assert_eq!(existing, &first.id.to_string());
        }
        other => panic!("expected a username conflict, got {other:?}"),
    }
    assert!(
        dup_name
            .to_string()
            .contains("username ravi is already used by user")
    );
    let dup_email = t
        .store
        .users()
        .create(NewUser::new("ravi2", "RAVI@example.IN"))
        .await
        .unwrap_err();
    assert!(
        matches!(dup_email, Error::Conflict { field: "email", .. }),
        "{dup_email:?}"
    );
    // Nothing of the refused creates was written.
    assert_eq!(
        t.store
            .users()
            .list(ListOptions::first(10))
            .await
            .unwrap()
            .items
            .len(),
        1
    );
    assert!(t.store.users().get_by_username("ravi2").is_err());
}

#[tokio::test]
async fn invalid_names_are_refused() {
    let t = open_store().await;
    for (name, email) in [
        ("ab", "a@b.in"),
        ("has space", "a@b.in"),
        ("_lead", "a@b.in"),
        ("नाम", "a@b.in"),
        ("okname", "no-at"),
        ("okname", "a@localhost"),
        ("okname", "a b@c.in"),
    ] {
        let e = t
            .store
            .users()
            .create(NewUser::new(name, email))
            .await
            .unwrap_err();
        assert!(
            matches!(e, Error::InvalidInput { .. }),
            "{name} {email}: {e:?}"
        );
    }
}

#[tokio::test]
async fn unknown_ids_are_not_found() {
    let t = open_store().await;
    let id = UserId::new();
    assert!(matches!(
        t.store.users().get(id),
        Err(Error::NotFound {
            entity: Entity::User,
            ..
        })
    ));
    assert!(matches!(
        t.store.users().delete(id).await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        t.store.users().restore(id).await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        t.store.users().update(id, UserUpdate::default()).await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        t.store.users().get_by_username("nobody"),
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        t.store.users().get_by_email("nobody@example.in"),
        Err(Error::NotFound { .. })
    ));
    assert!("not-a-uuid".parse::<UserId>().is_err());
}

#[tokio::test]
async fn update_bumps_updated_at_and_moves_the_email_index() {
    let t = open_store().await;
    let u = t.user("meena").await;
    let other = t.user("kavya").await;
    tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    let change = UserUpdate {
        email: Some("Meena@New.in".into()),
        display_name: Some(Some("Meena".into())),
        status: Some(UserStatus::Suspended),
    };
    let v = t.store.users().update(u.id, change).await.unwrap();
    assert!(v.updated_at > u.updated_at);
    assert_eq!(v.created_at, u.created_at);
    assert_eq!(
        (v.email.as_str(), v.status),
        ("meena@new.in", UserStatus::Suspended)
    );
    assert_eq!(
        t.store.users().get_by_email("meena@new.in").unwrap().id,
        u.id
    );
    assert!(t.store.users().get_by_email("meena@example.in").is_err());
    // The old email is free again; a taken one is a conflict.
    let taken = UserUpdate {
        email: Some(other.email.clone()),
        ..Default::default()
    };
    assert!(matches!(
        t.store.users().update(u.id, taken).await,
        Err(Error::Conflict { field: "email", .. })
    ));
    t.store
        .users()
        .create(NewUser::new("newcomer", "meena@example.in"))
        .await
        .unwrap();
}

#[tokio::test]
async fn soft_delete_hides_and_restore_brings_back() {
    let t = open_store().await;
    let u = t.user("arjun").await;
    let d = t.store.users().delete(u.id).await.unwrap();
    assert!(d.deleted_at.is_some());
    assert!(matches!(
        t.store.users().get(u.id),
        Err(Error::NotFound { .. })
    ));
    assert!(t.store.users().get_by_username("arjun").is_err());
    assert!(t.store.users().get_by_email("arjun@example.in").is_err());
    assert!(
        t.store
            .users()
            .list(ListOptions::first(10))
            .await
            .unwrap()
            .items
            .is_empty()
    );
    // Deleting twice is NotFound; the name stays reserved.
    assert!(matches!(
        t.store.users().delete(u.id).await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        t.store
            .users()
            .create(NewUser::new("arjun", "x@example.in"))
            .await,
        Err(Error::Conflict { .. })
    ));
    let r = t.store.users().restore(u.id).await.unwrap();
    assert_eq!(r.deleted_at, None);
    assert_eq!(t.store.users().get_by_username("arjun").unwrap().id, u.id);
}

#[tokio::test]
async fn list_pages_are_stable_and_newest_first() {
    let t = open_store().await;
    let mut ids = Vec::new();
    for i in 0..25 {
        ids.push(t.user(&format!("user{i:02}")).await.id);
    }
    t.store.users().delete(ids[10]).await.unwrap();
    let expected: Vec<UserId> = ids
        .iter()
        .rev()
        .copied()
        .filter(|id| *id != ids[10])
        .collect();
    let mut seen = Vec::new();
    let mut page = t.store.users().list(ListOptions::first(7)).await.unwrap();
    // A user created mid-listing appears before the cursor, not in later pages.
    t.user("latecomer").await;
    loop {
        assert!(page.items.len() <= 7);
        seen.extend(page.items.iter().map(|u| u.id));
        match page.next {
            Some(c) => {
                page = t
                    .store
                    .users()
                    .list(ListOptions::after(c, 7))
                    .await
                    .unwrap()
            }
            None => break,
        }
    }
    assert_eq!(seen, expected);
}

#[tokio::test]
async fn passwords_are_hashed_checked_and_never_printed() {
    let t = open_store().await;
    let u = t.user("priya").await;
    assert!(
        !t.store
            .users()
            .verify_password(u.id, "whatever-it-is")
            .await
            .unwrap()
    );
    assert!(matches!(
        t.store.users().set_password(u.id, "short").await,
        Err(Error::InvalidInput { .. })
    ));
    t.store
        .users()
        .set_password(u.id, "correct horse battery")
        .await
        .unwrap();
    assert!(
        !t.store
            .users()
            .verify_password(u.id, "wrong horse battery")
            .await
            .unwrap()
    );
    assert_eq!(t.store.users().get(u.id).unwrap().last_login_at, None);
    assert!(
        t.store
            .users()
            .verify_password(u.id, "correct horse battery")
            .await
            .unwrap()
    );
    let after = t.store.users().get(u.id).unwrap();
    assert!(after.has_password);
    assert!(after.last_login_at.is_some());
    let debug = format!("{after:?}");
    let json = serde_json::to_string(&after).unwrap();
    for text in [&debug, &json] {
        assert!(!text.contains("argon2"), "hash leaked: {text}");
        assert!(!text.contains("correct horse"), "password leaked: {text}");
    }
    assert!(matches!(
        t.store.users().verify_password(UserId::new(), "x").await,
        Err(Error::NotFound { .. })
    ));
}

#[tokio::test]
async fn logs_carry_ids_but_never_passwords_or_hashes() {
    let (buf, _guard) = capture(tracing::Level::TRACE, true);
    let t = open_store().await;
    let u = t.user("logged").await;
    t.store
        .users()
        .set_password(u.id, "sekrit passphrase")
        .await
        .unwrap();
    assert!(
        t.store
            .users()
            .verify_password(u.id, "sekrit passphrase")
            .await
            .unwrap()
    );
    let logs = buf.text();
    assert!(
        logs.contains(&u.id.to_string()),
        "spans carry the user id:\n{logs}"
    );
    assert!(
        logs.contains("set_password") && logs.contains("verify_password"),
        "{logs}"
    );
    assert!(
        !logs.contains("sekrit") && !logs.contains("argon2"),
        "secret in logs:\n{logs}"
    );
}

/// Point reads are hot: their spans are `DEBUG`, so an application logging
/// at `INFO` does not pay for a span per read (see `src/db/mod.rs`).
#[tokio::test]
async fn point_reads_trace_at_debug_and_writes_at_info() {
    for (level, reads_seen) in [(tracing::Level::INFO, false), (tracing::Level::DEBUG, true)] {
        let (logs, _guard) = capture(level, true);
        let t = open_store().await;
        let u = t.user("traced").await;
        t.store.users().get(u.id).unwrap();
        t.store.users().get_by_username("traced").unwrap();
        t.store.users().get_by_email("traced@example.in").unwrap();
        let text = logs.text();
        assert!(text.contains("create"), "{level}: writes traced:\n{text}");
        let read_span = format!("get{{user={}}}", u.id);
        assert_eq!(text.contains(&read_span), reads_seen, "{level}:\n{text}");
        assert_eq!(
            text.contains("get_by_username{"),
            reads_seen,
            "{level}:\n{text}"
        );
        assert_eq!(
            text.contains("get_by_email{"),
            reads_seen,
            "{level}:\n{text}"
        );
    }
}
