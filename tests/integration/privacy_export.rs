//! The right of access (DPDP s.11) from the outside: a user's export to a
//! directory and to a `.tar.zst` archive, read back and checked against
//! what was put and against its manifest; refusals; the summary with
//! exact counts; and `bvstore user export` / `user summary`.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::time::Duration;

use bharatvoice_store::{
    Actor, AudioFile, ConsentKind, ErasureScope, ErasureStage, Error, NewUser, PrivacyConfig,
    ProfileUpdate, PutOptions, Role, Store, Turn, User,
};
use sha2::{Digest, Sha256};

use crate::common::{bvstore, config, stderr, stdout};

async fn user(store: &Store, name: &str) -> User {
    store
        .users()
        .create_with_password(
            NewUser::new(name, format!("{name}@example.in")).consent(ConsentKind::AudioStorage),
            "correct horse battery staple",
        )
        .await
        .unwrap()
}

async fn put(store: &Store, u: &User, bytes: &[u8], ct: &str) -> AudioFile {
    store
        .files()
        .put_bytes(Actor::User(u.id), u.id, bytes, PutOptions::content_type(ct))
        .await
        .unwrap()
}

/// What the fixture put: the user and every file with its bytes.
struct Put {
    user: User,
    files: Vec<(AudioFile, Vec<u8>)>,
    sessions: Vec<bharatvoice_store::SessionId>,
}

/// A user with a profile, 2 sessions with turns and 4 files (one over
/// 1 MiB), one more file deleted.
async fn fixture(store: &Store, name: &str) -> Put {
    let u = user(store, name).await;
    store
        .profiles()
        .upsert(
            u.id,
            ProfileUpdate {
                languages: Some(vec!["ta-IN".parse().unwrap(), "en-IN".parse().unwrap()]),
                region: Some(Some("Tamil Nadu".into())),
                accent: Some(Some("Madurai".into())),
                audio_retention_days: Some(Some(30)),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let mut sessions = Vec::new();
    for (lang, turns) in [("ta-IN", 3), ("en-IN", 2)] {
        let s = store
            .sessions()
            .create(u.id, Some(lang.parse().unwrap()))
            .await
            .unwrap();
        for i in 0..turns {
            let text = format!("turn {i} of {lang}");
            store
                .sessions()
                .append_turn(s.id, Turn::new(Role::User, text))
                .await
                .unwrap();
        }
        sessions.push(s.id);
    }
    let mut files = Vec::new();
    for (len, seed, ct) in [
        (1_300_000, 1, "audio/wav"),
        (3_000, 2, "audio/wav"),
        (777, 3, "audio/ogg"),
        (10, 4, "application/x-unknown"),
    ] {
        let bytes = crate::common::noise(len, seed);
        files.push((put(store, &u, &bytes, ct).await, bytes));
    }
    let gone = put(store, &u, &crate::common::noise(50, 9), "audio/wav").await;
    store
        .files()
        .delete(Actor::User(u.id), gone.id)
        .await
        .unwrap();
    Put {
        user: u,
        files,
        sessions,
    }
}

/// Checks an export read back as name → bytes against what was put and
/// against its manifest.
fn check_export(entries: &BTreeMap<String, Vec<u8>>, put: &Put) {
    let manifest: serde_json::Value =
        serde_json::from_slice(&entries["manifest.json"]).expect("manifest.json is JSON");
    assert_eq!(manifest["user"], put.user.id.to_string());
    let listed = manifest["entries"].as_array().expect("entries");
    // Every entry but the manifest is listed, once, with its size and hash.
    assert_eq!(listed.len(), entries.len() - 1);
    for e in listed {
        let name = e["name"].as_str().unwrap();
        let bytes = entries
            .get(name)
            .unwrap_or_else(|| panic!("{name} missing"));
        assert_eq!(e["size"].as_u64(), Some(bytes.len() as u64), "{name}");
        assert_eq!(
            e["sha256"].as_str(),
            Some(hex::encode(Sha256::digest(bytes)).as_str()),
            "{name}"
        );
    }
    // Every file's bytes, decrypted, under a name made of its id.
    let exts = ["wav", "wav", "ogg", "bin"];
    for ((f, bytes), ext) in put.files.iter().zip(exts) {
        let got = &entries[&format!("files/{}.{ext}", f.id)];
        assert!(got == bytes, "file {} differs", f.id);
        let meta: serde_json::Value =
            serde_json::from_slice(&entries[&format!("files/{}.json", f.id)]).unwrap();
        assert_eq!(meta["bytes"].as_u64(), Some(bytes.len() as u64));
        assert_eq!(meta["content_type"], f.content_type.as_str());
    }
    assert_eq!(
        entries.keys().filter(|k| k.starts_with("files/")).count(),
        2 * put.files.len(),
        "the deleted file is not exported"
    );
    for id in &put.sessions {
        let s: serde_json::Value =
            serde_json::from_slice(&entries[&format!("sessions/{id}.json")]).unwrap();
        assert!(!s["context"].as_array().unwrap().is_empty());
    }
    let user_json = String::from_utf8(entries["user.json"].clone()).unwrap();
    assert!(user_json.contains(&put.user.username));
    for secret in ["argon2", "$argon2", "password"] {
        assert!(!user_json.contains(secret), "user.json holds {secret:?}");
    }
    let profile = String::from_utf8(entries["profile.json"].clone()).unwrap();
    assert!(profile.contains("Tamil Nadu"), "{profile}");
}

fn read_dir_export(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for sub in ["", "files", "sessions"] {
        for item in std::fs::read_dir(root.join(sub)).unwrap() {
            let item = item.unwrap();
            if item.file_type().unwrap().is_file() {
                let name = if sub.is_empty() {
                    item.file_name().to_string_lossy().into_owned()
                } else {
                    format!("{sub}/{}", item.file_name().to_string_lossy())
                };
                out.insert(name, std::fs::read(item.path()).unwrap());
            }
        }
    }
    out
}

fn read_archive(path: &Path) -> BTreeMap<String, Vec<u8>> {
    let file = std::fs::File::open(path).unwrap();
    let mut archive = tar::Archive::new(zstd::stream::read::Decoder::new(file).unwrap());
    let mut out = BTreeMap::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().to_string_lossy().into_owned();
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).unwrap();
        assert!(out.insert(name, bytes).is_none(), "an entry twice");
    }
    out
}

fn is_refusal(e: &Error) -> bool {
    matches!(
        e,
        Error::InvalidInput {
            field: "export destination",
            ..
        }
    )
}

#[tokio::test]
async fn an_export_to_a_directory_and_an_archive_holds_everything_and_its_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(config(&dir.path().join("data"))).await.unwrap();
    let put = fixture(&store, "selvi").await;
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();

    let to_dir = out.join("selvi");
    let r = store
        .privacy()
        .export_user(put.user.id, &to_dir)
        .await
        .unwrap();
    assert_eq!((r.files, r.sessions), (4, 2));
    // user, profile, 2 sessions, 4 files with their metadata.
    assert_eq!(r.entries, 2 + 2 + 8);
    let entries = read_dir_export(&to_dir);
    check_export(&entries, &put);
    let total: u64 = entries
        .iter()
        .filter(|(k, _)| *k != "manifest.json")
        .map(|(_, v)| v.len() as u64)
        .sum();
    assert_eq!(r.bytes, total);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&to_dir), 0o700);
        assert_eq!(mode(&to_dir.join("user.json")), 0o600);
        assert_eq!(mode(&to_dir.join("files")), 0o700);
    }

    let to_tar = out.join("selvi.tar.zst");
    let r = store
        .privacy()
        .export_user(put.user.id, &to_tar)
        .await
        .unwrap();
    assert_eq!((r.files, r.sessions, r.entries), (4, 2, 12));
    assert_eq!(r.path, to_tar);
    check_export(&read_archive(&to_tar), &put);

    // Nothing but the two exports is left beside them (no temporary).
    let mut names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["selvi", "selvi.tar.zst"]);

    // Both exports are audited.
    let events = store.audit_events(10_000).unwrap();
    let exports = events
        .iter()
        .filter(|e| e.action == "user.export" && e.target == format!("user:{}", put.user.id))
        .filter(|e| e.outcome == "ok")
        .count();
    assert_eq!(exports, 2);
}

#[tokio::test]
async fn an_export_never_overwrites_and_needs_a_live_user() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(config(&dir.path().join("data"))).await.unwrap();
    let u = user(&store, "arul").await;
    put(&store, &u, &crate::common::noise(5000, 7), "audio/wav").await;
    let p = store.privacy();

    // An existing archive, a non-empty directory, a plain file: refused,
    // left as they were.
    let tar = dir.path().join("a.tar.zst");
    std::fs::write(&tar, b"mine").unwrap();
    let e = p.export_user(u.id, &tar).await.unwrap_err();
    assert!(is_refusal(&e), "{e:?}");
    assert_eq!(std::fs::read(&tar).unwrap(), b"mine");
    let full = dir.path().join("full");
    std::fs::create_dir(&full).unwrap();
    std::fs::write(full.join("keep.txt"), b"keep").unwrap();
    let e = p.export_user(u.id, &full).await.unwrap_err();
    assert!(is_refusal(&e), "{e:?}");
    assert_eq!(std::fs::read_dir(&full).unwrap().count(), 1);
    let e = p
        .export_user(u.id, full.join("keep.txt"))
        .await
        .unwrap_err();
    assert!(is_refusal(&e), "{e:?}");
    // An empty directory is taken; a second export to it is refused.
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    p.export_user(u.id, &empty).await.unwrap();
    assert!(empty.join("manifest.json").exists());
    assert!(is_refusal(&p.export_user(u.id, &empty).await.unwrap_err()));

    // Unknown and erased users.
    let nobody = bharatvoice_store::UserId::new();
    let e = p
        .export_user(nobody, dir.path().join("x"))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::NotFound { .. }), "{e:?}");
    p.erase_user(u.id).await.unwrap();
    let e = p
        .export_user(u.id, dir.path().join("y.tar.zst"))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::NotFound { .. }), "{e:?}");
    assert!(matches!(p.summary(u.id).await, Err(Error::NotFound { .. })));
    assert!(!dir.path().join("x").exists() && !dir.path().join("y.tar.zst").exists());
    // No temporary left behind by the refusals.
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("bvstore-export"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[tokio::test]
async fn the_summary_counts_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let notice = Duration::from_secs(86_400);
    let store =
        Store::open(config(dir.path()).privacy(PrivacyConfig::default().consent_notice(notice)))
            .await
            .unwrap();
    let fx = fixture(&store, "kani").await;
    let (b, c) = (user(&store, "bala").await, user(&store, "chitra").await);
    let me = Actor::User(fx.user.id);
    let f = &fx.files;
    store.files().grant(me, f[0].0.id, b.id).await.unwrap();
    store.files().grant(me, f[0].0.id, c.id).await.unwrap();
    store.files().grant(me, f[2].0.id, b.id).await.unwrap();
    let theirs = put(&store, &b, &crate::common::noise(64, 11), "audio/wav").await;
    store
        .files()
        .grant(Actor::User(b.id), theirs.id, fx.user.id)
        .await
        .unwrap();

    let s = store.privacy().summary(fx.user.id).await.unwrap();
    assert_eq!(s.user, fx.user.id);
    assert_eq!(s.username, "kani");
    assert_eq!(s.email, "kani@example.in");
    let p = s.profile.as_ref().expect("a profile");
    assert_eq!(p.languages.len(), 2);
    assert_eq!(p.region.as_deref(), Some("Tamil Nadu"));
    assert_eq!(p.accent.as_deref(), Some("Madurai"));
    assert_eq!(p.audio_retention_days, Some(30));
    assert_eq!(s.consents.len(), 1);
    assert_eq!(s.consents[0].kind, ConsentKind::AudioStorage);
    assert!(s.consents[0].granted);
    assert_eq!(s.sessions.sessions, 2);
    assert_eq!(s.sessions.turns, 5);
    assert_eq!(s.sessions.turns_appended, 5);
    let text_bytes: usize = (0..3)
        .map(|i| format!("turn {i} of ta-IN").len())
        .chain((0..2).map(|i| format!("turn {i} of en-IN").len()))
        .sum();
    assert_eq!(s.sessions.turn_bytes, text_bytes as u64);
    assert_eq!(s.files.files, 4);
    assert_eq!(s.files.bytes, 1_300_000 + 3_000 + 777 + 10);
    let by = &s.files.by_content_type;
    assert_eq!(by.len(), 3);
    assert_eq!(
        (by["audio/wav"].files, by["audio/wav"].bytes),
        (2, 1_303_000)
    );
    assert_eq!((by["audio/ogg"].files, by["audio/ogg"].bytes), (1, 777));
    let unknown = &by["application/x-unknown"];
    assert_eq!((unknown.files, unknown.bytes), (1, 10));
    let mut to = vec![b.id, c.id];
    to.sort();
    assert_eq!(s.grants_given.grants, 3);
    assert_eq!(s.grants_given.users, to);
    assert_eq!(s.grants_received.grants, 1);
    assert_eq!(s.grants_received.users, vec![b.id]);
    assert_eq!(s.pending_erasure, None);

    // A withdrawal with a notice period shows as a pending audio erasure.
    store
        .profiles()
        .set_consent(fx.user.id, ConsentKind::AudioStorage, false)
        .await
        .unwrap();
    let s = store.privacy().summary(fx.user.id).await.unwrap();
    let e = s.pending_erasure.expect("a pending erasure");
    assert_eq!(
        (e.scope, e.stage),
        (ErasureScope::Audio, ErasureStage::Scheduled)
    );
    assert_eq!(e.due, e.requested_at.plus(notice));
    assert!(!s.consents[0].granted);
    assert_eq!(s.files.files, 4, "nothing erased before the notice ends");
}

#[tokio::test]
async fn the_cli_exports_an_archive_and_prints_the_summary_as_json() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let put = {
        let store = Store::open(config(&data)).await.unwrap();
        let put = fixture(&store, "tamil").await;
        store.close().await;
        put
    };
    let archive = dir.path().join("tamil.tar.zst");
    let archive_arg = archive.to_str().unwrap();
    let out = bvstore(
        &data,
        &["--json", "user", "export", "tamil", "--out", archive_arg],
    );
    assert!(out.status.success(), "export: {}", stderr(&out));
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(report["files"], 4);
    assert_eq!(report["sessions"], 2);
    check_export(&read_archive(&archive), &put);
    // Again: refused (exit code 5, invalid input), the archive kept.
    let again = bvstore(&data, &["user", "export", "tamil", "--out", archive_arg]);
    assert_eq!(again.status.code(), Some(5), "{}", stderr(&again));
    assert!(
        stderr(&again).contains("already exists"),
        "{}",
        stderr(&again)
    );
    check_export(&read_archive(&archive), &put);

    let out = bvstore(&data, &["--json", "user", "summary", "tamil"]);
    assert!(out.status.success(), "summary: {}", stderr(&out));
    let s: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(s["user"], put.user.id.to_string());
    assert_eq!(s["sessions"]["sessions"], 2);
    assert_eq!(s["sessions"]["turns"], 5);
    assert_eq!(s["files"]["files"], 4);
    assert_eq!(s["files"]["by_content_type"]["audio/wav"]["files"], 2);
    assert_eq!(
        s["files"]["by_content_type"]["audio/wav"]["bytes"],
        1_303_000
    );
    assert_eq!(s["consents"][0]["kind"], "audio-storage");
    assert_eq!(s["consents"][0]["granted"], true);
    assert_eq!(s["pending_erasure"], serde_json::Value::Null);
    let text = bvstore(&data, &["user", "summary", "tamil"]);
    assert!(text.status.success());
    let text = stdout(&text);
    assert!(text.contains("pending erasure"), "{text}");
    assert!(text.contains("audio/ogg"), "{text}");
    let missing = bvstore(&data, &["user", "summary", "nobody"]);
    assert_eq!(missing.status.code(), Some(3));
}

#[tokio::test]
async fn a_failed_export_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let store = Store::open(config(&data)).await.unwrap();
    let u = user(&store, "damaged").await;
    put(&store, &u, &crate::common::noise(2000, 5), "audio/wav").await;
    let bad = put(&store, &u, &crate::common::noise(300_000, 6), "audio/wav").await;
    // A flipped byte in the sealed chunks: the read fails its check.
    let blob = crate::common::blob_file(&data, &bad);
    let mut bytes = std::fs::read(&blob).unwrap();
    let at = bytes.len() - 100;
    bytes[at] ^= 0x40;
    std::fs::write(&blob, &bytes).unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    for name in ["d", "d.tar.zst"] {
        let e = store
            .privacy()
            .export_user(u.id, out.join(name))
            .await
            .unwrap_err();
        assert!(!is_refusal(&e), "{e:?}");
    }
    let left: Vec<_> = std::fs::read_dir(&out).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
    let failed = store
        .audit_events(10_000)
        .unwrap()
        .into_iter()
        .filter(|e| e.action == "user.export" && e.outcome == "failed")
        .count();
    assert_eq!(failed, 2);
}

#[test]
fn the_cli_export_streams_in_bounded_memory() {
    use std::io::Write;
    let mib = 96;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("data");
    crate::common::init(&d);
    let add = bvstore(
        &d,
        &[
            "user",
            "add",
            "--consent",
            "audio-storage",
            "--username",
            "big",
            "--email",
            "big@example.in",
        ],
    );
    assert!(add.status.success(), "{}", stderr(&add));
    let input = dir.path().join("big.wav");
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&input).unwrap());
        for i in 0..mib {
            f.write_all(&crate::common::noise(1 << 20, i as u64 + 100))
                .unwrap();
        }
        f.flush().unwrap();
    }
    let p = bvstore(
        &d,
        &["file", "put", input.to_str().unwrap(), "--user", "big"],
    );
    assert!(p.status.success(), "{}", stderr(&p));
    std::fs::remove_file(&input).unwrap();
    for name in ["big-export", "big.tar.zst"] {
        let dest = dir.path().join(name);
        let out = crate::common::bvstore_command(
            &d,
            &["user", "export", "big", "--out", dest.to_str().unwrap()],
        )
        .env("BV_REPORT_PEAK_RSS", "1")
        .output()
        .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        let text = stderr(&out);
        let kib: u64 = text
            .lines()
            .find_map(|l| l.strip_prefix("peak_rss_kib="))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no peak RSS in: {text}"));
        eprintln!("{mib} MiB export to {name}: peak RSS {kib} KiB");
        assert!(kib < 64 * 1024, "{name}: peak RSS {kib} KiB");
    }
    let size = |p: &Path| std::fs::metadata(p).unwrap().len();
    let files: Vec<_> = std::fs::read_dir(dir.path().join("big-export/files"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "wav"))
        .collect();
    assert_eq!(files.len(), 1);
    assert_eq!(size(&files[0]), (mib as u64) << 20);
}
