//! `bvstore health`, `bvstore stats` and `bvstore compact`: an operator's
//! view of the store's state and what it holds, and the one maintenance
//! step that needs it to itself.

use std::process::ExitCode;

use bharatvoice_store::{CompactReport, Health, HealthStatus, StoreStats, UserId};

use super::human::size;
use super::table::{Align, Table};
use super::{Cli, Out, Outcome, clean, done, open};

/// `bvstore health`: each part's status, what its probe saw and how long
/// it took. Exits 0 healthy, 1 degraded, 2 unhealthy (the usual monitor
/// convention), whatever the output format.
pub(crate) async fn health(cli: &Cli, out: &Out) -> Outcome {
    let store = match super::remote::open_or_ask(cli, out, bharatvoice_store::AdminRequest::Health)
        .await?
    {
        super::remote::Opened::Local(store) => store,
        super::remote::Opened::Remote(outcome) => return outcome,
    };
    let health = store.health().await;
    out.emit(&health, || health_table(&health))?;
    store.close().await;
    Ok(ExitCode::from(match health.status {
        HealthStatus::Healthy => 0,
        HealthStatus::Degraded => 1,
        HealthStatus::Unhealthy => 2,
    }))
}

fn health_table(h: &Health) -> String {
    health_text(
        &h.status.to_string(),
        h.parts.iter().map(|p| {
            (
                p.part.to_string(),
                p.status.to_string(),
                p.took_us,
                clean(&p.detail).into_owned(),
            )
        }),
    )
}

/// Health as text: the status, then a row a part (name, status, time
/// taken in µs, detail), for a local check and a running store's answer.
pub(crate) fn health_text(
    status: &str,
    parts: impl Iterator<Item = (String, String, u64, String)>,
) -> String {
    let mut table = Table::new(&[
        ("PART", Align::Left),
        ("STATUS", Align::Left),
        ("TOOK", Align::Right),
        ("DETAIL", Align::Left),
    ]);
    for (part, status, took_us, detail) in parts {
        table.row([
            part,
            status,
            format!("{:.2} ms", took_us as f64 / 1000.0),
            detail,
        ]);
    }
    format!("store: {status}\n{}", table.render())
}

/// `bvstore stats`: counts, sizes, compression by content type, dedup
/// savings, the largest users, the cache's hit ratio and the settings
/// that bound growth.
pub(crate) async fn stats(cli: &Cli, out: &Out) -> Outcome {
    let store =
        match super::remote::open_or_ask(cli, out, bharatvoice_store::AdminRequest::Stats).await? {
            super::remote::Opened::Local(store) => store,
            super::remote::Opened::Remote(outcome) => return outcome,
        };
    let stats = store.stats().await?;
    let result = out.emit(&stats, || {
        stats_text(&stats, |id| {
            store
                .users()
                .get(id)
                .map_or_else(|_| id.to_string(), |u| clean(&u.username).into_owned())
        })
    });
    store.close().await;
    done(result)
}

/// `stats` as text; `name` gives a user's name (a running store's answer
/// has ids only).
pub(crate) fn stats_text(s: &StoreStats, name: impl Fn(UserId) -> String) -> String {
    let mut lines = vec![
        format!("users      {:>10}  ({} deleted)", s.users, s.users_deleted),
        format!(
            "sessions   {:>10}  ({} deleted, {} turns)",
            s.sessions, s.sessions_deleted, s.turns
        ),
        format!(
            "files      {:>10}  ({} deleted), {} of audio",
            s.files,
            s.files_deleted,
            size(s.plain_bytes)
        ),
        format!(
            "blobs      {:>10}  {} stored; deduplication saves {}",
            s.blobs,
            size(s.blob_stored_bytes),
            size(s.dedup_saved_bytes)
        ),
    ];
    let mut types = Table::new(&[
        ("CONTENT TYPE", Align::Left),
        ("FILES", Align::Right),
        ("PLAIN", Align::Right),
        ("STORED", Align::Right),
        ("RATIO", Align::Right),
        ("STORED RAW", Align::Right),
    ]);
    for t in &s.by_content_type {
        types.row([
            clean(&t.content_type).into_owned(),
            t.files.to_string(),
            size(t.plain_bytes),
            size(t.stored_bytes),
            format!("{:.2}", t.ratio),
            t.uncompressed_files.to_string(),
        ]);
    }
    if !types.is_empty() {
        lines.push(String::new());
        lines.push(types.render());
    }
    if !s.top_users.is_empty() {
        let mut users = Table::new(&[
            ("USER", Align::Left),
            ("BLOBS", Align::Right),
            ("STORED", Align::Right),
        ]);
        for u in &s.top_users {
            users.row([name(u.user), u.blobs.to_string(), size(u.stored_bytes)]);
        }
        lines.push(String::new());
        lines.push(users.render());
    }
    lines.push(String::new());
    lines.push(format!(
        "cache      {} lookups, hit ratio {:.1} %, {} entries in memory",
        s.cache.lookups,
        s.cache.hit_ratio * 100.0,
        s.cache.tier1.entries
    ));
    lines.push(format!(
        "files      store.redb {}, cache.redb {}",
        size(s.db_file_bytes),
        size(s.cache_file_bytes)
    ));
    lines.push(format!(
        "settings   retention {} days; per-user quota {}; {} kept free; data region {}",
        s.default_retention_days,
        s.user_quota_bytes.map_or("none".into(), size),
        size(s.min_free_bytes),
        s.data_region.as_deref().unwrap_or("not set")
    ));
    lines.join("\n")
}

/// `bvstore compact`: gives the free pages of `store.redb` and
/// `cache.redb` back to the file system.
pub(crate) async fn compact(cli: &Cli, out: &Out) -> Outcome {
    let store = open(cli).await?;
    let report = store.compact().await?;
    let result = out.emit(&report, || compact_table(&report));
    store.close().await;
    done(result)
}

fn compact_table(r: &CompactReport) -> String {
    let mut lines = vec![format!(
        "{:<11} {:>10} {:>10} {:>10}",
        "file", "before", "after", "reclaimed"
    )];
    for f in &r.files {
        let mut line = format!(
            "{:<11} {:>10} {:>10} {:>10}",
            f.file,
            size(f.before_bytes),
            size(f.after_bytes),
            size(f.reclaimed_bytes())
        );
        if let Some(why) = &f.skipped {
            line.push_str(&format!("  (not compacted: {})", clean(why)));
        }
        lines.push(line);
    }
    lines.push(format!("reclaimed {} in all", size(r.reclaimed_bytes)));
    lines.join("\n")
}
