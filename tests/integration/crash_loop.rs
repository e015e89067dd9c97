//! The kill loop: `bvstore debug crash-workload` runs a mix of everything
//! the store does, one operation at a time, logging each `begin` and each
//! durable `ack`; it is killed with SIGKILL at a random moment, again and
//! again on the same data directory. After every kill the store is
//! reopened and checked against the log: every acknowledged write is
//! there (users, display names, deletes, erasures, sessions' turns,
//! files' bytes, grants and revokes, cache values, counters and tag
//! invalidations), and after one lifecycle pass `verify --deep` finds
//! nothing (blobs authenticate, refcounts and usage equal a recount, no
//! orphans). A cycle counts only when the kill landed while an operation
//! was in flight (the log ends with a `begin`); the loop runs until
//! `BV_CRASH_CYCLES` (default 100) such cycles passed.
//!
//! Every `BV_CRASH_EPOCH` (default 100) counted cycles the loop starts
//! again on a fresh data directory and log: the checks read the whole
//! store, so without this a cycle grows slower as the store grows (about
//! 4 s per cycle after 400 on one directory), and a 1000-cycle run would
//! take hours.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use bharatvoice_store::{Actor, Error, FileId, SessionId, Store, UserId, VerifyOptions};
use sha2::{Digest, Sha256};

use crate::common::config;

/// What the acknowledged operations of the log say the store holds.
#[derive(Default)]
struct Model {
    /// Live users and their last acknowledged display name.
    users: HashMap<UserId, Option<String>>,
    deleted: HashSet<UserId>,
    erased: HashSet<UserId>,
    /// Session, its user, its last acknowledged turn.
    sessions: HashMap<SessionId, (UserId, Option<String>)>,
    /// Live files: owner and SHA-256 of the bytes.
    files: HashMap<FileId, (UserId, String)>,
    deleted_files: HashSet<FileId>,
    grants: HashSet<(FileId, UserId)>,
    revoked: HashSet<(FileId, UserId)>,
    /// Cache keys: value and tag, or `None` once deleted or invalidated.
    cache: HashMap<String, Option<(String, String)>>,
    counters: HashMap<String, i64>,
}

fn id<T: std::str::FromStr>(s: &str) -> T
where
    T::Err: std::fmt::Debug,
{
    s.parse()
        .unwrap_or_else(|e| panic!("an id in the log: {s}: {e:?}"))
}

impl Model {
    /// Takes `u` and what hangs on it out of the live model; `erased`: its
    /// files are gone for good (a soft delete leaves them to the purge).
    fn drop_user(&mut self, u: UserId, erased: bool) {
        self.users.remove(&u);
        self.sessions.retain(|_, (owner, _)| *owner != u);
        let gone: Vec<FileId> = self
            .files
            .iter()
            .filter(|(_, (o, _))| *o == u)
            .map(|(f, _)| *f)
            .collect();
        for f in &gone {
            self.files.remove(f);
            if erased {
                self.deleted_files.insert(*f);
            }
        }
        // Nor are the grants of their files, or to them, checked.
        self.grants.retain(|(f, _)| !gone.contains(f));
        self.revoked.retain(|(f, _)| !gone.contains(f));
        self.grants.retain(|(_, to)| *to != u);
        self.revoked.retain(|(_, to)| *to != u);
    }

    fn apply(&mut self, w: &[&str]) {
        match w {
            ["user", u, _name] => {
                self.users.insert(id(u), None);
            }
            ["update", u, name] => {
                self.users.insert(id(u), Some((*name).to_owned()));
            }
            ["udelete", u] => {
                self.drop_user(id(u), false);
                self.deleted.insert(id(u));
            }
            ["erase", u] => {
                self.drop_user(id(u), true);
                self.erased.insert(id(u));
            }
            ["session", s, u] => {
                self.sessions.insert(id(s), (id(u), None));
            }
            ["turn", s, text] => {
                if let Some(entry) = self.sessions.get_mut(&id(s)) {
                    entry.1 = Some((*text).to_owned());
                }
            }
            ["file", f, u, sha] => {
                self.files.insert(id(f), (id(u), (*sha).to_owned()));
            }
            ["fdelete", f] => {
                let f: FileId = id(f);
                self.files.remove(&f);
                self.deleted_files.insert(f);
                self.grants.retain(|(x, _)| *x != f);
                self.revoked.retain(|(x, _)| *x != f);
            }
            ["grant", f, to] => {
                self.grants.insert((id(f), id(to)));
                self.revoked.remove(&(id(f), id(to)));
            }
            ["revoke", f, to] => {
                self.grants.remove(&(id(f), id(to)));
                self.revoked.insert((id(f), id(to)));
            }
            ["cset", key, value, tag] => {
                self.cache.insert(
                    (*key).to_owned(),
                    Some(((*value).to_owned(), (*tag).to_owned())),
                );
            }
            ["cdel", key] => {
                self.cache.insert((*key).to_owned(), None);
            }
            ["cincr", key, now] => {
                self.counters.insert((*key).to_owned(), id(now));
            }
            ["cinv", tag] => {
                for v in self.cache.values_mut() {
                    if v.as_ref().is_some_and(|(_, t)| t == tag) {
                        *v = None;
                    }
                }
            }
            [
                "read" | "gone" | "gc" | "rotate" | "norotate" | "backup" | "refused",
                ..,
            ] => {}
            other => panic!("unknown log line {other:?}"),
        }
    }

    /// Leaves unchecked what an operation cut by a kill may or may not
    /// have done, until a later acknowledged operation settles it again.
    fn unsettle(&mut self, w: &[&str]) {
        match w {
            ["update", u, _] => {
                if let Some(name) = self.users.get_mut(&id(u)) {
                    *name = None;
                }
            }
            ["udelete" | "erase", u] => self.drop_user(id(u), false),
            ["turn", s, _] => {
                if let Some(entry) = self.sessions.get_mut(&id(s)) {
                    entry.1 = None;
                }
            }
            ["fdelete", f] => {
                // It may have landed: nor are the file's grants checked.
                let f: FileId = id(f);
                self.files.remove(&f);
                self.grants.retain(|(x, _)| *x != f);
                self.revoked.retain(|(x, _)| *x != f);
            }
            ["grant" | "revoke", f, to] => {
                self.grants.remove(&(id(f), id(to)));
                self.revoked.remove(&(id(f), id(to)));
            }
            ["cset" | "cdel", key, ..] => {
                self.cache.remove(*key);
            }
            ["cincr", key] => {
                self.counters.remove(*key);
            }
            ["cinv", tag] => self
                .cache
                .retain(|_, v| v.as_ref().is_none_or(|(_, t)| t != tag)),
            _ => {}
        }
    }
}

/// The model of the whole log, the operation in flight at the kill (the
/// last `begin` without its `ack`), and how many acks there were.
fn read_log(path: &Path) -> (Model, Option<String>, usize) {
    let text = std::fs::read_to_string(path).expect("read the crash log");
    let mut model = Model::default();
    let mut open: Option<String> = None;
    let mut acks = 0;
    for line in text.lines() {
        let mut parts = line.splitn(3, ' ');
        let (what, _seq, rest) = (parts.next(), parts.next(), parts.next().unwrap_or(""));
        match what {
            Some("begin") => {
                // A begin with no ack before it: an earlier run's kill.
                if let Some(cut) = open.replace(rest.to_owned()) {
                    model.unsettle(&cut.split(' ').collect::<Vec<_>>());
                }
            }
            Some("ack") => {
                open = None;
                acks += 1;
                model.apply(&rest.split(' ').collect::<Vec<_>>());
            }
            _ => panic!("a torn log line {line:?}: acks are synced before the next begin"),
        }
    }
    if let Some(op) = &open {
        model.unsettle(&op.split(' ').collect::<Vec<_>>());
    }
    (model, open, acks)
}

fn hex_sha(bytes: &[u8]) -> String {
    hex_sha_of(&Sha256::digest(bytes).into())
}

fn hex_sha_of(digest: &[u8; 32]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

fn gone<T: std::fmt::Debug>(r: Result<T, Error>) -> bool {
    matches!(r, Err(Error::NotFound { .. }))
}

/// Checks the store against the model. File bytes are read for the files
/// not `seen` by an earlier check, and for all of them when `deep`.
async fn check(store: &Store, m: &Model, seen: &HashSet<FileId>, deep: bool, context: &str) {
    for (u, name) in &m.users {
        let user = store
            .users()
            .get(*u)
            .unwrap_or_else(|e| panic!("{context}: acknowledged user {u} lost: {e}"));
        if name.is_some() {
            assert_eq!(&user.display_name, name, "{context}: display name of {u}");
        }
    }
    for u in m.deleted.iter().chain(&m.erased) {
        assert!(gone(store.users().get(*u)), "{context}: user {u} came back");
    }
    for (s, (_, last)) in &m.sessions {
        let session = store
            .sessions()
            .get(*s)
            .unwrap_or_else(|e| panic!("{context}: acknowledged session {s} lost: {e}"));
        if let Some(text) = last {
            let turns: Vec<&str> = session.context.iter().map(|t| t.text.as_str()).collect();
            assert_eq!(
                turns.last(),
                Some(&text.as_str()),
                "{context}: last turn of {s}"
            );
        }
    }
    for (f, (_, sha)) in &m.files {
        let record = store
            .files()
            .stat(Actor::System, *f)
            .await
            .unwrap_or_else(|e| panic!("{context}: acknowledged file {f} lost: {e}"));
        assert_eq!(
            &hex_sha_of(&record.sha256),
            sha,
            "{context}: record of file {f}"
        );
        if deep || !seen.contains(f) {
            let bytes = store
                .files()
                .read(Actor::System, *f)
                .await
                .unwrap_or_else(|e| panic!("{context}: acknowledged file {f} unreadable: {e}"));
            assert_eq!(&hex_sha(&bytes), sha, "{context}: bytes of file {f}");
        }
    }
    for f in &m.deleted_files {
        assert!(
            gone(store.files().stat(Actor::System, *f).await),
            "{context}: deleted file {f} came back"
        );
    }
    for (f, to) in &m.grants {
        store
            .files()
            .read(Actor::User(*to), *f)
            .await
            .unwrap_or_else(|e| panic!("{context}: grant of {f} to {to} lost: {e}"));
    }
    for (f, to) in &m.revoked {
        if m.files.contains_key(f) && m.users.contains_key(to) {
            assert!(
                store.files().read(Actor::User(*to), *f).await.is_err(),
                "{context}: revoked grant of {f} to {to} came back"
            );
        }
    }
    for (key, want) in &m.cache {
        let got = store.cache().get_bytes(key).await.expect("cache get");
        let got = got.map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        assert_eq!(
            got.as_deref(),
            want.as_ref().map(|(v, _)| v.as_str()),
            "{context}: cache key {key}"
        );
    }
    for (key, n) in &m.counters {
        let got = store.cache().get_bytes(key).await.expect("cache get");
        let got = got.map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        assert_eq!(got, Some(n.to_string()), "{context}: counter {key}");
    }
}

/// How long a session may idle before the expiry job ends it: longer than
/// any run (by default 30 minutes, and a 1000-cycle run takes longer, so
/// its first sessions expired, as they should, and the model lost them).
const SESSION_IDLE: Duration = Duration::from_secs(3650 * 86_400);

/// Runs the child until `acks` more acknowledgements and a short random
/// pause, then kills it.
fn run_and_kill(dir: &Path, log: &Path, backups: &Path, seed: u64, acks: usize, pause_us: u64) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_bvstore"))
        .arg("--data-dir")
        .arg(dir)
        .args(["debug", "crash-workload", "--seed", &seed.to_string()])
        .arg("--log")
        .arg(log)
        .arg("--backup-dir")
        .arg(backups)
        .env("BV_PASSWORD_MEMORY_KIB", "8")
        .env("BV_PASSWORD_ITERATIONS", "1")
        .env("BV_SESSION_IDLE_SECS", SESSION_IDLE.as_secs().to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start bvstore");
    let out = child.stdout.take().expect("stdout");
    let seen = BufReader::new(out)
        .lines()
        .map_while(Result::ok)
        .take(acks)
        .count();
    std::thread::sleep(Duration::from_micros(pause_us));
    child.kill().expect("SIGKILL");
    let status = child.wait().expect("reap");
    assert_eq!(seen, acks, "the workload stopped by itself ({status})");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_work_survives_sigkill_at_random_moments() {
    let cycles: usize = std::env::var("BV_CRASH_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let base = std::env::var("BV_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_secs())
        });
    let epoch: usize = std::env::var("BV_CRASH_EPOCH")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(100);
    let mut dir = crate::common::store_dir();
    let mut work = tempfile::tempdir().unwrap();
    let (mut landed, mut between, mut log_lines) = (0, 0, 0);
    let mut attempt = 0u64;
    let mut seen = HashSet::new();
    let mut cut = HashMap::new();
    let mut fresh_at = epoch;
    while landed < cycles {
        if landed >= fresh_at {
            fresh_at += epoch;
            log_lines += std::fs::read_to_string(work.path().join("crash.log"))
                .map_or(0, |t| t.lines().count());
            dir = crate::common::store_dir();
            work = tempfile::tempdir().unwrap();
            seen.clear();
        }
        let log = work.path().join("crash.log");
        let backups = work.path().join("backups");
        attempt += 1;
        assert!(
            attempt <= 4 * cycles as u64,
            "only {landed} of {attempt} kills landed in an operation (seed {base})"
        );
        let seed = base.wrapping_mul(31).wrapping_add(attempt);
        let acks = 3 + (seed % 37) as usize;
        let pause = (seed.wrapping_mul(0x9e37_79b9) >> 7) % 3000;
        run_and_kill(dir.path(), &log, &backups, seed, acks, pause);
        let (model, in_flight, total) = read_log(&log);
        let context = format!("attempt {attempt} (seed {base}), {total} acks so far");
        let store = Store::open(config(dir.path()).session_idle_timeout(SESSION_IDLE))
            .await
            .unwrap_or_else(|e| panic!("{context}: reopen after kill: {e}"));
        // Every tenth cycle, the last and the last of each directory:
        // every file's bytes, and verify reads every blob; otherwise the
        // bytes of new files, and verify checks records, indexes,
        // refcounts, usage and blob presence.
        let deep = attempt.is_multiple_of(10) || landed + 1 >= cycles || (landed + 1) % epoch == 0;
        check(&store, &model, &seen, deep, &context).await;
        seen.extend(model.files.keys().copied());
        // A kill between two operations proves nothing about a cut one:
        // such a cycle is run again, not counted.
        match in_flight {
            Some(op) => {
                landed += 1;
                let kind = op.split(' ').next().unwrap_or("").to_owned();
                *cut.entry(kind).or_insert(0usize) += 1;
            }
            None => between += 1,
        }
        // One lifecycle pass (expiry, purge, orphan collection), then
        // verify: clean.
        store
            .lifecycle()
            .run_all(false)
            .await
            .expect("lifecycle pass");
        let report = store
            .verify(VerifyOptions {
                deep,
                ..VerifyOptions::default()
            })
            .await
            .expect("verify");
        assert!(
            report.is_clean(),
            "{context}: verify after a lifecycle pass: {:?}",
            report.problems
        );
        store.close().await;
    }
    let mut cut: Vec<_> = cut.into_iter().collect();
    cut.sort();
    log_lines +=
        std::fs::read_to_string(work.path().join("crash.log")).map_or(0, |t| t.lines().count());
    eprintln!(
        "{landed} kills landed in an operation, {between} between two (seed {base}, \
         {epoch} per data directory, {log_lines} log lines); operations cut: {cut:?}",
    );
}
