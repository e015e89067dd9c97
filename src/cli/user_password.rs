//! `bvstore user passwd` and `bvstore user check-password`: set and check
//! a user's password, read from the first line of stdin (never from the
//! command line, where other users of the machine could see it).

use std::process::ExitCode;

use clap::Args;

use super::user::{read_password, resolve};
use super::{Out, Outcome, clean, done};
use bharatvoice_store::Store;

#[derive(Debug, Args)]
pub(crate) struct PasswordArgs {
    /// User id or username.
    user: String,
}

/// `bvstore user passwd U`: sets (or replaces) the password.
pub(crate) async fn passwd(store: &Store, args: &PasswordArgs, out: &Out) -> Outcome {
    let user = resolve(store, &args.user).await?;
    let password = read_password()?;
    let replaced = user.has_password;
    store.users().set_password(user.id, &password).await?;
    let report = serde_json::json!({ "user": user.id, "replaced": replaced });
    done(out.emit(&report, || {
        let verb = if replaced { "replaced" } else { "set" };
        format!("{verb} the password of {}", clean(&user.username))
    }))
}

/// `bvstore user check-password U`: exit 0 when the password matches
/// (and records the login), 1 when it does not or none is set.
pub(crate) async fn check(store: &Store, args: &PasswordArgs, out: &Out) -> Outcome {
    let user = resolve(store, &args.user).await?;
    let password = read_password()?;
    let matches = store.users().verify_password(user.id, &password).await?;
    let report = serde_json::json!({ "user": user.id, "matches": matches });
    out.emit(&report, || {
        match (matches, user.has_password) {
            (true, _) => "the password matches",
            (false, true) => "the password does not match",
            (false, false) => "the user has no password",
        }
        .to_string()
    })?;
    Ok(if matches {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
