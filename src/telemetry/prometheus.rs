//! The Prometheus text exposition format (0.0.4) of a metrics report:
//! operations as a call counter, an error counter by kind and a latency
//! summary (p50/p95/p99, sum, count); the parts' values as they are.

use std::fmt::Write;

use super::MetricsReport;

/// A label value with `\`, `"` and newlines escaped.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// `{k="v",...}`, or nothing for no labels.
fn labels<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let inner: Vec<String> = pairs
        .into_iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
        .collect();
    if inner.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", inner.join(","))
    }
}

/// A float as Prometheus writes it.
fn num(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_owned()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.to_owned()
    } else {
        format!("{v}")
    }
}

fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {}", help.replace('\n', " "));
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

pub(crate) fn render(report: &MetricsReport) -> String {
    let mut out = String::new();
    let ops = &report.operations;
    header(
        &mut out,
        "bv_operations_total",
        "Calls of each public operation since the store opened.",
        "counter",
    );
    for o in ops {
        let _ = writeln!(
            out,
            "bv_operations_total{} {}",
            labels([("op", o.op.as_str())]),
            o.calls
        );
    }
    header(
        &mut out,
        "bv_operation_errors_total",
        "Failed calls of each public operation, by error kind.",
        "counter",
    );
    for o in ops {
        for (kind, n) in &o.errors {
            let l = labels([("op", o.op.as_str()), ("kind", kind.as_str())]);
            let _ = writeln!(out, "bv_operation_errors_total{l} {n}");
        }
    }
    let name = "bv_operation_duration_seconds";
    header(
        &mut out,
        name,
        "Time each public operation took (quantiles within 19 %).",
        "summary",
    );
    for o in ops {
        for (q, us) in [("0.5", o.p50_us), ("0.95", o.p95_us), ("0.99", o.p99_us)] {
            let l = labels([("op", o.op.as_str()), ("quantile", q)]);
            let _ = writeln!(out, "{name}{l} {}", num(us / 1e6));
        }
        let l = labels([("op", o.op.as_str())]);
        let _ = writeln!(out, "{name}_sum{l} {}", num(o.sum_us / 1e6));
        let _ = writeln!(out, "{name}_count{l} {}", o.calls);
    }
    // Values of one name are written together, under one header.
    let mut names: Vec<&str> = Vec::new();
    for v in &report.values {
        if !names.contains(&v.name.as_str()) {
            names.push(&v.name);
        }
    }
    for name in names {
        let mut first = true;
        for v in report.values.iter().filter(|v| v.name == name) {
            if first {
                header(&mut out, name, &v.help, &v.kind);
                first = false;
            }
            let l = labels(v.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            let _ = writeln!(out, "{name}{l} {}", num(v.value));
        }
    }
    let _ = writeln!(
        out,
        "# HELP bv_uptime_seconds Seconds since the store opened."
    );
    let _ = writeln!(out, "# TYPE bv_uptime_seconds gauge");
    let _ = writeln!(out, "bv_uptime_seconds {}", num(report.uptime_secs));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(labels([("k", "a\"b\\c\nd")]), "{k=\"a\\\"b\\\\c\\nd\"}");
        assert_eq!(labels([]), "");
        assert_eq!(num(f64::INFINITY), "+Inf");
        assert_eq!(num(0.5), "0.5");
    }
}
