//! `bvstore keys ...`: key status and rotation.

use std::path::PathBuf;

use bharatvoice_store::{MasterKey, MasterKeySource, Store};
use clap::{Args, Subcommand};

use super::progress::Bar;
use super::user::resolve;
use super::{Cli, Out, Outcome, clean, clean_path, done, open};

#[derive(Debug, Subcommand)]
pub(crate) enum KeysCommand {
    /// Where the master key comes from and what the keyring holds.
    Status,
    /// Re-wrap every key under a new master key read from a file.
    RotateMaster(RotateMasterArgs),
    /// Rotate a user's key: new writes use a new version; old blobs move over.
    RotateUser(RotateUserArgs),
}

#[derive(Debug, Args)]
pub(crate) struct RotateMasterArgs {
    /// File with the new key (32 bytes, or hex/base64; mode 0600).
    #[arg(long)]
    new_key_file: PathBuf,
}

#[derive(Debug, Args)]
pub(crate) struct RotateUserArgs {
    /// User (id or username).
    user: String,
}

pub(crate) async fn run(cli: &Cli, cmd: &KeysCommand, out: &Out) -> Outcome {
    let store = open(cli).await?;
    match cmd {
        KeysCommand::Status => status(&store, out).await,
        KeysCommand::RotateMaster(args) => rotate_master(&store, args, out).await,
        KeysCommand::RotateUser(args) => rotate_user(&store, args, out).await,
    }
}

/// `bvstore keys status`.
async fn status(store: &Store, out: &Out) -> Outcome {
    let status = store.keys().status().await?;
    done(out.emit(&status, || {
        let source = match &status.master_key {
            MasterKeySource::Given => "given (BV_MASTER_KEY or configuration)".to_string(),
            MasterKeySource::File(p) => format!("key file {}", clean_path(p)),
            MasterKeySource::Embedded(p) => {
                format!("embedded default {} (beside the data)", clean_path(p))
            }
        };
        format!(
            "master key:  {source}\nowner keys:  {}\nrotating:    {}\nblobs:       {}",
            status.owners,
            status.rotating.len(),
            status.blobs
        )
    }))
}

/// `bvstore keys rotate-master`.
async fn rotate_master(store: &Store, args: &RotateMasterArgs, out: &Out) -> Outcome {
    let key = MasterKey::from_file(&args.new_key_file)?;
    let report = store.keys().rotate_master(key).await?;
    done(out.emit(&report, || match &report.key_file {
        Some(p) => format!(
            "master key rotated: {} owner key rows re-wrapped; {} holds the new key",
            report.owners,
            clean_path(p)
        ),
        None => format!(
            "master key rotated: {} owner key rows re-wrapped; pass the new key from now on",
            report.owners
        ),
    }))
}

/// `bvstore keys rotate-user`: driven to its end here, with a progress
/// bar over the user's blobs; a user with no keys yet (no file stored)
/// has nothing to rotate, and is told so.
async fn rotate_user(store: &Store, args: &RotateUserArgs, out: &Out) -> Outcome {
    let u = resolve(store, &args.user).await?;
    if store.keys().owner_key_versions(u.id)?.is_empty() {
        let doc = serde_json::json!({ "user": u.id, "key_version": null, "changed": false });
        return done(out.emit(&doc, || {
            format!(
                "{} has no keys yet (no file stored): nothing to rotate",
                clean(&u.username)
            )
        }));
    }
    let blobs = store.quotas().usage(u.id).await?.blobs;
    // Begun without the background task, so this loop alone re-wraps the
    // blobs and its count is the whole rotation's.
    let version = store.keys().begin_owner_rotation(u.id).await?;
    let bar = Bar::items(
        out,
        "re-wrapping",
        "{msg} {bar:40} {pos}/{len} blobs {eta}",
        blobs,
    );
    let mut moved = 0;
    // Drive the rotation to its end before this process exits.
    loop {
        let p = store.keys().rotation_step(u.id, 1024).await?;
        moved += p.moved as u64;
        bar.set(moved);
        if p.finished {
            break;
        }
    }
    bar.finish();
    let doc = serde_json::json!({
        "user": u.id, "key_version": version, "blobs_moved": moved, "changed": true, "finished": true
    });
    done(out.emit(&doc, || {
        format!(
            "key of {} rotated to version {version}: {moved} blob(s) re-wrapped; old version destroyed",
            clean(&u.username)
        )
    }))
}
