//! The soak: 64 tasks doing a realistic mix (90 % reads, 10 % writes)
//! across users, sessions, files and the cache, with the lifecycle jobs
//! running beside them, for `BV_SOAK_SECS` seconds (default 30). Checks:
//! no operation fails; the process's peak RSS stays within the cache's
//! memory bound, redb's page cache and a fixed overhead; every
//! acknowledged turn and file is there at the end and `verify --deep` is
//! clean. Prints p50/p99 per operation, the peak RSS, and every 15 s the
//! RSS beside the operations done and tier 1's weighed bytes (so growth
//! shows while it happens). Latencies go into fixed-size histograms, so
//! the test's own memory does not grow with the run.
//!
//! Ignored in `cargo test` (it runs for its whole duration); `.ci/run`
//! runs it alone, so the RSS is this test's:
//! `BV_SOAK_SECS=600 cargo test --release --test integration soak -- --ignored --nocapture`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bharatvoice_store::{
    Actor, CacheConfig, ConsentKind, FileId, NewUser, PutOptions, Role, SessionId, Store, Turn,
    UserId, UserUpdate,
};

use crate::common::config;

const TASKS: usize = 64;
const USERS: usize = 200;
const MEMORY_BYTES: u64 = 32 << 20;
const DB_CACHE_BYTES: usize = 16 << 20;
/// What the process may hold beyond the two caches: the runtime, 64
/// tasks' buffers, redb's write state, the allocator's slack (a debug
/// build).
const OVERHEAD_BYTES: u64 = 128 << 20;

/// A field of `/proc/self/status` in bytes: `VmHWM` (peak resident set)
/// or `VmRSS` (now).
fn status_bytes(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

fn peak_rss() -> u64 {
    status_bytes("VmHWM:")
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / 1048576.0
}

/// Latencies in log-linear buckets: 8 per power of two of nanoseconds,
/// so a quantile is within 12.5 % of the true value and the memory is
/// fixed (512 counters) however long the run.
#[derive(Clone)]
struct Histogram {
    counts: Vec<u64>,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: vec![0; 64 * 8],
        }
    }
}

impl Histogram {
    fn bucket(ns: u64) -> usize {
        if ns < 8 {
            return ns as usize;
        }
        let e = 63 - ns.leading_zeros() as usize;
        (e - 2) * 8 + ((ns >> (e - 3)) & 7) as usize
    }

    /// The smallest value of bucket `b`.
    fn floor(b: usize) -> u64 {
        if b < 8 {
            return b as u64;
        }
        let e = b / 8 + 2;
        (8 + (b % 8) as u64) << (e - 3)
    }

    fn record(&mut self, d: Duration) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.counts[Self::bucket(ns)] += 1;
    }

    fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
    }

    fn len(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// The floor of the bucket holding quantile `q`.
    fn quantile(&self, q: f64) -> Duration {
        let rank = ((self.len().saturating_sub(1)) as f64 * q) as u64;
        let mut seen = 0;
        for (b, n) in self.counts.iter().enumerate() {
            seen += n;
            if seen > rank {
                return Duration::from_nanos(Self::floor(b));
            }
        }
        Duration::ZERO
    }
}

#[test]
fn the_histogram_finds_quantiles_within_its_bucket_width() {
    let mut h = Histogram::default();
    for us in 1..=1000u64 {
        h.record(Duration::from_micros(us));
    }
    assert_eq!(h.len(), 1000);
    for (q, want) in [(0.5, 500.0), (0.99, 990.0)] {
        let got = h.quantile(q).as_nanos() as f64 / 1000.0;
        assert!(got <= want && got >= want * 0.875, "q {q}: {got} µs");
    }
    for ns in [0, 7, 8, 9, 15, 16, 1 << 20, 1 << 62] {
        let b = Histogram::bucket(ns);
        assert!(Histogram::floor(b) <= ns, "{ns}");
        assert!(b + 1 == 512 || Histogram::floor(b + 1) > ns, "{ns}");
    }
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[derive(Default)]
struct Seen {
    latencies: HashMap<&'static str, Histogram>,
    /// The last acknowledged turn of each session.
    turns: HashMap<SessionId, String>,
    files: Vec<(FileId, [u8; 32])>,
}

struct World {
    users: Vec<UserId>,
    sessions: Vec<SessionId>,
    files: Vec<(FileId, UserId)>,
}

/// The operation's name, and what it acknowledged that the end checks.
type Done = (
    &'static str,
    Option<(SessionId, String)>,
    Option<(FileId, [u8; 32])>,
);

async fn one_op(store: &Store, w: &World, rng: &mut Rng, task: usize, i: u64) -> Done {
    let u = w.users[rng.below(w.users.len())];
    let roll = rng.below(100);
    let key = format!("soak:{}", rng.below(20_000));
    match roll {
        0..=29 => {
            store.users().get(u).expect("get user");
            ("users.get", None, None)
        }
        30..=49 => {
            let s = w.sessions[rng.below(w.sessions.len())];
            store.sessions().get(s).expect("get session");
            ("sessions.get", None, None)
        }
        50..=64 => {
            let (f, owner) = w.files[rng.below(w.files.len())];
            store
                .files()
                .read(Actor::User(owner), f)
                .await
                .expect("read file");
            ("files.read", None, None)
        }
        65..=89 => {
            store.cache().get_bytes(&key).await.expect("cache get");
            ("cache.get", None, None)
        }
        90..=93 => {
            let value = vec![(i % 251) as u8; 16 << 10];
            store
                .cache()
                .set_bytes(&key, &value)
                .await
                .expect("cache set");
            ("cache.set", None, None)
        }
        94..=96 => {
            // Sessions belong to users in order: session k to user k.
            let k = task % w.sessions.len();
            let s = w.sessions[k];
            let text = format!("soak {task} {i}");
            store
                .sessions()
                .append_turn(s, Turn::new(Role::User, &text))
                .await
                .expect("append turn");
            ("sessions.append_turn", Some((s, text)), None)
        }
        97..=98 => {
            let mut bytes = vec![0u8; 8192];
            for b in bytes.iter_mut() {
                *b = rng.next() as u8;
            }
            let f = store
                .files()
                .put_bytes(
                    Actor::User(u),
                    u,
                    &bytes,
                    PutOptions::content_type("audio/wav"),
                )
                .await
                .expect("put file");
            ("files.put", None, Some((f.id, f.sha256)))
        }
        _ => {
            let change = UserUpdate {
                display_name: Some(Some(format!("soak {task} {i}"))),
                ..UserUpdate::default()
            };
            store.users().update(u, change).await.expect("update user");
            ("users.update", None, None)
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "runs for BV_SOAK_SECS; .ci/run runs it alone"]
async fn soak_mixed_load_with_lifecycle_jobs() {
    let secs: u64 = std::env::var("BV_SOAK_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    let dir = crate::common::store_dir();
    let store = Store::open(
        config(dir.path())
            .db_cache_bytes(DB_CACHE_BYTES)
            .cache(CacheConfig::default().memory_bytes(MEMORY_BYTES)),
    )
    .await
    .expect("open");
    let mut users = Vec::new();
    let mut sessions = Vec::new();
    let mut files = Vec::new();
    for i in 0..USERS {
        let name = format!("soak{i}");
        let u = store
            .users()
            .create(
                NewUser::new(&name, format!("{name}@example.in"))
                    .consent(ConsentKind::AudioStorage),
            )
            .await
            .expect("create");
        users.push(u.id);
        if i < TASKS {
            sessions.push(
                store
                    .sessions()
                    .create(u.id, None)
                    .await
                    .expect("session")
                    .id,
            );
        }
        if i % 2 == 0 {
            let f = store
                .files()
                .put_bytes(
                    Actor::User(u.id),
                    u.id,
                    &vec![i as u8; 16 << 10],
                    PutOptions::content_type("audio/wav"),
                )
                .await
                .expect("put");
            files.push((f.id, u.id));
        }
    }
    let world = Arc::new(World {
        users,
        sessions,
        files,
    });
    let seen = Arc::new(Mutex::new(Seen::default()));
    let started = Instant::now();
    let deadline = started + Duration::from_secs(secs);
    let done_ops = Arc::new(AtomicU64::new(0));
    let mut set = tokio::task::JoinSet::new();
    for task in 0..TASKS {
        let (store, world, seen) = (store.clone(), Arc::clone(&world), Arc::clone(&seen));
        let done_ops = Arc::clone(&done_ops);
        set.spawn(async move {
            let mut rng = Rng(task as u64 + 1);
            let mut local: HashMap<&'static str, Histogram> = HashMap::new();
            let mut i = 0u64;
            while Instant::now() < deadline {
                i += 1;
                let t0 = Instant::now();
                let (op, turn, file) = one_op(&store, &world, &mut rng, task, i).await;
                local.entry(op).or_default().record(t0.elapsed());
                done_ops.fetch_add(1, Ordering::Relaxed);
                if turn.is_some() || file.is_some() {
                    let mut s = seen.lock().unwrap();
                    if let Some((sid, text)) = turn {
                        s.turns.insert(sid, text);
                    }
                    if let Some(f) = file {
                        s.files.push(f);
                    }
                }
            }
            let mut s = seen.lock().unwrap();
            for (op, h) in local {
                s.latencies.entry(op).or_default().merge(&h);
            }
        });
    }
    // The lifecycle jobs beside the load.
    let jobs = {
        let store = store.clone();
        tokio::spawn(async move {
            let mut passes = 0;
            while Instant::now() < deadline {
                store
                    .lifecycle()
                    .run_all(false)
                    .await
                    .expect("lifecycle pass");
                passes += 1;
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            passes
        })
    };
    // The RSS over time, beside the work done and tier 1's weighed bytes.
    let timeline = {
        let (store, done_ops) = (store.clone(), Arc::clone(&done_ops));
        tokio::spawn(async move {
            while Instant::now() < deadline {
                tokio::time::sleep(
                    Duration::from_secs(15).min(deadline.saturating_duration_since(Instant::now())),
                )
                .await;
                let t1 = store.cache().stats().tier1;
                eprintln!(
                    "{:>5.0} s  {:>9} ops  RSS {:>7.1} MiB (peak {:.1})  tier 1 {:.1} MiB in {} entries",
                    started.elapsed().as_secs_f64(),
                    done_ops.load(Ordering::Relaxed),
                    mib(status_bytes("VmRSS:")),
                    mib(peak_rss()),
                    mib(t1.bytes),
                    t1.entries
                );
            }
        })
    };
    while let Some(done) = set.join_next().await {
        done.expect("a load task failed");
    }
    let passes = jobs.await.expect("jobs task");
    timeline.await.expect("timeline task");

    let seen = Arc::try_unwrap(seen)
        .ok()
        .expect("tasks done")
        .into_inner()
        .unwrap();
    let phase = |what: &str| {
        eprintln!(
            "{:>5.0} s  {what}: RSS {:.1} MiB (peak {:.1})",
            started.elapsed().as_secs_f64(),
            mib(status_bytes("VmRSS:")),
            mib(peak_rss())
        )
    };
    phase("load done");
    let mut total = 0;
    let mut ops: Vec<_> = seen.latencies.iter().collect();
    ops.sort_by_key(|(op, _)| *op);
    for (op, h) in ops {
        total += h.len();
        eprintln!(
            "{op:<22} {:>8} ops  p50 {:>10.2?}  p99 {:>10.2?}",
            h.len(),
            h.quantile(0.5),
            h.quantile(0.99)
        );
    }
    for (s, text) in &seen.turns {
        let session = store.sessions().get(*s).expect("session");
        assert_eq!(
            session.context.last().map(|t| t.text.as_str()),
            Some(text.as_str()),
            "last turn of {s}"
        );
    }
    for (f, sha) in &seen.files {
        let record = store
            .files()
            .stat(Actor::System, *f)
            .await
            .expect("an acknowledged file");
        assert_eq!(&record.sha256, sha);
    }
    phase("acknowledged turns and files checked");
    crate::common::assert_verifies_deep(&store, "after the soak").await;
    phase("verify --deep done");
    let rss = peak_rss();
    let bound = MEMORY_BYTES + DB_CACHE_BYTES as u64 + OVERHEAD_BYTES;
    eprintln!(
        "{secs} s, {TASKS} tasks: {total} operations, {passes} lifecycle passes, {} files put, peak RSS {:.1} MiB (bound {:.0} MiB = cache {} MiB + redb cache {} MiB + {} MiB overhead)",
        seen.files.len(),
        mib(rss),
        mib(bound),
        MEMORY_BYTES >> 20,
        DB_CACHE_BYTES >> 20,
        OVERHEAD_BYTES >> 20
    );
    assert!(rss > 0, "no VmHWM in /proc/self/status");
    assert!(rss <= bound, "peak RSS {rss} past the bound {bound}");
    store.close().await;
}
