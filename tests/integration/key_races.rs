//! Puts and reads racing key rotations: whatever the interleaving, a
//! committed file reads back, and an old key version is destroyed once no
//! blob needs it.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bharatvoice_store::{Actor, MasterKey, PutOptions, Store, UserId};
use tokio::io::{AsyncRead, ReadBuf};
use tokio::sync::Notify;

use crate::common::open_store;

/// Yields `head`, then tells `at_gate` and waits for `gate` before
/// yielding `tail` and EOF.
struct GatedReader {
    parts: Vec<Vec<u8>>,
    gate: Arc<Notify>,
    at_gate: Arc<Notify>,
    waiting: Option<Pin<Box<dyn std::future::Future<Output = ()> + Send>>>,
    opened: bool,
}

impl GatedReader {
    fn new(head: Vec<u8>, tail: Vec<u8>, gate: Arc<Notify>, at_gate: Arc<Notify>) -> Self {
        GatedReader {
            parts: vec![tail, head],
            gate,
            at_gate,
            waiting: None,
            opened: false,
        }
    }
}

impl AsyncRead for GatedReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.parts.len() == 1 && !self.opened {
            if self.waiting.is_none() {
                self.at_gate.notify_one();
                let gate = Arc::clone(&self.gate);
                self.waiting = Some(Box::pin(async move { gate.notified().await }));
            }
            match self.waiting.as_mut().map(|w| w.as_mut().poll(cx)) {
                Some(Poll::Ready(())) => self.opened = true,
                _ => return Poll::Pending,
            }
        }
        let Some(part) = self.parts.last_mut() else {
            return Poll::Ready(Ok(()));
        };
        let n = part.len().min(buf.remaining());
        buf.put_slice(&part[..n]);
        part.drain(..n);
        if part.is_empty() {
            self.parts.pop();
        }
        Poll::Ready(Ok(()))
    }
}

fn bytes(seed: u8, n: usize) -> Vec<u8> {
    (0..n).map(|i| (i as u8).wrapping_mul(31) ^ seed).collect()
}

type PutTask =
    tokio::task::JoinHandle<Result<bharatvoice_store::AudioFile, bharatvoice_store::Error>>;

/// Starts a put of `head` + `tail` by `owner` that stops after `head` until
/// the returned gate is opened; returns once it is stopped there.
async fn gated_put(
    store: &Store,
    owner: UserId,
    head: &[u8],
    tail: &[u8],
) -> (PutTask, Arc<Notify>) {
    let (gate, at_gate) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let reader = GatedReader::new(
        head.to_vec(),
        tail.to_vec(),
        Arc::clone(&gate),
        Arc::clone(&at_gate),
    );
    let store = store.clone();
    let put = tokio::spawn(async move {
        store
            .files()
            .put(Actor::User(owner), owner, reader, PutOptions::default())
            .await
    });
    at_gate.notified().await;
    (put, gate)
}

async fn read_all(store: &Store, owner: UserId, id: bharatvoice_store::FileId) -> Vec<u8> {
    store.files().read(Actor::User(owner), id).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_spanning_a_whole_owner_rotation_reads_back() {
    let t = open_store().await;
    let u = t.user("meera").await;
    let me = Actor::User(u.id);
    let files = t.store.files();
    let first = files
        .put_bytes(me, u.id, &bytes(1, 70_000), PutOptions::default())
        .await
        .unwrap();
    let (head, tail) = (bytes(2, 300_000), bytes(3, 300_000));
    // Returns once the put has taken its key version and written the head.
    let (put, gate) = gated_put(&t.store, u.id, &head, &tail).await;
    let keys = t.store.keys();
    assert_eq!(keys.owner_key_versions(u.id).unwrap(), vec![1]);
    let v = keys.begin_owner_rotation(u.id).await.unwrap();
    while !keys.rotation_step(u.id, 16).await.unwrap().finished {}
    assert_eq!(
        keys.owner_key_versions(u.id).unwrap(),
        vec![v],
        "old version destroyed"
    );
    gate.notify_one();
    let late = put.await.unwrap().unwrap();
    assert_eq!(
        late.key_version, v,
        "the late put was re-wrapped onto the current version"
    );
    let mut whole = head;
    whole.extend_from_slice(&tail);
    assert_eq!(read_all(&t.store, u.id, late.id).await, whole);
    assert_eq!(read_all(&t.store, u.id, first.id).await, bytes(1, 70_000));
    assert_eq!(keys.owner_key_versions(u.id).unwrap(), vec![v]);
    // And after a reopen, with no cached keys.
    let path = t.path();
    t.store.close().await;
    drop(t.store);
    let store = Store::open(crate::common::config(&path)).await.unwrap();
    assert_eq!(read_all(&store, u.id, late.id).await, whole);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_spanning_a_master_rotation_reads_back() {
    let t = open_store().await;
    let u = t.user("kiran").await;
    let (head, tail) = (bytes(4, 200_000), bytes(5, 10));
    // A first put: the owner's keys are made while it runs.
    let (put, gate) = gated_put(&t.store, u.id, &head, &tail).await;
    let new = MasterKey::generate().unwrap();
    t.store.keys().rotate_master(new.clone()).await.unwrap();
    gate.notify_one();
    let f = put.await.unwrap().unwrap();
    let mut whole = head;
    whole.extend_from_slice(&tail);
    assert_eq!(read_all(&t.store, u.id, f.id).await, whole);
    let path = t.path();
    t.store.close().await;
    drop(t.store);
    let store = Store::open(crate::common::config(&path).master_key(new))
        .await
        .unwrap();
    assert_eq!(read_all(&store, u.id, f.id).await, whole);
}

/// First puts of new owners (whose keys are made and wrapped under the
/// master key as they run), reads, and owner rotations, all racing master
/// rotations: every file reads back afterwards, under the last key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_puts_and_owner_rotations_racing_master_rotations_lose_nothing() {
    let t = open_store().await;
    let mut owners = Vec::new();
    for i in 0..48 {
        owners.push(t.user(&format!("racer{i}")).await);
    }
    let mut tasks = Vec::new();
    for (i, u) in owners.iter().enumerate() {
        let (store, id) = (t.store.clone(), u.id);
        tasks.push(tokio::spawn(async move {
            let mut stored = Vec::new();
            for j in 0..3u8 {
                let body = bytes(i as u8 ^ (j << 6), 1000 + 97 * i + j as usize);
                let f = store
                    .files()
                    .put_bytes(Actor::User(id), id, &body, PutOptions::default())
                    .await
                    .unwrap();
                // A read right away, while rotations run.
                assert_eq!(
                    store.files().read(Actor::User(id), f.id).await.unwrap(),
                    body
                );
                if i % 4 == 0 && j == 1 {
                    store.keys().rotate_owner(id).await.unwrap();
                }
                stored.push((id, f.id, body));
            }
            stored
        }));
    }
    let mut last = None;
    for _ in 0..6 {
        let k = MasterKey::generate().unwrap();
        t.store.keys().rotate_master(k.clone()).await.unwrap();
        last = Some(k);
        tokio::task::yield_now().await;
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    for (owner, id, body) in &all {
        assert_eq!(&read_all(&t.store, *owner, *id).await, body);
    }
    let path = t.path();
    t.store.close().await;
    drop(t.store);
    let store = Store::open(crate::common::config(&path).master_key(last.unwrap()))
        .await
        .unwrap();
    for (owner, id, body) in &all {
        assert_eq!(&read_all(&store, *owner, *id).await, body);
    }
}
