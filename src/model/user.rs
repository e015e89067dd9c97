//! A user account: who the assistant talks to.

use serde::{Deserialize, Serialize};

use crate::types::{Timestamp, UserId};

/// A user account. The password hash is kept apart (in the `credentials`
/// table) so that it can never be printed with the user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// Time-ordered id.
    pub id: UserId,
    /// Unique, normalised (see [`normalize_username`](crate::normalize_username)).
    pub username: String,
    /// Unique, lower-case.
    pub email: String,
    /// Name to show, if any.
    pub display_name: Option<String>,
    /// Whether the account may be used.
    pub status: UserStatus,
    /// Whether a password is set.
    pub has_password: bool,
    /// The last successful password check.
    pub last_login_at: Option<Timestamp>,
    /// When the account was made.
    pub created_at: Timestamp,
    /// The last change.
    pub updated_at: Timestamp,
    /// When it was soft-deleted; such users are invisible to gets and lists.
    pub deleted_at: Option<Timestamp>,
}

/// Whether an account may be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum UserStatus {
    /// In use.
    #[default]
    Active,
    /// Blocked by an operator; data kept.
    Suspended,
}

/// The name `bvstore` and the JSON output use.
impl std::fmt::Display for UserStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            UserStatus::Active => "active",
            UserStatus::Suspended => "suspended",
        })
    }
}

/// What is needed to create a user.
///
/// Consents given at sign-up are recorded in the user's profile in the
/// same transaction as the account (storing audio needs
/// [`ConsentKind::AudioStorage`](crate::ConsentKind)).
///
/// ```
/// use bharatvoice_store::{ConsentKind, NewUser};
/// let u = NewUser::new("ravi", "ravi@example.in")
///     .display_name("Ravi Kumar")
///     .consent(ConsentKind::AudioStorage);
/// assert_eq!(u.username, "ravi");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewUser {
    /// Username as typed; normalised on create.
    pub username: String,
    /// Email as typed; lower-cased on create.
    pub email: String,
    /// Optional display name.
    pub display_name: Option<String>,
    /// Consents given at sign-up.
    pub consents: Vec<crate::model::profile::ConsentKind>,
}

impl NewUser {
    /// A user with this username and email.
    pub fn new(username: impl Into<String>, email: impl Into<String>) -> Self {
        NewUser {
            username: username.into(),
            email: email.into(),
            display_name: None,
            consents: Vec::new(),
        }
    }
    /// Gives a consent at sign-up (recorded in the profile with the
    /// account).
    pub fn consent(mut self, kind: crate::model::profile::ConsentKind) -> Self {
        if !self.consents.contains(&kind) {
            self.consents.push(kind);
        }
        self
    }
    /// Sets the display name.
    pub fn display_name(mut self, name: impl Into<String>) -> Self {
        self.display_name = Some(name.into());
        self
    }
}

/// A change to a user; `None` fields stay as they are.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserUpdate {
    /// A new email (must be unused).
    pub email: Option<String>,
    /// A new display name (`Some(None)` clears it).
    pub display_name: Option<Option<String>>,
    /// A new status.
    pub status: Option<UserStatus>,
}
