//! The tier-1 hit path allocates nothing beyond what moka's own `get` does:
//! allocations are counted per thread by a wrapper around the system
//! allocator (it only counts; every test in this binary runs through it).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::Arc;

use bharatvoice_store::CacheConfig;

use crate::cache::open_with;

struct Counting;

thread_local! {
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: every call is forwarded to the system allocator unchanged; the
// counter is a const-initialised thread-local `Cell` that never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: forwarded unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocs() -> u64 {
    ALLOCS.with(|c| c.get())
}

#[tokio::test(flavor = "current_thread")]
async fn a_tier1_hit_allocates_nothing_beyond_moka() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_with(dir.path(), CacheConfig::default()).await;
    let c = store.cache();
    let keys: Vec<String> = (0..100).map(|i| format!("key:{i}")).collect();
    let moka: moka::future::Cache<String, Arc<[u8]>> = moka::future::Cache::new(1000);
    for k in &keys {
        c.set_bytes(k, b"value").await.unwrap();
        moka.insert(k.clone(), Arc::from(&b"value"[..])).await;
    }
    c.run_pending_tasks().await;
    moka.run_pending_tasks().await;
    for k in &keys {
        assert!(c.get_bytes(k).await.unwrap().is_some());
    }
    let rounds = 100;
    let before = allocs();
    for _ in 0..rounds {
        for k in &keys {
            std::hint::black_box(moka.get(k.as_str()).await);
        }
    }
    let moka_allocs = allocs() - before;
    let before = allocs();
    for _ in 0..rounds {
        for k in &keys {
            std::hint::black_box(c.get_bytes(k).await.unwrap());
        }
    }
    let ours = allocs() - before;
    assert_eq!(c.stats().tier1.misses, 0);
    println!("10,000 hits: moka {moka_allocs} allocations, tier 1 {ours}");
    // moka's housekeeping may run on the reading thread (and allocate) at
    // different moments in the two loops: allow it a little slack.
    assert!(ours <= moka_allocs + 8, "ours {ours}, moka {moka_allocs}");
}
