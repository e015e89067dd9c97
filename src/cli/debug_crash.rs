//! `bvstore debug crash-workload`: the child of the kill-loop crash test.
//!
//! One operation at a time, drawn from a seeded mix of everything the
//! store does (users, sessions, files, grants, cache, lifecycle jobs,
//! erasure, key rotation, backup). Before each operation it appends
//! `begin SEQ KIND` to the log; once the store acknowledged it, `ack SEQ
//! KIND FIELDS…`, made durable (`fdatasync`) before the next operation
//! starts, and prints `ack SEQ` on stdout for the parent to time its kill.
//! The parent kills it with SIGKILL and checks the store against the log:
//! every acknowledged write is there, and the last `begin` without an
//! `ack` shows an operation was in flight when the kill landed.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use bharatvoice_store::{
    Actor, AudioFile, BackupOptions, ConsentKind, Error, FileId, NewUser, PutOptions, Role,
    SessionId, SetOptions, Store, Turn, UserId, UserUpdate,
};
use clap::Args;

use super::Outcome;

#[derive(Debug, Args)]
pub(crate) struct CrashWorkloadArgs {
    /// The log of begun and acknowledged operations (appended to).
    #[arg(long)]
    log: PathBuf,
    /// Seeds the choice of operations.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Where backups go (outside the data directory).
    #[arg(long)]
    backup_dir: PathBuf,
    /// Stop after this many operations (0 = run until killed).
    #[arg(long, default_value_t = 0)]
    ops: u64,
}

/// splitmix64: a reproducible mix from the seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// The append-only log: begins are written, acks are made durable.
struct Log {
    file: File,
}

impl Log {
    fn open(path: &Path) -> Result<Log, Error> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| Error::io("opening the crash log", e))?;
        Ok(Log { file })
    }

    /// Appends one whole line in one `write` (a `writeln!` may write it
    /// in pieces, and a kill between two would tear it).
    fn line(&mut self, line: String) -> Result<(), Error> {
        self.file
            .write_all(line.as_bytes())
            .map_err(|e| Error::io("writing the log", e))
    }

    fn begin(&mut self, seq: u64, kind: &str) -> Result<(), Error> {
        self.line(format!("begin {seq} {kind}\n"))
    }

    fn ack(&mut self, seq: u64, line: &str) -> Result<(), Error> {
        self.line(format!("ack {seq} {line}\n"))?;
        self.file
            .sync_data()
            .map_err(|e| Error::io("syncing the log", e))?;
        let mut out = std::io::stdout();
        writeln!(out, "ack {seq}")
            .and_then(|()| out.flush())
            .map_err(|e| Error::io("writing acks", e))
    }
}

/// What this run made and may act on.
#[derive(Default)]
struct World {
    users: Vec<UserId>,
    sessions: Vec<SessionId>,
    files: Vec<(FileId, UserId)>,
    grants: Vec<(FileId, UserId)>,
}

const KINDS: &[(&str, usize)] = &[
    ("user", 10),
    ("update", 6),
    ("udelete", 2),
    ("session", 5),
    ("turn", 12),
    ("file", 12),
    ("read", 6),
    ("fdelete", 4),
    ("grant", 4),
    ("revoke", 2),
    ("cset", 8),
    ("cdel", 3),
    ("cincr", 5),
    ("cinv", 2),
    ("gc", 2),
    ("erase", 1),
    ("rotate", 2),
    ("backup", 1),
];

fn pick(rng: &mut Rng) -> &'static str {
    let total: usize = KINDS.iter().map(|(_, w)| w).sum();
    let mut at = rng.below(total);
    for (kind, w) in KINDS {
        if at < *w {
            return kind;
        }
        at -= w;
    }
    "user"
}

fn hex32(b: &[u8; 32]) -> String {
    hex::encode(b)
}

/// `bvstore debug crash-workload`.
pub(crate) async fn run(store: &Store, args: &CrashWorkloadArgs) -> Outcome {
    let mut log = Log::open(&args.log)?;
    let mut rng = Rng(args.seed);
    let mut world = World::default();
    let tag = std::process::id();
    for seq in 0u64.. {
        if args.ops > 0 && seq >= args.ops {
            break;
        }
        let kind = pick(&mut rng);
        let id = format!("{tag}x{seq}");
        let mut op = Op { log: &mut log, seq };
        // `None`: nothing to act on yet, so no operation (and no log line).
        match step(store, args, &mut rng, &mut world, kind, &id, &mut op).await {
            Ok(Some(line)) => log.ack(seq, &line)?,
            Ok(None) => {}
            // Refused before it wrote anything (a rotation already
            // running, a rate limit): acknowledged as a no-op.
            Err(e) if e.is_request_error() => log.ack(seq, &format!("refused {kind}"))?,
            Err(e) => return Err(e),
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes the `begin` line of the operation about to run.
struct Op<'a> {
    log: &'a mut Log,
    seq: u64,
}

impl Op<'_> {
    fn begin(&mut self, what: &str) -> Result<(), Error> {
        self.log.begin(self.seq, what)
    }
}

fn choose<T: Copy>(rng: &mut Rng, items: &[T]) -> Option<T> {
    (!items.is_empty()).then(|| items[rng.below(items.len())])
}

/// Runs one operation; the ack line, or `None` when there was nothing to
/// act on.
async fn step(
    store: &Store,
    args: &CrashWorkloadArgs,
    rng: &mut Rng,
    w: &mut World,
    kind: &str,
    id: &str,
    op: &mut Op<'_>,
) -> Result<Option<String>, Error> {
    let line = match kind {
        "user" => {
            let name = format!("crash{id}");
            let new = NewUser::new(&name, format!("{name}@example.in"))
                .consent(ConsentKind::AudioStorage);
            op.begin("user")?;
            let u = store.users().create(new).await?;
            w.users.push(u.id);
            format!("user {} {name}", u.id)
        }
        "update" => {
            let Some(u) = choose(rng, &w.users) else {
                return Ok(None);
            };
            let name = format!("name{id}");
            let change = UserUpdate {
                display_name: Some(Some(name.clone())),
                ..UserUpdate::default()
            };
            op.begin(&format!("update {u} {name}"))?;
            store.users().update(u, change).await?;
            format!("update {u} {name}")
        }
        "udelete" | "erase" => {
            let Some(u) = choose(rng, &w.users) else {
                return Ok(None);
            };
            w.users.retain(|x| *x != u);
            w.files.retain(|(_, o)| *o != u);
            w.grants.retain(|(_, to)| *to != u);
            op.begin(&format!("{kind} {u}"))?;
            if kind == "erase" {
                store.privacy().erase_user(u).await?;
            } else {
                store.users().delete(u).await?;
            }
            format!("{kind} {u}")
        }
        "session" => {
            let Some(u) = choose(rng, &w.users) else {
                return Ok(None);
            };
            op.begin(&format!("session {u}"))?;
            let s = store.sessions().create(u, None).await?;
            w.sessions.push(s.id);
            format!("session {} {u}", s.id)
        }
        "turn" => {
            let Some(s) = choose(rng, &w.sessions) else {
                return Ok(None);
            };
            let text = format!("turn{id}");
            op.begin(&format!("turn {s} {text}"))?;
            match store
                .sessions()
                .append_turn(s, Turn::new(Role::User, &text))
                .await
            {
                Ok(_) => format!("turn {s} {text}"),
                // Its user was deleted or erased since.
                Err(Error::NotFound { .. }) => {
                    w.sessions.retain(|x| *x != s);
                    format!("gone {s}")
                }
                Err(e) => return Err(e),
            }
        }
        "file" => {
            let Some(u) = choose(rng, &w.users) else {
                return Ok(None);
            };
            let mut bytes = vec![0u8; 1 + rng.below(48 << 10)];
            for chunk in bytes.chunks_mut(8) {
                let r = rng.next().to_le_bytes();
                chunk.copy_from_slice(&r[..chunk.len()]);
            }
            op.begin(&format!("file {u}"))?;
            let f: AudioFile = store
                .files()
                .put_bytes(
                    Actor::User(u),
                    u,
                    &bytes,
                    PutOptions::content_type("audio/wav"),
                )
                .await?;
            w.files.push((f.id, u));
            format!("file {} {u} {}", f.id, hex32(&f.sha256))
        }
        "read" => {
            let Some((f, u)) = choose(rng, &w.files) else {
                return Ok(None);
            };
            op.begin(&format!("read {f}"))?;
            let bytes = store.files().read(Actor::User(u), f).await?;
            format!("read {f} {}", bytes.len())
        }
        "fdelete" => {
            let Some((f, u)) = choose(rng, &w.files) else {
                return Ok(None);
            };
            w.files.retain(|(x, _)| *x != f);
            w.grants.retain(|(x, _)| *x != f);
            op.begin(&format!("fdelete {f}"))?;
            store.files().delete(Actor::User(u), f).await?;
            format!("fdelete {f}")
        }
        "grant" => {
            let (Some((f, owner)), Some(to)) = (choose(rng, &w.files), choose(rng, &w.users))
            else {
                return Ok(None);
            };
            if to == owner || w.grants.contains(&(f, to)) {
                return Ok(None);
            }
            op.begin(&format!("grant {f} {to}"))?;
            store.files().grant(Actor::User(owner), f, to).await?;
            w.grants.push((f, to));
            format!("grant {f} {to}")
        }
        "revoke" => {
            let Some((f, to)) = choose(rng, &w.grants) else {
                return Ok(None);
            };
            let Some(&(_, owner)) = w.files.iter().find(|(x, _)| *x == f) else {
                return Ok(None);
            };
            w.grants.retain(|g| *g != (f, to));
            op.begin(&format!("revoke {f} {to}"))?;
            store.files().revoke(Actor::User(owner), f, to).await?;
            format!("revoke {f} {to}")
        }
        "cset" => {
            let key = format!("crash:k{}", rng.below(16));
            let tag = format!("crash:t{}", rng.below(4));
            let value = format!("v{id}");
            let opts = SetOptions::new().tag(&tag);
            op.begin(&format!("cset {key} {value} {tag}"))?;
            store
                .cache()
                .set_bytes_with(&key, value.as_bytes(), &opts)
                .await?;
            store.cache().flush().await?;
            format!("cset {key} {value} {tag}")
        }
        "cdel" => {
            let key = format!("crash:k{}", rng.below(16));
            op.begin(&format!("cdel {key}"))?;
            store.cache().delete(&key).await?;
            store.cache().flush().await?;
            format!("cdel {key}")
        }
        "cincr" => {
            let key = format!("crash:n{}", rng.below(4));
            op.begin(&format!("cincr {key}"))?;
            let now = store.cache().incr(&key, 1).await?;
            store.cache().flush().await?;
            format!("cincr {key} {now}")
        }
        "cinv" => {
            let tag = format!("crash:t{}", rng.below(4));
            op.begin(&format!("cinv {tag}"))?;
            store.cache().invalidate_tag(&tag).await?;
            store.cache().flush().await?;
            format!("cinv {tag}")
        }
        "gc" => {
            op.begin("gc")?;
            store.lifecycle().run_all(false).await?;
            "gc".to_owned()
        }
        "rotate" => {
            let Some(u) = choose(rng, &w.users) else {
                return Ok(None);
            };
            op.begin(&format!("rotate {u}"))?;
            match store.keys().rotate_owner(u).await {
                Ok(version) => format!("rotate {u} {version}"),
                // No stored files yet, so no keys to rotate.
                Err(Error::NotFound { .. }) => format!("norotate {u}"),
                Err(e) => return Err(e),
            }
        }
        "backup" => {
            op.begin("backup")?;
            let report = store
                .backup(
                    &args.backup_dir,
                    BackupOptions {
                        keep: Some(2),
                        ..BackupOptions::default()
                    },
                )
                .await?;
            format!("backup {}", report.generation)
        }
        other => {
            return Err(Error::InvalidInput {
                field: "operation",
                reason: format!("unknown operation {other}"),
            });
        }
    };
    Ok(Some(line))
}
