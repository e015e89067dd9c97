//! Storing large recordings does not fill the OS page cache: blobs of at
//! least `Config::blob_cache_limit_bytes` are dropped from it once durable,
//! smaller ones stay cached, and `u64::MAX` keeps everything. Residency is
//! read with `mincore(2)`, on a directory under the target dir (a tmpfs
//! `/tmp` would keep its pages whatever we advise).
#![cfg(target_os = "linux")]

use std::path::Path;
use std::time::{Duration, Instant};

use bharatvoice_store::{Actor, AudioFile, NewUser, PutOptions, Store, UserId};

use crate::blobs::random_bytes;
use crate::common::{blob_file, config};

/// (resident pages, total pages) of a file.
fn residency(path: &Path) -> (usize, usize) {
    use std::os::fd::AsRawFd;
    let file = std::fs::File::open(path).expect("open blob");
    let len = file.metadata().expect("stat blob").len() as usize;
    let page = 4096;
    let pages = len.div_ceil(page);
    let mut vec = vec![0u8; pages];
    // SAFETY: a read-only shared mapping of a file we hold open, unmapped
    // before returning; mincore writes one byte per page into `vec`.
    unsafe {
        let addr = libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_SHARED,
            file.as_raw_fd(),
            0,
        );
        assert_ne!(addr, libc::MAP_FAILED, "mmap");
        let rc = libc::mincore(addr, len, vec.as_mut_ptr());
        libc::munmap(addr, len);
        assert_eq!(rc, 0, "mincore");
    }
    (vec.iter().filter(|b| **b & 1 == 1).count(), pages)
}

/// Waits (the pages are dropped just after the put is acknowledged) until
/// `want` holds for the blob's residency, or fails with what was seen.
async fn eventually(path: &Path, what: &str, want: impl Fn(usize, usize) -> bool) {
    let start = Instant::now();
    loop {
        let (resident, total) = residency(path);
        if want(resident, total) {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{what}: {resident} of {total} pages resident"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Stores `bytes` for user `name` (created on first use), without reading
/// them back (a read brings the pages in again).
async fn store_as(store: &Store, name: &str, bytes: &[u8]) -> (UserId, AudioFile) {
    let user = match store.users().get_by_username(name) {
        Ok(u) => u,
        Err(_) => store
            .users()
            .create(
                NewUser::new(name, format!("{name}@example.in"))
                    .consent(bharatvoice_store::ConsentKind::AudioStorage),
            )
            .await
            .expect("user"),
    };
    let f = store
        .files()
        .put_bytes(
            Actor::User(user.id),
            user.id,
            bytes,
            PutOptions::content_type("audio/ogg"),
        )
        .await
        .expect("put");
    (user.id, f)
}

async fn read_back(store: &Store, (user, f): &(UserId, AudioFile)) -> Vec<u8> {
    store
        .files()
        .read(Actor::User(*user), f.id)
        .await
        .expect("read")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_blobs_leave_the_page_cache_and_small_ones_stay() {
    let root = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir");
    let big = random_bytes(8 << 20, 1);
    let small = random_bytes(64 << 10, 2);

    // Default limit (1 MiB): the big blob leaves, the small one stays.
    let dir = root.path().join("default");
    let store = Store::open(config(&dir)).await.expect("open");
    let b = store_as(&store, "pagecache", &big).await;
    eventually(&blob_file(&dir, &b.1), "8 MiB, default limit", |r, t| {
        r * 20 < t
    })
    .await;
    let s = store_as(&store, "pagecache", &small).await;
    let (resident, total) = residency(&blob_file(&dir, &s.1));
    assert_eq!(resident, total, "a 64 KiB blob stays cached");
    assert_eq!(read_back(&store, &b).await, big);
    assert_eq!(read_back(&store, &s).await, small);
    drop(store);

    // u64::MAX keeps everything.
    let dir = root.path().join("keep");
    let config_keep = config(&dir).blob_cache_limit_bytes(u64::MAX);
    let store = Store::open(config_keep).await.expect("open");
    let k = store_as(&store, "keeper", &big).await;
    let (resident, total) = residency(&blob_file(&dir, &k.1));
    assert!(resident * 10 >= total * 9, "kept: {resident} of {total}");
    drop(store);

    // 0 drops even small blobs.
    let dir = root.path().join("none");
    let store = Store::open(config(&dir).blob_cache_limit_bytes(0))
        .await
        .expect("open");
    let d = store_as(&store, "dropper", &small).await;
    eventually(&blob_file(&dir, &d.1), "64 KiB, limit 0", |r, t| r * 20 < t).await;
    assert_eq!(read_back(&store, &d).await, small);
}
