//! Audio-file metadata records: what `store.file_records()` reads of the
//! records that `store.files()` writes.

use bharatvoice_store::{
    Actor, BlobAddress, Error, FileId, ListOptions, PutOptions, Timestamp, UserId,
};

use crate::common::{TestStore, open_store};

const DAY_US: i64 = 86_400_000_000;

/// Stores a small file whose bytes are `seed` for `owner`.
async fn put(
    t: &TestStore,
    owner: UserId,
    seed: u8,
    retention_days: Option<u32>,
) -> bharatvoice_store::AudioFile {
    let options = PutOptions {
        name: Some("clip.wav".into()),
        retention_days,
        tags: vec!["greeting".into()],
        ..PutOptions::content_type("audio/wav")
    };
    t.store
        .files()
        .put_bytes(Actor::User(owner), owner, &[seed; 3200], options)
        .await
        .unwrap()
}

#[tokio::test]
async fn insert_get_list_by_owner_with_cursor() {
    let t = open_store().await;
    let a = t.user("owner_a").await;
    let b = t.user("owner_b").await;
    let mut mine = Vec::new();
    for i in 0..7 {
        mine.push(put(&t, a.id, i, None).await);
    }
    put(&t, b.id, 99, None).await;
    assert_eq!(t.store.file_records().get(mine[3].id).unwrap(), mine[3]);
    let mut seen = Vec::new();
    let mut page = t
        .store
        .file_records()
        .list_by_owner(a.id, ListOptions::first(3))
        .await
        .unwrap();
    loop {
        seen.extend(page.items.iter().map(|f| f.id));
        match page.next {
            Some(c) => {
                page = t
                    .store
                    .file_records()
                    .list_by_owner(a.id, ListOptions::after(c, 3))
                    .await
                    .unwrap()
            }
            None => break,
        }
    }
    let expected: Vec<FileId> = mine.iter().rev().map(|f| f.id).collect();
    assert_eq!(seen, expected, "newest first, only the owner's");
}

#[tokio::test]
async fn expiry_index_and_soft_delete() {
    let t = open_store().await;
    let a = t.user("owner_c").await;
    let t0 = Timestamp::now();
    // Retention falls back to the store default when a put names none.
    let f1 = put(&t, a.id, 1, Some(2)).await;
    let f2 = put(&t, a.id, 2, Some(1)).await;
    let _f3 = put(&t, a.id, 3, Some(30)).await;
    let in_3_days = Timestamp::from_micros(t0.as_micros() + 3 * DAY_US);
    assert!(
        t.store
            .file_records()
            .expiring_before(t0, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let due: Vec<FileId> = t
        .store
        .file_records()
        .expiring_before(in_3_days, 10)
        .await
        .unwrap()
        .iter()
        .map(|f| f.id)
        .collect();
    assert_eq!(due, [f2.id, f1.id], "soonest first");
    let me = Actor::User(a.id);
    t.store.files().delete(me, f2.id).await.unwrap();
    assert!(matches!(
        t.store.file_records().get(f2.id),
        Err(Error::NotFound { .. })
    ));
    let due: Vec<FileId> = t
        .store
        .file_records()
        .expiring_before(in_3_days, 10)
        .await
        .unwrap()
        .iter()
        .map(|f| f.id)
        .collect();
    assert_eq!(due, [f1.id]);
    assert_eq!(
        t.store
            .file_records()
            .list_by_owner(a.id, ListOptions::first(10))
            .await
            .unwrap()
            .items
            .len(),
        2
    );
    t.store.files().restore(me, f2.id).await.unwrap();
    assert_eq!(
        t.store
            .file_records()
            .expiring_before(in_3_days, 10)
            .await
            .unwrap()
            .len(),
        2
    );
}

#[tokio::test]
async fn blob_references_count_records_and_bad_input_is_refused() {
    let t = open_store().await;
    let a = t.user("owner_d").await;
    let first = put(&t, a.id, 5, None).await;
    let second = put(&t, a.id, 5, None).await;
    assert_eq!(first.blob, second.blob, "the same bytes share a blob");
    assert_eq!(
        t.store.file_records().blob_references(first.blob).unwrap(),
        2
    );
    assert_eq!(
        t.store
            .file_records()
            .blob_references(BlobAddress([6; 32]))
            .unwrap(),
        0
    );
    let bad = PutOptions::content_type("wav");
    assert!(matches!(
        t.store
            .files()
            .put_bytes(Actor::User(a.id), a.id, b"x", bad)
            .await,
        Err(Error::InvalidInput { .. })
    ));
    let nobody = UserId::new();
    assert!(matches!(
        t.store
            .files()
            .put_bytes(Actor::System, nobody, b"x", PutOptions::default())
            .await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        t.store.file_records().get(FileId::new()),
        Err(Error::NotFound { .. })
    ));
}
