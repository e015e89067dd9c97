//! `bvstore audit ...`: check the audit chain, read its newest entries.

use bharatvoice_store::{AuditEvent, AuditFilter, Error, Store, Timestamp, UserId};
use clap::{Args, Subcommand};

use super::human;
use super::table::{Align, Table};
use super::user::resolve;
use super::{Cli, Out, Outcome, clean, done, open};

#[derive(Debug, Subcommand)]
pub(crate) enum AuditCommand {
    /// Recompute the chain; exit 8 if an entry was changed, removed,
    /// inserted or reordered.
    Verify,
    /// The newest entries, newest last.
    Tail(TailArgs),
}

#[derive(Debug, Args)]
pub(crate) struct TailArgs {
    /// How many entries, 1 to 1000.
    #[arg(long = "limit", short = 'n', default_value_t = 20, value_parser = super::page_limit())]
    n: usize,
    /// Only entries by or about this user (id or username).
    #[arg(long, short = 'u')]
    user: Option<String>,
    /// Only this action (`file.read`), or a family ending in a dot (`file.`).
    #[arg(long)]
    action: Option<String>,
    /// Only entries at or after this time (RFC 3339).
    #[arg(long)]
    since: Option<String>,
}

pub(crate) async fn run(cli: &Cli, cmd: &AuditCommand, out: &Out) -> Outcome {
    let store = match cmd {
        // Only the plain tail is served by a running store.
        AuditCommand::Tail(args)
            if args.action.is_none() && args.user.is_none() && args.since.is_none() =>
        {
            match super::remote::open_or_ask(
                cli,
                out,
                bharatvoice_store::AdminRequest::AuditTail { limit: args.n },
            )
            .await?
            {
                super::remote::Opened::Local(store) => store,
                super::remote::Opened::Remote(outcome) => return outcome,
            }
        }
        _ => open(cli).await?,
    };
    match cmd {
        AuditCommand::Verify => verify(&store, out).await,
        AuditCommand::Tail(args) => tail(&store, args, out).await,
    }
}

/// `bvstore audit verify`.
async fn verify(store: &Store, out: &Out) -> Outcome {
    let report = store.audit().verify().await?;
    let seqs = match (report.first_seq, report.last_seq) {
        (Some(a), Some(b)) => format!("{a} to {b}"),
        _ => "none".to_string(),
    };
    out.emit(&report, || {
        let anchor = report
            .anchor_seq
            .map_or("none".to_string(), |s| format!("entries up to {s} dropped by retention"));
        let verdict = match report.problem {
            None => "ok".to_string(),
            Some(p) => format!("BROKEN: {} at seq {}", super::human::spelled(p.kind), p.seq),
        };
        format!(
            "entries checked: {}\nseqs:            {seqs}\nanchor:          {anchor}\nhead mac:        {}\nchain:           {verdict}",
            report.checked,
            report.head_mac.as_deref().unwrap_or("none"),
        )
    })?;
    match report.problem {
        None => done(Ok(())),
        Some(p) => Err(Error::Integrity {
            what: "the audit log".into(),
            detail: format!("{} at seq {}", super::human::spelled(p.kind), p.seq),
        }),
    }
}

/// `bvstore audit tail`.
async fn tail(store: &Store, args: &TailArgs, out: &Out) -> Outcome {
    let mut filter = AuditFilter::last(args.n);
    filter.action = args.action.clone();
    if let Some(who) = &args.user {
        // An id is taken as is (the user may be deleted); else a username.
        filter.user = Some(match who.parse::<UserId>() {
            Ok(id) => id,
            Err(_) => resolve(store, who).await?.id,
        });
    }
    if let Some(t) = &args.since {
        filter.since = Some(t.parse::<Timestamp>()?);
    }
    let events = store.audit().tail(filter).await?;
    done(out.emit(&events, || events_text(&events)))
}

/// Audit entries as a table, oldest first.
pub(crate) fn events_text(events: &[AuditEvent]) -> String {
    if events.is_empty() {
        return "no audit entries".to_string();
    }
    let mut table = Table::new(&[
        ("SEQ", Align::Right),
        ("TIME", Align::Left),
        ("ACTOR", Align::Left),
        ("ACTION", Align::Left),
        ("TARGET", Align::Left),
        ("OUTCOME", Align::Left),
    ]);
    for e in events {
        table.row(cells(e));
    }
    table.render()
}

fn cells(e: &AuditEvent) -> Vec<String> {
    vec![
        e.seq.to_string(),
        human::time(e.at),
        clean(&e.actor).into_owned(),
        clean(&e.action).into_owned(),
        clean(&e.target).into_owned(),
        clean(&e.outcome).into_owned(),
    ]
}
