//! `bvstore backup`, `bvstore backups` and `bvstore restore`: consistent
//! backups taken while the store is in use, listed and brought back
//! after every file is checked.

use std::path::PathBuf;
use std::process::ExitCode;

use bharatvoice_store::{
    BackupGeneration, BackupOptions, BackupReport, BackupTarget, BlobBackendConfig, RestoreOptions,
    RestoreReport, S3Config, Store,
};
use clap::Args;

use super::human::{self, size};
use super::progress::Bar;
use super::table::{Align, Table};
use super::{Cli, Out, Outcome, clean_path, config_of, done};

#[derive(Debug, Args)]
pub(crate) struct BackupArgs {
    /// The destination: a directory (created if missing), or
    /// s3://bucket/prefix (the store's own endpoint and credentials when
    /// its blobs are in object storage, else the AWS_* variables); one
    /// store's backups per destination.
    dest: String,
    /// Keep only the newest N generations once this one is complete.
    #[arg(long, short = 'k', value_name = "N", value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    keep: Option<usize>,
    /// Copy blob files even where they could be hard-linked.
    #[arg(long)]
    no_links: bool,
    /// Back up into a destination that declares another data region.
    #[arg(long)]
    allow_region_change: bool,
}

#[derive(Debug, Args)]
pub(crate) struct BackupsArgs {
    /// The destination: a directory or s3://bucket/prefix.
    dest: String,
}

#[derive(Debug, Args)]
pub(crate) struct RestoreArgs {
    /// The backup destination to restore from (a directory or
    /// s3://bucket/prefix); the store is restored into --data-dir.
    src: String,
    /// The generation to restore (default: the newest).
    #[arg(long, short = 'g', value_name = "G")]
    generation: Option<u64>,
    /// Restore into a data directory that is not empty (its store.redb is
    /// replaced, its cache.redb deleted).
    #[arg(long)]
    force: bool,
    /// The master key file the backup was made under; it is installed as
    /// <data-dir>/master.key so that the restored store opens by default.
    #[arg(long, value_name = "FILE")]
    key_file: Option<PathBuf>,
    /// Restore a backup of another data region than the configured one.
    #[arg(long)]
    allow_region_change: bool,
}

/// The backup target `text` names: an `s3://` one on the store's own
/// engine when its blobs are in object storage.
fn target_of(cli: &Cli, text: &str) -> Result<BackupTarget, bharatvoice_store::Error> {
    if !text.starts_with("s3://") {
        return Ok(BackupTarget::Dir(PathBuf::from(text)));
    }
    let config = config_of(cli)?;
    Ok(BackupTarget::parse(text, s3_of(&config)))
}

fn s3_of(config: &bharatvoice_store::Config) -> Option<&S3Config> {
    match &config.blob_backend {
        BlobBackendConfig::S3(c) => Some(c),
        BlobBackendConfig::Local => None,
    }
}

/// `bvstore backup DEST`.
pub(crate) async fn backup(cli: &Cli, args: &BackupArgs, out: &Out) -> Outcome {
    let target = target_of(cli, &args.dest)?;
    // The running store's process resolves no relative path of ours (and
    // an s3:// destination with its own endpoint and credentials).
    let dest = match &target {
        BackupTarget::Dir(d) => std::path::absolute(d)
            .map_err(|e| bharatvoice_store::Error::io("resolving the backup destination", e))?,
        BackupTarget::S3(_) => PathBuf::from(&args.dest),
    };
    let store = match super::remote::open_or_ask(
        cli,
        out,
        bharatvoice_store::AdminRequest::Backup {
            dest,
            keep: args.keep,
            no_links: args.no_links,
            allow_region_change: args.allow_region_change,
        },
    )
    .await?
    {
        super::remote::Opened::Local(store) => store,
        super::remote::Opened::Remote(outcome) => return outcome,
    };
    let bar = Bar::bytes(out, "backing up", 0);
    let options = BackupOptions {
        keep: args.keep,
        no_links: args.no_links,
        allow_region_change: args.allow_region_change,
        progress: bar.progress(),
    };
    let report = store.backup(target, options).await;
    bar.finish();
    store.close().await;
    let report = report?;
    done(out.emit(&report, || backup_text(&report)))
}

/// What the metadata copy was: rows, or a file copy's base or delta.
fn metadata_line(r: &BackupReport) -> String {
    if r.rows > 0 || r.metadata_parts <= 1 {
        return format!("metadata   {} rows, {}", r.rows, size(r.metadata_bytes));
    }
    let what = if r.metadata_parts == 2 {
        "store.redb copied whole (a new base)".to_string()
    } else {
        format!(
            "pages written since the last backup (delta {} after the base)",
            r.metadata_parts - 1
        )
    };
    format!(
        "metadata   {}: {what}; writes waited {:.1} ms",
        size(r.metadata_bytes),
        r.writes_paused_us as f64 / 1000.0
    )
}

pub(crate) fn backup_text(r: &BackupReport) -> String {
    let mut lines = vec![
        format!(
            "generation {} written to {} in {:.1} s",
            r.generation,
            clean_path(&r.destination),
            r.took_ms as f64 / 1000.0
        ),
        metadata_line(r),
        format!("{:<10} {:>8} {:>10}", "blobs", "files", "bytes"),
        format!(
            "{:<10} {:>8} {:>10}",
            "copied",
            r.blobs_copied,
            size(r.bytes_copied)
        ),
        format!(
            "{:<10} {:>8} {:>10}",
            "linked",
            r.blobs_linked,
            size(r.bytes_linked)
        ),
    ];
    if r.blobs_copied_by_engine > 0 {
        lines.push(format!(
            "{:<10} {:>8} {:>10}  (copied by the engine within the bucket)",
            "in bucket",
            r.blobs_copied_by_engine,
            size(r.bytes_copied_by_engine)
        ));
    }
    lines.push(format!(
        "{:<10} {:>8} {:>10}  (already in the destination)",
        "skipped",
        r.blobs_skipped,
        size(r.bytes_skipped)
    ));
    if !r.missing.is_empty() {
        lines.push(format!(
            "warning: {} blob(s) the store names have no file (run `bvstore gc` to mark them damaged)",
            r.missing.len()
        ));
    }
    if !r.generations_removed.is_empty() {
        lines.push(format!(
            "removed generation(s) {} and {} blob file(s) only they held",
            r.generations_removed
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            r.blobs_removed
        ));
    }
    lines.join("\n")
}

/// `bvstore backups DEST`: the generations there, oldest first.
pub(crate) async fn list(cli: &Cli, args: &BackupsArgs, out: &Out) -> Outcome {
    let generations = Store::backups(target_of(cli, &args.dest)?)?;
    done(out.emit(&generations, || list_text(&generations)))
}

fn list_text(gs: &[BackupGeneration]) -> String {
    if gs.is_empty() {
        return "(no generations)".into();
    }
    let mut table = Table::new(&[
        ("GENERATION", Align::Right),
        ("TAKEN", Align::Left),
        ("SCHEMA", Align::Right),
        ("BLOBS", Align::Right),
        ("SIZE", Align::Right),
    ]);
    for g in gs {
        table.row([
            g.generation.to_string(),
            human::time(g.created_at),
            g.schema_version.to_string(),
            g.blobs.to_string(),
            size(g.bytes),
        ]);
    }
    table.render()
}

/// `bvstore restore SRC --data-dir NEW`.
pub(crate) async fn restore(cli: &Cli, args: &RestoreArgs, out: &Out) -> Outcome {
    let mut config = config_of(cli)?;
    if let Some(key) = &args.key_file {
        config = config.master_key_file(key);
    }
    let bar = Bar::bytes(out, "restoring", 0);
    let options = RestoreOptions {
        generation: args.generation,
        force: args.force,
        allow_region_change: args.allow_region_change,
        install_key: args.key_file.is_some(),
        progress: bar.progress(),
    };
    let target = BackupTarget::parse(&args.src, s3_of(&config));
    let report = Store::restore(target, &config, options).await;
    bar.finish();
    let report = report?;
    out.emit(&report, || restore_text(&report))?;
    Ok(ExitCode::SUCCESS)
}

fn restore_text(r: &RestoreReport) -> String {
    let mut text = format!(
        "restored generation {} (taken {}) into {}: {} blobs, {}, every file checked, in {:.1} s",
        r.generation,
        human::time(r.created_at),
        clean_path(&r.data_dir),
        r.blobs,
        size(r.bytes),
        r.took_ms as f64 / 1000.0
    );
    if r.missing > 0 {
        text.push_str(&format!(
            "\nwarning: the backed-up store was missing {} blob file(s); their records stay damaged",
            r.missing
        ));
    }
    text
}
