//! `bvstore user restore` and `bvstore file restore`: bringing users and
//! files back from the trash, by id or by name. A name is looked up among
//! the deleted (a deleted user's username; the name of one of the owner's
//! deleted files); a restore of something that is not deleted changes
//! nothing and says so.

use bharatvoice_store::{
    Actor, AudioFile, Cursor, Entity, Error, FileId, ListFilter, ListOptions, Store, UserId,
};
use clap::Args;

use super::user::resolve;
use super::{Out, Outcome, clean, done};

#[derive(Debug, Args)]
pub(crate) struct UserRestoreArgs {
    /// User id, or the username of a deleted user.
    user: String,
}

#[derive(Debug, Args)]
pub(crate) struct FileRestoreArgs {
    /// File id, or the name of one of the user's deleted files.
    file: String,
    /// Who asks (the owner).
    #[arg(long, short = 'u')]
    user: String,
}

/// A page of the trash: as many as the library gives at once.
const PAGE: usize = 1000;

/// `bvstore user restore ID|USERNAME`.
pub(crate) async fn restore_user(store: &Store, args: &UserRestoreArgs, out: &Out) -> Outcome {
    let (id, was_deleted) = find_user(store, &args.user).await?;
    let u = store.users().restore(id).await?;
    done(out.emit(&u, || match was_deleted {
        true => format!("restored user {} ({})", clean(&u.username), u.id),
        false => format!(
            "user {} ({}) is not deleted: nothing changed",
            clean(&u.username),
            u.id
        ),
    }))
}

/// The user `who` names and whether it is deleted: an id as given, else a
/// live user's username, else a deleted user's.
async fn find_user(store: &Store, who: &str) -> Result<(UserId, bool), Error> {
    if let Ok(id) = who.parse::<UserId>() {
        return Ok((id, store.users().get(id).is_err()));
    }
    if let Ok(u) = store.users().get_by_username(who) {
        return Ok((u.id, false));
    }
    // Usernames are stored lower-case.
    let name = who.to_lowercase();
    let mut after: Option<Cursor> = None;
    loop {
        let options = ListOptions { limit: PAGE, after };
        let page = store.users().list_deleted(options).await?;
        if let Some(u) = page.items.iter().find(|u| u.username == name) {
            return Ok((u.id, true));
        }
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    Err(Error::NotFound {
        entity: Entity::User,
        id: format!("{who} (neither live nor in the trash)"),
    })
}

/// `bvstore file restore ID|NAME --user U`.
pub(crate) async fn restore_file(store: &Store, args: &FileRestoreArgs, out: &Out) -> Outcome {
    let owner = resolve(store, &args.user).await?.id;
    let who = Actor::User(owner);
    let trash = deleted_files(store, owner).await?;
    let (id, was_deleted) = match args.file.parse::<FileId>() {
        Ok(id) => (id, trash.iter().any(|f| f.id == id)),
        Err(_) => (by_name(&trash, &args.file)?, true),
    };
    let f = store.files().restore(who, id).await?;
    done(out.emit(&f, || match was_deleted {
        true => format!("restored file {}", f.id),
        false => format!("file {} is not deleted: nothing changed", f.id),
    }))
}

/// The one deleted file named `name`.
fn by_name(trash: &[AudioFile], name: &str) -> Result<FileId, Error> {
    let named: Vec<FileId> = trash
        .iter()
        .filter(|f| f.name.as_deref() == Some(name))
        .map(|f| f.id)
        .collect();
    match named[..] {
        [id] => Ok(id),
        [] => Err(Error::NotFound {
            entity: Entity::AudioFile,
            id: format!("{name} (no deleted file of the user has this name)"),
        }),
        _ => Err(Error::InvalidInput {
            field: "file",
            reason: format!(
                "{} deleted files are named {name}; restore one by id: {}",
                named.len(),
                named
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }),
    }
}

/// Every file in `owner`'s trash.
async fn deleted_files(store: &Store, owner: UserId) -> Result<Vec<AudioFile>, Error> {
    let filter = ListFilter {
        deleted: true,
        ..Default::default()
    };
    let mut files = Vec::new();
    let mut after: Option<Cursor> = None;
    loop {
        let options = ListOptions { limit: PAGE, after };
        let page = store
            .files()
            .list(Actor::User(owner), owner, filter.clone(), options)
            .await?;
        files.extend(page.items);
        match page.next {
            Some(next) => after = Some(next),
            None => return Ok(files),
        }
    }
}
