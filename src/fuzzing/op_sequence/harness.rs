//! The runner of the `op_sequence` target: a store in a scratch
//! directory, its fault plan, and each operation run on both the store and
//! the model.

use super::model::{Made, Model, State, Want, Write, agree, pick, snapshot};
use super::{EMAILS, KEYS, NAMES, Op, TEXTS, VALUES, payload};
use crate::blob::{Actor, PutOptions};
use crate::error::Error;
use crate::fuzzing::Scratch;
use crate::{Config, ConsentKind, NewUser, Role, Store, Turn, UserUpdate, VerifyOptions};

/// The store's settings: no admin socket, no blob watch, and background
/// writes to `store.redb` (metric snapshots, noted reads) pushed past any
/// run, so that every write the fault plan counts is an operation's.
pub(super) fn config(dir: &std::path::Path) -> Config {
    let hour = std::time::Duration::from_secs(3600);
    let lifecycle = crate::LifecycleConfig {
        tamper_watch: false,
        ..Default::default()
    };
    let audit = crate::AuditConfig {
        read_flush_interval: hour,
        ..Default::default()
    };
    let metrics = crate::MetricsConfig {
        snapshot_interval: hour,
        ..Default::default()
    };
    Config::new(dir)
        .password_cost(8, 1)
        .db_cache_bytes(4 << 20)
        .admin_socket(false)
        .lifecycle(lifecycle)
        .audit(audit)
        .metrics(metrics)
}

pub(super) fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a runtime")
    })
}

/// The fault plan of the store's `store.redb`, and what it has done.
#[derive(Default)]
pub(super) struct Faults {
    #[cfg(feature = "fault-injection")]
    pub(super) plan: Option<std::sync::Arc<crate::db::fault::StoreFaults>>,
    /// A failure is armed and has not been met yet.
    pub(super) armed: bool,
    /// A refusal was answered while armed: its audit record, written
    /// without its caller waiting, is to be waited for (see
    /// [`Harness::settle_refusal`]).
    pub(super) refused: bool,
}

impl Faults {
    /// A fresh plan, armed with nothing, for the next open of `dir`.
    pub(super) fn install(&mut self, dir: &std::path::Path) {
        #[cfg(feature = "fault-injection")]
        {
            let plan = crate::db::fault::StoreFaults::new();
            crate::db::fault::install(dir, std::sync::Arc::clone(&plan));
            self.plan = Some(plan);
        }
        let _ = dir;
        self.armed = false;
        self.refused = false;
    }

    pub(super) fn remove(&mut self, dir: &std::path::Path) {
        #[cfg(feature = "fault-injection")]
        crate::db::fault::remove(dir);
        let _ = dir;
    }

    /// Arms a failure of the next mutating call (once at a time).
    pub(super) fn arm(&mut self, kind: u8) {
        #[cfg(feature = "fault-injection")]
        if let Some(plan) = &self.plan
            && !self.armed
        {
            use crate::db::fault::FaultKind;
            let kind =
                [FaultKind::Io, FaultKind::NoSpace, FaultKind::ShortWrite][usize::from(kind % 3)];
            plan.fail_call(1, kind);
            self.armed = true;
        }
        let _ = kind;
    }

    /// Takes back a failure not met yet.
    pub(super) fn disarm(&mut self) {
        #[cfg(feature = "fault-injection")]
        if let Some(plan) = &self.plan {
            plan.clear();
        }
        self.armed = false;
    }

    /// Mutating calls of `store.redb` so far.
    pub(super) fn calls(&self) -> u64 {
        #[cfg(feature = "fault-injection")]
        if let Some(plan) = &self.plan {
            return plan.calls();
        }
        0
    }

    /// The call that failed, if a failure armed since the last open was
    /// met.
    pub(super) fn met(&self) -> Option<u64> {
        #[cfg(feature = "fault-injection")]
        if let Some(plan) = &self.plan {
            return plan.tripped().map(|(n, _)| n);
        }
        None
    }
}

/// A store in a scratch directory, the model, and the fault plan.
pub(super) struct Harness {
    pub(super) store: Option<Store>,
    pub(super) dir: std::path::PathBuf,
    pub(super) model: Model,
    pub(super) faults: Faults,
    /// Armed failures met (each followed by a reopen).
    pub(super) met: usize,
    /// Removes the directory once the store is closed (fields drop after
    /// `drop`).
    pub(super) _scratch: Scratch,
}

impl Harness {
    pub(super) fn new() -> Harness {
        let scratch = Scratch::new("ops");
        let dir = scratch.path().join("store");
        let mut faults = Faults::default();
        faults.install(&dir);
        let store = runtime()
            .block_on(Store::open(config(&dir)))
            .expect("the fuzz store opens");
        Harness {
            store: Some(store),
            dir,
            model: Model::default(),
            faults,
            met: 0,
            _scratch: scratch,
        }
    }

    pub(super) fn store(&self) -> &Store {
        self.store.as_ref().expect("the store is open")
    }

    pub(super) fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        runtime().block_on(f)
    }

    /// Closes the store and opens it again with nothing armed.
    pub(super) fn reopen(&mut self) {
        self.met += 1;
        if let Some(store) = self.store.take() {
            runtime().block_on(store.close());
        }
        self.faults.install(&self.dir);
        let store = runtime()
            .block_on(Store::open(config(&self.dir)))
            .unwrap_or_else(|e| panic!("the store reopens once the fault is gone: {e}"));
        self.store = Some(store);
    }

    /// Indexes resolved to slots of the model; `None` where a pool is empty.
    pub(super) fn resolve(&self, op: Op) -> Option<Write> {
        let m = &self.model;
        let (nu, ns, nf) = (m.users.len(), m.sessions.len(), m.files.len());
        // Mostly the owner acts on a file; otherwise anyone.
        let actor = |a: usize, file: usize| match a % 4 {
            0 => pick(a / 4, nu),
            _ => Some(m.files[file].owner),
        };
        Some(match op {
            Op::CreateUser { name, email } => Write::CreateUser {
                name: NAMES[name % NAMES.len()],
                email: EMAILS[email % EMAILS.len()],
            },
            Op::UpdateUser {
                user,
                email,
                display,
            } => Write::UpdateUser {
                user: pick(user, nu)?,
                email: EMAILS[email % EMAILS.len()],
                display: display.then(|| format!("Name {}", email % 3)),
            },
            Op::DeleteUser { user } => Write::DeleteUser {
                user: pick(user, nu)?,
            },
            Op::StartSession { user } => Write::StartSession {
                user: pick(user, nu)?,
            },
            Op::AppendTurn { session, text } => Write::AppendTurn {
                session: pick(session, ns)?,
                text: TEXTS[text % TEXTS.len()],
            },
            Op::PutFile { user, payload } => Write::PutFile {
                user: pick(user, nu)?,
                payload: payload % 4,
            },
            Op::DeleteFile { actor: a, file } => {
                let file = pick(file, nf)?;
                Write::DeleteFile {
                    actor: actor(a, file)?,
                    file,
                }
            }
            Op::Grant { actor: a, file, to } => {
                let file = pick(file, nf)?;
                Write::Grant {
                    actor: actor(a, file)?,
                    file,
                    to: pick(to, nu)?,
                }
            }
            Op::Revoke {
                actor: a,
                file,
                from,
            } => {
                let file = pick(file, nf)?;
                Write::Revoke {
                    actor: actor(a, file)?,
                    file,
                    from: pick(from, nu)?,
                }
            }
            _ => return None,
        })
    }

    pub(super) fn run(&mut self, op: Op) {
        match op {
            Op::Fault { kind } => {
                if !self.faults.armed {
                    // Nothing queued from before may take the failure.
                    self.block_on(self.store().flush()).expect("a flush");
                    self.faults.arm(kind);
                }
            }
            Op::Check => self.check_state(),
            Op::GetUser { .. }
            | Op::LastTurn { .. }
            | Op::ReadFile { .. }
            | Op::CacheSet { .. }
            | Op::CacheGet { .. }
            | Op::CacheDelete { .. }
            | Op::CacheIncr { .. } => {
                self.read(op);
                self.settle_refusal();
                if self.faults.met().is_some() {
                    // A refusal's audit record met it: nothing the model
                    // holds may change.
                    self.reopen();
                    self.check_state();
                }
            }
            _ => {
                if let Some(w) = self.resolve(op) {
                    self.write(op, w);
                }
            }
        }
    }
}

/// Runs a write on the store; what it made, checked against the model.
pub(super) async fn exec(store: &Store, m: &Model, w: &Write) -> Result<Made, Error> {
    let uid = |slot: usize| m.users[slot].id;
    let fid = |slot: usize| m.files[slot].id;
    match w {
        Write::CreateUser { name, email } => {
            let new = NewUser::new(*name, *email).consent(ConsentKind::AudioStorage);
            let u = store.users().create(new).await?;
            assert_eq!((u.username.as_str(), u.email.as_str()), (*name, *email));
            Ok(Made::User(u.id))
        }
        Write::UpdateUser {
            user,
            email,
            display,
        } => {
            let change = UserUpdate {
                email: Some((*email).into()),
                display_name: display.clone().map(Some),
                ..UserUpdate::default()
            };
            let u = store.users().update(uid(*user), change).await?;
            assert_eq!(u.email, *email);
            if display.is_some() {
                assert_eq!(&u.display_name, display);
            }
            Ok(Made::Nothing)
        }
        Write::DeleteUser { user } => store
            .users()
            .delete(uid(*user))
            .await
            .map(|_| Made::Nothing),
        Write::StartSession { user } => {
            let s = store.sessions().create(uid(*user), None).await?;
            assert_eq!((s.user_id, s.turn_count), (uid(*user), 0));
            Ok(Made::Session(s.id))
        }
        Write::AppendTurn { session, text } => {
            let want = &m.sessions[*session];
            let s = store
                .sessions()
                .append_turn(want.id, Turn::new(Role::User, *text))
                .await?;
            assert_eq!(s.turn_count, want.turns + 1, "turns of {}", want.id);
            assert_eq!(s.context.last().map(|t| t.text.as_str()), Some(*text));
            Ok(Made::Nothing)
        }
        Write::PutFile { user, payload: p } => {
            let me = uid(*user);
            let bytes = payload(*p);
            let options = PutOptions::content_type("audio/wav");
            let f = store
                .files()
                .put_bytes(Actor::User(me), me, &bytes, options)
                .await?;
            assert_eq!((f.owner, f.plain_bytes), (me, bytes.len() as u64));
            Ok(Made::File(f.id, f.blob))
        }
        Write::DeleteFile { actor, file } => store
            .files()
            .delete(Actor::User(uid(*actor)), fid(*file))
            .await
            .map(|_| Made::Nothing),
        Write::Grant { actor, file, to } => store
            .files()
            .grant(Actor::User(uid(*actor)), fid(*file), uid(*to))
            .await
            .map(|()| Made::Nothing),
        Write::Revoke { actor, file, from } => store
            .files()
            .revoke(Actor::User(uid(*actor)), fid(*file), uid(*from))
            .await
            .map(|()| Made::Nothing),
    }
}

/// What a create made, found in the listings of a store it may have
/// landed in.
pub(super) fn discover(w: &Write, now: &State, before: &State) -> Made {
    pub(super) fn one<T: Copy>(mut new: impl Iterator<Item = T>) -> Option<T> {
        let first = new.next();
        new.next().is_none().then_some(first).flatten()
    }
    let made = match w {
        Write::CreateUser { .. } => one(now.users.keys().filter(|k| !before.users.contains_key(k)))
            .map(|id| Made::User(*id)),
        Write::StartSession { .. } => one(now
            .sessions
            .keys()
            .filter(|k| !before.sessions.contains_key(k)))
        .map(|id| Made::Session(*id)),
        Write::PutFile { .. } => one(now
            .files
            .iter()
            .filter(|(k, _)| !before.files.contains_key(k)))
        .map(|(id, f)| Made::File(*id, f.1)),
        _ => None,
    };
    made.unwrap_or(Made::Nothing)
}

impl Harness {
    pub(super) fn write(&mut self, op: Op, w: Write) {
        let want = self.model.predict(&w);
        let before = self.faults.calls();
        let got = self.block_on(exec(self.store(), &self.model, &w));
        if let Err(e) = &got {
            self.note_refusal(&w, e);
        }
        let after = self.faults.calls();
        self.settle_refusal();
        if let Some(n) = self.faults.met() {
            let during = before < n && n <= after;
            assert!(
                got.is_err() || !during,
                "{op:?} ({w:?}) was acknowledged though call {n} of its commit failed"
            );
            self.reopen();
            self.reconcile(op, &w, want, got);
            return;
        }
        agree(&op, &got, want);
        if let Ok(made) = got {
            if let (Write::PutFile { user, payload }, Made::File(_, blob)) = (&w, &made) {
                // The same bytes from one owner share one blob; nothing
                // else does.
                for f in &self.model.files {
                    let same = f.owner == *user && f.payload == *payload;
                    assert_eq!(
                        f.blob == *blob,
                        same,
                        "{op:?}: the blob of {} against {blob}",
                        f.id
                    );
                }
            }
            self.model.commit(&w, made);
            if let Write::PutFile { .. } = w {
                let f = self.model.files.last().expect("the file put");
                let refs = self.block_on(self.store().files().blob_refcount(Actor::System, f.id));
                assert_eq!(
                    refs.ok(),
                    Some(self.model.refcount(f)),
                    "{op:?}: blob refcount"
                );
            }
        }
    }

    /// A file operation refused (not found, or not allowed) queues an
    /// audit record of the refusal.
    pub(super) fn note_refusal(&mut self, w: &Write, e: &Error) {
        let file_op = matches!(
            w,
            Write::DeleteFile { .. } | Write::Grant { .. } | Write::Revoke { .. }
        );
        if file_op && matches!(e, Error::NotFound { .. } | Error::PermissionDenied { .. }) {
            self.faults.refused |= self.faults.armed;
        }
    }

    /// Waits for the audit record of a refusal answered while a failure
    /// was armed: the failure is then met (if that record met it) before
    /// the next operation, never in the middle of one.
    pub(super) fn settle_refusal(&mut self) {
        if std::mem::take(&mut self.faults.refused) {
            // A flush that fails has met the failure: `met` tells.
            let _ = self.block_on(self.store().flush());
        }
    }

    /// After a write met the failure and the store was reopened: the write
    /// landed whole or not at all (and landed if it was acknowledged).
    pub(super) fn reconcile(&mut self, op: Op, w: &Write, want: Want, got: Result<Made, Error>) {
        let now = self
            .block_on(snapshot(self.store()))
            .unwrap_or_else(|e| panic!("listing the reopened store: {e}"));
        let before = self.model.state();
        let acked = got.is_ok();
        assert!(
            !acked || want == Want::Ok,
            "{op:?} ({w:?}) was acknowledged where the model refuses it ({want:?})"
        );
        if want != Want::Ok {
            assert_eq!(
                now, before,
                "{op:?} ({w:?}) was refused ({got:?}) but changed the store"
            );
            return;
        }
        if now == before && !acked {
            return;
        }
        let made = match got {
            Ok(made) => made,
            Err(_) => discover(w, &now, &before),
        };
        let mut landed = self.model.clone();
        if matches!(
            (w, &made),
            (
                Write::CreateUser { .. } | Write::StartSession { .. } | Write::PutFile { .. },
                Made::Nothing
            )
        ) {
            panic!(
                "{op:?} ({w:?}) left neither the state before it nor after it:\nbefore {before:?}\nnow {now:?}"
            );
        }
        landed.commit(w, made);
        assert_eq!(
            now,
            landed.state(),
            "{op:?} ({w:?}, acknowledged: {acked}) left neither the state before it nor after it"
        );
        self.model = landed;
    }

    pub(super) fn read(&mut self, op: Op) {
        let m = &self.model;
        let store = self.store();
        match op {
            Op::GetUser { user } => {
                let Some(u) = pick(user, m.users.len()).map(|i| &m.users[i]) else {
                    return;
                };
                let want = if u.deleted { Want::NotFound } else { Want::Ok };
                let by_id = store.users().get(u.id);
                agree(&op, &by_id, want);
                let by_name = store.users().get_by_username(u.name);
                agree(&op, &by_name, want);
                if let (Ok(a), Ok(b)) = (by_id, by_name) {
                    assert_eq!(a, b, "{op:?}: by id and by username");
                    let got = (a.username.as_str(), a.email.as_str(), &a.display_name);
                    assert_eq!(got, (u.name, u.email, &u.display), "{op:?}");
                }
            }
            Op::LastTurn { session } => {
                let Some(s) = pick(session, m.sessions.len()).map(|i| &m.sessions[i]) else {
                    return;
                };
                let got = store.sessions().get(s.id);
                agree(&op, &got, Want::Ok);
                let got = got.expect("agreed");
                assert_eq!(got.turn_count, s.turns, "{op:?}: turns");
                let last = got.context.last().map(|t| t.text.as_str());
                assert_eq!(last, s.last, "{op:?}: the last turn");
            }
            Op::ReadFile { actor, file } => {
                let (Some(a), Some(f)) = (pick(actor, m.users.len()), pick(file, m.files.len()))
                else {
                    return;
                };
                let want = match m.relation(a, f) {
                    Want::Denied => Want::Ok,
                    other => other,
                };
                let got = self.block_on(
                    store
                        .files()
                        .read(Actor::User(m.users[a].id), m.files[f].id),
                );
                agree(&op, &got, want);
                if let Ok(bytes) = got {
                    assert!(
                        bytes == payload(m.files[f].payload),
                        "{op:?}: the bytes read back"
                    );
                } else {
                    self.faults.refused |= self.faults.armed;
                }
            }
            Op::CacheSet { key, value } => {
                let (k, v) = (KEYS[key % KEYS.len()], VALUES[value % VALUES.len()]);
                let got = self.block_on(store.cache().set_bytes(k, v.as_bytes()));
                agree(&op, &got, Want::Ok);
                self.model.cache.insert(k, v.as_bytes().to_vec());
            }
            Op::CacheGet { key } => {
                let k = KEYS[key % KEYS.len()];
                let got = self.block_on(store.cache().get_bytes(k));
                agree(&op, &got, Want::Ok);
                let got = got.expect("agreed").map(|v| v.as_bytes().to_vec());
                assert_eq!(got.as_ref(), m.cache.get(k), "{op:?}");
            }
            Op::CacheDelete { key } => {
                let k = KEYS[key % KEYS.len()];
                let got = self.block_on(store.cache().delete(k));
                agree(&op, &got, Want::Ok);
                let had = self.model.cache.remove(k).is_some();
                assert_eq!(got.expect("agreed"), had, "{op:?}: whether it was there");
            }
            Op::CacheIncr { key, by } => {
                let k = KEYS[key % KEYS.len()];
                let by = i64::from(by);
                let old = m.cache.get(k).map(|v| {
                    std::str::from_utf8(v)
                        .ok()
                        .and_then(|s| s.parse::<i64>().ok())
                });
                let (want, new) = match old {
                    None => (Want::Ok, Some(by)),
                    Some(None) => (Want::WrongType, None),
                    Some(Some(n)) => match n.checked_add(by) {
                        Some(n) => (Want::Ok, Some(n)),
                        None => (Want::Invalid, None),
                    },
                };
                let got = self.block_on(store.cache().incr(k, by));
                agree(&op, &got, want);
                if let (Ok(n), Some(want)) = (got, new) {
                    assert_eq!(n, want, "{op:?}");
                    self.model.cache.insert(k, n.to_string().into_bytes());
                }
            }
            _ => unreachable!("not a read: {op:?}"),
        }
    }

    /// Every listing against the model, and every cache key.
    pub(super) fn check_state(&mut self) {
        let store = self.store();
        let now = self
            .block_on(snapshot(store))
            .unwrap_or_else(|e| panic!("listing the store: {e}"));
        assert_eq!(
            now,
            self.model.state(),
            "the store's listings against the model"
        );
        for k in KEYS {
            let got = self
                .block_on(store.cache().get_bytes(k))
                .expect("a cache get");
            let got = got.map(|v| v.as_bytes().to_vec());
            assert_eq!(got.as_ref(), self.model.cache.get(k), "cache key {k}");
        }
    }

    /// The last checks: listings, then `verify` (reference counts against
    /// a recount, indexes against rows, every blob read back).
    pub(super) fn finish(&mut self) {
        self.faults.disarm();
        // Anything queued is committed, or has met the failure.
        let _ = self.block_on(self.store().flush());
        if self.faults.met().is_some() {
            self.reopen();
        }
        self.check_state();
        let options = VerifyOptions {
            deep: true,
            ..VerifyOptions::default()
        };
        let report = self
            .block_on(self.store().verify(options))
            .unwrap_or_else(|e| panic!("verify: {e}"));
        assert!(report.is_clean(), "verify: {:?}", report.problems);
        assert_eq!(
            report.files,
            self.model.files.len() as u64,
            "verify counted the files"
        );
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        if let Some(store) = self.store.take() {
            runtime().block_on(store.close());
        }
        self.faults.remove(&self.dir);
    }
}
