//! Crypto-shredding: once a blob is purged, a copy of its sealed bytes
//! taken before cannot be decrypted with any key the store still holds,
//! the master key included.

use std::time::Duration;

use crate::blob::backend::BlobSource;
use crate::blob::reader::OpenBlob;
use crate::db::lifecycle::blob_rows_after;
use crate::types::{BlobAddress, Timestamp};
use crate::{Actor, Config, LifecycleConfig, ManualClock, NewUser, PutOptions, Store};

/// Tries every data key the store holds (each blob row's, unwrapped
/// through its owner's keys with the master key) on `sealed`; the
/// plaintext of its first chunk if one opens it.
pub(crate) fn decrypt_with_any_key(store: &Store, sealed: &[u8]) -> Option<Vec<u8>> {
    let db = store.db();
    let keyring = &store.blob_store().keyring;
    let rows = db
        .read(|txn| blob_rows_after(txn, None, usize::MAX))
        .expect("reading blob rows");
    for (address, row) in rows {
        let Some(wrapped) = &row.data_key else {
            continue;
        };
        let owner_row = crate::blob::keys::Keyring::row(db, row.owner).expect("owner keys");
        let Ok(key) = keyring.data_key(
            owner_row.as_ref(),
            row.owner,
            address,
            row.key_version,
            wrapped,
        ) else {
            continue;
        };
        let source: Box<dyn BlobSource> = Box::new(sealed.to_vec());
        if let Ok(blob) = OpenBlob::from_source(source, Some(&key), None, "copy".into())
            && let Ok(plain) = blob.chunk(0)
        {
            return Some(plain);
        }
    }
    None
}

pub(crate) fn read_blob(store: &Store, address: BlobAddress) -> Vec<u8> {
    let source = store
        .blob_store()
        .backend
        .open(address)
        .expect("opening")
        .expect("the blob is stored");
    let mut bytes = vec![0u8; source.len().expect("len") as usize];
    source.read_exact_at(&mut bytes, 0).expect("reading");
    bytes
}

#[tokio::test]
async fn a_purged_blob_cannot_be_decrypted_with_any_key_left() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(Timestamp::now());
    let config = Config::new(dir.path())
        .clock(clock.clone())
        .lifecycle(LifecycleConfig::default().purge_grace(Duration::ZERO));
    let store = Store::open(config).await.unwrap();
    let user = store
        .users()
        .create(NewUser::new("kavya", "kavya@example.in").consent(crate::ConsentKind::AudioStorage))
        .await
        .unwrap();
    let me = Actor::User(user.id);
    let pcm: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let file = store
        .files()
        .put_bytes(me, user.id, &pcm, PutOptions::content_type("audio/wav"))
        .await
        .unwrap();
    // Another blob of the same owner stays: its key must not open this one.
    let other = store
        .files()
        .put_bytes(
            me,
            user.id,
            b"another clip",
            PutOptions::content_type("audio/wav"),
        )
        .await
        .unwrap();
    let copy = read_blob(&store, file.blob);
    let first = decrypt_with_any_key(&store, &copy).expect("the store can read its own blob");
    assert_eq!(first, pcm[..first.len()]);

    store.files().delete(me, file.id).await.unwrap();
    let purge = store.lifecycle().run("purge", false).await.unwrap();
    assert_eq!(purge.count("blobs_destroyed"), 1, "{purge:?}");
    assert!(!store.blob_store().backend.exists(file.blob).unwrap());

    assert_eq!(decrypt_with_any_key(&store, &copy), None);

    // The other blob is still readable: the test's decryption works.
    assert_eq!(
        store.files().read(me, other.id).await.unwrap(),
        b"another clip"
    );
}
