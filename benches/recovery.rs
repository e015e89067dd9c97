//! Reopening after a crash, and what a fast reopen costs each commit.
//!
//! ```text
//! cargo bench --bench recovery
//! BV_BENCH_RECOVERY_USERS=300_000 cargo bench --bench recovery
//! ```
//!
//! One store of `BV_BENCH_RECOVERY_USERS` users (default 1,000,000), each
//! tenth with a session, and a `cache.redb` of `BV_BENCH_RECOVERY_CACHE_MIB`
//! MiB (default 256) is built once, then copied for each mode. One
//! iteration of a `reopen_after_kill` benchmark:
//!
//! 1. starts `bvstore debug ack-writes` (16 tasks creating users, an
//!    acknowledged create per line) on the store, with
//!    `BV_QUICK_REPAIR` set to the mode,
//! 2. waits for 200 acknowledged creates, so commits are in flight, and
//!    sends it `SIGKILL`,
//! 3. times, in this process, `Store::open` (page checksums verified, the
//!    default) and the first page of `users().list`: what a device that
//!    lost power pays before it answers again.
//!
//! Groups, each with every page checksum verified at open (`verified`,
//! the default) and without (`unverified`):
//!
//! * `recovery/reopen_after_kill/*/quick_repair`: commits of `store.redb`
//!   save redb's allocator state, so the reopen reads it back (the
//!   default when unverified);
//! * `recovery/reopen_after_kill/*/full_repair`: `quick_repair = false`,
//!   so redb walks every page to rebuild it (the default when verified:
//!   the verification walks every page anyway);
//!
//! `cache.redb` always saves its allocator state.
//! * `recovery/reopen_clean/*` (the peer): the same open after a clean
//!   close;
//! * `commit/one_caller/{quick_repair,full_repair}`: one durable user
//!   create at a time, i.e. one commit each: the price of the saved state.
//!
//! Results and their reading: `docs/BENCHMARKS.md`, "Recovery after a
//! crash".

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bharatvoice_store::{Config, ListOptions, NewUser, Store};
use common::{env_count, run_concurrent, runtime, temp_dir};
use criterion::{Criterion, criterion_group, criterion_main};
use tokio::runtime::Runtime;

/// Creates in flight while the fixture is built.
const POPULATE_IN_FLIGHT: usize = 256;
/// Acknowledged creates the child makes before it is killed.
const ACKS_BEFORE_KILL: usize = 200;

fn config(dir: &Path, quick: bool, verify: bool) -> Config {
    Config::new(dir)
        .password_cost(8, 1)
        .quick_repair(quick)
        .verify_on_open(verify)
}

/// Builds the store: users, sessions for every tenth, a full cache file.
fn populate(rt: &Runtime, dir: &Path, users: usize, cache_mib: usize) {
    rt.block_on(async {
        let store = Store::open(config(dir, true, true)).await.expect("open");
        let start = Instant::now();
        let s = store.clone();
        let ids = run_concurrent(users, POPULATE_IN_FLIGHT, move |i| {
            let s = s.clone();
            async move {
                let name = format!("r{i:08}");
                s.users()
                    .create(NewUser::new(&name, format!("{name}@bench.example.in")))
                    .await
                    .expect("create")
                    .id
            }
        })
        .await;
        let s = store.clone();
        run_concurrent(users / 10, POPULATE_IN_FLIGHT, move |i| {
            let s = s.clone();
            let user = ids[i * 10];
            async move { s.sessions().create(user, None).await.expect("session") }
        })
        .await;
        let value = vec![0x5a_u8; 64 << 10];
        for i in 0..cache_mib * 16 {
            store
                .cache()
                .set_bytes(&format!("clip:{i}"), &value)
                .await
                .expect("cache set");
        }
        store.cache().flush().await.expect("cache flush");
        eprintln!(
            "populated {users} users, {} sessions, {cache_mib} MiB of cache in {:.1?}",
            users / 10,
            start.elapsed()
        );
        store.close().await;
    });
    let size = |p: PathBuf| std::fs::metadata(p).map(|m| m.len() >> 20).unwrap_or(0);
    eprintln!(
        "store.redb {} MiB, cache.redb {} MiB",
        size(dir.join("store.redb")),
        size(dir.join("cache.redb"))
    );
}

/// Copies the fixture's files (the store is closed) into a fresh directory.
fn copy_fixture(from: &Path, label: &str) -> tempfile::TempDir {
    let to = temp_dir(label);
    let status = Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", from.display()))
        .arg(to.path())
        .status()
        .expect("cp");
    assert!(status.success(), "copying the fixture");
    to
}

/// Runs the writer child until it has acknowledged some creates, then
/// kills it with SIGKILL.
fn crash(dir: &Path, quick: bool, verify: bool) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_bvstore"))
        .arg("--data-dir")
        .arg(dir)
        .args(["debug", "ack-writes", "--callers", "16"])
        .env("BV_QUICK_REPAIR", quick.to_string())
        .env("BV_VERIFY_ON_OPEN", verify.to_string())
        .env("BV_PASSWORD_MEMORY_KIB", "8")
        .env("BV_PASSWORD_ITERATIONS", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start bvstore");
    let out = child.stdout.take().expect("stdout");
    let acks = BufReader::new(out)
        .lines()
        .map_while(Result::ok)
        .take(ACKS_BEFORE_KILL)
        .count();
    child.kill().expect("SIGKILL");
    child.wait().expect("reap");
    assert_eq!(acks, ACKS_BEFORE_KILL, "the child stopped early");
}

/// Opens the store and reads the first page of users: the time to answer.
fn timed_open(rt: &Runtime, dir: &Path, quick: bool, verify: bool) -> Duration {
    rt.block_on(async {
        let start = Instant::now();
        let store = Store::open(config(dir, quick, verify))
            .await
            .expect("reopen");
        let page = store
            .users()
            .list(ListOptions::first(1))
            .await
            .expect("list");
        let took = start.elapsed();
        assert_eq!(page.items.len(), 1);
        store.close().await;
        took
    })
}

static CRASHES: AtomicU64 = AtomicU64::new(0);

fn bench_recovery(c: &mut Criterion) {
    let rt = runtime();
    let users = env_count("BV_BENCH_RECOVERY_USERS", 1_000_000);
    let cache_mib = env_count("BV_BENCH_RECOVERY_CACHE_MIB", 256);
    let fixture = temp_dir("bv-bench-recovery");
    populate(&rt, fixture.path(), users, cache_mib);

    let mut group = c.benchmark_group("recovery");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(1))
        .measurement_time(Duration::from_secs(1));
    for (checked, verify) in [("verified", true), ("unverified", false)] {
        for (name, quick) in [("quick_repair", true), ("full_repair", false)] {
            let dir = copy_fixture(fixture.path(), "bv-bench-recovery-run");
            group.bench_function(format!("reopen_after_kill/{checked}/{name}"), |b| {
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        crash(dir.path(), quick, verify);
                        CRASHES.fetch_add(1, Ordering::Relaxed);
                        total += timed_open(&rt, dir.path(), quick, verify);
                    }
                    total
                })
            });
        }
        let dir = copy_fixture(fixture.path(), "bv-bench-recovery-clean");
        group.bench_function(format!("reopen_clean/{checked}"), |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| timed_open(&rt, dir.path(), true, verify))
                    .sum()
            })
        });
    }
    group.finish();
    eprintln!("{} kills", CRASHES.load(Ordering::Relaxed));

    let mut group = c.benchmark_group("commit");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(5));
    for (name, quick) in [("quick_repair", true), ("full_repair", false)] {
        let dir = copy_fixture(fixture.path(), "bv-bench-recovery-commit");
        let store = rt
            .block_on(Store::open(config(dir.path(), quick, true)))
            .expect("open");
        let next = AtomicU64::new(0);
        group.bench_function(format!("one_caller/{name}"), |b| {
            b.to_async(&rt).iter(|| async {
                let n = next.fetch_add(1, Ordering::Relaxed);
                let name = format!("c{name}{n:08}");
                store
                    .users()
                    .create(NewUser::new(&name, format!("{name}@bench.example.in")))
                    .await
                    .expect("create")
            })
        });
        rt.block_on(store.close());
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().without_plots();
    targets = bench_recovery
}
criterion_main!(benches);
