//! `audit verify` against every kind of tampering with `store.redb`'s
//! audit table, done with redb directly on a closed store: each must be
//! reported at the right seq with the right kind.

use std::path::Path;
use std::time::Duration;

use bharatvoice_store::{
    AuditConfig, AuditProblem, AuditProblemKind as Kind, ManualClock, NewUser, Store, Timestamp,
};
use redb::{ReadableDatabase, ReadableTable, TableDefinition};

use crate::common::config;

const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("audit_log");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const T0: Timestamp = Timestamp::from_micros(1_800_000_000_000_000);

/// Runs `f` on the audit table of the closed store at `db`.
fn edit(db: &Path, f: impl FnOnce(&mut redb::Table<u64, &[u8]>, &mut redb::Table<&str, &[u8]>)) {
    let db = redb::Database::open(db).unwrap();
    let txn = db.begin_write().unwrap();
    {
        let mut log = txn.open_table(LOG).unwrap();
        let mut meta = txn.open_table(META).unwrap();
        f(&mut log, &mut meta);
    }
    txn.commit().unwrap();
}

fn value(log: &redb::Table<u64, &[u8]>, seq: u64) -> Vec<u8> {
    log.get(seq).unwrap().unwrap().value().to_vec()
}

/// Changes entry `seq`'s outcome `ok` to `no` (it decodes as well as before).
pub fn change_outcome(db: &Path, seq: u64) {
    edit(db, |log, _| {
        let mut v = value(log, seq);
        let at = v.len() - 34;
        assert_eq!(&v[at..at + 2], b"ok");
        v[at..at + 2].copy_from_slice(b"no");
        log.insert(seq, v.as_slice()).unwrap();
    });
}

/// A closed store with `n` entries (user creations), seq 1 to n; with
/// `aged`, the first `aged` of them are past a 1-day retention and the
/// `audit-retention` job has dropped them (its own `job.run` entry is n+1).
async fn store_with(n: u64, aged: u64) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let cfg = config(dir.path())
        .clock(clock.clone())
        .audit(AuditConfig::default().retention(Duration::from_secs(86_400)));
    let s = Store::open(cfg).await.unwrap();
    for i in 0..n {
        if i == aged && aged > 0 {
            clock.advance(Duration::from_secs(2 * 86_400));
        }
        let name = format!("user{i}");
        s.users()
            .create(NewUser::new(&name, format!("{name}@example.in")))
            .await
            .unwrap();
    }
    if aged > 0 {
        let r = s.lifecycle().run("audit-retention", false).await.unwrap();
        assert_eq!(r.count("entries_dropped"), aged);
    }
    let report = s.audit().verify().await.unwrap();
    assert!(report.ok(), "{report:?}");
    s.close().await;
    drop(s);
    dir
}

async fn verify(dir: &Path) -> Option<AuditProblem> {
    let s = Store::open(config(dir)).await.unwrap();
    let report = s.audit().verify().await.unwrap();
    s.close().await;
    report.problem
}

#[track_caller]
fn at(seq: u64, kind: Kind) -> Option<AuditProblem> {
    Some(AuditProblem { seq, kind })
}

#[tokio::test]
async fn a_changed_entry_is_reported_at_its_seq() {
    let dir = store_with(5, 0).await;
    change_outcome(&dir.path().join("store.redb"), 3);
    assert_eq!(verify(dir.path()).await, at(3, Kind::Changed));
}

#[tokio::test]
async fn a_removed_entry_is_reported_missing() {
    let dir = store_with(5, 0).await;
    edit(&dir.path().join("store.redb"), |log, _| {
        log.remove(2).unwrap();
    });
    assert_eq!(verify(dir.path()).await, at(2, Kind::Missing));
}

#[tokio::test]
async fn an_inserted_entry_is_reported_changed() {
    let dir = store_with(5, 0).await;
    // Entries 3.. move up one, and a copy of entry 2 goes in at 3.
    edit(&dir.path().join("store.redb"), |log, _| {
        for seq in (3..=5).rev() {
            let v = value(log, seq);
            log.insert(seq + 1, v.as_slice()).unwrap();
        }
        let v = value(log, 2);
        log.insert(3, v.as_slice()).unwrap();
    });
    assert_eq!(verify(dir.path()).await, at(3, Kind::Changed));
}

#[tokio::test]
async fn reordered_entries_are_reported_changed() {
    let dir = store_with(5, 0).await;
    edit(&dir.path().join("store.redb"), |log, _| {
        let (two, four) = (value(log, 2), value(log, 4));
        log.insert(2, four.as_slice()).unwrap();
        log.insert(4, two.as_slice()).unwrap();
    });
    assert_eq!(verify(dir.path()).await, at(2, Kind::Changed));
}

#[tokio::test]
async fn an_entry_appended_behind_the_head_is_reported() {
    let dir = store_with(3, 0).await;
    edit(&dir.path().join("store.redb"), |log, _| {
        let v = value(log, 3);
        log.insert(4, v.as_slice()).unwrap();
    });
    assert_eq!(verify(dir.path()).await, at(4, Kind::AfterHead));
}

#[tokio::test]
async fn a_truncated_tail_is_reported_against_the_head() {
    let dir = store_with(4, 0).await;
    edit(&dir.path().join("store.redb"), |log, _| {
        log.remove(4).unwrap();
    });
    assert_eq!(verify(dir.path()).await, at(4, Kind::HeadMismatch));
}

#[tokio::test]
async fn after_retention_the_rest_verifies_against_the_anchor() {
    let dir = store_with(5, 2).await;
    let s = Store::open(config(dir.path())).await.unwrap();
    let report = s.audit().verify().await.unwrap();
    assert!(report.ok(), "{report:?}");
    assert_eq!(report.anchor_seq, Some(2));
    assert_eq!((report.first_seq, report.last_seq), (Some(3), Some(6)));
    s.close().await;
}

#[tokio::test]
async fn a_changed_anchor_is_reported() {
    let dir = store_with(5, 2).await;
    edit(&dir.path().join("store.redb"), |_, meta| {
        let mut v = meta.get("audit_anchor").unwrap().unwrap().value().to_vec();
        // The seq (a varint after the version byte): 2 becomes 1.
        assert_eq!(v[1], 2);
        v[1] = 1;
        meta.insert("audit_anchor", v.as_slice()).unwrap();
    });
    assert_eq!(verify(dir.path()).await, at(1, Kind::AnchorChanged));
}

#[tokio::test]
async fn a_removed_anchor_is_reported() {
    let dir = store_with(5, 2).await;
    edit(&dir.path().join("store.redb"), |_, meta| {
        meta.remove("audit_anchor").unwrap();
    });
    assert_eq!(verify(dir.path()).await, at(1, Kind::AnchorMissing));
}

#[tokio::test]
async fn a_front_removed_beyond_the_anchor_is_reported() {
    let dir = store_with(5, 2).await;
    edit(&dir.path().join("store.redb"), |log, _| {
        log.remove(3).unwrap();
    });
    assert_eq!(verify(dir.path()).await, at(3, Kind::Missing));
}

#[tokio::test]
async fn old_audit_rows_move_into_the_chain_and_verify() {
    let dir = store_with(2, 0).await;
    let db_path = dir.path().join("store.redb");
    // Make it a schema 7 store holding the old table.
    const OLD: TableDefinition<(i64, u128), &[u8]> = TableDefinition::new("audit");
    {
        let db = redb::Database::open(&db_path).unwrap();
        let txn = db.begin_write().unwrap();
        txn.delete_table(LOG).unwrap();
        {
            let mut meta = txn.open_table(META).unwrap();
            meta.remove("audit_head").unwrap();
            meta.insert("schema_version", 7u32.to_le_bytes().as_slice())
                .unwrap();
            let mut old = txn.open_table(OLD).unwrap();
            for (at, action) in [(20i64, "file.stat"), (10, "file.read")] {
                let mut v = vec![1u8];
                let row = (uuid::Uuid::nil(), at, "user:x", action, "file:y", "refused");
                v.extend(postcard::to_allocvec(&row).unwrap());
                old.insert((at, at as u128), v.as_slice()).unwrap();
            }
        }
        txn.commit().unwrap();
        let r = db.begin_read().unwrap();
        assert!(r.open_table(OLD).is_ok());
    }
    let s = Store::open(config(dir.path())).await.unwrap();
    let events = s.audit_events(10).unwrap();
    let actions: Vec<(u64, &str)> = events
        .iter()
        .rev()
        .map(|e| (e.seq, e.action.as_str()))
        .collect();
    assert_eq!(actions, [(1, "file.read"), (2, "file.stat")]);
    assert!(s.audit().verify().await.unwrap().ok());
    s.users()
        .create(NewUser::new("after", "after@example.in"))
        .await
        .unwrap();
    let report = s.audit().verify().await.unwrap();
    assert!(report.ok() && report.checked == 3, "{report:?}");
    s.close().await;
    drop(s);
    let db = redb::Database::open(&db_path).unwrap();
    let r = db.begin_read().unwrap();
    assert!(r.open_table(OLD).is_err(), "the old table is dropped");
}
