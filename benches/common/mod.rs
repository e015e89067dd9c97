//! Helpers shared by the benchmark binaries (each includes this module
//! and uses a part of it, hence the `dead_code` allowances).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// A temporary directory for a benchmark's store, under `BV_BENCH_DIR` if
/// set (to measure another disk), else the system's temporary directory.
pub fn temp_dir(label: &str) -> tempfile::TempDir {
    let mut builder = tempfile::Builder::new();
    builder.prefix(label);
    match std::env::var_os("BV_BENCH_DIR") {
        Some(parent) => builder.tempdir_in(parent),
        None => builder.tempdir(),
    }
    .expect("temporary directory")
}

/// splitmix64: deterministic pseudo-random numbers.
#[allow(dead_code)]
pub struct Rng(pub u64);

#[allow(dead_code)]
impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn index(&mut self, len: usize) -> usize {
        (self.next() % len as u64) as usize
    }

    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let r = self.next().to_le_bytes();
            chunk.copy_from_slice(&r[..chunk.len()]);
        }
    }
}

/// Runs `f(i)` for `i` in `0..n` with `in_flight` tasks; results in order of `i`.
#[allow(dead_code)]
pub async fn run_concurrent<T, F, Fut>(n: usize, in_flight: usize, f: F) -> Vec<T>
where
    T: Send + 'static,
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = T> + Send,
{
    let f = Arc::new(f);
    let next = Arc::new(AtomicU64::new(0));
    let mut handles = Vec::with_capacity(in_flight);
    for _ in 0..in_flight {
        let (f, next) = (Arc::clone(&f), Arc::clone(&next));
        handles.push(tokio::spawn(async move {
            let mut out = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                if i >= n {
                    break out;
                }
                out.push((i, f(i).await));
            }
        }));
    }
    let mut all = Vec::with_capacity(n);
    for h in handles {
        all.extend(h.await.expect("populate task"));
    }
    all.sort_unstable_by_key(|(i, _)| *i);
    all.into_iter().map(|(_, t)| t).collect()
}

/// A multi-threaded tokio runtime for a benchmark.
#[allow(dead_code)]
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// A count from the environment variable `name` (`_` allowed as a
/// separator), else `default`.
#[allow(dead_code)]
pub fn env_count(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(v) => v
            .replace('_', "")
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a number")),
        Err(_) => default,
    }
}
