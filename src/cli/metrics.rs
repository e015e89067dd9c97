//! `bvstore metrics [--prometheus]`: the store's operation metrics and
//! its parts' counters and gauges. Against a running store (through its
//! admin socket) the figures are live; otherwise they are the last
//! snapshot the store wrote into its metrics table while it ran, with the
//! parts' values read now. `--json` has one shape either way:
//! `{"snapshot": {"at", "samples"} | null, "now": {...}}` (a running
//! store's live figures are `now`, with no snapshot).

use bharatvoice_store::{AdminRequest, MetricSample, MetricsReport};
use clap::Args;

use super::{Cli, Out, Outcome, clean, done};

#[derive(Debug, Args)]
pub(crate) struct MetricsArgs {
    /// Print the Prometheus text exposition format instead.
    #[arg(long, conflicts_with = "json")]
    prometheus: bool,
}

pub(crate) async fn run(cli: &Cli, args: &MetricsArgs, out: &Out) -> Outcome {
    let request = AdminRequest::Metrics;
    let store = if args.prometheus {
        // The answer is printed here, as text, not by the generic printer.
        match super::open(cli).await {
            Ok(store) => store,
            Err(locked @ bharatvoice_store::Error::Locked { .. }) => {
                let data_dir = super::config_of(cli)?.data_dir;
                let client = bharatvoice_store::AdminClient::new(&data_dir);
                let report = match client.metrics().await {
                    Ok(r) => r,
                    Err(bharatvoice_store::Error::Io { .. }) => return Err(locked),
                    Err(e) => return Err(e),
                };
                print!("{}", report.prometheus());
                return Ok(std::process::ExitCode::SUCCESS);
            }
            Err(e) => return Err(e),
        }
    } else {
        match super::open(cli).await {
            Ok(store) => store,
            Err(locked @ bharatvoice_store::Error::Locked { .. }) => {
                let data_dir = super::config_of(cli)?.data_dir;
                let answer = super::remote::ask(&data_dir, out, &request, locked).await?;
                // The shape a closed store's figures have; a running
                // store's are live, so there is no snapshot to show.
                let doc = serde_json::json!({ "snapshot": null, "now": answer });
                return done(out.emit(&doc, || {
                    match serde_json::from_value::<MetricsReport>(answer.clone()) {
                        Ok(report) => format!("now (the running store):\n{}", report_text(&report)),
                        Err(_) => answer.to_string(),
                    }
                }));
            }
            Err(e) => return Err(e),
        }
    };
    let now = store.metrics_report().await?;
    let snapshot = store.last_metrics_snapshot().await?;
    let result = if args.prometheus {
        out.note("the store is not running: part values only (a running store serves its operation figures)");
        print!("{}", now.prometheus());
        Ok(())
    } else {
        let doc = serde_json::json!({
            "snapshot": snapshot.as_ref().map(|(at, samples)| serde_json::json!({"at": at, "samples": samples})),
            "now": now,
        });
        out.emit(&doc, || {
            let head = match &snapshot {
                Some((at, samples)) => format!(
                    "last snapshot, {} (what the store did in the interval before it):\n{}",
                    at,
                    samples_text(samples)
                ),
                None => {
                    "no snapshot yet: a running store writes one every metrics.snapshot_interval"
                        .to_owned()
                }
            };
            format!("{head}\n\nnow:\n{}", values_text(&now))
        })
    };
    store.close().await;
    done(result)
}

fn labels_text(labels: impl IntoIterator<Item = (String, String)>) -> String {
    labels
        .into_iter()
        .map(|(k, v)| format!("{}={}", clean(&k), clean(&v)))
        .collect::<Vec<_>>()
        .join(",")
}

fn samples_text(samples: &[MetricSample]) -> String {
    let mut lines = vec![format!("{:<32} {:<32} {:>14}", "name", "labels", "value")];
    for s in samples {
        lines.push(format!(
            "{:<32} {:<32} {:>14}",
            clean(&s.name),
            labels_text(s.labels.clone()),
            s.value
        ));
    }
    lines.join("\n")
}

fn values_text(r: &MetricsReport) -> String {
    let mut lines = vec![format!("{:<32} {:<32} {:>14}", "name", "labels", "value")];
    for v in &r.values {
        lines.push(format!(
            "{:<32} {:<32} {:>14}",
            v.name,
            labels_text(v.labels.clone()),
            v.value
        ));
    }
    lines.join("\n")
}

/// A live report: each operation's figures, then the parts' values.
pub(crate) fn report_text(r: &MetricsReport) -> String {
    let mut lines = vec![
        format!("up {:.0} s", r.uptime_secs),
        format!(
            "{:<32} {:>10} {:>8} {:>10} {:>10} {:>10}",
            "operation", "calls", "errors", "p50 ms", "p95 ms", "p99 ms"
        ),
    ];
    for o in &r.operations {
        lines.push(format!(
            "{:<32} {:>10} {:>8} {:>10.3} {:>10.3} {:>10.3}",
            o.op,
            o.calls,
            o.error_count(),
            o.p50_us / 1000.0,
            o.p95_us / 1000.0,
            o.p99_us / 1000.0
        ));
    }
    format!("{}\n\n{}", lines.join("\n"), values_text(r))
}
