//! The cost of the audit log: the same operations on a store with
//! `AuditConfig::enabled` on and off, measured in the same run.
//!
//! ```text
//! CARGO_TARGET_DIR=target-bench cargo bench --bench privacy
//! ```
//!
//! Groups (each with `audit_on` and `audit_off`):
//!
//! * `get_user_by_id`: an inline point read (nothing is audited; the
//!   control: the ratio should be 1).
//! * `read_1KiB`: `files().read` of a 1 KiB file (the read is noted in
//!   memory; the `audit-reads` job appends it later, outside the timing
//!   unless a flush falls inside a sample).
//! * `put_1KiB`: `put_bytes` of a new 1 KiB file (one audit entry in the
//!   put's transaction). A counter in the first 8 bytes defeats dedup.
//!
//! After the groups, a plain timed loop of each operation prints the
//! on/off ratio, so that one run answers "what does auditing cost".

mod common;

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bharatvoice_store::{Actor, AuditConfig, Config, FileId, NewUser, PutOptions, Store, UserId};
use common::temp_dir;
use criterion::{Criterion, criterion_group, criterion_main};

struct Fixture {
    _dir: tempfile::TempDir,
    store: Store,
    user: UserId,
    file: FileId,
    counter: AtomicU64,
}

fn fixture(rt: &tokio::runtime::Runtime, audit: bool) -> Fixture {
    let dir = temp_dir(if audit {
        "bv-privacy-on"
    } else {
        "bv-privacy-off"
    });
    let config = Config::new(dir.path())
        .password_cost(8, 1)
        .audit(AuditConfig::default().enabled(audit));
    rt.block_on(async {
        let store = Store::open(config).await.expect("open");
        let user = store
            .users()
            .create(NewUser::new("bench", "bench@example.in"))
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
fn timed(rt: &tokio::runtime::Runtime, n: u32, mut op: impl AsyncFnMut()) -> Duration {
    let t0 = Instant::now();
    rt.block_on(async {
        for _ in 0..n {
            op().await;
        }
    });
    t0.elapsed() / n
}

fn bench_privacy(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let on = fixture(&rt, true);
    let off = fixture(&rt, false);
    let both = [("audit_on", &on), ("audit_off", &off)];

    let mut group = c.benchmark_group("get_user_by_id");
    for (label, fx) in both {
        group.bench_function(label, |b| b.iter(|| get_user(fx)));
    }
    group.finish();
    let mut group = c.benchmark_group("read_1KiB");
    for (label, fx) in both {
        group.bench_function(label, |b| b.to_async(&rt).iter(|| read(fx)));
    }
    group.finish();
    let mut group = c.benchmark_group("put_1KiB");
    group.sample_size(20);
    for (label, fx) in both {
        group.bench_function(label, |b| b.to_async(&rt).iter(|| put(fx)));
    }
    group.finish();

    let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64().max(1e-12);
    let get = ratio(
        timed(&rt, 100_000, async || get_user(&on)),
        timed(&rt, 100_000, async || get_user(&off)),
    );
    let reads = ratio(
        timed(&rt, 2_000, async || read(&on).await),
        timed(&rt, 2_000, async || read(&off).await),
    );
    let puts = ratio(
        timed(&rt, 200, async || put(&on).await),
        timed(&rt, 200, async || put(&off).await),
    );
    println!(
        "audit on / off: get_user_by_id {get:.2}x, read_1KiB {reads:.2}x, put_1KiB {puts:.2}x"
    );
    rt.block_on(async {
        on.store.close().await;
        off.store.close().await;
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().without_plots();
    targets = bench_privacy
}
criterion_main!(benches);
