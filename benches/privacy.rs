//! The cost of privacy: the audit log and per-user rate limits on the
//! hot paths, and the erasure of a user with many files.
//!
//! ```text
//! CARGO_TARGET_DIR=target-bench cargo bench --bench privacy
//! # quick: shorter criterion samples, fewer loop iterations and files
//! BV_BENCH_PRIVACY_SECS=1 BV_BENCH_PRIVACY_PUT_N=50 BV_BENCH_ERASE_FILES=200 \
//!     CARGO_TARGET_DIR=target-bench cargo bench --bench privacy
//! ```
//!
//! Stores live in temporary directories (`BV_BENCH_DIR` chooses their
//! parent), opened with `Config::new(dir).password_cost(8, 1)`; users are
//! created with audio-storage consent (without it every put is
//! `ConsentRequired`).
//!
//! # 1. Audit and rate limits on and off
//!
//! Three stores, measured in the same run:
//!
//! * `off`: `AuditConfig::enabled(false)`, no rate limits;
//! * `audit`: the audit log on (the default), no rate limits;
//! * `audit+limits`: the audit log on and rate limits of 1,000,000
//!   operations/s (burst 1,000,000) and 1 TiB/s (burst 1 TiB) per user,
//!   never reached: what is measured is the bucket check itself.
//!
//! Criterion groups (each with `off`, `audit`, `audit+limits`):
//!
//! * `get_user_by_id`: an inline point read (neither audited nor limited:
//!   the control; its ratios should be 1).
//! * `read_1KiB`: `files().read` of a 1 KiB file (one operations token;
//!   the read is noted in memory and the `audit-reads` job appends it
//!   later, outside the timing unless a flush falls inside a sample).
//! * `put_1KiB`: `put_bytes` of a new 1 KiB file (one operations token,
//!   one KiB token, one audit entry in the put's transaction). A counter
//!   in the first 8 bytes defeats dedup.
//!
//! After the groups a plain timed loop runs each operation on the three
//! stores in turn, `BV_BENCH_PRIVACY_ROUNDS` rounds (default 3, the
//! stores alternating so that a noisy neighbour hits all three), and
//! prints the median per-call time of each and the ratios
//! `privacy: <op> audit/off = r` and `privacy: <op> audit+limits/off = r`
//! (target from the issue: ≤ 1.10).
//!
//! # 2. Erasure of a user with many files
//!
//! One store (audit on, no limits, the `erasure` job's interval pushed to a
//! day so that only the benchmark runs erasures). Each of
//! `BV_BENCH_ERASE_RUNS` runs (default 3) creates two fresh users, each
//! with `BV_BENCH_ERASE_FILES` (default 1000) distinct 4 KiB files of
//! pseudo-random bytes (64 puts in flight), and erases them:
//!
//! * the first with `privacy().erase_user` timed end to end (`total`),
//!   and "keys destroyed after" = `ErasureReport::keys_destroyed_at` minus
//!   the store clock (`Timestamp::now()`) read just before the call. That
//!   stamp is taken when the key-destroying transaction is prepared, before
//!   it commits, so it is a lower bound;
//! * the second step-wise (`request_erasure` then `erase_step`, the hidden
//!   API the crash tests use): the time from the request until the first
//!   step returns, i.e. until the key row's removal has committed and the
//!   key is forgotten in memory: from then on no blob of the user can be
//!   read. A read of one of their files is then tried (it must fail), and
//!   `erase_user` finishes the rest.
//!
//! Each run prints its figures; then the medians. Erasure is destructive,
//! so these are plain timed runs, not criterion iterations.
//!
//! # Knobs (`_` allowed as a separator)
//!
//! | variable | default (`cargo bench`) | as a test | what |
//! |---|---|---|---|
//! | `BV_BENCH_PRIVACY_SECS` | 3 | | criterion measurement time per benchmark |
//! | `BV_BENCH_PRIVACY_GET_N` | 100 000 | 1000 | `get_user_by_id` calls per round |
//! | `BV_BENCH_PRIVACY_READ_N` | 2000 | 100 | `read_1KiB` calls per round |
//! | `BV_BENCH_PRIVACY_PUT_N` | 200 | 20 | `put_1KiB` calls per round |
//! | `BV_BENCH_PRIVACY_ROUNDS` | 3 | 1 | rounds of the timed loop |
//! | `BV_BENCH_ERASE_FILES` | 1000 | 50 | files of each erased user |
//! | `BV_BENCH_ERASE_RUNS` | 3 | 1 | erasure runs |
//!
//! "As a test" is `cargo test --benches` (no `--bench` argument).
//! Results: `docs/BENCHMARKS.md`, section "Privacy".

mod common;

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bharatvoice_store::{
    Actor, AuditConfig, Config, ConsentKind, ErasureStep, FileId, NewUser, PrivacyConfig,
    PutOptions, RateLimitConfig, Store, Timestamp, UserId,
};
use common::{Rng, run_concurrent, temp_dir};
use criterion::{Criterion, criterion_group, criterion_main};
use tokio::runtime::Runtime;

/// The issue's target for the ratios of the timed loop.
const TARGET_RATIO: f64 = 1.10;
/// Size of an erased user's files.
const ERASE_FILE_BYTES: usize = 4096;
/// Puts in flight while populating an erased user.
const PUTS_IN_FLIGHT: usize = 64;

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// True when run by `cargo bench` (criterion's `--bench` argument), false
/// under `cargo test --benches`.
fn benchmarking() -> bool {
    std::env::args().any(|a| a == "--bench")
}

/// A number from an environment variable, `_` allowed as a separator;
/// `bench` under `cargo bench`, else `test`.
fn env_count(name: &str, bench: usize, test: usize) -> usize {
    match std::env::var(name) {
        Ok(v) => v
            .replace('_', "")
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a number")),
        Err(_) if benchmarking() => bench,
        Err(_) => test,
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort_unstable();
    v[v.len() / 2]
}

fn met(ok: bool) -> &'static str {
    if ok { "MET" } else { "NOT MET" }
}

fn new_user(name: &str) -> NewUser {
    NewUser::new(name, format!("{name}@example.in")).consent(ConsentKind::AudioStorage)
}

// ---------------------------------------------------------------------------
// 1. Audit and rate limits on and off
// ---------------------------------------------------------------------------

/// The three configurations compared.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Off,
    Audit,
    AuditLimits,
}

const MODES: [Mode; 3] = [Mode::Off, Mode::Audit, Mode::AuditLimits];

impl Mode {
    fn label(self) -> &'static str {
        match self {
            Mode::Off => "off",
            Mode::Audit => "audit",
            Mode::AuditLimits => "audit+limits",
        }
    }

    fn config(self, dir: &std::path::Path) -> Config {
        let config = Config::new(dir)
            .password_cost(8, 1)
            .audit(AuditConfig::default().enabled(self != Mode::Off));
        match self {
            Mode::AuditLimits => config.rate_limits(
                RateLimitConfig::default()
                    .ops(1_000_000, 1_000_000)
                    .bytes(1 << 40, 1 << 40),
            ),
            Mode::Off | Mode::Audit => config.rate_limits(RateLimitConfig::off()),
        }
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    store: Store,
    user: UserId,
    file: FileId,
    counter: AtomicU64,
}

fn fixture(rt: &Runtime, mode: Mode) -> Fixture {
    let dir = temp_dir(&format!("bv-privacy-{}", mode.label()));
    let config = mode.config(dir.path());
    rt.block_on(async {
        let store = Store::open(config).await.expect("open");
        let user = store
            .users()
            .create(new_user("bench"))
            .await
            .expect("user")
            .id;
        let file = store
            .files()
            .put_bytes(
                Actor::User(user),
                user,
                &[7u8; 1024],
                PutOptions::content_type("audio/wav"),
            )
            .await
            .expect("put")
            .id;
        Fixture {
            _dir: dir,
            store,
            user,
            file,
            counter: AtomicU64::new(1),
        }
    })
}

fn get_user(fx: &Fixture) {
    black_box(fx.store.users().get(black_box(fx.user)).expect("get"));
}

async fn read(fx: &Fixture) {
    let bytes = fx.store.files().read(Actor::User(fx.user), fx.file).await;
    black_box(bytes.expect("read"));
}

async fn put(fx: &Fixture) {
    let mut data = vec![3u8; 1024];
    let n = fx.counter.fetch_add(1, Ordering::Relaxed);
    data[..8].copy_from_slice(&n.to_le_bytes());
    let options = PutOptions::content_type("audio/wav");
    let put = fx
        .store
        .files()
        .put_bytes(Actor::User(fx.user), fx.user, black_box(&data), options)
        .await;
    black_box(put.expect("put"));
}

/// Mean time of `n` runs of `op`.
fn timed(rt: &Runtime, n: usize, mut op: impl AsyncFnMut()) -> Duration {
    let t0 = Instant::now();
    rt.block_on(async {
        for _ in 0..n {
            op().await;
        }
    });
    t0.elapsed() / u32::try_from(n.max(1)).unwrap_or(u32::MAX)
}

/// The timed loop of one operation: `rounds` rounds over the three
/// fixtures in turn; prints the medians and the ratios to `off`.
fn compare(
    rt: &Runtime,
    name: &str,
    n: usize,
    rounds: usize,
    fixtures: &[(Mode, Fixture)],
    mut op: impl AsyncFnMut(&Fixture),
) {
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); fixtures.len()];
    for _ in 0..rounds {
        for (i, (_, fx)) in fixtures.iter().enumerate() {
            times[i].push(timed(rt, n, async || op(fx).await));
        }
    }
    let medians: Vec<Duration> = times.into_iter().map(median).collect();
    let off = medians[0].as_secs_f64().max(1e-12);
    let each: Vec<String> = fixtures
        .iter()
        .zip(&medians)
        .map(|((mode, _), t)| format!("{} {t:.2?}", mode.label()))
        .collect();
    println!(
        "privacy: {name} per call (median of {rounds} rounds of {n}): {}",
        each.join(", ")
    );
    for ((mode, _), t) in fixtures.iter().zip(&medians).skip(1) {
        let r = t.as_secs_f64() / off;
        println!(
            "privacy: {name} {}/off = {r:.2} (target <= {TARGET_RATIO:.2}: {})",
            mode.label(),
            met(r <= TARGET_RATIO)
        );
    }
}

fn bench_overhead(c: &mut Criterion) {
    let rt = Runtime::new().expect("runtime");
    let fixtures: Vec<(Mode, Fixture)> = MODES.iter().map(|&m| (m, fixture(&rt, m))).collect();

    let mut group = c.benchmark_group("get_user_by_id");
    for (mode, fx) in &fixtures {
        group.bench_function(mode.label(), |b| b.iter(|| get_user(fx)));
    }
    group.finish();
    let mut group = c.benchmark_group("read_1KiB");
    for (mode, fx) in &fixtures {
        group.bench_function(mode.label(), |b| b.to_async(&rt).iter(|| read(fx)));
    }
    group.finish();
    let mut group = c.benchmark_group("put_1KiB");
    for (mode, fx) in &fixtures {
        group.bench_function(mode.label(), |b| b.to_async(&rt).iter(|| put(fx)));
    }
    group.finish();

    let rounds = env_count("BV_BENCH_PRIVACY_ROUNDS", 3, 1).max(1);
    let get_n = env_count("BV_BENCH_PRIVACY_GET_N", 100_000, 1000);
    let read_n = env_count("BV_BENCH_PRIVACY_READ_N", 2000, 100);
    let put_n = env_count("BV_BENCH_PRIVACY_PUT_N", 200, 20);
    let t0 = Instant::now();
    compare(
        &rt,
        "get_user_by_id",
        get_n,
        rounds,
        &fixtures,
        async |fx: &Fixture| get_user(fx),
    );
    compare(&rt, "read_1KiB", read_n, rounds, &fixtures, read);
    compare(&rt, "put_1KiB", put_n, rounds, &fixtures, put);
    eprintln!("timed loop took {:.2?}", t0.elapsed());
    rt.block_on(async {
        for (_, fx) in &fixtures {
            fx.store.close().await;
        }
    });
}

// ---------------------------------------------------------------------------
// 2. Erasure of a user with many files
// ---------------------------------------------------------------------------

/// Creates a user with `n` distinct files of pseudo-random bytes; returns
/// the user and one of their files.
async fn populated_user(store: &Store, name: &str, seed: u64, n: usize) -> (UserId, FileId) {
    let user = store.users().create(new_user(name)).await.expect("user").id;
    let started = Instant::now();
    let store2 = store.clone();
    let files = run_concurrent(n, PUTS_IN_FLIGHT, move |i| {
        let store = store2.clone();
        async move {
            let mut data = vec![0u8; ERASE_FILE_BYTES];
            Rng(seed.wrapping_mul(1_000_003).wrapping_add(i as u64)).fill(&mut data);
            let options = PutOptions::content_type("audio/wav");
            let files = store.files();
            let put = files.put_bytes(Actor::User(user), user, &data, options);
            put.await.expect("put").id
        }
    })
    .await;
    eprintln!(
        "populated {name}: {n} files of {ERASE_FILE_BYTES} bytes in {:.2?}",
        started.elapsed()
    );
    (user, files[0])
}

/// Figures of one erasure.
struct Erased {
    /// `erase_user` end to end (or request to last step).
    total: Duration,
    /// From the call until the keys were destroyed.
    keys_after: Duration,
    /// File records removed.
    files: u64,
}

/// `erase_user`, timed; "keys destroyed after" from the report's stamp.
async fn erase_whole(store: &Store, user: UserId) -> Erased {
    let start_ts = Timestamp::now();
    let t0 = Instant::now();
    let report = store.privacy().erase_user(user).await.expect("erase_user");
    let total = t0.elapsed();
    assert!(report.done, "erasure not finished: {report:?}");
    let keys = report.keys_destroyed_at.expect("keys_destroyed_at");
    let after_us = (keys.as_micros() - start_ts.as_micros()).max(0);
    Erased {
        total,
        keys_after: Duration::from_micros(after_us.unsigned_abs()),
        files: report.files,
    }
}

/// The same erasure step-wise: request and first step timed, a read of
/// one of the user's files tried, then `erase_user` for the rest.
async fn erase_stepwise(store: &Store, user: UserId, file: FileId) -> (Erased, bool) {
    let privacy = store.privacy();
    let t0 = Instant::now();
    privacy
        .request_erasure(user)
        .await
        .expect("request_erasure");
    let step = privacy.erase_step(user).await.expect("erase_step");
    let keys_after = t0.elapsed();
    assert_eq!(step, ErasureStep::More, "first step");
    let unreadable = store.files().read(Actor::System, file).await.is_err();
    let t1 = Instant::now();
    let report = privacy.erase_user(user).await.expect("erase_user");
    assert!(report.done, "erasure not finished: {report:?}");
    let total = keys_after + t1.elapsed();
    let erased = Erased {
        total,
        keys_after,
        files: report.files,
    };
    (erased, unreadable)
}

fn bench_erasure(_c: &mut Criterion) {
    let rt = Runtime::new().expect("runtime");
    let n = env_count("BV_BENCH_ERASE_FILES", 1000, 50).max(1);
    let runs = env_count("BV_BENCH_ERASE_RUNS", 3, 1).max(1);
    let dir = temp_dir("bv-privacy-erase");
    let config = Config::new(dir.path())
        .password_cost(8, 1)
        .privacy(PrivacyConfig::default().erasure_interval(Duration::from_secs(86_400)));
    let started = Instant::now();
    let (mut totals, mut keys, mut steps, mut step_totals) = (vec![], vec![], vec![], vec![]);
    rt.block_on(async {
        let store = Store::open(config).await.expect("open");
        for run in 1..=runs {
            let seed = run as u64 * 2;
            let (a, _) = populated_user(&store, &format!("erase{run}a"), seed, n).await;
            let (b, b_file) = populated_user(&store, &format!("erase{run}b"), seed + 1, n).await;
            let whole = erase_whole(&store, a).await;
            let (stepwise, unreadable) = erase_stepwise(&store, b, b_file).await;
            println!(
                "privacy: erase_user {n} files (run {run}): total {:.1} ms, keys destroyed \
                 after {:.1} ms (report stamp), {:.0} files/s; {} file records",
                ms(whole.total),
                ms(whole.keys_after),
                whole.files as f64 / whole.total.as_secs_f64(),
                whole.files,
            );
            println!(
                "privacy: erase step-wise {n} files (run {run}): keys destroyed after {:.1} ms \
                 (request + first step), total {:.1} ms; blob unreadable after the first \
                 step: {}; {} file records",
                ms(stepwise.keys_after),
                ms(stepwise.total),
                if unreadable { "yes" } else { "NO" },
                stepwise.files,
            );
            totals.push(whole.total);
            keys.push(whole.keys_after);
            steps.push(stepwise.keys_after);
            step_totals.push(stepwise.total);
        }
        store.close().await;
    });
    let total = median(totals);
    println!(
        "privacy: erase_user {n} files, median of {runs}: total {:.1} ms, keys destroyed after \
         {:.1} ms (report stamp) / {:.1} ms (step-wise first step), {:.0} files/s; \
         step-wise total {:.1} ms",
        ms(total),
        ms(median(keys)),
        ms(median(steps)),
        n as f64 / total.as_secs_f64(),
        ms(median(step_totals)),
    );
    eprintln!("erasure part took {:.2?}", started.elapsed());
}

fn criterion_config() -> Criterion {
    let secs = env_count("BV_BENCH_PRIVACY_SECS", 3, 1).max(1);
    Criterion::default()
        .without_plots()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(secs as u64))
}

criterion_group! {
    name = benches;
    config = criterion_config();
    targets = bench_overhead, bench_erasure
}
criterion_main!(benches);
