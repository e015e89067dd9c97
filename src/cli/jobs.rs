//! `bvstore jobs`: each background job, its interval and, from a running
//! store (through its admin socket), its passes, failures, last report
//! and last error. A store opened by this command has run nothing yet.

use bharatvoice_store::{AdminRequest, JobStatus};
use serde_json::Value;

use super::human;
use super::remote::{Opened, open_or_ask};
use super::table::{Align, Table};
use super::{Cli, Out, Outcome, clean, done};

pub(crate) async fn run(cli: &Cli, out: &Out) -> Outcome {
    let store = match open_or_ask(cli, out, AdminRequest::Jobs).await? {
        Opened::Local(store) => store,
        Opened::Remote(outcome) => return outcome,
    };
    let jobs: Vec<JobStatus> = store.jobs().list();
    let value = serde_json::to_value(&jobs).unwrap_or(Value::Null);
    let result = out.emit(&jobs, || {
        out.with_hint(
            table(&value),
            "(this process opened the store just now: a running store's figures come through its admin socket)",
        )
    });
    store.close().await;
    done(result)
}

/// The jobs as a table, from their JSON (the same for a local list and a
/// running store's answer).
pub(crate) fn table(jobs: &Value) -> String {
    let mut table = Table::new(&[
        ("JOB", Align::Left),
        ("EVERY", Align::Right),
        ("RUNS", Align::Right),
        ("FAILED", Align::Right),
        ("LAST", Align::Left),
    ]);
    for j in jobs.as_array().into_iter().flatten() {
        let mut last = match (&j["last_error"], &j["last_report"]) {
            (Value::Array(e), _) if e.len() == 2 => {
                format!(
                    "error at {}: {}",
                    human::time_value(&e[0]),
                    clean(e[1].as_str().unwrap_or(""))
                )
            }
            (_, Value::Object(r)) => {
                format!(
                    "{} {}",
                    human::time_value(&r["started_at"]),
                    counts(&r["counts"])
                )
            }
            _ => "-".to_owned(),
        };
        if j["poisoned"].as_bool() == Some(true) {
            last.push_str(" (poisoned: stopped)");
        }
        table.row([
            clean(j["name"].as_str().unwrap_or("?")).into_owned(),
            every(j["interval_ms"].as_u64().unwrap_or(0)),
            j["runs"].as_u64().unwrap_or(0).to_string(),
            j["failures"].as_u64().unwrap_or(0).to_string(),
            last,
        ]);
    }
    table.render()
}

/// An interval for people: `90 s`, `10 min`, `6 h`, `-` for none.
fn every(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0 => "-".into(),
        s if s % 3600 == 0 => format!("{} h", s / 3600),
        s if s % 60 == 0 => format!("{} min", s / 60),
        s => format!("{s} s"),
    }
}

/// `[["name", n], ...]` as `name n, ...`.
pub(crate) fn counts(v: &Value) -> String {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|pair| {
            let name = pair.get(0)?.as_str()?;
            let n = pair.get(1)?.as_u64()?;
            Some(format!("{} {n}", clean(&name.replace('_', " "))))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Lifecycle reports (`bvstore gc` from a running store) from their JSON.
pub(crate) fn reports_text(reports: &Value) -> String {
    reports
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            format!(
                "{}{}  ({:.1} ms)\n  {}{}",
                clean(r["job"].as_str().unwrap_or("?")),
                if r["dry_run"].as_bool() == Some(true) {
                    " (dry run: nothing changed)"
                } else {
                    ""
                },
                r["duration_us"].as_f64().unwrap_or(0.0) / 1000.0,
                match counts(&r["counts"]) {
                    c if c.is_empty() => "nothing to do".to_owned(),
                    c => c,
                },
                match counts(&r["skipped"]) {
                    s if s.is_empty() => String::new(),
                    s => format!("\n  skipped: {s}"),
                }
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}
