//! `bvstore cache exists|keys|expire|persist|mget`: the cache's keyspace
//! from the command line, as redis-cli has it. Exit codes as for the
//! other cache commands: 1 when a key is missing (for `mget`, when any
//! is), 13 when `cache.redb` cannot be read or take the change.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use bharatvoice_store::{Cache, Error, Ttl};
use clap::Args;

use super::cache::missing;
use super::{Out, Outcome, clean};

#[derive(Debug, Args)]
pub(crate) struct KeyArgs {
    /// The key.
    key: String,
}

#[derive(Debug, Args)]
pub(crate) struct KeysArgs {
    /// A glob over the whole key: `*` any run of characters, `?` one
    /// character, `\` makes the next one literal (quote it for the shell).
    pattern: String,
}

#[derive(Debug, Args)]
pub(crate) struct ExpireArgs {
    /// The key.
    key: String,
    /// Seconds from now (0 deletes the key).
    secs: u64,
}

#[derive(Debug, Args)]
pub(crate) struct MgetArgs {
    /// The keys, in the order their values print.
    #[arg(required = true)]
    keys: Vec<String>,
}

/// `bvstore cache exists KEY`: prints 1 and exits 0 if the key holds a
/// live value, else prints 0 and exits 1 (so `if bvstore -q cache exists
/// K` reads as it should).
pub(crate) async fn exists(c: &Cache<'_>, args: &KeyArgs, out: &Out) -> Outcome {
    let key = &args.key;
    let exists = !matches!(c.ttl(key).await?, Ttl::Missing);
    out.emit(&serde_json::json!({ "key": key, "exists": exists }), || {
        u8::from(exists).to_string()
    })?;
    Ok(match exists {
        true => ExitCode::SUCCESS,
        false => ExitCode::from(1),
    })
}

/// `bvstore cache keys PATTERN`: one key a line, sorted, and nothing
/// else on stdout (a note on stderr when none matches).
pub(crate) async fn keys(c: &Cache<'_>, args: &KeysArgs, out: &Out) -> Outcome {
    let keys = c.keys(&args.pattern).await?;
    out.emit(
        &serde_json::json!({ "pattern": args.pattern, "keys": keys }),
        || {
            keys.iter()
                .map(|k| clean(k).into_owned())
                .collect::<Vec<_>>()
                .join("\n")
        },
    )?;
    if keys.is_empty() && !out.json() {
        out.note(format_args!("no key matches {}", clean(&args.pattern)));
    }
    Ok(ExitCode::SUCCESS)
}

/// `bvstore cache expire KEY SECS`.
pub(crate) async fn expire(c: &Cache<'_>, args: &ExpireArgs, out: &Out) -> Outcome {
    let key = &args.key;
    if !c.expire(key, Some(Duration::from_secs(args.secs))).await? {
        return missing(out, key);
    }
    c.flush().await?;
    let doc = match args.secs {
        0 => serde_json::json!({ "key": key, "deleted": true }),
        s => serde_json::json!({ "key": key, "ttl_secs": s }),
    };
    out.emit(&doc, || "OK".into())?;
    Ok(ExitCode::SUCCESS)
}

/// `bvstore cache persist KEY`: says so when the key had no expiry.
pub(crate) async fn persist(c: &Cache<'_>, args: &KeyArgs, out: &Out) -> Outcome {
    let key = &args.key;
    let had_expiry = match c.ttl(key).await? {
        Ttl::Missing => return missing(out, key),
        Ttl::Remaining(_) => true,
        _ => false,
    };
    if had_expiry {
        if !c.expire(key, None).await? {
            // It expired between the two calls.
            return missing(out, key);
        }
        c.flush().await?;
    }
    out.emit(
        &serde_json::json!({ "key": key, "ttl_secs": -1, "changed": had_expiry }),
        || match had_expiry {
            true => "OK".into(),
            false => format!("{} has no expiry: nothing changed", clean(key)),
        },
    )?;
    Ok(ExitCode::SUCCESS)
}

/// `bvstore cache mget KEY...`: each value raw on its own line, `(nil)`
/// for a missing key; `--json`: `[{"key", "value"}]`, `null` for a
/// missing one.
pub(crate) async fn mget(c: &Cache<'_>, args: &MgetArgs, out: &Out) -> Outcome {
    let values = c.get_many_bytes(&args.keys).await?;
    let all_found = values.iter().all(Option::is_some);
    if out.json() {
        let doc: Vec<_> = args
            .keys
            .iter()
            .zip(&values)
            .map(|(key, v)| {
                let value = v.as_ref().map(|v| String::from_utf8_lossy(v).into_owned());
                serde_json::json!({ "key": key, "value": value })
            })
            .collect();
        out.emit(&doc, String::new)?;
    } else {
        let mut stdout = std::io::stdout().lock();
        for v in &values {
            let bytes: &[u8] = v.as_deref().unwrap_or(b"(nil)");
            stdout
                .write_all(bytes)
                .and_then(|_| stdout.write_all(b"\n"))
                .map_err(|e| Error::io("writing to stdout", e))?;
        }
        stdout
            .flush()
            .map_err(|e| Error::io("writing to stdout", e))?;
    }
    Ok(match all_found {
        true => ExitCode::SUCCESS,
        false => ExitCode::from(1),
    })
}
