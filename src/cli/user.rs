//! `bvstore user ...`: accounts, profiles and consents.

use std::io::BufRead;

use bharatvoice_store::{
    ConsentKind, Cursor, Error, LanguageTag, ListOptions, NewUser, ProfileUpdate, Store, User,
    UserId, UserProfile,
};
use clap::{Args, Subcommand};

use super::{Cli, Out, clean, open};

#[derive(Debug, Subcommand)]
pub(crate) enum UserCommand {
    /// Create a user.
    Add {
        /// Username (3-32 of a-z 0-9 _ . -; case-insensitive).
        #[arg(long)]
        username: String,
        /// Email (unique, case-insensitive).
        #[arg(long)]
        email: String,
        /// Display name.
        #[arg(long)]
        display_name: Option<String>,
        /// Read a password from the first line of stdin.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Show a user by id or username.
    Show {
        /// User id or username.
        user: String,
    },
    /// List users, newest first.
    List {
        /// At most this many (default 50).
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Continue after this cursor (printed by the previous page).
        #[arg(long)]
        after: Option<String>,
    },
    /// Soft-delete a user (by id or username).
    Rm {
        /// User id or username.
        user: String,
    },
    /// Restore a soft-deleted user.
    Restore {
        /// User id.
        id: String,
    },
    /// Show a user's profile, changing it first if options are given.
    Profile(ProfileArgs),
    /// Give or withdraw a consent.
    Consent {
        /// User id or username.
        user: String,
        /// Consent to give: audio-storage, personalisation or analytics.
        #[arg(
            long,
            conflicts_with = "withdraw",
            required_unless_present = "withdraw"
        )]
        grant: Option<String>,
        /// Consent to withdraw.
        #[arg(long)]
        withdraw: Option<String>,
    },
}

#[derive(Debug, Args)]
pub(crate) struct ProfileArgs {
    /// User id or username.
    user: String,
    /// Languages in order of preference, e.g. hi-IN,ta-IN.
    #[arg(long, value_delimiter = ',')]
    languages: Option<Vec<String>>,
    /// Days to keep the user's audio (1-3650).
    #[arg(long)]
    retention_days: Option<u32>,
    /// Region, e.g. "Tamil Nadu".
    #[arg(long)]
    region: Option<String>,
    /// Accent.
    #[arg(long)]
    accent: Option<String>,
}

/// Finds a live user by id, else by username.
pub(crate) async fn resolve(store: &Store, who: &str) -> Result<User, Error> {
    match who.parse::<UserId>() {
        Ok(id) => store.users().get(id),
        Err(_) => store.users().get_by_username(who),
    }
}

fn user_line(u: &User) -> String {
    format!(
        "{}  {:<20} {:<28} {}  created {}",
        u.id,
        clean(&u.username),
        clean(&u.email),
        u.status,
        u.created_at
    )
}

fn profile_text(p: &UserProfile) -> String {
    let langs: Vec<&str> = p.languages.iter().map(LanguageTag::as_str).collect();
    let mut s = format!(
        "user:       {}\nlanguages:  {}\nregion:     {}\naccent:     {}\nretention:  {}",
        p.user_id,
        if langs.is_empty() {
            "-".to_string()
        } else {
            langs.join(", ")
        },
        clean(p.region.as_deref().unwrap_or("-")),
        clean(p.accent.as_deref().unwrap_or("-")),
        p.audio_retention_days
            .map_or("store default".to_string(), |d| format!("{d} days")),
    );
    for (kind, state) in &p.consents {
        let verb = if state.granted { "given" } else { "withdrawn" };
        s.push_str(&format!("\nconsent:    {kind} {verb} at {}", state.at));
    }
    s
}

fn read_password() -> Result<String, Error> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| Error::io("reading the password from stdin", e))?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

pub(crate) async fn run(cli: &Cli, cmd: &UserCommand, out: &Out) -> Result<(), Error> {
    let store = open(cli).await?;
    match cmd {
        UserCommand::Add {
            username,
            email,
            display_name,
            password_stdin,
        } => {
            let password = if *password_stdin {
                Some(read_password()?)
            } else {
                None
            };
            let mut new = NewUser::new(username, email);
            new.display_name = display_name.clone();
            let user = match password {
                Some(pw) => store.users().create_with_password(new, &pw).await?,
                None => store.users().create(new).await?,
            };
            out.emit(&user, || {
                format!("created user {} ({})", clean(&user.username), user.id)
            })
        }
        UserCommand::Show { user } => {
            let u = resolve(&store, user).await?;
            out.emit(&u, || user_line(&u))
        }
        UserCommand::List { limit, after } => {
            let after = after.as_deref().map(str::parse::<Cursor>).transpose()?;
            let page = store
                .users()
                .list(ListOptions {
                    limit: *limit,
                    after,
                })
                .await?;
            out.emit(&page, || {
                let mut lines: Vec<String> = page.items.iter().map(user_line).collect();
                if let Some(next) = page.next {
                    lines.push(format!("more: --after {next}"));
                }
                if lines.is_empty() {
                    lines.push("no users".into());
                }
                lines.join("\n")
            })
        }
        UserCommand::Rm { user } => {
            let u = resolve(&store, user).await?;
            let u = store.users().delete(u.id).await?;
            out.emit(&u, || {
                format!(
                    "deleted user {} ({}); restore with: bvstore user restore {}",
                    clean(&u.username),
                    u.id,
                    u.id
                )
            })
        }
        UserCommand::Restore { id } => {
            let u = store.users().restore(id.parse()?).await?;
            out.emit(&u, || {
                format!("restored user {} ({})", clean(&u.username), u.id)
            })
        }
        UserCommand::Profile(args) => {
            let u = resolve(&store, &args.user).await?;
            let languages = args
                .languages
                .as_ref()
                .map(|l| {
                    l.iter()
                        .map(|t| t.parse::<LanguageTag>())
                        .collect::<Result<Vec<_>, _>>()
                })
                .transpose()?;
            let change = ProfileUpdate {
                languages,
                region: args.region.clone().map(Some),
                accent: args.accent.clone().map(Some),
                audio_retention_days: args.retention_days.map(Some),
                ..Default::default()
            };
            let profile = if change == ProfileUpdate::default() {
                store.profiles().get(u.id)?
            } else {
                store.profiles().upsert(u.id, change).await?
            };
            out.emit(&profile, || profile_text(&profile))
        }
        UserCommand::Consent {
            user,
            grant,
            withdraw,
        } => {
            let u = resolve(&store, user).await?;
            let (kind, granted) = match (grant, withdraw) {
                (Some(k), _) => (k.parse::<ConsentKind>()?, true),
                (None, Some(k)) => (k.parse::<ConsentKind>()?, false),
                (None, None) => {
                    return Err(Error::InvalidInput {
                        field: "consent",
                        reason: "give --grant or --withdraw".into(),
                    });
                }
            };
            let profile = store.profiles().set_consent(u.id, kind, granted).await?;
            out.emit(&profile, || profile_text(&profile))
        }
    }
}
