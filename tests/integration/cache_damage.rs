//! A damaged `cache.redb`, whatever the damage: the store opens, user data
//! is untouched, a lookup returns the right value or a miss (never another
//! value), and tier 2 sets the file aside and comes back empty.

use std::path::Path;
use std::time::Duration;

use bharatvoice_store::{CacheConfig, Error, Store, Tier2State, WriteMode};

use crate::cache_tiers::eventually;
use crate::common::{bvstore, config, stderr, stdout};

const KEYS: usize = 300;
const PAGE: usize = 4096;
/// Where in each page a byte is flipped.
const OFFSETS: [usize; 6] = [0, 9, 64, 700, 2100, 4095];
/// One page in this many is also read through the CLI.
const CLI_EVERY: usize = 4;

fn value(i: usize) -> String {
    format!("v{i}-{}", "x".repeat(i % 40))
}

fn cache_config() -> CacheConfig {
    CacheConfig::default()
        .write_mode(WriteMode::WriteThrough)
        .retry_interval(Duration::from_millis(10))
}

async fn open(dir: &Path) -> Store {
    Store::open(config(dir).cache(cache_config()))
        .await
        .expect("the store opens whatever the damage to cache.redb")
}

/// Opens the store over a damaged copy and checks every promise.
async fn check(dir: &Path, user: bharatvoice_store::UserId, what: &str) {
    let store = open(dir).await;
    assert_eq!(store.users().get(user).unwrap().username, "ravi", "{what}");
    let c = store.cache();
    for i in 0..KEYS {
        let k = format!("k{i}");
        match c.get::<String>(&k).await {
            Ok(None) => {}
            Ok(Some(v)) => assert_eq!(v, value(i), "{what}: a wrong value for {k}"),
            // A value that reads back as another type is a wrong value too.
            Err(e) => panic!("{what}: get {k}: {e}"),
        }
    }
    // Tier 2 is not poisoned: it is (or comes back) healthy and takes
    // writes. A write may be the first to meet the damage: it is refused,
    // the file is set aside, and the next one goes through.
    eventually(what, || c.stats().tier2.state == Tier2State::Healthy).await;
    if let Err(e) = c.set("after", &what).await {
        assert!(matches!(e, Error::CacheUnavailable { .. }), "{what}: {e}");
        eventually(what, || c.stats().tier2.state == Tier2State::Healthy).await;
        c.set("after", &what).await.unwrap();
    }
    assert_eq!(
        c.get::<String>("after").await.unwrap().as_deref(),
        Some(what)
    );
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flipped_byte_anywhere_in_cache_redb_never_stops_the_store_or_lies() {
    let base = tempfile::tempdir().unwrap();
    let user = {
        let store = open(base.path()).await;
        let user = store
            .users()
            .create(bharatvoice_store::NewUser::new("ravi", "ravi@example.in"))
            .await
            .unwrap();
        for i in 0..KEYS {
            store
                .cache()
                .set(&format!("k{i}"), &value(i))
                .await
                .unwrap();
        }
        store.close().await;
        user.id
    };
    let cache = std::fs::read(base.path().join("cache.redb")).unwrap();
    let meta = std::fs::read(base.path().join("store.redb")).unwrap();
    let pages = cache.len().div_ceil(PAGE);
    let work = tempfile::tempdir().unwrap();
    let d = work.path();
    for name in ["blobs", "tmp"] {
        std::fs::create_dir(d.join(name)).unwrap();
    }
    std::fs::copy(base.path().join("master.key"), d.join("master.key")).unwrap();
    let reset = |damaged: &[u8]| {
        let _ = std::fs::remove_file(d.join("cache.redb.damaged"));
        std::fs::write(d.join("store.redb"), &meta).unwrap();
        std::fs::write(d.join("cache.redb"), damaged).unwrap();
    };
    for page in 0..pages {
        for off in OFFSETS {
            let at = page * PAGE + off;
            if at >= cache.len() {
                continue;
            }
            let mut damaged = cache.clone();
            damaged[at] = !damaged[at];
            reset(&damaged);
            if off == OFFSETS[2] && page % CLI_EVERY == 0 {
                for k in [3, KEYS / 2, KEYS - 1] {
                    let out = bvstore(d, &["cache", "get", &format!("k{k}")]);
                    let code = out.status.code();
                    assert!(
                        code == Some(1) || code == Some(0),
                        "byte {at}: exit {code:?}: {}",
                        stderr(&out)
                    );
                    if code == Some(0) {
                        assert_eq!(stdout(&out), format!("{:?}\n", value(k)), "byte {at}");
                    }
                }
                reset(&damaged);
            }
            check(d, user, &format!("byte {at} of {}", cache.len())).await;
        }
    }
}
