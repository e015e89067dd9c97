//! Users: create, look up, change, soft delete, list, passwords.
//!
//! Usernames and emails are unique after normalisation, enforced through
//! the covering indexes (`db::users_index`) inside the same write
//! transaction as the row. A soft-deleted user keeps its username and
//! email reserved (so that a restore never collides) but is invisible to
//! gets and lists.

use redb::{ReadableTable, WriteTransaction};
use tracing::instrument;

use crate::db::Db;
use crate::db::audit::{Entry, SYSTEM};
use crate::db::schema::{CREDENTIALS, USERS, USERS_BY_EMAIL, USERS_BY_USERNAME};
use crate::db::sealing::Sealer;
use crate::db::user_record::{self, Index, UserRow};
use crate::db::users_index::{holder, lookup, put_user};
use crate::error::{Entity, Error, StorageContext, quote};
use crate::model::user::{NewUser, User, UserStatus, UserUpdate};
use crate::model::validate::{
    check_line, normalize_email, normalize_username, normalize_username_cow,
};
use crate::types::{Cursor, ListOptions, Page, Timestamp, UserId};

/// User accounts; from [`Store::users`](crate::Store::users).
///
/// ```
/// # use bharatvoice_store::{Store, Config, NewUser, Error};
/// # #[tokio::main] async fn main() -> Result<(), Error> {
/// # let dir = tempfile::tempdir().unwrap();
/// let store = Store::open(Config::new(dir.path())).await?;
/// let ravi = store.users().create(NewUser::new("Ravi", "ravi@example.in")).await?;
/// assert_eq!(store.users().get_by_username("RAVI")?.id, ravi.id);
/// let dup = store.users().create(NewUser::new("ravi", "other@example.in")).await;
/// assert!(matches!(dup, Err(Error::Conflict { field: "username", .. })));
/// # Ok(()) }
/// ```
pub struct Users<'a> {
    pub(crate) db: &'a Db,
}

fn check_display_name(name: &Option<String>) -> Result<(), Error> {
    match name {
        Some(n) if n.trim().is_empty() || n.len() > 128 => Err(Error::invalid(
            "display name",
            "must be 1 to 128 bytes and not blank",
        )),
        Some(n) => check_line("display name", n),
        None => Ok(()),
    }
}

/// Loads a stored user, live or soft-deleted, its display name unopened.
#[inline]
pub(crate) fn load_row(
    txn_users: &impl ReadableTable<u128, &'static [u8]>,
    id: UserId,
) -> Result<UserRow, Error> {
    match txn_users.get(id.to_key()).ctx("reading a record")? {
        Some(v) => user_record::decode_row(v.value(), id),
        None => Err(Error::not_found(Entity::User, id)),
    }
}

/// Loads a user, live or soft-deleted, for the store's own use: its
/// display name is left out when sealed.
#[inline]
pub(crate) fn load(
    txn_users: &impl ReadableTable<u128, &'static [u8]>,
    id: UserId,
) -> Result<User, Error> {
    load_row(txn_users, id).map(|r| r.user)
}

/// Loads a live stored user (soft-deleted ones are not found).
#[inline]
fn load_live_row(
    txn_users: &impl ReadableTable<u128, &'static [u8]>,
    id: UserId,
) -> Result<UserRow, Error> {
    let row = load_row(txn_users, id)?;
    match row.user.deleted_at {
        None => Ok(row),
        Some(_) => Err(Error::not_found(Entity::User, id)),
    }
}

/// Loads a live user for the store's own use (soft-deleted ones are not
/// found; the display name is left out when sealed).
#[inline]
pub(crate) fn load_live(
    txn_users: &impl ReadableTable<u128, &'static [u8]>,
    id: UserId,
) -> Result<User, Error> {
    load_live_row(txn_users, id).map(|r| r.user)
}

/// A stored user with its display name opened under the user's record
/// key as `txn` sees it.
fn open(txn: &impl crate::db::txn::ReadTxn, sealer: &Sealer, row: UserRow) -> Result<User, Error> {
    if !row.needs_key() {
        return row.open(None);
    }
    let key = sealer.key(txn, row.user.id)?;
    row.open(Some(&key))
}

/// The stored form of `user`: its display name sealed under the user's
/// record key (made in `txn` if the user has none yet).
pub(crate) fn seal(txn: &WriteTransaction, sealer: &Sealer, user: User) -> Result<UserRow, Error> {
    match user.display_name {
        Some(_) => {
            let key = sealer.key_or_create(txn, user.id)?;
            UserRow::sealed(user, Some(&key))
        }
        None => UserRow::sealed(user, None),
    }
}

/// Fails with `NotFound` unless `id` is a live user; used by other tables.
pub(crate) fn require_live(txn: &WriteTransaction, id: UserId) -> Result<(), Error> {
    let users = txn.open_table(USERS).ctx("opening users")?;
    load_live(&users, id).map(|_| ())
}

/// Inserts a new user and, with `password_hash`, its credentials, in one
/// transaction.
fn insert_user(
    txn: &WriteTransaction,
    sealer: &crate::db::sealing::Sealer,
    new: &NewUser,
    username: &str,
    email: &str,
    password_hash: Option<&str>,
    now: Timestamp,
) -> Result<User, Error> {
    for (index, name, field, value) in [
        (
            USERS_BY_USERNAME,
            "opening user_records_by_username",
            "username",
            username,
        ),
        (
            USERS_BY_EMAIL,
            "opening user_records_by_email",
            "email",
            email,
        ),
    ] {
        let table = txn.open_table(index).ctx(name)?;
        if let Some(existing) = holder(&table, value)? {
            return Err(conflict(field, value, existing));
        }
    }
    let user = User {
        id: UserId::new(),
        username: username.to_string(),
        email: email.to_string(),
        display_name: new.display_name.clone(),
        status: UserStatus::Active,
        has_password: password_hash.is_some(),
        last_login_at: None,
        created_at: now,
        updated_at: now,
        deleted_at: None,
    };
    if let Some(hash) = password_hash {
        write_credentials(txn, user.id, hash)?;
    }
    put_user(txn, &seal(txn, sealer, user.clone())?, None)?;
    if !new.consents.is_empty() {
        let change = crate::model::profile::ProfileUpdate {
            consents: new.consents.iter().map(|k| (*k, true)).collect(),
            ..Default::default()
        };
        crate::db::profiles::create(txn, sealer, user.id, &change, now)?;
    }
    Ok(user)
}

fn write_credentials(txn: &WriteTransaction, id: UserId, hash: &str) -> Result<(), Error> {
    txn.open_table(CREDENTIALS)
        .ctx("opening credentials")?
        .insert(id.to_key(), hash)
        .ctx("writing credentials")?;
    Ok(())
}

fn conflict(field: &'static str, value: &str, existing: UserId) -> Error {
    Error::Conflict {
        entity: Entity::User,
        field,
        value: value.to_string(),
        existing: existing.to_string(),
    }
}

/// Loads a live user, applies `change`, and stores the result in `users`
/// and both indexes.
fn modify_live(
    txn: &WriteTransaction,
    sealer: &Sealer,
    id: UserId,
    change: impl FnOnce(&mut User) -> Result<(), Error>,
) -> Result<User, Error> {
    let row = load_live_row(&txn.open_table(USERS).ctx("opening users")?, id)?;
    let mut user = open(txn, sealer, row)?;
    let old_email = user.email.clone();
    change(&mut user)?;
    put_user(txn, &seal(txn, sealer, user.clone())?, Some(&old_email))?;
    Ok(user)
}

fn update_user(
    txn: &WriteTransaction,
    sealer: &Sealer,
    id: UserId,
    change: &UserUpdate,
    email: Option<&str>,
    now: Timestamp,
) -> Result<User, Error> {
    modify_live(txn, sealer, id, |user| {
        if let Some(e) = email.filter(|e| *e != user.email) {
            let by_email = txn
                .open_table(USERS_BY_EMAIL)
                .ctx("opening user_records_by_email")?;
            if let Some(existing) = holder(&by_email, e)? {
                return Err(conflict("email", e, existing));
            }
            user.email = e.to_string();
        }
        if let Some(d) = &change.display_name {
            user.display_name = d.clone();
        }
        if let Some(s) = change.status {
            user.status = s;
        }
        user.updated_at = now;
        Ok(())
    })
}

fn set_deleted(
    txn: &WriteTransaction,
    sealer: &Sealer,
    id: UserId,
    deleted: bool,
    now: Timestamp,
) -> Result<User, Error> {
    let mut row = load_row(&txn.open_table(USERS).ctx("opening users")?, id)?;
    let user = &mut row.user;
    match (deleted, user.deleted_at) {
        (true, Some(_)) => return Err(Error::not_found(Entity::User, id)),
        (false, None) => return open(txn, sealer, row),
        (true, None) => user.deleted_at = Some(now),
        (false, Some(_)) => user.deleted_at = None,
    }
    user.updated_at = now;
    // The display name moves as it is stored: no key needed to write.
    put_user(txn, &row, None)?;
    open(txn, sealer, row)
}

/// The audit entry of a change to user `id` (no API here names an actor:
/// the caller is the system).
fn event(now: Timestamp, action: &str, id: UserId) -> Vec<Entry> {
    vec![Entry::new(now, SYSTEM, action, format!("user:{id}"))]
}

impl Users<'_> {
    /// Creates a user; a taken username or email is [`Error::Conflict`]
    /// naming the field.
    #[instrument(skip_all, fields(username = %new.username))]
    pub async fn create(&self, new: NewUser) -> Result<User, Error> {
        crate::telemetry::observe(
            &self.db.telemetry,
            crate::telemetry::op_key!("users.create"),
            async { self.insert(new, None).await },
        )
        .await
    }

    /// Creates a user with a password, in one transaction: when anything
    /// is refused (a name, the email, the password, a conflict), no user
    /// is created. The password is checked and hashed (argon2id) before
    /// anything is written.
    ///
    /// ```
    /// # use bharatvoice_store::{Store, Config, NewUser, Error};
    /// # #[tokio::main] async fn main() -> Result<(), Error> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// let store = Store::open(Config::new(dir.path()).password_cost(8, 1)).await?;
    /// let users = store.users();
    /// let short = users.create_with_password(NewUser::new("asha", "asha@example.in"), "short").await;
    /// assert!(matches!(short, Err(Error::InvalidInput { field: "password", .. })));
    /// assert!(users.get_by_username("asha").is_err(), "nothing was created");
    /// let asha = users
    ///     .create_with_password(NewUser::new("asha", "asha@example.in"), "a long secret")
    ///     .await?;
    /// assert!(asha.has_password);
    /// assert!(users.verify_password(asha.id, "a long secret").await?);
    /// # Ok(()) }
    /// ```
    #[instrument(skip_all, fields(username = %new.username))]
    pub async fn create_with_password(&self, new: NewUser, password: &str) -> Result<User, Error> {
        crate::telemetry::observe(
            &self.db.telemetry,
            crate::telemetry::op_key!("users.create_with_password"),
            async { self.insert(new, Some(password)).await },
        )
        .await
    }

    /// Checks every field, hashes the password if any, then writes the user
    /// and its credentials in one transaction.
    async fn insert(&self, new: NewUser, password: Option<&str>) -> Result<User, Error> {
        let username = normalize_username(&new.username)?;
        let email = normalize_email(&new.email)?;
        check_display_name(&new.display_name)?;
        let hash = match password {
            Some(p) => Some(self.hash_password(p).await?),
            None => None,
        };
        let now = self.db.now();
        let sealer = self.db.sealer()?;
        self.db
            .write_audited(
                move |txn| insert_user(txn, &sealer, &new, &username, &email, hash.as_deref(), now),
                move |u: &User| event(now, "user.create", u.id),
            )
            .await
    }

    /// Checks a password against the rules and hashes it.
    async fn hash_password(&self, password: &str) -> Result<String, Error> {
        let n = password.chars().count();
        if !(8..=1024).contains(&n) {
            return Err(Error::invalid("password", "must be 8 to 1024 characters"));
        }
        crate::db::users_password::hash(password, &self.db.settings).await
    }

    /// The live user with this id.
    #[instrument(level = "debug", skip(self, id), fields(user = %id))]
    pub fn get(&self, id: UserId) -> Result<User, Error> {
        crate::telemetry::observe_sync(
            &self.db.telemetry,
            crate::telemetry::op_key!("users.get"),
            || {
                let snap = self.db.snapshot()?;
                self.db.guarded(|| {
                    let row = load_live_row(&snap.users, id)?;
                    if !row.needs_key() {
                        return row.open(None);
                    }
                    open(&snap.txn, &self.db.sealer()?, row)
                })
            },
        )
    }

    /// The live user with this username (normalised before the lookup).
    #[instrument(level = "debug", skip(self))]
    pub fn get_by_username(&self, username: &str) -> Result<User, Error> {
        crate::telemetry::observe_sync(
            &self.db.telemetry,
            crate::telemetry::op_key!("users.get_by_username"),
            || {
                let name = normalize_username_cow(username)
                    .map_err(|_| Error::not_found(Entity::User, quote(username)))?;
                self.get_by_index(false, &name)
            },
        )
    }

    /// The live user with this email (case-insensitive).
    #[instrument(level = "debug", skip(self))]
    pub fn get_by_email(&self, email: &str) -> Result<User, Error> {
        crate::telemetry::observe_sync(
            &self.db.telemetry,
            crate::telemetry::op_key!("users.get_by_email"),
            || {
                let email = normalize_email(email)
                    .map_err(|_| Error::not_found(Entity::User, quote(email)))?;
                self.get_by_index(true, &email)
            },
        )
    }

    fn get_by_index(&self, by_email: bool, key: &str) -> Result<User, Error> {
        let snap = self.db.snapshot()?;
        let (table, index) = if by_email {
            (&snap.users_by_email, Index::Email)
        } else {
            (&snap.users_by_username, Index::Username)
        };
        match self.db.guarded(|| lookup(table, index, key))? {
            Some(row) if row.user.deleted_at.is_none() => {
                if !row.needs_key() {
                    return row.open(None);
                }
                self.db.guarded(|| open(&snap.txn, &self.db.sealer()?, row))
            }
            _ => Err(Error::not_found(Entity::User, key)),
        }
    }

    /// Changes a user and bumps `updated_at`.
    #[instrument(skip(self, change, id), fields(user = %id))]
    pub async fn update(&self, id: UserId, change: UserUpdate) -> Result<User, Error> {
        crate::telemetry::observe(
            &self.db.telemetry,
            crate::telemetry::op_key!("users.update"),
            async {
                let email = change.email.as_deref().map(normalize_email).transpose()?;
                if let Some(d) = &change.display_name {
                    check_display_name(d)?;
                }
                let now = self.db.now();
                let sealer = self.db.sealer()?;
                self.db
                    .write_audited(
                        move |txn| update_user(txn, &sealer, id, &change, email.as_deref(), now),
                        move |_| event(now, "user.update", id),
                    )
                    .await
            },
        )
        .await
    }

    /// Soft-deletes a user: it disappears from gets and lists, its names
    /// stay reserved, and [`restore`](Self::restore) brings it back.
    #[instrument(skip(self, id), fields(user = %id))]
    pub async fn delete(&self, id: UserId) -> Result<User, Error> {
        crate::telemetry::observe(
            &self.db.telemetry,
            crate::telemetry::op_key!("users.delete"),
            async {
                let now = self.db.now();
                let sealer = self.db.sealer()?;
                self.db
                    .write_audited(
                        move |txn| set_deleted(txn, &sealer, id, true, now),
                        move |_| event(now, "user.delete", id),
                    )
                    .await
            },
        )
        .await
    }

    /// Brings back a soft-deleted user (a live user is returned unchanged).
    #[instrument(skip(self, id), fields(user = %id))]
    pub async fn restore(&self, id: UserId) -> Result<User, Error> {
        crate::telemetry::observe(
            &self.db.telemetry,
            crate::telemetry::op_key!("users.restore"),
            async {
                let now = self.db.now();
                let sealer = self.db.sealer()?;
                self.db
                    .write_audited(
                        move |txn| set_deleted(txn, &sealer, id, false, now),
                        move |_| event(now, "user.restore", id),
                    )
                    .await
            },
        )
        .await
    }

    /// Live users, newest first, a page at a time.
    #[instrument(skip(self))]
    pub async fn list(&self, options: ListOptions) -> Result<Page<User>, Error> {
        crate::telemetry::observe(
            &self.db.telemetry,
            crate::telemetry::op_key!("users.list"),
            async { self.page(options, false).await },
        )
        .await
    }

    /// Soft-deleted users (the trash), newest first, a page at a time:
    /// [`restore`](Self::restore) brings one back.
    #[instrument(skip(self))]
    pub async fn list_deleted(&self, options: ListOptions) -> Result<Page<User>, Error> {
        crate::telemetry::observe(
            &self.db.telemetry,
            crate::telemetry::op_key!("users.list_deleted"),
            async { self.page(options, true).await },
        )
        .await
    }

    async fn page(&self, options: ListOptions, deleted: bool) -> Result<Page<User>, Error> {
        let limit = options.effective_limit();
        let before = options.after.map_or(u128::MAX, |c| c.0.as_u128());
        // The trash is found by passing over live users: not inline.
        let bound = if deleted { usize::MAX } else { limit };
        let sealer = self.db.sealer()?;
        self.db
            .list(bound, move |txn| {
                let users = txn.open_table(USERS).ctx("opening users")?;
                let mut items = Vec::with_capacity(limit.min(64));
                let mut next = None;
                for row in users.range(..before).ctx("listing users")?.rev() {
                    let (k, v) = row.ctx("listing users")?;
                    let id = UserId::from_key(k.value());
                    let row = user_record::decode_row(v.value(), id)?;
                    if row.user.deleted_at.is_some() != deleted {
                        continue;
                    }
                    if items.len() == limit {
                        next = items.last().map(|u: &User| Cursor(u.id.as_uuid()));
                        break;
                    }
                    items.push(open(txn, &sealer, row)?);
                }
                Ok(Page { items, next })
            })
            .await
    }

    /// Sets (or replaces) the user's password, hashed with argon2id.
    #[instrument(skip(self, password, id), fields(user = %id))]
    pub async fn set_password(&self, id: UserId, password: &str) -> Result<(), Error> {
        crate::telemetry::observe(
            &self.db.telemetry,
            crate::telemetry::op_key!("users.set_password"),
            async {
                let hash = self.hash_password(password).await?;
                let now = self.db.now();
                let sealer = self.db.sealer()?;
                self.db
                    .write_audited(
                        move |txn| {
                            modify_live(txn, &sealer, id, |user| {
                                write_credentials(txn, id, &hash)?;
                                user.has_password = true;
                                user.updated_at = now;
                                Ok(())
                            })
                            .map(|_| ())
                        },
                        move |_| event(now, "user.set_password", id),
                    )
                    .await
            },
        )
        .await
    }

    /// Checks a password. `Ok(false)` when it does not match or none is set;
    /// a match records `last_login_at`.
    #[instrument(skip(self, password, id), fields(user = %id))]
    pub async fn verify_password(&self, id: UserId, password: &str) -> Result<bool, Error> {
        crate::telemetry::observe(
            &self.db.telemetry,
            crate::telemetry::op_key!("users.verify_password"),
            async {
                let stored = self.db.read(|txn| {
                    let users = txn.open_table(USERS).ctx("opening users")?;
                    load_live(&users, id)?;
                    let creds = txn.open_table(CREDENTIALS).ctx("opening credentials")?;
                    Ok(creds
                        .get(id.to_key())
                        .ctx("reading credentials")?
                        .map(|v| v.value().to_string()))
                })?;
                let Some(stored) = stored else {
                    return Ok(false);
                };
                if !crate::db::users_password::verify(password, stored, id).await? {
                    return Ok(false);
                }
                let now = self.db.now();
                let sealer = self.db.sealer()?;
                self.db
                    .write(move |txn| {
                        modify_live(txn, &sealer, id, |user| {
                            user.last_login_at = Some(now);
                            Ok(())
                        })
                    })
                    .await?;
                Ok(true)
            },
        )
        .await
    }
}
