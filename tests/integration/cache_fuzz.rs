//! Replays the `cache_row_decode` fuzz corpus and every truncation and bit
//! flip of valid rows through the tier-2 row parser: errors, never panics.

use bharatvoice_store::fuzzing::{cache_row, sample_cache_rows};

#[test]
fn committed_cache_row_corpus_replays() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/cache_row_decode");
    let entries: Vec<_> = std::fs::read_dir(&dir)
        .expect("fuzz corpus is committed")
        .collect();
    assert!(entries.len() >= 2, "corpus too small: {}", entries.len());
    for entry in entries {
        cache_row(&std::fs::read(entry.unwrap().path()).unwrap());
    }
}

#[test]
fn every_truncation_and_bit_flip_of_valid_rows_is_handled() {
    for (kind, bytes) in sample_cache_rows() {
        assert!(cache_row(&bytes), "{kind} parses");
        for cut in 0..bytes.len() {
            cache_row(&bytes[..cut]);
        }
        for i in 0..bytes.len() {
            for bit in 0..8 {
                let mut m = bytes.clone();
                m[i] ^= 1 << bit;
                cache_row(&m);
            }
        }
    }
}

/// Regenerates the seed corpus: `cargo test -- --ignored write_cache_row_seed_corpus`.
#[test]
#[ignore]
fn write_cache_row_seed_corpus() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/cache_row_decode");
    std::fs::create_dir_all(&dir).unwrap();
    for (kind, bytes) in sample_cache_rows() {
        std::fs::write(dir.join(format!("seed-{kind}")), &bytes).unwrap();
    }
}
