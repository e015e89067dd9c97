//! The metadata of a local backup: `store.redb` copied as a file, so that
//! the next backup into the same destination copies only the pages
//! written since ([`page_tracker`](crate::db::page_tracker)), not every row.
//!
//! A copy runs in two passes:
//!
//! 1. with writes going on: the epoch is bumped, then the whole file (a
//!    *base*) or the pages written since the destination's newest
//!    generation (a *delta*) are copied; pages written meanwhile may be
//!    caught half-written, and are marked with the later epoch;
//! 2. between two commits (`Db::between_commits`: every acknowledged write
//!    is in the file, none runs, readers go on): the pages marked since
//!    pass 1 began are copied again into a delta, with the file's length,
//!    and a read transaction is begun — the instant the backup holds, for
//!    its blob list. Writes wait only for these pages.
//!
//! The file so rebuilt is what a crash at that instant would leave, after
//! its syncs: a file redb opens with its repair (restore does, once).
//!
//! A chain is a base and its deltas; each generation's manifest names its
//! whole chain. A new base is written when the newest generation was not
//! taken by this open of the store (the page marks live in memory), its
//! manifest does not check, a part of its chain is missing, the chain is
//! long ([`MAX_DELTAS`]) or its deltas outweigh half the base, or an
//! erasure destroyed keys since the base (so that an erased user's keys
//! leave the backups with the generations taken before the erasure, as
//! they did before chains: `--keep` still decides when).

use std::fs::File;
use std::path::{Path, PathBuf};

use redb::{ReadTransaction, ReadableDatabase};
use serde::{Deserialize, Serialize};

use crate::db::Db;
use crate::db::page_tracker::{PageTracker, Stamp};
use crate::error::{Error, StorageContext};
use crate::ops::backup::blocking;
use crate::ops::backup::copy::io;
use crate::ops::backup::delta::{MAX_RUN, PartWriter};
use crate::ops::backup::manifest::FileDigest;

/// Deltas a chain holds at most before a new base is taken.
pub(crate) const MAX_DELTAS: usize = 15;

/// Where the parts live in a destination: `DEST/metadata/<sha256 hex>`.
pub(crate) const POOL: &str = "metadata";

/// A generation's metadata as a file copy (manifest format 2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Chain {
    /// The base, then each delta in the order they apply.
    pub(crate) base: FileDigest,
    pub(crate) deltas: Vec<FileDigest>,
    /// The tracker id (32 hex digits) and epoch the copy was taken at.
    pub(crate) tracker: String,
    pub(crate) epoch: u32,
    /// The store's count of key destructions (erasures) at the base's
    /// instant: after another, the next backup takes a new base.
    #[serde(default)]
    pub(crate) keys_destroyed: u64,
}

impl Chain {
    /// Every part, base first.
    pub(crate) fn parts(&self) -> impl Iterator<Item = &FileDigest> {
        std::iter::once(&self.base).chain(&self.deltas)
    }

    /// Bytes of every part.
    pub(crate) fn bytes(&self) -> u64 {
        self.parts().fold(0u64, |s, p| s.saturating_add(p.bytes))
    }

    /// The stamp it was taken at.
    fn stamp(&self) -> Option<Stamp> {
        let id = u128::from_str_radix(&self.tracker, 16).ok()?;
        Some(Stamp {
            id,
            epoch: self.epoch,
        })
    }
}

/// The path of a part in the destination `root`.
pub(crate) fn part_path(root: &Path, part: &FileDigest) -> PathBuf {
    root.join(POOL).join(hex::encode(part.sha256))
}

/// Whether `prev` (the newest generation's chain, its manifest checked)
/// can take one more delta of this open's pages, the store having
/// destroyed keys `keys_destroyed` times.
pub(crate) fn extends(
    prev: &Chain,
    tracker: &PageTracker,
    root: &Path,
    keys_destroyed: u64,
) -> Option<Stamp> {
    let stamp = prev.stamp()?;
    let deltas: u64 = prev.deltas.iter().map(|d| d.bytes).sum();
    let whole = prev.parts().all(|p| {
        std::fs::symlink_metadata(part_path(root, p))
            .is_ok_and(|m| m.is_file() && m.len() == p.bytes)
    });
    (tracker.is_current(stamp)
        && keys_destroyed == prev.keys_destroyed
        && prev.deltas.len() < MAX_DELTAS
        && deltas <= prev.base.bytes / 2
        && whole)
        .then_some(stamp)
}

/// What a copy wrote (into the generation's directory) and the snapshot
/// of the instant it holds.
pub(crate) struct Copied {
    /// A new base, if one was taken.
    pub(crate) base: Option<FileDigest>,
    pub(crate) delta: FileDigest,
    pub(crate) stamp: Stamp,
    pub(crate) txn: ReadTransaction,
    /// How long pass 2 held writes off.
    pub(crate) paused: std::time::Duration,
}

/// The names of the parts in the generation's directory before they go
/// into the pool.
pub(crate) const BASE_FILE: &str = "metadata.base";
pub(crate) const DELTA_FILE: &str = "metadata.delta";

/// Copies `store.redb` into `dir`: a delta since `since`, or a base and
/// its patch.
pub(crate) async fn copy(db: &Db, since: Option<Stamp>, dir: &Path) -> Result<Copied, Error> {
    let tracker = std::sync::Arc::clone(db.tracker());
    let path = db.path().to_path_buf();
    let dir = dir.to_path_buf();
    let pass1 = blocking("copying store.redb", move || {
        let src = crate::ops::backup::copy::open_nofollow(&path).map_err(io("reading", &path))?;
        let start = tracker.bump();
        let len = src.metadata().map_err(io("reading", &path))?.len();
        let mut buf = Vec::new();
        let base = match since {
            Some(prev) if prev.id == start.id => None,
            _ => Some(copy_whole(
                &src,
                &path,
                len,
                &dir.join(BASE_FILE),
                &mut buf,
            )?),
        };
        let mut delta = PartWriter::delta(&dir.join(DELTA_FILE))?;
        if let Some(prev) = since.filter(|_| base.is_none()) {
            for (offset, n) in tracker.runs_since(prev.epoch, len, MAX_RUN) {
                delta.run(&src, &path, offset, n, &mut buf)?;
            }
        }
        Ok((src, path, tracker, start, base, delta))
    })
    .await?;
    let (src, path, tracker, start, base, mut delta) = pass1;
    let (delta, stamp, txn, paused) = db
        .between_commits(move |database| {
            let t0 = std::time::Instant::now();
            let now = tracker.bump();
            if now.id != start.id {
                return Err(Error::Busy {
                    what: "backup",
                    detail: "store.redb was reopened (after an I/O error) during the backup; run it again".into(),
                });
            }
            let len = src.metadata().map_err(io("reading", &path))?.len();
            let mut buf = Vec::new();
            let mut bytes = 0;
            for (offset, n) in tracker.runs_since(start.epoch, len, MAX_RUN) {
                delta.run(&src, &path, offset, n, &mut buf)?;
                bytes += n;
            }
            delta.end(len)?;
            let txn = database.begin_read().ctx("beginning the backup's snapshot")?;
            let pages = bytes.div_ceil(crate::db::page_tracker::PAGE);
            tracing::debug!(pages, "backup: the last pages copied between two commits");
            Ok((delta, now, txn, t0.elapsed()))
        })
        .await?;
    let delta = blocking("syncing the metadata delta", move || delta.finish()).await?;
    Ok(Copied {
        base,
        delta,
        stamp,
        txn,
        paused,
    })
}

/// Copies the first `len` bytes of `src` into a new base at `to`.
fn copy_whole(
    src: &File,
    src_path: &Path,
    len: u64,
    to: &Path,
    buf: &mut Vec<u8>,
) -> Result<FileDigest, Error> {
    let mut w = PartWriter::create(to)?;
    buf.resize(256 << 10, 0);
    let mut at = 0u64;
    while at < len {
        let n = usize::try_from((len - at).min(buf.len() as u64)).unwrap_or(buf.len());
        crate::ops::backup::delta::read_filled(src, &mut buf[..n], at)
            .map_err(io("reading", src_path))?;
        w.put(&buf[..n])?;
        at += n as u64;
    }
    w.finish()
}

/// Moves a part written in `dir` as `name` into the destination's pool.
pub(crate) fn into_pool(
    root: &Path,
    dir: &Path,
    name: &str,
    part: &FileDigest,
) -> Result<(), Error> {
    let pool = root.join(POOL);
    crate::fsutil::create_private_dir_all(&pool).map_err(io("creating", &pool))?;
    let from = dir.join(name);
    let to = part_path(root, part);
    std::fs::rename(&from, &to).map_err(io("renaming into", &to))
}

/// Rebuilds `store.redb` at `to` from the chain's parts in the destination
/// `root`: the base copied, each delta applied in order, every part
/// checked against its digest on the way (a part changed since the
/// restore's first check is refused). Opened once by redb (its repair of
/// a file copied from a live store runs here), it reaches `to` only whole.
pub(crate) fn rebuild(
    root: &Path,
    chain: &Chain,
    to: &Path,
    tmp_dir: &Path,
    buf: &mut Vec<u8>,
) -> Result<(), Error> {
    use crate::ops::backup::restore::{missing, same};
    let tmp = tmp_dir.join("store.redb.restoring");
    let _ = std::fs::remove_file(&tmp);
    let built = (|| {
        let base = part_path(root, &chain.base);
        match crate::ops::backup::copy::copy_hashing(&base, &tmp, buf)? {
            Some(found) => same(&base, &chain.base, &found)?,
            None => return Err(missing(&base)),
        }
        let file = File::options()
            .write(true)
            .open(&tmp)
            .map_err(io("opening", &tmp))?;
        for d in &chain.deltas {
            let part = part_path(root, d);
            let found = crate::ops::backup::delta::apply(&part, &file, &tmp)?;
            same(&part, d, &found)?;
        }
        file.sync_all().map_err(io("syncing", &tmp))?;
        drop(file);
        crate::db::guard::guarded(&tmp, || {
            let db =
                redb::Database::create(&tmp).map_err(|e| crate::db::guard::open_error(&tmp, e))?;
            drop(db);
            Ok(())
        })
    })();
    if let Err(e) = built {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, to).map_err(io("renaming into", to))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A chain of this tracker's current id, its parts in `root`'s pool.
    fn chain(root: &Path, tracker: &PageTracker, deltas: &[u64]) -> Chain {
        let stamp = tracker.bump();
        let part = |i: u8, bytes: u64| {
            let d = FileDigest {
                bytes,
                sha256: [i; 32],
            };
            std::fs::create_dir_all(root.join(POOL)).unwrap();
            std::fs::write(part_path(root, &d), vec![0; bytes as usize]).unwrap();
            d
        };
        Chain {
            base: part(0, 1000),
            deltas: deltas
                .iter()
                .enumerate()
                .map(|(i, b)| part(i as u8 + 1, *b))
                .collect(),
            tracker: format!("{:032x}", stamp.id),
            epoch: stamp.epoch,
            keys_destroyed: 2,
        }
    }

    #[test]
    fn a_chain_is_extended_only_while_every_rule_holds() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let tracker = PageTracker::new();
        tracker.restart();
        let ok = chain(root, &tracker, &[10, 20]);
        assert!(extends(&ok, &tracker, root, 2).is_some());
        // An erasure since the base.
        assert!(extends(&ok, &tracker, root, 3).is_none());
        // Another open of the store.
        let other = PageTracker::new();
        other.restart();
        assert!(extends(&ok, &other, root, 2).is_none());
        // Fifteen deltas already; deltas over half the base.
        assert!(extends(&chain(root, &tracker, &[1; 14]), &tracker, root, 2).is_some());
        assert!(extends(&chain(root, &tracker, &[1; 15]), &tracker, root, 2).is_none());
        assert!(extends(&chain(root, &tracker, &[300, 200]), &tracker, root, 2).is_some());
        assert!(extends(&chain(root, &tracker, &[300, 201]), &tracker, root, 2).is_none());
        // A part missing or of another size.
        let c = chain(root, &tracker, &[10]);
        std::fs::write(part_path(root, &c.deltas[0]), b"x").unwrap();
        assert!(extends(&c, &tracker, root, 2).is_none());
        std::fs::remove_file(part_path(root, &c.deltas[0])).unwrap();
        assert!(extends(&c, &tracker, root, 2).is_none());
    }
}
