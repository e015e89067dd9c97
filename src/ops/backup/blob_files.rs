//! The blob files of a backup: linked or copied into the destination on
//! several threads, each hashed on the way (the manifest's SHA-256), the
//! ones an earlier generation holds skipped.
//!
//! Why a module: the backup runs this beside the metadata snapshot's copy
//! (`db::snapshot_copy::copy_snapshot_beside`), which can tell it to give
//! up; the steps of a backup stay in `backup`.

use std::sync::atomic::AtomicBool;

use crate::blob::backend::local::LocalDir;
use crate::error::Error;
use crate::ops::backup::Progress;
use crate::ops::backup::copy::{self, Placed};
use crate::ops::backup::destination::Destination;
use crate::ops::backup::manifest::{self, BlobEntry};
use crate::types::BlobAddress;

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
    source: &LocalDir,
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
    let total: u64 = addresses
        .iter()
        .filter_map(|a| std::fs::symlink_metadata(source.path_of(*a)).ok())
        .map(|m| m.len())
        .sum();
    let (next, done) = (AtomicUsize::new(0), AtomicU64::new(0));
    let one = |address: BlobAddress, buf: &mut Vec<u8>| -> Result<Outcome, Error> {
        let to = layout.path_of(address);
        if let Some(digest) = known.get(&address)
            && std::fs::symlink_metadata(&to).is_ok_and(|m| m.is_file() && m.len() == digest.bytes)
        {
            return Ok(Outcome::Skipped(digest.clone()));
        }
        Ok(
            match copy::place(&source.path_of(address), &to, &tmp, link, buf)? {
                Some((how, digest)) => Outcome::Placed(how, digest),
                None => Outcome::Missing,
            },
        )
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
