//! `bvstore session ...`: a user's conversation sessions, one session's
//! turns, and ending a session.

use bharatvoice_store::{ConversationSession, SessionId};
use clap::{Args, Subcommand};

use super::human;
use super::table::{Align, Table};
use super::user::resolve;
use super::{Cli, Out, Outcome, clean, done, open};

#[derive(Debug, Subcommand)]
pub(crate) enum SessionCommand {
    /// A user's live sessions, most recently active first.
    List(ListArgs),
    /// One live session with the turns its context keeps.
    Show(IdArgs),
    /// End a session (it keeps its turns and no longer expires).
    End(IdArgs),
}

#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    /// The user (id or username).
    user: String,
    /// At most this many sessions (1 to 1000).
    #[arg(long, short = 'n', default_value_t = 20, value_parser = super::page_limit())]
    limit: usize,
}

#[derive(Debug, Args)]
pub(crate) struct IdArgs {
    /// The session id.
    id: SessionId,
}

pub(crate) async fn run(cli: &Cli, cmd: &SessionCommand, out: &Out) -> Outcome {
    let store = open(cli).await?;
    match cmd {
        SessionCommand::List(args) => {
            let user = resolve(&store, &args.user).await?;
            let sessions = store.sessions().list_for_user(user.id, args.limit).await?;
            done(out.emit(&sessions, || {
                if sessions.is_empty() {
                    return format!("{} has no live sessions", clean(&user.username));
                }
                let mut table = Table::new(&[
                    ("ID", Align::Left),
                    ("LANGUAGE", Align::Left),
                    ("TURNS", Align::Right),
                    ("LAST ACTIVE", Align::Left),
                    ("EXPIRES", Align::Left),
                    ("STATE", Align::Left),
                ]);
                for s in &sessions {
                    table.row(cells(s));
                }
                table.render()
            }))
        }
        SessionCommand::Show(args) => {
            let s = store.sessions().get(args.id)?;
            done(out.emit(&s, || show(&s)))
        }
        SessionCommand::End(args) => {
            let before = store.sessions().get(args.id)?;
            let s = store.sessions().end(args.id).await?;
            done(out.emit(&s, || match before.ended_at {
                Some(at) => format!("session {} had already ended at {}", s.id, human::time(at)),
                None => format!("ended session {}", s.id),
            }))
        }
    }
}

fn state(s: &ConversationSession) -> String {
    match s.ended_at {
        Some(at) => format!("ended {}", human::time(at)),
        None => "open".to_string(),
    }
}

fn cells(s: &ConversationSession) -> Vec<String> {
    vec![
        s.id.to_string(),
        s.language.as_ref().map_or("-", |l| l.as_str()).to_string(),
        s.turn_count.to_string(),
        human::time(s.last_active_at),
        human::time(s.expires_at),
        state(s),
    ]
}

fn show(s: &ConversationSession) -> String {
    let mut out = vec![
        format!("session:     {}", s.id),
        format!("user:        {}", s.user_id),
        format!(
            "language:    {}",
            s.language.as_ref().map_or("-", |l| l.as_str())
        ),
        format!("created:     {}", human::time(s.created_at)),
        format!("last active: {}", human::time(s.last_active_at)),
        format!("expires:     {}", human::time(s.expires_at)),
        format!("state:       {}", state(s)),
        format!(
            "turns:       {} appended, {} kept ({} bytes)",
            s.turn_count,
            s.context.len(),
            s.context_bytes()
        ),
    ];
    out.extend(s.context.iter().map(|t| {
        format!(
            "  {}  {:<9}  {}",
            human::time(t.at),
            t.role.to_string(),
            clean(&t.text)
        )
    }));
    out.join("\n")
}
