//! `bvstore watch --ingest DIR --user U`: stores each file that appears in
//! a folder for a user, then removes it from the folder, until Ctrl-C (or
//! SIGTERM); then prints what it did. See the library's `Ingestor`.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use bharatvoice_store::{Error, IngestConfig, IngestStats, Ingestor, Store, UserId};
use clap::Args;

use super::user::resolve;
use super::{Cli, Out, Outcome, clean_path, done, open_long_running};

#[derive(Debug, Args)]
pub(crate) struct WatchArgs {
    /// The folder to take files from; refused files go to its `failed/`.
    #[arg(long, value_name = "DIR")]
    ingest: PathBuf,
    /// Whose files they become (id or username).
    #[arg(long, short = 'u')]
    user: String,
    /// Take a file once its size and modification time have not changed
    /// for this many milliseconds (a file closed after writing is taken at
    /// once).
    #[arg(long, default_value_t = 2000, value_name = "N")]
    stable_ms: u64,
    /// Take what the folder holds once it is complete, then exit.
    #[arg(long, hide = true)]
    once: bool,
}

/// `bvstore watch`.
pub(crate) async fn run(cli: &Cli, args: &WatchArgs, out: &Out) -> Outcome {
    let store = open_long_running(cli).await?;
    let user = resolve(&store, &args.user).await?.id;
    let config = IngestConfig::default().stable_for(Duration::from_millis(args.stable_ms));
    let stats = if args.once {
        Ingestor::run_once(&store, &args.ingest, user, config).await?
    } else {
        watch_until_signal(&store, args, user, config, out).await?
    };
    store.close().await;
    let doc = serde_json::json!({ "dir": args.ingest, "user": user, "stats": stats });
    done(out.emit(&doc, || summary(&stats, &args.ingest)))
}

async fn watch_until_signal(
    store: &Store,
    args: &WatchArgs,
    user: UserId,
    config: IngestConfig,
    out: &Out,
) -> Result<IngestStats, Error> {
    // Listening before the ingestor starts: a stop sent at once is not lost.
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| Error::io("listening for SIGTERM", e))?;
    let ingestor = Ingestor::start(store.clone(), &args.ingest, user, config).await?;
    if !out.json() && !out.quiet() && std::io::stderr().is_terminal() {
        eprintln!(
            "watching {} for user {user}; Ctrl-C stops",
            clean_path(ingestor.dir())
        );
    }
    // Ctrl-C, or SIGTERM (how a service manager stops a service).
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.map_err(|e| Error::io("listening for Ctrl-C", e))?,
        _ = term.recv() => {}
    }
    ingestor.stop().await
}

fn summary(stats: &IngestStats, dir: &std::path::Path) -> String {
    let mut text = format!(
        "stored {} files, {} already stored, {} failed",
        stats.stored, stats.already_stored, stats.failed
    );
    if stats.failed > 0 {
        text.push_str(&format!(" (see {})", clean_path(&dir.join("failed"))));
    }
    if stats.retried > 0 {
        text.push_str(&format!(
            "; {} attempts met a passing error and were left to retry",
            stats.retried
        ));
    }
    text
}
