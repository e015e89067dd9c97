//! `bvstore user ...`: accounts, profiles and consents.

use std::io::BufRead;

use bharatvoice_store::{
    ConsentKind, Cursor, Error, LanguageTag, ListOptions, NewUser, ProfileUpdate, Store, Usage,
    User, UserId, UserProfile,
};
use clap::{Args, Subcommand};

use super::human;
use super::table::Align;
use super::{Cli, Out, Outcome, clean, done, open, page_table};

#[derive(Debug, Subcommand)]
pub(crate) enum UserCommand {
    /// Create a user.
    Add(AddArgs),
    /// Show a user by id or username.
    Show(ShowArgs),
    /// List users, newest first.
    List(ListArgs),
    /// Soft-delete a user (by id or username).
    Rm(RmArgs),
    /// Restore a soft-deleted user, by id or by username.
    Restore(super::trash::UserRestoreArgs),
    /// Show a user's profile, changing it first if options are given.
    Profile(ProfileArgs),
    /// Give or withdraw a consent.
    Consent(ConsentArgs),
    /// Show a user's storage usage and quota, setting the quota first if asked.
    Quota(QuotaArgs),
    /// Erase everything the store holds about a user, for good: keys
    /// first (their files become unreadable at once), then files, sessions,
    /// grants, profile and account.
    Erase(EraseArgs),
    /// Export everything the store holds about a user, decrypted, to a
    /// new directory or a .tar.zst archive (the right of access).
    Export(super::user_export::ExportArgs),
    /// Show what the store holds about a user: record, profile,
    /// consents, sessions, files by type, grants, pending erasure.
    Summary(super::user_export::SummaryArgs),
    /// Set or replace a user's password, read from the first line of stdin.
    Passwd(super::user_password::PasswordArgs),
    /// Check a password read from the first line of stdin: exit 0 if it
    /// matches, 1 if not.
    CheckPassword(super::user_password::PasswordArgs),
}

#[derive(Debug, Args)]
pub(crate) struct EraseArgs {
    /// User id (also of a deleted or partly erased user) or username.
    user: String,
    /// Confirm: an erasure cannot be undone.
    #[arg(long, short = 'y')]
    yes: bool,
}

#[derive(Debug, Args)]
pub(crate) struct AddArgs {
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
    /// Consents the user gives at sign-up (audio-storage, personalisation,
    /// analytics; repeat or separate with commas). Storing audio needs
    /// audio-storage.
    #[arg(long, value_delimiter = ',')]
    consent: Vec<String>,
}

#[derive(Debug, Args)]
pub(crate) struct ShowArgs {
    /// User id or username.
    user: String,
}

#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    /// List the trash: soft-deleted users (`user restore` brings one back).
    #[arg(long)]
    deleted: bool,
    /// At most this many, 1 to 1000 (default 50).
    #[arg(long, short = 'n', default_value_t = 50, value_parser = super::page_limit())]
    limit: usize,
    /// Continue after this cursor (printed by the previous page).
    #[arg(long)]
    after: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct RmArgs {
    /// User id or username.
    user: String,
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

#[derive(Debug, Args)]
pub(crate) struct ConsentArgs {
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
}

#[derive(Debug, Args)]
pub(crate) struct QuotaArgs {
    /// User id or username.
    user: String,
    /// Give the user a quota of their own, in stored bytes (it overrides
    /// the store default).
    #[arg(long, value_name = "BYTES", conflicts_with = "clear")]
    set: Option<u64>,
    /// Remove the user's own quota (the store default applies again).
    #[arg(long)]
    clear: bool,
}

/// Finds a live user by id, else by username.
pub(crate) async fn resolve(store: &Store, who: &str) -> Result<User, Error> {
    match who.parse::<UserId>() {
        Ok(id) => store.users().get(id),
        Err(_) => store.users().get_by_username(who),
    }
}

/// The columns of `user list`.
const USER_COLUMNS: &[(&str, Align)] = &[
    ("ID", Align::Left),
    ("USERNAME", Align::Left),
    ("EMAIL", Align::Left),
    ("STATUS", Align::Left),
    ("CREATED", Align::Left),
];

fn user_cells(u: &User) -> Vec<String> {
    vec![
        u.id.to_string(),
        clean(&u.username).into_owned(),
        clean(&u.email).into_owned(),
        u.status.to_string(),
        human::time(u.created_at),
    ]
}

/// `user show`: one field a line.
fn user_text(u: &User) -> String {
    let mut lines = vec![
        format!("user:        {}", u.id),
        format!("username:    {}", clean(&u.username)),
        format!("email:       {}", clean(&u.email)),
        format!(
            "name:        {}",
            clean(u.display_name.as_deref().unwrap_or("-"))
        ),
        format!("status:      {}", u.status),
        format!(
            "password:    {}",
            if u.has_password { "set" } else { "none" }
        ),
        format!("last login:  {}", human::time_or_dash(u.last_login_at)),
        format!("created:     {}", human::time(u.created_at)),
        format!("updated:     {}", human::time(u.updated_at)),
    ];
    if let Some(at) = u.deleted_at {
        lines.push(format!("deleted:     {}", human::time(at)));
    }
    lines.join("\n")
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
        s.push_str(&format!(
            "\nconsent:    {kind} {verb} at {}",
            human::time(state.at)
        ));
    }
    s
}

pub(crate) fn read_password() -> Result<String, Error> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| Error::io("reading the password from stdin", e))?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

pub(crate) async fn run(cli: &Cli, cmd: &UserCommand, out: &Out) -> Outcome {
    let store = open(cli).await?;
    match cmd {
        UserCommand::Add(args) => add(&store, args, out).await,
        UserCommand::Show(args) => show(&store, args, out).await,
        UserCommand::List(args) => list(&store, args, out).await,
        UserCommand::Rm(args) => rm(&store, args, out).await,
        UserCommand::Restore(args) => super::trash::restore_user(&store, args, out).await,
        UserCommand::Profile(args) => profile(&store, args, out).await,
        UserCommand::Consent(args) => consent(&store, args, out).await,
        UserCommand::Quota(args) => quota(&store, args, out).await,
        UserCommand::Erase(args) => erase(&store, args, out).await,
        UserCommand::Export(args) => super::user_export::export(&store, args, out).await,
        UserCommand::Summary(args) => super::user_export::summary(&store, args, out).await,
        UserCommand::Passwd(args) => super::user_password::passwd(&store, args, out).await,
        UserCommand::CheckPassword(args) => super::user_password::check(&store, args, out).await,
    }
}

/// `bvstore user add`.
async fn add(store: &Store, args: &AddArgs, out: &Out) -> Outcome {
    let password = if args.password_stdin {
        Some(read_password()?)
    } else {
        None
    };
    let mut new = NewUser::new(&args.username, &args.email);
    new.display_name = args.display_name.clone();
    for k in &args.consent {
        new = new.consent(k.parse::<ConsentKind>()?);
    }
    let user = match password {
        Some(pw) => store.users().create_with_password(new, &pw).await?,
        None => store.users().create(new).await?,
    };
    done(out.emit(&user, || {
        format!("created user {} ({})", clean(&user.username), user.id)
    }))
}

/// `bvstore user show`.
async fn show(store: &Store, args: &ShowArgs, out: &Out) -> Outcome {
    let u = resolve(store, &args.user).await?;
    done(out.emit(&u, || user_text(&u)))
}

/// `bvstore user list`.
async fn list(store: &Store, args: &ListArgs, out: &Out) -> Outcome {
    let after = args
        .after
        .as_deref()
        .map(str::parse::<Cursor>)
        .transpose()?;
    let options = ListOptions {
        limit: args.limit,
        after,
    };
    let (page, empty) = if args.deleted {
        (
            store.users().list_deleted(options).await?,
            "no deleted users",
        )
    } else {
        (store.users().list(options).await?, "no users")
    };
    done(out.emit(&page, || page_table(&page, USER_COLUMNS, user_cells, empty)))
}

/// `bvstore user rm`.
async fn rm(store: &Store, args: &RmArgs, out: &Out) -> Outcome {
    let u = resolve(store, &args.user).await?;
    let u = store.users().delete(u.id).await?;
    done(out.emit(&u, || {
        out.with_hint(
            format!("deleted user {} ({})", clean(&u.username), u.id),
            format_args!("restore with: bvstore user restore {}", u.id),
        )
    }))
}

/// `bvstore user profile`.
async fn profile(store: &Store, args: &ProfileArgs, out: &Out) -> Outcome {
    let u = resolve(store, &args.user).await?;
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
    done(out.emit(&profile, || profile_text(&profile)))
}

/// `bvstore user consent`.
async fn consent(store: &Store, args: &ConsentArgs, out: &Out) -> Outcome {
    let u = resolve(store, &args.user).await?;
    let (kind, granted) = match (&args.grant, &args.withdraw) {
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
    // An erasure due now runs before the command ends (it would otherwise
    // resume at the next open).
    if kind == ConsentKind::AudioStorage && !granted {
        store.privacy().run_due().await?;
    }
    let erasure = store.privacy().erasure(u.id)?;
    done(out.emit(&profile, || {
        let mut s = profile_text(&profile);
        if let Some(e) = erasure {
            s.push_str(&format!(
                "\nerasure:    {} {} (due {})",
                e.scope,
                human::spelled(e.stage),
                human::time(e.due)
            ));
        }
        s
    }))
}

/// `bvstore user erase`.
async fn erase(store: &Store, args: &EraseArgs, out: &Out) -> Outcome {
    if !args.yes {
        return Err(Error::InvalidInput {
            field: "--yes",
            reason: "an erasure cannot be undone: pass --yes to erase the user".into(),
        });
    }
    let id = match args.user.parse::<UserId>() {
        Ok(id) => id,
        Err(_) => resolve(store, &args.user).await?.id,
    };
    let r = store.privacy().erase_user(id).await?;
    done(out.emit(&r, || {
        if r.already_done {
            return format!("user {} was erased before; nothing left to do", r.user);
        }
        format!(
            "erased user {}: keys destroyed at {}, {} file(s), {} blob file(s), {} session(s), {} grant(s) received",
            r.user,
            human::time_or_dash(r.keys_destroyed_at),
            r.files,
            r.blobs_destroyed,
            r.sessions,
            r.grants_received
        )
    }))
}

/// `bvstore user quota`.
async fn quota(store: &Store, args: &QuotaArgs, out: &Out) -> Outcome {
    let u = resolve(store, &args.user).await?;
    let usage = match (args.set, args.clear) {
        (Some(bytes), _) => store.quotas().set_limit(u.id, Some(bytes)).await?,
        (None, true) => store.quotas().set_limit(u.id, None).await?,
        (None, false) => store.quotas().usage(u.id).await?,
    };
    done(out.emit(&usage, || usage_text(&usage)))
}

fn usage_text(u: &Usage) -> String {
    let limit = match (u.own_limit, u.limit) {
        (Some(l), _) => format!("{} (the user's own)", human::size(l)),
        (None, Some(l)) => format!("{} (the store default)", human::size(l)),
        (None, None) => "none".to_string(),
    };
    format!(
        "user:    {}\nstored:  {} in {} blob(s)\nquota:   {limit}",
        u.user,
        human::size(u.stored_bytes),
        u.blobs
    )
}
