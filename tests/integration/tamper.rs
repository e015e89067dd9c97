//! Damaged and tampered blobs: every change is detected, nothing wrong is
//! ever returned as good data.

use bharatvoice_store::{Actor, AudioFile, Error, FileId, PutOptions, Store};
use redb::{Database, TableDefinition};

use crate::blobs::{random_bytes, small_chunk_store, speech_pcm};
use crate::common::{TestStore, blob_file, config};

const FILES: TableDefinition<u128, &[u8]> = TableDefinition::new("files");

/// Overwrites the stored record of `f` (format 1) in a closed store at
/// `data_dir`, bypassing every check of the store.
pub fn put_file_record(data_dir: &std::path::Path, f: &AudioFile) {
    // Audio file records are format 2, laid out as the public type.
    let bytes = postcard::to_extend(f, vec![2u8]).unwrap();
    let db = Database::create(data_dir.join("store.redb")).unwrap();
    let txn = db.begin_write().unwrap();
    txn.open_table(FILES)
        .unwrap()
        .insert(f.id.as_uuid().as_u128(), bytes.as_slice())
        .unwrap();
    txn.commit().unwrap();
}

fn blob_path(t: &TestStore, f: &AudioFile) -> std::path::PathBuf {
    blob_file(t.dir.path(), f)
}

async fn assert_refused(t: &TestStore, actor: Actor, id: FileId, what: &str) {
    match t.store.files().read(actor, id).await {
        Err(Error::Integrity { .. }) => {}
        Err(other) => panic!("{what}: expected an integrity error, got {other:?}"),
        Ok(_) => panic!("{what}: damaged data was returned"),
    }
    assert!(
        t.store.files().verify(actor, id).await.is_err(),
        "{what}: verify passed"
    );
}

/// A store with two files of one owner and one of another, 3 chunks each
/// (4 KiB chunks, 10,000 bytes).
async fn fixture(encrypt: bool) -> (TestStore, Actor, AudioFile, AudioFile, AudioFile) {
    let t = small_chunk_store().await;
    let a = t.user("alice").await;
    let b = t.user("bob").await;
    let opts = PutOptions {
        encrypt,
        ..PutOptions::content_type("audio/ogg")
    };
    let me = Actor::User(a.id);
    let f = t
        .store
        .files()
        .put_bytes(me, a.id, &random_bytes(10_000, 1), opts.clone())
        .await
        .unwrap();
    let g = t
        .store
        .files()
        .put_bytes(me, a.id, &random_bytes(10_000, 2), opts.clone())
        .await
        .unwrap();
    let h = t
        .store
        .files()
        .put_bytes(Actor::User(b.id), b.id, &random_bytes(10_000, 3), opts)
        .await
        .unwrap();
    (t, me, f, g, h)
}

#[tokio::test]
async fn every_flipped_bit_is_detected() {
    for encrypt in [true, false] {
        let (t, me, f, _, _) = fixture(encrypt).await;
        let path = blob_path(&t, &f);
        let good = std::fs::read(&path).unwrap();
        let positions: Vec<usize> = (0..good.len())
            .filter(|i| *i < 48 || i % 61 == 0 || *i + 40 > good.len())
            .collect();
        for i in positions {
            let mut bad = good.clone();
            bad[i] ^= 0x10;
            std::fs::write(&path, &bad).unwrap();
            assert_refused(
                &t,
                me,
                f.id,
                &format!("bit flip at byte {i} (encrypt={encrypt})"),
            )
            .await;
        }
        std::fs::write(&path, &good).unwrap();
        assert_eq!(
            t.store.files().read(me, f.id).await.unwrap(),
            random_bytes(10_000, 1)
        );
    }
}

#[tokio::test]
async fn truncation_reordering_splicing_and_header_changes_are_detected() {
    let (t, me, f, g, h) = fixture(true).await;
    let path = blob_path(&t, &f);
    let good = std::fs::read(&path).unwrap();
    let other = std::fs::read(blob_path(&t, &g)).unwrap();
    // Layout: 40-byte header, three chunks, 12-byte table, 8-byte trailer.
    let table_at = good.len() - 8 - 12;
    let lens: Vec<usize> = (0..3)
        .map(|i| {
            u32::from_le_bytes(
                good[table_at + 4 * i..table_at + 4 * i + 4]
                    .try_into()
                    .unwrap(),
            ) as usize
        })
        .collect();
    let starts = [40, 40 + lens[0], 40 + lens[0] + lens[1]];
    assert_eq!(lens[0], lens[1], "full raw chunks have equal sealed sizes");

    for cut in [
        good.len() - 1,
        good.len() - 8,
        table_at,
        starts[2],
        starts[1] + 5,
        41,
        39,
        0,
    ] {
        std::fs::write(&path, &good[..cut]).unwrap();
        assert_refused(&t, me, f.id, &format!("truncated to {cut}")).await;
    }
    // Dropping the last chunk but keeping a consistent table and trailer.
    let mut dropped = good[..starts[2]].to_vec();
    dropped.extend_from_slice(&good[table_at..table_at + 8]);
    dropped.extend_from_slice(&2u32.to_le_bytes());
    dropped.extend_from_slice(b"BVCT");
    std::fs::write(&path, &dropped).unwrap();
    assert_refused(&t, me, f.id, "last chunk dropped").await;

    let mut swapped = good.clone();
    swapped[starts[0]..starts[1]].copy_from_slice(&good[starts[1]..starts[2]]);
    swapped[starts[1]..starts[2]].copy_from_slice(&good[starts[0]..starts[1]]);
    std::fs::write(&path, &swapped).unwrap();
    assert_refused(&t, me, f.id, "chunks 0 and 1 swapped").await;
    assert!(
        t.store.files().read_range(me, f.id, 0, 10).await.is_err(),
        "range read of a moved chunk"
    );

    let mut spliced = good.clone();
    spliced[starts[1]..starts[2]].copy_from_slice(&other[starts[1]..starts[2]]);
    std::fs::write(&path, &spliced).unwrap();
    assert_refused(&t, me, f.id, "chunk spliced from another blob").await;
    assert!(
        t.store
            .files()
            .read_range(me, f.id, 4096, 10)
            .await
            .is_err()
    );
    assert_eq!(
        t.store.files().read_range(me, f.id, 0, 10).await.unwrap(),
        random_bytes(10_000, 1)[..10],
        "untouched chunks still read"
    );

    let mut header = good.clone();
    header[24] ^= 1; // key version
    std::fs::write(&path, &header).unwrap();
    assert_refused(&t, me, f.id, "header key version changed").await;
    let mut header = good.clone();
    header[30] ^= 1; // nonce prefix
    std::fs::write(&path, &header).unwrap();
    assert_refused(&t, me, f.id, "header nonce prefix changed").await;

    std::fs::copy(blob_path(&t, &h), &path).unwrap();
    assert_refused(&t, me, f.id, "swapped with another owner's blob").await;

    std::fs::remove_file(&path).unwrap();
    let e = t.store.files().read(me, f.id).await.unwrap_err();
    assert!(
        matches!(e, Error::Integrity { .. }) && e.to_string().contains("missing"),
        "{e}"
    );
}

#[tokio::test]
async fn a_sha256_mismatch_is_an_integrity_error_at_the_end_of_a_full_read() {
    let t = small_chunk_store().await;
    let u = t.user("carol").await;
    let me = Actor::User(u.id);
    let f = t
        .store
        .files()
        .put_bytes(me, u.id, &speech_pcm(9000, 1), PutOptions::default())
        .await
        .unwrap();
    let path = t.path();
    drop(t.store);
    let mut changed = f.clone();
    changed.sha256[0] ^= 1;
    put_file_record(&path, &changed);
    let store = Store::open(config(&path).blob_chunk_bytes(4096))
        .await
        .unwrap();
    let e = store.files().read(me, f.id).await.unwrap_err();
    assert!(
        matches!(e, Error::Integrity { .. }) && e.to_string().contains("SHA-256"),
        "{e}"
    );
    let mut reader = store.files().open(me, f.id).await.unwrap();
    let mut sink = Vec::new();
    let err = tokio::io::AsyncReadExt::read_to_end(&mut reader, &mut sink)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
}
