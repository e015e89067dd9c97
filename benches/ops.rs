//! Operations at scale: a full backup of a large store against `cp -a` of
//! the same data directory on the same disk, an incremental backup after
//! 1 % more data against that full backup, and the latency of
//! `store.health()`.
//!
//! ```text
//! CARGO_TARGET_DIR=target-bench cargo bench --bench ops
//! BV_BENCH_OPS_USERS=2000 BV_BENCH_OPS_MIB=64 CARGO_TARGET_DIR=target-bench cargo bench --bench ops
//! ```
//!
//! Sizes (`_` allowed as a separator):
//!
//! * `BV_BENCH_OPS_USERS` (default 100 000): users, created by 64
//!   concurrent callers with `AudioStorage` consent (so each has a
//!   profile) and a password hashed at `password_cost(8, 1)`. On the
//!   shared 2-core machine, busy with a compile, 100 000 took 22.5 s
//!   (4 400 users/s) and the whole setup with 1 GiB of clips 31 s.
//! * `BV_BENCH_OPS_MIB` (default 1024): MiB of blobs, in clips of exactly
//!   1 MiB of pseudo-random (incompressible, all distinct) bytes, stored as
//!   `audio/ogg` with default options (encrypted; not compressed, as Ogg is
//!   taken to be compressed already) by 4 concurrent puts, spread over the
//!   users round-robin.
//! * `BV_BENCH_OPS_RUNS` (default 3): timed runs of each measurement.
//!
//! Run as a test (`cargo test --benches`, no `--bench` argument) the
//! defaults are 500 users, 8 MiB and one run.
//!
//! Everything lives under one temporary directory (`BV_BENCH_DIR` chooses
//! its parent), so the store, the backups and the copies share one disk.
//! The store is opened with `Config::new(dir).master_key(key)
//! .password_cost(8, 1)` and stays open throughout (a backup is taken from
//! an open store; `cp -a` copies the same directory while it is open and
//! idle).
//!
//! One-shot measurements (each run is too long for criterion's sampling);
//! figures and ratios are printed on stderr as `ops/...` lines and tables:
//!
//! 1. `ops/full`: first one untimed `cp -a` of the data directory (it
//!    brings every blob file into the page cache: puts of more than 1 MiB
//!    stored write around it), then `BV_BENCH_OPS_RUNS` rounds of, in this
//!    order, each into a new directory beside the store and deleted after
//!    it (outside the timing), with a `syncfs` before each so that no
//!    earlier write-back runs into it:
//!    * `cp -a DATA DEST`, timed alone and then until a `syncfs` of the
//!      destination returns (`cp -a + syncfs`: the backup syncs its
//!      destination's file system once before it writes its manifest, so
//!      this is the like-for-like peer; both are printed);
//!    * `store.backup(dest, BackupOptions { no_links: true, .. })`: every
//!      blob file copied (and hashed) plus a snapshot of the metadata;
//!    * `store.backup(dest, BackupOptions::default())`: blob files
//!      hard-linked (no bytes written, each still read once for its
//!      SHA-256), printed apart: it is not comparable with a copy.
//!
//!    Throughput = bytes written / wall time: for `cp -a` the apparent size
//!    of every file under the data directory (`store.redb`, `cache.redb`,
//!    blob files, ...), for a backup `bytes_copied + metadata_bytes` of its
//!    report (the snapshot is a fresh redb file, which can be smaller than
//!    the live `store.redb`). The figure against the target is median
//!    backup throughput / median `cp -a` throughput (target ≥ 0.8). For
//!    context, the stage limit of the backup's own work is printed too:
//!    SHA-256 of 64 MiB in memory on one thread (`sha2`, as the backup
//!    hashes every file it copies).
//! 2. `ops/incremental`: 1 % more users and 1 % more clips (rounded up) are
//!    added; then, `BV_BENCH_OPS_RUNS` times, a hard-linked copy (`cp -al`,
//!    untimed) of the last full `no_links` destination of part 1 receives
//!    a `no_links` backup (generation 2: every old blob skipped, the new
//!    ones copied, and of the metadata only the pages of `store.redb`
//!    written since the full backup, a delta on its chain). Figure:
//!    median incremental time / median full `no_links` time (target
//!    ≤ 0.05).
//! 3. `ops/restore` (not a target, a check that the backup restores): one
//!    `Store::restore` of that full generation into a new directory, timed,
//!    then the restored store is opened and one user read.
//! 4. `ops/verify_deep`: `verify --deep` against the blob read limit
//!    (every file read back through `files().read`, warm cache); see
//!    [`verify_deep`] (target ≥ 0.8).
//! 5. `ops/health`: 1000 sequential `store.health()` calls on the idle
//!    store (p50, p99, max; target ≤ 10 ms), then one probe every 10 ms
//!    while an extra `no_links` backup runs (same figures; not a target).
//! 6. `ops/pause` (not a target): a linked backup into a new destination
//!    while 8 tasks keep creating users, 300 ms of creates before and
//!    after it: how long writes waited for the backup's last pages
//!    (`writes_paused_us`) and the creates' latency over the whole run.
//!
//! Criterion group: `ops/health`, the mean of `store.health()` on the idle
//! store, one caller; `ops/admin_socket_health`, the same probe asked
//! through the admin socket (the round trip `bvstore health` makes while an
//! application holds the store). A criterion filter selects it only; the one-shot
//! measurements always run.

mod common;

use common::{Rng, run_concurrent, temp_dir};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bharatvoice_store::{
    Actor, BackupOptions, BackupReport, Config, ConsentKind, HealthStatus, MasterKey, NewUser,
    PutOptions, RestoreOptions, Store, UserId,
};
use criterion::{Criterion, criterion_group, criterion_main};
use tokio::runtime::Runtime;

/// Plaintext bytes of one clip.
const CLIP: usize = 1 << 20;
/// Seed of the first clip's bytes (clip `k` uses `CLIP_SEED + k`).
const CLIP_SEED: u64 = 0x0B5E_55ED;
/// User creates in flight while populating.
const USERS_IN_FLIGHT: usize = 64;
/// Puts in flight while populating.
const PUTS_IN_FLIGHT: usize = 4;
/// Sequential `health()` calls of the latency figure.
const HEALTH_CALLS: usize = 1000;
/// Interval of the health probes during a backup.
const PROBE_EVERY: Duration = Duration::from_millis(10);
/// Target: backup throughput / `cp -a` throughput.
const TARGET_BACKUP_VS_CP: f64 = 0.8;
/// Target: incremental backup time / full backup time.
const TARGET_INCREMENTAL: f64 = 0.05;
/// Target: `health()` latency.
const TARGET_HEALTH: Duration = Duration::from_millis(10);

const MIB: f64 = (1u64 << 20) as f64;

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// True when run by `cargo bench` (criterion's `--bench` argument), false
/// under `cargo test --benches`.
fn benchmarking() -> bool {
    std::env::args().any(|a| a == "--bench")
}

/// A number from an environment variable, `_` allowed as a separator.
fn env_count(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(v) => v
            .replace('_', "")
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a number")),
        Err(_) => default,
    }
}

struct Sizes {
    users: usize,
    clips: usize,
    runs: usize,
}

fn sizes() -> Sizes {
    let full = benchmarking();
    Sizes {
        users: env_count("BV_BENCH_OPS_USERS", if full { 100_000 } else { 500 }).max(1),
        clips: env_count("BV_BENCH_OPS_MIB", if full { 1024 } else { 8 }).max(1),
        runs: env_count("BV_BENCH_OPS_RUNS", if full { 3 } else { 1 }).max(1),
    }
}

fn met(ok: bool) -> &'static str {
    if ok { "MET" } else { "NOT MET" }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn mib_per_s(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / MIB / d.as_secs_f64()
}

fn median(v: &[Duration]) -> Duration {
    let mut v = v.to_vec();
    v.sort_unstable();
    v[v.len() / 2]
}

/// 1 % of `n`, rounded up.
fn one_percent(n: usize) -> usize {
    n.div_ceil(100)
}

/// Makes everything written on `dir`'s file system durable (what the
/// backup does once before its manifest).
fn sync_fs(dir: &Path) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let d = std::fs::File::open(dir).expect("opening a directory to sync");
        // SAFETY: `d` is an open descriptor for the whole call.
        let rc = unsafe { libc::syncfs(d.as_raw_fd()) };
        assert_eq!(rc, 0, "syncfs {}", dir.display());
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = dir;
        run(Command::new("sync"));
    }
}

fn run(mut cmd: Command) {
    let status = cmd.status().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(status.success(), "{cmd:?}: {status}");
}

/// `cp -a from to` (or `-al`: hard links).
fn cp(flags: &str, from: &Path, to: &Path) {
    let mut cmd = Command::new("cp");
    cmd.arg(flags).arg(from).arg(to);
    run(cmd);
}

fn remove(dir: &Path) {
    std::fs::remove_dir_all(dir).unwrap_or_else(|e| panic!("removing {}: {e}", dir.display()));
}

/// Files and apparent bytes under `dir`.
fn tree_size(dir: &Path) -> (u64, u64) {
    let (mut files, mut bytes) = (0, 0);
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read_dir") {
            let entry = entry.expect("dir entry");
            let m = std::fs::symlink_metadata(entry.path()).expect("metadata");
            if m.is_dir() {
                stack.push(entry.path());
            } else if m.is_file() {
                files += 1;
                bytes += m.len();
            }
        }
    }
    (files, bytes)
}

fn file_len(path: &Path) -> u64 {
    std::fs::symlink_metadata(path).map_or(0, |m| m.len())
}

/// p50, p99 and max of some latencies.
fn latencies(v: &mut [Duration]) -> (Duration, Duration, Duration) {
    v.sort_unstable();
    let at = |q: f64| v[((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1];
    (at(0.50), at(0.99), v[v.len() - 1])
}

// ---------------------------------------------------------------------------
// Store setup
// ---------------------------------------------------------------------------

struct Fixture {
    /// Dropped before `root` (fields drop in order).
    store: Store,
    data: PathBuf,
    key: MasterKey,
    users: Vec<UserId>,
    /// Clips stored so far.
    clips: usize,
    /// Everything: the store, backups, copies.
    root: tempfile::TempDir,
}

fn config(data: &Path, key: &MasterKey) -> Config {
    Config::new(data)
        .master_key(key.clone())
        .password_cost(8, 1)
}

impl Fixture {
    async fn new() -> Fixture {
        let root = temp_dir("bv-ops");
        let data = root.path().join("data");
        let key = MasterKey::generate().expect("master key");
        let store = Store::open(config(&data, &key))
            .await
            .expect("opening the store");
        Fixture {
            store,
            data,
            key,
            users: Vec::new(),
            clips: 0,
            root,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.root.path().join(name)
    }

    /// Creates `n` more users.
    async fn add_users(&mut self, n: usize) {
        let (store, from) = (self.store.clone(), self.users.len());
        let start = Instant::now();
        let ids = run_concurrent(n, USERS_IN_FLIGHT, move |i| {
            let store = store.clone();
            async move {
                let name = format!("ops{:07}", from + i);
                store
                    .users()
                    .create(
                        NewUser::new(&name, format!("{name}@bench.example.in"))
                            .consent(ConsentKind::AudioStorage),
                    )
                    .await
                    .expect("create user")
                    .id
            }
        })
        .await;
        let took = start.elapsed();
        self.users.extend(ids);
        eprintln!(
            "setup: created {n} users in {took:.2?} = {:.0} users/s ({USERS_IN_FLIGHT} in flight)",
            n as f64 / took.as_secs_f64()
        );
    }

    /// Puts `n` more clips of `CLIP` distinct pseudo-random bytes.
    async fn add_clips(&mut self, n: usize) {
        let (store, from) = (self.store.clone(), self.clips);
        let users = Arc::new(self.users.clone());
        let start = Instant::now();
        run_concurrent(n, PUTS_IN_FLIGHT, move |i| {
            let (store, users) = (store.clone(), Arc::clone(&users));
            async move {
                let k = from + i;
                let owner = users[k % users.len()];
                let mut clip = vec![0u8; CLIP];
                Rng(CLIP_SEED + k as u64).fill(&mut clip);
                store
                    .files()
                    .put_bytes(
                        Actor::User(owner),
                        owner,
                        &clip,
                        PutOptions::content_type("audio/ogg"),
                    )
                    .await
                    .expect("populate put");
            }
        })
        .await;
        let took = start.elapsed();
        self.clips += n;
        eprintln!(
            "setup: put {n} clips of {} KiB in {took:.2?} = {:.0} MiB/s ({PUTS_IN_FLIGHT} in flight)",
            CLIP >> 10,
            mib_per_s((n * CLIP) as u64, took)
        );
    }

    /// One backup into `dest`, timed (wall clock around the call).
    async fn backup(&self, dest: &Path, no_links: bool) -> (Duration, BackupReport) {
        let start = Instant::now();
        let report = self
            .store
            .backup(
                dest,
                BackupOptions {
                    no_links,
                    ..Default::default()
                },
            )
            .await
            .expect("backup");
        (start.elapsed(), report)
    }
}

/// Bytes a backup wrote: blob files copied and the metadata (store.redb).
fn written(r: &BackupReport) -> u64 {
    r.bytes_copied + r.metadata_bytes
}

// ---------------------------------------------------------------------------
// 1. Full backup against cp -a
// ---------------------------------------------------------------------------

struct Full {
    /// Median time of the full `no_links` backups.
    backup: Duration,
    /// The last full `no_links` destination, kept for the incremental part.
    base: PathBuf,
}

fn full(rt: &Runtime, fx: &Fixture, sz: &Sizes) -> Full {
    let (files, data_bytes) = tree_size(&fx.data);
    let (blob_files, blob_bytes) = tree_size(&fx.data.join("blobs"));
    eprintln!(
        "ops/full: data directory {:.1} MiB in {files} files: blob files {:.1} MiB in {blob_files}, \
         store.redb {:.1} MiB, cache.redb {:.1} MiB",
        data_bytes as f64 / MIB,
        blob_bytes as f64 / MIB,
        file_len(&fx.data.join("store.redb")) as f64 / MIB,
        file_len(&fx.data.join("cache.redb")) as f64 / MIB,
    );

    // Warm: every blob file into the page cache (puts wrote around it).
    let warm = fx.path("warm");
    let start = Instant::now();
    cp("-a", &fx.data, &warm);
    remove(&warm);
    sync_fs(fx.root.path());
    eprintln!(
        "ops/full: warm-up cp -a (untimed) and removal took {:.2?}",
        start.elapsed()
    );

    let (mut cps, mut cp_syncs, mut backups, mut linkeds) = (vec![], vec![], vec![], vec![]);
    let (mut backup_bytes, mut linked_report, mut paused_us) = (0, None, Vec::new());
    let mut base = PathBuf::new();
    eprintln!(
        "ops/full: {:>3} | {:>11} | {:>14} | {:>14} | {:>14}",
        "run", "cp -a", "cp -a + syncfs", "backup (copy)", "backup (link)"
    );
    for r in 0..sz.runs {
        let dest = fx.path("cp");
        sync_fs(fx.root.path());
        let start = Instant::now();
        cp("-a", &fx.data, &dest);
        let cp_took = start.elapsed();
        sync_fs(&dest);
        let cp_sync_took = start.elapsed();
        remove(&dest);

        let dest = fx.path(&format!("full-{r}"));
        sync_fs(fx.root.path());
        let (took, report) = rt.block_on(fx.backup(&dest, true));
        assert_eq!(report.generation, 1);
        assert_eq!(report.blobs_copied, fx.clips as u64, "{report:?}");
        assert_eq!(report.blobs_linked + report.blobs_skipped, 0, "{report:?}");
        assert!(report.missing.is_empty(), "{report:?}");
        backup_bytes = written(&report);
        paused_us.push(report.writes_paused_us);
        if r + 1 == sz.runs {
            base = dest;
        } else {
            remove(&dest);
        }

        let dest = fx.path("linked");
        sync_fs(fx.root.path());
        let (linked_took, report) = rt.block_on(fx.backup(&dest, false));
        assert_eq!(
            report.blobs_linked + report.blobs_copied,
            fx.clips as u64,
            "{report:?}"
        );
        remove(&dest);
        linked_report = Some(report);

        eprintln!(
            "ops/full: {:>3} | {:>8.1} ms | {:>11.1} ms | {:>11.1} ms | {:>11.1} ms",
            r + 1,
            ms(cp_took),
            ms(cp_sync_took),
            ms(took),
            ms(linked_took)
        );
        cps.push(cp_took);
        cp_syncs.push(cp_sync_took);
        backups.push(took);
        linkeds.push(linked_took);
    }
    let (cp_m, cp_sync_m, backup_m, linked_m) = (
        median(&cps),
        median(&cp_syncs),
        median(&backups),
        median(&linkeds),
    );
    eprintln!(
        "ops/full: med | {:>8.1} ms | {:>11.1} ms | {:>11.1} ms | {:>11.1} ms",
        ms(cp_m),
        ms(cp_sync_m),
        ms(backup_m),
        ms(linked_m)
    );
    let cp_rate = mib_per_s(data_bytes, cp_m);
    let cp_sync_rate = mib_per_s(data_bytes, cp_sync_m);
    let backup_rate = mib_per_s(backup_bytes, backup_m);
    eprintln!(
        "ops/full: throughput (medians): cp -a {cp_rate:.0} MiB/s, cp -a + syncfs \
         {cp_sync_rate:.0} MiB/s ({:.1} MiB each), backup (copy) {backup_rate:.0} MiB/s \
         ({:.1} MiB written: blob files + store.redb)",
        data_bytes as f64 / MIB,
        backup_bytes as f64 / MIB,
    );
    eprintln!(
        "ops/full: backup (copy): writes waited {:?} µs per run (the pages of store.redb \
         written while the rest was copied, copied again between two commits)",
        paused_us
    );
    if let Some(l) = linked_report {
        eprintln!(
            "ops/full: backup (link): {} blob files linked ({:.1} MiB, no bytes written), {} copied, \
             store.redb {:.1} MiB; {:.0} MiB/s of blob files placed (each read once for its \
             SHA-256), not comparable with a copy",
            l.blobs_linked,
            l.bytes_linked as f64 / MIB,
            l.blobs_copied,
            l.metadata_bytes as f64 / MIB,
            mib_per_s(l.bytes_linked + l.bytes_copied, linked_m),
        );
    }
    let sha = sha256_rate();
    eprintln!(
        "ops/full: stage limit: SHA-256 in memory, one thread: {sha:.0} MiB/s (a backup reads, \
         hashes and writes each blob file on one thread)"
    );
    let ratio = backup_rate / cp_rate;
    eprintln!(
        "ops/full: backup / cp -a throughput = {ratio:.2} (target ≥ {TARGET_BACKUP_VS_CP}: {}); \
         backup / (cp -a + syncfs) = {:.2}; time ratio backup / cp -a = {:.2}",
        met(ratio >= TARGET_BACKUP_VS_CP),
        backup_rate / cp_sync_rate,
        backup_m.as_secs_f64() / cp_m.as_secs_f64(),
    );
    Full {
        backup: backup_m,
        base,
    }
}

/// SHA-256 of 64 MiB in memory (one clip hashed 64 times), one thread.
fn sha256_rate() -> f64 {
    use sha2::{Digest, Sha256};
    let mut clip = vec![0u8; CLIP];
    Rng(CLIP_SEED).fill(&mut clip);
    let start = Instant::now();
    let mut h = Sha256::new();
    for _ in 0..64 {
        h.update(&clip);
    }
    std::hint::black_box(h.finalize());
    mib_per_s(64 * CLIP as u64, start.elapsed())
}

// ---------------------------------------------------------------------------
// 2. Incremental backup
// ---------------------------------------------------------------------------

fn incremental(rt: &Runtime, fx: &mut Fixture, sz: &Sizes, full: &Full) {
    let (old_clips, new_clips, new_users) =
        (fx.clips, one_percent(fx.clips), one_percent(fx.users.len()));
    rt.block_on(async {
        fx.add_users(new_users).await;
        fx.add_clips(new_clips).await;
    });
    let mut times = Vec::new();
    let mut last = None;
    for r in 0..sz.runs {
        let dest = fx.path("incremental");
        cp("-al", &full.base, &dest);
        sync_fs(fx.root.path());
        let (took, report) = rt.block_on(fx.backup(&dest, true));
        assert_eq!(report.generation, 2, "{report:?}");
        assert_eq!(report.blobs_skipped, old_clips as u64, "{report:?}");
        assert_eq!(report.blobs_copied, new_clips as u64, "{report:?}");
        assert_eq!(
            report.metadata_parts, 3,
            "a delta on the full's chain: {report:?}"
        );
        remove(&dest);
        eprintln!(
            "ops/incremental: run {}: {:.1} ms ({} blob files copied, {:.1} MiB; {} skipped; \
             metadata delta {:.2} MiB; writes waited {:.2} ms)",
            r + 1,
            ms(took),
            report.blobs_copied,
            report.bytes_copied as f64 / MIB,
            report.blobs_skipped,
            report.metadata_bytes as f64 / MIB,
            report.writes_paused_us as f64 / 1000.0,
        );
        times.push(took);
        last = Some(report);
    }
    let m = median(&times);
    let ratio = m.as_secs_f64() / full.backup.as_secs_f64();
    eprintln!(
        "ops/incremental: +{new_users} users, +{new_clips} clips (1 %); median {:.1} ms against \
         {:.1} ms for the full backup (copy): ratio {ratio:.3} (target ≤ {TARGET_INCREMENTAL}: {})",
        ms(m),
        ms(full.backup),
        met(ratio <= TARGET_INCREMENTAL),
    );
    if let Some(r) = last {
        eprintln!(
            "ops/incremental: the metadata is a delta ({:.2} MiB: the pages of store.redb written \
             since the full backup); the new blob files are {:.1} MiB",
            r.metadata_bytes as f64 / MIB,
            r.bytes_copied as f64 / MIB,
        );
    }
}

// ---------------------------------------------------------------------------
// 3. Restore
// ---------------------------------------------------------------------------

fn restore(rt: &Runtime, fx: &Fixture, full: &Full) {
    let target = fx.path("restored");
    let config = config(&target, &fx.key);
    sync_fs(fx.root.path());
    let start = Instant::now();
    let report = rt
        .block_on(Store::restore(
            &full.base,
            &config,
            RestoreOptions::default(),
        ))
        .expect("restore");
    let took = start.elapsed();
    let check = fx.users[0];
    rt.block_on(async {
        let restored = Store::open(config)
            .await
            .expect("opening the restored store");
        restored.users().get(check).expect("a user of the backup");
        restored.close().await;
    });
    remove(&target);
    eprintln!(
        "ops/restore: generation {} ({} blobs, {:.1} MiB) restored in {:.1} ms = {:.0} MiB/s \
         (every file hashed before and while it is copied; one open at the end); opened, user read",
        report.generation,
        report.blobs,
        report.bytes as f64 / MIB,
        ms(took),
        mib_per_s(report.bytes, took),
    );
}

// ---------------------------------------------------------------------------
// 4. Health
// ---------------------------------------------------------------------------

/// `verify --deep` against the blob read limit: every stored file read
/// back through `files().read` (decrypt, authenticate, decompress), one
/// after another, then one deep verify (every blob read, authenticated and
/// its SHA-256 checked, plus the metadata checks). Both run on a warm page
/// cache (a first read pass warms it). Figure: verify plain bytes/s ÷ read
/// plain bytes/s (target ≥ 0.8).
fn verify_deep(rt: &Runtime, fx: &Fixture) {
    use bharatvoice_store::{ListOptions, VerifyOptions};
    let ids = rt.block_on(async {
        let mut ids = Vec::new();
        for owner in fx.users.iter().take(fx.clips) {
            let mut options = ListOptions::first(1000);
            loop {
                let page = fx
                    .store
                    .file_records()
                    .list_by_owner(*owner, options.clone())
                    .await
                    .expect("list");
                ids.extend(page.items.iter().map(|f| f.id));
                match page.next {
                    Some(c) => options = ListOptions::after(c, 1000),
                    None => break,
                }
            }
        }
        ids
    });
    let read_all = || {
        rt.block_on(async {
            let t = Instant::now();
            let mut bytes = 0u64;
            for id in &ids {
                bytes += fx
                    .store
                    .files()
                    .read(Actor::System, *id)
                    .await
                    .expect("read")
                    .len() as u64;
            }
            (bytes, t.elapsed())
        })
    };
    let _warm = read_all();
    let (bytes, read_took) = read_all();
    let t = Instant::now();
    let report = rt
        .block_on(fx.store.verify(VerifyOptions {
            deep: true,
            ..Default::default()
        }))
        .expect("verify");
    let verify_took = t.elapsed();
    assert!(report.is_clean(), "{report:?}");
    let read_mib_s = bytes as f64 / (1 << 20) as f64 / read_took.as_secs_f64();
    let verify_mib_s = bytes as f64 / (1 << 20) as f64 / verify_took.as_secs_f64();
    eprintln!(
        "ops/verify_deep: {} files, {:.1} MiB: files().read of each {:.2?} = {read_mib_s:.0} MiB/s; \
         verify --deep {:.2?} = {verify_mib_s:.0} MiB/s ({} blobs read); ratio {:.2} (target ≥ 0.8)",
        ids.len(),
        bytes as f64 / (1 << 20) as f64,
        read_took,
        verify_took,
        report.blobs_read,
        verify_mib_s / read_mib_s
    );
}

fn health(rt: &Runtime, fx: &Fixture) {
    let h = rt.block_on(fx.store.health());
    eprintln!(
        "ops/health: status {} [{}]",
        h.status,
        h.parts
            .iter()
            .map(|p| format!("{}={} {}µs", p.part, p.status, p.took_us))
            .collect::<Vec<_>>()
            .join(", ")
    );
    if h.status != HealthStatus::Healthy {
        eprintln!("ops/health: NOTE: not healthy: {h:?}");
    }

    let mut idle: Vec<Duration> = rt.block_on(async {
        let mut v = Vec::with_capacity(HEALTH_CALLS);
        for _ in 0..HEALTH_CALLS {
            let t = Instant::now();
            std::hint::black_box(fx.store.health().await);
            v.push(t.elapsed());
        }
        v
    });
    let (p50, p99, max) = latencies(&mut idle);
    eprintln!(
        "ops/health: idle, {HEALTH_CALLS} calls: p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms \
         (target ≤ {} ms: p99 {}, max {})",
        ms(p50),
        ms(p99),
        ms(max),
        ms(TARGET_HEALTH),
        met(p99 <= TARGET_HEALTH),
        met(max <= TARGET_HEALTH),
    );

    // While a backup runs.
    let dest = fx.path("probed");
    sync_fs(fx.root.path());
    let (mut during, took) = rt.block_on(async {
        let stop = Arc::new(AtomicBool::new(false));
        let prober = tokio::spawn({
            let (store, stop) = (fx.store.clone(), Arc::clone(&stop));
            async move {
                let mut v = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    std::hint::black_box(store.health().await);
                    v.push(t.elapsed());
                    tokio::time::sleep(PROBE_EVERY).await;
                }
                v
            }
        });
        let (took, _) = fx.backup(&dest, true).await;
        stop.store(true, Ordering::Relaxed);
        (prober.await.expect("prober"), took)
    });
    remove(&dest);
    let n = during.len();
    let (p50, p99, max) = latencies(&mut during);
    eprintln!(
        "ops/health: during a backup (copy) of {:.1} ms, {n} probes: p50 {:.3} ms, p99 {:.3} ms, \
         max {:.3} ms",
        ms(took),
        ms(p50),
        ms(p99),
        ms(max),
    );
}

// ---------------------------------------------------------------------------

// ---------------------------------------------------------------------------
// 6. Writes waiting for a backup
// ---------------------------------------------------------------------------

/// How long writes wait for a backup while 8 tasks keep creating users:
/// the backup's `writes_paused_us` (its last pages copied between two
/// commits) and the create latencies the writers saw over the whole run.
fn pause_under_writes(rt: &Runtime, fx: &Fixture) {
    const WRITERS: usize = 8;
    let dest = fx.path("paused");
    rt.block_on(async {
        let stop = Arc::new(AtomicBool::new(false));
        let mut tasks = Vec::new();
        for t in 0..WRITERS {
            let (store, stop) = (fx.store.clone(), Arc::clone(&stop));
            tasks.push(tokio::spawn(async move {
                let mut took = Vec::new();
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    let name = format!("pause{t}x{i:07}");
                    i += 1;
                    let start = Instant::now();
                    store
                        .users()
                        .create(NewUser::new(&name, format!("{name}@bench.example.in")))
                        .await
                        .expect("create a user");
                    took.push(start.elapsed());
                }
                took
            }));
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        let (backup_took, report) = fx.backup(&dest, false).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        stop.store(true, Ordering::Relaxed);
        let mut took = Vec::new();
        for t in tasks {
            took.extend(t.await.expect("a writer"));
        }
        took.sort_unstable();
        let at = |q: f64| took[((took.len() - 1) as f64 * q) as usize];
        eprintln!(
            "ops/pause: a backup (link, {} parts) of {:.1} ms while {WRITERS} tasks created \
             users: writes waited {:.2} ms for it; {} creates, latency p50 {:.2} ms, p99 {:.2} ms, \
             max {:.2} ms",
            report.metadata_parts,
            ms(backup_took),
            report.writes_paused_us as f64 / 1000.0,
            took.len(),
            ms(at(0.5)),
            ms(at(0.99)),
            ms(at(1.0)),
        );
    });
    remove(&dest);
}

fn bench_ops(c: &mut Criterion) {
    let sz = sizes();
    eprintln!(
        "ops: {} users (BV_BENCH_OPS_USERS), {} MiB in {} clips of {} KiB (BV_BENCH_OPS_MIB), \
         {} runs (BV_BENCH_OPS_RUNS)",
        sz.users,
        (sz.clips * CLIP) >> 20,
        sz.clips,
        CLIP >> 10,
        sz.runs
    );
    let rt = runtime();
    let start = Instant::now();
    let mut fx = rt.block_on(async {
        let mut fx = Fixture::new().await;
        fx.add_users(sz.users).await;
        fx.add_clips(sz.clips).await;
        fx
    });
    eprintln!(
        "setup: done in {:.2?} (under {})",
        start.elapsed(),
        fx.root.path().display()
    );

    let start = Instant::now();
    let full = full(&rt, &fx, &sz);
    eprintln!("ops/full: part done in {:.2?}", start.elapsed());
    let start = Instant::now();
    incremental(&rt, &mut fx, &sz, &full);
    eprintln!("ops/incremental: part done in {:.2?}", start.elapsed());
    let start = Instant::now();
    restore(&rt, &fx, &full);
    remove(&full.base);
    eprintln!("ops/restore: part done in {:.2?}", start.elapsed());
    let start = Instant::now();
    verify_deep(&rt, &fx);
    eprintln!("ops/verify_deep: part done in {:.2?}", start.elapsed());
    let start = Instant::now();
    health(&rt, &fx);
    eprintln!("ops/health: part done in {:.2?}", start.elapsed());
    let start = Instant::now();
    pause_under_writes(&rt, &fx);
    eprintln!("ops/pause: part done in {:.2?}", start.elapsed());

    let mut group = c.benchmark_group("ops");
    group.bench_function("health", |b| b.to_async(&rt).iter(|| fx.store.health()));
    // The same probe asked through the admin socket, as `bvstore health`
    // does while an application holds the store: connect, one JSON line
    // each way, the probe, close.
    let client = bharatvoice_store::AdminClient::new(&fx.store.config().data_dir);
    group.bench_function("admin_socket_health", |b| {
        b.to_async(&rt).iter(|| async {
            client
                .request(&bharatvoice_store::AdminRequest::Health)
                .await
                .expect("the admin socket answers")
        })
    });
    group.finish();

    let start = Instant::now();
    rt.block_on(fx.store.close());
    drop(fx);
    eprintln!(
        "teardown: closing and removing the store took {:.2?}",
        start.elapsed()
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default().without_plots();
    targets = bench_ops
}
criterion_main!(benches);
