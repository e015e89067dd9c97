//! A backup generation's manifest: what the generation holds (the
//! metadata snapshot and every blob, each with its size and SHA-256) and
//! where it came from (store id, schema version, data region, time),
//! signed with an HMAC-SHA256 under a key derived from the master key.
//!
//! The manifest is `manifest.json` and its MAC is `manifest.mac` (64 hex
//! digits) beside it: the MAC covers the exact bytes of the JSON file, so
//! nothing has to be re-serialised the same way to check it. Only a
//! holder of the master key can make a manifest that restore accepts;
//! anyone can read one (it holds no personal data: ids, sizes, digests).

use std::path::Path;

use hmac::{KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::blob::crypto::SecretKey;
use crate::error::Error;
use crate::types::{BlobAddress, Timestamp};

/// The manifest format this build writes. It reads 1 too: format 2 added
/// [`Manifest::chain`] (a local backup's metadata as a file copy, see
/// `file_copy`); a format-1 manifest names `store.redb` in its generation
/// directory.
pub(crate) const FORMAT: u32 = 2;
pub(crate) const MANIFEST: &str = "manifest.json";
pub(crate) const MAC: &str = "manifest.mac";

/// One file of a generation: its size and SHA-256.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct FileDigest {
    pub(crate) bytes: u64,
    #[serde(with = "crate::types::hex32")]
    pub(crate) sha256: [u8; 32],
}

/// One blob of a generation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct BlobEntry {
    pub(crate) address: BlobAddress,
    #[serde(flatten)]
    pub(crate) digest: FileDigest,
}

/// What a generation holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Manifest {
    pub(crate) format: u32,
    pub(crate) store_id: String,
    pub(crate) schema_version: u32,
    pub(crate) region: Option<String>,
    pub(crate) generation: u64,
    pub(crate) created_at: Timestamp,
    /// `store.redb` as the snapshot wrote it.
    pub(crate) metadata: FileDigest,
    /// Every blob the snapshot names and the backup found, by address.
    pub(crate) blobs: Vec<BlobEntry>,
    /// Blobs the snapshot names whose files were missing from the store
    /// when the backup ran (the store was already damaged there).
    pub(crate) missing: Vec<BlobAddress>,
    /// The metadata as a base and deltas in the destination's pool
    /// (format 2, local backups of a writable store); `metadata` is then
    /// the base. `None`: `metadata` is `store.redb` in the generation's
    /// directory (or, to object storage, its sealed copy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) chain: Option<crate::ops::backup::file_copy::Chain>,
}

/// Whether this build reads a manifest of `m`'s format (and shape).
pub(crate) fn readable(m: &Manifest) -> bool {
    match m.format {
        1 => m.chain.is_none(),
        FORMAT => m.chain.as_ref().is_none_or(|c| c.base == m.metadata),
        _ => false,
    }
}

impl Manifest {
    /// Bytes of the metadata snapshot and every blob, saturated at
    /// `u64::MAX` (an unchecked manifest's sizes are anyone's).
    pub(crate) fn total_bytes(&self) -> u64 {
        self.blobs.iter().fold(self.metadata_bytes(), |sum, b| {
            sum.saturating_add(b.digest.bytes)
        })
    }

    /// Bytes of the metadata: its one file, or every part of its chain.
    pub(crate) fn metadata_bytes(&self) -> u64 {
        self.chain
            .as_ref()
            .map_or(self.metadata.bytes, |c| c.bytes())
    }
}

/// The MAC key of manifests: HMAC-SHA256 of a fixed label under the
/// master key, so that it changes with the master key and is never the
/// master key itself.
fn mac_key(master: &SecretKey) -> [u8; 32] {
    let mut m = <hmac::Hmac<Sha256> as KeyInit>::new_from_slice(master.bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
    m.update(b"bv/backup-manifest/v1");
    m.finalize().into_bytes().into()
}

pub(crate) fn mac_of(master: &SecretKey, body: &[u8]) -> hmac::Hmac<Sha256> {
    let mut m = <hmac::Hmac<Sha256> as KeyInit>::new_from_slice(&mac_key(master))
        .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
    m.update(body);
    m
}

/// The manifest's bytes and its MAC (64 hex digits) under `master`.
pub(crate) fn encode(manifest: &Manifest, master: &SecretKey) -> Result<(Vec<u8>, String), Error> {
    let body = serde_json::to_vec_pretty(manifest)
        .map_err(|e| Error::corrupt("backup manifest", e.to_string()))?;
    let mac = hex::encode(mac_of(master, &body).finalize().into_bytes());
    Ok((body, mac))
}

/// Writes the manifest and its MAC into `dir`, durably.
pub(crate) fn write(dir: &Path, manifest: &Manifest, master: &SecretKey) -> Result<(), Error> {
    let (body, mac) = encode(manifest, master)?;
    crate::fsutil::write_file_durably(&dir.join(MANIFEST), &body, 0o600)?;
    crate::fsutil::write_file_durably(&dir.join(MAC), mac.as_bytes(), 0o600)
}

/// Reads the manifest of the generation in `dir`, checking its MAC under
/// `master` before it is parsed.
pub(crate) fn read(dir: &Path, master: &SecretKey) -> Result<Manifest, Error> {
    let body = read_limited(&dir.join(MANIFEST))?;
    let mac_text = read_limited(&dir.join(MAC))?;
    decode(&body, &mac_text, master, &dir.display().to_string())
}

/// Parses a manifest's bytes after checking its MAC under `master`;
/// `place` names the generation in errors.
pub(crate) fn decode(
    body: &[u8],
    mac_text: &[u8],
    master: &SecretKey,
    place: &str,
) -> Result<Manifest, Error> {
    let mut mac = [0u8; 32];
    hex::decode_to_slice(mac_text.trim_ascii(), &mut mac).map_err(|_| Error::Integrity {
        what: format!("{place}/{MAC}"),
        detail: "it does not hold 64 hex digits".into(),
    })?;
    mac_of(master, body)
        .verify_slice(&mac)
        .map_err(|_| Error::Integrity {
            what: format!("{place}/{MANIFEST}"),
            detail: "its MAC does not match: the manifest was altered, or the master key is not the one the backup was made under".into(),
        })?;
    let manifest = decode_unchecked(body, place)?;
    if !readable(&manifest) {
        return Err(Error::corrupt(
            format!("{place}/{MANIFEST}"),
            format!(
                "manifest format {} with{} a metadata chain (this build reads 1 without, {FORMAT} with or without)",
                manifest.format,
                if manifest.chain.is_some() { "" } else { "out" }
            ),
        ));
    }
    Ok(manifest)
}

/// Reads the manifest of the generation in `dir` without checking its MAC
/// (for listing generations and reusing digests; never for a restore).
pub(crate) fn read_unchecked(dir: &Path) -> Result<Manifest, Error> {
    let body = read_limited(&dir.join(MANIFEST))?;
    decode_unchecked(&body, &dir.display().to_string())
}

/// Parses a manifest's bytes without checking its MAC.
pub(crate) fn decode_unchecked(body: &[u8], place: &str) -> Result<Manifest, Error> {
    serde_json::from_slice(body)
        .map_err(|e| Error::corrupt(format!("{place}/{MANIFEST}"), e.to_string()))
}

/// Reads a file of at most 1 GiB (a manifest of a few million blobs).
fn read_limited(path: &Path) -> Result<Vec<u8>, Error> {
    use std::io::Read;
    let f = std::fs::File::open(path)
        .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
    let mut out = Vec::new();
    f.take(1 << 30)
        .read_to_end(&mut out)
        .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Manifest {
        Manifest {
            format: FORMAT,
            store_id: "s".into(),
            schema_version: 10,
            region: Some("IN".into()),
            generation: 1,
            created_at: Timestamp::from_micros(1),
            metadata: FileDigest {
                bytes: 3,
                sha256: [1; 32],
            },
            blobs: vec![BlobEntry {
                address: BlobAddress([2; 32]),
                digest: FileDigest {
                    bytes: 4,
                    sha256: [3; 32],
                },
            }],
            missing: Vec::new(),
            chain: None,
        }
    }

    #[test]
    fn a_manifest_reads_back_only_under_its_key_and_unaltered() {
        let dir = tempfile::tempdir().unwrap();
        let key = SecretKey::from_bytes([7; 32]);
        write(dir.path(), &sample(), &key).unwrap();
        assert_eq!(read(dir.path(), &key).unwrap(), sample());
        let other = SecretKey::from_bytes([8; 32]);
        assert!(matches!(
            read(dir.path(), &other),
            Err(Error::Integrity { .. })
        ));
        let path = dir.path().join(MANIFEST);
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, text.replace("\"bytes\": 4", "\"bytes\": 5")).unwrap();
        assert!(matches!(
            read(dir.path(), &key),
            Err(Error::Integrity { .. })
        ));
    }
}
