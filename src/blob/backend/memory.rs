//! Blobs in memory: a second backend for tests, proving that nothing above
//! the seam depends on where blobs live.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;

use super::{BlobBackend, BlobSource, StoredBlob};
use crate::error::Error;
use crate::types::{BlobAddress, Timestamp};

/// Blobs in a map.
#[derive(Default)]
pub(crate) struct Memory {
    blobs: Mutex<BTreeMap<[u8; 32], Vec<u8>>>,
}

impl Memory {
    fn map(&self) -> std::sync::MutexGuard<'_, BTreeMap<[u8; 32], Vec<u8>>> {
        self.blobs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How many blobs it holds.
    pub(crate) fn count(&self) -> usize {
        self.map().len()
    }
}

impl BlobBackend for Memory {
    fn name(&self) -> &'static str {
        "memory"
    }

    fn commit(&self, tmp: &Path, address: BlobAddress) -> Result<(), Error> {
        let bytes = std::fs::read(tmp).map_err(|e| Error::io("reading a temporary blob", e));
        let _ = std::fs::remove_file(tmp);
        self.map().insert(address.0, bytes?);
        Ok(())
    }

    fn open(&self, address: BlobAddress) -> Result<Option<Box<dyn BlobSource>>, Error> {
        Ok(self
            .map()
            .get(&address.0)
            .map(|b| Box::new(b.clone()) as Box<dyn BlobSource>))
    }

    fn exists(&self, address: BlobAddress) -> Result<bool, Error> {
        Ok(self.map().contains_key(&address.0))
    }

    fn delete(&self, address: BlobAddress) -> Result<bool, Error> {
        Ok(self.map().remove(&address.0).is_some())
    }

    fn list(&self, after: Option<BlobAddress>, limit: usize) -> Result<Vec<StoredBlob>, Error> {
        let start = after.map_or(std::ops::Bound::Unbounded, |a| {
            std::ops::Bound::Excluded(a.0)
        });
        Ok(self
            .map()
            .range((start, std::ops::Bound::Unbounded))
            .take(limit)
            .map(|(a, b)| StoredBlob {
                address: BlobAddress(*a),
                bytes: b.len() as u64,
                modified: Timestamp::from_micros(0),
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::Memory;
    use crate::blob::backend::BlobBackend;
    use crate::blob::{BlobStore, files::Files};
    use crate::db::{Db, users::Users};
    use crate::{Actor, Config, NewUser, PutOptions};

    /// Everything above the seam works unchanged over another backend.
    #[tokio::test]
    async fn files_work_over_a_second_backend() {
        let dir = tempfile::tempdir().unwrap();
        let config = Config::new(dir.path()).blob_chunk_bytes(4096);
        crate::datadir::prepare(&config).unwrap();
        let db = Db::open(&config).unwrap();
        let mut blobs = BlobStore::open(&db, &config).await.unwrap();
        let memory = Arc::new(Memory::default());
        blobs.backend = memory.clone();
        let files = Files {
            db: &db,
            blobs: &blobs,
        };
        let user = Users { db: &db }
            .create(NewUser::new("mem", "mem@example.in").consent(crate::ConsentKind::AudioStorage))
            .await
            .unwrap();
        let me = Actor::User(user.id);
        let data: Vec<u8> = (0..50_000u32).map(|i| (i % 251) as u8).collect();
        let opts = PutOptions::content_type("audio/wav");
        let f = files
            .put_bytes(me, user.id, &data, opts.clone())
            .await
            .unwrap();
        let again = files.put_bytes(me, user.id, &data, opts).await.unwrap();
        assert_eq!(again.blob, f.blob, "deduplicated");
        assert_eq!(memory.count(), 1, "one blob, in memory");
        assert_eq!(files.read(me, f.id).await.unwrap(), data);
        assert_eq!(
            files.read_range(me, f.id, 10_000, 9_000).await.unwrap(),
            &data[10_000..19_000]
        );
        assert_eq!(files.verify(me, f.id).await.unwrap().plain_bytes, 50_000);
        let on_disk = walk(&dir.path().join("blobs"));
        assert!(on_disk.is_empty(), "nothing under blobs/: {on_disk:?}");
        // A blob the backend lost is reported as such.
        assert!(memory.delete(f.blob).unwrap());
        assert!(matches!(
            files.read(me, f.id).await,
            Err(crate::Error::Integrity { .. })
        ));
        db.shutdown();
    }

    fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                out.extend(walk(&e.path()));
            } else {
                out.push(e.path());
            }
        }
        out
    }
}
