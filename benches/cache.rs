//! Benchmarks of the tiered cache, with its peers measured in the same run:
//! a `HashMap` behind a `Mutex` and `quick_cache` (the limit for an
//! in-process get), and Redis on loopback when a `redis-server` binary is
//! on the PATH (started here on a free port, persistence off, stopped at
//! the end; skipped, with a message, when absent).
//!
//! `cargo bench --bench cache`; results and figures in
//! `docs/BENCHMARKS-cache.md`.

use std::collections::HashMap;
use std::hint::black_box;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bharatvoice_store::{CacheConfig, Config, SetOptions, Store};
use criterion::{BenchmarkId, Criterion, Throughput};

const VALUE: &[u8] = &[b'v'; 100];

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// `n` keys in a shuffled order (so that walking them is not sequential).
fn keys(n: usize) -> Vec<String> {
    let mut v: Vec<String> = (0..n).map(|i| format!("key:{i:08}")).collect();
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for i in (1..v.len()).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.swap(i, (x % (i as u64 + 1)) as usize);
    }
    v
}

struct Bench {
    _dir: tempfile::TempDir,
    store: Store,
}

fn open(rt: &tokio::runtime::Runtime, cache: CacheConfig) -> Bench {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = Config::new(dir.path()).cache(cache);
    let store = rt.block_on(Store::open(config)).expect("open");
    Bench { _dir: dir, store }
}

fn fill(rt: &tokio::runtime::Runtime, store: &Store, keys: &[String], opts: &SetOptions) {
    rt.block_on(async {
        for k in keys {
            store
                .cache()
                .set_bytes_with(k, VALUE, opts)
                .await
                .expect("set");
        }
        store.cache().flush().await.expect("flush");
        store.cache().run_pending_tasks().await;
    });
}

fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Fills a 64 MiB tier 1 with ten times that and reports its byte count
/// and the process's RSS (tier 2 off, so memory is tier 1's alone).
fn memory_report(rt: &tokio::runtime::Runtime) {
    let bound: u64 = 64 << 20;
    let before = rss_kib();
    let b = open(rt, CacheConfig::default().memory_bytes(bound).tier2(false));
    let value = vec![7u8; 4096];
    let n = 10 * bound as usize / value.len();
    rt.block_on(async {
        for i in 0..n {
            b.store
                .cache()
                .set_bytes(&format!("mem:{i}"), &value)
                .await
                .expect("set");
        }
        b.store.cache().run_pending_tasks().await;
    });
    let s = b.store.cache().stats();
    println!(
        "memory: tier-1 bound {} MiB, wrote {} MiB in {n} values; tier-1 bytes {:.1} MiB \
         ({} entries, {} size evictions); RSS before {} MiB, after {} MiB",
        bound >> 20,
        (n * value.len()) >> 20,
        s.tier1.bytes as f64 / (1 << 20) as f64,
        s.tier1.entries,
        s.tier1.evictions.size,
        before.unwrap_or(0) >> 10,
        rss_kib().unwrap_or(0) >> 10,
    );
}

fn tier1_hits(c: &mut Criterion, rt: &tokio::runtime::Runtime) {
    let all = keys(100_000);
    let b = open(rt, CacheConfig::default().memory_bytes(256 << 20));
    fill(rt, &b.store, &all, &SetOptions::new());
    let map: Mutex<HashMap<String, Arc<[u8]>>> =
        Mutex::new(all.iter().map(|k| (k.clone(), Arc::from(VALUE))).collect());
    let qc: quick_cache::sync::Cache<String, Arc<[u8]>> = quick_cache::sync::Cache::new(200_000);
    // moka alone, as tier 1 uses it (future cache, weigher, expiry off).
    let raw: moka::future::Cache<String, Arc<[u8]>> = moka::future::Cache::builder()
        .max_capacity(256 << 20)
        .weigher(|k: &String, v: &Arc<[u8]>| (k.len() + v.len() + 256) as u32)
        .build();
    rt.block_on(async {
        for k in &all {
            raw.insert(k.clone(), Arc::from(VALUE)).await;
        }
        raw.run_pending_tasks().await;
    });
    for k in &all {
        qc.insert(k.clone(), Arc::from(VALUE));
    }
    let mut g = c.benchmark_group("get_hit");
    g.throughput(Throughput::Elements(1));
    for hot in [1_000usize, 100_000] {
        let ks = &all[..hot];
        let mut i = 0;
        g.bench_function(BenchmarkId::new("tier1", hot), |bch| {
            bch.to_async(rt).iter(|| {
                i = (i + 1) % hot;
                let k = ks[i].as_str();
                let cache = b.store.cache();
                async move { black_box(cache.get_bytes(black_box(k)).await.expect("get")) }
            })
        });
        let mut i = 0;
        g.bench_function(BenchmarkId::new("moka_alone", hot), |bch| {
            bch.to_async(rt).iter(|| {
                i = (i + 1) % hot;
                let k = ks[i].as_str();
                let raw = &raw;
                async move { black_box(raw.get(black_box(k)).await) }
            })
        });
        let mut i = 0;
        g.bench_function(BenchmarkId::new("hashmap_mutex", hot), |bch| {
            bch.iter(|| {
                i = (i + 1) % hot;
                let m = map.lock().expect("lock");
                black_box(m.get(black_box(ks[i].as_str())).cloned())
            })
        });
        let mut i = 0;
        g.bench_function(BenchmarkId::new("quick_cache", hot), |bch| {
            bch.iter(|| {
                i = (i + 1) % hot;
                black_box(qc.get(black_box(ks[i].as_str())))
            })
        });
    }
    g.finish();
    let s = b.store.cache().stats();
    println!(
        "get_hit: tier-1 hits {}, misses {}",
        s.tier1.hits, s.tier1.misses
    );
}

fn tier2_hits(c: &mut Criterion, rt: &tokio::runtime::Runtime) {
    // Memory holds about a dozen entries; the reads walk 20,000 keys that
    // tier 2 holds, so nearly every read misses memory, hits tier 2 and is
    // promoted (pushing another entry out).
    let all = keys(20_000);
    let b = open(rt, CacheConfig::default().memory_bytes(4096));
    fill(rt, &b.store, &all, &SetOptions::new());
    let before = b.store.cache().stats();
    let mut i = 0;
    let mut g = c.benchmark_group("get_tier2");
    g.throughput(Throughput::Elements(1));
    g.bench_function("tier1_miss_tier2_hit", |bch| {
        bch.to_async(rt).iter(|| {
            i = (i + 1) % all.len();
            let k = all[i].as_str();
            let cache = b.store.cache();
            async move { black_box(cache.get_bytes(k).await.expect("get")) }
        })
    });
    g.finish();
    let s = b.store.cache().stats();
    println!(
        "get_tier2: {} lookups, {} from tier 2, {} from tier 1",
        s.lookups - before.lookups,
        s.tier2.hits - before.tier2.hits,
        s.tier1.hits - before.tier1.hits
    );
}

fn writes(c: &mut Criterion, rt: &tokio::runtime::Runtime) {
    let all = keys(10_000);
    let b = open(rt, CacheConfig::default());
    let mut g = c.benchmark_group("write");
    g.throughput(Throughput::Elements(1));
    let mut i = 0;
    g.bench_function("set_write_behind", |bch| {
        bch.to_async(rt).iter(|| {
            i = (i + 1) % all.len();
            let k = all[i].as_str();
            let cache = b.store.cache();
            async move { cache.set_bytes(k, VALUE).await.expect("set") }
        })
    });
    let mem = open(rt, CacheConfig::default().tier2(false));
    let mut i = 0;
    g.bench_function("set_tier1_only", |bch| {
        bch.to_async(rt).iter(|| {
            i = (i + 1) % all.len();
            let k = all[i].as_str();
            let cache = mem.store.cache();
            async move { cache.set_bytes(k, VALUE).await.expect("set") }
        })
    });
    g.bench_function("incr_one_key", |bch| {
        bch.to_async(rt).iter(|| {
            let cache = b.store.cache();
            async move { black_box(cache.incr("counter", 1).await.expect("incr")) }
        })
    });
    g.finish();
    let through = open(
        rt,
        CacheConfig::default().write_mode(bharatvoice_store::WriteMode::WriteThrough),
    );
    let mut g = c.benchmark_group("write");
    g.sample_size(20);
    g.measurement_time(Duration::from_secs(3));
    let mut i = 0;
    g.bench_function("set_write_through", |bch| {
        bch.to_async(rt).iter(|| {
            i = (i + 1) % all.len();
            let k = all[i].as_str();
            let cache = through.store.cache();
            async move { cache.set_bytes(k, VALUE).await.expect("set") }
        })
    });
    g.finish();
}

/// Tags each entry carries, so that this many invalidations each touch
/// every entry while it is live.
const TAGS_PER_ENTRY: usize = 4;

fn invalidation(c: &mut Criterion, rt: &tokio::runtime::Runtime) {
    let mut g = c.benchmark_group("invalidate_tag");
    g.sample_size(10);
    g.warm_up_time(Duration::from_millis(200));
    g.measurement_time(Duration::from_secs(2));
    for n in [10_000usize, 100_000, 1_000_000] {
        for tier2 in [true, false] {
            let b = open(
                rt,
                CacheConfig::default().memory_bytes(2 << 30).tier2(tier2),
            );
            let started = Instant::now();
            let tags: Vec<String> = (0..TAGS_PER_ENTRY).map(|t| format!("big{t}")).collect();
            let opts = SetOptions::new().tags(tags.iter().cloned());
            let all: Vec<String> = (0..n).map(|i| format!("tagged:{i}")).collect();
            fill(rt, &b.store, &all, &opts);
            let filled = started.elapsed();
            let mut first = Vec::new();
            let mut round = 0usize;
            // With tier 2 the bump is one durable (fsync'd) commit; without,
            // it is memory only.
            let name = if tier2 { "durable" } else { "memory_only" };
            g.bench_function(BenchmarkId::new(name, n), |bch| {
                bch.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let tag = &tags[round % tags.len()];
                        round += 1;
                        let t = Instant::now();
                        let touched = rt
                            .block_on(b.store.cache().invalidate_tag(tag))
                            .expect("invalidate");
                        let took = t.elapsed();
                        total += took;
                        if first.len() < tags.len() {
                            first.push((touched, took));
                        }
                    }
                    total
                })
            });
            println!(
                "invalidate_tag/{name}/{n}: filled in {:.1} s; first invalidations \
                 (entries touched, time): {:?}",
                filled.as_secs_f64(),
                first
            );
        }
    }
    g.finish();
}

/// Zipf(s) over `n` ranks by inverse CDF.
struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    fn new(n: usize, s: f64) -> Self {
        let mut acc = 0.0;
        let mut cdf: Vec<f64> = (1..=n)
            .map(|r| {
                acc += 1.0 / (r as f64).powf(s);
                acc
            })
            .collect();
        for c in &mut cdf {
            *c /= acc;
        }
        Zipf { cdf }
    }
    fn sample(&self, x: &mut u64) -> usize {
        *x ^= *x << 13;
        *x ^= *x >> 7;
        *x ^= *x << 17;
        let u = (*x >> 11) as f64 / (1u64 << 53) as f64;
        self.cdf.partition_point(|c| *c < u).min(self.cdf.len() - 1)
    }
}

fn zipf_mixed(c: &mut Criterion, rt: &tokio::runtime::Runtime) {
    let all = Arc::new(keys(100_000));
    // Memory for about a third of the keys: the tail goes to tier 2.
    let b = open(rt, CacheConfig::default().memory_bytes(12 << 20));
    fill(rt, &b.store, &all, &SetOptions::new());
    let zipf = Arc::new(Zipf::new(all.len(), 0.99));
    let before = b.store.cache().stats();
    let mut g = c.benchmark_group("zipf_mixed");
    g.throughput(Throughput::Elements(1));
    g.bench_function("90get_10set_2threads", |bch| {
        bch.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                let mut tasks = tokio::task::JoinSet::new();
                for t in 0..2u64 {
                    let store = b.store.clone();
                    let all = Arc::clone(&all);
                    let zipf = Arc::clone(&zipf);
                    tasks.spawn(async move {
                        let mut x = 0x2545_F491_4F6C_DD1D ^ (t + 1);
                        for _ in 0..iters.div_ceil(2) {
                            let k = all[zipf.sample(&mut x)].as_str();
                            if x % 10 == 0 {
                                store.cache().set_bytes(k, VALUE).await.expect("set");
                            } else {
                                black_box(store.cache().get_bytes(k).await.expect("get"));
                            }
                        }
                    });
                }
                while tasks.join_next().await.is_some() {}
                start.elapsed()
            })
        })
    });
    g.finish();
    let s = b.store.cache().stats();
    println!(
        "zipf_mixed: hit ratio {:.3} (tier 1 {}, tier 2 {}, misses {})",
        (s.hits - before.hits) as f64 / (s.lookups - before.lookups).max(1) as f64,
        s.tier1.hits - before.tier1.hits,
        s.tier2.hits - before.tier2.hits,
        s.tier2.misses - before.tier2.misses,
    );
}

/// A `redis-server` on a free loopback port, stopped on drop.
struct RedisServer {
    child: Child,
    port: u16,
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_redis() -> Option<RedisServer> {
    let port = TcpListener::bind("127.0.0.1:0")
        .ok()?
        .local_addr()
        .ok()?
        .port();
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args([
            "--save",
            "",
            "--appendonly",
            "no",
            "--protected-mode",
            "yes",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let server = RedisServer { child, port };
    for _ in 0..200 {
        if let Ok(mut r) = Resp::connect(port)
            && r.cmd(&[b"PING"]) == b"+PONG"
        {
            return Some(server);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

/// Just enough RESP for GET, SET and INCR, one request at a time.
struct Resp {
    w: TcpStream,
    r: BufReader<TcpStream>,
    out: Vec<u8>,
    line: Vec<u8>,
}

impl Resp {
    fn connect(port: u16) -> std::io::Result<Resp> {
        let w = TcpStream::connect(("127.0.0.1", port))?;
        w.set_nodelay(true)?;
        Ok(Resp {
            r: BufReader::new(w.try_clone()?),
            w,
            out: Vec::with_capacity(256),
            line: Vec::with_capacity(256),
        })
    }

    /// Sends one command and returns the reply's first line (for a bulk
    /// string, its payload).
    fn cmd(&mut self, args: &[&[u8]]) -> &[u8] {
        self.out.clear();
        let _ = write!(self.out, "*{}\r\n", args.len());
        for a in args {
            let _ = write!(self.out, "${}\r\n", a.len());
            self.out.extend_from_slice(a);
            self.out.extend_from_slice(b"\r\n");
        }
        if self.w.write_all(&self.out).is_err() {
            return b"";
        }
        self.line.clear();
        if self.r.read_until(b'\n', &mut self.line).is_err() || self.line.len() < 3 {
            return b"";
        }
        self.line.truncate(self.line.len() - 2);
        if self.line[0] == b'$' {
            let n: i64 = std::str::from_utf8(&self.line[1..])
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(-1);
            self.line.clear();
            if n >= 0 {
                self.line.resize(n as usize + 2, 0);
                if self.r.read_exact(&mut self.line).is_err() {
                    return b"";
                }
                self.line.truncate(n as usize);
            }
        }
        &self.line
    }
}

fn redis(c: &mut Criterion) {
    let Some(server) = start_redis() else {
        println!(
            "redis: no redis-server on the PATH (or it did not start): Redis comparison skipped"
        );
        return;
    };
    let Ok(mut r) = Resp::connect(server.port) else {
        println!("redis: cannot connect: Redis comparison skipped");
        return;
    };
    let all = keys(1_000);
    for k in &all {
        r.cmd(&[b"SET", k.as_bytes(), VALUE]);
    }
    let mut g = c.benchmark_group("redis_loopback");
    g.throughput(Throughput::Elements(1));
    let mut i = 0;
    g.bench_function("get_1000", |b| {
        b.iter(|| {
            i = (i + 1) % all.len();
            black_box(r.cmd(&[b"GET", all[i].as_bytes()]).len())
        })
    });
    let mut i = 0;
    g.bench_function("set", |b| {
        b.iter(|| {
            i = (i + 1) % all.len();
            black_box(r.cmd(&[b"SET", all[i].as_bytes(), VALUE]).len())
        })
    });
    g.bench_function("incr_one_key", |b| {
        b.iter(|| black_box(r.cmd(&[b"INCR", b"counter"]).len()))
    });
    g.finish();
    drop(server);
}

fn main() {
    let rt = runtime();
    memory_report(&rt);
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    tier1_hits(&mut c, &rt);
    tier2_hits(&mut c, &rt);
    writes(&mut c, &rt);
    redis(&mut c);
    zipf_mixed(&mut c, &rt);
    invalidation(&mut c, &rt);
    c.final_summary();
}
