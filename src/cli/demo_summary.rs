//! The text summary of `bvstore demo`: a table with a row per phase, a
//! few lines on what the store's own figures say (compression, dedup,
//! cache, lifecycle, privacy, backup, verify, health), where the data and
//! its master key are, and commands to try next on the same directory.
//! Kept apart from the phases so that what the demo does and how it reads
//! can change one without the other.

use std::path::Path;

use bharatvoice_store::MasterKeySource;

use super::demo::DemoReport;
use super::demo_phase::PhaseRow;
use super::human::size;
use super::table::{Align, Table};
use super::{Cli, clean, clean_path};

/// `n` with a comma between groups of three digits (`19,500`).
pub(crate) fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A row's throughput for a person: `18.5 MiB/s`, `30,241 writes/s`.
fn throughput(row: &PhaseRow) -> String {
    match row.unit {
        "bytes" => format!("{}/s", size(row.per_second as u64)),
        unit => format!("{} {unit}/s", grouped(row.per_second.round() as u64)),
    }
}

/// The phases as a table with a header row, columns aligned.
fn table(rows: &[PhaseRow]) -> String {
    let mut table = Table::new(&[
        ("PHASE", Align::Left),
        ("DONE", Align::Left),
        ("SECONDS", Align::Right),
        ("THROUGHPUT", Align::Right),
    ]);
    for r in rows {
        table.row([
            r.name.to_string(),
            r.detail.clone(),
            format!("{:.2}", r.seconds),
            throughput(r),
        ]);
    }
    table.render()
}

/// Compression of this run's files: in all, then a line per content type.
fn compression(r: &DemoReport) -> Vec<String> {
    let mut lines = vec![format!(
        "{} of audio stored in {} (compressed where it pays, then encrypted)",
        size(r.files.plain_bytes),
        size(r.files.stored_bytes)
    )];
    for t in &r.files.by_type {
        let how = if t.raw_files == t.files {
            "stored raw: already compressed".to_string()
        } else {
            format!(
                "{:.2}x smaller, {} of {} files stored raw",
                t.plain_bytes as f64 / t.stored_bytes.max(1) as f64,
                t.raw_files,
                t.files
            )
        };
        lines.push(format!(
            "  {} {} -> {}, {how}",
            clean(&t.content_type),
            size(t.plain_bytes),
            size(t.stored_bytes)
        ));
    }
    lines
}

/// `label` on the first of `lines`, blank on the rest.
fn labelled(
    label: &'static str,
    lines: Vec<String>,
) -> impl Iterator<Item = (&'static str, String)> {
    lines
        .into_iter()
        .enumerate()
        .map(move |(i, l)| (if i == 0 { label } else { "" }, l))
}

/// The lines under the table, each a label and what the store reported.
fn details(r: &DemoReport) -> Vec<(&'static str, String)> {
    let f = &r.files;
    let c = &r.cache;
    let ops = &r.operations;
    let mut lines = vec![("languages", r.languages.join(", "))];
    lines.extend(labelled("compression", compression(r)));
    lines.extend([
        (
            "dedup",
            format!(
                "{} clip(s) stored again by their owners added no blob: {} saved \
                 ({} blobs for {} files)",
                f.repeated_clips,
                size(f.dedup_saved_bytes),
                grouped(f.blobs_added),
                grouped((f.wav_clips + f.opus_clips + f.repeated_clips) as u64)
            ),
        ),
        (
            "cache",
            format!(
                "hit ratio {:.1} %; {} loads from the database; a profile change \
                 invalidated {} entries ({} reloaded); disk tier {}",
                c.hit_ratio * 100.0,
                grouped(c.loads_from_db as u64),
                c.invalidated_entries,
                c.reloads_after_invalidation,
                c.tier2_state
            ),
        ),
        (
            "lifecycle",
            format!(
                "{} clips with a 1-day retention, {} kept a year, on a scratch store \
                 whose clock moved 5 days",
                r.lifecycle.clips_short_retention, r.lifecycle.clips_kept
            ),
        ),
    ]);
    lines.extend(
        super::demo_lifecycle::work_done(&r.lifecycle)
            .into_iter()
            .map(|l| ("", format!("  {l}"))),
    );
    lines.extend(labelled("privacy", super::demo_privacy::lines(&r.privacy)));
    lines.push((
        "backup",
        format!(
            "generation {} in {}: {} blobs, {} copied, {} linked or already there",
            ops.generation,
            clean_path(&ops.backup_dir),
            grouped(ops.blobs),
            size(ops.blob_bytes_written),
            size(ops.blob_bytes_skipped)
        ),
    ));
    lines.push((
        "verify",
        format!(
            "{} blobs read and authenticated, {} problem(s)",
            grouped(ops.verified_blobs),
            ops.problems
        ),
    ));
    lines.push(("health", r.health.to_string()));
    lines.extend(ops.health_notes.iter().map(|n| ("", clean(n).into_owned())));
    lines
}

/// Where the data and its master key are, and what to do with the key.
fn places(r: &DemoReport) -> Vec<(&'static str, String)> {
    // Whole paths, to find them from anywhere.
    let absolute = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let data = absolute(Path::new(&r.data_dir));
    let key = &r.master_key;
    let where_key = match &key.source {
        MasterKeySource::Embedded(p) if key.generated_by_this_run => {
            format!("{}, generated by this run", clean_path(&absolute(p)))
        }
        MasterKeySource::Embedded(p) => format!(
            "{}, generated when the store was made",
            clean_path(&absolute(p))
        ),
        MasterKeySource::File(p) => format!("{} (from {})", clean_path(p), key.given_by),
        MasterKeySource::Given => format!(
            "given in {}, not stored in the data directory",
            key.given_by
        ),
    };
    vec![
        (
            "data",
            format!(
                "{} ({} users in the store now)",
                clean_path(&data),
                grouped(r.users_in_store as u64)
            ),
        ),
        ("master key", where_key),
        (
            "",
            "keep the key apart from the backups: without it they cannot be restored, \
             and with it anyone holding them can read everything"
                .to_string(),
        ),
    ]
}

/// The whole summary.
pub(crate) fn text(r: &DemoReport) -> String {
    let mut lines = vec![
        format!(
            "bvstore demo: a day of a voice assistant (run {}, {:.1} s)",
            r.run_tag, r.seconds
        ),
        String::new(),
    ];
    lines.push(table(&r.phases));
    lines.push(String::new());
    for block in [details(r), places(r)] {
        lines.extend(
            block
                .into_iter()
                .map(|(label, text)| format!("{label:<12} {text}").trim_end().to_string()),
        );
        lines.push(String::new());
    }
    lines.pop();
    lines.join("\n")
}

/// A path as one shell word: as it is when it needs no quoting, else in
/// single quotes.
fn shell_word(path: &Path) -> String {
    let s = clean_path(path);
    let plain = s
        .chars()
        .all(|c| c.is_alphanumeric() || "-_./=:@%+,".contains(c));
    match plain && !s.is_empty() {
        true => s,
        false => format!("'{}'", s.replace('\'', r"'\''")),
    }
}

/// Commands that work on the demo's directory, each with what it shows.
pub(crate) fn next_steps(cli: &Cli, r: &DemoReport) -> String {
    // Run through `cargo run` (which sets the variable for the program),
    // the user has no `bvstore` on their path yet: say it their way.
    let program = match std::env::var_os("CARGO_MANIFEST_DIR") {
        Some(_) => "cargo run --release --",
        None => "bvstore",
    };
    let mut bvstore = program.to_string();
    if let Some(dir) = cli.data_dir.as_ref().filter(|d| !d.as_os_str().is_empty()) {
        bvstore.push_str(&format!(" -d {}", shell_word(dir)));
    }
    if let Some(config) = &cli.config {
        bvstore.push_str(&format!(" -c {}", shell_word(config)));
    }
    let mut steps = vec![
        (
            format!("{bvstore} stats"),
            "counts, compression by type, dedup",
        ),
        (format!("{bvstore} user list --limit 5"), "the users"),
    ];
    if r.users_created > 0 {
        steps.push((
            format!(
                "{bvstore} session list {}",
                super::demo_people::username(0, &r.run_tag)
            ),
            "one user's conversations",
        ));
    }
    steps.push((format!("{bvstore} health"), "each part's health"));
    steps.push((
        format!("{program} backups {}", shell_word(&r.operations.backup_dir)),
        "the backup generations",
    ));
    let width = steps
        .iter()
        .map(|(c, _)| c.chars().count())
        .max()
        .unwrap_or(0);
    let mut lines = vec![String::new(), "try next:".to_string()];
    lines.extend(
        steps
            .iter()
            .map(|(command, what)| format!("  {command:<width$}  # {what}")),
    );
    lines.join("\n")
}
