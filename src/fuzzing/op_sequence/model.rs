//! The model of the `op_sequence` target: what the store should hold,
//! the answer it must give to each write, and the listings both are
//! compared by.

use std::collections::{BTreeMap, BTreeSet};

use super::Op;
use crate::blob::{Actor, ListFilter};
use crate::error::Error;
use crate::{BlobAddress, FileId, ListOptions, SessionId, Store, UserId};

/// The kind of answer the store must give.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Want {
    Ok,
    NotFound,
    Conflict(&'static str),
    Invalid,
    Denied,
    WrongType,
}

/// The kind of an error, `None` for kinds the model never predicts (an
/// I/O failure).
pub(super) fn kind_of(e: &Error) -> Option<Want> {
    match e {
        Error::NotFound { .. } => Some(Want::NotFound),
        Error::Conflict { field, .. } => Some(Want::Conflict(field)),
        Error::InvalidInput { .. } => Some(Want::Invalid),
        Error::PermissionDenied { .. } => Some(Want::Denied),
        Error::WrongType { .. } => Some(Want::WrongType),
        _ => None,
    }
}

pub(super) fn agree<T: std::fmt::Debug>(op: &Op, got: &Result<T, Error>, want: Want) {
    let kind = match got {
        Ok(_) => Some(Want::Ok),
        Err(e) => kind_of(e),
    };
    assert_eq!(kind, Some(want), "{op:?}: the store answered {got:?}");
}

#[derive(Debug, Clone)]
pub(super) struct MUser {
    pub(super) id: UserId,
    pub(super) name: &'static str,
    pub(super) email: &'static str,
    pub(super) display: Option<String>,
    pub(super) deleted: bool,
}

#[derive(Debug, Clone)]
pub(super) struct MSession {
    pub(super) id: SessionId,
    pub(super) user: UserId,
    pub(super) turns: u64,
    pub(super) last: Option<&'static str>,
}

#[derive(Debug, Clone)]
pub(super) struct MFile {
    pub(super) id: FileId,
    /// The owner's slot in `users`.
    pub(super) owner: usize,
    pub(super) payload: usize,
    pub(super) blob: BlobAddress,
    pub(super) deleted: bool,
    /// Slots of the users it is granted to.
    pub(super) grants: BTreeSet<usize>,
}

/// What the store should hold.
#[derive(Debug, Clone, Default)]
pub(super) struct Model {
    pub(super) users: Vec<MUser>,
    pub(super) sessions: Vec<MSession>,
    pub(super) files: Vec<MFile>,
    pub(super) cache: BTreeMap<&'static str, Vec<u8>>,
}

/// A write whose indexes are resolved to slots of the model.
#[derive(Debug, Clone)]
pub(super) enum Write {
    CreateUser {
        name: &'static str,
        email: &'static str,
    },
    UpdateUser {
        user: usize,
        email: &'static str,
        display: Option<String>,
    },
    DeleteUser {
        user: usize,
    },
    StartSession {
        user: usize,
    },
    AppendTurn {
        session: usize,
        text: &'static str,
    },
    PutFile {
        user: usize,
        payload: usize,
    },
    DeleteFile {
        actor: usize,
        file: usize,
    },
    Grant {
        actor: usize,
        file: usize,
        to: usize,
    },
    Revoke {
        actor: usize,
        file: usize,
        from: usize,
    },
}

/// What a create made, for the model.
#[derive(Debug)]
pub(super) enum Made {
    User(UserId),
    Session(SessionId),
    File(FileId, BlobAddress),
    Nothing,
}

/// A slot of a pool of `len` entries, none if it is empty.
pub(super) fn pick(i: usize, len: usize) -> Option<usize> {
    (len > 0).then(|| i % len)
}

impl Model {
    /// How a user may act on a file: `Ok` may change it, `Denied` may only
    /// read it, `NotFound` neither (a deleted file is not found).
    pub(super) fn relation(&self, actor: usize, file: usize) -> Want {
        let f = &self.files[file];
        if f.deleted {
            Want::NotFound
        } else if f.owner == actor {
            Want::Ok
        } else if f.grants.contains(&actor) {
            Want::Denied
        } else {
            Want::NotFound
        }
    }

    pub(super) fn predict(&self, w: &Write) -> Want {
        let users = &self.users;
        match w {
            Write::CreateUser { name, email } => {
                if users.iter().any(|u| u.name == *name) {
                    Want::Conflict("username")
                } else if users.iter().any(|u| u.email == *email) {
                    Want::Conflict("email")
                } else {
                    Want::Ok
                }
            }
            Write::UpdateUser { user, email, .. } => {
                let u = &users[*user];
                if u.deleted {
                    Want::NotFound
                } else if u.email != *email && users.iter().any(|o| o.email == *email) {
                    Want::Conflict("email")
                } else {
                    Want::Ok
                }
            }
            Write::DeleteUser { user } | Write::StartSession { user } => {
                if users[*user].deleted {
                    Want::NotFound
                } else {
                    Want::Ok
                }
            }
            Write::AppendTurn { .. } => Want::Ok,
            Write::PutFile { user, .. } => {
                if users[*user].deleted {
                    Want::NotFound
                } else {
                    Want::Ok
                }
            }
            Write::DeleteFile { actor, file } | Write::Revoke { actor, file, .. } => {
                self.relation(*actor, *file)
            }
            Write::Grant { actor, file, to } => match self.relation(*actor, *file) {
                Want::Ok if *to == self.files[*file].owner => Want::Invalid,
                Want::Ok if users[*to].deleted => Want::NotFound,
                other => other,
            },
        }
    }

    /// Applies a write the store accepted; `made` is what a create made.
    pub(super) fn commit(&mut self, w: &Write, made: Made) {
        match (w, made) {
            (Write::CreateUser { name, email }, Made::User(id)) => self.users.push(MUser {
                id,
                name,
                email,
                display: None,
                deleted: false,
            }),
            (
                Write::UpdateUser {
                    user,
                    email,
                    display,
                },
                _,
            ) => {
                let u = &mut self.users[*user];
                u.email = email;
                if display.is_some() {
                    u.display.clone_from(display);
                }
            }
            (Write::DeleteUser { user }, _) => self.users[*user].deleted = true,
            (Write::StartSession { user }, Made::Session(id)) => self.sessions.push(MSession {
                id,
                user: self.users[*user].id,
                turns: 0,
                last: None,
            }),
            (Write::AppendTurn { session, text }, _) => {
                let s = &mut self.sessions[*session];
                s.turns += 1;
                s.last = Some(text);
            }
            (Write::PutFile { user, payload }, Made::File(id, blob)) => {
                self.files.push(MFile {
                    id,
                    owner: *user,
                    payload: *payload,
                    blob,
                    deleted: false,
                    grants: BTreeSet::new(),
                });
            }
            (Write::DeleteFile { file, .. }, _) => self.files[*file].deleted = true,
            (Write::Grant { file, to, .. }, _) => {
                self.files[*file].grants.insert(*to);
            }
            (Write::Revoke { file, from, .. }, _) => {
                self.files[*file].grants.remove(from);
            }
            (w, _) => panic!("{w:?} was committed without what it made"),
        }
    }

    /// Records sharing a file's blob (live or soft-deleted: a record
    /// keeps its reference until the purge).
    pub(super) fn refcount(&self, f: &MFile) -> u64 {
        self.files
            .iter()
            .filter(|g| g.owner == f.owner && g.payload == f.payload)
            .count() as u64
    }

    pub(super) fn state(&self) -> State {
        let mut s = State::default();
        for u in &self.users {
            s.users.insert(
                u.id,
                (u.name.into(), u.email.into(), u.display.clone(), u.deleted),
            );
        }
        for m in &self.sessions {
            s.sessions
                .insert(m.id, (m.user, m.turns, m.last.map(Into::into)));
        }
        for f in &self.files {
            let live = (!f.deleted).then(|| {
                let mut grantees: Vec<UserId> =
                    f.grants.iter().map(|g| self.users[*g].id).collect();
                grantees.sort();
                (grantees, self.refcount(f))
            });
            s.files
                .insert(f.id, (self.users[f.owner].id, f.blob, f.deleted, live));
        }
        s
    }
}

/// A file as listings show it: owner, blob, deleted; for a live file its
/// grantees (sorted) and its blob's reference count.
type FileState = (UserId, BlobAddress, bool, Option<(Vec<UserId>, u64)>);

/// The durable state as listings show it, for comparing a store with the
/// model.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct State {
    /// Username, email, display name, deleted.
    pub(super) users: BTreeMap<UserId, (String, String, Option<String>, bool)>,
    /// User, turns, the last turn's text.
    pub(super) sessions: BTreeMap<SessionId, (UserId, u64, Option<String>)>,
    /// Owner, blob, deleted; for a live file its grantees and refcount.
    pub(super) files: BTreeMap<FileId, FileState>,
}

/// Reads a [`State`] out of the store through its listings.
pub(super) async fn snapshot(store: &Store) -> Result<State, Error> {
    let mut s = State::default();
    let mut all = Vec::new();
    for deleted in [false, true] {
        let mut options = ListOptions::first(3);
        loop {
            let page = if deleted {
                store.users().list_deleted(options).await?
            } else {
                store.users().list(options).await?
            };
            all.extend(page.items);
            match page.next {
                Some(c) => options = ListOptions::after(c, 3),
                None => break,
            }
        }
    }
    for u in all {
        let deleted = u.deleted_at.is_some();
        s.users
            .insert(u.id, (u.username, u.email, u.display_name, deleted));
        for session in store.sessions().list_for_user(u.id, 1000).await? {
            let last = session.context.last().map(|t| t.text.clone());
            s.sessions
                .insert(session.id, (session.user_id, session.turn_count, last));
        }
        for deleted in [false, true] {
            let filter = ListFilter {
                deleted,
                ..ListFilter::default()
            };
            let page = store
                .files()
                .list(Actor::System, u.id, filter, ListOptions::first(1000))
                .await?;
            assert!(page.next.is_none(), "one page holds every file");
            for f in page.items {
                let live = match deleted {
                    true => None,
                    false => {
                        let mut grantees = store.files().grantees(Actor::System, f.id).await?;
                        grantees.sort();
                        let refs = store.files().blob_refcount(Actor::System, f.id).await?;
                        Some((grantees, refs))
                    }
                };
                s.files.insert(f.id, (f.owner, f.blob, deleted, live));
            }
        }
    }
    Ok(s)
}
