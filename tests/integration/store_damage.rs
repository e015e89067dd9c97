//! A damaged `store.redb`: one flipped byte in turn at a few offsets of
//! every page of a small store. What holds: opening is refused with
//! [`Error::Corrupt`] naming the file and pointing to a restore, or goes
//! through; no panic reaches a caller; the CLI never crashes (exit 101, a
//! signal), exits 0 only with the undamaged output, and exits 8 where the
//! store cannot open; no call answers another value than the undamaged
//! store did, nor `NotFound` for a record that exists.
//!
//! The last two hold because the store verifies every page checksum at
//! open (`Config::verify_on_open`, on by default) and commits in two
//! phases: redb alone checks checksums only when it repairs a file, and
//! without the check 8 of 210 flips answered a wrong value and 12 a false
//! `NotFound`. The tally is printed either way.

use std::collections::BTreeMap;
use std::path::Path;

use bharatvoice_store::{
    Actor, Error, FileId, ListFilter, ListOptions, NewUser, OpenMode, ProfileUpdate, PutOptions,
    Role, SessionId, Store, Turn, UserId,
};

use crate::common::{bvstore, config, stderr, stdout};

const PAGE: usize = 4096;
/// Where in each page a byte is flipped.
const OFFSETS: [usize; 6] = [0, 1, 17, 512, 2048, 4095];
/// One page in this many is also read through the CLI.
const CLI_EVERY: usize = 4;

/// The records of the pristine store.
struct Ids {
    users: Vec<(UserId, String)>,
    sessions: Vec<SessionId>,
    files: Vec<FileId>,
}

/// Builds the small store: users with profiles, sessions with turns, two
/// files (one shared), a refused read in the audit log; closed cleanly.
async fn build(dir: &Path) -> Ids {
    let store = Store::open(config(dir)).await.unwrap();
    let mut ids = Ids {
        users: Vec::new(),
        sessions: Vec::new(),
        files: Vec::new(),
    };
    for (name, lang) in [("asha", "hi-IN"), ("ravi", "ta-IN"), ("mira", "bn-IN")] {
        let u = store
            .users()
            .create(
                NewUser::new(name, format!("{name}@example.in"))
                    .consent(bharatvoice_store::ConsentKind::AudioStorage)
                    .display_name(name.to_uppercase()),
            )
            .await
            .unwrap();
        store
            .profiles()
            .upsert(
                u.id,
                ProfileUpdate {
                    languages: Some(vec![lang.parse().unwrap(), "en-IN".parse().unwrap()]),
                    region: Some(Some("Pune".into())),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let s = store
            .sessions()
            .create(u.id, Some(lang.parse().unwrap()))
            .await
            .unwrap();
        for i in 0..3 {
            let role = if i % 2 == 0 {
                Role::User
            } else {
                Role::Assistant
            };
            store
                .sessions()
                .append_turn(s.id, Turn::new(role, format!("{name} turn {i} नमस्ते")))
                .await
                .unwrap();
        }
        ids.users.push((u.id, name.to_string()));
        ids.sessions.push(s.id);
    }
    store
        .users()
        .set_password(ids.users[0].0, "correct horse")
        .await
        .unwrap();
    let asha = ids.users[0].0;
    for (i, encrypt) in [(0u8, true), (1, false)] {
        let bytes: Vec<u8> = (0..3000u32).map(|b| (b as u8) ^ i).collect();
        let mut options = PutOptions::content_type("audio/wav");
        options.encrypt = encrypt;
        options.name = Some(format!("clip{i}.wav"));
        let f = store
            .files()
            .put_bytes(Actor::User(asha), asha, &bytes, options)
            .await
            .unwrap();
        ids.files.push(f.id);
    }
    let (ravi, mira) = (ids.users[1].0, ids.users[2].0);
    store
        .files()
        .grant(Actor::User(asha), ids.files[0], ravi)
        .await
        .unwrap();
    // A refusal, for the audit log.
    assert!(
        store
            .files()
            .read(Actor::User(mira), ids.files[1])
            .await
            .is_err()
    );
    store.flush().await.unwrap();
    store.close().await;
    ids
}

/// What one call answered: its value, rendered, or its error.
type Answer = Result<String, Error>;

fn shown<T: std::fmt::Debug>(r: Result<T, Error>) -> Answer {
    r.map(|v| format!("{v:?}"))
}

/// Opens the store at `dir` (after reading its migration status, which
/// needs it closed), runs [`observe`] and closes it; `Err` if it does not
/// open.
async fn open_and_observe(dir: &Path, ids: &Ids) -> Result<Vec<(String, Answer)>, Error> {
    let status = shown(Store::migration_status(&open_config(dir)).await);
    let store = Store::open(open_config(dir)).await?;
    let mut answers = observe(&store, ids).await;
    answers.push(("migration.status".into(), status));
    store.close().await;
    Ok(answers)
}

/// Runs every read, then a few writes, and records what each answered
/// (writes by the parts of their answer that do not depend on the clock).
async fn observe(store: &Store, ids: &Ids) -> Vec<(String, Answer)> {
    let mut out = Vec::new();
    let mut put = |what: String, a: Answer| out.push((what, a));
    let (users, files) = (store.users(), store.files());
    for (id, name) in &ids.users {
        put(format!("user.get {name}"), shown(users.get(*id)));
        put(
            format!("user.by_username {name}"),
            shown(users.get_by_username(name)),
        );
        let email = format!("{name}@example.in");
        put(
            format!("user.by_email {name}"),
            shown(users.get_by_email(&email)),
        );
        put(format!("profile {name}"), shown(store.profiles().get(*id)));
        put(
            format!("sessions.list {name}"),
            shown(store.sessions().list_for_user(*id, 10).await),
        );
        put(
            format!("files.list {name}"),
            shown(
                files
                    .list(
                        Actor::User(*id),
                        *id,
                        ListFilter::default(),
                        ListOptions::first(10),
                    )
                    .await,
            ),
        );
        put(
            format!("keys.versions {name}"),
            shown(store.keys().owner_key_versions(*id)),
        );
    }
    put(
        "user.list".into(),
        shown(users.list(ListOptions::first(10)).await),
    );
    put(
        "user.list.scan".into(),
        shown(users.list(ListOptions::first(100)).await),
    );
    for (s, (_, name)) in ids.sessions.iter().zip(&ids.users) {
        put(
            format!("session.get {name}"),
            shown(store.sessions().get(*s)),
        );
    }
    let (asha, ravi) = (Actor::User(ids.users[0].0), Actor::User(ids.users[1].0));
    for (i, f) in ids.files.iter().enumerate() {
        put(
            format!("file.stat clip{i}"),
            shown(files.stat(asha, *f).await),
        );
        put(
            format!("file.read clip{i}"),
            shown(files.read(asha, *f).await),
        );
        put(
            format!("file.range clip{i}"),
            shown(files.read_range(asha, *f, 100, 50).await),
        );
        put(
            format!("file.grantees clip{i}"),
            shown(files.grantees(asha, *f).await),
        );
    }
    put(
        "file.read as grantee".into(),
        shown(files.read(ravi, ids.files[0]).await),
    );
    put("audit".into(), shown(store.audit_events(10)));
    put("keys.status".into(), shown(store.keys().status().await));
    put("schema".into(), shown(store.schema_version()));
    // Writes.
    let new = users
        .create(
            NewUser::new("newbie", "newbie@example.in")
                .consent(bharatvoice_store::ConsentKind::AudioStorage),
        )
        .await;
    put(
        "user.create".into(),
        new.map(|u| format!("{} {}", u.username, u.email)),
    );
    let turn = store
        .sessions()
        .append_turn(ids.sessions[1], Turn::new(Role::User, "one more"))
        .await;
    put(
        "session.append".into(),
        turn.map(|s| format!("{} {:?}", s.turn_count, s.context.last().map(|t| &t.text))),
    );
    let login = users.verify_password(ids.users[0].0, "correct horse").await;
    put("user.verify_password".into(), shown(login));
    out
}

/// Copies the pristine data directory to `to` with `store.redb` replaced.
fn copy_with(from: &Path, to: &Path, db: &[u8]) {
    let _ = std::fs::remove_dir_all(to);
    copy_dir(from, to);
    std::fs::write(to.join("store.redb"), db).unwrap();
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

fn open_config(dir: &Path) -> bharatvoice_store::Config {
    config(dir).open_mode(OpenMode::MustExist)
}

/// The CLI commands checked, by arguments.
fn cli_commands(ids: &Ids) -> Vec<Vec<String>> {
    let file = ids.files[0].to_string();
    [
        vec!["user", "list"],
        vec!["user", "show", "ravi"],
        vec!["file", "ls", "--user", "asha"],
        vec!["file", "get", &file, "--user", "asha", "--out", "-"],
    ]
    .into_iter()
    .map(|c| c.into_iter().map(String::from).collect())
    .collect()
}

/// What the damaged copies answered, by call: the figures this test prints.
#[derive(Default)]
struct Tally {
    flips: usize,
    opens_refused: usize,
    /// Refused as damaged (`Corrupt`, `Integrity`), by call.
    refused: BTreeMap<String, usize>,
    /// `NotFound` for a record that exists: an error, but a wrong answer.
    not_found: BTreeMap<String, Vec<usize>>,
    /// Any other error (a missing key, ...), by call and variant.
    other: BTreeMap<String, usize>,
    /// Another value than before the damage, with no error, by call.
    wrong: BTreeMap<String, Vec<usize>>,
    cli_exits: BTreeMap<i32, usize>,
}

impl Tally {
    fn record(&mut self, at: usize, what: &str, got: &Answer, want: &str) {
        match got {
            Ok(v) if v == want => {}
            Ok(_) => self.wrong.entry(what.into()).or_default().push(at),
            Err(e) => {
                assert_no_panic(e, &format!("byte {at}: {what}"));
                match e {
                    Error::Corrupt { .. } | Error::Integrity { .. } => {
                        *self.refused.entry(what.into()).or_default() += 1
                    }
                    Error::NotFound { .. } => {
                        self.not_found.entry(what.into()).or_default().push(at)
                    }
                    _ => {
                        *self
                            .other
                            .entry(format!("{what}: {}", kind(e)))
                            .or_default() += 1
                    }
                }
            }
        }
    }

    fn print(&self) {
        eprintln!(
            "store.redb flips: {}, opens refused (Corrupt): {}",
            self.flips, self.opens_refused
        );
        eprintln!("reads refused as damaged, by call: {:?}", self.refused);
        eprintln!(
            "not found for a record that exists, by call (byte offsets): {:?}",
            self.not_found
        );
        eprintln!("other errors: {:?}", self.other);
        eprintln!(
            "wrong values without an error, by call (byte offsets): {:?}",
            self.wrong
        );
        eprintln!("CLI exit codes: {:?}", self.cli_exits);
    }
}

/// The variant of an error, for the tallies.
fn kind(e: &Error) -> String {
    format!("{e:?}")
        .split([' ', '(', '{'])
        .next()
        .unwrap_or("?")
        .to_string()
}

/// A panic passed on as another error (a task's `JoinError`, say) must
/// not reach a caller.
fn assert_no_panic(e: &Error, what: &str) {
    let text = e.to_string();
    assert!(
        matches!(e, Error::Corrupt { .. }) || !text.contains("panicked"),
        "{what}: a panic reached the caller: {text}"
    );
}

/// The refusal of a damaged `store.redb` names the file and says what to do.
fn assert_points_to_restore(text: &str, what: &str) {
    assert!(
        text.contains("store.redb") && text.contains("restore it from a backup"),
        "{what}: {text}"
    );
}

/// Runs `bvstore` on a damaged copy: never a crash, exit 0 only with the
/// undamaged output, exit 8 pointing to a restore if the store cannot open.
fn check_cli(d: &Path, args: &[String], want: &str, damaged_open: bool, what: &str) -> i32 {
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = bvstore(d, &argv);
    let what = format!("{what}: bvstore {}", args.join(" "));
    let Some(code) = out.status.code() else {
        panic!("{what}: killed by a signal: {}", stderr(&out));
    };
    assert!(
        code != 101 && code != 134,
        "{what}: exit {code}: {}",
        stderr(&out)
    );
    // A panic caught at the engine boundary is still printed by the panic
    // hook; the error the command ends with must not be one.
    let err = stderr(&out);
    let error: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("error:") || l.starts_with("  caused by:"))
        .collect();
    assert!(!error.join("\n").contains("panicked"), "{what}: {error:?}");
    if code == 0 {
        assert_eq!(stdout(&out), want, "{what}: exit 0 with other output");
    }
    if damaged_open {
        assert_eq!(code, 8, "{what}: the store cannot open: {err}");
        assert_points_to_restore(&err, &what);
    }
    code
}

/// A pristine store, what it answers, and where damaged copies go.
struct Bench {
    _base: tempfile::TempDir,
    pristine: std::path::PathBuf,
    db: Vec<u8>,
    ids: Ids,
    expected: Vec<(String, String)>,
    commands: Vec<Vec<String>>,
    cli_expected: Vec<String>,
}

/// Builds the store and reads it through a copy at `d`, where the damaged
/// copies go too (answers name the data directory: the key file's path).
async fn bench(d: &Path) -> Bench {
    let base = tempfile::tempdir().unwrap();
    let pristine = base.path().join("data");
    let ids = build(&pristine).await;
    let db = std::fs::read(pristine.join("store.redb")).unwrap();
    copy_with(&pristine, d, &db);
    let expected = open_and_observe(d, &ids)
        .await
        .unwrap()
        .into_iter()
        .map(|(what, a)| (what.clone(), a.unwrap_or_else(|e| panic!("{what}: {e}"))))
        .collect();
    let commands = cli_commands(&ids);
    let cli_expected = commands
        .iter()
        .map(|args| {
            copy_with(&pristine, d, &db);
            let argv: Vec<&str> = args.iter().map(String::as_str).collect();
            let out = bvstore(d, &argv);
            assert!(out.status.success(), "{args:?}: {}", stderr(&out));
            stdout(&out)
        })
        .collect();
    Bench {
        _base: base,
        pristine,
        db,
        ids,
        expected,
        commands,
        cli_expected,
    }
}

impl Bench {
    /// The store file with the byte at `at` inverted.
    fn flipped(&self, at: usize) -> Vec<u8> {
        let mut damaged = self.db.clone();
        damaged[at] ^= 0xff;
        damaged
    }

    /// Opens a copy with byte `at` flipped, reads everything, and (with
    /// `cli`) runs the CLI commands on fresh copies.
    async fn flip(&self, d: &Path, at: usize, cli: bool, tally: &mut Tally) {
        let damaged = self.flipped(at);
        tally.flips += 1;
        copy_with(&self.pristine, d, &damaged);
        let what = format!("byte {at}");
        let answers = open_and_observe(d, &self.ids).await;
        match &answers {
            Err(e @ Error::Corrupt { .. }) => {
                assert_points_to_restore(&e.to_string(), &what);
                tally.opens_refused += 1;
            }
            Err(e) => panic!("{what}: the open failed with another error: {e:?}"),
            Ok(answers) => {
                for ((call, got), (_, want)) in answers.iter().zip(&self.expected) {
                    tally.record(at, call, got, want);
                }
            }
        }
        if cli {
            for (args, want) in self.commands.iter().zip(&self.cli_expected) {
                copy_with(&self.pristine, d, &damaged);
                let code = check_cli(d, args, want, answers.is_err(), &what);
                *tally.cli_exits.entry(code).or_default() += 1;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flipped_byte_anywhere_in_store_redb_never_panics_and_file_bytes_are_never_wrong() {
    let work = tempfile::tempdir().unwrap();
    let d = &work.path().join("data");
    let bench = bench(d).await;
    let pages = bench.db.len().div_ceil(PAGE);
    let mut tally = Tally::default();
    for page in 0..pages {
        for off in OFFSETS {
            let at = page * PAGE + off;
            if at < bench.db.len() {
                bench.flip(d, at, page % CLI_EVERY == 0, &mut tally).await;
            }
        }
    }
    eprintln!(
        "store.redb: {} bytes, {pages} pages of {PAGE}",
        bench.db.len()
    );
    tally.print();
    assert!(
        tally.wrong.is_empty(),
        "wrong values without an error: {:?}",
        tally.wrong
    );
    assert!(
        tally.not_found.is_empty(),
        "NotFound for records that exist: {:?}",
        tally.not_found
    );
    // The damage was seen: most flips land in live pages.
    assert!(tally.opens_refused > 0, "no flip was refused");
}

#[test]
fn a_store_redb_damaged_in_its_header_is_exit_8_naming_the_file() {
    let dir = crate::common::store_dir();
    let d = dir.path();
    let pristine = std::fs::read(d.join("store.redb")).unwrap();
    // Byte 0 is in the magic number (redb: "not a redb database", an I/O
    // error); byte 17 in the recorded layout (redb: `Corrupted`), which a
    // read-only open (`migrate status`) reports as a repair it may not do.
    for (at, commands) in [
        (0, &[&["user", "list"][..], &["migrate", "status"]][..]),
        (17, &[&["user", "list"][..]]),
    ] {
        let mut damaged = pristine.clone();
        damaged[at] ^= 0xff;
        std::fs::write(d.join("store.redb"), &damaged).unwrap();
        for args in commands {
            let out = bvstore(d, args);
            assert_eq!(
                out.status.code(),
                Some(8),
                "byte {at}: {args:?}: {}",
                stderr(&out)
            );
            assert_points_to_restore(&stderr(&out), &format!("byte {at}: {args:?}"));
        }
    }
}

/// `verify_on_open(false)` trusts the file as redb does: some flip in a
/// live page opens without the check and is refused with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_on_open_is_what_refuses_a_damaged_live_page() {
    let work = tempfile::tempdir().unwrap();
    let d = &work.path().join("data");
    let bench = bench(d).await;
    let mut found = None;
    let offsets = (1..bench.db.len() / PAGE).flat_map(|p| OFFSETS.map(|o| p * PAGE + o));
    for at in offsets {
        copy_with(&bench.pristine, d, &bench.flipped(at));
        let verified = Store::open(open_config(d)).await;
        let Err(Error::Corrupt { .. }) = verified else {
            if let Ok(store) = verified {
                store.close().await;
            }
            continue;
        };
        copy_with(&bench.pristine, d, &bench.flipped(at));
        if let Ok(store) = Store::open(open_config(d).verify_on_open(false)).await {
            store.close().await;
            found = Some(at);
            break;
        }
    }
    assert!(
        found.is_some(),
        "no flip that the check refuses opened without it"
    );
}
