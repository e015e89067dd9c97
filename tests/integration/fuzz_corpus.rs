//! Replays the `record_decode` fuzz corpus and systematic mutations of
//! valid records through every decoder: errors, never panics.

use bharatvoice_store::fuzzing::{decode_any, sample_records};

#[test]
fn committed_corpus_replays() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/record_decode");
    let entries: Vec<_> = std::fs::read_dir(&dir)
        .expect("fuzz corpus is committed")
        .collect();
    assert!(entries.len() >= 5, "corpus too small: {}", entries.len());
    for entry in entries {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        decode_any(&bytes);
    }
}

#[test]
fn every_truncation_and_bit_flip_of_valid_records_is_handled() {
    for (kind, bytes) in sample_records() {
        assert_eq!(
            decode_any(&bytes),
            1,
            "{kind} decodes as exactly one record kind"
        );
        for cut in 0..bytes.len() {
            decode_any(&bytes[..cut]);
        }
        for i in 0..bytes.len() {
            for bit in 0..8 {
                let mut m = bytes.clone();
                m[i] ^= 1 << bit;
                decode_any(&m);
            }
        }
    }
}

/// Regenerates the seed corpus: `cargo test -- --ignored write_seed_corpus`.
#[test]
#[ignore]
fn write_seed_corpus() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/record_decode");
    std::fs::create_dir_all(&dir).unwrap();
    for (kind, bytes) in sample_records() {
        std::fs::write(dir.join(format!("seed-{kind}")), &bytes).unwrap();
    }
}

fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let entries: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{target} corpus is committed: {e}"))
        .collect();
    entries
        .into_iter()
        .map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .collect()
}

#[test]
fn blob_corpora_replay() {
    use bharatvoice_store::fuzzing::{blob_header, blob_read};
    let headers = corpus("blob_header");
    assert!(headers.len() >= 4);
    for data in &headers {
        blob_header(data);
    }
    let blobs = corpus("blob_read");
    assert!(blobs.len() >= 4);
    let mut authentic = 0;
    for data in &blobs {
        blob_header(data);
        if let Some(plain) = blob_read(data) {
            assert_eq!(
                plain.len() as u64,
                u64::from_le_bytes(data[16..24].try_into().unwrap())
            );
            authentic += 1;
        }
    }
    assert!(authentic >= 4, "the committed corpus holds valid blobs");
}

#[test]
fn a_blob_decodes_only_unchanged() {
    use bharatvoice_store::fuzzing::{blob_read, sample_blob};
    let plain: Vec<u8> = (0..10_000u32).map(|i| (i * 7 % 251) as u8).collect();
    for (encrypt, compress) in [(true, true), (true, false), (false, true)] {
        let blob = sample_blob(&plain, 4096, encrypt, compress);
        assert_eq!(blob_read(&blob).as_deref(), Some(plain.as_slice()));
        let sampled = |i: &usize| *i < 64 || i.is_multiple_of(13) || *i + 64 > blob.len();
        for i in (0..blob.len()).filter(sampled) {
            let mut m = blob.clone();
            m[i] ^= 0x04;
            assert!(
                blob_read(&m).is_none(),
                "a flip at byte {i} was not detected (encrypt={encrypt})"
            );
        }
        for cut in (0..blob.len()).filter(sampled) {
            assert!(
                blob_read(&blob[..cut]).is_none(),
                "truncation to {cut} was not detected"
            );
        }
    }
}

/// Regenerates the blob seed corpora: `cargo test -- --ignored write_blob_seed_corpora`.
#[test]
#[ignore]
fn write_blob_seed_corpora() {
    use bharatvoice_store::fuzzing::sample_blob;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    let samples = [
        ("empty", sample_blob(b"", 4096, true, true)),
        ("one-chunk", sample_blob(&[3u8; 4096], 4096, true, true)),
        (
            "chunk-plus-one",
            sample_blob(&[5u8; 4097], 4096, true, false),
        ),
        (
            "plain-three-chunks",
            sample_blob(
                &(0..10_000u32).map(|i| i as u8).collect::<Vec<_>>(),
                4096,
                false,
                true,
            ),
        ),
        (
            "text",
            sample_blob("नमस्ते दुनिया, வணக்கம் உலகம்".as_bytes(), 4096, true, true),
        ),
    ];
    for target in ["blob_header", "blob_read"] {
        std::fs::create_dir_all(root.join(target)).unwrap();
        for (name, bytes) in &samples {
            std::fs::write(root.join(target).join(format!("seed-{name}")), bytes).unwrap();
        }
    }
}
