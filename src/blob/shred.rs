//! Destroying retired blob files behind the purge, one batch at a time.
//!
//! A freed blob is unreadable from the commit that removes its row and
//! wrapped key (crypto-shredding); its file is then retired (moved out of
//! its address) and destroyed: overwritten once, synced, unlinked. On the
//! disks this store runs on, the destruction of a batch takes about as
//! long as the batch's transaction and retirement together (an unlink of
//! a synced file frees its blocks through the journal). A purge that has
//! more to do therefore hands a batch's destruction to a blocking task and
//! goes on with its next transaction while it runs: the two overlap, and
//! the backlog is bounded to one batch, because handing over waits for
//! the previous hand-over to finish. The purge's last pass, the orphan
//! collector, erasure and the store's close wait for it, so when a job
//! reports that it is done, its files are gone.

use std::sync::Arc;

use super::backend::{BlobBackend, OverwriteSync};
use crate::error::Error;

/// The destruction running behind the purge, if any.
#[derive(Default)]
pub(crate) struct Shredder {
    behind: tokio::sync::Mutex<Option<Destruction>>,
}

/// One destruction on a blocking task: how many files it destroyed.
type Destruction = tokio::task::JoinHandle<Result<u64, Error>>;

/// Starts destroying every retired blob of `backend`.
fn start(backend: &Arc<dyn BlobBackend>, sync: OverwriteSync) -> Destruction {
    let backend = Arc::clone(backend);
    tokio::task::spawn_blocking(move || backend.destroy_retired(sync))
}

impl Shredder {
    /// The slot, once the destruction running behind (if any) has
    /// finished; its failure is logged, and what it left stays retired
    /// for the next call.
    async fn free(&self) -> tokio::sync::MutexGuard<'_, Option<Destruction>> {
        let mut slot = self.behind.lock().await;
        if let Some(handle) = slot.take() {
            match handle.await {
                Ok(Ok(n)) => {
                    tracing::debug!(destroyed = n, "retired blobs destroyed behind the purge")
                }
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "could not destroy retired blobs; the next pass will")
                }
                Err(e) => {
                    tracing::error!(error = %e, "destroying retired blobs behind the purge failed")
                }
            }
        }
        slot
    }

    /// Destroys every retired blob now, after the destruction running
    /// behind (if any) has finished; how many this call destroyed.
    pub(crate) async fn now(
        &self,
        backend: &Arc<dyn BlobBackend>,
        sync: OverwriteSync,
    ) -> Result<u64, Error> {
        let _slot = self.free().await;
        start(backend, sync)
            .await
            .map_err(|e| Error::join("destroying retired blobs", e))?
    }

    /// Starts destroying every retired blob in the background, once the
    /// previous such start has finished (so at most one batch waits).
    pub(crate) async fn behind(&self, backend: &Arc<dyn BlobBackend>) {
        let mut slot = self.free().await;
        *slot = Some(start(backend, OverwriteSync::Together));
    }

    /// Waits for the destruction running behind, if any.
    pub(crate) async fn settle(&self) {
        drop(self.free().await);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blob::backend::local::LocalDir;
    use crate::types::BlobAddress;

    /// Stores and retires blobs `from..to` (one byte each) in `dir`.
    fn retire(dir: &LocalDir, tmp: &std::path::Path, from: u8, to: u8) {
        for i in from..to {
            let address = BlobAddress([i; 32]);
            let t = tmp.join(format!("{i}.part"));
            std::fs::write(&t, [i]).unwrap();
            dir.commit(&t, address).unwrap();
            assert!(dir.retire(address).unwrap());
        }
    }

    fn retired_files(root: &std::path::Path) -> usize {
        std::fs::read_dir(root.join("retired")).unwrap().count()
    }

    #[tokio::test]
    async fn destruction_behind_is_waited_for_by_the_next_call_and_by_settle() {
        let root = tempfile::tempdir().unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let blobs = root.path().join("blobs");
        let local = Arc::new(LocalDir::new(blobs.clone()));
        let backend: Arc<dyn BlobBackend> = local.clone();
        let shredder = Shredder::default();

        retire(&local, tmp.path(), 1, 4);
        shredder.behind(&backend).await;
        shredder.settle().await;
        assert_eq!(retired_files(&blobs), 0, "settle waits for the destruction");

        // A second hand-over waits for the first: no two run at once, and
        // `now` counts only what it destroyed itself.
        retire(&local, tmp.path(), 4, 9);
        shredder.behind(&backend).await;
        retire(&local, tmp.path(), 9, 11);
        shredder.behind(&backend).await;
        assert_eq!(
            shredder
                .now(&backend, OverwriteSync::Together)
                .await
                .unwrap(),
            0
        );
        assert_eq!(retired_files(&blobs), 0);

        // Each file synced by itself destroys as much.
        retire(&local, tmp.path(), 11, 14);
        assert_eq!(
            shredder
                .now(&backend, OverwriteSync::EachFile)
                .await
                .unwrap(),
            3
        );
        assert_eq!(retired_files(&blobs), 0);
        for i in 1..14 {
            assert!(!local.exists(BlobAddress([i; 32])).unwrap());
        }
    }
}
