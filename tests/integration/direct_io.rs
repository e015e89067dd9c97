//! Past its cache limit a blob is written around the page cache
//! (`O_DIRECT`, from a block boundary, through a staging buffer, with the
//! last partial block written buffered). These puts hit the awkward
//! layouts: the switch in the middle of a chunk, chunks so small after
//! compression that the switch waits for a later one, a limit that is not
//! block-aligned, a size that ends on a stage boundary. Each file must read
//! back exactly, whole and by ranges across the seams, and verify; the
//! `stored` debug event says how many bytes went direct, so a sink that
//! silently stopped switching fails here too; a put cancelled mid-blob
//! must leave nothing behind. Runs under the target dir
//! (the checkout's filesystem; ext4 here), not a tmpfs `/tmp`.
#![cfg(target_os = "linux")]

use std::time::{Duration, Instant};

use bharatvoice_store::{Actor, ListFilter, ListOptions, NewUser, PutOptions, Store};
use tokio::io::AsyncWriteExt;

use crate::blobs::{random_bytes, speech_pcm};
use crate::common::config;
use crate::logs::{Logs, capture};

/// `direct_bytes` of the `stored` event for file `id`.
fn direct_bytes(logs: &Logs, id: &str) -> u64 {
    let text = logs.text();
    let line = text
        .lines()
        .find(|l| l.contains("stored") && l.contains(id))
        .unwrap_or_else(|| panic!("no stored event for {id} in:\n{text}"));
    let value = line
        .split("direct_bytes=")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .unwrap_or_else(|| panic!("no direct_bytes in {line}"));
    value.parse().expect("a number")
}

/// Mostly zeros (4 KiB chunks of them compress to a few bytes) with a
/// random 4 KiB island every 16 KiB.
fn sparse(len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    let island = random_bytes(4096, 9);
    for at in (0..len).step_by(16 << 10).skip(1) {
        let n = island.len().min(len - at);
        out[at..at + n].copy_from_slice(&island[..n]);
    }
    out
}

#[tokio::test]
async fn large_blobs_go_around_the_page_cache_and_read_back_exactly() {
    let (logs, _guard) = capture(tracing::Level::DEBUG, false);
    let root = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir");

    // (name, chunk size, cache limit, data, expect direct writes)
    let cases: Vec<(&str, u32, u64, Vec<u8>, bool)> = vec![
        (
            "default",
            256 << 10,
            1 << 20,
            random_bytes((3 << 20) + 5, 1),
            true,
        ),
        ("stage_end", 256 << 10, 0, random_bytes(2 << 20, 2), true),
        ("tiny_chunks", 4096, 0, sparse((6 << 20) + 777), true),
        (
            "odd_limit",
            64 << 10,
            (1 << 20) + 3,
            speech_pcm((5 << 20) + 1, 3),
            true,
        ),
        (
            "small",
            256 << 10,
            1 << 20,
            random_bytes(64 << 10, 4),
            false,
        ),
    ];
    for (name, chunk, limit, data, direct) in cases {
        let dir = root.path().join(name);
        let store = Store::open(
            config(&dir)
                .blob_chunk_bytes(chunk)
                .blob_cache_limit_bytes(limit),
        )
        .await
        .expect("open");
        let user = store
            .users()
            .create(
                NewUser::new(name, format!("{name}@example.in"))
                    .consent(bharatvoice_store::ConsentKind::AudioStorage),
            )
            .await
            .expect("user")
            .id;
        let me = Actor::User(user);
        let f = store
            .files()
            .put_bytes(me, user, &data, PutOptions::content_type("audio/wav"))
            .await
            .expect("put");
        let went_direct = direct_bytes(&logs, &f.id.to_string());
        assert_eq!(
            went_direct > 0,
            direct,
            "{name}: {went_direct} bytes direct"
        );
        assert!(went_direct <= f.stored_bytes, "{name}");
        assert!(
            store.files().read(me, f.id).await.expect("read") == data,
            "{name}: read back differs"
        );
        let len = data.len() as u64;
        for (offset, n) in [
            (0, 100),
            ((1 << 20) - 10, 40),
            (len / 2, 70_000),
            (len - 7, 7),
        ] {
            if offset >= len {
                continue;
            }
            let got = store
                .files()
                .read_range(me, f.id, offset, n)
                .await
                .expect("range");
            let end = (offset + n).min(len) as usize;
            assert!(
                got == data[offset as usize..end],
                "{name}: range {offset}+{n} differs"
            );
        }
        let report = store.files().verify(me, f.id).await.expect("verify");
        assert_eq!(report.plain_bytes, len, "{name}");
        store.close().await;
    }
}

/// A put dropped while its blob is being written directly (its future
/// cancelled, as `select!` or a timeout does) leaves nothing behind: the
/// writer threads stop, `tmp/` empties, no record appears, and the next
/// put works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_put_leaves_nothing_behind() {
    let root = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir");
    let dir = root.path().join("cancel");
    let store = Store::open(config(&dir).blob_cache_limit_bytes(0))
        .await
        .expect("open");
    let user = store
        .users()
        .create(
            NewUser::new("canceller", "canceller@example.in")
                .consent(bharatvoice_store::ConsentKind::AudioStorage),
        )
        .await
        .expect("user")
        .id;
    let me = Actor::User(user);

    // A caller that streams 3 MiB quickly, then stalls: by then the sink
    // has passed 1 MiB and writes directly.
    let (mut tx, rx) = tokio::io::duplex(64 << 10);
    let feeder = tokio::spawn(async move {
        let data = random_bytes(3 << 20, 7);
        tx.write_all(&data).await.expect("feed");
        tokio::time::sleep(Duration::from_secs(60)).await;
        drop(tx);
    });
    let files = store.files();
    let put = files.put(me, user, rx, PutOptions::content_type("audio/ogg"));
    let cancelled = tokio::time::timeout(Duration::from_millis(1500), put).await;
    assert!(cancelled.is_err(), "the put finished: {cancelled:?}");
    feeder.abort();

    let tmp = dir.join("tmp");
    let start = Instant::now();
    loop {
        let left: Vec<_> = std::fs::read_dir(&tmp)
            .expect("tmp dir")
            .map(|e| e.expect("entry").file_name())
            .collect();
        if left.is_empty() {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "left in tmp/: {left:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let page = store
        .files()
        .list(me, user, ListFilter::default(), ListOptions::first(10))
        .await
        .expect("list");
    assert!(page.items.is_empty(), "a record appeared: {:?}", page.items);

    let data = random_bytes((2 << 20) + 3, 8);
    let f = store
        .files()
        .put_bytes(me, user, &data, PutOptions::content_type("audio/ogg"))
        .await
        .expect("the next put");
    assert!(store.files().read(me, f.id).await.expect("read") == data);
}
