//! Consent and erasure from the outside: the consent gate on puts, a
//! withdrawal erasing the user's audio (at once, or after a notice period
//! that giving the consent back cancels), the events, and `bvstore user
//! erase`.

use std::time::Duration;

use bharatvoice_store::{
    Actor, AudioFile, Config, ConsentKind, ErasureScope, ErasureStage, Error, ManualClock, NewUser,
    PrivacyConfig, PrivacyEvent, PutOptions, Store, Timestamp, User,
};
use tokio::io::AsyncWriteExt;

use crate::common::{blob_file, bvstore, config};

async fn user(store: &Store, name: &str, consent: bool) -> User {
    let mut new = NewUser::new(name, format!("{name}@example.in"));
    if consent {
        new = new.consent(ConsentKind::AudioStorage);
    }
    store.users().create(new).await.unwrap()
}

async fn put(store: &Store, u: &User, bytes: &[u8]) -> Result<AudioFile, Error> {
    store
        .files()
        .put_bytes(
            Actor::User(u.id),
            u.id,
            bytes,
            PutOptions::content_type("audio/wav"),
        )
        .await
}

/// The next event, waiting at most 10 s.
async fn next(rx: &mut tokio::sync::broadcast::Receiver<PrivacyEvent>) -> PrivacyEvent {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("an event within 10 s")
        .expect("an event")
}

#[tokio::test]
async fn a_put_without_audio_consent_is_refused_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(config(dir.path())).await.unwrap();
    let u = user(&store, "nandini", false).await;
    let e = put(&store, &u, b"RIFF some speech").await.unwrap_err();
    assert!(
        matches!(e, Error::ConsentRequired { user, consent: ConsentKind::AudioStorage } if user == u.id),
        "{e:?}"
    );
    assert!(e.is_request_error());
    assert!(e.to_string().contains("audio-storage"), "{e}");
    // Other consents do not open the gate.
    store
        .profiles()
        .set_consent(u.id, ConsentKind::Analytics, true)
        .await
        .unwrap();
    assert!(matches!(
        put(&store, &u, b"RIFF").await,
        Err(Error::ConsentRequired { .. })
    ));
    assert_eq!(
        crate::blobs::walk(&dir.path().join("blobs")),
        Vec::<std::path::PathBuf>::new()
    );
    assert_eq!(
        crate::blobs::walk(&dir.path().join("tmp")),
        Vec::<std::path::PathBuf>::new()
    );
    assert_eq!(store.quotas().usage(u.id).await.unwrap().stored_bytes, 0);
    store
        .profiles()
        .set_consent(u.id, ConsentKind::AudioStorage, true)
        .await
        .unwrap();
    put(&store, &u, b"RIFF now allowed").await.unwrap();
}

#[tokio::test]
async fn a_withdrawal_while_a_put_streams_refuses_its_commit() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(config(dir.path())).await.unwrap();
    let u = user(&store, "mohan", true).await;
    let (mut tx, rx) = tokio::io::duplex(64 << 10);
    let putting = {
        let store = store.clone();
        let id = u.id;
        tokio::spawn(async move {
            store
                .files()
                .put(
                    Actor::User(id),
                    id,
                    rx,
                    PutOptions::content_type("audio/wav"),
                )
                .await
        })
    };
    tx.write_all(&vec![7u8; 256 << 10]).await.unwrap();
    store
        .profiles()
        .set_consent(u.id, ConsentKind::AudioStorage, false)
        .await
        .unwrap();
    tx.write_all(&vec![8u8; 256 << 10]).await.unwrap();
    drop(tx);
    let e = putting.await.unwrap().unwrap_err();
    assert!(matches!(e, Error::ConsentRequired { .. }), "{e:?}");
    store.flush().await.unwrap();
    assert_eq!(
        crate::blobs::walk(&dir.path().join("blobs")),
        Vec::<std::path::PathBuf>::new()
    );
    assert!(
        store
            .files()
            .list(
                Actor::User(u.id),
                u.id,
                Default::default(),
                bharatvoice_store::ListOptions::first(10)
            )
            .await
            .unwrap()
            .items
            .is_empty()
    );
}

#[tokio::test]
async fn the_gate_can_be_switched_off() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path()).privacy(PrivacyConfig::default().require_consent(false));
    let store = Store::open(cfg).await.unwrap();
    let u = user(&store, "open", false).await;
    put(&store, &u, b"RIFF").await.unwrap();
    let t = Config::from_toml_str("[privacy]\nrequire_consent = false\nconsent_notice_secs = 60")
        .unwrap();
    assert!(!t.privacy.require_consent);
    assert_eq!(t.privacy.consent_notice, Duration::from_secs(60));
    assert!(Config::from_toml_str("[privacy]\nconsent_notice_secs = 999999999999").is_err());
}

#[tokio::test]
async fn withdrawing_audio_consent_erases_the_users_audio_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(config(dir.path())).await.unwrap();
    let u = user(&store, "latha", true).await;
    let other = user(&store, "other", true).await;
    let mut files = Vec::new();
    for i in 0..4u8 {
        files.push(put(&store, &u, &vec![i; 5000]).await.unwrap());
    }
    let kept = put(&store, &other, b"kept").await.unwrap();
    let session = store.sessions().create(u.id, None).await.unwrap();
    let mut events = store.privacy().subscribe();
    store
        .profiles()
        .set_consent(u.id, ConsentKind::AudioStorage, false)
        .await
        .unwrap();
    assert_eq!(
        next(&mut events).await,
        PrivacyEvent::ConsentChanged {
            user: u.id,
            consent: ConsentKind::AudioStorage,
            granted: false
        }
    );
    assert!(matches!(
        next(&mut events).await,
        PrivacyEvent::ErasureScheduled { user, scope: ErasureScope::Audio, .. } if user == u.id
    ));
    assert_eq!(
        next(&mut events).await,
        PrivacyEvent::Erased {
            user: u.id,
            scope: ErasureScope::Audio,
            files: 4,
            sessions: 0
        }
    );
    for f in &files {
        assert!(matches!(
            store.files().stat(Actor::User(u.id), f.id).await,
            Err(Error::NotFound { .. })
        ));
        assert!(!blob_file(dir.path(), f).exists());
    }
    // The account, profile and sessions stay; the erasure row is gone.
    assert!(store.users().get(u.id).is_ok());
    assert!(
        !store
            .profiles()
            .get(u.id)
            .unwrap()
            .has_consent(ConsentKind::AudioStorage)
    );
    assert!(store.sessions().get(session.id).is_ok());
    assert_eq!(store.privacy().erasure(u.id).unwrap(), None);
    assert_eq!(store.quotas().usage(u.id).await.unwrap().stored_bytes, 0);
    assert_eq!(
        store
            .files()
            .read(Actor::User(other.id), kept.id)
            .await
            .unwrap(),
        b"kept"
    );
    // Consent given again: audio can be stored again, under new keys.
    store
        .profiles()
        .set_consent(u.id, ConsentKind::AudioStorage, true)
        .await
        .unwrap();
    let again = put(&store, &u, &[0u8; 5000]).await.unwrap();
    assert_eq!(
        store
            .files()
            .read(Actor::User(u.id), again.id)
            .await
            .unwrap(),
        vec![0u8; 5000]
    );
}

#[tokio::test]
async fn a_notice_period_can_be_cancelled_by_giving_consent_back() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(Timestamp::now());
    let week = Duration::from_secs(7 * 86_400);
    let cfg = config(dir.path())
        .clock(clock.clone())
        .privacy(PrivacyConfig::default().consent_notice(week));
    let store = Store::open(cfg).await.unwrap();
    let u = user(&store, "suresh", true).await;
    let f = put(&store, &u, b"RIFF keep me").await.unwrap();
    let mut events = store.privacy().subscribe();
    let set = |granted: bool| {
        let store = store.clone();
        async move {
            store
                .profiles()
                .set_consent(u.id, ConsentKind::AudioStorage, granted)
                .await
        }
    };

    set(false).await.unwrap();
    next(&mut events).await;
    let due = match next(&mut events).await {
        PrivacyEvent::ErasureScheduled { due, .. } => due,
        e => panic!("{e:?}"),
    };
    assert_eq!(due, clock.now().plus(week));
    let e = store.privacy().erasure(u.id).unwrap().unwrap();
    assert_eq!(
        (e.scope, e.stage),
        (ErasureScope::Audio, ErasureStage::Scheduled)
    );
    // During the notice the audio is still there (reads work, puts do not).
    clock.advance(Duration::from_secs(86_400));
    assert!(store.privacy().run_due().await.unwrap().is_empty());
    assert_eq!(
        store.files().read(Actor::User(u.id), f.id).await.unwrap(),
        b"RIFF keep me"
    );
    assert!(matches!(
        put(&store, &u, b"x").await,
        Err(Error::ConsentRequired { .. })
    ));
    // Given back: cancelled.
    set(true).await.unwrap();
    next(&mut events).await;
    assert_eq!(
        next(&mut events).await,
        PrivacyEvent::ErasureCancelled { user: u.id }
    );
    assert_eq!(store.privacy().erasure(u.id).unwrap(), None);
    clock.advance(week * 2);
    assert!(store.privacy().run_due().await.unwrap().is_empty());
    assert!(store.files().read(Actor::User(u.id), f.id).await.is_ok());
    // Withdrawn again and left past the notice: erased.
    set(false).await.unwrap();
    clock.advance(week + Duration::from_secs(1));
    let done = store.privacy().run_due().await.unwrap();
    assert_eq!(done.len(), 1);
    assert_eq!((done[0].files, done[0].done), (1, true));
    assert!(matches!(
        store.files().read(Actor::User(u.id), f.id).await,
        Err(Error::NotFound { .. })
    ));
}

#[test]
fn the_cli_erases_a_user_only_with_yes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    assert!(bvstore(d, &["init"]).status.success());
    let out = bvstore(
        d,
        &[
            "user",
            "add",
            "--username",
            "cli_gone",
            "--email",
            "g@example.in",
            "--consent",
            "audio-storage",
        ],
    );
    assert!(out.status.success(), "{out:?}");
    let clip = d.join("clip.wav");
    std::fs::write(&clip, b"RIFF cli clip").unwrap();
    let out = bvstore(
        d,
        &["file", "put", "--user", "cli_gone", clip.to_str().unwrap()],
    );
    assert!(out.status.success(), "{out:?}");
    // No consent, no put: exit code 16.
    let out = bvstore(
        d,
        &[
            "user",
            "add",
            "--username",
            "cli_no",
            "--email",
            "n@example.in",
        ],
    );
    assert!(out.status.success(), "{out:?}");
    let out = bvstore(
        d,
        &["file", "put", "--user", "cli_no", clip.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(16), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("consent"),
        "{out:?}"
    );

    let out = bvstore(d, &["user", "erase", "cli_gone"]);
    assert_eq!(out.status.code(), Some(5), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--yes"));
    let out = bvstore(d, &["--json", "user", "erase", "cli_gone", "--yes"]);
    assert!(out.status.success(), "{out:?}");
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["files"], 1);
    assert_eq!(r["done"], true);
    let id = r["user"].as_str().unwrap().to_string();
    let out = bvstore(d, &["user", "show", "cli_gone"]);
    assert!(!out.status.success(), "{out:?}");
    // Again, by id: already done.
    let out = bvstore(d, &["user", "erase", &id, "--yes"]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("erased before"),
        "{out:?}"
    );
}

/// Every directory and file under `dir` (itself included) with group or
/// other permission bits: `(path, mode)`.
fn not_private(dir: &std::path::Path) -> Vec<(std::path::PathBuf, u32)> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = Vec::new();
    let mode = std::fs::symlink_metadata(dir).unwrap().permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        out.push((dir.to_path_buf(), mode));
    }
    if dir.is_dir() {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            out.extend(not_private(&e.path()));
        }
    }
    out
}

#[tokio::test]
async fn the_data_directory_and_everything_in_it_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let base = tempfile::tempdir().unwrap();
    std::fs::set_permissions(base.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let dir = base.path().join("made-by-the-store");
    let store = Store::open(config(&dir)).await.unwrap();
    let u = user(&store, "ira", true).await;
    let f = put(&store, &u, &vec![1u8; 3 << 20]).await.unwrap();
    put(&store, &u, b"small").await.unwrap();
    store.cache().set("greeting", &"namaste").await.unwrap();
    store.files().delete(Actor::User(u.id), f.id).await.unwrap();
    store.close().await;
    drop(store);
    assert_eq!(
        std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
        0o700
    );
    assert!(dir.join("store.redb").exists() && dir.join("cache.redb").exists());
    assert_eq!(not_private(&dir), vec![]);
    // A store an older version left with 0644 files and 0755 directories
    // is tightened at open.
    for (p, m) in [
        ("store.redb", 0o644),
        ("cache.redb", 0o644),
        ("blobs", 0o755),
        ("tmp", 0o755),
    ] {
        std::fs::set_permissions(dir.join(p), std::fs::Permissions::from_mode(m)).unwrap();
    }
    let store = Store::open(config(&dir)).await.unwrap();
    store.close().await;
    drop(store);
    let left: Vec<_> = not_private(&dir)
        .into_iter()
        .filter(|(p, _)| p.parent() == Some(dir.as_path()))
        .collect();
    assert_eq!(left, vec![]);
}

/// Giving a consent already given, or withdrawing one already withdrawn,
/// changes nothing: no event, no consent audit entry, and no second
/// erasure scheduled.
#[tokio::test]
async fn a_consent_set_to_what_it_was_is_no_change() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(config(dir.path())).await.unwrap();
    let u = user(&store, "sunil", true).await;
    let consent_entries = || {
        store
            .audit_events(10_000)
            .unwrap()
            .into_iter()
            .filter(|e| e.action.starts_with("consent.") && e.target == format!("user:{}", u.id))
            .count()
    };
    let mut events = store.privacy().subscribe();
    let before = consent_entries();
    store
        .profiles()
        .set_consent(u.id, ConsentKind::AudioStorage, true)
        .await
        .unwrap();
    assert!(events.try_recv().is_err(), "no event for no change");
    assert_eq!(consent_entries(), before);
    // A real withdrawal: one event, one entry, one erasure ...
    store
        .profiles()
        .set_consent(u.id, ConsentKind::AudioStorage, false)
        .await
        .unwrap();
    assert!(matches!(
        next(&mut events).await,
        PrivacyEvent::ConsentChanged { granted: false, .. }
    ));
    assert_eq!(consent_entries(), before + 1);
    store.privacy().run_due().await.unwrap();
    while events.try_recv().is_ok() {}
    let erased = store.privacy().erasure(u.id).unwrap();
    // ... and withdrawing again neither tells anyone nor erases again.
    store
        .profiles()
        .set_consent(u.id, ConsentKind::AudioStorage, false)
        .await
        .unwrap();
    assert!(events.try_recv().is_err(), "no event for no change");
    assert_eq!(consent_entries(), before + 1);
    assert_eq!(store.privacy().erasure(u.id).unwrap(), erased);
    assert!(store.privacy().run_due().await.unwrap().is_empty());
}
