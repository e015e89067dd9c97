//! `bvstore file ...`: store, read, list and share files.

use std::io::IsTerminal;
use std::path::PathBuf;

use bharatvoice_store::{
    Actor, AtomicFile, AudioFile, Compression, Cursor, Error, FileId, ListFilter, ListOptions,
    PutOptions, Store,
};
use clap::Subcommand;
use tokio::io::AsyncWriteExt;

use super::user::resolve;
use super::{Cli, Out, clean, open};

#[derive(Debug, Subcommand)]
pub(crate) enum FileCommand {
    /// Store a file for a user; prints its record.
    Put {
        /// The file to store.
        path: PathBuf,
        /// Owner (id or username).
        #[arg(long)]
        user: String,
        /// Store it unencrypted.
        #[arg(long)]
        no_encrypt: bool,
        /// auto, off, or a zstd level 1-19.
        #[arg(long, default_value = "auto")]
        compress: String,
        /// Days to keep it (default: the user's profile, else the store's).
        #[arg(long)]
        retention_days: Option<u32>,
        /// MIME type (default: from the extension).
        #[arg(long)]
        content_type: Option<String>,
        /// Free tags.
        #[arg(long = "tag")]
        tags: Vec<String>,
    },
    /// Write a file's bytes to a path or stdout (`-`).
    Get {
        /// File id.
        id: String,
        /// Who asks (id or username).
        #[arg(long)]
        user: String,
        /// Where to write (`-` for stdout).
        #[arg(long)]
        out: String,
        /// Only OFFSET:LEN bytes.
        #[arg(long)]
        range: Option<String>,
    },
    /// List a user's files, newest first.
    Ls {
        /// Owner (id or username).
        #[arg(long)]
        user: String,
        /// Only this content type.
        #[arg(long)]
        content_type: Option<String>,
        /// Only files with this tag.
        #[arg(long)]
        tag: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Continue after this cursor.
        #[arg(long)]
        after: Option<String>,
    },
    /// Soft-delete a file.
    Rm {
        /// File id.
        id: String,
        /// Who asks.
        #[arg(long)]
        user: String,
    },
    /// Restore a soft-deleted file.
    Restore {
        /// File id.
        id: String,
        /// Who asks.
        #[arg(long)]
        user: String,
    },
    /// Let another user read a file.
    Grant {
        /// File id.
        id: String,
        /// Who asks (the owner).
        #[arg(long)]
        user: String,
        /// Who may read it.
        #[arg(long)]
        to: String,
    },
    /// Take back a grant.
    Revoke {
        /// File id.
        id: String,
        /// Who asks (the owner).
        #[arg(long)]
        user: String,
        /// Whose grant to take back.
        #[arg(long)]
        from: String,
    },
    /// Authenticate every chunk and check the SHA-256 (as the system).
    Verify {
        /// File id.
        id: String,
    },
}

fn content_type_of(path: &std::path::Path) -> &'static str {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("wav") => "audio/wav",
        Some("opus") | Some("ogg") => "audio/ogg",
        Some("mp3") => "audio/mpeg",
        Some("flac") => "audio/flac",
        Some("m4a") | Some("aac") => "audio/mp4",
        Some("json") => "application/json",
        Some("txt") => "text/plain",
        _ => "application/octet-stream",
    }
}

fn file_line(f: &AudioFile) -> String {
    format!(
        "{}  {:>12} B  {:<24} {:<20} key v{}  {}",
        f.id,
        f.plain_bytes,
        clean(&f.content_type),
        clean(f.name.as_deref().unwrap_or("-")),
        f.key_version,
        f.created_at
    )
}

fn progress_bar(total: u64, verb: &'static str) -> Option<indicatif::ProgressBar> {
    if !std::io::stderr().is_terminal() || total < (8 << 20) {
        return None;
    }
    let bar = indicatif::ProgressBar::new(total);
    let style = indicatif::ProgressStyle::with_template(
        "{msg} {bar:40} {bytes}/{total_bytes} {bytes_per_sec} {eta}",
    )
    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
    bar.set_style(style);
    bar.set_message(verb);
    Some(bar)
}

async fn actor(store: &Store, who: &str) -> Result<Actor, Error> {
    Ok(Actor::User(resolve(store, who).await?.id))
}

pub(crate) async fn run(cli: &Cli, cmd: &FileCommand, out: &Out) -> Result<(), Error> {
    let store = open(cli).await?;
    match cmd {
        FileCommand::Put {
            path,
            user,
            no_encrypt,
            compress,
            retention_days,
            content_type,
            tags,
        } => {
            let owner = resolve(&store, user).await?.id;
            let input = tokio::fs::File::open(path)
                .await
                .map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
            let size = input.metadata().await.map(|m| m.len()).unwrap_or(0);
            let options = PutOptions {
                encrypt: !no_encrypt,
                compression: compress.parse::<Compression>()?,
                content_type: content_type
                    .clone()
                    .unwrap_or_else(|| content_type_of(path).to_string()),
                name: path.file_name().map(|n| n.to_string_lossy().into_owned()),
                retention_days: *retention_days,
                tags: tags.clone(),
                ..Default::default()
            };
            let bar = progress_bar(size, "storing");
            let tick = |n: u64| {
                if let Some(b) = &bar {
                    b.set_position(n);
                }
            };
            let reader = tokio::io::BufReader::with_capacity(1 << 20, input);
            let file = store
                .files()
                .put_with_progress(Actor::User(owner), owner, reader, options, &tick)
                .await?;
            if let Some(b) = bar {
                b.finish_and_clear();
            }
            out.emit(&file, || file_line(&file))
        }
        FileCommand::Get {
            id,
            user,
            out: dest,
            range,
        } => {
            let who = actor(&store, user).await?;
            let id: FileId = id.parse()?;
            let range = range.as_deref().map(parse_range).transpose()?;
            if dest == "-" {
                copy_out(&store, who, id, range, &mut tokio::io::stdout()).await?;
                return Ok(());
            }
            refuse_inside_data_dir(&store.config().data_dir, dest)?;
            // Written beside `dest` and renamed onto it only when complete:
            // on any failure `dest` keeps what it held.
            let mut file = AtomicFile::create(dest).await?;
            let written = copy_out(&store, who, id, range, &mut file).await?;
            file.commit().await?;
            let doc = serde_json::json!({ "file": id, "bytes": written, "out": dest });
            out.emit(&doc, || format!("wrote {written} bytes to {}", clean(dest)))
        }
        FileCommand::Ls {
            user,
            content_type,
            tag,
            limit,
            after,
        } => {
            let owner = resolve(&store, user).await?.id;
            let after = after.as_deref().map(str::parse::<Cursor>).transpose()?;
            let filter = ListFilter {
                content_type: content_type.clone(),
                tag: tag.clone(),
                ..Default::default()
            };
            let page = store
                .files()
                .list(
                    Actor::User(owner),
                    owner,
                    filter,
                    ListOptions {
                        limit: *limit,
                        after,
                    },
                )
                .await?;
            out.emit(&page, || {
                let mut lines: Vec<String> = page.items.iter().map(file_line).collect();
                if let Some(next) = page.next {
                    lines.push(format!("more: --after {next}"));
                }
                if lines.is_empty() {
                    lines.push("no files".into());
                }
                lines.join("\n")
            })
        }
        FileCommand::Rm { id, user } => {
            let f = store
                .files()
                .delete(actor(&store, user).await?, id.parse()?)
                .await?;
            out.emit(&f, || format!("deleted file {}", f.id))
        }
        FileCommand::Restore { id, user } => {
            let f = store
                .files()
                .restore(actor(&store, user).await?, id.parse()?)
                .await?;
            out.emit(&f, || format!("restored file {}", f.id))
        }
        FileCommand::Grant { id, user, to } => {
            let to = resolve(&store, to).await?;
            store
                .files()
                .grant(actor(&store, user).await?, id.parse()?, to.id)
                .await?;
            let doc = serde_json::json!({ "file": id, "granted_to": to.id });
            out.emit(&doc, || {
                format!("{} may now read file {}", clean(&to.username), clean(id))
            })
        }
        FileCommand::Revoke { id, user, from } => {
            let from = resolve(&store, from).await?;
            store
                .files()
                .revoke(actor(&store, user).await?, id.parse()?, from.id)
                .await?;
            let doc = serde_json::json!({ "file": id, "revoked_from": from.id });
            out.emit(&doc, || {
                format!(
                    "{} may no longer read file {}",
                    clean(&from.username),
                    clean(id)
                )
            })
        }
        FileCommand::Verify { id } => {
            let report = store.files().verify(Actor::System, id.parse()?).await?;
            out.emit(&report, || {
                format!(
                    "file {} ok: {} chunks, {} bytes authenticated",
                    report.file, report.chunks, report.plain_bytes
                )
            })
        }
    }
}

/// Writes a file's bytes (or `range` of them) to `sink`; returns how many.
async fn copy_out<W: tokio::io::AsyncWrite + Unpin>(
    store: &Store,
    who: Actor,
    id: FileId,
    range: Option<(u64, u64)>,
    sink: &mut W,
) -> Result<u64, Error> {
    let mut sink = tokio::io::BufWriter::with_capacity(1 << 20, sink);
    let write_err = |e| Error::io("writing the output", e);
    // Ranges stream like whole reads: memory stays bounded.
    let (mut reader, total) = match range {
        Some((offset, len)) => {
            let size = store.files().stat(who, id).await?.plain_bytes;
            let reader = store.files().open_range(who, id, offset, len).await?;
            (reader, len.min(size.saturating_sub(offset)))
        }
        None => {
            let total = store.files().stat(who, id).await?.plain_bytes;
            (store.files().open(who, id).await?, total)
        }
    };
    let bar = progress_bar(total, "reading");
    let mut written = 0u64;
    while let Some(piece) = reader.next_chunk().await {
        let piece = piece?;
        sink.write_all(&piece).await.map_err(write_err)?;
        written += piece.len() as u64;
        if let Some(b) = &bar {
            b.set_position(written);
        }
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    sink.flush().await.map_err(write_err)?;
    Ok(written)
}

/// A file read out must not land on the store's own files (`--out
/// store.redb` would replace the database with audio).
fn refuse_inside_data_dir(data_dir: &std::path::Path, dest: &str) -> Result<(), Error> {
    let dest = std::path::Path::new(dest);
    let parent = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => std::path::Path::new("."),
    };
    let (Ok(parent), Ok(data)) = (parent.canonicalize(), data_dir.canonicalize()) else {
        // A directory that does not exist cannot be the data directory;
        // creating the file there fails with its own error.
        return Ok(());
    };
    if parent.starts_with(&data) {
        return Err(Error::InvalidInput {
            field: "out",
            reason: format!(
                "{} is inside the data directory {}; write the file elsewhere",
                clean(&dest.display().to_string()),
                clean(&data.display().to_string())
            ),
        });
    }
    Ok(())
}

fn parse_range(r: &str) -> Result<(u64, u64), Error> {
    // The text is not echoed: it may be long or hold control characters.
    let bad = || Error::InvalidInput {
        field: "range",
        reason: "expected OFFSET:LEN in bytes, e.g. 1000:64".into(),
    };
    let (a, b) = r.split_once(':').ok_or_else(bad)?;
    Ok((
        a.trim().parse().map_err(|_| bad())?,
        b.trim().parse().map_err(|_| bad())?,
    ))
}
