//! Hidden commands for crash and durability tests (`bvstore debug ...`).

use std::io::Write;

use bharatvoice_store::{Error, NewUser};
use clap::Subcommand;

use super::{Cli, open};

#[derive(Debug, Subcommand)]
pub(crate) enum DebugCommand {
    /// Create users from many tasks and print `ack <id>` as each create is
    /// acknowledged; runs until killed (or `--count` creates).
    AckWrites {
        /// Concurrent writers.
        #[arg(long, default_value_t = 16)]
        callers: usize,
        /// Stop after this many acknowledged creates (0 = never).
        #[arg(long, default_value_t = 0)]
        count: u64,
    },
}

pub(crate) async fn run(cli: &Cli, cmd: &DebugCommand) -> Result<(), Error> {
    let DebugCommand::AckWrites { callers, count } = cmd;
    let store = open(cli).await?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    for c in 0..*callers {
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
        if *count > 0 && acked >= *count {
            break;
        }
    }
    Ok(())
}
