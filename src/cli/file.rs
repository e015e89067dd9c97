//! `bvstore file ...`: store, read, list and share files. Moving the bytes
//! in and out (`put`, `get`) is in `file_transfer`.

use bharatvoice_store::{Actor, AudioFile, Cursor, Error, ListFilter, ListOptions, Store};
use clap::{Args, Subcommand};

use super::file_transfer::{self, GetArgs, PutArgs};
use super::human;
use super::table::Align;
use super::user::resolve;
use super::{Cli, Out, Outcome, clean, done, open, page_table};

#[derive(Debug, Subcommand)]
pub(crate) enum FileCommand {
    /// Store a file for a user; prints its record.
    Put(PutArgs),
    /// Write a file's bytes to a path or stdout (`-`).
    Get(GetArgs),
    /// List a user's files, newest first.
    Ls(LsArgs),
    /// Soft-delete a file.
    Rm(RmArgs),
    /// Restore a soft-deleted file, by id or by its name.
    Restore(super::trash::FileRestoreArgs),
    /// Let another user read a file.
    Grant(GrantArgs),
    /// Take back a grant.
    Revoke(RevokeArgs),
    /// Who a file is granted to (the owner asks).
    Grants(RmArgs),
    /// Authenticate every chunk and check the SHA-256 (as the system).
    Verify(VerifyArgs),
}

#[derive(Debug, Args)]
pub(crate) struct LsArgs {
    /// Owner (id or username).
    #[arg(long, short = 'u')]
    user: String,
    /// Only this content type.
    #[arg(long)]
    content_type: Option<String>,
    /// Only files with this tag.
    #[arg(long)]
    tag: Option<String>,
    /// List the trash: soft-deleted files (`file restore` brings one back
    /// until the purge takes it).
    #[arg(long)]
    deleted: bool,
    /// At most this many, 1 to 1000 (default 50).
    #[arg(long, short = 'n', default_value_t = 50, value_parser = super::page_limit())]
    limit: usize,
    /// Continue after this cursor.
    #[arg(long)]
    after: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct RmArgs {
    /// File id.
    id: String,
    /// Who asks.
    #[arg(long, short = 'u')]
    user: String,
}

#[derive(Debug, Args)]
pub(crate) struct GrantArgs {
    /// File id.
    id: String,
    /// Who asks (the owner).
    #[arg(long, short = 'u')]
    user: String,
    /// Who may read it.
    #[arg(long)]
    to: String,
}

#[derive(Debug, Args)]
pub(crate) struct RevokeArgs {
    /// File id.
    id: String,
    /// Who asks (the owner).
    #[arg(long, short = 'u')]
    user: String,
    /// Whose grant to take back.
    #[arg(long)]
    from: String,
}

#[derive(Debug, Args)]
pub(crate) struct VerifyArgs {
    /// File id.
    id: String,
}

pub(crate) async fn run(cli: &Cli, cmd: &FileCommand, out: &Out) -> Outcome {
    let store = open(cli).await?;
    match cmd {
        FileCommand::Put(args) => file_transfer::put(&store, args, out).await,
        FileCommand::Get(args) => file_transfer::get(&store, args, out).await,
        FileCommand::Ls(args) => ls(&store, args, out).await,
        FileCommand::Rm(args) => rm(&store, args, out).await,
        FileCommand::Restore(args) => super::trash::restore_file(&store, args, out).await,
        FileCommand::Grant(args) => grant(&store, args, out).await,
        FileCommand::Grants(args) => grants(&store, args, out).await,
        FileCommand::Revoke(args) => revoke(&store, args, out).await,
        FileCommand::Verify(args) => verify(&store, args, out).await,
    }
}

/// The columns of `file ls`.
const FILE_COLUMNS: &[(&str, Align)] = &[
    ("ID", Align::Left),
    ("SIZE", Align::Right),
    ("TYPE", Align::Left),
    ("NAME", Align::Left),
    ("KEY", Align::Right),
    ("CREATED", Align::Left),
    ("READS", Align::Right),
    ("LAST READ", Align::Left),
];

fn file_cells(f: &AudioFile) -> Vec<String> {
    vec![
        f.id.to_string(),
        human::size(f.plain_bytes),
        clean(&f.content_type).into_owned(),
        clean(f.name.as_deref().unwrap_or("-")).into_owned(),
        format!("v{}", f.key_version),
        human::time(f.created_at),
        f.access_count.to_string(),
        human::time_or_dash(f.last_read_at),
    ]
}

/// A stored file's record, one field a line (`file put`).
pub(super) fn file_text(f: &AudioFile) -> String {
    let saved = match f.plain_bytes {
        0 => String::new(),
        p => format!(
            " ({:.0} % of its size)",
            f.stored_bytes as f64 * 100.0 / p as f64
        ),
    };
    let mut lines = vec![
        format!("file:     {}", f.id),
        format!("owner:    {}", f.owner),
        format!("name:     {}", clean(f.name.as_deref().unwrap_or("-"))),
        format!("type:     {}", clean(&f.content_type)),
        format!("size:     {}", human::size(f.plain_bytes)),
        format!(
            "stored:   {}{saved}, codec {}, key v{}",
            human::size(f.stored_bytes),
            f.codec,
            f.key_version
        ),
        format!("blob:     {}", f.blob),
        format!("created:  {}", human::time(f.created_at)),
    ];
    if !f.tags.is_empty() {
        let tags: Vec<String> = f.tags.iter().map(|t| clean(t).into_owned()).collect();
        lines.push(format!("tags:     {}", tags.join(", ")));
    }
    if let Some(at) = f.expires_at {
        lines.push(format!("expires:  {}", human::time(at)));
    }
    lines.join("\n")
}

pub(super) async fn actor(store: &Store, who: &str) -> Result<Actor, Error> {
    Ok(Actor::User(resolve(store, who).await?.id))
}

/// `bvstore file ls`.
async fn ls(store: &Store, args: &LsArgs, out: &Out) -> Outcome {
    let owner = resolve(store, &args.user).await?.id;
    let after = args
        .after
        .as_deref()
        .map(str::parse::<Cursor>)
        .transpose()?;
    let filter = ListFilter {
        content_type: args.content_type.clone(),
        tag: args.tag.clone(),
        deleted: args.deleted,
        ..Default::default()
    };
    let page = store
        .files()
        .list(
            Actor::User(owner),
            owner,
            filter,
            ListOptions {
                limit: args.limit,
                after,
            },
        )
        .await?;
    done(out.emit(&page, || {
        page_table(&page, FILE_COLUMNS, file_cells, "no files")
    }))
}

/// `bvstore file rm`.
async fn rm(store: &Store, args: &RmArgs, out: &Out) -> Outcome {
    let f = store
        .files()
        .delete(actor(store, &args.user).await?, args.id.parse()?)
        .await?;
    done(out.emit(&f, || format!("deleted file {}", f.id)))
}

/// `bvstore file grant`.
async fn grant(store: &Store, args: &GrantArgs, out: &Out) -> Outcome {
    let id = &args.id;
    let to = resolve(store, &args.to).await?;
    store
        .files()
        .grant(actor(store, &args.user).await?, id.parse()?, to.id)
        .await?;
    let doc = serde_json::json!({ "file": id, "granted_to": to.id });
    done(out.emit(&doc, || {
        format!("{} may now read file {}", clean(&to.username), clean(id))
    }))
}

/// `bvstore file revoke`: says so when there was no grant to take back.
async fn revoke(store: &Store, args: &RevokeArgs, out: &Out) -> Outcome {
    let id = &args.id;
    let from = resolve(store, &args.from).await?;
    let (who, file) = (actor(store, &args.user).await?, id.parse()?);
    let had = store.files().grantees(who, file).await?.contains(&from.id);
    store.files().revoke(who, file, from.id).await?;
    let doc = serde_json::json!({ "file": id, "revoked_from": from.id, "changed": had });
    done(out.emit(&doc, || match had {
        true => format!(
            "{} may no longer read file {}",
            clean(&from.username),
            clean(id)
        ),
        false => format!(
            "{} had no grant on file {}: nothing changed",
            clean(&from.username),
            clean(id)
        ),
    }))
}

/// `bvstore file grants`: the users a file is granted to.
async fn grants(store: &Store, args: &RmArgs, out: &Out) -> Outcome {
    let ids = store
        .files()
        .grantees(actor(store, &args.user).await?, args.id.parse()?)
        .await?;
    let names: Vec<Option<String>> = ids
        .iter()
        .map(|id| store.users().get(*id).ok().map(|u| u.username))
        .collect();
    let doc: Vec<_> = ids
        .iter()
        .zip(&names)
        .map(|(id, name)| serde_json::json!({ "user": id, "username": name }))
        .collect();
    done(out.emit(&doc, || {
        if ids.is_empty() {
            return format!("file {} is granted to no one", clean(&args.id));
        }
        ids.iter()
            .zip(&names)
            .map(|(id, name)| match name {
                Some(n) => format!("{id}  {}", clean(n)),
                None => format!("{id}  (deleted)"),
            })
            .collect::<Vec<_>>()
            .join("\n")
    }))
}

/// `bvstore file verify`.
async fn verify(store: &Store, args: &VerifyArgs, out: &Out) -> Outcome {
    let report = store
        .files()
        .verify(Actor::System, args.id.parse()?)
        .await?;
    done(out.emit(&report, || {
        format!(
            "file {} ok: {} chunks, {} authenticated",
            report.file,
            report.chunks,
            human::size(report.plain_bytes)
        )
    }))
}
