//! Lifecycle jobs: expiry by retention and idle time, purge after a grace
//! period with blobs destroyed, orphan collection, metric retention, dry
//! runs. Time moves on a manual clock; nothing sleeps.

use std::time::Duration;

use bharatvoice_store::{
    Actor, AudioFile, Config, Error, HealthStatus, LifecycleConfig, ManualClock, MetricSample,
    NewUser, ProfileUpdate, PutOptions, Store, Timestamp, User,
};

use crate::common::{blob_file, config};

const DAY: Duration = Duration::from_secs(86_400);

struct World {
    dir: tempfile::TempDir,
    clock: ManualClock,
    store: Store,
}

async fn world(lifecycle: LifecycleConfig) -> World {
    let dir = tempfile::tempdir().unwrap();
    // Blob files carry real modification times: start the manual clock now.
    let clock = ManualClock::new(Timestamp::now());
    let c: Config = config(dir.path())
        .clock(clock.clone())
        .default_retention_days(7)
        .session_idle_timeout(Duration::from_secs(600))
        .lifecycle(lifecycle);
    let store = Store::open(c).await.unwrap();
    World { dir, clock, store }
}

impl World {
    async fn user(&self, name: &str) -> User {
        self.store
            .users()
            .create(
                NewUser::new(name, format!("{name}@example.in"))
                    .consent(bharatvoice_store::ConsentKind::AudioStorage),
            )
            .await
            .unwrap()
    }

    async fn put(&self, user: &User, bytes: &[u8], retention_days: Option<u32>) -> AudioFile {
        let mut options = PutOptions::content_type("audio/wav");
        options.retention_days = retention_days;
        self.store
            .files()
            .put_bytes(Actor::User(user.id), user.id, bytes, options)
            .await
            .unwrap()
    }

    async fn live(&self, f: &AudioFile) -> bool {
        match self.store.files().stat(Actor::System, f.id).await {
            Ok(_) => true,
            Err(Error::NotFound { .. }) => false,
            Err(e) => panic!("stat: {e}"),
        }
    }
}

fn files_under(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .map(|e| {
            if e.file_type().unwrap().is_dir() {
                files_under(&e.path())
            } else {
                1
            }
        })
        .sum()
}

async fn expire(w: &World) -> bharatvoice_store::JobReport {
    w.store.lifecycle().run("expiry", false).await.unwrap()
}

#[tokio::test]
async fn expiry_follows_the_file_then_the_profile_then_the_store_default() {
    let w = world(LifecycleConfig::default()).await;
    let asha = w.user("asha").await;
    let ravi = w.user("ravi").await;
    w.store
        .profiles()
        .upsert(
            ravi.id,
            ProfileUpdate {
                audio_retention_days: Some(Some(3)),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let own = w.put(&asha, b"one day", Some(1)).await;
    let by_profile = w.put(&ravi, b"three days", None).await;
    let by_default = w.put(&asha, b"seven days", None).await;

    assert_eq!(expire(&w).await.count("files_expired"), 0);
    w.clock.advance(DAY + Duration::from_secs(1));
    assert_eq!(expire(&w).await.count("files_expired"), 1);
    assert!(!w.live(&own).await && w.live(&by_profile).await && w.live(&by_default).await);
    w.clock.advance(2 * DAY);
    assert_eq!(expire(&w).await.count("files_expired"), 1);
    assert!(!w.live(&by_profile).await && w.live(&by_default).await);
    w.clock.advance(4 * DAY);
    let report = expire(&w).await;
    assert_eq!(report.count("files_expired"), 1);
    assert!(!w.live(&by_default).await);
    // Expired files are soft-deleted: restorable until the purge.
    w.store
        .files()
        .restore(Actor::System, own.id)
        .await
        .unwrap();
    assert!(w.live(&own).await);
    // The pass is written as metric samples.
    let samples = w
        .store
        .metrics()
        .query(
            "lifecycle.expiry.files_expired",
            Timestamp::MIN,
            Timestamp::MAX,
        )
        .await
        .unwrap();
    assert_eq!(samples.iter().map(|s| s.value).sum::<f64>(), 3.0);
}

#[tokio::test]
async fn idle_sessions_expire_and_ended_ones_do_not() {
    let w = world(LifecycleConfig::default()).await;
    let u = w.user("meena").await;
    let idle = w.store.sessions().create(u.id, None).await.unwrap();
    let ended = w.store.sessions().create(u.id, None).await.unwrap();
    w.store.sessions().end(ended.id).await.unwrap();
    w.clock.advance(Duration::from_secs(300));
    let busy = w.store.sessions().create(u.id, None).await.unwrap();
    w.clock.advance(Duration::from_secs(301));
    let report = w.store.lifecycle().run("expiry", false).await.unwrap();
    assert_eq!(report.count("sessions_expired"), 1, "{report:?}");
    assert!(matches!(
        w.store.sessions().get(idle.id),
        Err(Error::NotFound { .. })
    ));
    assert!(w.store.sessions().get(ended.id).is_ok());
    assert!(w.store.sessions().get(busy.id).is_ok());
}

#[tokio::test]
async fn a_dry_run_changes_nothing_and_says_what_a_run_would_do() {
    let w = world(LifecycleConfig::default().purge_grace(Duration::ZERO)).await;
    let u = w.user("tara").await;
    let files = [
        w.put(&u, b"a", Some(1)).await,
        w.put(&u, b"b", Some(1)).await,
        w.put(&u, b"c", Some(30)).await,
    ];
    w.clock.advance(2 * DAY);
    let dry = w.store.lifecycle().run("expiry", true).await.unwrap();
    assert!(dry.dry_run);
    assert_eq!(dry.count("files_expired"), 2);
    assert!(w.live(&files[0]).await && w.live(&files[1]).await);
    assert!(
        w.store
            .jobs()
            .status("expiry")
            .unwrap()
            .last_report
            .is_none()
    );
    let real = w.store.lifecycle().run("expiry", false).await.unwrap();
    assert_eq!(real.count("files_expired"), 2);

    let dry = w.store.lifecycle().run("purge", true).await.unwrap();
    assert_eq!(
        (dry.count("files_purged"), dry.count("blobs_destroyed")),
        (2, 2)
    );
    assert!(blob_file(w.dir.path(), &files[0]).exists());
    let real = w.store.lifecycle().run("purge", false).await.unwrap();
    assert_eq!(dry.counts, real.counts);
    assert!(!blob_file(w.dir.path(), &files[0]).exists());
    assert!(blob_file(w.dir.path(), &files[2]).exists());
}

#[tokio::test]
async fn the_purge_waits_for_the_grace_period_and_removes_everything() {
    let w = world(LifecycleConfig::default()).await;
    let u = w.user("neha").await;
    let f = w.put(&u, &vec![7u8; 300_000], None).await;
    let peer = w.user("peer").await;
    w.store
        .files()
        .grant(Actor::User(u.id), f.id, peer.id)
        .await
        .unwrap();
    w.store
        .files()
        .delete(Actor::User(u.id), f.id)
        .await
        .unwrap();
    let s = w.store.sessions().create(u.id, None).await.unwrap();
    w.store.sessions().delete(s.id).await.unwrap();

    w.clock.advance(29 * DAY);
    let early = w.store.lifecycle().run("purge", false).await.unwrap();
    assert_eq!(
        early.count("files_purged") + early.count("sessions_purged"),
        0
    );
    w.store.files().restore(Actor::System, f.id).await.unwrap();
    w.store.files().delete(Actor::System, f.id).await.unwrap();
    // Deleted again just now: the grace period starts over.
    w.clock.advance(2 * DAY);
    let report = w.store.lifecycle().run("purge", false).await.unwrap();
    assert_eq!(report.count("sessions_purged"), 1);
    assert_eq!(report.count("files_purged"), 0);
    w.clock.advance(29 * DAY);
    let report = w.store.lifecycle().run("purge", false).await.unwrap();
    assert_eq!(report.count("files_purged"), 1, "{report:?}");
    assert_eq!(report.count("blobs_destroyed"), 1);
    assert_eq!(report.count("bytes_freed"), f.stored_bytes);
    assert!(!blob_file(w.dir.path(), &f).exists());
    assert!(matches!(
        w.store.files().restore(Actor::System, f.id).await,
        Err(Error::NotFound { .. })
    ));
    assert!(
        w.store
            .sessions()
            .list_for_user(u.id, 10)
            .await
            .unwrap()
            .is_empty()
    );
    // Idempotent: nothing left to do.
    let again = w.store.lifecycle().run("purge", false).await.unwrap();
    assert!(again.counts.iter().all(|(_, n)| *n == 0), "{again:?}");
    // The same bytes can be stored again afresh.
    let back = w.put(&u, &vec![7u8; 300_000], None).await;
    assert_eq!(back.blob, f.blob);
    assert_eq!(
        w.store
            .files()
            .read(Actor::User(u.id), back.id)
            .await
            .unwrap(),
        vec![7u8; 300_000]
    );
}

#[tokio::test]
async fn a_shared_blob_lives_until_its_last_reference_is_purged() {
    let w = world(LifecycleConfig::default().purge_grace(Duration::ZERO)).await;
    let u = w.user("isha").await;
    let a = w.put(&u, b"same bytes", None).await;
    let b = w.put(&u, b"same bytes", None).await;
    assert_eq!(a.blob, b.blob);
    w.store.files().delete(Actor::System, a.id).await.unwrap();
    let report = w.store.lifecycle().run("purge", false).await.unwrap();
    assert_eq!(report.count("files_purged"), 1);
    assert_eq!(report.count("blobs_destroyed"), 0);
    assert_eq!(report.skipped("blob_still_referenced"), 1);
    assert_eq!(
        w.store.files().read(Actor::System, b.id).await.unwrap(),
        b"same bytes"
    );
    // A new reference after the deletion keeps the blob too.
    w.store.files().delete(Actor::System, b.id).await.unwrap();
    let c = w.put(&u, b"same bytes", None).await;
    let report = w.store.lifecycle().run("purge", false).await.unwrap();
    assert_eq!(
        (
            report.count("files_purged"),
            report.count("blobs_destroyed")
        ),
        (1, 0)
    );
    assert_eq!(
        w.store.files().read(Actor::System, c.id).await.unwrap(),
        b"same bytes"
    );
    w.store.files().delete(Actor::System, c.id).await.unwrap();
    let report = w.store.lifecycle().run("purge", false).await.unwrap();
    assert_eq!(report.count("blobs_destroyed"), 1);
    assert!(!blob_file(w.dir.path(), &c).exists());
}

#[tokio::test]
async fn purges_in_batches_and_runs_to_the_end() {
    let w = world(
        LifecycleConfig::default()
            .purge_grace(Duration::ZERO)
            .batch(7),
    )
    .await;
    let u = w.user("batch").await;
    for i in 0..30u32 {
        let f = w.put(&u, &i.to_le_bytes(), None).await;
        w.store.files().delete(Actor::System, f.id).await.unwrap();
    }
    let one = w.store.lifecycle().run("purge", false).await.unwrap();
    assert_eq!(one.count("files_purged"), 7);
    assert!(one.more);
    let rest = w
        .store
        .lifecycle()
        .run_to_end("purge", false)
        .await
        .unwrap();
    assert_eq!(rest.count("files_purged"), 23);
    assert!(!rest.more);
    assert_eq!(
        files_under(&w.dir.path().join("blobs")),
        0,
        "no blob file is left"
    );
}

/// The orphan collector walks the blob files and the blob rows, a batch
/// of each per pass. When one walk ended before the other, the next pass
/// started it over, so a run to the end lasted until both ended on the
/// same pass: with 236 and 235 batches, tens of thousands of passes (a
/// soak's final pass over 235,000 blobs ran for more than 8 minutes).
/// Each walk now waits, ended, for the other: a run lists each file once.
#[tokio::test]
async fn a_run_of_the_orphan_collector_walks_each_blob_file_once() {
    let w = world(LifecycleConfig::default().batch(2)).await;
    let u = w.user("walker").await;
    for i in 0..5u32 {
        w.put(&u, &i.to_le_bytes(), None).await;
    }
    // A sixth blob file (young, so kept) with no row: 6 files, 5 rows, so
    // 4 passes walk the files and 3 the rows.
    let p = w.dir.path().join("blobs/cd/cd").join("cd".repeat(32));
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, b"young and unnamed").unwrap();
    for round in 0..2 {
        let run = w
            .store
            .lifecycle()
            .run_to_end("orphans", false)
            .await
            .unwrap();
        let young = run
            .skipped
            .iter()
            .find(|(why, _)| *why == "younger_than_grace")
            .map_or(0, |(_, n)| *n);
        assert_eq!(young, 6, "round {round}: each file listed once: {run:?}");
        assert!(!run.more);
    }
    assert!(p.exists());
}

#[tokio::test]
async fn orphans_are_collected_after_the_grace_period_and_missing_blobs_are_marked() {
    let w = world(LifecycleConfig::default()).await;
    let u = w.user("orphan").await;
    let kept = w.put(&u, b"kept", None).await;
    let gone = w.put(&u, b"its file will be deleted", None).await;
    // An orphan: a blob file whose row never committed (as after a crash).
    let orphan_path = {
        let p = w.dir.path().join("blobs/ab/ab").join("ab".repeat(32));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, b"sealed bytes nobody names").unwrap();
        p
    };
    let tmp = w
        .dir
        .path()
        .join("tmp")
        .join(format!("{}.part", "0f".repeat(16)));
    std::fs::write(&tmp, b"half a put").unwrap();
    let foreign = w.dir.path().join("tmp").join("not-ours.txt");
    std::fs::write(&foreign, b"left alone").unwrap();
    std::fs::remove_file(blob_file(w.dir.path(), &gone)).unwrap();

    let young = w.store.lifecycle().run("orphans", false).await.unwrap();
    assert_eq!(young.count("orphans_removed"), 0);
    assert!(young.skipped("younger_than_grace") >= 1);
    assert!(orphan_path.exists());
    assert_eq!(young.count("blobs_missing"), 1);
    let damaged = w.store.lifecycle().damaged().unwrap();
    assert_eq!(damaged.len(), 1);
    assert_eq!(damaged[0].0, gone.blob);
    assert_eq!(w.store.health().await.status, HealthStatus::Degraded);
    // The record is kept, and says what it lost when read.
    assert!(w.store.files().read(Actor::System, gone.id).await.is_err());

    w.clock.advance(Duration::from_secs(2 * 3600));
    let dry = w.store.lifecycle().run("orphans", true).await.unwrap();
    assert_eq!(dry.count("orphans_removed"), 1);
    assert!(orphan_path.exists());
    let real = w.store.lifecycle().run("orphans", false).await.unwrap();
    assert_eq!(real.count("orphans_removed"), 1, "{real:?}");
    assert!(!orphan_path.exists());
    assert_eq!(real.count("blobs_marked_damaged"), 0, "marked once");
    assert!(!tmp.exists());
    assert_eq!(real.count("temporaries_removed"), 1);
    assert!(
        foreign.exists(),
        "the store never deletes what it did not make"
    );
    assert_eq!(
        w.store.files().read(Actor::System, kept.id).await.unwrap(),
        b"kept"
    );
    // Purging the damaged file clears the mark.
    w.store
        .files()
        .delete(Actor::System, gone.id)
        .await
        .unwrap();
    w.clock.advance(31 * DAY);
    w.store.lifecycle().run("purge", false).await.unwrap();
    assert!(w.store.lifecycle().damaged().unwrap().is_empty());
    assert_eq!(w.store.health().await.status, HealthStatus::Healthy);
}

#[tokio::test]
async fn puts_racing_the_collectors_lose_nothing() {
    let w = world(
        LifecycleConfig::default()
            .purge_grace(Duration::ZERO)
            .orphan_grace(Duration::ZERO),
    )
    .await;
    let u = w.user("racer").await;
    let store = w.store.clone();
    let collector = tokio::spawn(async move {
        for _ in 0..60 {
            store.lifecycle().run("orphans", false).await.unwrap();
            store.lifecycle().run("purge", false).await.unwrap();
            tokio::task::yield_now().await;
        }
    });
    let mut kept = Vec::new();
    for i in 0..120u32 {
        // Few distinct contents: puts keep landing on blobs being purged.
        let bytes = vec![(i % 5) as u8; 5000];
        let f = w.put(&u, &bytes, None).await;
        if i % 2 == 0 {
            w.store.files().delete(Actor::System, f.id).await.unwrap();
        } else {
            kept.push((f, bytes));
        }
    }
    collector.await.unwrap();
    w.store.lifecycle().run_all(false).await.unwrap();
    for (f, bytes) in &kept {
        assert_eq!(
            &w.store.files().read(Actor::System, f.id).await.unwrap(),
            bytes
        );
    }
    assert!(w.store.lifecycle().damaged().unwrap().is_empty());
}

/// Puts on several threads keep deduplicating against blobs whose last
/// record the purge is removing at the same time: a put whose row vanished
/// between its check and its commit stores its own bytes, and the purge
/// never retires a file a put has stored again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dedup_puts_racing_the_purge_on_threads_lose_nothing() {
    let w = world(LifecycleConfig::default().purge_grace(Duration::ZERO)).await;
    let u = w.user("threads").await;
    let store = w.store.clone();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = std::sync::Arc::clone(&stop);
    let purger = tokio::spawn(async move {
        while !flag.load(std::sync::atomic::Ordering::Relaxed) {
            store.lifecycle().run("purge", false).await.unwrap();
        }
    });
    let mut putters = Vec::new();
    for t in 0..4u32 {
        let (store, owner) = (w.store.clone(), u.id);
        putters.push(tokio::spawn(async move {
            let me = Actor::User(owner);
            let mut kept = Vec::new();
            for i in 0..60u32 {
                let bytes = vec![((i + t) % 3) as u8; 3000];
                let options = PutOptions::content_type("audio/wav");
                let f = store
                    .files()
                    .put_bytes(me, owner, &bytes, options)
                    .await
                    .unwrap();
                if i % 3 == 0 {
                    kept.push((f, bytes));
                } else {
                    store.files().delete(me, f.id).await.unwrap();
                }
            }
            kept
        }));
    }
    let mut kept = Vec::new();
    for p in putters {
        kept.extend(p.await.unwrap());
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    purger.await.unwrap();
    w.store
        .lifecycle()
        .run_to_end("purge", false)
        .await
        .unwrap();
    for (f, bytes) in &kept {
        assert_eq!(
            &w.store.files().read(Actor::System, f.id).await.unwrap(),
            bytes
        );
    }
    assert!(w.store.lifecycle().damaged().unwrap().is_empty());
    let usage = w.store.quotas().usage(u.id).await.unwrap();
    assert_eq!(
        (usage.stored_bytes, usage.blobs),
        w.store.quotas().recount(u.id).await.unwrap()
    );
}

#[tokio::test]
async fn old_metric_samples_are_dropped() {
    let w = world(LifecycleConfig::default().metric_retention(Duration::from_secs(3600))).await;
    let now = w.clock.now();
    for (name, age_secs) in [
        ("asr.ms", 7200),
        ("asr.ms", 60),
        ("tts.ms", 4000),
        ("tts.ms", 10),
    ] {
        w.store
            .metrics()
            .record(MetricSample::new(name, 1.0).at(now.minus(Duration::from_secs(age_secs))))
            .await
            .unwrap();
    }
    let report = w
        .store
        .lifecycle()
        .run("metric-retention", false)
        .await
        .unwrap();
    assert_eq!(report.count("samples_dropped"), 2);
    for name in ["asr.ms", "tts.ms"] {
        let left = w
            .store
            .metrics()
            .query(name, Timestamp::MIN, Timestamp::MAX)
            .await
            .unwrap();
        assert_eq!(left.len(), 1, "{name}");
    }
}

#[tokio::test]
async fn unknown_jobs_are_refused() {
    let w = world(LifecycleConfig::default()).await;
    assert!(matches!(
        w.store.lifecycle().run("everything", false).await,
        Err(Error::InvalidInput { .. })
    ));
}

#[test]
fn bvstore_gc_prints_a_table_per_job_and_purges_with_the_configured_grace() {
    use crate::common::{bvstore_stdin, stdout};
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("data");
    let conf = dir.path().join("bv.toml");
    std::fs::write(&conf, "[lifecycle]\npurge_grace_secs = 0\n").unwrap();
    let run = |args: &[&str]| {
        let mut all = vec!["--config", conf.to_str().unwrap()];
        all.extend_from_slice(args);
        let out = bvstore_stdin(&d, &all, None);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            crate::common::stderr(&out)
        );
        out
    };
    run(&["init"]);
    run(&[
        "user",
        "add",
        "--consent",
        "audio-storage",
        "--username",
        "gc_user",
        "--email",
        "gc@example.in",
    ]);
    let clip = dir.path().join("clip.wav");
    std::fs::write(&clip, vec![3u8; 50_000]).unwrap();
    let put = run(&[
        "--json",
        "file",
        "put",
        clip.to_str().unwrap(),
        "--user",
        "gc_user",
    ]);
    let rec: serde_json::Value = serde_json::from_str(&stdout(&put)).unwrap();
    let id = rec["id"].as_str().unwrap().to_string();
    run(&["file", "rm", &id, "--user", "gc_user"]);

    let dry = run(&["--json", "gc", "--dry-run"]);
    let reports: serde_json::Value = serde_json::from_str(&stdout(&dry)).unwrap();
    let jobs: Vec<&str> = reports
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["job"].as_str().unwrap())
        .collect();
    assert_eq!(
        jobs,
        [
            "access-counts",
            "expiry",
            "purge",
            "orphans",
            "metric-retention",
            "context-trim",
            "audit-reads",
            "audit-retention"
        ]
    );
    assert!(
        reports
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["dry_run"] == true)
    );
    assert_eq!(
        reports[2]["counts"][0],
        serde_json::json!(["files_purged", 1])
    );

    let text = stdout(&run(&["gc", "--job", "purge"]));
    assert!(text.starts_with("purge"), "{text}");
    assert!(
        text.contains("files purged") && text.contains("blobs destroyed"),
        "{text}"
    );
    let again = run(&["--json", "gc", "--job", "purge"]);
    let reports: serde_json::Value = serde_json::from_str(&stdout(&again)).unwrap();
    assert_eq!(
        reports[0]["counts"][0],
        serde_json::json!(["files_purged", 0])
    );

    let bad = bvstore_stdin(&d, &["gc", "--job", "everything"], None);
    assert_eq!(bad.status.code(), Some(2));
}

#[tokio::test]
async fn reads_are_counted_in_memory_and_written_by_the_job_and_at_close() {
    let w = world(LifecycleConfig::default()).await;
    let u = w.user("reader").await;
    // Reads are counted for an owner who allows analytics.
    w.store
        .profiles()
        .set_consent(u.id, bharatvoice_store::ConsentKind::Analytics, true)
        .await
        .unwrap();
    let me = Actor::User(u.id);
    let f = w.put(&u, b"listen again", None).await;
    for _ in 0..3 {
        w.store.files().read(me, f.id).await.unwrap();
    }
    w.clock.advance(Duration::from_secs(5));
    w.store.files().read_range(me, f.id, 0, 4).await.unwrap();
    let read_at = w.clock.now();
    // Not yet written: no commit per read.
    let before = w.store.files().stat(me, f.id).await.unwrap();
    assert_eq!((before.access_count, before.last_read_at), (0, None));
    let report = w
        .store
        .lifecycle()
        .run("access-counts", false)
        .await
        .unwrap();
    assert_eq!(report.count("reads_written"), 4);
    let after = w.store.files().stat(me, f.id).await.unwrap();
    assert_eq!((after.access_count, after.last_read_at), (4, Some(read_at)));
    // A stat is not a read; a refused read is not counted.
    let other = w.user("other").await;
    assert!(
        w.store
            .files()
            .read(Actor::User(other.id), f.id)
            .await
            .is_err()
    );
    w.store.files().read(me, f.id).await.unwrap();
    // Close writes what is pending.
    w.store.close().await;
    drop(w.store);
    let store = Store::open(config(w.dir.path()).clock(w.clock.clone()))
        .await
        .unwrap();
    let f = store.files().stat(me, f.id).await.unwrap();
    assert_eq!(f.access_count, 5);
}
