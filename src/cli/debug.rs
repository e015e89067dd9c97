//! Hidden commands for crash and durability tests (`bvstore debug ...`).

use std::io::Write;
use std::process::ExitCode;

use bharatvoice_store::{Error, NewUser, SetOptions, Store};
use clap::{Args, Subcommand};

use super::{Cli, Out, Outcome, open};

#[derive(Debug, Subcommand)]
pub(crate) enum DebugCommand {
    /// Create users from many tasks and print `ack <id>` as each create is
    /// acknowledged; runs until killed (or `--count` creates).
    AckWrites(AckWritesArgs),
    /// Fill the cache, `clear` it (prints `cleared`), then from many tasks
    /// write keys (write-behind), delete some and invalidate tags, printing
    /// `del KEY ROUND` and `inv TASK ROUND` as each is acknowledged; runs
    /// until killed.
    CacheChurn(CacheChurnArgs),
    /// One operation at a time from a seeded mix of everything the store
    /// does, logging `begin` before each and a durable `ack` after; runs
    /// until killed (the crash test's child).
    CrashWorkload(super::debug_crash::CrashWorkloadArgs),
}

#[derive(Debug, Args)]
pub(crate) struct AckWritesArgs {
    /// Concurrent writers.
    #[arg(long, default_value_t = 16)]
    callers: usize,
    /// Stop after this many acknowledged creates (0 = never).
    #[arg(long, default_value_t = 0)]
    count: u64,
}

#[derive(Debug, Args)]
pub(crate) struct CacheChurnArgs {
    /// Concurrent tasks.
    #[arg(long, default_value_t = 8)]
    tasks: usize,
}

/// These commands print plain lines as each step is acknowledged (a test
/// reads them while the process runs), not one result through `Out`.
pub(crate) async fn run(cli: &Cli, cmd: &DebugCommand, _out: &Out) -> Outcome {
    let store = open(cli).await?;
    match cmd {
        DebugCommand::AckWrites(args) => ack_writes(&store, args).await,
        DebugCommand::CacheChurn(args) => cache_churn(&store, args).await,
        DebugCommand::CrashWorkload(args) => super::debug_crash::run(&store, args).await,
    }
}

/// `bvstore debug ack-writes`.
async fn ack_writes(store: &Store, args: &AckWritesArgs) -> Outcome {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    for c in 0..args.callers {
        let store = store.clone();
        let tx = tx.clone();
        tokio::spawn(async move {
            for i in 0u64.. {
                let name = format!("ack{c}x{i}x{}", std::process::id());
                match store
                    .users()
                    .create(NewUser::new(&name, format!("{name}@example.in")))
                    .await
                {
                    Ok(u) => {
                        if tx.send(u.id).is_err() {
                            return;
                        }
                    }
                    Err(_) => return,
                }
            }
        });
    }
    drop(tx);
    let mut acked = 0;
    let mut stdout = std::io::stdout();
    while let Some(id) = rx.recv().await {
        writeln!(stdout, "ack {id}")
            .and_then(|_| stdout.flush())
            .map_err(|e| Error::io("writing acks", e))?;
        acked += 1;
        if args.count > 0 && acked >= args.count {
            break;
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn churn_task(store: Store, t: usize) -> Result<(), Error> {
    let c = store.cache();
    for r in 0u64.. {
        let key = format!("d{t}:{}", r % 16);
        c.set_bytes(&key, r.to_string().as_bytes()).await?;
        if r % 3 == 0 {
            c.delete(&key).await?;
            println!("del {key} {r}");
        }
        if r % 10 == 0 {
            let tag = format!("g{t}:{r}");
            for j in 0..5 {
                let opts = SetOptions::new().tag(&tag);
                c.set_bytes_with(&format!("t{t}:{r}:{j}"), b"x", &opts)
                    .await?;
            }
            // On disk before the invalidation, so that a lost bump would
            // show.
            c.flush().await?;
            c.invalidate_tag(&tag).await?;
            println!("inv {t} {r}");
        }
    }
    Ok(())
}

/// `bvstore debug cache-churn`.
async fn cache_churn(store: &Store, args: &CacheChurnArgs) -> Outcome {
    let c = store.cache();
    for i in 0..50 {
        c.set_bytes(&format!("c{i}"), b"old").await?;
    }
    c.flush().await?;
    c.clear().await?;
    println!("cleared");
    let mut set = tokio::task::JoinSet::new();
    for t in 0..args.tasks {
        set.spawn(churn_task(store.clone(), t));
    }
    while let Some(done) = set.join_next().await {
        done.map_err(|e| Error::join("churn task", e))??;
    }
    Ok(ExitCode::SUCCESS)
}
