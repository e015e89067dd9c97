//! `bvstore verify [--deep] [--repair]`: the store's fsck. Exits 0 when
//! nothing is wrong (or everything found was repaired), 8 when a problem
//! is left.

use std::process::ExitCode;

use bharatvoice_store::{StoreVerifyReport, VerifyOptions};
use clap::Args;

use super::progress::Bar;
use super::{Cli, Out, Outcome, clean, open};

#[derive(Debug, Args)]
pub(crate) struct VerifyArgs {
    /// Also read every blob: authenticate each chunk, check each SHA-256.
    #[arg(long)]
    deep: bool,
    /// Fix what is safe: indexes, reference counts, usage, orphan files,
    /// records of lost files marked damaged.
    #[arg(long)]
    repair: bool,
}

pub(crate) async fn run(cli: &Cli, args: &VerifyArgs, out: &Out) -> Outcome {
    let store = if args.repair {
        // A repair needs the store to itself: never asked of a running one.
        open(cli).await?
    } else {
        match super::remote::open_or_ask(
            cli,
            out,
            bharatvoice_store::AdminRequest::Verify { deep: args.deep },
        )
        .await?
        {
            super::remote::Opened::Local(store) => store,
            super::remote::Opened::Remote(outcome) => return outcome,
        }
    };
    let bar = match args.deep {
        true => Bar::items(
            out,
            "verifying",
            "{msg} {bar:40} {pos}/{len} blobs {eta}",
            0,
        ),
        false => Bar::hidden(),
    };
    let options = VerifyOptions {
        deep: args.deep,
        repair: args.repair,
        progress: bar.progress(),
    };
    let report = store.verify(options).await;
    bar.finish();
    store.close().await;
    let report = report?;
    out.emit(&report, || text(&report))?;
    Ok(if report.is_clean() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(8)
    })
}

pub(crate) fn text(r: &StoreVerifyReport) -> String {
    let mut lines = vec![format!(
        "checked {} users, {} sessions, {} files, {} blobs, {} index entries{} in {:.1} s",
        r.users,
        r.sessions,
        r.files,
        r.blobs,
        r.index_entries,
        if r.deep {
            format!("; read {} blobs", r.blobs_read)
        } else {
            String::new()
        },
        r.took_ms as f64 / 1000.0
    )];
    if r.problems.is_empty() {
        lines.push("no problems found".into());
        return lines.join("\n");
    }
    // The id column is as wide as the longest id (a blob's is 69).
    let w = r
        .problems
        .iter()
        .map(|p| clean(&p.id).chars().count())
        .max()
        .unwrap_or(0)
        .max(2);
    lines.push(format!(
        "{:<22} {:<9} {:<w$} detail",
        "problem", "repaired", "id"
    ));
    for p in &r.problems {
        let kind = serde_json::to_value(p.kind)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        lines.push(format!(
            "{:<22} {:<9} {:<w$} {}",
            kind,
            if p.repaired { "yes" } else { "no" },
            clean(&p.id),
            clean(&p.detail)
        ));
    }
    let left = r.problems.iter().filter(|p| !p.repaired).count();
    lines.push(if left == 0 {
        format!("{} problem(s), all repaired", r.problems.len())
    } else if r.repair {
        format!(
            "{} problem(s), {left} left (not safe to repair)",
            r.problems.len()
        )
    } else {
        format!("{left} problem(s); `bvstore verify --repair` fixes what is safe")
    });
    lines.join("\n")
}
