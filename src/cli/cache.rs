//! `bvstore cache ...`: the tiered cache from the command line.
//!
//! Each run is a new process, so what one run sets the next one reads from
//! tier 2 (`cache.redb`): a command that writes waits until its write is
//! durable, and fails with exit code 13 (printing nothing on stdout) if
//! `cache.redb` cannot take it. Exit code 1 (with nothing on stdout) when a
//! key is missing (`get`, `ttl`, `expire`, `persist`) or when `--nx`/`--xx`
//! stops a `set`. The keyspace commands (`exists`, `keys`, `expire`,
//! `persist`, `mget`) are in `cache_keyspace`.
//!
//! `set` stores VALUE's bytes as given and `get` prints them back raw. A
//! value written through the library's typed API is JSON, so a string set
//! there prints with its quotes.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use bharatvoice_store::{Cache, CacheStats, Error, SetOptions, Ttl};
use clap::{Args, Subcommand};

use super::cache_keyspace as keyspace;
use super::{Cli, Out, Outcome, clean, open};

#[derive(Debug, Subcommand)]
pub(crate) enum CacheCommand {
    /// Print a key's value as stored (raw bytes); exit 1 if missing or expired.
    Get(GetArgs),
    /// Set a key to VALUE; exit 1 if --nx or --xx stops the write.
    Set(SetArgs),
    /// Delete a key; prints 1 if it existed, else 0.
    Del(DelArgs),
    /// Add BY (default 1, may be negative) to a decimal integer value;
    /// prints the new value.
    Incr(IncrArgs),
    /// Print the whole seconds a key has left (-1: no expiry); exit 1 if missing.
    Ttl(TtlArgs),
    /// Make every entry tagged T stale; prints how many there were (an estimate).
    InvalidateTag(InvalidateTagArgs),
    /// Empty the cache.
    Clear,
    /// Hits, misses, evictions and sizes per tier.
    Stats,
    /// Print 1 if a key holds a live value (exit 0), else 0 (exit 1).
    Exists(keyspace::KeyArgs),
    /// The live keys matching a glob (`*`, `?`, `\` escapes), sorted, one
    /// a line, from memory and cache.redb.
    Keys(keyspace::KeysArgs),
    /// Expire a key SECS seconds from now (0 deletes it); exit 1 if missing.
    Expire(keyspace::ExpireArgs),
    /// Remove a key's expiry; exit 1 if missing.
    Persist(keyspace::KeyArgs),
    /// Print several keys' values, one a line (`(nil)` for a missing
    /// one); exit 1 if any is missing.
    Mget(keyspace::MgetArgs),
}

#[derive(Debug, Args)]
pub(crate) struct GetArgs {
    /// The key.
    key: String,
}

#[derive(Debug, Args)]
pub(crate) struct SetArgs {
    /// The key.
    key: String,
    /// The value, stored as given.
    #[arg(allow_hyphen_values = true)]
    value: String,
    /// Expire after SECS seconds (default: the cache's default TTL).
    #[arg(long, value_name = "SECS")]
    ttl: Option<u64>,
    /// Tag the entry (repeatable); `invalidate-tag` drops tagged entries.
    #[arg(long = "tag", value_name = "T")]
    tags: Vec<String>,
    /// Only if the key does not exist.
    #[arg(long, conflicts_with = "xx")]
    nx: bool,
    /// Only if the key exists.
    #[arg(long)]
    xx: bool,
}

#[derive(Debug, Args)]
pub(crate) struct DelArgs {
    /// The key.
    key: String,
}

#[derive(Debug, Args)]
pub(crate) struct IncrArgs {
    /// The key (created at 0 if missing).
    key: String,
    /// The amount.
    #[arg(allow_negative_numbers = true)]
    by: Option<i64>,
}

#[derive(Debug, Args)]
pub(crate) struct TtlArgs {
    /// The key.
    key: String,
}

#[derive(Debug, Args)]
pub(crate) struct InvalidateTagArgs {
    /// The tag.
    tag: String,
}

/// The store is closed (its writes waited for) only after a command that
/// succeeded; on an error it is dropped as it stands.
pub(crate) async fn run(cli: &Cli, cmd: &CacheCommand, out: &Out) -> Outcome {
    let store = match cmd {
        CacheCommand::Stats => {
            match super::remote::open_or_ask(cli, out, bharatvoice_store::AdminRequest::CacheStats)
                .await?
            {
                super::remote::Opened::Local(store) => store,
                super::remote::Opened::Remote(outcome) => return outcome,
            }
        }
        _ => open(cli).await?,
    };
    let c = store.cache();
    let code = match cmd {
        CacheCommand::Get(args) => get(&c, args, out).await?,
        CacheCommand::Set(args) => set(&c, args, out).await?,
        CacheCommand::Del(args) => del(&c, args, out).await?,
        CacheCommand::Incr(args) => incr(&c, args, out).await?,
        CacheCommand::Ttl(args) => ttl(&c, args, out).await?,
        CacheCommand::InvalidateTag(args) => invalidate_tag(&c, args, out).await?,
        CacheCommand::Clear => clear(&c, out).await?,
        CacheCommand::Stats => stats(&c, out)?,
        CacheCommand::Exists(args) => keyspace::exists(&c, args, out).await?,
        CacheCommand::Keys(args) => keyspace::keys(&c, args, out).await?,
        CacheCommand::Expire(args) => keyspace::expire(&c, args, out).await?,
        CacheCommand::Persist(args) => keyspace::persist(&c, args, out).await?,
        CacheCommand::Mget(args) => keyspace::mget(&c, args, out).await?,
    };
    store.close().await;
    Ok(code)
}

/// A missing key: exit 1, nothing on stdout but `{"key", "value": null}`
/// with `--json`, a note on stderr unless `--quiet`.
pub(super) fn missing(out: &Out, key: &str) -> Outcome {
    out.emit_json_only(&serde_json::json!({ "key": key, "value": null }))?;
    out.note(format_args!("{}: no such key (or it expired)", clean(key)));
    Ok(ExitCode::from(1))
}

/// `bvstore cache get`.
async fn get(c: &Cache<'_>, args: &GetArgs, out: &Out) -> Outcome {
    let key = &args.key;
    let Some(v) = c.get_bytes(key).await? else {
        return missing(out, key);
    };
    if out.json() {
        let text = String::from_utf8_lossy(&v);
        out.emit(
            &serde_json::json!({ "key": key, "value": text }),
            String::new,
        )?;
    } else {
        let mut stdout = std::io::stdout().lock();
        stdout
            .write_all(&v)
            .and_then(|_| stdout.write_all(b"\n"))
            .and_then(|_| stdout.flush())
            .map_err(|e| Error::io("writing to stdout", e))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `bvstore cache set`.
async fn set(c: &Cache<'_>, args: &SetArgs, out: &Out) -> Outcome {
    let key = &args.key;
    let mut opts = SetOptions::new().tags(args.tags.iter().cloned());
    if let Some(secs) = args.ttl {
        opts = opts.ttl(Duration::from_secs(secs));
    }
    if args.nx {
        opts = opts.if_absent();
    }
    if args.xx {
        opts = opts.if_present();
    }
    let written = c.set_bytes_with(key, args.value.as_bytes(), &opts).await?;
    if written {
        c.flush().await?;
    }
    out.emit(
        &serde_json::json!({ "key": key, "written": written }),
        || {
            if written { "OK".into() } else { String::new() }
        },
    )?;
    if written {
        return Ok(ExitCode::SUCCESS);
    }
    let why = if args.nx {
        "it exists"
    } else {
        "it does not exist"
    };
    out.note(format_args!("{}: not set, {why}", clean(key)));
    Ok(ExitCode::from(1))
}

/// `bvstore cache del`.
async fn del(c: &Cache<'_>, args: &DelArgs, out: &Out) -> Outcome {
    let existed = c.delete(&args.key).await?;
    out.emit(
        &serde_json::json!({ "key": args.key, "deleted": u8::from(existed) }),
        || u8::from(existed).to_string(),
    )?;
    Ok(ExitCode::SUCCESS)
}

/// `bvstore cache incr`.
async fn incr(c: &Cache<'_>, args: &IncrArgs, out: &Out) -> Outcome {
    let n = c.incr(&args.key, args.by.unwrap_or(1)).await?;
    c.flush().await?;
    out.emit(&serde_json::json!({ "key": args.key, "value": n }), || {
        n.to_string()
    })?;
    Ok(ExitCode::SUCCESS)
}

/// `bvstore cache ttl`.
async fn ttl(c: &Cache<'_>, args: &TtlArgs, out: &Out) -> Outcome {
    let key = &args.key;
    let secs: i64 = match c.ttl(key).await? {
        Ttl::Missing => return missing(out, key),
        // Rounded to the nearest second, as Redis does.
        Ttl::Remaining(d) => ((d.as_millis() + 500) / 1000) as i64,
        _ => -1,
    };
    out.emit(&serde_json::json!({ "key": key, "ttl_secs": secs }), || {
        secs.to_string()
    })?;
    Ok(ExitCode::SUCCESS)
}

/// `bvstore cache invalidate-tag`.
async fn invalidate_tag(c: &Cache<'_>, args: &InvalidateTagArgs, out: &Out) -> Outcome {
    let n = c.invalidate_tag(&args.tag).await?;
    out.emit(
        &serde_json::json!({ "tag": args.tag, "invalidated": n }),
        || n.to_string(),
    )?;
    Ok(ExitCode::SUCCESS)
}

/// `bvstore cache clear`.
async fn clear(c: &Cache<'_>, out: &Out) -> Outcome {
    c.clear().await?;
    out.emit(&serde_json::json!({ "cleared": true }), || "OK".into())?;
    Ok(ExitCode::SUCCESS)
}

/// `bvstore cache stats`.
fn stats(c: &Cache<'_>, out: &Out) -> Outcome {
    let s = c.stats();
    out.emit(&s, || render_stats(&s))?;
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn render_stats(s: &CacheStats) -> String {
    let (t1, t2) = (&s.tier1, &s.tier2);
    let mut text = format!(
        "lookups {} (hit ratio {:.1}%), inserts {}\n\
         tier   state     hits  misses  entries  bytes / capacity   evicted size/expired/explicit/tag\n\
         memory {:<8} {:>5} {:>7} {:>8}  {} / {}   {}/{}/{}/{}\n\
         disk   {:<8} {:>5} {:>7} {:>8}  {} / {}   {}/{}/{}/{}",
        s.lookups,
        s.hit_ratio * 100.0,
        s.inserts,
        "up",
        t1.hits,
        t1.misses,
        t1.entries,
        t1.bytes,
        t1.capacity_bytes,
        t1.evictions.size,
        t1.evictions.expired,
        t1.evictions.explicit,
        t1.evictions.tag,
        t2.state.to_string(),
        t2.hits,
        t2.misses,
        t2.entries,
        t2.bytes,
        t2.capacity_bytes,
        t2.evictions.size,
        t2.evictions.expired,
        t2.evictions.explicit,
        t2.evictions.tag,
    );
    if let Some(e) = &t2.last_error {
        text.push_str(&format!("\ntier 2 degraded: {e}"));
    }
    text
}
