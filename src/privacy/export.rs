//! Export of everything the store holds about a user, decrypted, to a
//! directory or a `.tar.zst` archive: the right of access of DPDP s.11
//! (and the portability a user asks for when they leave).
//!
//! An export holds, under names made from ids only (never from a user's
//! strings):
//!
//! | entry | what |
//! |---|---|
//! | `user.json` | the account (no password hash, no credential of any kind) |
//! | `profile.json` | the profile, if the user has one |
//! | `sessions/<session-id>.json` | each live session with the turns it keeps |
//! | `files/<file-id>.<ext>` | each live file the user owns, decrypted (`ext` from its content type, else `bin`) |
//! | `files/<file-id>.json` | that file's metadata |
//! | `manifest.json` | written last: format, user, time, and every entry above with its size and SHA-256 |
//!
//! The async half here reads records and streams each file from its
//! [`FileReader`](crate::FileReader); the blocking half
//! (`export_sink`) writes, hashes and renames, fed through a bounded
//! channel, so memory stays bounded whatever the file sizes.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;
use tokio::sync::mpsc::Sender;
use tracing::instrument;

use crate::audit::{Entry, SYSTEM};
use crate::blob::Actor;
use crate::blob::files::Files;
use crate::db::erasures::{files_of, sessions_of};
use crate::error::Error;
use crate::model::file::AudioFile;
use crate::model::user::{User, UserStatus};
use crate::ops::backup::Progress;
use crate::privacy::Privacy;
use crate::privacy::export_sink::{Form, Msg, write_export};
use crate::types::{FileId, SessionId, Timestamp, UserId};

/// What an export wrote ([`Privacy::export_user`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExportReport {
    /// Whose data.
    pub user: UserId,
    /// Files exported (each with its metadata entry).
    pub files: u64,
    /// Sessions exported.
    pub sessions: u64,
    /// Bytes of every entry but the manifest.
    pub bytes: u64,
    /// Entries listed in the manifest (the manifest itself not counted).
    pub entries: u64,
    /// How long the export took, in microseconds.
    pub took_us: u64,
    /// Where the export is (the destination asked for).
    pub path: PathBuf,
}

/// `user.json`: the account without anything secret.
#[derive(Serialize)]
struct UserEntry<'a> {
    id: UserId,
    username: &'a str,
    email: &'a str,
    display_name: Option<&'a str>,
    status: UserStatus,
    last_login_at: Option<Timestamp>,
    created_at: Timestamp,
    updated_at: Timestamp,
}

/// `files/<id>.json`: a file's metadata, as the user knows it.
#[derive(Serialize)]
struct FileEntry<'a> {
    id: FileId,
    /// The entry holding the bytes.
    entry: &'a str,
    name: Option<&'a str>,
    content_type: &'a str,
    bytes: u64,
    #[serde(with = "crate::types::hex32")]
    sha256: [u8; 32],
    session_id: Option<SessionId>,
    tags: &'a [String],
    expires_at: Option<Timestamp>,
    access_count: u64,
    last_read_at: Option<Timestamp>,
    created_at: Timestamp,
    updated_at: Timestamp,
}

/// Why feeding the writer stopped.
enum Stop {
    /// The writer went away: its own result says why.
    Writer,
    /// Reading failed.
    Read(Error),
}

impl From<Error> for Stop {
    fn from(e: Error) -> Self {
        Stop::Read(e)
    }
}

/// The file-name extension of a content type; `bin` for any not listed.
pub(crate) fn ext_of(content_type: &str) -> &'static str {
    let base = content_type.split(';').next().unwrap_or("").trim();
    match base.to_ascii_lowercase().as_str() {
        "audio/wav" | "audio/wave" | "audio/x-wav" | "audio/vnd.wave" => "wav",
        "audio/mpeg" | "audio/mp3" => "mp3",
        "audio/ogg" => "ogg",
        "audio/opus" => "opus",
        "audio/flac" | "audio/x-flac" => "flac",
        "audio/webm" => "webm",
        "audio/mp4" | "audio/m4a" | "audio/x-m4a" => "m4a",
        "audio/aac" => "aac",
        "audio/amr" => "amr",
        "audio/l16" | "audio/pcm" => "pcm",
        "text/plain" => "txt",
        "application/json" => "json",
        _ => "bin",
    }
}

fn json<T: Serialize>(value: &T, what: &str) -> Result<Vec<u8>, Error> {
    serde_json::to_vec_pretty(value).map_err(|e| Error::io(format!("writing {what}"), e.into()))
}

async fn send(tx: &Sender<Msg>, msg: Msg) -> Result<(), Stop> {
    tx.send(msg).await.map_err(|_| Stop::Writer)
}

async fn send_bytes(tx: &Sender<Msg>, name: String, bytes: Vec<u8>) -> Result<(), Stop> {
    let size = bytes.len() as u64;
    send(tx, Msg::Begin { name, size }).await?;
    send(tx, Msg::Data(bytes)).await?;
    send(tx, Msg::End).await
}

impl Privacy<'_> {
    /// Exports everything the store holds about `user` to `dest`: a
    /// `.tar.zst` archive when its name ends so, else a directory (see the
    /// module doc for what it holds). Written under a temporary name
    /// beside `dest` and renamed onto it at the end: a failed export
    /// leaves nothing at `dest`. A `dest` that exists (a file, or a
    /// directory that is not empty) is refused with
    /// [`Error::InvalidInput`] (field `"export destination"`); an unknown,
    /// deleted or erased user is [`Error::NotFound`]. The export is
    /// audited as `user.export`.
    ///
    /// ```
    /// # use bharatvoice_store::*;
    /// # #[tokio::main] async fn main() -> Result<(), Error> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = Store::open(Config::new(dir.path().join("data"))).await?;
    /// let user = store.users().create(NewUser::new("meera", "meera@example.in").consent(ConsentKind::AudioStorage)).await?;
    /// store.files().put_bytes(Actor::User(user.id), user.id, b"RIFF....", PutOptions::content_type("audio/wav")).await?;
    /// let report = store.privacy().export_user(user.id, dir.path().join("meera.tar.zst")).await?;
    /// assert_eq!(report.files, 1);
    /// let again = store.privacy().export_user(user.id, dir.path().join("meera.tar.zst")).await;
    /// assert!(matches!(again, Err(Error::InvalidInput { field: "export destination", .. })));
    /// # Ok(()) }
    /// ```
    pub async fn export_user(
        &self,
        user: UserId,
        dest: impl AsRef<Path>,
    ) -> Result<ExportReport, Error> {
        // Counted once, as `privacy.export_user`, by the call below.
        self.export_user_with_progress(user, dest, None).await
    }

    /// [`export_user`](Self::export_user), telling `progress` the bytes of
    /// the user's files exported so far and in all as it goes (what a
    /// progress bar needs; the small JSON entries are not counted).
    #[instrument(skip(self, user, dest, progress), fields(user = %user))]
    pub async fn export_user_with_progress(
        &self,
        user: UserId,
        dest: impl AsRef<Path>,
        progress: Option<Progress>,
    ) -> Result<ExportReport, Error> {
        crate::telemetry::observe(&self.db.telemetry, crate::telemetry::op_key!("privacy.export_user"), async {
            let started = Instant::now();
            let dest = dest.as_ref().to_path_buf();
            let account = crate::db::users::Users { db: self.db }.get(user)?;
            let now = self.db.now();
            let (tx, rx) = tokio::sync::mpsc::channel(4);
            let (form, to) = (Form::of(&dest), dest.clone());
            let writer = tokio::task::spawn_blocking(move || write_export(form, to, user, now, rx));
            let fed = self.feed(&account, &tx, progress.as_ref()).await;
            if fed.is_ok() && tx.send(Msg::Commit).await.is_err() {
                tracing::debug!("the export writer stopped before the commit");
            }
            drop(tx);
            let written = writer
                .await
                .map_err(|e| Error::join("writing an export", e))?;
            let outcome = match (fed, written) {
                (Err(Stop::Read(e)), _) | (_, Err(e)) => Err(e),
                (Err(Stop::Writer), Ok(_)) => Err(Error::io(
                    "writing an export",
                    std::io::Error::other("the writer stopped"),
                )),
                (Ok((files, sessions)), Ok(w)) => Ok(ExportReport {
                    user,
                    files,
                    sessions,
                    bytes: w.entries.iter().map(|e| e.size).sum(),
                    entries: w.entries.len() as u64,
                    took_us: u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
                    path: dest,
                }),
            };
            match &outcome {
                Ok(r) => {
                    // The export is in place; an export the log cannot record
                    // is still reported as an error.
                    self.audit_export(user, "ok").await?;
                    tracing::info!(user = %user, files = r.files, bytes = r.bytes, "user exported");
                }
                Err(e) => {
                    if let Err(a) = self.audit_export(user, "failed").await {
                        tracing::warn!(user = %user, error = %a, "could not audit a failed export");
                    }
                    tracing::warn!(user = %user, error = %e, "export failed");
                }
            }
            outcome
        })
        .await
    }

    /// Appends the `user.export` audit entry (not on a read-only store,
    /// which cannot commit one).
    async fn audit_export(&self, user: UserId, outcome: &'static str) -> Result<(), Error> {
        if self.db.is_read_only() {
            return Ok(());
        }
        let now = self.db.now();
        self.db
            .write_audited(
                |_| Ok(()),
                move |_| {
                    vec![
                        Entry::new(now, SYSTEM, "user.export", format!("user:{user}"))
                            .outcome(outcome),
                    ]
                },
            )
            .await
    }

    /// Sends every entry of the export but the manifest; returns how many
    /// files and sessions went.
    async fn feed(
        &self,
        user: &User,
        tx: &Sender<Msg>,
        progress: Option<&Progress>,
    ) -> Result<(u64, u64), Stop> {
        let id = user.id;
        let entry = UserEntry {
            id,
            username: &user.username,
            email: &user.email,
            display_name: user.display_name.as_deref(),
            status: user.status,
            last_login_at: user.last_login_at,
            created_at: user.created_at,
            updated_at: user.updated_at,
        };
        send_bytes(tx, "user.json".into(), json(&entry, "user.json")?).await?;
        match (crate::db::profiles::Profiles { db: self.db }).get(id) {
            Ok(p) => send_bytes(tx, "profile.json".into(), json(&p, "profile.json")?).await?,
            Err(Error::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        let sessions = self.feed_sessions(id, tx).await?;
        let files = self.feed_files(id, tx, progress).await?;
        Ok((files, sessions))
    }

    async fn feed_sessions(&self, user: UserId, tx: &Sender<Msg>) -> Result<u64, Stop> {
        let ids = self
            .db
            .scan(move |txn| sessions_of(txn, user, usize::MAX))
            .await?;
        let view = crate::db::sessions::Sessions { db: self.db };
        let mut n = 0;
        for id in ids {
            let s = match view.get(id) {
                Ok(s) => s,
                // Deleted since the listing (or soft-deleted): not exported.
                Err(Error::NotFound { .. }) => continue,
                Err(e) => return Err(e.into()),
            };
            let name = format!("sessions/{id}.json");
            send_bytes(tx, name, json(&s, "a session")?).await?;
            n += 1;
        }
        Ok(n)
    }

    async fn feed_files(
        &self,
        user: UserId,
        tx: &Sender<Msg>,
        progress: Option<&Progress>,
    ) -> Result<u64, Stop> {
        let records: Vec<AudioFile> = self
            .db
            .scan(move |txn| {
                let mut out = Vec::new();
                for id in files_of(txn, user, usize::MAX)? {
                    if let Some(f) = crate::db::files::get(txn, id)?
                        && f.deleted_at.is_none()
                    {
                        out.push(f);
                    }
                }
                Ok(out)
            })
            .await?;
        let files = Files {
            db: self.db,
            blobs: self.blobs,
        };
        let total = records
            .iter()
            .fold(0u64, |sum, f| sum.saturating_add(f.plain_bytes));
        let mut done = 0;
        let mut n = 0;
        for f in records {
            let mut reader = match files.open(Actor::System, f.id).await {
                Ok(r) => r,
                // Deleted since the listing: not exported.
                Err(Error::NotFound { .. }) => continue,
                Err(e) => return Err(e.into()),
            };
            let name = format!("files/{}.{}", f.id, ext_of(&f.content_type));
            send(
                tx,
                Msg::Begin {
                    name: name.clone(),
                    size: f.plain_bytes,
                },
            )
            .await?;
            while let Some(piece) = reader.next_chunk().await {
                let piece = piece?;
                done += piece.len() as u64;
                send(tx, Msg::Data(piece)).await?;
                if let Some(p) = progress {
                    p.tell(done, total);
                }
            }
            send(tx, Msg::End).await?;
            let meta = FileEntry {
                id: f.id,
                entry: &name,
                name: f.name.as_deref(),
                content_type: &f.content_type,
                bytes: f.plain_bytes,
                sha256: f.sha256,
                session_id: f.session_id,
                tags: &f.tags,
                expires_at: f.expires_at,
                access_count: f.access_count,
                last_read_at: f.last_read_at,
                created_at: f.created_at,
                updated_at: f.updated_at,
            };
            send_bytes(
                tx,
                format!("files/{}.json", f.id),
                json(&meta, "file metadata")?,
            )
            .await?;
            n += 1;
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::ext_of;

    #[test]
    fn extensions_come_from_a_fixed_list() {
        assert_eq!(ext_of("audio/wav"), "wav");
        assert_eq!(ext_of("Audio/X-WAV; rate=16000"), "wav");
        assert_eq!(ext_of("audio/ogg"), "ogg");
        assert_eq!(ext_of("audio/../../etc"), "bin");
        assert_eq!(ext_of("application/x-unknown"), "bin");
        assert_eq!(ext_of(""), "bin");
    }
}
