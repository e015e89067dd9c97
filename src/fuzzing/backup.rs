//! The `backup_manifest` target: the files of a backup destination that a
//! restore or a backup reads. The same bytes as a generation's
//! `manifest.json` (with its right MAC beside it: the parse behind the MAC
//! check, and without the check), as its `manifest.mac` (beside a valid
//! manifest), as the destination's `backup.json`, and as a metadata delta
//! that a restore applies, each read from a scratch directory by the
//! functions the backup and restore use.

use std::path::{Path, PathBuf};

use super::Scratch;
use crate::blob::crypto::SecretKey;
use crate::error::Error;
use crate::ops::backup::destination::{Destination, Record};
use crate::ops::backup::manifest::{self, BlobEntry, FileDigest, Manifest};

/// The master key the manifests are signed under.
const FUZZ_MASTER: [u8; 32] = [0x3e; 32];

fn master() -> SecretKey {
    SecretKey::from_bytes(FUZZ_MASTER)
}

fn mac_hex(body: &[u8]) -> String {
    use hmac::Mac;
    hex::encode(manifest::mac_of(&master(), body).finalize().into_bytes())
}

fn write(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
}

/// This thread's four scratch directories: a generation whose manifest
/// is the input, a generation whose MAC is, a destination whose
/// `backup.json` is, a restore applying a metadata delta that is.
fn dirs() -> [PathBuf; 4] {
    thread_local! {
        static DIRS: (Scratch, [PathBuf; 4]) = {
            let root = Scratch::new("backup");
            let dirs = ["manifest", "mac", "destination", "delta"].map(|d| root.path().join(d));
            for d in &dirs {
                std::fs::create_dir_all(d).expect("a scratch directory");
            }
            write(&dirs[1].join(manifest::MANIFEST), &sample_manifest_json());
            (root, dirs)
        };
    }
    DIRS.with(|(_, dirs)| dirs.clone())
}

/// `data` as `manifest.json` under its right MAC: the checked read and the
/// unchecked one agree, and a manifest read re-serialises to itself.
fn try_manifest(dir: &Path, data: &[u8]) -> bool {
    write(&dir.join(manifest::MANIFEST), data);
    write(&dir.join(manifest::MAC), mac_hex(data).as_bytes());
    let unchecked = manifest::read_unchecked(dir);
    match manifest::read(dir, &master()) {
        Ok(m) => {
            assert!(manifest::readable(&m));
            assert_eq!(unchecked.as_ref().ok(), Some(&m), "both reads agree");
            let again = serde_json::to_vec_pretty(&m).expect("a manifest serialises");
            let back: Manifest = serde_json::from_slice(&again).expect("a written manifest reads");
            assert_eq!(back, m, "a manifest re-serialises to itself");
            true
        }
        Err(Error::Corrupt { .. }) => {
            if let Ok(m) = unchecked {
                assert!(!manifest::readable(&m), "only the format check differs");
            }
            false
        }
        Err(other) => panic!("reading a manifest returned a non-Corrupt error: {other}"),
    }
}

/// `data` as `manifest.mac` beside a valid manifest: it opens only if it
/// is the manifest's MAC (64 hex digits, blanks around them); anything
/// else is [`Error::Integrity`].
fn try_mac(dir: &Path, data: &[u8]) -> bool {
    write(&dir.join(manifest::MAC), data);
    let right = mac_hex(&sample_manifest_json());
    let is_right = data.trim_ascii().eq_ignore_ascii_case(right.as_bytes());
    match manifest::read(dir, &master()) {
        Ok(m) => {
            assert!(is_right, "a wrong MAC was accepted");
            assert_eq!(m, sample_manifest());
            true
        }
        Err(Error::Integrity { .. }) => {
            assert!(!is_right, "the right MAC was refused");
            false
        }
        Err(other) => panic!("checking a manifest MAC returned a non-Integrity error: {other}"),
    }
}

/// `data` as the destination's `backup.json`: a record that re-serialises
/// to itself, or [`Error::Corrupt`].
fn try_destination(dir: &Path, data: &[u8]) -> bool {
    write(&dir.join("backup.json"), data);
    match Destination::open_existing(dir) {
        Ok((_, record)) => {
            let again = serde_json::to_vec(&record).expect("a record serialises");
            let back: Record = serde_json::from_slice(&again).expect("a written record reads");
            assert_eq!(back, record, "a destination record re-serialises to itself");
            true
        }
        Err(Error::Corrupt { .. }) => false,
        Err(other) => panic!("reading backup.json returned a non-Corrupt error: {other}"),
    }
}

/// `data` as a metadata delta applied to an 8 KiB file: it applies (the
/// file then has the delta's length, and the digest is of every byte of
/// `data`) or is [`Error::Corrupt`].
fn try_delta(dir: &Path, data: &[u8]) -> bool {
    let delta = dir.join("delta");
    let target = dir.join("target");
    write(&delta, data);
    write(&target, &[7u8; 8192]);
    let file = std::fs::File::options()
        .write(true)
        .open(&target)
        .expect("the scratch target");
    match crate::ops::backup::delta::apply(&delta, &file, &target) {
        Ok(found) => {
            use sha2::Digest;
            assert_eq!(
                found.bytes,
                data.len() as u64,
                "the digest covers every byte"
            );
            assert_eq!(found.sha256, <[u8; 32]>::from(sha2::Sha256::digest(data)));
            let end = u64::from_le_bytes(data[data.len() - 8..].try_into().expect("8 bytes"));
            let len = file.metadata().expect("the target's size").len();
            assert_eq!(len, end, "the file has the delta's length");
            true
        }
        Err(Error::Corrupt { .. }) => false,
        Err(other) => panic!("applying a delta returned a non-Corrupt error: {other}"),
    }
}

/// Feeds `data` to every reader of this target; returns how many accepted
/// it. Panics (the fuzzer's signal) only if a reader misbehaves.
pub fn backup_manifest(data: &[u8]) -> usize {
    let [manifest_dir, mac_dir, destination, delta] = dirs();
    [
        try_manifest(&manifest_dir, data),
        try_mac(&mac_dir, data),
        try_destination(&destination, data),
        try_delta(&delta, data),
    ]
    .iter()
    .filter(|ok| **ok)
    .count()
}

fn sample_manifest() -> Manifest {
    let digest = |b: u8, bytes: u64| FileDigest {
        bytes,
        sha256: [b; 32],
    };
    Manifest {
        format: manifest::FORMAT,
        store_id: "01923a4b-0000-7000-8000-000000000001".into(),
        schema_version: crate::SCHEMA_VERSION,
        region: Some("IN-KA".into()),
        generation: 3,
        created_at: crate::Timestamp::from_micros(1_700_000_000_123_456),
        metadata: digest(1, 1 << 20),
        blobs: vec![
            BlobEntry {
                address: crate::BlobAddress([2; 32]),
                digest: digest(3, 30_000),
            },
            BlobEntry {
                address: crate::BlobAddress([4; 32]),
                digest: digest(5, 0),
            },
        ],
        missing: vec![crate::BlobAddress([6; 32])],
        chain: None,
    }
}

/// A delta with records of `runs` (offset, length; bytes 0x5a) ending at
/// `file_len`.
fn sample_delta(runs: &[(u64, u32)], file_len: u64) -> Vec<u8> {
    let mut out = b"BVDELTA1".to_vec();
    for (offset, len) in runs {
        out.push(1);
        out.extend_from_slice(&offset.to_le_bytes());
        out.extend_from_slice(&len.to_le_bytes());
        out.extend(std::iter::repeat_n(0x5a, *len as usize));
    }
    out.push(0);
    out.extend_from_slice(&file_len.to_le_bytes());
    out
}

fn sample_manifest_json() -> Vec<u8> {
    serde_json::to_vec_pretty(&sample_manifest()).expect("serialises")
}

/// Valid files of each kind, for the seed corpus and the replay tests.
pub fn sample_backup_files() -> Vec<(&'static str, Vec<u8>)> {
    let bare = Manifest {
        region: None,
        blobs: Vec::new(),
        missing: Vec::new(),
        created_at: crate::Timestamp::from_micros(-5),
        ..sample_manifest()
    };
    // Digests as the old array of 32 numbers, which reads too.
    let mut arrays = serde_json::to_value(sample_manifest()).expect("serialises");
    arrays["metadata"]["sha256"] = serde_json::Value::from(vec![7u8; 32]);
    arrays["created_at"] = serde_json::json!("2023-11-14T22:13:20.123456789+05:30");
    let record = Record {
        format: manifest::FORMAT,
        store_id: "01923a4b-0000-7000-8000-000000000001".into(),
        region: Some("IN".into()),
    };
    let chained = Manifest {
        chain: Some(crate::ops::backup::file_copy::Chain {
            base: sample_manifest().metadata,
            deltas: vec![FileDigest {
                bytes: 4096,
                sha256: [8; 32],
            }],
            tracker: "0123456789abcdef0123456789abcdef".into(),
            epoch: 7,
            keys_destroyed: 1,
        }),
        ..sample_manifest()
    };
    vec![
        ("manifest", sample_manifest_json()),
        (
            "manifest_chain",
            serde_json::to_vec_pretty(&chained).expect("serialises"),
        ),
        ("delta", sample_delta(&[(0, 10), (4096, 300)], 9000)),
        ("delta_empty", sample_delta(&[], 0)),
        (
            "manifest_bare",
            serde_json::to_vec(&bare).expect("serialises"),
        ),
        (
            "manifest_arrays",
            serde_json::to_vec(&arrays).expect("serialises"),
        ),
        (
            "mac",
            format!("{}\n", mac_hex(&sample_manifest_json())).into_bytes(),
        ),
        (
            "backup_json",
            serde_json::to_vec_pretty(&record).expect("serialises"),
        ),
    ]
}
