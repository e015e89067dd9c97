//! The local blob directory: `blobs/ab/cd/<address>`, 64 lower-case hex
//! digits named after the blob's address, two levels of 256 directories so
//! that no directory grows past a few thousand entries.
//!
//! The purge retires a blob by renaming it into `blobs/retired/` (under
//! its address lock, so that is all it does there) and destroys retired
//! blobs in batches outside the lock: each is overwritten once, one
//! `syncfs` makes the overwrites durable, then they are unlinked and the
//! directory synced once. A crash leaves retired blobs for the next batch;
//! a rename the crash undid leaves an orphan for the collector.
//!
//! Only what this layout names is ever opened, listed or deleted: a name
//! that is not 64 hex digits in the directories its digits name, anything
//! that is not a plain file or directory, and symbolic links are left
//! alone (never followed: a link where a blob should be does not open).

use std::fs::{self, File};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::placed::Placements;
use super::{BlobBackend, BlobSource, OverwriteSync, StoredBlob};
use crate::error::Error;
use crate::types::BlobAddress;

/// Blobs in a local directory.
pub(crate) struct LocalDir {
    root: PathBuf,
    /// The files this process placed, for a watch on `root`.
    pub(crate) placed: Placements,
    /// Tells retired copies of one address apart.
    retired_seq: std::sync::atomic::AtomicU64,
}

/// Where retired blobs wait for destruction, under the root.
const RETIRED: &str = "retired";

/// What `retired/` holds, for errors about it.
const RETIRED_ROLE: &str = "freed blob files until they are destroyed";

/// Whether `name` is one [`LocalDir::retire`] gives: `<64 hex>.<digits>`.
fn is_retired_name(name: &str) -> bool {
    match name.split_once('.') {
        Some((hex, seq)) => {
            crate::datadir::is_hex(hex, 64)
                && !seq.is_empty()
                && seq.bytes().all(|b| b.is_ascii_digit())
        }
        None => false,
    }
}

/// Threads that destroy retired blobs together: each file operation waits
/// on the disk's metadata updates, not on the CPU, so a few run at once
/// even on two cores.
const FILE_THREADS: usize = 4;

/// `f` over `items`, on up to [`FILE_THREADS`] threads for large batches;
/// the results in order (an item whose thread panicked is left out).
fn in_parallel<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    in_parallel_on(FILE_THREADS, items, f)
}

/// [`in_parallel`] on up to `threads` threads.
fn in_parallel_on<T: Sync, R: Send>(
    threads: usize,
    items: &[T],
    f: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    let threads = threads.min(items.len().div_ceil(64)).max(1);
    if threads == 1 {
        return items.iter().map(&f).collect();
    }
    let chunk = items.len().div_ceil(threads);
    std::thread::scope(|s| {
        let f = &f;
        let workers: Vec<_> = items
            .chunks(chunk)
            .map(|c| s.spawn(move || c.iter().map(f).collect::<Vec<R>>()))
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap_or_default())
            .collect()
    })
}

/// Makes every overwrite on the file system holding `dir` durable at once.
#[allow(unsafe_code)]
pub(crate) fn sync_file_system(dir: &Path) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let d = File::open(dir)?;
    // SAFETY: `d` is an open descriptor for the whole call.
    let rc = unsafe { libc::syncfs(d.as_raw_fd()) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

impl LocalDir {
    /// Blobs under `root` (created by the caller when it may write).
    pub(crate) fn new(root: PathBuf) -> LocalDir {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        LocalDir {
            root,
            retired_seq: std::sync::atomic::AtomicU64::new(seed),
            placed: Placements::default(),
        }
    }

    /// The directory the blobs live under.
    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    /// Where the blob at `address` lives.
    pub(crate) fn path_of(&self, address: BlobAddress) -> PathBuf {
        let hex = hex::encode(address.0);
        self.root.join(&hex[0..2]).join(&hex[2..4]).join(hex)
    }

    /// Where retired blobs wait: `root/retired/` (made by the store's
    /// open and by the first retirement).
    pub(crate) fn retired_path(&self) -> PathBuf {
        self.root.join(RETIRED)
    }

    /// `root/retired/`, made if it is missing; refused if a link or
    /// anything but a directory has taken its name (see
    /// [`own_dir`](crate::datadir::own_dir)).
    pub(crate) fn retired_dir(&self) -> Result<PathBuf, Error> {
        let dir = self.retired_path();
        if !crate::datadir::own_dir(&dir, RETIRED_ROLE)? {
            crate::datadir::make_own_dir(&dir)?;
        }
        Ok(dir)
    }

    /// Moves the blob at `address` into `retired` (made by the caller);
    /// `false` if there was none.
    fn retire_into(&self, retired: &Path, address: BlobAddress) -> Result<bool, Error> {
        if !self.exists(address)? {
            return Ok(false);
        }
        let from = self.path_of(address);
        let seq = self
            .retired_seq
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let to = retired.join(format!("{}.{seq}", hex::encode(address.0)));
        match fs::rename(&from, &to) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(Error::io(format!("retiring {}", from.display()), e)),
        }
    }

    /// The blob a path names, if it is where this layout keeps one
    /// (`root/ab/cd/<abcd...>`, lower-case hex); `None` for anything else.
    pub(crate) fn address_at(&self, path: &Path) -> Option<BlobAddress> {
        let [d1, d2, name] = self.names_under_root(path)?.try_into().ok()?;
        let address = BlobAddress::from_name(name)?;
        (name[0..2] == *d1 && name[2..4] == *d2).then_some(address)
    }

    /// Whether a path is the root or one of the layout's directories
    /// (`root/ab`, `root/ab/cd`).
    pub(crate) fn is_layout_dir(&self, path: &Path) -> bool {
        self.names_under_root(path).is_some_and(|names| {
            names.len() <= 2 && names.iter().all(|n| crate::datadir::is_hex(n, 2))
        })
    }

    /// The names of a path's components below the root (`None` if it is
    /// not below it, or a name is not UTF-8 or not a plain name).
    fn names_under_root<'p>(&self, path: &'p Path) -> Option<Vec<&'p str>> {
        let rest = path.strip_prefix(&self.root).ok()?;
        rest.components()
            .map(|c| match c {
                std::path::Component::Normal(n) => n.to_str(),
                _ => None,
            })
            .collect()
    }
}

/// The entries of `dir` that are directories named by two hex digits, in
/// order, from `from` on.
fn hex_dirs(dir: &Path, from: &str) -> Result<Vec<(String, PathBuf)>, Error> {
    let mut out = Vec::new();
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(Error::io(format!("listing {}", dir.display()), e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(format!("listing {}", dir.display()), e))?;
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        if is_dir && crate::datadir::is_hex(&name, 2) && name.as_str() >= from {
            out.push((name, entry.path()));
        }
    }
    out.sort();
    Ok(out)
}

/// Writes zeros once over a blob file and syncs it (not through a link).
fn overwrite(path: &Path) -> std::io::Result<()> {
    overwrite_unsynced(path)?.sync_data()
}

/// Writes zeros once over a blob file (not through a link), unsynced;
/// a file with another hard link (a backup's) is left as it is.
fn overwrite_unsynced(path: &Path) -> std::io::Result<File> {
    use std::io::Write;
    let mut f = File::options()
        .write(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?;
    let meta = f.metadata()?;
    if std::os::unix::fs::MetadataExt::nlink(&meta) > 1 {
        // Another name holds these bytes: a backup's hard link, which must
        // keep them. Only this name goes; the key deletion still holds.
        tracing::debug!(path = %path.display(), "not overwriting a blob file with another link");
        return Ok(f);
    }
    let mut left = meta.len();
    let zeros = vec![0u8; 1 << 16];
    while left > 0 {
        let n = usize::try_from(left).unwrap_or(usize::MAX).min(zeros.len());
        f.write_all(&zeros[..n])?;
        left -= n as u64;
    }
    Ok(f)
}

impl BlobBackend for LocalDir {
    fn name(&self) -> &'static str {
        "local"
    }

    fn prepare(&self, address: BlobAddress) -> Result<(), Error> {
        crate::fsutil::ensure_parent(&self.path_of(address)).map(|_| ())
    }

    fn commit(&self, tmp: &Path, address: BlobAddress) -> Result<(), Error> {
        let path = self.path_of(address);
        let result = crate::fsutil::persist(tmp, &path);
        match &result {
            Ok(()) => self.placed.note(address, &path),
            Err(_) => {
                let _ = fs::remove_file(tmp);
            }
        }
        result
    }

    fn as_local(&self) -> Option<&LocalDir> {
        Some(self)
    }

    fn open(&self, address: BlobAddress) -> Result<Option<Box<dyn BlobSource>>, Error> {
        let path = self.path_of(address);
        match File::options()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
        {
            Ok(f) => Ok(Some(Box::new(f))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(format!("opening {}", path.display()), e)),
        }
    }

    fn exists(&self, address: BlobAddress) -> Result<bool, Error> {
        let path = self.path_of(address);
        match fs::symlink_metadata(&path) {
            Ok(m) => Ok(m.is_file()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(Error::io(format!("reading {}", path.display()), e)),
        }
    }

    fn delete(&self, address: BlobAddress) -> Result<bool, Error> {
        self.placed.forget(address);
        if !self.exists(address)? {
            return Ok(false);
        }
        let path = self.path_of(address);
        // Best effort: the key deletion is what makes the bytes unreadable
        // (see `docs/LIFECYCLE.md`); this only keeps them off a plain disk.
        if let Err(e) = overwrite(&path) {
            tracing::warn!(blob = %address, error = %e, "could not overwrite a blob before deleting it");
        }
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(Error::io(format!("deleting {}", path.display()), e)),
        }
        if let Some(dir) = path.parent() {
            crate::fsutil::sync_dir(dir)?;
        }
        Ok(true)
    }

    fn retire_many(&self, addresses: &[BlobAddress]) -> Vec<Result<bool, Error>> {
        match self.retired_dir() {
            Ok(dir) => in_parallel(addresses, |a| self.retire_into(&dir, *a)),
            Err(e) => addresses.iter().map(|_| Err(e.share())).collect(),
        }
    }

    fn retire(&self, address: BlobAddress) -> Result<bool, Error> {
        self.retire_into(&self.retired_dir()?, address)
    }

    fn destroy_retired(&self, sync: OverwriteSync) -> Result<u64, Error> {
        let dir = self.retired_path();
        if !crate::datadir::own_dir(&dir, RETIRED_ROLE)? {
            return Ok(0);
        }
        let entries =
            fs::read_dir(&dir).map_err(|e| Error::io(format!("listing {}", dir.display()), e))?;
        let mut doomed = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| Error::io(format!("listing {}", dir.display()), e))?;
            let is_file = entry.file_type().is_ok_and(|t| t.is_file());
            if is_file && entry.file_name().to_str().is_some_and(is_retired_name) {
                doomed.push(entry.path());
            }
        }
        if doomed.is_empty() {
            return Ok(0);
        }
        // Best effort (the key deletion is what makes the bytes
        // unreadable; see `docs/LIFECYCLE.md`): each file overwritten
        // once, and synced as `sync` says; one file at a time for a busy
        // store, whose disk the destruction shares.
        let threads = match sync {
            OverwriteSync::Together => FILE_THREADS,
            OverwriteSync::EachFile => 1,
        };
        in_parallel_on(threads, &doomed, |path| {
            let done = match sync {
                OverwriteSync::Together => overwrite_unsynced(path).map(drop),
                OverwriteSync::EachFile => overwrite(path),
            };
            if let Err(e) = done {
                tracing::warn!(path = %path.display(), error = %e, "could not overwrite a retired blob");
            }
        });
        if sync == OverwriteSync::Together
            && let Err(e) = sync_file_system(&dir)
        {
            tracing::warn!(error = %e, "could not sync the overwrites of retired blobs");
        }
        let removed = in_parallel_on(threads, &doomed, |path| match fs::remove_file(path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(Error::io(format!("deleting {}", path.display()), e)),
        });
        crate::fsutil::sync_dir(&dir)?;
        let mut destroyed = 0;
        for r in removed {
            destroyed += u64::from(r?);
        }
        Ok(destroyed)
    }

    fn list(&self, after: Option<BlobAddress>, limit: usize) -> Result<Vec<StoredBlob>, Error> {
        let after_hex = after.map(|a| hex::encode(a.0)).unwrap_or_default();
        let (from1, from2) = (
            after_hex.get(0..2).unwrap_or(""),
            after_hex.get(2..4).unwrap_or(""),
        );
        let mut out = Vec::new();
        for (n1, d1) in hex_dirs(&self.root, from1)? {
            let from2 = if n1 == from1 { from2 } else { "" };
            for (n2, d2) in hex_dirs(&d1, from2)? {
                let mut found = Vec::new();
                let entries = fs::read_dir(&d2)
                    .map_err(|e| Error::io(format!("listing {}", d2.display()), e))?;
                for entry in entries {
                    let entry =
                        entry.map_err(|e| Error::io(format!("listing {}", d2.display()), e))?;
                    let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                        continue;
                    };
                    let Some(address) = BlobAddress::from_name(&name) else {
                        continue;
                    };
                    if name[0..2] != n1 || name[2..4] != n2 {
                        continue;
                    }
                    // Not followed: a link's own type is not a file.
                    let Ok(meta) = entry.metadata() else { continue };
                    if !meta.is_file() || name <= after_hex {
                        continue;
                    }
                    let modified = crate::fsutil::modified(&meta);
                    found.push(StoredBlob {
                        address,
                        bytes: meta.len(),
                        modified,
                    });
                }
                found.sort_by_key(|b| b.address.0);
                for b in found {
                    out.push(b);
                    if out.len() >= limit {
                        return Ok(out);
                    }
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(dir: &LocalDir, tmp: &Path, address: BlobAddress, bytes: &[u8]) {
        let t = tmp.join(format!("{address}.part"));
        fs::write(&t, bytes).unwrap();
        dir.commit(&t, address).unwrap();
        assert!(!t.exists(), "the temporary is consumed");
    }

    #[test]
    fn commit_open_exists_delete_and_list_in_order() {
        let root = tempfile::tempdir().unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let dir = LocalDir::new(root.path().join("blobs"));
        let addrs: Vec<BlobAddress> = [0x10u8, 0x01, 0xff, 0x10]
            .iter()
            .enumerate()
            .map(|(i, b)| {
                let mut a = [*b; 32];
                a[31] = i as u8;
                BlobAddress(a)
            })
            .collect();
        for (i, a) in addrs.iter().enumerate() {
            put(&dir, tmp.path(), *a, &vec![i as u8; 10 + i]);
        }
        let src = dir.open(addrs[2]).unwrap().unwrap();
        assert_eq!(src.len().unwrap(), 12);
        let mut buf = [0u8; 2];
        src.read_exact_at(&mut buf, 10).unwrap();
        assert_eq!(buf, [2, 2]);
        assert!(src.read_exact_at(&mut buf, 11).is_err(), "past the end");
        let mut sorted = addrs.clone();
        sorted.sort_by_key(|a| a.0);
        let listed: Vec<_> = dir.list(None, 100).unwrap();
        assert_eq!(listed.iter().map(|b| b.address).collect::<Vec<_>>(), sorted);
        assert_eq!(listed[0].bytes, 11, "size of the blob at 01..");
        // A listing resumes after its last address, a page at a time.
        let mut paged = Vec::new();
        let mut after = None;
        loop {
            let page = dir.list(after, 1).unwrap();
            let Some(last) = page.last() else { break };
            after = Some(last.address);
            paged.extend(page.iter().map(|b| b.address));
        }
        assert_eq!(paged, sorted);
        assert!(dir.exists(addrs[1]).unwrap());
        assert!(dir.delete(addrs[1]).unwrap());
        assert!(!dir.delete(addrs[1]).unwrap(), "already gone");
        assert!(!dir.exists(addrs[1]).unwrap());
        assert!(dir.open(addrs[1]).unwrap().is_none());
        assert_eq!(dir.list(None, 100).unwrap().len(), 3);
    }

    #[test]
    fn what_the_layout_does_not_name_is_never_listed_opened_or_deleted() {
        let root = tempfile::tempdir().unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let dir = LocalDir::new(root.path().join("blobs"));
        let a = BlobAddress([0xab; 32]);
        put(&dir, tmp.path(), a, b"blob");
        let d2 = root.path().join("blobs/ab/ab");
        // A foreign file, a wrong-directory name, upper-case hex.
        fs::write(d2.join("notes.txt"), b"mine").unwrap();
        let misplaced = format!("cd{}", &hex::encode(a.0)[2..]);
        fs::write(d2.join(&misplaced), b"x").unwrap();
        fs::write(d2.join(hex::encode(a.0).to_uppercase()), b"x").unwrap();
        // A symbolic link where a blob should be, to a file outside.
        let outside = tmp.path().join("outside");
        fs::write(&outside, b"not the store's").unwrap();
        let mut linked = [0xab; 32];
        linked[31] = 0;
        let linked = BlobAddress(linked);
        std::os::unix::fs::symlink(&outside, dir.path_of(linked)).unwrap();
        let listed: Vec<_> = dir.list(None, 100).unwrap();
        assert_eq!(listed.iter().map(|x| x.address).collect::<Vec<_>>(), [a]);
        assert!(dir.open(linked).is_err(), "a link is not followed");
        assert!(!dir.exists(linked).unwrap());
        assert!(!dir.delete(linked).unwrap());
        assert_eq!(fs::read(&outside).unwrap(), b"not the store's");
        assert!(
            fs::symlink_metadata(dir.path_of(linked)).is_ok(),
            "the link stays"
        );
        assert!(d2.join("notes.txt").exists());
    }

    #[test]
    fn retired_blobs_leave_their_address_at_once_and_are_destroyed_later() {
        let root = tempfile::tempdir().unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let dir = LocalDir::new(root.path().join("blobs"));
        let (a, b) = (BlobAddress([0x01; 32]), BlobAddress([0x02; 32]));
        put(&dir, tmp.path(), a, b"first");
        put(&dir, tmp.path(), b, b"second");
        assert!(dir.retire(a).unwrap());
        assert!(!dir.retire(a).unwrap(), "already retired");
        assert!(!dir.exists(a).unwrap(), "the address is free at once");
        // The same address stored and retired again before destruction.
        put(&dir, tmp.path(), a, b"again");
        assert!(dir.retire(a).unwrap());
        let retired = root.path().join("blobs").join(RETIRED);
        assert_eq!(fs::read_dir(&retired).unwrap().count(), 2);
        // Only names the store gave are destroyed; links are not followed.
        fs::write(retired.join("notes.txt"), b"mine").unwrap();
        let outside = root.path().join("outside");
        fs::write(&outside, b"not the store's").unwrap();
        let link = retired.join(format!("{}.7", hex::encode([3u8; 32])));
        std::os::unix::fs::symlink(&outside, &link).unwrap();
        assert_eq!(dir.destroy_retired(OverwriteSync::Together).unwrap(), 2);
        assert_eq!(dir.destroy_retired(OverwriteSync::Together).unwrap(), 0);
        assert!(retired.join("notes.txt").exists());
        assert_eq!(fs::read(&outside).unwrap(), b"not the store's");
        assert!(fs::symlink_metadata(&link).is_ok(), "the link stays");
        assert_eq!(
            dir.list(None, 10)
                .unwrap()
                .iter()
                .map(|x| x.address)
                .collect::<Vec<_>>(),
            [b],
            "the retired directory is not listed as blobs"
        );
    }

    #[test]
    fn a_link_in_place_of_retired_is_neither_followed_nor_removed() {
        let root = tempfile::tempdir().unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let dir = LocalDir::new(root.path().join("blobs"));
        let a = BlobAddress([0x05; 32]);
        put(&dir, tmp.path(), a, b"kept");
        // Someone else's directory, holding a file with a retired name.
        let elsewhere = root.path().join("elsewhere");
        fs::create_dir(&elsewhere).unwrap();
        let theirs = elsewhere.join(format!("{}.1", hex::encode([6u8; 32])));
        fs::write(&theirs, b"not the store's").unwrap();
        let retired = root.path().join("blobs").join(RETIRED);
        std::os::unix::fs::symlink(&elsewhere, &retired).unwrap();

        for sync in [OverwriteSync::Together, OverwriteSync::EachFile] {
            let e = dir.destroy_retired(sync).unwrap_err();
            assert!(e.to_string().contains("symbolic link"), "{e}");
        }
        assert!(
            dir.retire(a)
                .unwrap_err()
                .to_string()
                .contains("symbolic link")
        );
        assert!(dir.retire_many(&[a])[0].is_err());
        assert_eq!(fs::read(&theirs).unwrap(), b"not the store's");
        assert_eq!(
            fs::read_dir(&elsewhere).unwrap().count(),
            1,
            "nothing moved in"
        );
        assert!(dir.exists(a).unwrap(), "the blob stays at its address");
        assert!(
            fs::symlink_metadata(&retired)
                .unwrap()
                .file_type()
                .is_symlink()
        );

        // A plain file in its place is refused too.
        fs::remove_file(&retired).unwrap();
        fs::write(&retired, b"x").unwrap();
        assert!(
            dir.retire(a)
                .unwrap_err()
                .to_string()
                .contains("not a directory")
        );
        assert_eq!(fs::read(&retired).unwrap(), b"x");
    }

    #[test]
    fn large_batches_are_retired_and_destroyed_on_several_threads() {
        let root = tempfile::tempdir().unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let dir = LocalDir::new(root.path().join("blobs"));
        let addrs: Vec<BlobAddress> = (0..300u16)
            .map(|i| {
                let mut a = [0u8; 32];
                a[..2].copy_from_slice(&i.to_be_bytes());
                BlobAddress(a)
            })
            .collect();
        for a in &addrs {
            put(&dir, tmp.path(), *a, b"doomed");
        }
        let mut with_missing = addrs.clone();
        with_missing.push(BlobAddress([0xee; 32]));
        let retired = dir.retire_many(&with_missing);
        assert_eq!(retired.len(), 301);
        assert!(retired[..300].iter().all(|r| matches!(r, Ok(true))));
        assert!(matches!(retired[300], Ok(false)), "nothing to retire");
        assert!(dir.list(None, 1000).unwrap().is_empty());
        assert_eq!(dir.destroy_retired(OverwriteSync::Together).unwrap(), 300);
        let left = fs::read_dir(root.path().join("blobs").join(RETIRED)).unwrap();
        assert_eq!(left.count(), 0);
    }

    #[test]
    fn paths_map_back_to_addresses_only_where_the_layout_puts_blobs() {
        let dir = LocalDir::new(PathBuf::from("/data/blobs"));
        let a = BlobAddress([0xab; 32]);
        assert_eq!(dir.address_at(&dir.path_of(a)), Some(a));
        let hex = hex::encode(a.0);
        for bad in [
            format!("/data/blobs/ab/ab/{}", hex.to_uppercase()),
            format!("/data/blobs/ab/cd/{hex}"),
            format!("/data/blobs/ab/{hex}"),
            format!("/data/blobs/ab/ab/{hex}.part"),
            format!("/data/tmp/{hex}"),
            format!("/data/blobs/ab/ab/../ab/{hex}"),
            format!("/data/blobs/ab/ab/{hex}/x"),
        ] {
            assert_eq!(dir.address_at(Path::new(&bad)), None, "{bad}");
        }
        assert!(dir.is_layout_dir(Path::new("/data/blobs")));
        assert!(dir.is_layout_dir(Path::new("/data/blobs/ab/0f")));
        assert!(!dir.is_layout_dir(Path::new("/data/blobs/ab/0F")));
        assert!(!dir.is_layout_dir(&dir.path_of(a)));
        assert!(!dir.is_layout_dir(Path::new("/data/tmp")));
    }
}
