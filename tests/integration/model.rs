//! A model test: random sequences of user and session operations against a
//! plain in-memory model; after every step each get, list and index lookup
//! of the store must agree with the model.

use std::collections::HashSet;

use bharatvoice_store::{
    Error, ListOptions, NewUser, SessionId, Store, Timestamp, UserId, UserUpdate,
};
use proptest::prelude::*;

const NAMES: [&str; 5] = ["asha", "bala", "chitra", "dev", "esha"];
const EMAILS: [&str; 5] = ["a@x.in", "b@x.in", "c@x.in", "d@x.in", "e@x.in"];

#[derive(Debug, Clone)]
enum Op {
    Create(usize, usize),
    UpdateEmail(usize, usize),
    Delete(usize),
    Restore(usize),
    StartSession(usize),
    Touch(usize),
    DeleteSession(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..5usize, 0..5usize).prop_map(|(n, e)| Op::Create(n, e)),
        1 => (0..8usize, 0..5usize).prop_map(|(u, e)| Op::UpdateEmail(u, e)),
        1 => (0..8usize).prop_map(Op::Delete),
        1 => (0..8usize).prop_map(Op::Restore),
        2 => (0..8usize).prop_map(Op::StartSession),
        1 => (0..16usize).prop_map(Op::Touch),
        1 => (0..16usize).prop_map(Op::DeleteSession),
    ]
}

struct MUser {
    id: UserId,
    name: String,
    email: String,
    deleted: bool,
}

struct MSession {
    id: SessionId,
    user: UserId,
    last_active: Timestamp,
    deleted: bool,
}

#[derive(Default)]
struct Model {
    users: Vec<MUser>,
    sessions: Vec<MSession>,
}

impl Model {
    fn name_taken(&self, n: &str) -> bool {
        self.users.iter().any(|u| u.name == n)
    }
    fn email_taken(&self, e: &str) -> bool {
        self.users.iter().any(|u| u.email == e)
    }
    fn live(&self, id: UserId) -> bool {
        self.users.iter().any(|u| u.id == id && !u.deleted)
    }
}

async fn apply(store: &Store, m: &mut Model, op: &Op) {
    match *op {
        Op::Create(n, e) => {
            let r = store
                .users()
                .create(NewUser::new(NAMES[n], EMAILS[e]))
                .await;
            if m.name_taken(NAMES[n]) {
                assert!(
                    matches!(
                        r,
                        Err(Error::Conflict {
                            field: "username",
                            ..
                        })
                    ),
                    "{r:?}"
                );
            } else if m.email_taken(EMAILS[e]) {
                assert!(
                    matches!(r, Err(Error::Conflict { field: "email", .. })),
                    "{r:?}"
                );
            } else {
                let u = r.unwrap();
                m.users.push(MUser {
                    id: u.id,
                    name: NAMES[n].into(),
                    email: EMAILS[e].into(),
                    deleted: false,
                });
            }
        }
        Op::UpdateEmail(slot, e) => {
            let Some(i) = (!m.users.is_empty()).then(|| slot % m.users.len()) else {
                return;
            };
            let id = m.users[i].id;
            let r = store
                .users()
                .update(
                    id,
                    UserUpdate {
                        email: Some(EMAILS[e].into()),
                        ..Default::default()
                    },
                )
                .await;
            if m.users[i].deleted {
                assert!(matches!(r, Err(Error::NotFound { .. })), "{r:?}");
            } else if m.users[i].email != EMAILS[e] && m.email_taken(EMAILS[e]) {
                assert!(
                    matches!(r, Err(Error::Conflict { field: "email", .. })),
                    "{r:?}"
                );
            } else {
                r.unwrap();
                m.users[i].email = EMAILS[e].into();
            }
        }
        Op::Delete(slot) | Op::Restore(slot) => {
            let Some(i) = (!m.users.is_empty()).then(|| slot % m.users.len()) else {
                return;
            };
            let deleting = matches!(op, Op::Delete(_));
            let id = m.users[i].id;
            let r = if deleting {
                store.users().delete(id).await
            } else {
                store.users().restore(id).await
            };
            if deleting && m.users[i].deleted {
                assert!(matches!(r, Err(Error::NotFound { .. })), "{r:?}");
            } else {
                r.unwrap();
                m.users[i].deleted = deleting;
            }
        }
        Op::StartSession(slot) => {
            let Some(i) = (!m.users.is_empty()).then(|| slot % m.users.len()) else {
                return;
            };
            let user = m.users[i].id;
            let r = store.sessions().create(user, None).await;
            if m.live(user) {
                let s = r.unwrap();
                m.sessions.push(MSession {
                    id: s.id,
                    user,
                    last_active: s.last_active_at,
                    deleted: false,
                });
            } else {
                assert!(matches!(r, Err(Error::NotFound { .. })), "{r:?}");
            }
        }
        Op::Touch(slot) | Op::DeleteSession(slot) => {
            let Some(i) = (!m.sessions.is_empty()).then(|| slot % m.sessions.len()) else {
                return;
            };
            let id = m.sessions[i].id;
            let touching = matches!(op, Op::Touch(_));
            let r = if touching {
                store.sessions().touch(id).await
            } else {
                store.sessions().delete(id).await
            };
            if m.sessions[i].deleted {
                assert!(matches!(r, Err(Error::NotFound { .. })), "{r:?}");
            } else {
                let s = r.unwrap();
                m.sessions[i].last_active = s.last_active_at;
                m.sessions[i].deleted = !touching;
            }
        }
    }
}

async fn check(store: &Store, m: &Model) {
    for u in &m.users {
        let by_id = store.users().get(u.id);
        let by_name = store.users().get_by_username(&u.name);
        let by_email = store.users().get_by_email(&u.email);
        if u.deleted {
            assert!(matches!(by_id, Err(Error::NotFound { .. })));
            assert!(matches!(by_name, Err(Error::NotFound { .. })));
            assert!(matches!(by_email, Err(Error::NotFound { .. })));
        } else {
            let got = by_id.unwrap();
            assert_eq!(
                (got.username.as_str(), got.email.as_str()),
                (u.name.as_str(), u.email.as_str())
            );
            assert_eq!(by_name.unwrap().id, u.id);
            assert_eq!(by_email.unwrap().id, u.id);
        }
    }
    let used: HashSet<&str> = m.users.iter().map(|u| u.email.as_str()).collect();
    for e in EMAILS.iter().filter(|e| !used.contains(*e)) {
        assert!(
            matches!(store.users().get_by_email(e), Err(Error::NotFound { .. })),
            "stale email index for {e}"
        );
    }
    let mut listed = Vec::new();
    let mut page = store.users().list(ListOptions::first(2)).await.unwrap();
    loop {
        listed.extend(page.items.iter().map(|u| u.id));
        match page.next {
            Some(c) => page = store.users().list(ListOptions::after(c, 2)).await.unwrap(),
            None => break,
        }
    }
    let mut expected: Vec<UserId> = m
        .users
        .iter()
        .filter(|u| !u.deleted)
        .map(|u| u.id)
        .collect();
    expected.sort_by_key(|id| std::cmp::Reverse(*id));
    assert_eq!(listed, expected, "user list");
    for u in &m.users {
        let got: Vec<SessionId> = store
            .sessions()
            .list_for_user(u.id, 100)
            .await
            .unwrap()
            .iter()
            .map(|s| s.id)
            .collect();
        let mut want: Vec<&MSession> = m
            .sessions
            .iter()
            .filter(|s| s.user == u.id && !s.deleted)
            .collect();
        want.sort_by_key(|s| std::cmp::Reverse((s.last_active, s.id)));
        assert_eq!(
            got,
            want.iter().map(|s| s.id).collect::<Vec<_>>(),
            "sessions of {}",
            u.name
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]
    #[test]
    fn store_agrees_with_the_model(ops in proptest::collection::vec(op(), 1..30)) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let store = Store::open(crate::common::config(dir.path())).await.unwrap();
            let mut model = Model::default();
            for op in &ops {
                apply(&store, &mut model, op).await;
                check(&store, &model).await;
            }
        });
    }
}
