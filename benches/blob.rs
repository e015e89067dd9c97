//! Blob storage throughput: `files().put` and `files().read` against the
//! "stage limit" of the same work done in memory, measured in the same run.
//!
//! ```text
//! CARGO_TARGET_DIR=target-bench cargo bench --bench blob
//! ```
//!
//! The store lives in a temporary directory (`BV_BENCH_DIR` chooses its
//! parent), opened with `Config::new(dir)` (defaults: 256 KiB chunks, four
//! chunks in flight). Every file is encrypted (AES-256-GCM-SIV, STREAM).
//!
//! Data, generated in code (deterministic):
//!
//! * `pcm`: speech-like 16 kHz mono 16-bit little-endian PCM (three partials
//!   of a gliding pitch, a syllable and a phrase envelope with pauses, a
//!   little noise), stored as `audio/wav` with the default
//!   `Compression::Auto` (zstd level 1, raw fallback per chunk).
//! * `random`: pseudo-random bytes stored as `audio/ogg` with
//!   `Compression::Level(1)`, so zstd is tried on every chunk (and every
//!   chunk falls back to raw). `audio/ogg` with `Compression::Auto` would
//!   skip zstd: that case is `put/random_auto` (64 MiB only).
//!
//! Groups (one per size: 4 KiB, 256 KiB, 4 MiB, 64 MiB; throughput in
//! bytes of plaintext):
//!
//! * `put/*`: `put_bytes` of a new blob, timed from a task on a runtime
//!   worker. Before each put a counter is written into the first 8 bytes
//!   of the data, so no put is deduplicated (checked after each sample).
//!   Includes the durable part: `fsync` of the blob and of its directory,
//!   and the redb commit.
//! * `get/*`: `read` (the whole file into one `Vec`) of a file stored
//!   before the group; the blob is in the page cache.
//! * `get_stream/*`: `open` and `next_chunk` until the end, dropping the
//!   pieces (no final `Vec`).
//! * `stage_put/*`: the stage limit of a put, single-threaded, no I/O:
//!   SHA-256 over the data, and per 256 KiB chunk `zstd::bulk::compress`
//!   (level 1, raw when it does not shrink, with the kind byte, as the
//!   store encodes it) and `StreamBE32<Aes256GcmSiv>::encrypt_in_place`.
//! * `stage_get/*`: the reverse over the sealed chunks of `stage_put`: copy
//!   the sealed chunk (the store reads it into a fresh buffer), decrypt in
//!   place, decompress (or drop the kind byte), SHA-256.
//!
//! Then `range_64KiB_of_64MiB/*`: `read_range` of 64 KiB at a pseudo-random
//! byte offset of a 64 MiB file.
//!
//! With the feature `s3` and an engine, the `s3_*` groups put the same
//! store on object storage beside the local one and the raw
//! `object_store` calls: see `benches/blob/s3.rs`.
//!
//! Results and their reading: `docs/BENCHMARKS-blob.md`.

mod common;
#[cfg(feature = "s3")]
#[path = "blob/s3.rs"]
mod s3;
#[cfg(feature = "s3")]
#[path = "blob/s3_backup.rs"]
mod s3_backup;

use common::temp_dir;
use std::hint::black_box;
use std::path::Path;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aead_stream::{NewStream, StreamBE32, StreamPrimitive};
use aes_gcm_siv::Aes256GcmSiv;
use aes_gcm_siv::aead::KeyInit;
use bharatvoice_store::{
    Actor, AudioFile, Compression, Config, FileId, NewUser, PutOptions, Store, UserId,
};
use criterion::{
    Bencher, BenchmarkGroup, Criterion, SamplingMode, Throughput, criterion_group, criterion_main,
    measurement::WallTime,
};
use sha2::{Digest, Sha256};
use tokio::runtime::Runtime;

/// Samples per benchmark (kept small: the machine is shared).
const SAMPLES: usize = 10;
/// The store's default chunk size, used by the stage-limit functions.
const CHUNK: usize = 256 << 10;
/// Sizes measured, with their labels.
const SIZES: [(&str, usize); 4] = [
    ("4KiB", 4 << 10),
    ("256KiB", 256 << 10),
    ("4MiB", 4 << 20),
    ("64MiB", 64 << 20),
];
/// The largest size: the data sets are generated at this length.
const MAX_SIZE: usize = 64 << 20;
/// Bytes read by the range benchmark.
const RANGE_LEN: usize = 64 << 10;
/// Key kind bytes of an encoded chunk (as in `src/blob/format.rs`).
const KIND_RAW: u8 = 0;
const KIND_ZSTD: u8 = 1;

// ---------------------------------------------------------------------------
// Data
// ---------------------------------------------------------------------------

/// splitmix64: deterministic pseudo-random numbers.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Speech-like 16 kHz mono 16-bit little-endian PCM, `len` bytes.
///
/// A pitch gliding between about 110 and 230 Hz with two higher partials
/// whose ratios drift (formant-like), under a ~4 Hz syllable envelope and a
/// phrase envelope that leaves pauses of low-level noise; plus a little
/// noise throughout.
fn speech_pcm(len: usize) -> Vec<u8> {
    use std::f64::consts::TAU;
    const RATE: f64 = 16_000.0;
    /// The slow parameters are updated every this many samples.
    const SLOW_EVERY: usize = 32;
    let samples = len / 2;
    let mut out = Vec::with_capacity(len);
    let mut rng = Rng(0x5EED_0F5E_EC40);
    let (mut p1, mut p2, mut p3) = (0.0f64, 0.0f64, 0.0f64);
    let (mut d1, mut d2, mut d3, mut amp) = (0.0, 0.0, 0.0, 0.0);
    for n in 0..samples {
        if n % SLOW_EVERY == 0 {
            let t = n as f64 / RATE;
            let f0 = 170.0 + 45.0 * (TAU * 0.7 * t).sin() + 15.0 * (TAU * 2.3 * t).sin();
            let f2 = f0 * (3.0 + 0.6 * (TAU * 0.37 * t).sin());
            let f3 = f0 * (7.0 + 1.5 * (TAU * 0.23 * t).sin());
            d1 = TAU * f0 / RATE;
            d2 = TAU * f2 / RATE;
            d3 = TAU * f3 / RATE;
            let syllable = 0.5 - 0.5 * (TAU * 4.1 * t).cos();
            let phrase = ((TAU * 0.21 * t).sin() + 0.35).clamp(0.0, 1.0);
            amp = 9000.0 * syllable * phrase;
        }
        p1 = (p1 + d1) % TAU;
        p2 = (p2 + d2) % TAU;
        p3 = (p3 + d3) % TAU;
        let noise = (rng.below(129) as f64) - 64.0;
        let v = amp * (0.6 * p1.sin() + 0.3 * p2.sin() + 0.1 * p3.sin()) + noise;
        let s = v.round().clamp(f64::from(i16::MIN), f64::from(i16::MAX)) as i16;
        out.extend_from_slice(&s.to_le_bytes());
    }
    out.resize(len, 0);
    out
}

fn random_bytes(len: usize) -> Vec<u8> {
    let mut rng = Rng(0xB10B_DA7A);
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        out.extend_from_slice(&rng.next().to_le_bytes());
    }
    out.truncate(len);
    out
}

fn pcm() -> &'static [u8] {
    static DATA: OnceLock<Vec<u8>> = OnceLock::new();
    DATA.get_or_init(|| speech_pcm(MAX_SIZE))
}

fn random() -> &'static [u8] {
    static DATA: OnceLock<Vec<u8>> = OnceLock::new();
    DATA.get_or_init(|| random_bytes(MAX_SIZE))
}

/// A data set as stored by the benchmarks.
#[derive(Clone, Copy)]
struct Kind {
    label: &'static str,
    data: fn() -> &'static [u8],
    options: fn() -> PutOptions,
}

impl Kind {
    /// The zstd level the store uses for it (`PutOptions::level`).
    fn level(&self) -> Option<i32> {
        let o = (self.options)();
        match o.compression {
            Compression::Off => None,
            Compression::Level(l) => Some(l),
            Compression::Auto => (!o.content_type.starts_with("audio/ogg")).then_some(1),
        }
    }
}

const PCM: Kind = Kind {
    label: "pcm",
    data: pcm,
    options: || PutOptions::content_type("audio/wav"),
};

const RANDOM: Kind = Kind {
    label: "random",
    data: random,
    options: || PutOptions {
        compression: Compression::Level(1),
        ..PutOptions::content_type("audio/ogg")
    },
};

const RANDOM_AUTO: Kind = Kind {
    label: "random_auto",
    data: random,
    options: || PutOptions::content_type("audio/ogg"),
};

// ---------------------------------------------------------------------------
// Stage limit: the put and get work in memory, one thread, no I/O
// ---------------------------------------------------------------------------

struct Stages {
    stream: StreamBE32<Aes256GcmSiv>,
    /// Stands for the 40-byte header the store authenticates.
    aad: [u8; 40],
}

impl Stages {
    fn new() -> Self {
        let key = [7u8; 32];
        let prefix = [1u8; 7];
        Stages {
            stream: StreamBE32::from_aead(Aes256GcmSiv::new(&key.into()), &prefix.into()),
            aad: [3u8; 40],
        }
    }

    /// Kind byte ‖ payload, as the store encodes a chunk.
    fn encode(data: &[u8], level: Option<i32>) -> Vec<u8> {
        if let Some(level) = level
            && let Ok(compressed) = zstd::bulk::compress(data, level)
            && compressed.len() < data.len()
        {
            let mut out = Vec::with_capacity(compressed.len() + 17);
            out.push(KIND_ZSTD);
            out.extend_from_slice(&compressed);
            return out;
        }
        let mut out = Vec::with_capacity(data.len() + 17);
        out.push(KIND_RAW);
        out.extend_from_slice(data);
        out
    }

    /// SHA-256 of `data`; its chunks, encoded and sealed, go to `sink` one
    /// by one (the store writes each out and frees it, so the measured
    /// sink drops them: holding all 64 MiB would add page faults that the
    /// store does not have).
    fn put(&self, data: &[u8], level: Option<i32>, mut sink: impl FnMut(Vec<u8>)) -> [u8; 32] {
        let mut hasher = Sha256::new();
        let n = data.len().div_ceil(CHUNK);
        for (i, chunk) in data.chunks(CHUNK).enumerate() {
            hasher.update(chunk);
            let mut body = Self::encode(chunk, level);
            self.stream
                .encrypt_in_place(i as u32, i + 1 == n, &self.aad, &mut body)
                .expect("seal");
            sink(body);
        }
        hasher.finalize().into()
    }

    /// Opens and decodes `sealed` (of `plain_len` bytes), returning its SHA-256.
    fn get(&self, sealed: &[Vec<u8>], plain_len: usize) -> [u8; 32] {
        let mut hasher = Sha256::new();
        let n = sealed.len();
        for (i, chunk) in sealed.iter().enumerate() {
            let mut body = chunk.clone();
            self.stream
                .decrypt_in_place(i as u32, i + 1 == n, &self.aad, &mut body)
                .expect("open");
            let expected = (plain_len - i * CHUNK).min(CHUNK);
            let plain = match body[0] {
                KIND_ZSTD => zstd::bulk::decompress(&body[1..], expected).expect("zstd"),
                _ => {
                    body.remove(0);
                    body
                }
            };
            assert_eq!(plain.len(), expected);
            hasher.update(&plain);
        }
        hasher.finalize().into()
    }
}

// ---------------------------------------------------------------------------
// Store side
// ---------------------------------------------------------------------------

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

struct Fixture {
    rt: Runtime,
    store: Store,
    owner: UserId,
    _dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Self {
        Fixture::with(|dir: &Path| Config::new(dir))
    }

    /// A store opened with `config` (given its directory), with one user.
    fn with(config: impl FnOnce(&Path) -> Config) -> Self {
        let rt = runtime();
        let dir = temp_dir("bv-bench-blob");
        let store = rt
            .block_on(Store::open(config(dir.path())))
            .expect("opening the store");
        let owner = rt
            .block_on(
                store.users().create(
                    NewUser::new("bench_u1", "bench_u1@example.in")
                        .consent(bharatvoice_store::ConsentKind::AudioStorage),
                ),
            )
            .expect("create user")
            .id;
        Fixture {
            rt,
            store,
            owner,
            _dir: dir,
        }
    }

    fn put(&self, data: &[u8], options: PutOptions) -> AudioFile {
        self.rt
            .block_on(self.store.files().put_bytes(
                Actor::User(self.owner),
                self.owner,
                data,
                options,
            ))
            .expect("put")
    }
}

/// Put counter, written into the first 8 bytes before each put.
static STAMP: AtomicU64 = AtomicU64::new(0xB1B0_0000_0000_0000);

fn stamp(bytes: &mut [u8]) {
    let n = STAMP.fetch_add(1, Ordering::Relaxed);
    bytes[..8].copy_from_slice(&n.to_le_bytes());
}

/// Times `iters` puts of a new blob each, from a task on a runtime worker.
fn bench_put(b: &mut Bencher<'_>, fx: &Fixture, data: &[u8], options: &PutOptions) {
    let mut buf = Some(data.to_vec());
    b.iter_custom(|iters| {
        let mut bytes = buf.take().expect("put buffer");
        let (store, owner, options) = (fx.store.clone(), fx.owner, options.clone());
        let (elapsed, bytes, last) = fx.rt.block_on(async move {
            tokio::spawn(async move {
                let me = Actor::User(owner);
                let mut last = None;
                let start = Instant::now();
                for _ in 0..iters {
                    stamp(&mut bytes);
                    let file = store
                        .files()
                        .put_bytes(me, owner, black_box(&bytes), options.clone())
                        .await
                        .expect("put");
                    last = Some(black_box(file).id);
                }
                (start.elapsed(), bytes, last)
            })
            .await
            .expect("bench task")
        });
        if let Some(id) = last {
            let refs = fx
                .rt
                .block_on(fx.store.files().blob_refcount(Actor::User(fx.owner), id))
                .expect("refcount");
            assert_eq!(refs, 1, "a measured put was deduplicated");
        }
        buf = Some(bytes);
        elapsed
    });
}

/// Times `iters` reads of file `id` (whole, or streamed when `stream`).
fn bench_get(b: &mut Bencher<'_>, fx: &Fixture, id: FileId, len: usize, stream: bool) {
    b.iter_custom(|iters| {
        let (store, owner) = (fx.store.clone(), fx.owner);
        fx.rt.block_on(async move {
            tokio::spawn(async move {
                let me = Actor::User(owner);
                let start = Instant::now();
                for _ in 0..iters {
                    if stream {
                        let mut reader = store.files().open(me, id).await.expect("open");
                        let mut total = 0;
                        while let Some(piece) = reader.next_chunk().await {
                            total += black_box(piece.expect("chunk")).len();
                        }
                        assert_eq!(total, len);
                    } else {
                        let bytes = store.files().read(me, id).await.expect("read");
                        assert_eq!(black_box(bytes).len(), len);
                    }
                }
                start.elapsed()
            })
            .await
            .expect("bench task")
        })
    });
}

/// Times `iters` range reads of `RANGE_LEN` bytes at pseudo-random offsets.
fn bench_range(b: &mut Bencher<'_>, fx: &Fixture, id: FileId, len: usize) {
    b.iter_custom(|iters| {
        let (store, owner) = (fx.store.clone(), fx.owner);
        fx.rt.block_on(async move {
            tokio::spawn(async move {
                let me = Actor::User(owner);
                let mut rng = Rng(iters.wrapping_mul(0x2545_F491_4F6C_DD1D));
                let span = (len - RANGE_LEN + 1) as u64;
                let start = Instant::now();
                for _ in 0..iters {
                    let offset = rng.below(span);
                    let bytes = store
                        .files()
                        .read_range(me, id, offset, RANGE_LEN as u64)
                        .await
                        .expect("range");
                    assert_eq!(black_box(bytes).len(), RANGE_LEN);
                }
                start.elapsed()
            })
            .await
            .expect("bench task")
        })
    });
}

fn configure(group: &mut BenchmarkGroup<'_, WallTime>, size: usize) {
    group
        .sample_size(SAMPLES)
        .throughput(Throughput::Bytes(size as u64));
    if size >= 64 << 20 {
        group
            .sampling_mode(SamplingMode::Flat)
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(4));
    } else if size >= 4 << 20 {
        group
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(3));
    } else {
        group
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(2));
    }
}

fn ratio(a: usize, b: usize) -> f64 {
    a as f64 / b as f64
}

fn bench_blobs(c: &mut Criterion) {
    let start = Instant::now();
    let generated = pcm().len() + random().len();
    eprintln!(
        "generated {} MiB of PCM and random bytes in {:.2?}",
        generated >> 20,
        start.elapsed()
    );
    let fx = Fixture::new();
    let stages = Stages::new();
    let mut range_files = Vec::new();

    for (label, size) in SIZES {
        // Files for the gets, and what they say about compression.
        let mut gets = Vec::new();
        let mut sealed = Vec::new();
        for kind in [PCM, RANDOM] {
            let data = &(kind.data)()[..size];
            let file = fx.put(data, (kind.options)());
            let mut chunks = Vec::new();
            let sha = stages.put(data, kind.level(), |c| chunks.push(c));
            assert_eq!(sha, file.sha256, "stage SHA-256 differs from the store's");
            assert_eq!(stages.get(&chunks, size), sha, "stage round trip");
            let encoded: usize = chunks.iter().map(|c| c.len() - 16).sum();
            eprintln!(
                "{label}/{}: stored_bytes {} / plain_bytes {} = {:.4} \
                 (zstd-1 chunks with kind bytes: {:.4}, plain/zstd {:.3})",
                kind.label,
                file.stored_bytes,
                file.plain_bytes,
                ratio(file.stored_bytes as usize, file.plain_bytes as usize),
                ratio(encoded, size),
                ratio(size, encoded),
            );
            if size == MAX_SIZE {
                range_files.push((kind, file.id));
            }
            gets.push((kind, file.id));
            sealed.push((kind, chunks));
        }

        let mut group = c.benchmark_group(format!("blob_{label}"));
        configure(&mut group, size);
        let mut puts = vec![PCM, RANDOM];
        if size == MAX_SIZE {
            puts.push(RANDOM_AUTO);
        }
        for kind in &puts {
            let data = &(kind.data)()[..size];
            group.bench_function(format!("put/{}", kind.label), |b| {
                bench_put(b, &fx, data, &(kind.options)())
            });
        }
        for &(kind, id) in &gets {
            group.bench_function(format!("get/{}", kind.label), |b| {
                bench_get(b, &fx, id, size, false)
            });
        }
        for &(kind, id) in &gets {
            group.bench_function(format!("get_stream/{}", kind.label), |b| {
                bench_get(b, &fx, id, size, true)
            });
        }
        for kind in &puts {
            let (data, level) = (&(kind.data)()[..size], kind.level());
            group.bench_function(format!("stage_put/{}", kind.label), |b| {
                b.iter(|| {
                    let mut sealed = 0;
                    let sha = stages.put(black_box(data), level, |c| sealed += black_box(c).len());
                    black_box((sha, sealed))
                })
            });
        }
        for (kind, chunks) in &sealed {
            group.bench_function(format!("stage_get/{}", kind.label), |b| {
                b.iter(|| black_box(stages.get(black_box(chunks), size)))
            });
        }
        group.finish();
    }

    let mut group = c.benchmark_group("range_64KiB_of_64MiB");
    group
        .sample_size(SAMPLES)
        .throughput(Throughput::Bytes(RANGE_LEN as u64))
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    for (kind, id) in range_files {
        group.bench_function(kind.label, |b| bench_range(b, &fx, id, MAX_SIZE));
    }
    group.finish();

    #[cfg(feature = "s3")]
    s3::bench(c, &fx);
    fx.rt.block_on(fx.store.close());
}

criterion_group! {
    name = benches;
    config = Criterion::default().without_plots();
    targets = bench_blobs
}
criterion_main!(benches);
