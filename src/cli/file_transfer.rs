//! `bvstore file put` and `file get`: a file's bytes between the local
//! file system (or stdin and stdout) and the store, streamed with a
//! progress bar on a terminal. Kept apart from `file` because of what goes with it: content
//! types from extensions, byte ranges, the atomic write of `--out` and the
//! guard that keeps it off the store's own files.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use bharatvoice_store::{Actor, AtomicFile, Compression, Error, FileId, PutOptions, Store};
use clap::Args;
use tokio::io::AsyncWriteExt;

use super::file::{actor, file_text};
use super::progress::Bar;
use super::user::resolve;
use super::{Out, Outcome, clean, done};

#[derive(Debug, Args)]
pub(crate) struct PutArgs {
    /// The file to store, or `-` to read it from stdin.
    path: PathBuf,
    /// Owner (id or username).
    #[arg(long, short = 'u')]
    user: String,
    /// The file's name in the store (default: the file name of PATH; none
    /// for stdin). Its extension gives the content type when
    /// --content-type is not given.
    #[arg(long)]
    name: Option<String>,
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
    #[arg(long, short = 'u')]
    user: String,
    /// Where to write (`-` for stdout).
    #[arg(long, short = 'o')]
    out: String,
    /// Only OFFSET:LEN bytes.
    #[arg(long)]
    range: Option<String>,
}

/// Transfers this large or larger get a progress bar.
const LARGE_BYTES: u64 = 8 << 20;

/// `bvstore file put PATH|-`: streamed from the file, or from stdin
/// (which must not be a terminal: the bytes are piped in).
pub(super) async fn put(store: &Store, args: &PutArgs, out: &Out) -> Outcome {
    let path = &args.path;
    let owner = resolve(store, &args.user).await?.id;
    let from_stdin = path.as_os_str() == "-";
    let options = put_options(args, from_stdin)?;
    let files = store.files();
    let file = if from_stdin {
        if std::io::stdin().is_terminal() {
            return Err(Error::InvalidInput {
                field: "path",
                reason: "`file put -` reads the file from stdin: pipe it in (`< clip.wav`)".into(),
            });
        }
        let reader = tokio::io::BufReader::with_capacity(1 << 20, tokio::io::stdin());
        files
            .put_with_progress(Actor::User(owner), owner, reader, options, &|_| {})
            .await?
    } else {
        let input = tokio::fs::File::open(path)
            .await
            .map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
        let size = input.metadata().await.map(|m| m.len()).unwrap_or(0);
        let bar = transfer_bar(out, size, "storing");
        let reader = tokio::io::BufReader::with_capacity(1 << 20, input);
        let file = files
            .put_with_progress(Actor::User(owner), owner, reader, options, &|n| bar.set(n))
            .await?;
        bar.finish();
        file
    };
    done(out.emit(&file, || file_text(&file)))
}

/// The options of a put: the name from --name, else PATH's (none from
/// stdin); the content type from --content-type, else the name's extension.
fn put_options(args: &PutArgs, from_stdin: bool) -> Result<PutOptions, Error> {
    let name = match (&args.name, from_stdin) {
        (Some(n), _) => Some(n.clone()),
        (None, true) => None,
        (None, false) => args
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned()),
    };
    let content_type = match (&args.content_type, &name) {
        (Some(t), _) => t.clone(),
        (None, Some(n)) => content_type_of(std::path::Path::new(n)).to_string(),
        (None, None) => content_type_of(&args.path).to_string(),
    };
    Ok(PutOptions {
        encrypt: !args.no_encrypt,
        compression: args.compress.parse::<Compression>()?,
        content_type,
        name,
        retention_days: args.retention_days,
        tags: args.tags.clone(),
        ..Default::default()
    })
}

/// `bvstore file get`: to stdout with `--out -` (and nothing else printed),
/// else to the path, which keeps what it held unless the read completes.
pub(super) async fn get(store: &Store, args: &GetArgs, out: &Out) -> Outcome {
    let dest = &args.out;
    let who = actor(store, &args.user).await?;
    let id: FileId = args.id.parse()?;
    let range = args.range.as_deref().map(parse_range).transpose()?;
    if dest == "-" {
        if out.json() {
            return Err(Error::InvalidInput {
                field: "out",
                reason: "--out - writes the file's bytes to stdout, which --json keeps for \
                         one JSON document: give --out PATH, or leave out --json"
                    .into(),
            });
        }
        copy_out(store, out, who, id, range, &mut tokio::io::stdout()).await?;
        return Ok(ExitCode::SUCCESS);
    }
    refuse_inside_data_dir(&store.config().data_dir, dest)?;
    // Written beside `dest` and renamed onto it only when complete:
    // on any failure `dest` keeps what it held.
    let mut file = AtomicFile::create(dest).await?;
    let written = copy_out(store, out, who, id, range, &mut file).await?;
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

/// A bar for a transfer of `total` bytes, when it is large.
fn transfer_bar(out: &Out, total: u64, verb: &'static str) -> Bar {
    match total >= LARGE_BYTES {
        true => Bar::bytes(out, verb, total),
        false => Bar::hidden(),
    }
}

/// Writes a file's bytes (or `range` of them) to `sink`; returns how many.
async fn copy_out<W: tokio::io::AsyncWrite + Unpin>(
    store: &Store,
    out: &Out,
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
    let bar = transfer_bar(out, total, "reading");
    let mut written = 0u64;
    while let Some(piece) = reader.next_chunk().await {
        let piece = piece?;
        sink.write_all(&piece).await.map_err(write_err)?;
        written += piece.len() as u64;
        bar.set(written);
    }
    bar.finish();
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
