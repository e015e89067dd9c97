//! Audio-file metadata records.

use bharatvoice_store::{
    BlobAddress, Codec, Encryption, Error, FileId, ListOptions, NewAudioFile, Timestamp, UserId,
};

use crate::common::open_store;

fn new_file(owner: UserId, blob: u8, expires: Option<Timestamp>) -> NewAudioFile {
    NewAudioFile {
        owner,
        blob: BlobAddress([blob; 32]),
        name: Some("clip.wav".into()),
        content_type: "audio/wav".into(),
        plain_bytes: 32_000,
        stored_bytes: 29_000,
        sha256: [blob; 32],
        encryption: Encryption::Aes256GcmSiv,
        codec: Codec::Zstd,
        key_version: 1,
        session_id: None,
        tags: vec!["greeting".into()],
        expires_at: expires,
    }
}

#[tokio::test]
async fn insert_get_list_by_owner_with_cursor() {
    let t = open_store().await;
    let a = t.user("owner_a").await;
    let b = t.user("owner_b").await;
    let mut mine = Vec::new();
    for i in 0..7 {
        mine.push(
            t.store
                .file_records()
                .insert(new_file(a.id, i, None))
                .await
                .unwrap(),
        );
    }
    t.store
        .file_records()
        .insert(new_file(b.id, 99, None))
        .await
        .unwrap();
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
    let t0 = Timestamp::from_micros(1_000_000);
    let f1 = t
        .store
        .file_records()
        .insert(new_file(a.id, 1, Some(Timestamp::from_micros(2_000_000))))
        .await
        .unwrap();
    let f2 = t
        .store
        .file_records()
        .insert(new_file(a.id, 2, Some(Timestamp::from_micros(1_500_000))))
        .await
        .unwrap();
    let _f3 = t
        .store
        .file_records()
        .insert(new_file(a.id, 3, None))
        .await
        .unwrap();
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
        .expiring_before(Timestamp::from_micros(3_000_000), 10)
        .await
        .unwrap()
        .iter()
        .map(|f| f.id)
        .collect();
    assert_eq!(due, [f2.id, f1.id], "soonest first");
    t.store.file_records().delete(f2.id).await.unwrap();
    assert!(matches!(
        t.store.file_records().get(f2.id),
        Err(Error::NotFound { .. })
    ));
    let due: Vec<FileId> = t
        .store
        .file_records()
        .expiring_before(Timestamp::from_micros(3_000_000), 10)
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
    t.store.file_records().restore(f2.id).await.unwrap();
    assert_eq!(
        t.store
            .file_records()
            .expiring_before(Timestamp::from_micros(3_000_000), 10)
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
    t.store
        .file_records()
        .insert(new_file(a.id, 5, None))
        .await
        .unwrap();
    t.store
        .file_records()
        .insert(new_file(a.id, 5, None))
        .await
        .unwrap();
    assert_eq!(
        t.store
            .file_records()
            .blob_references(BlobAddress([5; 32]))
            .unwrap(),
        2
    );
    assert_eq!(
        t.store
            .file_records()
            .blob_references(BlobAddress([6; 32]))
            .unwrap(),
        0
    );
    let mut bad = new_file(a.id, 1, None);
    bad.content_type = "wav".into();
    assert!(matches!(
        t.store.file_records().insert(bad).await,
        Err(Error::InvalidInput { .. })
    ));
    assert!(matches!(
        t.store
            .file_records()
            .insert(new_file(UserId::new(), 1, None))
            .await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        t.store.file_records().get(FileId::new()),
        Err(Error::NotFound { .. })
    ));
}
