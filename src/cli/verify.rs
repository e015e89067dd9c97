//! `bvstore verify [--deep] [--repair]`: the store's fsck. Exits 0 when
//! nothing is wrong (or everything found was repaired), 8 when a problem
//! is left.

use std::io::IsTerminal;
use std::process::ExitCode;

use bharatvoice_store::{Progress, StoreVerifyReport, VerifyOptions};
use clap::Args;

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
    let store = open(cli).await?;
    let bar = (args.deep && std::io::stderr().is_terminal()).then(|| {
        let bar = indicatif::ProgressBar::new(0);
        let style =
            indicatif::ProgressStyle::with_template("verifying {bar:40} {pos}/{len} blobs {eta}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
        bar.set_style(style);
        bar
    });
    let progress = bar.clone().map(|b| {
        Progress::new(move |done, total| {
            b.set_length(total);
            b.set_position(done);
        })
    });
    let options = VerifyOptions {
        deep: args.deep,
        repair: args.repair,
        progress,
    };
    let report = store.verify(options).await;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    store.close().await;
    let report = report?;
    out.emit(&report, || text(&report))?;
    Ok(if report.is_clean() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(8)
    })
}

fn text(r: &StoreVerifyReport) -> String {
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
    lines.push(format!(
        "{:<22} {:<9} {:<60} detail",
        "problem", "repaired", "id"
    ));
    for p in &r.problems {
        let kind = serde_json::to_value(p.kind)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        lines.push(format!(
            "{:<22} {:<9} {:<60} {}",
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
