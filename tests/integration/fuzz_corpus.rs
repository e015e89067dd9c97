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
