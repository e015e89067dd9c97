//! Commands against a store another process holds: redb lets no second
//! process open `store.redb`, so an operator's read commands (and verify,
//! backup, gc) ask the running store through its admin socket instead,
//! and say so. Commands that write a user's data are not served there.

use std::process::ExitCode;

use bharatvoice_store::{AdminClient, AdminRequest, AuditEvent, Error, Store, StoreStats};
use serde_json::Value;

use super::{Cli, Out, Outcome, clean};

/// The store, opened here; or the outcome of asking the process that
/// holds it.
pub(crate) enum Opened {
    Local(Store),
    Remote(Outcome),
}

/// Opens the store for a short command; if another process holds it,
/// sends `request` to that process's admin socket and prints the answer.
/// With no socket answering, the error is the lock's.
pub(crate) async fn open_or_ask(
    cli: &Cli,
    out: &Out,
    request: AdminRequest,
) -> Result<Opened, Error> {
    match super::open(cli).await {
        Ok(store) => Ok(Opened::Local(store)),
        Err(locked @ Error::Locked { .. }) => {
            let data_dir = super::config_of(cli)?.data_dir;
            let answer = ask(&data_dir, out, &request, locked).await?;
            Ok(Opened::Remote(print(out, &request, &answer)))
        }
        Err(e) => Err(e),
    }
}

/// Sends `request` to the admin socket of the store in `data_dir`, which
/// `locked` said another process holds, and notes on stderr where the
/// answer came from. With no socket answering, the error is the lock's.
pub(crate) async fn ask(
    data_dir: &std::path::Path,
    out: &Out,
    request: &AdminRequest,
    locked: Error,
) -> Result<Value, Error> {
    let client = AdminClient::new(data_dir);
    if !client.socket_path().exists() {
        return Err(locked);
    }
    match client.request(request).await {
        Err(Error::Io { .. }) => Err(locked),
        Err(e) => Err(e),
        Ok(answer) => {
            out.note(format!(
                "the store is in use by another process; asked it through {}",
                super::clean_path(client.socket_path())
            ));
            Ok(answer)
        }
    }
}

/// Prints an answer as the local command would print its result (JSON as
/// is; text by the shape of the request) and picks the exit code.
fn print(out: &Out, request: &AdminRequest, answer: &Value) -> Outcome {
    let code = match request {
        AdminRequest::Health => match answer["status"].as_str() {
            Some("healthy") => 0,
            Some("degraded") => 1,
            _ => 2,
        },
        AdminRequest::Verify { .. }
            if answer["problems"].as_array().is_some_and(|p| !p.is_empty()) =>
        {
            8
        }
        _ => 0,
    };
    out.emit(answer, || match request {
        AdminRequest::Health => health_text(answer),
        AdminRequest::Jobs => super::jobs::table(answer),
        AdminRequest::Gc { .. } => super::jobs::reports_text(answer),
        AdminRequest::Metrics => typed(answer, super::metrics::report_text),
        AdminRequest::Stats => typed(answer, |s: &StoreStats| {
            super::ops::stats_text(s, |id| id.to_string())
        }),
        AdminRequest::CacheStats => typed(answer, super::cache::render_stats),
        AdminRequest::Verify { .. } => typed(answer, super::verify::text),
        AdminRequest::Backup { .. } => typed(answer, super::backup::backup_text),
        AdminRequest::AuditTail { .. } => {
            typed(answer, |e: &Vec<AuditEvent>| super::audit::events_text(e))
        }
        _ => generic(answer, 0),
    })?;
    Ok(ExitCode::from(code))
}

fn health_text(h: &Value) -> String {
    let parts = h["parts"].as_array().into_iter().flatten().map(|p| {
        (
            scalar(&p["part"]),
            scalar(&p["status"]),
            p["took_us"].as_u64().unwrap_or(0),
            scalar(&p["detail"]),
        )
    });
    super::ops::health_text(&scalar(&h["status"]), parts)
}

/// `answer` read as `T` and printed by `render`; printed as generic lines
/// if it does not read (a store of another version).
fn typed<T: serde::de::DeserializeOwned>(
    answer: &Value,
    render: impl FnOnce(&T) -> String,
) -> String {
    match T::deserialize(answer) {
        Ok(value) => render(&value),
        Err(_) => generic(answer, 0),
    }
}

/// Any answer as indented `key: value` lines (lists as `- ` items).
fn generic(v: &Value, indent: usize) -> String {
    let pad = "  ".repeat(indent);
    match v {
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| match v {
                Value::Object(m) if !m.is_empty() => {
                    format!("{pad}{}:\n{}", clean(k), generic(v, indent + 1))
                }
                Value::Array(a) if !a.is_empty() => {
                    format!("{pad}{}:\n{}", clean(k), generic(v, indent + 1))
                }
                _ => format!("{pad}{}: {}", clean(k), scalar(v)),
            })
            .collect::<Vec<_>>()
            .join("\n"),
        Value::Array(items) => items
            .iter()
            .map(|item| match item {
                Value::Object(_) | Value::Array(_) => {
                    let inner = generic(item, indent + 1);
                    format!("{pad}-\n{inner}")
                }
                _ => format!("{pad}- {}", scalar(item)),
            })
            .collect::<Vec<_>>()
            .join("\n"),
        _ => format!("{pad}{}", scalar(v)),
    }
}

pub(crate) fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => clean(s).into_owned(),
        Value::Null => "-".to_owned(),
        Value::Object(_) => "{}".to_owned(),
        Value::Array(_) => "[]".to_owned(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_read_as_indented_lines() {
        let v = serde_json::json!({"a": 1, "b": {"c": "x\u{1b}"}, "d": [1, {"e": null}], "f": []});
        assert_eq!(
            generic(&v, 0),
            "a: 1\nb:\n  c: x\\u{1b}\nd:\n  - 1\n  -\n    e: -\nf: []"
        );
    }
}
