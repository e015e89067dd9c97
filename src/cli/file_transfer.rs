//! `bvstore file put` and `file get`: a file's bytes between the local
//! file system (or stdout) and the store, streamed with a progress bar on a
//! terminal. Kept apart from `file` because of what goes with it: content
//! types from extensions, byte ranges, the atomic write of `--out` and the
//! guard that keeps it off the store's own files.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use bharatvoice_store::{Actor, AtomicFile, Compression, Error, FileId, PutOptions, Store};
use clap::Args;
use tokio::io::AsyncWriteExt;

use super::file::{actor, file_line};
use super::user::resolve;
use super::{Out, Outcome, clean, done};

#[derive(Debug, Args)]
pub(crate) struct PutArgs {
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
}

#[derive(Debug, Args)]
pub(crate) struct GetArgs {
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
}

/// `bvstore file put`.
pub(super) async fn put(store: &Store, args: &PutArgs, out: &Out) -> Outcome {
    let path = &args.path;
    let owner = resolve(store, &args.user).await?.id;
    let input = tokio::fs::File::open(path)
        .await
        .map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
    let size = input.metadata().await.map(|m| m.len()).unwrap_or(0);
    let options = PutOptions {
        encrypt: !args.no_encrypt,
        compression: args.compress.parse::<Compression>()?,
        content_type: args
            .content_type
            .clone()
            .unwrap_or_else(|| content_type_of(path).to_string()),
        name: path.file_name().map(|n| n.to_string_lossy().into_owned()),
        retention_days: args.retention_days,
        tags: args.tags.clone(),
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
    done(out.emit(&file, || file_line(&file)))
}

/// `bvstore file get`: to stdout with `--out -` (and nothing else printed),
/// else to the path, which keeps what it held unless the read completes.
pub(super) async fn get(store: &Store, args: &GetArgs, out: &Out) -> Outcome {
    let dest = &args.out;
    let who = actor(store, &args.user).await?;
    let id: FileId = args.id.parse()?;
    let range = args.range.as_deref().map(parse_range).transpose()?;
    if dest == "-" {
        copy_out(store, who, id, range, &mut tokio::io::stdout()).await?;
        return Ok(ExitCode::SUCCESS);
    }
    refuse_inside_data_dir(&store.config().data_dir, dest)?;
    // Written beside `dest` and renamed onto it only when complete:
    // on any failure `dest` keeps what it held.
    let mut file = AtomicFile::create(dest).await?;
    let written = copy_out(store, who, id, range, &mut file).await?;
    file.commit().await?;
    let doc = serde_json::json!({ "file": id, "bytes": written, "out": dest });
    done(out.emit(&doc, || format!("wrote {written} bytes to {}", clean(dest))))
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
