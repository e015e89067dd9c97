//! `bvstore migrate status|run`.

use bharatvoice_store::{Error, Store};
use clap::Subcommand;

use super::{Cli, Out, Outcome, config_of, done, open};

#[derive(Debug, Subcommand)]
pub(crate) enum MigrateCommand {
    /// Show the applied schema version and pending steps (changes nothing).
    Status,
    /// Open the store, which runs any pending steps.
    Run,
}

pub(crate) async fn run(cli: &Cli, cmd: &MigrateCommand, out: &Out) -> Outcome {
    match cmd {
        MigrateCommand::Status => status(cli, out).await,
        MigrateCommand::Run => run_pending(cli, out).await,
    }
}

/// `bvstore migrate status`: where the store stands, without migrating it.
async fn status(cli: &Cli, out: &Out) -> Outcome {
    let config = config_of(cli)?;
    let status = match Store::migration_status(&config).await {
        Err(locked @ Error::Locked { .. }) => {
            // A running store is migrated: ask it which version it runs.
            let request = bharatvoice_store::AdminRequest::MigrateStatus;
            let answer = super::remote::ask(&config.data_dir, out, &request, locked).await?;
            return done(out.emit(&answer, || {
                let applied = answer["applied"].as_u64().unwrap_or_default();
                let latest = answer["latest"].as_u64().unwrap_or_default();
                format!(
                    "applied schema version: {applied}\nlatest schema version:  {latest}\nup to date (a running store is migrated)"
                )
            }));
        }
        other => other?,
    };
    if status.applied.is_none() && !config.db_path().exists() {
        return Err(Error::NoStore {
            data_dir: config.data_dir,
        });
    }
    done(out.emit(&status, || {
        let applied = status
            .applied
            .map_or("none (no store yet)".to_string(), |v| v.to_string());
        let mut s = format!(
            "applied schema version: {applied}\nlatest schema version:  {}",
            status.latest
        );
        if status.applied.is_some_and(|v| v > status.latest) {
            s.push_str("\nthis store is newer than this build: upgrade bvstore");
        } else if status.pending.is_empty() {
            s.push_str("\nup to date");
        }
        for p in &status.pending {
            s.push_str(&format!("\npending {} -> {}: {}", p.from, p.to, p.name));
        }
        s
    }))
}

/// `bvstore migrate run`: opening the store runs the pending steps.
async fn run_pending(cli: &Cli, out: &Out) -> Outcome {
    let before = Store::migration_status(&config_of(cli)?).await?;
    let store = open(cli).await?;
    let version = store.schema_version()?;
    let doc = serde_json::json!({ "applied": before.pending, "schema_version": version });
    done(out.emit(&doc, || {
        format!(
            "{} step(s) applied; schema version {version}",
            before.pending.len()
        )
    }))
}
