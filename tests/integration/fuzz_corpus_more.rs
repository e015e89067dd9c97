//! Replays the corpora of the fuzz targets for the store's other parsers
//! (db rows, key records, the audit log, backup files, the configuration,
//! the admin socket, cache key patterns) and every truncation and bit flip
//! of their valid samples through the entry points: a refusal of the kind
//! the parser documents, never a panic.

use bharatvoice_store::fuzzing;

/// The committed corpus of `target`.
fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let entries: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("the {target} corpus is committed: {e}"))
        .collect();
    assert!(
        entries.len() >= 4,
        "the {target} corpus is too small: {}",
        entries.len()
    );
    entries
        .into_iter()
        .map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .collect()
}

/// Replays the corpus of `target`, checks each sample is accepted (but
/// those named `damaged_*`), then runs every truncation and every bit flip
/// of each sample.
fn replay(target: &str, samples: Vec<(&'static str, Vec<u8>)>, run: impl Fn(&[u8]) -> usize) {
    for data in corpus(target) {
        run(&data);
    }
    for (kind, bytes) in samples {
        let accepted = run(&bytes);
        assert!(
            accepted >= 1 || kind.starts_with("damaged_"),
            "the {kind} sample of {target} is accepted"
        );
        for cut in 0..bytes.len() {
            run(&bytes[..cut]);
        }
        for i in 0..bytes.len() {
            for bit in 0..8 {
                let mut m = bytes.clone();
                m[i] ^= 1 << bit;
                run(&m);
            }
        }
    }
}

#[test]
fn db_row_corpus_and_mutations_replay() {
    replay(
        "db_row_decode",
        fuzzing::sample_rows(),
        fuzzing::decode_rows,
    );
}

#[test]
fn key_record_corpus_and_mutations_replay() {
    replay(
        "key_record",
        fuzzing::sample_key_records(),
        fuzzing::key_record,
    );
}

#[test]
fn audit_event_corpus_and_mutations_replay() {
    replay(
        "audit_event",
        fuzzing::sample_audit_events(),
        fuzzing::audit_event,
    );
}

#[test]
fn backup_manifest_corpus_and_mutations_replay() {
    replay(
        "backup_manifest",
        fuzzing::sample_backup_files(),
        fuzzing::backup_manifest,
    );
}

#[test]
fn config_file_corpus_and_mutations_replay() {
    replay(
        "config_file",
        fuzzing::sample_configs(),
        fuzzing::config_file,
    );
}

#[test]
fn admin_request_corpus_and_mutations_replay() {
    let harness = fuzzing::AdminHarness::new();
    replay("admin_request", fuzzing::sample_admin_lines(), |data| {
        harness.run(data)
    });
}

#[test]
fn cache_pattern_corpus_and_mutations_replay() {
    replay("cache_pattern", fuzzing::sample_patterns(), |data| {
        usize::from(fuzzing::cache_pattern(data).is_some())
    });
}

#[test]
fn blob_path_corpus_and_mutations_replay() {
    replay(
        "blob_path",
        fuzzing::sample_blob_paths(),
        fuzzing::blob_path,
    );
}

/// Regenerates the seed corpora of these targets:
/// `cargo test --test integration -- --ignored write_more_seed_corpora`.
#[test]
#[ignore]
fn write_more_seed_corpora() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    for (target, samples) in [
        ("db_row_decode", fuzzing::sample_rows()),
        ("key_record", fuzzing::sample_key_records()),
        ("audit_event", fuzzing::sample_audit_events()),
        ("backup_manifest", fuzzing::sample_backup_files()),
        ("config_file", fuzzing::sample_configs()),
        ("admin_request", fuzzing::sample_admin_lines()),
        ("cache_pattern", fuzzing::sample_patterns()),
        ("blob_path", fuzzing::sample_blob_paths()),
    ] {
        let dir = root.join(target);
        std::fs::create_dir_all(&dir).unwrap();
        for (kind, bytes) in samples {
            std::fs::write(dir.join(format!("seed-{kind}")), &bytes).unwrap();
        }
    }
}

/// Found by the `admin_request` replay (a bit flip of `{"op":"health"}`):
/// the server dropped a request line that is not UTF-8 without an answer,
/// and the client took such an answer for an I/O error. The server answers
/// one `invalid_input` line now, the client refuses the answer as corrupt
/// (the harness checks both ends).
#[test]
fn lines_that_are_not_utf8_are_answered_and_refused() {
    let harness = fuzzing::AdminHarness::new();
    assert_eq!(harness.run(b"\xfb\"op\":\"health\"}\n"), 0);
    assert_eq!(harness.run(b"\xff{\"ok\":1}\n"), 0);
}

/// Found by `audit_event`: an anchor at seq `u64::MAX` followed by an entry
/// made `verify` overflow (`prev.seq + 1`; a panic in debug builds). It
/// reports the entry as missing its predecessor now.
#[test]
fn an_audit_anchor_at_the_last_seq_is_a_finding_not_an_overflow() {
    let script = include_bytes!("../../fuzz/corpus/audit_event/regression-anchor-at-last-seq");
    fuzzing::audit_event(script);
}

/// Found by `audit_event`: a head changed to seq `u64::MAX` (the head in
/// `meta` carries no MAC, so no key is needed) made the next append
/// overflow (`head.seq + 1`). The append is refused as corrupt now.
#[test]
fn an_audit_head_at_the_last_seq_refuses_the_append() {
    let script = include_bytes!("../../fuzz/corpus/audit_event/regression-head-at-last-seq");
    fuzzing::audit_event(script);
}
