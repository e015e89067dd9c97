//! `bvstore health`, `bvstore stats` and `bvstore compact`: an operator's
//! view of the store's state and what it holds, and the one maintenance
//! step that needs it to itself.

use std::process::ExitCode;

use bharatvoice_store::{CompactReport, Health, HealthStatus, Store, StoreStats};

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
    let mut lines = vec![
        format!("store: {}", h.status),
        format!("{:<10} {:<10} {:>9}  detail", "part", "status", "took"),
    ];
    for p in &h.parts {
        lines.push(format!(
            "{:<10} {:<10} {:>6.2} ms  {}",
            p.part,
            p.status.to_string(),
            p.took_us as f64 / 1000.0,
            clean(&p.detail)
        ));
    }
    lines.join("\n")
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
    let result = out.emit(&stats, || stats_text(&store, &stats));
    store.close().await;
    done(result)
}

fn stats_text(store: &Store, s: &StoreStats) -> String {
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
        String::new(),
        format!(
            "{:<24} {:>8} {:>10} {:>10} {:>6} {:>8}",
            "content type", "files", "plain", "stored", "ratio", "raw"
        ),
    ];
    for t in &s.by_content_type {
        lines.push(format!(
            "{:<24} {:>8} {:>10} {:>10} {:>6.2} {:>8}",
            clean(&t.content_type),
            t.files,
            size(t.plain_bytes),
            size(t.stored_bytes),
            t.ratio,
            t.uncompressed_files
        ));
    }
    if !s.top_users.is_empty() {
        lines.push(String::new());
        lines.push(format!("{:<36} {:>8} {:>10}", "user", "blobs", "stored"));
        for u in &s.top_users {
            let name = store
                .users()
                .get(u.user)
                .map(|user| user.username)
                .unwrap_or_else(|_| u.user.to_string());
            lines.push(format!(
                "{:<36} {:>8} {:>10}",
                clean(&name),
                u.blobs,
                size(u.stored_bytes)
            ));
        }
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

/// Bytes in the largest binary unit that keeps the number at least 1.
pub(crate) fn size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes_read_in_binary_units() {
        assert_eq!(super::size(0), "0 B");
        assert_eq!(super::size(1023), "1023 B");
        assert_eq!(super::size(1024), "1.0 KiB");
        assert_eq!(super::size(5 << 20), "5.0 MiB");
        assert_eq!(super::size(3 << 30 | 1 << 29), "3.5 GiB");
    }
}
