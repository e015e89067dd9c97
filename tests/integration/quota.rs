//! Storage limits: the per-user quota (store default and the user's own),
//! the free-space floor, puts stopped while streaming, and the kept usage
//! checked against a recount after every kind of change.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bharatvoice_store::{
    Actor, AudioFile, Config, Error, LifecycleConfig, PutOptions, QuotaConfig, QuotaLimit, Store,
    User,
};
use tokio::io::{AsyncRead, ReadBuf};

use crate::blobs::{random_bytes, walk};
use crate::common::{TestStore, bvstore, config, stderr, store_dir};

async fn store_with(quota: QuotaConfig) -> TestStore {
    let dir = tempfile::tempdir().unwrap();
    let c: Config = config(dir.path())
        .quota(quota)
        .lifecycle(LifecycleConfig::default().purge_grace(Duration::ZERO));
    let store = Store::open(c).await.unwrap();
    TestStore { dir, store }
}

/// Precompressed audio: stored uncompressed, so stored bytes are the input
/// plus a small overhead.
fn ogg() -> PutOptions {
    PutOptions::content_type("audio/ogg")
}

async fn put(s: &TestStore, u: &User, bytes: &[u8]) -> Result<AudioFile, Error> {
    s.store
        .files()
        .put_bytes(Actor::User(u.id), u.id, bytes, ogg())
        .await
}

/// Blob files and temporaries on disk.
fn files_on_disk(s: &TestStore) -> (usize, usize) {
    (
        walk(&s.path().join("blobs")).len(),
        walk(&s.path().join("tmp")).len(),
    )
}

async fn assert_usage_matches_recount(s: &TestStore, u: &User) {
    let kept = s.store.quotas().usage(u.id).await.unwrap();
    let counted = s.store.quotas().recount(u.id).await.unwrap();
    assert_eq!((kept.stored_bytes, kept.blobs), counted, "user {}", u.id);
}

fn no_floor() -> QuotaConfig {
    QuotaConfig::default().min_free_bytes(0)
}

#[tokio::test]
async fn a_put_over_the_default_quota_is_refused_and_leaves_nothing() {
    let s = store_with(no_floor().user_bytes(Some(300_000))).await;
    let u = s.user("asha").await;
    let a = put(&s, &u, &random_bytes(100_000, 1)).await.unwrap();
    let b = put(&s, &u, &random_bytes(100_000, 2)).await.unwrap();
    let before = s.store.quotas().usage(u.id).await.unwrap();
    assert_eq!(before.stored_bytes, a.stored_bytes + b.stored_bytes);
    assert_eq!((before.blobs, before.limit), (2, Some(300_000)));
    let disk = files_on_disk(&s);

    let err = put(&s, &u, &random_bytes(200_000, 3)).await.unwrap_err();
    match err {
        Error::QuotaExceeded {
            which: QuotaLimit::User(who),
            limit,
            usage,
            needed,
        } => {
            assert_eq!((who, limit, usage), (u.id, 300_000, before.stored_bytes));
            assert!(needed > 300_000 - usage, "needed {needed}");
        }
        other => panic!("expected QuotaExceeded, got {other:?}"),
    }
    assert!(err_text(&s, &u).await.contains("quota"));
    assert_eq!(s.store.quotas().usage(u.id).await.unwrap(), before);
    assert_eq!(files_on_disk(&s), disk, "nothing left behind");
    assert_usage_matches_recount(&s, &u).await;
    // What still fits is stored.
    put(&s, &u, &random_bytes(50_000, 4)).await.unwrap();
    assert_usage_matches_recount(&s, &u).await;
}

async fn err_text(s: &TestStore, u: &User) -> String {
    put(s, u, &random_bytes(400_000, 9))
        .await
        .unwrap_err()
        .to_string()
}

/// A reader of `total` pseudo-random bytes that counts what was read.
struct Endless {
    total: u64,
    read: Arc<AtomicU64>,
    state: u64,
}

impl AsyncRead for Endless {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let done = self.read.load(Ordering::Relaxed);
        let n = (buf.remaining() as u64).min(self.total - done) as usize;
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            self.state = self.state.wrapping_mul(6364136223846793005).wrapping_add(1);
            out.push((self.state >> 33) as u8);
        }
        buf.put_slice(&out);
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        Poll::Ready(Ok(()))
    }
}

#[tokio::test]
async fn a_stream_of_unknown_size_stops_once_it_passes_the_quota() {
    let s = store_with(no_floor().user_bytes(Some(1 << 20))).await;
    let u = s.user("ravi").await;
    let read = Arc::new(AtomicU64::new(0));
    let reader = Endless {
        total: 256 << 20,
        read: Arc::clone(&read),
        state: 7,
    };
    let err = s
        .store
        .files()
        .put(Actor::User(u.id), u.id, reader, ogg())
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::QuotaExceeded { limit, .. } if limit == 1 << 20),
        "{err:?}"
    );
    // Stopped within a few chunks (256 KiB each) of the limit, not at the
    // end of the 256 MiB stream.
    let got = read.load(Ordering::Relaxed);
    assert!(got < 8 << 20, "read {got} bytes before stopping");
    assert_eq!(files_on_disk(&s), (0, 0), "nothing left behind");
    assert_eq!(s.store.quotas().usage(u.id).await.unwrap().stored_bytes, 0);
}

#[tokio::test]
async fn a_users_own_quota_overrides_the_default_and_can_be_cleared() {
    let s = store_with(no_floor().user_bytes(Some(100_000))).await;
    let (big, small) = (s.user("big").await, s.user("small").await);
    let usage = s
        .store
        .quotas()
        .set_limit(big.id, Some(10 << 20))
        .await
        .unwrap();
    assert_eq!(
        (usage.limit, usage.own_limit),
        (Some(10 << 20), Some(10 << 20))
    );
    let mb = random_bytes(1 << 20, 5);
    put(&s, &big, &mb).await.unwrap();
    assert!(matches!(
        put(&s, &small, &mb).await,
        Err(Error::QuotaExceeded { limit: 100_000, .. })
    ));
    // Cleared: the default applies again, and what is stored stays.
    let usage = s.store.quotas().set_limit(big.id, None).await.unwrap();
    assert_eq!((usage.limit, usage.own_limit), (Some(100_000), None));
    assert!(usage.stored_bytes > 1 << 20);
    assert!(matches!(
        put(&s, &big, &random_bytes(10, 6)).await,
        Err(Error::QuotaExceeded { .. })
    ));
    // A quota of one's own can also lift a user above a default of none.
    let free = store_with(no_floor()).await;
    let u = free.user("uuu").await;
    assert_eq!(free.store.quotas().usage(u.id).await.unwrap().limit, None);
    free.store.quotas().set_limit(u.id, Some(10)).await.unwrap();
    assert!(put(&free, &u, b"more than ten bytes").await.is_err());
    // Unknown users are not found.
    let nobody = bharatvoice_store::UserId::new();
    assert!(matches!(
        s.store.quotas().usage(nobody).await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        s.store.quotas().set_limit(nobody, Some(1)).await,
        Err(Error::NotFound { .. })
    ));
}

#[tokio::test]
async fn racing_puts_cannot_pass_the_quota_together() {
    let s = Arc::new(store_with(no_floor().user_bytes(Some(150_000))).await);
    let u = s.user("racer").await;
    let mut tasks = Vec::new();
    for i in 0..8 {
        let (s, u) = (Arc::clone(&s), u.clone());
        tasks.push(tokio::spawn(async move {
            put(&s, &u, &random_bytes(100_000, 100 + i)).await
        }));
    }
    let mut stored = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => stored += 1,
            Err(Error::QuotaExceeded { .. }) => {}
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(stored, 1, "exactly one 100 kB put fits in 150 kB");
    let usage = s.store.quotas().usage(u.id).await.unwrap();
    assert!(usage.stored_bytes <= 150_000);
    assert_usage_matches_recount(&s, &u).await;
    assert_eq!(
        files_on_disk(&s),
        (1, 0),
        "refused commits removed their blobs"
    );
}

#[tokio::test]
async fn deduplicated_puts_are_not_charged_and_the_purge_refunds() {
    let s = store_with(no_floor().user_bytes(Some(250_000))).await;
    let u = s.user("dedup").await;
    let me = Actor::User(u.id);
    let bytes = random_bytes(100_000, 11);
    let a = put(&s, &u, &bytes).await.unwrap();
    let b = put(&s, &u, &bytes).await.unwrap();
    assert_eq!(a.blob, b.blob);
    let usage = s.store.quotas().usage(u.id).await.unwrap();
    assert_eq!((usage.stored_bytes, usage.blobs), (a.stored_bytes, 1));

    // Deleted files hold their blob until the purge.
    s.store.files().delete(me, a.id).await.unwrap();
    s.store.files().delete(me, b.id).await.unwrap();
    assert_eq!(
        s.store.quotas().usage(u.id).await.unwrap().stored_bytes,
        a.stored_bytes
    );
    s.store
        .lifecycle()
        .run_to_end("purge", false)
        .await
        .unwrap();
    let usage = s.store.quotas().usage(u.id).await.unwrap();
    assert_eq!((usage.stored_bytes, usage.blobs), (0, 0));
    assert_usage_matches_recount(&s, &u).await;
    // The room is usable again.
    put(&s, &u, &random_bytes(200_000, 12)).await.unwrap();
}

#[tokio::test]
async fn kept_usage_equals_a_recount_through_mixed_work() {
    let s = store_with(no_floor().user_bytes(Some(2 << 20))).await;
    let users = [
        s.user("aa1").await,
        s.user("bb2").await,
        s.user("cc3").await,
    ];
    let mut live: Vec<(usize, AudioFile)> = Vec::new();
    let mut seed = 1u64;
    for round in 0..60u64 {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let who = (seed >> 40) as usize % users.len();
        let u = &users[who];
        match (seed >> 20) % 5 {
            // New bytes, sometimes past the quota.
            0 | 1 => {
                let n = 1000 + (seed >> 8) as usize % 600_000;
                match put(&s, u, &random_bytes(n, round)).await {
                    Ok(f) => live.push((who, f)),
                    Err(Error::QuotaExceeded { .. }) => {}
                    Err(e) => panic!("{e}"),
                }
            }
            // The same bytes as a live file of the user (deduplicated; a
            // stream is stopped before its hash is known, so near the
            // quota even a duplicate may be refused).
            2 => {
                if let Some((_, f)) = live.iter().find(|(w, _)| *w == who) {
                    let bytes = s.store.files().read(Actor::System, f.id).await.unwrap();
                    match put(&s, u, &bytes).await {
                        Ok(f) => live.push((who, f)),
                        Err(Error::QuotaExceeded { .. }) => {}
                        Err(e) => panic!("{e}"),
                    }
                }
            }
            3 => {
                if !live.is_empty() {
                    let (_, f) = live.remove((seed >> 30) as usize % live.len());
                    s.store.files().delete(Actor::System, f.id).await.unwrap();
                }
            }
            _ => {
                s.store
                    .lifecycle()
                    .run_to_end("purge", false)
                    .await
                    .unwrap();
            }
        }
        for u in &users {
            assert_usage_matches_recount(&s, u).await;
            let usage = s.store.quotas().usage(u.id).await.unwrap();
            assert!(usage.stored_bytes <= 2 << 20, "round {round}: {usage:?}");
        }
    }
}

fn assert_free_space(err: &Error) {
    assert!(
        matches!(
            err,
            Error::QuotaExceeded {
                which: QuotaLimit::FreeSpace,
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn the_free_space_floor_refuses_puts() {
    // A floor above any disk: nothing fits, refused before streaming.
    let s = store_with(QuotaConfig::default().min_free_bytes(u64::MAX / 2)).await;
    let u = s.user("floor").await;
    let err = put(&s, &u, b"tiny").await.unwrap_err();
    assert_free_space(&err);
    assert!(err.to_string().contains("free-space floor"), "{err}");
    assert_eq!(files_on_disk(&s), (0, 0));
    let space = s.store.quotas().disk_space().unwrap().unwrap();
    assert!(space.total > 0 && space.available <= space.total);

    // A floor just under what is free: a 32 MiB put stops part way.
    let floor = space.available.saturating_sub(1 << 20);
    let s = store_with(QuotaConfig::default().min_free_bytes(floor)).await;
    let u2 = s.user("floor3").await;
    let err = put(&s, &u2, &random_bytes(32 << 20, 13)).await.unwrap_err();
    assert_free_space(&err);
    assert_eq!(files_on_disk(&s), (0, 0));
}

#[tokio::test]
async fn quotas_from_toml_and_the_environment() {
    let c = Config::from_toml_str("[quota]\nuser_bytes = 5000\nmin_free_bytes = 0").unwrap();
    assert_eq!(
        (c.quota.user_bytes, c.quota.min_free_bytes),
        (Some(5000), 0)
    );
    assert!(Config::from_toml_str("[quota]\nuser_byte = 1").is_err());
    let mut c = Config::new("/tmp/x");
    c.apply_env(|k| match k {
        "BV_QUOTA_USER_BYTES" => Some("7000".into()),
        "BV_QUOTA_MIN_FREE_BYTES" => Some("0".into()),
        _ => None,
    })
    .unwrap();
    assert_eq!(
        (c.quota.user_bytes, c.quota.min_free_bytes),
        (Some(7000), 0)
    );
    assert!(
        Config::new("/tmp/x")
            .apply_env(|k| (k == "BV_QUOTA_USER_BYTES").then(|| "lots".into()))
            .is_err()
    );
}

#[test]
fn the_cli_shows_and_sets_quotas_and_exits_15_when_one_is_passed() {
    let dir = store_dir();
    let d = dir.path();
    let out = bvstore(
        d,
        &[
            "user",
            "add",
            "--consent",
            "audio-storage",
            "--username",
            "meena",
            "--email",
            "m@example.in",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = bvstore(d, &["user", "quota", "meena", "--set", "1000"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(text.contains("1000 B (the user's own)"), "{text}");
    let clip = d.join("clip.ogg");
    std::fs::write(&clip, random_bytes(50_000, 14)).unwrap();
    let clip = clip.to_str().unwrap();
    let out = bvstore(d, &["file", "put", "--user", "meena", clip]);
    assert_eq!(out.status.code(), Some(15), "{}", stderr(&out));
    assert!(stderr(&out).contains("quota"), "{}", stderr(&out));
    let out = bvstore(d, &["--json", "user", "quota", "meena", "--clear"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["own_limit"], serde_json::Value::Null);
    assert_eq!(v["stored_bytes"], 0);
    let out = bvstore(d, &["file", "put", "--user", "meena", clip]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[tokio::test]
async fn a_schema_6_store_gets_its_usage_counted() {
    use redb::{Database, TableDefinition, TableHandle};
    const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
    let s = store_with(no_floor()).await;
    let (a, b) = (s.user("old1").await, s.user("old2").await);
    let fa = put(&s, &a, &random_bytes(70_000, 21)).await.unwrap();
    put(&s, &a, &random_bytes(70_000, 21)).await.unwrap();
    let fb = put(&s, &b, &random_bytes(30_000, 22)).await.unwrap();
    let TestStore { dir, store } = s;
    store.close().await;
    drop(store);
    // Back to schema 6: no usage table.
    {
        let db = Database::create(dir.path().join("store.redb")).unwrap();
        let txn = db.begin_write().unwrap();
        let table = txn
            .list_tables()
            .unwrap()
            .find(|t| t.name() == "usage")
            .expect("the table exists at schema 7");
        txn.delete_table(table).unwrap();
        txn.open_table(META)
            .unwrap()
            .insert("schema_version", 6u32.to_le_bytes().as_slice())
            .unwrap();
        txn.commit().unwrap();
    }
    let store = Store::open(config(dir.path()).quota(no_floor()))
        .await
        .unwrap();
    assert_eq!(
        store.schema_version().unwrap(),
        bharatvoice_store::SCHEMA_VERSION
    );
    let ua = store.quotas().usage(a.id).await.unwrap();
    assert_eq!((ua.stored_bytes, ua.blobs), (fa.stored_bytes, 1));
    let ub = store.quotas().usage(b.id).await.unwrap();
    assert_eq!((ub.stored_bytes, ub.blobs), (fb.stored_bytes, 1));
}
