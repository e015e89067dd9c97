//! `bvstore keys ...`: key status and rotation.

use std::path::PathBuf;

use bharatvoice_store::{Error, MasterKey, MasterKeySource};
use clap::Subcommand;

use super::user::resolve;
use super::{Cli, Out, clean_path, open};

#[derive(Debug, Subcommand)]
pub(crate) enum KeysCommand {
    /// Where the master key comes from and what the keyring holds.
    Status,
    /// Re-wrap every key under a new master key read from a file.
    RotateMaster {
        /// File with the new key (32 bytes, or hex/base64; mode 0600).
        #[arg(long)]
        new_key_file: PathBuf,
    },
    /// Rotate a user's key: new writes use a new version; old blobs move over.
    RotateUser {
        /// User (id or username).
        user: String,
    },
}

pub(crate) async fn run(cli: &Cli, cmd: &KeysCommand, out: &Out) -> Result<(), Error> {
    let store = open(cli).await?;
    match cmd {
        KeysCommand::Status => {
            let status = store.keys().status().await?;
            out.emit(&status, || {
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
            })
        }
        KeysCommand::RotateMaster { new_key_file } => {
            let key = MasterKey::from_file(new_key_file)?;
            let report = store.keys().rotate_master(key).await?;
            out.emit(&report, || match &report.key_file {
                Some(p) => format!("master key rotated: {} owner key rows re-wrapped; {} holds the new key", report.owners, clean_path(p)),
                None => format!("master key rotated: {} owner key rows re-wrapped; pass the new key from now on", report.owners),
            })
        }
        KeysCommand::RotateUser { user } => {
            let u = resolve(&store, user).await?;
            let version = store.keys().rotate_owner(u.id).await?;
            // Drive the rotation to its end before this process exits.
            loop {
                let p = store.keys().rotation_step(u.id, 1024).await?;
                if p.finished {
                    break;
                }
            }
            let doc = serde_json::json!({ "user": u.id, "key_version": version, "finished": true });
            out.emit(&doc, || {
                format!(
                    "key of {} rotated to version {version}; old version destroyed",
                    u.username
                )
            })
        }
    }
}
