//! The blob files of a backup: linked or copied into the destination on
//! several threads (from the store's blob directory, or read through its
//! object-storage backend), each hashed on the way (the manifest's
//! SHA-256), the ones an earlier generation holds skipped.
//!
//! Why a module: the backup runs this beside the metadata snapshot's copy
//! (`db::snapshot_copy::copy_snapshot_beside`), which can tell it to give
//! up; the steps of a backup stay in `backup`.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use crate::blob::backend::BlobBackend;
use crate::blob::backend::local::LocalDir;
use crate::error::Error;
use crate::ops::backup::Progress;
use crate::ops::backup::copy::{self, Placed};
use crate::ops::backup::destination::Destination;
use crate::ops::backup::manifest::{self, BlobEntry};
use crate::types::BlobAddress;

/// Where a backup reads the blob files from.
pub(crate) enum BlobFiles {
    /// The store's blob directory: files linked (same file system) or
    /// copied.
    Local(LocalDir),
    /// Another backend (object storage): each blob read through it and
    /// written into the backup.
    Backend(Arc<dyn BlobBackend>),
}

/// What copying the blob files did: (count, bytes) per way.
pub(crate) struct Copied {
    pub(crate) entries: Vec<BlobEntry>,
    pub(crate) copied: (u64, u64),
    pub(crate) linked: (u64, u64),
    pub(crate) skipped: (u64, u64),
    pub(crate) missing: Vec<BlobAddress>,
}

/// What became of one blob.
enum Outcome {
    Skipped(manifest::FileDigest),
    Placed(Placed, manifest::FileDigest),
    Missing,
}

/// Threads copying blob files: reads, hashing and writes of several files
/// overlap (one thread left the disk idle while it hashed).
const COPY_THREADS: usize = 4;

/// Places every blob of `addresses` from `source` into `dest` (linked if
/// `link` and the file systems allow it); stops early, with an error, once
/// `give_up` is set.
pub(crate) fn copy_blobs(
    dest: &Destination,
    source: &BlobFiles,
    addresses: &[BlobAddress],
    link: bool,
    progress: Option<&Progress>,
    give_up: &AtomicBool,
) -> Result<Copied, Error> {
    use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
    let known = dest.known_blobs()?;
    let layout = LocalDir::new(dest.blobs_dir());
    let tmp = dest.tmp_dir();
    crate::fsutil::create_private_dir_all(&tmp)
        .map_err(|e| Error::io(format!("creating {}", tmp.display()), e))?;
    // Object storage would take a request per blob to say: its total grows
    // as the copy goes.
    let total: u64 = match source {
        BlobFiles::Local(dir) => addresses
            .iter()
            .filter_map(|a| std::fs::symlink_metadata(dir.path_of(*a)).ok())
            .map(|m| m.len())
            .sum(),
        BlobFiles::Backend(_) => 0,
    };
    let (next, done) = (AtomicUsize::new(0), AtomicU64::new(0));
    let one = |address: BlobAddress, buf: &mut Vec<u8>| -> Result<Outcome, Error> {
        let to = layout.path_of(address);
        if let Some(digest) = known.get(&address)
            && std::fs::symlink_metadata(&to).is_ok_and(|m| m.is_file() && m.len() == digest.bytes)
        {
            return Ok(Outcome::Skipped(digest.clone()));
        }
        let placed = match source {
            BlobFiles::Local(dir) => copy::place(&dir.path_of(address), &to, &tmp, link, buf)?,
            BlobFiles::Backend(backend) => {
                copy::place_from(&**backend, address, &to, &tmp, buf)?.map(|d| (Placed::Copied, d))
            }
        };
        Ok(match placed {
            Some((how, digest)) => Outcome::Placed(how, digest),
            None => Outcome::Missing,
        })
    };
    let worker = || -> Result<Vec<(usize, Outcome)>, Error> {
        let (mut mine, mut buf) = (Vec::new(), Vec::new());
        loop {
            if give_up.load(Ordering::Relaxed) {
                return Err(Error::invalid(
                    "backup",
                    "the blob copy gave up: the snapshot copy failed",
                ));
            }
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(&address) = addresses.get(i) else {
                return Ok(mine);
            };
            let outcome = one(address, &mut buf)?;
            let bytes = match &outcome {
                Outcome::Skipped(d) | Outcome::Placed(_, d) => d.bytes,
                Outcome::Missing => 0,
            };
            let so_far = done.fetch_add(bytes, Ordering::Relaxed) + bytes;
            if let Some(p) = progress {
                p.tell(so_far, total.max(so_far));
            }
            mine.push((i, outcome));
        }
    };
    let results: Vec<Result<Vec<(usize, Outcome)>, Error>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..COPY_THREADS).map(|_| s.spawn(worker)).collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|p| {
                    Err(crate::error::thread_panicked("backup", "a copy thread", p))
                })
            })
            .collect()
    });
    let mut all = Vec::with_capacity(addresses.len());
    for r in results {
        all.extend(r?);
    }
    all.sort_unstable_by_key(|(i, _)| *i);
    let mut out = Copied {
        entries: Vec::with_capacity(addresses.len()),
        copied: (0, 0),
        linked: (0, 0),
        skipped: (0, 0),
        missing: Vec::new(),
    };
    for (i, outcome) in all {
        let address = addresses[i];
        let (tally, digest) = match outcome {
            Outcome::Skipped(d) => (&mut out.skipped, d),
            Outcome::Placed(Placed::Linked, d) => (&mut out.linked, d),
            Outcome::Placed(Placed::Copied, d) => (&mut out.copied, d),
            Outcome::Missing => {
                tracing::warn!(blob = %address, "a blob the snapshot names has no file; the backup lists it as missing");
                out.missing.push(address);
                continue;
            }
        };
        tally.0 += 1;
        tally.1 += digest.bytes;
        out.entries.push(BlobEntry { address, digest });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;

    use sha2::{Digest, Sha256};

    use super::{BlobFiles, copy_blobs};
    use crate::blob::backend::BlobBackend;
    use crate::blob::backend::local::LocalDir;
    use crate::blob::backend::memory::Memory;
    use crate::ops::backup::destination::Destination;
    use crate::types::BlobAddress;

    /// Blobs in a backend other than a local directory are read through it
    /// into the backup, whole and hashed; a blob it lacks is missing.
    #[test]
    fn blobs_of_another_backend_are_read_through_it_into_the_backup() {
        let dir = tempfile::tempdir().unwrap();
        let memory = Arc::new(Memory::default());
        let blobs: Vec<(BlobAddress, Vec<u8>)> = [0usize, 1, (1 << 20) + 7, 3 << 20]
            .iter()
            .enumerate()
            .map(|(i, &n)| {
                let bytes: Vec<u8> = (0..n).map(|j| (j * 31 + i) as u8).collect();
                (BlobAddress([i as u8 + 1; 32]), bytes)
            })
            .collect();
        for (address, bytes) in &blobs {
            let tmp = dir.path().join("blob.tmp");
            std::fs::write(&tmp, bytes).unwrap();
            memory.commit(&tmp, *address).unwrap();
        }
        let gone = BlobAddress([0xee; 32]);
        let mut addresses: Vec<BlobAddress> = blobs.iter().map(|(a, _)| *a).collect();
        addresses.push(gone);

        let dest = Destination::open_for_backup(&dir.path().join("backup"), "store-1", None, false)
            .unwrap();
        let source = BlobFiles::Backend(memory);
        let copied = copy_blobs(
            &dest,
            &source,
            &addresses,
            true,
            None,
            &AtomicBool::new(false),
        )
        .unwrap();
        assert_eq!(copied.missing, vec![gone]);
        assert_eq!(copied.linked, (0, 0), "nothing to link from a backend");
        let total: u64 = blobs.iter().map(|(_, b)| b.len() as u64).sum();
        assert_eq!(copied.copied, (blobs.len() as u64, total));
        let layout = LocalDir::new(dest.blobs_dir());
        for ((address, bytes), entry) in blobs.iter().zip(&copied.entries) {
            assert_eq!(entry.address, *address);
            assert_eq!(&std::fs::read(layout.path_of(*address)).unwrap(), bytes);
            assert_eq!(entry.digest.bytes, bytes.len() as u64);
            assert_eq!(entry.digest.sha256, <[u8; 32]>::from(Sha256::digest(bytes)));
        }
        let leftovers = std::fs::read_dir(dest.tmp_dir()).unwrap().count();
        assert_eq!(leftovers, 0, "no temporary left behind");
    }
}
