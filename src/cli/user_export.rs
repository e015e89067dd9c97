//! `bvstore user export` and `bvstore user summary`: a user's right of
//! access (DPDP s.11), as an archive of everything and as a summary.

use std::path::PathBuf;

use bharatvoice_store::{ExportReport, LanguageTag, Store, UserSummary};
use clap::Args;

use super::human;
use super::progress::Bar;
use super::user::resolve;
use super::{Out, Outcome, clean, clean_path, done};

#[derive(Debug, Args)]
pub(crate) struct ExportArgs {
    /// User id or username.
    user: String,
    /// Where to write: a name ending in .tar.zst makes an archive, any
    /// other a directory. Must not exist (an empty directory may).
    #[arg(long, short = 'o', value_name = "DIR|FILE.tar.zst")]
    out: PathBuf,
}

#[derive(Debug, Args)]
pub(crate) struct SummaryArgs {
    /// User id or username.
    user: String,
}

/// `bvstore user export`.
pub(crate) async fn export(store: &Store, args: &ExportArgs, out: &Out) -> Outcome {
    let u = resolve(store, &args.user).await?;
    let bar = Bar::bytes(out, "exporting", 0);
    let r = store
        .privacy()
        .export_user_with_progress(u.id, &args.out, bar.progress())
        .await;
    bar.finish();
    let r = r?;
    done(out.emit(&r, || export_text(&r)))
}

fn export_text(r: &ExportReport) -> String {
    format!(
        "exported user {} to {}: {} file(s), {} session(s), {} entries, {}, in {} ms",
        r.user,
        clean_path(&r.path),
        r.files,
        r.sessions,
        r.entries,
        human::size(r.bytes),
        r.took_us / 1000
    )
}

/// `bvstore user summary`.
pub(crate) async fn summary(store: &Store, args: &SummaryArgs, out: &Out) -> Outcome {
    let u = resolve(store, &args.user).await?;
    let s = store.privacy().summary(u.id).await?;
    done(out.emit(&s, || summary_text(&s)))
}

fn or_dash(v: Option<&str>) -> String {
    clean(v.unwrap_or("-")).into_owned()
}

fn summary_text(s: &UserSummary) -> String {
    let mut rows: Vec<(String, String)> = vec![
        ("user".into(), s.user.to_string()),
        ("username".into(), clean(&s.username).into_owned()),
        ("email".into(), clean(&s.email).into_owned()),
        ("display name".into(), or_dash(s.display_name.as_deref())),
        ("status".into(), s.status.to_string()),
        ("created".into(), human::time(s.created_at)),
        ("updated".into(), human::time(s.updated_at)),
        ("data region".into(), or_dash(s.data_region.as_deref())),
    ];
    match &s.profile {
        Some(p) => {
            let langs: Vec<&str> = p.languages.iter().map(LanguageTag::as_str).collect();
            let langs = (!langs.is_empty()).then(|| langs.join(", "));
            rows.push(("languages".into(), or_dash(langs.as_deref())));
            rows.push(("region".into(), or_dash(p.region.as_deref())));
            rows.push(("accent".into(), or_dash(p.accent.as_deref())));
            rows.push(("voice".into(), or_dash(p.voice.voice.as_deref())));
            let keep = p
                .audio_retention_days
                .map_or("store default".to_string(), |d| format!("{d} days"));
            rows.push(("retention".into(), keep));
        }
        None => rows.push(("profile".into(), "none".into())),
    }
    for c in &s.consents {
        let verb = if c.granted { "given" } else { "withdrawn" };
        rows.push((
            "consent".into(),
            format!("{} {verb} at {}", c.kind, human::time(c.at)),
        ));
    }
    let t = &s.sessions;
    rows.push((
        "sessions".into(),
        format!(
            "{} ({} turns kept, {} bytes; {} turns in all)",
            t.sessions, t.turns, t.turn_bytes, t.turns_appended
        ),
    ));
    rows.push((
        "files".into(),
        format!("{} ({})", s.files.files, human::size(s.files.bytes)),
    ));
    for (ct, n) in &s.files.by_content_type {
        rows.push((
            format!("  {}", clean(ct)),
            format!("{} file(s), {}", n.files, human::size(n.bytes)),
        ));
    }
    for (label, g) in [
        ("grants given", &s.grants_given),
        ("grants received", &s.grants_received),
    ] {
        let users: Vec<String> = g.users.iter().map(ToString::to_string).collect();
        let who = if users.is_empty() {
            String::new()
        } else {
            format!(": {}", users.join(", "))
        };
        rows.push((label.into(), format!("{}{who}", g.grants)));
    }
    let erasure = s.pending_erasure.as_ref().map_or("none".to_string(), |e| {
        format!(
            "{} {} (due {})",
            e.scope,
            human::spelled(e.stage),
            human::time(e.due)
        )
    });
    rows.push(("pending erasure".into(), erasure));
    table(&rows)
}

/// Two columns, the first padded to its widest cell.
fn table(rows: &[(String, String)]) -> String {
    let width = rows
        .iter()
        .map(|(k, _)| k.chars().count())
        .max()
        .unwrap_or(0);
    rows.iter()
        .map(|(k, v)| format!("{k:<width$}  {v}"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::table;

    #[test]
    fn table_pads_the_first_column() {
        let rows = vec![
            ("a".to_string(), "1".to_string()),
            ("bcd".to_string(), "2".to_string()),
        ];
        assert_eq!(table(&rows), "a    1\nbcd  2");
    }
}
