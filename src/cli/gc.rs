//! `bvstore gc`: runs the lifecycle jobs (expiry, purge, orphan
//! collection, metric retention) now, or shows what they would do.

use bharatvoice_store::{JobReport, LIFECYCLE_JOBS};
use clap::Args;

use super::{Cli, Out, Outcome, done};

#[derive(Debug, Args)]
pub(crate) struct GcArgs {
    /// Run only this job (access-counts, expiry, purge, orphans,
    /// metric-retention, context-trim, audit-reads, audit-retention).
    #[arg(long, value_name = "NAME", value_parser = clap::builder::PossibleValuesParser::new(LIFECYCLE_JOBS))]
    job: Option<String>,
    /// Change nothing; report what a run would do.
    #[arg(long)]
    dry_run: bool,
}

/// `bvstore gc [--job NAME] [--dry-run]`: each job to its end, one table
/// (or, with `--json`, one report) per job.
pub(crate) async fn run(cli: &Cli, args: &GcArgs, out: &Out) -> Outcome {
    let store = match super::remote::open_or_ask(
        cli,
        out,
        bharatvoice_store::AdminRequest::Gc {
            job: args.job.clone(),
            dry_run: args.dry_run,
        },
    )
    .await?
    {
        super::remote::Opened::Local(store) => store,
        super::remote::Opened::Remote(outcome) => return outcome,
    };
    let lifecycle = store.lifecycle();
    let reports = match &args.job {
        Some(job) => vec![lifecycle.run_to_end(job, args.dry_run).await?],
        None => lifecycle.run_all(args.dry_run).await?,
    };
    let result = out.emit(&reports, || {
        reports.iter().map(table).collect::<Vec<_>>().join("\n\n")
    });
    store.close().await;
    done(result)
}

fn table(r: &JobReport) -> String {
    let mut lines = vec![format!(
        "{}{}  ({:.1} ms)",
        r.job,
        if r.dry_run {
            " (dry run: nothing changed)"
        } else {
            ""
        },
        r.duration_us as f64 / 1000.0
    )];
    for (what, n) in &r.counts {
        lines.push(format!("  {:<24} {n:>12}", what.replace('_', " ")));
    }
    for (why, n) in &r.skipped {
        lines.push(format!("  skipped: {:<15} {n:>12}", why.replace('_', " ")));
    }
    lines.join("\n")
}
