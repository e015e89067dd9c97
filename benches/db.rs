//! Store vs SQLite, measured in the same run.
//!
//! ```text
//! CARGO_TARGET_DIR=target-bench cargo bench --bench db
//! BV_BENCH_ROWS=1_000_000 CARGO_TARGET_DIR=target-bench cargo bench --bench db
//! ```
//!
//! Both sides run on the same disk (a temporary directory; `BV_BENCH_DIR`
//! chooses its parent) with durable commits:
//!
//! * **redb** is this crate's [`Store`], opened with
//!   `Config::new(dir).password_cost(8, 1)` (other settings default: 64 MiB
//!   page cache, group commit of up to 512 requests).
//! * **SQLite** is rusqlite's bundled build with `journal_mode=WAL`,
//!   `synchronous=FULL` and a 64 MiB page cache (`cache_size=-65536`, the
//!   same budget as redb's). Its schema mirrors the redb tables: `users`
//!   and `sessions` are `WITHOUT ROWID` tables clustered on the 16-byte
//!   UUID v7 id, as redb's are on the `u128` id; `UNIQUE(username)`,
//!   `UNIQUE(email)` and `sessions(user_id, last_active_at)` are the
//!   secondary indexes. A lookup through an index is thus two B-tree
//!   descents on both sides.
//!
//! Groups:
//!
//! 1. `create_user/one_caller`: one durable user create at a time.
//! 2. `create_user/64_callers`: 64 tokio tasks (redb) or 64 OS threads with
//!    a connection each (SQLite, autocommit `INSERT`s, `busy_timeout` set)
//!    share `iters` creates; throughput in elements (users) per second.
//! 3. `get_by_id`, `get_by_username`: point reads on a table of
//!    `BV_BENCH_ROWS` users (default 100 000), at pseudo-random keys.
//! 4. `list_sessions_20_newest`: the 20 most recently active sessions of a
//!    user who has 1000 of the 100 000 sessions (`BV_BENCH_SESSIONS`).
//! 5. `read_placement`: a `spawn_blocking` hop against an inline point read,
//!    both measured from inside a task on a runtime worker thread.
//! 6. `open_close`: `Store::open` then `close` of the `BV_BENCH_ROWS`-user
//!    store, with every page checksum verified at open (the default) and
//!    without; against SQLite's open plus one point read, and its
//!    `PRAGMA quick_check` (SQLite's own whole-file check).
//!
//! Results and their reading: `docs/BENCHMARKS.md`.

mod common;

use common::{run_concurrent, temp_dir};
use std::future::Future;
use std::hint::black_box;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

use bharatvoice_store::{Config, LanguageTag, NewUser, Store, UserId};
use criterion::{Bencher, Criterion, Throughput, criterion_group, criterion_main};
use rusqlite::{Connection, ErrorCode, Row, params};
use tokio::runtime::Runtime;

/// Samples per benchmark (kept small: the machine is shared).
const SAMPLES: usize = 20;
/// Measurement time per benchmark.
const MEASURE: Duration = Duration::from_secs(5);
/// Warm-up time per benchmark.
const WARM_UP: Duration = Duration::from_secs(1);
/// Concurrent callers in `create_user/64_callers`.
const CALLERS: usize = 64;
/// Requests in flight while populating the redb store.
const POPULATE_IN_FLIGHT: usize = 256;
/// Users owning the sessions of `list_sessions_20_newest`.
const SESSION_USERS: usize = 1000;
/// One session in this many belongs to the measured user.
const MEASURED_USER_EVERY: usize = 100;

// ---------------------------------------------------------------------------
// Shared helpers
// ---------------------------------------------------------------------------

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
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

/// Page cache of both sides: `BV_DB_CACHE_BYTES`, default 64 MiB.
fn cache_bytes() -> usize {
    std::env::var("BV_DB_CACHE_BYTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64 << 20)
}

async fn open_store(dir: &Path) -> Store {
    Store::open(
        Config::new(dir)
            .password_cost(8, 1)
            .db_cache_bytes(cache_bytes()),
    )
    .await
    .expect("opening the store")
}

fn username(prefix: &str, n: u64) -> String {
    format!("{prefix}{n:08}")
}

fn email(prefix: &str, n: u64) -> String {
    format!("{prefix}{n:08}@bench.example.in")
}

fn now_micros() -> i64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970");
    i64::try_from(since.as_micros()).expect("time fits i64")
}

/// Usernames for the create benchmarks; never reused within a run.
static NEXT_NAME: AtomicU64 = AtomicU64::new(0);

fn next_name() -> u64 {
    NEXT_NAME.fetch_add(1, Ordering::Relaxed)
}

/// Takes one unit of work from `remaining`; false once it is exhausted.
fn take_one(remaining: &AtomicU64) -> bool {
    remaining
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |r| r.checked_sub(1))
        .is_ok()
}

/// xorshift64*: cheap pseudo-random indexes, the same sequence on both sides.
struct Rng(u64);

impl Rng {
    fn index(&mut self, len: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let r = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D);
        (r % len as u64) as usize
    }
}

/// Times `iters` calls of `f` from inside a task spawned on the runtime, so
/// that the caller is a runtime worker thread (as in a server), not the
/// thread blocked in `Runtime::block_on` that `to_async` would use.
fn iter_in_task<T, F, Fut>(b: &mut Bencher<'_>, rt: &Runtime, f: F)
where
    T: Send + 'static,
    F: Fn(u64) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = T> + Send,
{
    b.iter_custom(|iters| {
        let f = f.clone();
        rt.block_on(async move {
            tokio::spawn(async move {
                let start = Instant::now();
                for i in 0..iters {
                    black_box(f(black_box(i)).await);
                }
                start.elapsed()
            })
            .await
            .expect("bench task")
        })
    });
}

// ---------------------------------------------------------------------------
// Group-commit statistics
// ---------------------------------------------------------------------------

/// Group commits seen (the writer's `group_commit` spans).
static COMMITS: AtomicU64 = AtomicU64::new(0);
/// Requests packed into those commits.
static BATCHED: AtomicU64 = AtomicU64::new(0);

/// Counts the writer's `group_commit` spans and their `requests` field.
/// Installed with a filter that enables only that target, so every other
/// span of the crate stays disabled (as with no subscriber).
struct BatchStats;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for BatchStats {
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        _id: &tracing::span::Id,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        struct Requests(u64);
        impl tracing::field::Visit for Requests {
            fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
                if field.name() == "requests" {
                    self.0 = value;
                }
            }
            fn record_debug(&mut self, _: &tracing::field::Field, _: &dyn std::fmt::Debug) {}
        }
        if attrs.metadata().name() == "group_commit" {
            let mut requests = Requests(0);
            attrs.record(&mut requests);
            COMMITS.fetch_add(1, Ordering::Relaxed);
            BATCHED.fetch_add(requests.0, Ordering::Relaxed);
        }
    }
}

fn install_batch_stats() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        use tracing_subscriber::Layer;
        use tracing_subscriber::layer::SubscriberExt;
        let only_writer = tracing_subscriber::filter::Targets::new()
            .with_target("bharatvoice_store::db::writer", tracing::Level::DEBUG);
        let subscriber = tracing_subscriber::registry().with(BatchStats.with_filter(only_writer));
        tracing::subscriber::set_global_default(subscriber).expect("batch stats subscriber");
    });
}

/// Runs `f` and prints how many group commits it caused and their mean size
/// (warm-up included).
fn with_batch_stats(label: &str, f: impl FnOnce()) {
    let (c0, r0) = (
        COMMITS.load(Ordering::Relaxed),
        BATCHED.load(Ordering::Relaxed),
    );
    f();
    let commits = COMMITS.load(Ordering::Relaxed) - c0;
    let requests = BATCHED.load(Ordering::Relaxed) - r0;
    eprintln!(
        "{label}: {requests} writes in {commits} group commits, {:.1} writes per commit",
        requests as f64 / commits.max(1) as f64
    );
}

// ---------------------------------------------------------------------------
// SQLite peer
// ---------------------------------------------------------------------------

const SQLITE_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS users (
    id BLOB PRIMARY KEY NOT NULL,
    username TEXT NOT NULL UNIQUE,
    email TEXT NOT NULL UNIQUE,
    display_name TEXT,
    status TEXT NOT NULL,
    has_password INTEGER NOT NULL,
    last_login_at INTEGER,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    deleted_at INTEGER
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS sessions (
    id BLOB PRIMARY KEY NOT NULL,
    user_id BLOB NOT NULL,
    language TEXT,
    last_active_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    ended_at INTEGER,
    turn_count INTEGER NOT NULL,
    context BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    deleted_at INTEGER
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS sessions_by_user ON sessions(user_id, last_active_at);
";

const INSERT_USER: &str = "INSERT INTO users (id, username, email, display_name, status, \
     has_password, last_login_at, created_at, updated_at, deleted_at) \
     VALUES (?1, ?2, ?3, NULL, 'active', 0, NULL, ?4, ?4, NULL)";

const USER_COLUMNS: &str = "id, username, email, display_name, status, has_password, \
     last_login_at, created_at, updated_at, deleted_at";

const INSERT_SESSION: &str = "INSERT INTO sessions (id, user_id, language, last_active_at, \
     expires_at, ended_at, turn_count, context, created_at, updated_at, deleted_at) \
     VALUES (?1, ?2, 'hi-IN', ?3, ?4, NULL, 0, x'', ?3, ?3, NULL)";

const LIST_SESSIONS: &str = "SELECT id, user_id, language, last_active_at, expires_at, \
     ended_at, turn_count, context, created_at, updated_at, deleted_at FROM sessions \
     WHERE user_id = ?1 AND deleted_at IS NULL ORDER BY last_active_at DESC LIMIT 20";

/// A user row decoded from SQLite (the peer of `bharatvoice_store::User`).
// Fields are only consumed through `black_box`.
#[allow(dead_code)]
#[derive(Debug)]
struct SqlUser {
    id: [u8; 16],
    username: String,
    email: String,
    display_name: Option<String>,
    status: String,
    has_password: bool,
    last_login_at: Option<i64>,
    created_at: i64,
    updated_at: i64,
    deleted_at: Option<i64>,
}

fn decode_user(r: &Row<'_>) -> rusqlite::Result<SqlUser> {
    Ok(SqlUser {
        id: r.get(0)?,
        username: r.get(1)?,
        email: r.get(2)?,
        display_name: r.get(3)?,
        status: r.get(4)?,
        has_password: r.get(5)?,
        last_login_at: r.get(6)?,
        created_at: r.get(7)?,
        updated_at: r.get(8)?,
        deleted_at: r.get(9)?,
    })
}

/// A session row decoded from SQLite (the peer of `ConversationSession`).
#[allow(dead_code)]
#[derive(Debug)]
struct SqlSession {
    id: [u8; 16],
    user_id: [u8; 16],
    language: Option<String>,
    last_active_at: i64,
    expires_at: i64,
    ended_at: Option<i64>,
    turn_count: i64,
    context: Vec<u8>,
    created_at: i64,
    updated_at: i64,
    deleted_at: Option<i64>,
}

fn decode_session(r: &Row<'_>) -> rusqlite::Result<SqlSession> {
    Ok(SqlSession {
        id: r.get(0)?,
        user_id: r.get(1)?,
        language: r.get(2)?,
        last_active_at: r.get(3)?,
        expires_at: r.get(4)?,
        ended_at: r.get(5)?,
        turn_count: r.get(6)?,
        context: r.get(7)?,
        created_at: r.get(8)?,
        updated_at: r.get(9)?,
        deleted_at: r.get(10)?,
    })
}

fn sqlite_open(path: &Path) -> Connection {
    let conn = Connection::open(path).expect("opening sqlite");
    let mode: String = conn
        .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
        .expect("journal_mode");
    assert_eq!(mode, "wal");
    let kib = cache_bytes() / 1024;
    conn.execute_batch(&format!(
        "PRAGMA synchronous=FULL; PRAGMA cache_size=-{kib};"
    ))
    .expect("pragmas");
    conn.busy_timeout(Duration::from_secs(60))
        .expect("busy_timeout");
    conn.execute_batch(SQLITE_SCHEMA).expect("schema");
    conn
}

fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
    )
}

/// One durable autocommit insert of a user; retries on `SQLITE_BUSY`
/// (returned without waiting in some WAL lock upgrades). Returns the retries.
fn sqlite_create_user(stmt: &mut rusqlite::CachedStatement<'_>, prefix: &str, n: u64) -> u64 {
    let id = uuid::Uuid::now_v7().into_bytes();
    let (name, mail) = (username(prefix, n), email(prefix, n));
    let mut retries = 0;
    loop {
        match stmt.execute(params![&id[..], name, mail, now_micros()]) {
            Ok(_) => return retries,
            Err(e) if is_busy(&e) => retries += 1,
            Err(e) => panic!("sqlite insert: {e}"),
        }
    }
}

// ---------------------------------------------------------------------------
// 1, 2: durable creates
// ---------------------------------------------------------------------------

fn bench_create_user(c: &mut Criterion) {
    install_batch_stats();
    let rt = runtime();
    let redb_dir = temp_dir("bv-bench-create-redb");
    let store = rt.block_on(open_store(redb_dir.path()));
    let sqlite_dir = temp_dir("bv-bench-create-sqlite");
    let sqlite_path = sqlite_dir.path().join("bench.sqlite");
    let conn = sqlite_open(&sqlite_path);

    let mut group = c.benchmark_group("create_user");
    group
        .sample_size(SAMPLES)
        .measurement_time(MEASURE)
        .warm_up_time(WARM_UP)
        .throughput(Throughput::Elements(1));

    with_batch_stats("create_user/one_caller/redb", || {
        group.bench_function("one_caller/redb", |b| {
            b.to_async(&rt).iter(|| async {
                let n = next_name();
                black_box(
                    store
                        .users()
                        .create(NewUser::new(username("c", n), email("c", n)))
                        .await
                        .expect("create"),
                )
            })
        });
    });

    group.bench_function("one_caller/sqlite", |b| {
        let mut stmt = conn.prepare_cached(INSERT_USER).expect("prepare");
        b.iter(|| black_box(sqlite_create_user(&mut stmt, "c", next_name())))
    });

    // Each measured "iteration" is one create; 64 callers share `iters` of
    // them, so criterion's time per iteration is wall time / creates and its
    // throughput is creates per second across all callers.
    with_batch_stats("create_user/64_callers/redb", || {
        group.bench_function("64_callers/redb", |b| {
            b.to_async(&rt).iter_custom(|iters| {
                let store = store.clone();
                async move {
                    let remaining = Arc::new(AtomicU64::new(iters));
                    let start = Instant::now();
                    let handles: Vec<_> = (0..CALLERS)
                        .map(|_| {
                            let (store, remaining) = (store.clone(), Arc::clone(&remaining));
                            tokio::spawn(async move {
                                while take_one(&remaining) {
                                    let n = next_name();
                                    black_box(
                                        store
                                            .users()
                                            .create(NewUser::new(username("c", n), email("c", n)))
                                            .await
                                            .expect("create"),
                                    );
                                }
                            })
                        })
                        .collect();
                    for h in handles {
                        h.await.expect("caller task");
                    }
                    start.elapsed()
                }
            })
        });
    });

    // SQLite has no group commit: 64 threads, a connection each, each insert
    // its own durable transaction; writers queue on the WAL write lock.
    let mut conns: Vec<Connection> = (0..CALLERS).map(|_| sqlite_open(&sqlite_path)).collect();
    let busy_retries = AtomicU64::new(0);
    group.bench_function("64_callers/sqlite", |b| {
        b.iter_custom(|iters| {
            let remaining = AtomicU64::new(iters);
            let (remaining, busy_retries) = (&remaining, &busy_retries);
            let start = Instant::now();
            std::thread::scope(|s| {
                for conn in conns.iter_mut() {
                    s.spawn(move || {
                        let mut stmt = conn.prepare_cached(INSERT_USER).expect("prepare");
                        while take_one(remaining) {
                            let r = sqlite_create_user(&mut stmt, "c", next_name());
                            busy_retries.fetch_add(r, Ordering::Relaxed);
                        }
                    });
                }
            });
            start.elapsed()
        })
    });
    eprintln!(
        "create_user/64_callers/sqlite: {} SQLITE_BUSY retries in total",
        busy_retries.load(Ordering::Relaxed)
    );

    // The same 64 threads sharing one connection behind a mutex: the
    // writers queue on the mutex instead of in SQLite's busy handler.
    let shared = Mutex::new(conn);
    group.bench_function("64_callers/sqlite_shared_conn", |b| {
        b.iter_custom(|iters| {
            let remaining = AtomicU64::new(iters);
            let (remaining, shared) = (&remaining, &shared);
            let start = Instant::now();
            std::thread::scope(|s| {
                for _ in 0..CALLERS {
                    s.spawn(move || {
                        while take_one(remaining) {
                            let n = next_name();
                            let conn = shared.lock().expect("connection lock");
                            let mut stmt = conn.prepare_cached(INSERT_USER).expect("prepare");
                            black_box(sqlite_create_user(&mut stmt, "c", n));
                        }
                    });
                }
            });
            start.elapsed()
        })
    });
    group.finish();

    rt.block_on(store.close());
}

// ---------------------------------------------------------------------------
// 3, 5: point reads and read placement
// ---------------------------------------------------------------------------

struct UserFixture {
    store: Store,
    redb_ids: Vec<UserId>,
    names: Vec<String>,
    sqlite: Connection,
    sqlite_ids: Vec<[u8; 16]>,
    dirs: (tempfile::TempDir, tempfile::TempDir),
}

/// Creates `count` users named `{prefix}…`, many at a time; their ids in
/// creation order.
async fn create_users(store: &Store, prefix: &'static str, count: usize) -> Vec<UserId> {
    let store = store.clone();
    run_concurrent(count, POPULATE_IN_FLIGHT, move |i| {
        let store = store.clone();
        async move {
            let n = i as u64;
            store
                .users()
                .create(NewUser::new(username(prefix, n), email(prefix, n)))
                .await
                .expect("populate create")
                .id
        }
    })
    .await
}

fn populate_users(rt: &Runtime, rows: usize) -> UserFixture {
    install_batch_stats();
    let (c0, r0) = (
        COMMITS.load(Ordering::Relaxed),
        BATCHED.load(Ordering::Relaxed),
    );
    let redb_dir = temp_dir("bv-bench-read-redb");
    let store = rt.block_on(open_store(redb_dir.path()));
    let start = Instant::now();
    let redb_ids = rt.block_on(create_users(&store, "u", rows));
    eprintln!(
        "populated redb with {rows} users in {:.2?} ({POPULATE_IN_FLIGHT} creates in flight, \
         {} group commits)",
        start.elapsed(),
        COMMITS.load(Ordering::Relaxed) - c0,
    );
    // At least the creates (opening the store also writes its key check value).
    assert!(BATCHED.load(Ordering::Relaxed) - r0 >= rows as u64);

    let sqlite_dir = temp_dir("bv-bench-read-sqlite");
    let mut sqlite = sqlite_open(&sqlite_dir.path().join("bench.sqlite"));
    let start = Instant::now();
    let mut sqlite_ids = Vec::with_capacity(rows);
    {
        let txn = sqlite.transaction().expect("begin");
        {
            let mut stmt = txn.prepare(INSERT_USER).expect("prepare");
            for i in 0..rows as u64 {
                let id = uuid::Uuid::now_v7().into_bytes();
                stmt.execute(params![
                    &id[..],
                    username("u", i),
                    email("u", i),
                    now_micros()
                ])
                .expect("populate insert");
                sqlite_ids.push(id);
            }
        }
        txn.commit().expect("commit");
    }
    eprintln!(
        "populated sqlite with {rows} users in {:.2?} (one transaction)",
        start.elapsed()
    );
    let names = (0..rows as u64).map(|i| username("u", i)).collect();
    UserFixture {
        store,
        redb_ids,
        names,
        sqlite,
        sqlite_ids,
        dirs: (redb_dir, sqlite_dir),
    }
}

/// Runs a point-read benchmark on SQLite: `open_txn` keeps one deferred read
/// transaction open across all iterations of one criterion run (warm-up and
/// measurement each open their own), so the cost measured is the statement
/// alone, the most favourable setting for SQLite; without it each statement
/// runs in its own implicit transaction (autocommit), which is what a redb
/// `get` does (a fresh snapshot per call).
fn sqlite_point_read<K: rusqlite::ToSql>(
    b: &mut Bencher<'_>,
    conn: &Connection,
    open_txn: bool,
    sql: &str,
    key: impl Fn(usize) -> K,
    len: usize,
) {
    if open_txn {
        conn.execute_batch("BEGIN DEFERRED").expect("begin");
    }
    {
        let mut stmt = conn.prepare_cached(sql).expect("prepare");
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        b.iter(|| {
            let k = key(rng.index(len));
            black_box(
                stmt.query_row([black_box(k)], decode_user)
                    .expect("sqlite get"),
            )
        });
    }
    if open_txn {
        conn.execute_batch("COMMIT").expect("commit");
    }
}

fn bench_point_reads(c: &mut Criterion) {
    let rt = runtime();
    let rows = env_count("BV_BENCH_ROWS", 100_000);
    let fx = populate_users(&rt, rows);
    let by_id_sql =
        format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?1 AND deleted_at IS NULL");
    let by_name_sql =
        format!("SELECT {USER_COLUMNS} FROM users WHERE username = ?1 AND deleted_at IS NULL");

    let mut group = c.benchmark_group("get_by_id");
    group
        .sample_size(SAMPLES)
        .measurement_time(MEASURE)
        .warm_up_time(WARM_UP);
    group.bench_function("redb", |b| {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        b.iter(|| {
            let id = fx.redb_ids[rng.index(rows)];
            black_box(fx.store.users().get(black_box(id)).expect("get"))
        })
    });
    let blob = |i: usize| &fx.sqlite_ids[i][..];
    group.bench_function("sqlite", |b| {
        sqlite_point_read(b, &fx.sqlite, true, &by_id_sql, blob, rows)
    });
    group.bench_function("sqlite_autocommit", |b| {
        sqlite_point_read(b, &fx.sqlite, false, &by_id_sql, blob, rows)
    });
    group.finish();

    let mut group = c.benchmark_group("get_by_username");
    group
        .sample_size(SAMPLES)
        .measurement_time(MEASURE)
        .warm_up_time(WARM_UP);
    group.bench_function("redb", |b| {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        b.iter(|| {
            let name = fx.names[rng.index(rows)].as_str();
            black_box(
                fx.store
                    .users()
                    .get_by_username(black_box(name))
                    .expect("get"),
            )
        })
    });
    let text = |i: usize| fx.names[i].as_str();
    group.bench_function("sqlite", |b| {
        sqlite_point_read(b, &fx.sqlite, true, &by_name_sql, text, rows)
    });
    group.bench_function("sqlite_autocommit", |b| {
        sqlite_point_read(b, &fx.sqlite, false, &by_name_sql, text, rows)
    });
    group.finish();

    // Where a point read should run: inline on the calling task, or on the
    // blocking pool. All three are timed from a task on a runtime worker.
    let mut group = c.benchmark_group("read_placement");
    group
        .sample_size(SAMPLES)
        .measurement_time(MEASURE)
        .warm_up_time(WARM_UP);
    group.bench_function("spawn_blocking_noop", |b| {
        iter_in_task(b, &rt, |_| async {
            tokio::task::spawn_blocking(|| ())
                .await
                .expect("blocking task")
        })
    });
    let ids = Arc::new(fx.redb_ids.clone());
    group.bench_function("inline_get_by_id", |b| {
        let (store, ids) = (fx.store.clone(), Arc::clone(&ids));
        iter_in_task(b, &rt, move |i| {
            let mut rng = Rng(i.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
            let id = ids[rng.index(ids.len())];
            let user = store.users().get(id).expect("get");
            async move { user }
        })
    });
    group.bench_function("spawn_blocking_get_by_id", |b| {
        let (store, ids) = (fx.store.clone(), Arc::clone(&ids));
        iter_in_task(b, &rt, move |i| {
            let mut rng = Rng(i.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
            let id = ids[rng.index(ids.len())];
            let store = store.clone();
            async move {
                tokio::task::spawn_blocking(move || store.users().get(id).expect("get"))
                    .await
                    .expect("blocking task")
            }
        })
    });
    group.finish();

    rt.block_on(fx.store.close());
}

// ---------------------------------------------------------------------------
// 4: newest sessions of a user
// ---------------------------------------------------------------------------

fn bench_list_sessions(c: &mut Criterion) {
    install_batch_stats();
    let rt = runtime();
    let total = env_count("BV_BENCH_SESSIONS", 100_000);
    let owner = |i: usize| {
        if i.is_multiple_of(MEASURED_USER_EVERY) {
            0
        } else {
            1 + i % (SESSION_USERS - 1)
        }
    };

    let redb_dir = temp_dir("bv-bench-sessions-redb");
    let store = rt.block_on(open_store(redb_dir.path()));
    let start = Instant::now();
    let users = rt.block_on(create_users(&store, "s", SESSION_USERS));
    let language: LanguageTag = "hi-IN".parse().expect("language tag");
    rt.block_on({
        let (store, users) = (store.clone(), Arc::new(users.clone()));
        run_concurrent(total, POPULATE_IN_FLIGHT, move |i| {
            let (store, user, language) = (store.clone(), users[owner(i)], language.clone());
            async move {
                store
                    .sessions()
                    .create(user, Some(language))
                    .await
                    .expect("populate session");
            }
        })
    });
    eprintln!(
        "populated redb with {total} sessions of {SESSION_USERS} users in {:.2?}",
        start.elapsed()
    );
    let measured = users[0];

    let sqlite_dir = temp_dir("bv-bench-sessions-sqlite");
    let mut conn = sqlite_open(&sqlite_dir.path().join("bench.sqlite"));
    let start = Instant::now();
    let sql_users: Vec<[u8; 16]> = (0..SESSION_USERS)
        .map(|_| uuid::Uuid::now_v7().into_bytes())
        .collect();
    {
        let txn = conn.transaction().expect("begin");
        {
            let mut stmt = txn.prepare(INSERT_USER).expect("prepare");
            for (i, id) in sql_users.iter().enumerate() {
                let n = i as u64;
                stmt.execute(params![
                    &id[..],
                    username("s", n),
                    email("s", n),
                    now_micros()
                ])
                .expect("populate user");
            }
            let mut stmt = txn.prepare(INSERT_SESSION).expect("prepare");
            let t0 = now_micros();
            let idle = 30 * 60 * 1_000_000;
            for i in 0..total {
                let id = uuid::Uuid::now_v7().into_bytes();
                let at = t0 + i as i64;
                stmt.execute(params![&id[..], &sql_users[owner(i)][..], at, at + idle])
                    .expect("populate session");
            }
        }
        txn.commit().expect("commit");
    }
    eprintln!(
        "populated sqlite with {total} sessions in {:.2?} (one transaction)",
        start.elapsed()
    );

    let mut group = c.benchmark_group("list_sessions_20_newest");
    group
        .sample_size(SAMPLES)
        .measurement_time(MEASURE)
        .warm_up_time(WARM_UP);
    // `list_for_user` is a scan: it runs on the blocking pool, so this
    // includes one spawn_blocking hop (see `read_placement`).
    group.bench_function("redb", |b| {
        let store = store.clone();
        iter_in_task(b, &rt, move |_| {
            let store = store.clone();
            async move {
                let list = store
                    .sessions()
                    .list_for_user(measured, 20)
                    .await
                    .expect("list");
                assert_eq!(list.len(), 20);
                list
            }
        })
    });
    // Inline on the bench thread, inside one read transaction kept open
    // across the iterations of one criterion run.
    group.bench_function("sqlite", |b| {
        conn.execute_batch("BEGIN DEFERRED").expect("begin");
        {
            let mut stmt = conn.prepare_cached(LIST_SESSIONS).expect("prepare");
            let user = &sql_users[0][..];
            b.iter(|| {
                let list: Vec<SqlSession> = stmt
                    .query_map([black_box(user)], decode_session)
                    .expect("query")
                    .collect::<rusqlite::Result<_>>()
                    .expect("list");
                assert_eq!(list.len(), 20);
                black_box(list)
            });
        }
        conn.execute_batch("COMMIT").expect("commit");
    });
    // The same query placed as redb's scan is: on the blocking pool, called
    // from a task (a second connection; its read transaction is kept open
    // across the iterations of one criterion run, like the one above).
    let blocking_conn = Arc::new(Mutex::new(sqlite_open(
        &sqlite_dir.path().join("bench.sqlite"),
    )));
    let user = Arc::new(sql_users[0]);
    group.bench_function("sqlite_spawn_blocking", |b| {
        let conn = Arc::clone(&blocking_conn);
        conn.lock()
            .expect("connection lock")
            .execute_batch("BEGIN DEFERRED")
            .expect("begin");
        let user = Arc::clone(&user);
        iter_in_task(b, &rt, move |_| {
            let (conn, user) = (Arc::clone(&conn), Arc::clone(&user));
            async move {
                tokio::task::spawn_blocking(move || {
                    let conn = conn.lock().expect("connection lock");
                    let mut stmt = conn.prepare_cached(LIST_SESSIONS).expect("prepare");
                    let list: Vec<SqlSession> = stmt
                        .query_map([&user[..]], decode_session)
                        .expect("query")
                        .collect::<rusqlite::Result<_>>()
                        .expect("list");
                    assert_eq!(list.len(), 20);
                    list
                })
                .await
                .expect("blocking task")
            }
        });
        blocking_conn
            .lock()
            .expect("connection lock")
            .execute_batch("COMMIT")
            .expect("commit");
    });
    group.finish();

    rt.block_on(store.close());
}

// ---------------------------------------------------------------------------
// 6: open and close
// ---------------------------------------------------------------------------

fn bench_open_close(c: &mut Criterion) {
    let rt = runtime();
    let rows = env_count("BV_BENCH_ROWS", 100_000);
    let UserFixture {
        store,
        sqlite,
        sqlite_ids,
        dirs,
        ..
    } = populate_users(&rt, rows);
    // The file lock goes with the last handle.
    rt.block_on(store.close());
    drop((store, sqlite));
    let dir = dirs.0.path().to_path_buf();
    let sqlite_path = dirs.1.path().join("bench.sqlite");
    let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    eprintln!(
        "open_close: store.redb {} bytes, bench.sqlite {} bytes",
        size(&dir.join("store.redb")),
        size(&sqlite_path)
    );
    let key = sqlite_ids[rows / 2];

    let mut group = c.benchmark_group("open_close");
    group
        .sample_size(SAMPLES)
        .measurement_time(MEASURE)
        .warm_up_time(WARM_UP);
    for (name, verify) in [("redb_verified", true), ("redb_unverified", false)] {
        group.bench_function(name, |b| {
            b.to_async(&rt).iter(|| async {
                let config = Config::new(&dir)
                    .password_cost(8, 1)
                    .db_cache_bytes(cache_bytes())
                    .verify_on_open(verify);
                let store = Store::open(config).await.expect("open");
                store.close().await;
            })
        });
    }
    let point_read = format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?1");
    group.bench_function("sqlite_open_and_read", |b| {
        b.iter(|| {
            let conn = sqlite_open(&sqlite_path);
            black_box(
                conn.query_row(&point_read, [&key[..]], decode_user)
                    .expect("read"),
            );
        })
    });
    group.bench_function("sqlite_quick_check", |b| {
        b.iter(|| {
            let conn = sqlite_open(&sqlite_path);
            let ok: String = conn
                .query_row("PRAGMA quick_check", [], |r| r.get(0))
                .expect("quick_check");
            assert_eq!(ok, "ok");
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().without_plots();
    targets = bench_create_user, bench_point_reads, bench_list_sessions, bench_open_close
}
criterion_main!(benches);
