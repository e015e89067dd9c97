//! Stored files: put, read back (stream, bytes, range), list, dedup, sizes.

use bharatvoice_store::{
    Actor, Codec, Compression, Encryption, Error, ListFilter, ListOptions, PutOptions, SessionId,
    Store,
};
use tokio::io::AsyncReadExt;

use crate::common::{TestStore, config, open_store};

/// Speech-like 16-bit PCM: a few drifting tones and a little noise.
pub fn speech_pcm(bytes: usize, seed: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes);
    let mut noise = seed.wrapping_mul(2_654_435_761).max(1);
    let mut i = 0u32;
    while out.len() + 1 < bytes {
        let t = f64::from(i) / 16_000.0;
        let pitch = 140.0 + 40.0 * (t * 0.7).sin();
        let env = 0.5 + 0.5 * (t * 3.0).sin();
        let v = env
            * (3000.0 * (t * pitch * std::f64::consts::TAU).sin()
                + 1200.0 * (t * pitch * 2.1 * std::f64::consts::TAU).sin());
        noise ^= noise << 13;
        noise ^= noise >> 17;
        noise ^= noise << 5;
        let sample = (v as i32 + (noise % 64) as i32 - 32) as i16;
        out.extend_from_slice(&sample.to_le_bytes());
        i += 1;
    }
    out.resize(bytes, 0);
    out
}

pub fn random_bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 32) as u8
        })
        .collect()
}

/// A store with 4 KiB chunks, so multi-chunk files stay small in tests.
pub async fn small_chunk_store() -> TestStore {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(config(dir.path()).blob_chunk_bytes(4096))
        .await
        .unwrap();
    TestStore { dir, store }
}

#[tokio::test]
async fn put_returns_the_record_and_reads_back_three_ways() {
    let t = small_chunk_store().await;
    let u = t.user("asha").await;
    let me = Actor::User(u.id);
    let data = speech_pcm(50_000, 1);
    let session = SessionId::new();
    let opts = PutOptions {
        name: Some("hello.wav".into()),
        session_id: Some(session),
        tags: vec!["greeting".into()],
        ..PutOptions::content_type("audio/wav")
    };
    let f = t
        .store
        .files()
        .put(me, u.id, data.as_slice(), opts)
        .await
        .unwrap();
    assert_eq!(f.owner, u.id);
    assert_eq!(f.plain_bytes, 50_000);
    assert_eq!(f.encryption, Encryption::Aes256GcmSiv);
    assert_eq!(f.codec, Codec::Zstd);
    assert_eq!(f.key_version, 1);
    assert!(
        f.stored_bytes < 50_000 + 13 * 17 + 200,
        "PCM compresses a little: {}",
        f.stored_bytes
    );
    use sha2::Digest;
    assert_eq!(f.sha256, <[u8; 32]>::from(sha2::Sha256::digest(&data)));
    assert!(f.expires_at.is_some());
    assert_eq!(t.store.files().read(me, f.id).await.unwrap(), data);
    let mut stream = t.store.files().open(me, f.id).await.unwrap();
    let mut streamed = Vec::new();
    stream.read_to_end(&mut streamed).await.unwrap();
    assert_eq!(streamed, data);
    for (off, len) in [
        (0, 10),
        (4090, 20),
        (4096, 4096),
        (1, 49_999),
        (49_990, 100),
        (50_000, 5),
        (12_345, 0),
    ] {
        let got = t
            .store
            .files()
            .read_range(me, f.id, off, len)
            .await
            .unwrap();
        let end = (off + len).min(50_000) as usize;
        assert_eq!(got, &data[off as usize..end], "range {off}+{len}");
        let mut streamed = Vec::new();
        let mut range = t
            .store
            .files()
            .open_range(me, f.id, off, len)
            .await
            .unwrap();
        range.read_to_end(&mut streamed).await.unwrap();
        assert_eq!(streamed, &data[off as usize..end], "stream {off}+{len}");
    }
    let mut whole = Vec::new();
    let mut range = t
        .store
        .files()
        .open_range(me, f.id, 0, u64::MAX)
        .await
        .unwrap();
    range.read_to_end(&mut whole).await.unwrap();
    assert_eq!(whole, data);
    assert!(matches!(
        t.store.files().open_range(me, f.id, 50_001, 1).await,
        Err(Error::InvalidInput { .. })
    ));
    assert!(matches!(
        t.store.files().read_range(me, f.id, 50_001, 1).await,
        Err(Error::InvalidInput { .. })
    ));
    assert_eq!(t.store.files().stat(me, f.id).await.unwrap(), f);
    let report = t.store.files().verify(me, f.id).await.unwrap();
    assert_eq!(report.plain_bytes, 50_000);
}

#[tokio::test]
async fn edge_sizes_empty_one_chunk_and_one_more_byte() {
    let t = small_chunk_store().await;
    let u = t.user("bala").await;
    let me = Actor::User(u.id);
    for (n, opts) in [
        (0usize, PutOptions::default()),
        (4096, PutOptions::default()),
        (4097, PutOptions::default()),
        (
            4097,
            PutOptions {
                encrypt: false,
                ..Default::default()
            },
        ),
        (
            8192,
            PutOptions {
                compression: Compression::Off,
                ..Default::default()
            },
        ),
    ] {
        let data = random_bytes(n, n as u64);
        let f = t
            .store
            .files()
            .put_bytes(me, u.id, &data, opts.clone())
            .await
            .unwrap();
        assert_eq!(f.plain_bytes, n as u64);
        assert_eq!(
            t.store.files().read(me, f.id).await.unwrap(),
            data,
            "{n} bytes {opts:?}"
        );
        t.store.files().verify(me, f.id).await.unwrap();
        assert_eq!(
            t.store
                .files()
                .read_range(me, f.id, 0, 10_000)
                .await
                .unwrap(),
            data
        );
    }
}

#[tokio::test]
async fn same_bytes_are_stored_once_per_owner_and_addresses_hide_the_hash() {
    let t = open_store().await;
    let a = t.user("chitra").await;
    let b = t.user("dev").await;
    let data = speech_pcm(20_000, 7);
    let f1 = t
        .store
        .files()
        .put_bytes(Actor::User(a.id), a.id, &data, PutOptions::default())
        .await
        .unwrap();
    let f2 = t
        .store
        .files()
        .put_bytes(Actor::User(a.id), a.id, &data, PutOptions::default())
        .await
        .unwrap();
    let g = t
        .store
        .files()
        .put_bytes(Actor::User(b.id), b.id, &data, PutOptions::default())
        .await
        .unwrap();
    assert_ne!(f1.id, f2.id);
    assert_eq!(f1.blob, f2.blob, "deduplicated for one owner");
    assert_ne!(f1.blob, g.blob, "another owner's address differs");
    assert_eq!(
        t.store
            .files()
            .blob_refcount(Actor::User(a.id), f1.id)
            .await
            .unwrap(),
        2
    );
    let mut names = Vec::new();
    for entry in walk(&t.dir.path().join("blobs")) {
        names.push(entry.file_name().unwrap().to_string_lossy().into_owned());
    }
    assert_eq!(names.len(), 2, "one blob per owner: {names:?}");
    let plain_hash = bharatvoice_store::BlobAddress(f1.sha256).to_string();
    assert!(
        !names.contains(&plain_hash),
        "no file is named by the plain SHA-256"
    );
    assert!(
        walk(&t.dir.path().join("tmp")).is_empty(),
        "no temporary files left"
    );
    // Storage parameters are part of the address.
    let raw = t
        .store
        .files()
        .put_bytes(
            Actor::User(a.id),
            a.id,
            &data,
            PutOptions {
                encrypt: false,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_ne!(raw.blob, f1.blob);
}

pub fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[tokio::test]
async fn list_filters_pages_delete_and_restore() {
    let t = open_store().await;
    let u = t.user("esha").await;
    let me = Actor::User(u.id);
    let s = SessionId::new();
    let mut ids = Vec::new();
    for i in 0..6u8 {
        let opts = PutOptions {
            content_type: if i % 2 == 0 {
                "audio/wav".into()
            } else {
                "audio/ogg".into()
            },
            session_id: (i < 3).then_some(s),
            tags: if i == 5 { vec!["keep".into()] } else { vec![] },
            ..Default::default()
        };
        ids.push(
            t.store
                .files()
                .put_bytes(me, u.id, &[i; 100], opts)
                .await
                .unwrap()
                .id,
        );
    }
    let list = |filter: ListFilter| {
        let store = t.store.clone();
        async move {
            store
                .files()
                .list(me, u.id, filter, ListOptions::first(100))
                .await
                .unwrap()
                .items
                .iter()
                .map(|f| f.id)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        list(ListFilter::default()).await,
        ids.iter().rev().copied().collect::<Vec<_>>()
    );
    assert_eq!(
        list(ListFilter {
            content_type: Some("audio/wav".into()),
            ..Default::default()
        })
        .await,
        [ids[4], ids[2], ids[0]]
    );
    assert_eq!(
        list(ListFilter {
            session_id: Some(s),
            ..Default::default()
        })
        .await,
        [ids[2], ids[1], ids[0]]
    );
    assert_eq!(
        list(ListFilter {
            tag: Some("keep".into()),
            ..Default::default()
        })
        .await,
        [ids[5]]
    );
    let page = t
        .store
        .files()
        .list(me, u.id, ListFilter::default(), ListOptions::first(4))
        .await
        .unwrap();
    let rest = t
        .store
        .files()
        .list(
            me,
            u.id,
            ListFilter::default(),
            ListOptions::after(page.next.unwrap(), 4),
        )
        .await
        .unwrap();
    assert_eq!(rest.items.len(), 2);
    assert!(rest.next.is_none());
    t.store.files().delete(me, ids[0]).await.unwrap();
    assert!(matches!(
        t.store.files().read(me, ids[0]).await,
        Err(Error::NotFound { .. })
    ));
    assert_eq!(list(ListFilter::default()).await.len(), 5);
    t.store.files().restore(me, ids[0]).await.unwrap();
    assert_eq!(
        t.store.files().read(me, ids[0]).await.unwrap(),
        vec![0u8; 100]
    );
}

#[tokio::test]
async fn bad_options_and_unknown_owners_are_refused() {
    let t = open_store().await;
    let u = t.user("farah").await;
    let me = Actor::User(u.id);
    let bad = PutOptions {
        content_type: "nonsense".into(),
        ..Default::default()
    };
    assert!(matches!(
        t.store.files().put_bytes(me, u.id, b"x", bad).await,
        Err(Error::InvalidInput { .. })
    ));
    let bad = PutOptions {
        retention_days: Some(0),
        ..Default::default()
    };
    assert!(matches!(
        t.store.files().put_bytes(me, u.id, b"x", bad).await,
        Err(Error::InvalidInput { .. })
    ));
    assert!("21".parse::<Compression>().is_err());
    let ghost = bharatvoice_store::UserId::new();
    assert!(matches!(
        t.store
            .files()
            .put_bytes(Actor::System, ghost, b"x", PutOptions::default())
            .await,
        Err(Error::NotFound { .. })
    ));
    assert!(
        walk(&t.dir.path().join("tmp")).is_empty(),
        "refused puts leave no temporary files"
    );
}

#[tokio::test]
async fn retention_comes_from_the_profile_or_the_store_default() {
    let t = open_store().await;
    let u = t.user("gita").await;
    let me = Actor::User(u.id);
    let day = 86_400_000_000i64;
    let f = t
        .store
        .files()
        .put_bytes(me, u.id, b"a", PutOptions::default())
        .await
        .unwrap();
    let days = (f.expires_at.unwrap().as_micros() - f.created_at.as_micros() + day / 2) / day;
    assert_eq!(days, 90);
    let change = bharatvoice_store::ProfileUpdate {
        audio_retention_days: Some(Some(7)),
        ..Default::default()
    };
    t.store.profiles().upsert(u.id, change).await.unwrap();
    let f = t
        .store
        .files()
        .put_bytes(me, u.id, b"b", PutOptions::default())
        .await
        .unwrap();
    assert_eq!(
        (f.expires_at.unwrap().as_micros() - f.created_at.as_micros() + day / 2) / day,
        7
    );
    let f = t
        .store
        .files()
        .put_bytes(
            me,
            u.id,
            b"c",
            PutOptions {
                retention_days: Some(3),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (f.expires_at.unwrap().as_micros() - f.created_at.as_micros() + day / 2) / day,
        3
    );
}

#[tokio::test]
async fn left_over_temporary_files_are_removed_at_open() {
    let t = open_store().await;
    let path = t.path();
    drop(t.store);
    std::fs::write(
        path.join("tmp/0123456789abcdef0123456789abcdef.part"),
        b"half a blob",
    )
    .unwrap();
    let store = Store::open(config(&path)).await.unwrap();
    assert!(walk(&path.join("tmp")).is_empty());
    drop(store);
}
