//! Master keys, key files, rotation.

use std::os::unix::fs::PermissionsExt;

use bharatvoice_store::{Actor, Error, MasterKey, MasterKeySource, PutOptions, Store};

use crate::blobs::speech_pcm;
use crate::common::{config, open_store};

#[tokio::test]
async fn the_embedded_key_is_private_and_a_wrong_key_fails_at_open() {
    let t = open_store().await;
    let u = t.user("hari").await;
    let f = t.put_as(&u, b"secret audio", PutOptions::default()).await;
    let key_file = t.dir.path().join("master.key");
    let mode = std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let status = t.store.keys().status().await.unwrap();
    assert_eq!(
        status.master_key,
        MasterKeySource::Embedded(key_file.clone())
    );
    assert_eq!((status.owners, status.blobs), (1, 1));
    let path = t.path();
    drop(t.store);
    let wrong = Store::open(config(&path).master_key(MasterKey::generate().unwrap()))
        .await
        .unwrap_err();
    assert!(matches!(wrong, Error::WrongKey { .. }), "{wrong:?}");
    // The right key, given explicitly, opens it.
    let text = std::fs::read_to_string(&key_file).unwrap();
    let store = Store::open(config(&path).master_key(MasterKey::parse(&text).unwrap()))
        .await
        .unwrap();
    assert_eq!(
        store.files().read(Actor::User(u.id), f.id).await.unwrap(),
        b"secret audio"
    );
}

#[tokio::test]
async fn a_store_with_keys_never_silently_gets_a_new_master_key() {
    let t = open_store().await;
    let path = t.path();
    drop(t.store);
    std::fs::remove_file(path.join("master.key")).unwrap();
    let e = Store::open(config(&path)).await.unwrap_err();
    assert!(matches!(e, Error::MissingKey { .. }), "{e:?}");
    assert!(
        !path.join("master.key").exists(),
        "no new key was generated"
    );
    let missing = Store::open(config(&path).master_key_file(path.join("nope.key")))
        .await
        .unwrap_err();
    assert!(matches!(missing, Error::MissingKey { .. }), "{missing:?}");
}

#[tokio::test]
async fn key_files_readable_by_others_are_refused_and_formats_parse() {
    let dir = tempfile::tempdir().unwrap();
    let key = MasterKey::generate().unwrap();
    let file = dir.path().join("k.hex");
    let hex: String = format!("{:?}", key).replace("[redacted]", "");
    assert!(hex.is_empty(), "Debug prints nothing of the key");
    let bytes = [7u8; 32];
    std::fs::write(
        &file,
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>(),
    )
    .unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let e = MasterKey::from_file(&file).unwrap_err();
    assert!(
        matches!(e, Error::InsecureKeyFile { mode: 0o644, .. }),
        "{e:?}"
    );
    let data = dir.path().join("data");
    let e = Store::open(config(&data).master_key_file(&file))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::InsecureKeyFile { .. }), "{e:?}");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(
        MasterKey::from_file(&file).unwrap(),
        MasterKey::from_bytes(bytes)
    );
    assert_eq!(
        MasterKey::parse("BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=").unwrap(),
        MasterKey::from_bytes(bytes)
    );
    let e = MasterKey::parse("not a key at all").unwrap_err();
    assert!(
        !e.to_string().contains("not a key"),
        "the text is not echoed: {e}"
    );
    let store = Store::open(config(&data).master_key_file(&file))
        .await
        .unwrap();
    assert_eq!(
        store.keys().status().await.unwrap().master_key,
        MasterKeySource::File(file.clone())
    );
}

#[tokio::test]
async fn rotating_the_master_key_rewraps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let old = MasterKey::generate().unwrap();
    let new = MasterKey::generate().unwrap();
    let store = Store::open(config(dir.path()).master_key(old.clone()))
        .await
        .unwrap();
    let mut files = Vec::new();
    for name in ["ira", "jaya"] {
        let u = store
            .users()
            .create(
                bharatvoice_store::NewUser::new(name, format!("{name}@example.in"))
                    .consent(bharatvoice_store::ConsentKind::AudioStorage),
            )
            .await
            .unwrap();
        let data = speech_pcm(30_000, 3);
        files.push((
            u.id,
            store
                .files()
                .put_bytes(Actor::User(u.id), u.id, &data, PutOptions::default())
                .await
                .unwrap()
                .id,
            data,
        ));
    }
    let report = store.keys().rotate_master(new.clone()).await.unwrap();
    assert_eq!((report.owners, report.key_file), (2, None));
    for (u, f, data) in &files {
        assert_eq!(
            &store.files().read(Actor::User(*u), *f).await.unwrap(),
            data,
            "readable right after"
        );
    }
    drop(store);
    let e = Store::open(config(dir.path()).master_key(old))
        .await
        .unwrap_err();
    assert!(
        matches!(e, Error::WrongKey { .. }),
        "old key no longer opens: {e:?}"
    );
    let store = Store::open(config(dir.path()).master_key(new))
        .await
        .unwrap();
    for (u, f, data) in &files {
        assert_eq!(
            &store.files().read(Actor::User(*u), *f).await.unwrap(),
            data
        );
    }
}

#[tokio::test]
async fn rotating_an_owner_key_resumes_after_an_interruption() {
    let t = crate::blobs::small_chunk_store().await;
    let u = t.user("kiran").await;
    let me = Actor::User(u.id);
    let mut files = Vec::new();
    for i in 0..5u32 {
        let data = speech_pcm(5000, i);
        files.push((
            t.store
                .files()
                .put_bytes(me, u.id, &data, PutOptions::default())
                .await
                .unwrap()
                .id,
            data,
        ));
    }
    // Start a rotation and move one blob, then stop (as a crash would:
    // each step is its own transaction); the reopened store resumes it.
    let version = t.store.keys().begin_owner_rotation(u.id).await.unwrap();
    assert_eq!(version, 2);
    let p = t.store.keys().rotation_step(u.id, 1).await.unwrap();
    assert_eq!((p.moved, p.finished), (1, false));
    let versions: Vec<u32> = files
        .iter()
        .map(|(id, _)| t.store.file_records().get(*id).unwrap().key_version)
        .collect();
    assert_eq!(
        versions.iter().filter(|v| **v == 2).count(),
        1,
        "the first step committed one blob: {versions:?}"
    );
    assert_eq!(
        versions.iter().filter(|v| **v == 1).count(),
        4,
        "the rest still on version 1"
    );
    let path = t.path();
    drop(t.store);
    let mut store = None;
    for _ in 0..200 {
        match Store::open(config(&path).blob_chunk_bytes(4096)).await {
            Ok(s) => {
                store = Some(s);
                break;
            }
            Err(Error::Locked { .. }) => {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await
            }
            Err(e) => panic!("{e:?}"),
        }
    }
    let store = store.expect("reopened");
    for _ in 0..500 {
        if store.keys().status().await.unwrap().rotating.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(
        store.keys().status().await.unwrap().rotating.is_empty(),
        "rotation finished after reopen"
    );
    // The store's key-rotation job did it at open, and its report says so.
    let mut report = None;
    for _ in 0..500 {
        report = store.jobs().status("key-rotation").unwrap().last_report;
        if report.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let report = report.expect("the key-rotation job ran at open");
    assert_eq!(report.count("rotations_finished"), 1, "{report:?}");
    assert_eq!(report.count("blobs_rewrapped"), 4, "{report:?}");
    for (id, data) in &files {
        let f = store.files().stat(me, *id).await.unwrap();
        assert_eq!(f.key_version, 2, "moved to the new version");
        assert_eq!(&store.files().read(me, *id).await.unwrap(), data);
    }
    let new = store
        .files()
        .put_bytes(me, u.id, b"after rotation", PutOptions::default())
        .await
        .unwrap();
    assert_eq!(new.key_version, 2);
    assert_eq!(
        store.keys().owner_key_versions(u.id).unwrap(),
        vec![2],
        "old version destroyed"
    );
}

#[tokio::test]
async fn a_rotation_can_be_driven_step_by_step() {
    let t = crate::blobs::small_chunk_store().await;
    let u = t.user("lata").await;
    let me = Actor::User(u.id);
    for i in 0..3u32 {
        t.store
            .files()
            .put_bytes(me, u.id, &speech_pcm(3000, i + 10), PutOptions::default())
            .await
            .unwrap();
    }
    t.store.keys().begin_owner_rotation(u.id).await.unwrap();
    assert_eq!(t.store.keys().owner_key_versions(u.id).unwrap(), vec![1, 2]);
    let p = t.store.keys().rotation_step(u.id, 1).await.unwrap();
    assert_eq!((p.moved, p.finished), (1, false));
    let p = t.store.keys().rotation_step(u.id, 5).await.unwrap();
    assert_eq!((p.moved, p.finished), (2, true));
    assert_eq!(t.store.keys().owner_key_versions(u.id).unwrap(), vec![2]);
    let p = t.store.keys().rotation_step(u.id, 5).await.unwrap();
    assert_eq!((p.moved, p.finished, p.current_version), (0, true, 2));
}
