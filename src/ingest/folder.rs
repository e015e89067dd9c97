//! What the ingestor sees of its folder: which entries are candidates
//! (regular files directly in it, not hidden and not staged), a cheap
//! identity of each ([`Snapshot`]), and when a candidate is complete
//! ([`Tracker`]).
//!
//! A file is complete once it was closed after writing (or renamed into
//! the folder) and has not changed since, or once its snapshot has stayed
//! the same for the configured time.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

/// Suffixes of files a writer has not finished (it renames them when done).
const STAGED: &[&[u8]] = &[b".part", b".tmp", b".crdownload"];

/// Whether the ingestor leaves a name alone: hidden (`.name`) or staged
/// (`name.part`, `.tmp`, `.crdownload`, in any case). Decided on the raw
/// bytes, so a name that is not UTF-8 is judged too.
pub(super) fn ignored(name: &OsStr) -> bool {
    let bytes = name.as_encoded_bytes();
    bytes.starts_with(b".")
        || STAGED.iter().any(|s| {
            bytes.len() >= s.len() && bytes[bytes.len() - s.len()..].eq_ignore_ascii_case(s)
        })
}

/// The MIME type of a file name, from its extension.
pub(super) fn content_type_of(name: &str) -> &'static str {
    let ext = Path::new(name)
        .extension()
        .and_then(OsStr::to_str)
        .map(str::to_ascii_lowercase);
    match ext.as_deref() {
        Some("wav") => "audio/wav",
        Some("opus") => "audio/opus",
        Some("ogg") => "audio/ogg",
        Some("mp3") => "audio/mpeg",
        Some("flac") => "audio/flac",
        Some("m4a") => "audio/mp4",
        Some("webm") => "audio/webm",
        _ => "application/octet-stream",
    }
}

/// What identifies a file's state: which inode, how long, when last
/// written. Any write changes it; so does replacing the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Snapshot {
    dev: u64,
    ino: u64,
    pub(super) len: u64,
    modified: Option<SystemTime>,
}

impl Snapshot {
    /// The snapshot of a regular file's metadata; `None` for anything else.
    pub(super) fn of(meta: &std::fs::Metadata) -> Option<Snapshot> {
        meta.file_type().is_file().then(|| Snapshot {
            dev: meta.dev(),
            ino: meta.ino(),
            len: meta.len(),
            modified: meta.modified().ok(),
        })
    }

    /// The snapshot of `path` itself (a symlink is not followed and is
    /// `None`, as is a missing file).
    pub(super) fn at(path: &Path) -> std::io::Result<Option<Snapshot>> {
        match std::fs::symlink_metadata(path) {
            Ok(meta) => Ok(Snapshot::of(&meta)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// The candidates of one folder, directly in it, by name (sorted, so that
/// files are taken in a stable order).
pub(super) fn candidates(root: &Path) -> std::io::Result<Vec<(OsString, Snapshot)>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(root)? {
        let entry = entry?;
        let name = entry.file_name();
        // `file_type` does not follow symlinks: a link is never a candidate.
        if ignored(&name) || !entry.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        // A file removed since the listing is simply not there.
        if let Ok(Some(snap)) = Snapshot::at(&entry.path()) {
            found.push((name, snap));
        }
    }
    found.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(found)
}

/// What the tracker knows of one candidate.
#[derive(Debug)]
struct Seen {
    snap: Snapshot,
    /// When `snap` was first seen.
    since: Instant,
    /// Closed after writing (or renamed in) with `snap`.
    closed: bool,
    /// Not to be tried again before this (after a passing failure).
    not_before: Option<Instant>,
    /// Left alone until its snapshot changes.
    settled: bool,
}

/// When each candidate of a folder is complete.
#[derive(Debug)]
pub(super) struct Tracker {
    seen: HashMap<OsString, Seen>,
    stable_for: Duration,
}

impl Tracker {
    pub(super) fn new(stable_for: Duration) -> Tracker {
        Tracker {
            seen: HashMap::new(),
            stable_for,
        }
    }

    /// Records a snapshot a scan or an event saw: a changed file starts
    /// its stability time again, and a close seen before no longer counts.
    pub(super) fn observe(&mut self, name: &OsStr, snap: Snapshot, now: Instant) {
        match self.seen.get_mut(name) {
            Some(seen) if seen.snap == snap => {}
            _ => {
                let fresh = Seen {
                    snap,
                    since: now,
                    closed: false,
                    not_before: None,
                    settled: false,
                };
                self.seen.insert(name.to_os_string(), fresh);
            }
        }
    }

    /// Records that the file was closed after writing (or renamed into the
    /// folder) and had `snap` afterwards: it is complete while it keeps it.
    pub(super) fn closed(&mut self, name: &OsStr, snap: Snapshot, now: Instant) {
        self.observe(name, snap, now);
        if let Some(seen) = self.seen.get_mut(name) {
            seen.closed = true;
        }
    }

    /// Forgets every name `keep` refuses (files no longer in the folder).
    pub(super) fn retain(&mut self, keep: impl Fn(&OsStr) -> bool) {
        self.seen.retain(|name, _| keep(name));
    }

    pub(super) fn forget(&mut self, name: &OsStr) {
        self.seen.remove(name);
    }

    /// Not to be tried before `until`.
    pub(super) fn defer(&mut self, name: &OsStr, until: Instant) {
        if let Some(seen) = self.seen.get_mut(name) {
            seen.not_before = Some(until);
        }
    }

    /// Left alone until the file changes.
    pub(super) fn settle(&mut self, name: &OsStr) {
        if let Some(seen) = self.seen.get_mut(name) {
            seen.settled = true;
        }
    }

    /// The complete files, by name, with the snapshot they were complete at.
    pub(super) fn due(&self, now: Instant) -> Vec<(OsString, Snapshot)> {
        let mut due: Vec<_> = self
            .seen
            .iter()
            .filter(|(_, s)| {
                !s.settled
                    && s.not_before.is_none_or(|t| now >= t)
                    && (s.closed || now.saturating_duration_since(s.since) >= self.stable_for)
            })
            .map(|(name, s)| (name.clone(), s.snap))
            .collect();
        due.sort_by(|a, b| a.0.cmp(&b.0));
        due
    }

    /// Candidates not settled: files a single pass still waits for.
    pub(super) fn pending(&self) -> usize {
        self.seen.values().filter(|s| !s.settled).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(len: u64) -> Snapshot {
        Snapshot {
            dev: 1,
            ino: 2,
            len,
            modified: None,
        }
    }

    #[test]
    fn hidden_and_staged_names_are_ignored() {
        for name in [
            ".x.wav",
            "a.part",
            "a.wav.PART",
            "b.tmp",
            "c.crdownload",
            ".",
        ] {
            assert!(ignored(OsStr::new(name)), "{name}");
        }
        for name in ["a.wav", "part", "a.partial", "tmp.wav", "a.crdownload.wav"] {
            assert!(!ignored(OsStr::new(name)), "{name}");
        }
    }

    #[test]
    fn content_types_come_from_the_extension() {
        let cases = [
            ("a.wav", "audio/wav"),
            ("a.WAV", "audio/wav"),
            ("a.opus", "audio/opus"),
            ("a.ogg", "audio/ogg"),
            ("a.mp3", "audio/mpeg"),
            ("a.flac", "audio/flac"),
            ("a.m4a", "audio/mp4"),
            ("a.webm", "audio/webm"),
            ("a.txt", "application/octet-stream"),
            ("wav", "application/octet-stream"),
        ];
        for (name, ct) in cases {
            assert_eq!(content_type_of(name), ct, "{name}");
        }
    }

    #[test]
    fn a_file_is_due_when_closed_or_stable_and_a_change_starts_over() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut tr = Tracker::new(ms(100));
        let a = OsStr::new("a.wav");
        tr.observe(a, snap(10), t0);
        assert!(tr.due(t0 + ms(99)).is_empty());
        assert_eq!(tr.due(t0 + ms(100)), vec![(a.to_os_string(), snap(10))]);
        // It grew: the stability time starts again.
        tr.observe(a, snap(20), t0 + ms(100));
        assert!(tr.due(t0 + ms(150)).is_empty());
        // Closed after writing: due at once, until it changes again.
        tr.closed(a, snap(20), t0 + ms(150));
        assert_eq!(tr.due(t0 + ms(150)).len(), 1);
        tr.observe(a, snap(30), t0 + ms(160));
        assert!(tr.due(t0 + ms(160)).is_empty());
        // Deferred, then settled: a pass no longer waits for it.
        tr.defer(a, t0 + ms(500));
        assert!(tr.due(t0 + ms(300)).is_empty());
        assert_eq!(tr.due(t0 + ms(500)).len(), 1);
        tr.settle(a);
        assert!(tr.due(t0 + ms(900)).is_empty());
        assert_eq!(tr.pending(), 0);
        tr.observe(a, snap(31), t0 + ms(900));
        assert_eq!(tr.pending(), 1);
    }
}
