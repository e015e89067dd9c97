//! Taking one complete file: read it once to hash it, look for an earlier
//! ingest of the same name and bytes (a restart between storing and
//! removing), store it, check that it did not change while it was read,
//! remove it; or move it to `failed/` with the reason beside it.

use std::ffi::{OsStr, OsString};
use std::io::{Read, Seek};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::engine::Engine;
use super::folder::{Snapshot, content_type_of};
use crate::blob::{Actor, ListFilter, PutOptions};
use crate::error::Error;
use crate::fsutil::{AtomicFile, sync_dir};
use crate::model::file::AudioFile;
use crate::types::{FileId, ListOptions};

/// The subfolder refused files are moved to.
pub(super) const FAILED: &str = "failed";

/// How taking one file ended.
#[derive(Debug)]
pub(super) enum Taken {
    /// Stored now; `removed` unless the source could not be removed.
    Stored { file: Box<AudioFile>, removed: bool },
    /// Found stored by an earlier ingest; the source removed unless not `removed`.
    AlreadyStored { id: FileId, removed: bool },
    /// Refused for good, for this reason: it goes to `failed/`.
    Refused(String),
    /// It changed (or was replaced) since it was found complete.
    Changed,
    /// It is gone (removed, or replaced by something not a regular file).
    Gone,
    /// A passing failure of the store: try again later.
    Deferred(Error),
    /// The test switch stopped the ingestor right after the put.
    #[cfg(feature = "fault-injection")]
    Halted,
}

/// The tag an ingested file carries: `ingest:` and the first 16 hex
/// digits of its SHA-256, to find an earlier ingest of the same bytes.
pub(super) fn tag_of(sha256: &[u8; 32]) -> String {
    format!("ingest:{}", hex::encode(&sha256[..8]))
}

/// Errors that are the file's (or its owner's) fault: trying again does
/// not help, so the file goes to `failed/`.
fn refuses_the_file(e: &Error) -> bool {
    matches!(
        e,
        Error::InvalidInput { .. }
            | Error::NotFound { .. }
            | Error::PermissionDenied { .. }
            | Error::Conflict { .. }
    )
}

/// What an error of the store means for the file; a closed store ends the
/// ingestor.
fn judge(e: Error) -> Result<Taken, Error> {
    match e {
        Error::Closed => Err(Error::Closed),
        e if refuses_the_file(&e) => Ok(Taken::Refused(e.to_string())),
        e => Ok(Taken::Deferred(e)),
    }
}

/// The file opened (never through a symlink), checked to be the one found
/// complete, and hashed; rewound for the put.
enum Opened {
    Ready(std::fs::File, [u8; 32]),
    Changed,
    Gone,
    Unreadable(Error),
}

fn open_and_hash(path: &Path, expected: Snapshot) -> Opened {
    let open = std::fs::File::options()
        .read(true)
        // No symlink, and no waiting on a FIFO swapped in since the scan.
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path);
    let mut file = match open {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Opened::Gone,
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => return Opened::Gone,
        Err(e) => return Opened::Unreadable(Error::io(format!("opening {}", path.display()), e)),
    };
    match file.metadata() {
        Ok(meta) if Snapshot::of(&meta) == Some(expected) => {}
        Ok(_) => return Opened::Changed,
        Err(e) => return Opened::Unreadable(Error::io(format!("reading {}", path.display()), e)),
    }
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let read = loop {
        match file.read(&mut buf) {
            Ok(0) => break file.rewind(),
            Ok(n) => hasher.update(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => break Err(e),
        }
    };
    match read {
        Ok(()) => Opened::Ready(file, hasher.finalize().into()),
        Err(e) => Opened::Unreadable(Error::io(format!("reading {}", path.display()), e)),
    }
}

impl Engine {
    /// Takes the file `name`, found complete with `expected`. An error
    /// only when the store is closed.
    pub(super) async fn take_one(&self, name: &OsStr, expected: Snapshot) -> Result<Taken, Error> {
        let Some(text) = name.to_str() else {
            return Ok(Taken::Refused(format!(
                "the file name {:?} is not valid UTF-8; rename the file to store it",
                name.to_string_lossy()
            )));
        };
        let path = self.root.join(name);
        let opened = {
            let path = path.clone();
            tokio::task::spawn_blocking(move || open_and_hash(&path, expected))
                .await
                .map_err(|e| Error::join("ingest read", e))?
        };
        let (file, sha256) = match opened {
            Opened::Ready(file, sha256) => (file, sha256),
            Opened::Changed => return Ok(Taken::Changed),
            Opened::Gone => return Ok(Taken::Gone),
            Opened::Unreadable(e) => return Ok(Taken::Refused(e.to_string())),
        };
        match self.already_stored(text, expected.len, &sha256).await {
            Ok(Some(id)) => {
                let removed = self.remove_source(&path, expected);
                return Ok(Taken::AlreadyStored { id, removed });
            }
            Ok(None) => {}
            Err(e) => return judge(e),
        }
        let actor = Actor::User(self.user);
        let options = PutOptions {
            content_type: content_type_of(text).to_string(),
            name: Some(text.to_string()),
            tags: vec![tag_of(&sha256)],
            ..Default::default()
        };
        let mut reader =
            tokio::io::BufReader::with_capacity(1 << 20, tokio::fs::File::from_std(file));
        let stored = match self
            .store
            .files()
            .put(actor, self.user, &mut reader, options)
            .await
        {
            Ok(f) => f,
            Err(e) => return judge(e),
        };
        let after = reader.get_ref().metadata().await.ok();
        if stored.sha256 != sha256 || after.as_ref().and_then(Snapshot::of) != Some(expected) {
            // Written to while it was read: the record may hold part of it.
            if let Err(e) = self.store.files().delete(actor, stored.id).await {
                tracing::warn!(file = %stored.id, error = %e, "could not delete a record of a file that changed while stored");
            }
            return Ok(Taken::Changed);
        }
        #[cfg(feature = "fault-injection")]
        if self.config.halt_after_put {
            return Ok(Taken::Halted);
        }
        let removed = self.remove_source(&path, expected);
        Ok(Taken::Stored {
            file: Box::new(stored),
            removed,
        })
    }

    /// A live file of the user stored by an earlier ingest with this name
    /// and these bytes (the tag narrows the search, the SHA-256 decides).
    async fn already_stored(
        &self,
        name: &str,
        len: u64,
        sha256: &[u8; 32],
    ) -> Result<Option<FileId>, Error> {
        let filter = ListFilter {
            tag: Some(tag_of(sha256)),
            ..Default::default()
        };
        let mut after = None;
        loop {
            let page = self
                .store
                .files()
                .list(
                    Actor::User(self.user),
                    self.user,
                    filter.clone(),
                    ListOptions { limit: 1000, after },
                )
                .await?;
            let hit = page.items.iter().find(|f| {
                f.name.as_deref() == Some(name) && f.plain_bytes == len && f.sha256 == *sha256
            });
            if let Some(f) = hit {
                return Ok(Some(f.id));
            }
            match page.next {
                Some(next) => after = Some(next),
                None => return Ok(None),
            }
        }
    }

    /// Removes the stored file from the folder if it is still the file
    /// that was stored (not one written under its name since). Whether
    /// the folder no longer holds it.
    fn remove_source(&self, path: &Path, stored: Snapshot) -> bool {
        match Snapshot::at(path) {
            Ok(Some(now)) if now == stored => {}
            Ok(None) => return true,
            Ok(Some(_)) => {
                tracing::info!(path = %path.display(), "a new file took the name of a stored one; it is left for the next pass");
                return true;
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot check a stored file before removing it");
                return false;
            }
        }
        match std::fs::remove_file(path) {
            Ok(()) => true,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "stored, but cannot remove it from the folder");
                false
            }
        }
    }

    /// Moves `name` to `failed/` (under the first free name of `name`,
    /// `name.1`, `name.2`, ...) with `<that name>.error` beside it holding
    /// `reason`; the reason is written first, so a crash leaves at worst a
    /// stale `.error` that the next failure of that name replaces.
    pub(super) async fn move_to_failed(
        &self,
        name: &OsStr,
        reason: &str,
    ) -> Result<PathBuf, Error> {
        let failed = self.root.join(FAILED);
        ensure_failed_dir(&failed)?;
        let src = self.root.join(name);
        for n in 0..1000u32 {
            let mut slot = name.to_os_string();
            if n > 0 {
                slot.push(format!(".{n}"));
            }
            let dest = failed.join(&slot);
            match std::fs::symlink_metadata(&dest) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Ok(_) => continue,
                Err(e) => return Err(Error::io(format!("checking {}", dest.display()), e)),
            }
            write_reason(&failed.join(error_name(&slot)), reason).await?;
            // A hard link never replaces what is there; rename would.
            match std::fs::hard_link(&src, &dest) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => {
                    return Err(Error::io(
                        format!("moving {} to {}", src.display(), dest.display()),
                        e,
                    ));
                }
            }
            std::fs::remove_file(&src)
                .map_err(|e| Error::io(format!("removing {}", src.display()), e))?;
            sync_dir(&failed)?;
            sync_dir(&self.root)?;
            return Ok(dest);
        }
        Err(Error::io(
            format!("moving {} to {}", src.display(), failed.display()),
            std::io::Error::other("no free name: 1000 failed files of that name"),
        ))
    }
}

fn error_name(slot: &OsStr) -> OsString {
    let mut name = slot.to_os_string();
    name.push(".error");
    name
}

/// `failed/`, created if missing; refused if it is not a directory (a
/// symlink included).
fn ensure_failed_dir(failed: &Path) -> Result<(), Error> {
    match std::fs::symlink_metadata(failed) {
        Ok(m) if m.is_dir() => return Ok(()),
        Ok(_) => {
            return Err(Error::io(
                format!("using {}", failed.display()),
                std::io::Error::other("it is not a directory"),
            ));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io(format!("checking {}", failed.display()), e)),
    }
    match std::fs::create_dir(failed) {
        Ok(()) => failed.parent().map_or(Ok(()), sync_dir),
        // Made meanwhile by someone else: fine if it is a directory.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            match std::fs::symlink_metadata(failed) {
                Ok(m) if m.is_dir() => Ok(()),
                _ => Err(Error::io(format!("creating {}", failed.display()), e)),
            }
        }
        Err(e) => Err(Error::io(format!("creating {}", failed.display()), e)),
    }
}

/// Writes `reason` (and a line feed) to `dest` durably, replacing it.
async fn write_reason(dest: &Path, reason: &str) -> Result<(), Error> {
    let mut file = AtomicFile::create(dest).await?;
    file.write_all(format!("{reason}\n").as_bytes())
        .await
        .map_err(|e| Error::io(format!("writing {}", dest.display()), e))?;
    file.commit().await
}
