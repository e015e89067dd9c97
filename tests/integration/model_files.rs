//! A model test over files and metrics: random sequences of puts, deletes,
//! restores, purges, grants, revokes, clock moves and metric samples
//! against a plain in-memory model. After every step each owner's
//! listing, the expiry index, every blob's reference count (the same
//! bytes from one owner share one blob; the purge of its last reference
//! destroys it), who may read each file, and every metric query must
//! agree with the model.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use bharatvoice_store::{
    Actor, BlobAddress, ConsentKind, Error, FileId, LifecycleConfig, ListFilter, ListOptions,
    ManualClock, MetricSample, NewUser, PutOptions, Store, Timestamp, UserId,
};
use proptest::prelude::*;

use crate::common::config;

const USERS: usize = 3;
const PAYLOADS: [&[u8]; 3] = [b"namaste", b"vanakkam vanakkam", b"sat sri akal"];
const METRICS: [&str; 2] = ["asr.latency_ms", "tts.chars"];
const DAY: Duration = Duration::from_secs(86_400);

#[derive(Debug, Clone)]
enum Op {
    Put {
        owner: usize,
        payload: usize,
        days: Option<u32>,
    },
    Delete(usize),
    Restore(usize),
    Purge,
    Grant(usize, usize),
    Revoke(usize, usize),
    Advance(u8),
    Record {
        name: usize,
        value: i16,
        back_secs: u16,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..USERS, 0..PAYLOADS.len(), prop::option::of(1..4u32))
            .prop_map(|(owner, payload, days)| Op::Put { owner, payload, days }),
        2 => (0..16usize).prop_map(Op::Delete),
        1 => (0..16usize).prop_map(Op::Restore),
        1 => Just(Op::Purge),
        2 => (0..16usize, 0..USERS).prop_map(|(f, u)| Op::Grant(f, u)),
        1 => (0..16usize, 0..USERS).prop_map(|(f, u)| Op::Revoke(f, u)),
        1 => (0..3u8).prop_map(Op::Advance),
        2 => (0..METRICS.len(), any::<i16>(), any::<u16>())
            .prop_map(|(name, value, back_secs)| Op::Record { name, value, back_secs }),
    ]
}

#[derive(Debug)]
struct MFile {
    id: FileId,
    owner: usize,
    payload: usize,
    blob: BlobAddress,
    expires: Timestamp,
    deleted: bool,
    /// Purged: gone for good.
    gone: bool,
    grants: BTreeSet<usize>,
}

#[derive(Default)]
struct Model {
    files: Vec<MFile>,
    /// Blobs whose last reference was purged.
    destroyed: BTreeSet<BlobAddress>,
    /// Per metric name: (at, value) in insertion order.
    metrics: BTreeMap<&'static str, Vec<(Timestamp, f64)>>,
}

impl Model {
    fn refs(&self, blob: BlobAddress) -> u64 {
        self.files
            .iter()
            .filter(|f| f.blob == blob && !f.gone)
            .count() as u64
    }
    /// Live, purged files are not in the pool the ops pick from.
    fn pick(&self, i: usize) -> Option<usize> {
        let known: Vec<usize> = (0..self.files.len())
            .filter(|j| !self.files[*j].gone)
            .collect();
        (!known.is_empty()).then(|| known[i % known.len()])
    }
}

struct World {
    _dir: tempfile::TempDir,
    clock: ManualClock,
    store: Store,
    users: Vec<UserId>,
}

async fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(Timestamp::now());
    let c = config(dir.path())
        .clock(clock.clone())
        .default_retention_days(7)
        .lifecycle(LifecycleConfig::default().purge_grace(Duration::ZERO));
    let store = Store::open(c).await.unwrap();
    let mut users = Vec::new();
    for i in 0..USERS {
        let new = NewUser::new(format!("user{i}"), format!("u{i}@example.in"))
            .consent(ConsentKind::AudioStorage);
        users.push(store.users().create(new).await.unwrap().id);
    }
    World {
        _dir: dir,
        clock,
        store,
        users,
    }
}

async fn apply(w: &World, m: &mut Model, op: &Op) {
    let files = w.store.files();
    match *op {
        Op::Put {
            owner,
            payload,
            days,
        } => {
            let mut options = PutOptions::content_type("audio/wav");
            options.retention_days = days;
            let me = w.users[owner];
            let f = files
                .put_bytes(Actor::User(me), me, PAYLOADS[payload], options)
                .await
                .unwrap();
            let expires = w.clock.now().plus(DAY * days.unwrap_or(7));
            assert_eq!(f.expires_at, Some(expires));
            // The same bytes from the same owner share a blob (while one
            // reference is left); nothing else does.
            for g in m.files.iter().filter(|g| !g.gone) {
                let same = g.owner == owner && g.payload == payload;
                assert_eq!(g.blob == f.blob, same, "blob of {} against {}", g.id, f.id);
            }
            m.files.push(MFile {
                id: f.id,
                owner,
                payload,
                blob: f.blob,
                expires,
                deleted: false,
                gone: false,
                grants: BTreeSet::new(),
            });
        }
        Op::Delete(i) | Op::Restore(i) => {
            let Some(i) = m.pick(i) else { return };
            let f = &mut m.files[i];
            let owner = Actor::User(w.users[f.owner]);
            let deleting = matches!(op, Op::Delete(_));
            let r = if deleting {
                files.delete(owner, f.id).await
            } else {
                files.restore(owner, f.id).await
            };
            if deleting && f.deleted {
                assert!(matches!(r, Err(Error::NotFound { .. })), "{r:?}");
            } else {
                r.unwrap();
                f.deleted = deleting;
            }
        }
        Op::Purge => {
            let report = w
                .store
                .lifecycle()
                .run_to_end("purge", false)
                .await
                .unwrap();
            let purged: Vec<usize> = (0..m.files.len())
                .filter(|i| m.files[*i].deleted && !m.files[*i].gone)
                .collect();
            assert_eq!(
                report.count("files_purged"),
                purged.len() as u64,
                "{report:?}"
            );
            let mut blobs = BTreeSet::new();
            for i in purged {
                m.files[i].gone = true;
                blobs.insert(m.files[i].blob);
            }
            let destroyed: Vec<BlobAddress> =
                blobs.into_iter().filter(|b| m.refs(*b) == 0).collect();
            assert_eq!(
                report.count("blobs_destroyed"),
                destroyed.len() as u64,
                "{report:?}"
            );
            m.destroyed.extend(destroyed);
        }
        Op::Grant(i, to) | Op::Revoke(i, to) => {
            let Some(i) = m.pick(i) else { return };
            let f = &mut m.files[i];
            let owner = Actor::User(w.users[f.owner]);
            let granting = matches!(op, Op::Grant(..));
            let r = if granting {
                files.grant(owner, f.id, w.users[to]).await
            } else {
                files.revoke(owner, f.id, w.users[to]).await
            };
            if f.deleted {
                assert!(matches!(r, Err(Error::NotFound { .. })), "{r:?}");
            } else if granting && to == f.owner {
                assert!(matches!(r, Err(Error::InvalidInput { .. })), "{r:?}");
            } else {
                r.unwrap();
                if granting {
                    f.grants.insert(to);
                } else {
                    f.grants.remove(&to);
                }
            }
        }
        Op::Advance(days) => w.clock.advance(DAY * u32::from(days)),
        Op::Record {
            name,
            value,
            back_secs,
        } => {
            let at = w
                .clock
                .now()
                .minus(Duration::from_secs(u64::from(back_secs)));
            let sample = MetricSample::new(METRICS[name], f64::from(value))
                .at(at)
                .label("lang", "hi-IN");
            w.store.metrics().record(sample).await.unwrap();
            m.metrics
                .entry(METRICS[name])
                .or_default()
                .push((at, f64::from(value)));
        }
    }
}

async fn check(w: &World, m: &Model) {
    let files = w.store.files();
    // Each owner's listing, live and trash.
    for (u, id) in w.users.iter().enumerate() {
        for deleted in [false, true] {
            let filter = ListFilter {
                deleted,
                ..ListFilter::default()
            };
            let page = files
                .list(Actor::User(*id), *id, filter, ListOptions::first(1000))
                .await
                .unwrap();
            let got: BTreeSet<FileId> = page.items.iter().map(|f| f.id).collect();
            let want: BTreeSet<FileId> = m
                .files
                .iter()
                .filter(|f| f.owner == u && !f.gone && f.deleted == deleted)
                .map(|f| f.id)
                .collect();
            assert_eq!(got, want, "files of user {u}, deleted: {deleted}");
        }
    }
    // The expiry index: live files only, soonest first.
    let horizon = w.clock.now().plus(DAY * 3);
    let expiring = w
        .store
        .file_records()
        .expiring_before(horizon, 1000)
        .await
        .unwrap();
    let got: Vec<(Timestamp, FileId)> = expiring
        .iter()
        .map(|f| (f.expires_at.unwrap(), f.id))
        .collect();
    let mut want: Vec<(Timestamp, FileId)> = m
        .files
        .iter()
        .filter(|f| !f.deleted && !f.gone && f.expires < horizon)
        .map(|f| (f.expires, f.id))
        .collect();
    want.sort();
    assert_eq!(got, want, "files expiring before {horizon:?}");
    // Reference counts, and destroyed blobs.
    let blobs: BTreeSet<BlobAddress> = m.files.iter().map(|f| f.blob).collect();
    for b in blobs {
        let refs = w.store.file_records().blob_references(b).unwrap();
        assert_eq!(refs, m.refs(b), "references of {b}");
    }
    // Who may read each file, and its grantees.
    for f in m.files.iter().filter(|f| !f.gone) {
        for (u, id) in w.users.iter().enumerate() {
            let r = files.stat(Actor::User(*id), f.id).await;
            let may = !f.deleted && (u == f.owner || f.grants.contains(&u));
            match r {
                Ok(_) => assert!(may, "user {u} reads {}", f.id),
                Err(Error::NotFound { .. }) => assert!(!may, "user {u} cannot read {}", f.id),
                Err(e) => panic!("stat of {} by user {u}: {e}", f.id),
            }
        }
        if !f.deleted {
            let mut got = files.grantees(Actor::System, f.id).await.unwrap();
            got.sort();
            let mut want: Vec<UserId> = f.grants.iter().map(|u| w.users[*u]).collect();
            want.sort();
            assert_eq!(got, want, "grantees of {}", f.id);
        }
    }
    // Every metric over everything, and over the last ten minutes.
    for name in METRICS {
        let to = w.clock.now().plus(Duration::from_secs(1));
        for from in [
            Timestamp::MIN,
            w.clock.now().minus(Duration::from_secs(600)),
        ] {
            let got: Vec<(Timestamp, f64)> = w
                .store
                .metrics()
                .query(name, from, to)
                .await
                .unwrap()
                .iter()
                .map(|s| (s.at, s.value))
                .collect();
            let mut want: Vec<(Timestamp, f64)> = m
                .metrics
                .get(name)
                .into_iter()
                .flatten()
                .filter(|(at, _)| *at >= from && *at < to)
                .copied()
                .collect();
            // Oldest first; samples at one time in id (insertion) order.
            want.sort_by_key(|(at, _)| *at);
            assert_eq!(got, want, "samples of {name} from {from:?}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 12,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn files_grants_and_metrics_follow_the_model(ops in prop::collection::vec(op(), 1..30)) {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let w = world().await;
            let mut m = Model::default();
            for op in &ops {
                apply(&w, &mut m, op).await;
                check(&w, &m).await;
            }
            let report = w.store.verify(Default::default()).await.unwrap();
            assert!(report.is_clean(), "{:?}", report.problems);
            w.store.close().await;
        });
    }
}
