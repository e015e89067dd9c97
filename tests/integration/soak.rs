//! The soak: 64 tasks doing a realistic mix (90 % reads, 10 % writes)
//! across users, sessions, files and the cache, with the lifecycle jobs
//! running beside them, for `BV_SOAK_SECS` seconds (default 30). Checks:
//! no operation fails; the RSS stops growing (over the last third of the
//! load it grows by at most [`GROWTH_BYTES`]); the process's peak RSS,
//! end checks included, stays within the configured caches (tier 1 and
//! both redb page caches) and a fixed overhead; every acknowledged turn
//! and file is there at the end and `verify --deep` is clean. Prints
//! p50/p99 per operation, the peak RSS, and every 15 s the RSS beside the
//! operations done, the allocator's view (what the program holds, what
//! the allocator keeps free) and tier 1's weighed bytes. Latencies go
//! into fixed-size histograms (the store's own) and acknowledged files
//! into a temporary file, so the test's own memory does not grow with the
//! run.
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

use bharatvoice_store::fuzzing::Latencies;

use crate::common::config;

const TASKS: usize = 64;
const USERS: usize = 200;
const MEMORY_BYTES: u64 = 32 << 20;
const DB_CACHE_BYTES: usize = 16 << 20;
/// `cache.redb`'s page cache (fixed in `cache::tier2`).
const TIER2_PAGE_CACHE_BYTES: u64 = 16 << 20;
/// What the process may hold beyond the caches: the binary, the runtime
/// and its ~150 blocking threads, 64 tasks' buffers, redb's write state,
/// the tamper watch's map of up to 65 792 watched directories, reads
/// waiting for the audit log (at most 65 536), and the free memory glibc
/// keeps in its arenas (40 to 140 MiB in a 10-minute release run, the
/// most after the end checks).
const OVERHEAD_BYTES: u64 = 192 << 20;
/// How much the RSS may grow over the last third of the load (a
/// 10-minute release run grew 4 MiB; before the tamper watch kept pace
/// with puts, 13 MiB and still rising).
const GROWTH_BYTES: u64 = 12 << 20;

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

/// The allocator's view, in bytes: what the program holds (malloc'd, in
/// arenas or mapped on its own) and what the allocator keeps free in its
/// arenas without returning it (fragmentation, counted in the RSS).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn heap() -> (u64, u64) {
    // SAFETY: mallinfo2 only reads the allocator's counters.
    let m = unsafe { libc::mallinfo2() };
    ((m.uordblks + m.hblkhd) as u64, m.fordblks as u64)
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn heap() -> (u64, u64) {
    (0, 0)
}

fn peak_rss() -> u64 {
    status_bytes("VmHWM:")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / 1048576.0
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

struct Seen {
    latencies: HashMap<&'static str, Latencies>,
    /// The last acknowledged turn of each session.
    turns: HashMap<SessionId, String>,
    /// Every acknowledged file, a line `id sha256-hex` each, in an
    /// unnamed temporary file (kept in memory, it would grow with the run
    /// and be counted in the RSS).
    files: std::io::BufWriter<std::fs::File>,
    files_put: u64,
}

impl Seen {
    fn new() -> Seen {
        Seen {
            latencies: HashMap::new(),
            turns: HashMap::new(),
            files: std::io::BufWriter::new(tempfile::tempfile().expect("a temporary file")),
            files_put: 0,
        }
    }

    /// The acknowledged files, read back.
    fn files(self) -> impl Iterator<Item = (FileId, String)> {
        use std::io::{BufRead, Seek};
        let mut file = self.files.into_inner().expect("flushed");
        file.rewind().expect("rewound");
        std::io::BufReader::new(file).lines().map(|line| {
            let line = line.expect("a line");
            let (id, sha) = line.split_once(' ').expect("id and sha");
            (id.parse().expect("a file id"), sha.to_owned())
        })
    }
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
    let seen = Arc::new(Mutex::new(Seen::new()));
    let started = Instant::now();
    let deadline = started + Duration::from_secs(secs);
    let done_ops = Arc::new(AtomicU64::new(0));
    let mut set = tokio::task::JoinSet::new();
    for task in 0..TASKS {
        let (store, world, seen) = (store.clone(), Arc::clone(&world), Arc::clone(&seen));
        let done_ops = Arc::clone(&done_ops);
        set.spawn(async move {
            let mut rng = Rng(task as u64 + 1);
            let mut local: HashMap<&'static str, Latencies> = HashMap::new();
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
                    if let Some((id, sha)) = file {
                        use std::io::Write;
                        writeln!(s.files, "{id} {}", hex(&sha)).expect("noted");
                        s.files_put += 1;
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
            // At least six samples, however short the run.
            let every = Duration::from_secs(secs.div_ceil(6).clamp(1, 15));
            let mut samples = Vec::new();
            while Instant::now() < deadline {
                tokio::time::sleep(every.min(deadline.saturating_duration_since(Instant::now())))
                    .await;
                let t1 = store.cache().stats().tier1;
                samples.push((started.elapsed(), status_bytes("VmRSS:")));
                let (used, free) = heap();
                eprintln!(
                    "{:>5.0} s  {:>9} ops  RSS {:>7.1} MiB (peak {:.1}; heap {:.1} in use, {:.1} free)  tier 1 {:.1} MiB in {} entries",
                    started.elapsed().as_secs_f64(),
                    done_ops.load(Ordering::Relaxed),
                    mib(status_bytes("VmRSS:")),
                    mib(peak_rss()),
                    mib(used),
                    mib(free),
                    mib(t1.bytes),
                    t1.entries
                );
            }
            samples
        })
    };
    while let Some(done) = set.join_next().await {
        done.expect("a load task failed");
    }
    let passes = jobs.await.expect("jobs task");
    let samples = timeline.await.expect("timeline task");
    // The last third of the load: from the first sample at two thirds of
    // the run to the last one.
    let two_thirds = Duration::from_secs(secs * 2 / 3);
    let from = samples.iter().find(|(t, _)| *t >= two_thirds).map(|s| s.1);
    let growth = match (from, samples.last()) {
        (Some(from), Some(last)) => last.1.saturating_sub(from),
        _ => 0,
    };

    let seen = Arc::try_unwrap(seen)
        .ok()
        .expect("tasks done")
        .into_inner()
        .unwrap();
    let phase = |what: &str| {
        let (used, free) = heap();
        eprintln!(
            "{:>5.0} s  {what}: RSS {:.1} MiB (peak {:.1}; heap {:.1} in use, {:.1} free)",
            started.elapsed().as_secs_f64(),
            mib(status_bytes("VmRSS:")),
            mib(peak_rss()),
            mib(used),
            mib(free)
        )
    };
    phase("load done");
    let mut total = 0;
    let mut ops: Vec<_> = seen.latencies.iter().collect();
    ops.sort_by_key(|(op, _)| *op);
    for (op, h) in ops {
        total += h.count();
        eprintln!(
            "{op:<22} {:>8} ops  p50 {:>10.2?}  p99 {:>10.2?}",
            h.count(),
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
    let files_put = seen.files_put;
    for (f, sha) in seen.files() {
        let record = store
            .files()
            .stat(Actor::System, f)
            .await
            .expect("an acknowledged file");
        assert_eq!(hex(&record.sha256), sha, "{f}");
    }
    phase("acknowledged turns and files checked");
    crate::common::assert_verifies_deep(&store, "after the soak").await;
    phase("verify --deep done");
    let rss = peak_rss();
    let caches = MEMORY_BYTES + DB_CACHE_BYTES as u64 + TIER2_PAGE_CACHE_BYTES;
    let bound = caches + OVERHEAD_BYTES;
    eprintln!(
        "{secs} s, {TASKS} tasks: {total} operations, {passes} lifecycle passes, {files_put} files put; RSS grew {:.1} MiB over the last third of the load (at most {}); peak RSS {:.1} MiB (bound {:.0} MiB = caches {} MiB [tier 1 {}, store.redb {}, cache.redb {}] + {} MiB overhead)",
        mib(growth),
        GROWTH_BYTES >> 20,
        mib(rss),
        mib(bound),
        caches >> 20,
        MEMORY_BYTES >> 20,
        DB_CACHE_BYTES >> 20,
        TIER2_PAGE_CACHE_BYTES >> 20,
        OVERHEAD_BYTES >> 20
    );
    assert!(rss > 0, "no VmHWM in /proc/self/status");
    assert!(
        growth <= GROWTH_BYTES,
        "the RSS grew {growth} bytes over the last third of the load"
    );
    assert!(rss <= bound, "peak RSS {rss} past the bound {bound}");
    store.close().await;
}
