//! A summary of what the store holds about a user and what it does with
//! it: the answer DPDP s.11 gives a data principal who asks (their
//! record, profile and consents, how much they have stored, with whom
//! their files are shared and who shares with them, and any erasure
//! pending). Counts and ids only: no content, no secret.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use tracing::instrument;

use crate::db::erasures::{files_of, sessions_of};
use crate::db::grants::{granted_to, grantees};
use crate::error::Error;
use crate::model::privacy::{Erasure, ErasureStage};
use crate::model::profile::{ConsentKind, UserProfile, VoicePreferences};
use crate::model::user::UserStatus;
use crate::model::validate::LanguageTag;
use crate::privacy::Privacy;
use crate::types::{SessionId, Timestamp, UserId};

/// What the store holds about a user ([`Privacy::summary`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UserSummary {
    /// The user's id.
    pub user: UserId,
    /// Username.
    pub username: String,
    /// Email.
    pub email: String,
    /// Display name, if any.
    pub display_name: Option<String>,
    /// Account status.
    pub status: UserStatus,
    /// When the account was made.
    pub created_at: Timestamp,
    /// The account's last change.
    pub updated_at: Timestamp,
    /// The profile, if the user has one.
    pub profile: Option<ProfileSummary>,
    /// Every consent the user gave or withdrew, with when.
    pub consents: Vec<ConsentSummary>,
    /// Their live conversation sessions.
    pub sessions: SessionCounts,
    /// Their live files.
    pub files: FileCounts,
    /// Grants on their files to other users.
    pub grants_given: GrantCounts,
    /// Grants other users gave them on their files.
    pub grants_received: GrantCounts,
    /// An erasure scheduled or under way, if any.
    pub pending_erasure: Option<Erasure>,
    /// The data region the store keeps this data in, if one is set
    /// ([`Config::region`](crate::Config#structfield.region)).
    pub data_region: Option<String>,
}

/// The profile fields of a [`UserSummary`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProfileSummary {
    /// Languages in order of preference.
    pub languages: Vec<LanguageTag>,
    /// Region.
    pub region: Option<String>,
    /// Accent.
    pub accent: Option<String>,
    /// Voice preferences.
    pub voice: VoicePreferences,
    /// Days their audio is kept (`None`: the store default).
    pub audio_retention_days: Option<u32>,
}

/// One consent of a [`UserSummary`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ConsentSummary {
    /// Which consent.
    pub kind: ConsentKind,
    /// Given (`true`) or withdrawn (`false`).
    pub granted: bool,
    /// When it was given or withdrawn.
    pub at: Timestamp,
}

/// Sessions and turns of a [`UserSummary`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SessionCounts {
    /// Live sessions.
    pub sessions: u64,
    /// Turns the sessions keep as context.
    pub turns: u64,
    /// Bytes of text in those turns.
    pub turn_bytes: u64,
    /// Turns ever appended (also those since dropped from the context).
    pub turns_appended: u64,
}

/// Files of a [`UserSummary`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FileCounts {
    /// Live files.
    pub files: u64,
    /// Their bytes (plaintext).
    pub bytes: u64,
    /// The same by content type.
    pub by_content_type: BTreeMap<String, TypeCount>,
}

/// Files of one content type.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct TypeCount {
    /// How many.
    pub files: u64,
    /// Their bytes (plaintext).
    pub bytes: u64,
}

/// Grants given or received.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct GrantCounts {
    /// Grants (one per file and user).
    pub grants: u64,
    /// The other users: grantees of the user's files, or owners of the
    /// files granted to the user; in id order, each once.
    pub users: Vec<UserId>,
}

/// What one snapshot says about the user's files, grants and sessions.
struct Scanned {
    files: FileCounts,
    given: GrantCounts,
    received: GrantCounts,
    sessions: Vec<SessionId>,
}

fn grant_counts(grants: u64, users: BTreeSet<UserId>) -> GrantCounts {
    GrantCounts {
        grants,
        users: users.into_iter().collect(),
    }
}

fn scan(txn: &redb::ReadTransaction, user: UserId) -> Result<Scanned, Error> {
    let mut files = FileCounts::default();
    let (mut given, mut to) = (0u64, BTreeSet::new());
    for id in files_of(txn, user, usize::MAX)? {
        let Some(f) = crate::db::files::get(txn, id)? else {
            continue;
        };
        if f.deleted_at.is_some() {
            continue;
        }
        files.files += 1;
        files.bytes = files.bytes.saturating_add(f.plain_bytes);
        let t = files.by_content_type.entry(f.content_type).or_default();
        t.files += 1;
        t.bytes = t.bytes.saturating_add(f.plain_bytes);
        for g in grantees(txn, id)? {
            given += 1;
            to.insert(g);
        }
    }
    let (mut received, mut from) = (0u64, BTreeSet::new());
    for id in granted_to(txn, user)? {
        if let Some(f) = crate::db::files::get(txn, id)?
            && f.deleted_at.is_none()
        {
            received += 1;
            from.insert(f.owner);
        }
    }
    Ok(Scanned {
        files,
        given: grant_counts(given, to),
        received: grant_counts(received, from),
        sessions: sessions_of(txn, user, usize::MAX)?,
    })
}

fn profile_summary(p: &UserProfile) -> ProfileSummary {
    ProfileSummary {
        languages: p.languages.clone(),
        region: p.region.clone(),
        accent: p.accent.clone(),
        voice: p.voice.clone(),
        audio_retention_days: p.audio_retention_days,
    }
}

impl Privacy<'_> {
    /// What the store holds about `user` (a live user; else
    /// [`Error::NotFound`]): record, profile, consents, sessions and
    /// turns, files by content type, grants given and received, and a
    /// pending erasure. Reads only.
    ///
    /// ```
    /// # use bharatvoice_store::*;
    /// # #[tokio::main] async fn main() -> Result<(), Error> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = Store::open(Config::new(dir.path())).await?;
    /// let user = store.users().create(NewUser::new("ravi", "ravi@example.in").consent(ConsentKind::AudioStorage)).await?;
    /// store.files().put_bytes(Actor::User(user.id), user.id, b"RIFF....", PutOptions::content_type("audio/wav")).await?;
    /// let s = store.privacy().summary(user.id).await?;
    /// assert_eq!(s.files.by_content_type["audio/wav"].bytes, 8);
    /// assert!(s.consents.iter().any(|c| c.kind == ConsentKind::AudioStorage && c.granted));
    /// # Ok(()) }
    /// ```
    #[instrument(skip(self, user), fields(user = %user))]
    pub async fn summary(&self, user: UserId) -> Result<UserSummary, Error> {
        crate::telemetry::observe(
            &self.db.telemetry,
            crate::telemetry::op_key!("privacy.summary"),
            async {
                let u = crate::db::users::Users { db: self.db }.get(user)?;
                let profile = match (crate::db::profiles::Profiles { db: self.db }).get(user) {
                    Ok(p) => Some(p),
                    Err(Error::NotFound { .. }) => None,
                    Err(e) => return Err(e),
                };
                let scanned = self.db.scan(move |txn| scan(txn, user)).await?;
                let view = crate::db::sessions::Sessions { db: self.db };
                let mut sessions = SessionCounts::default();
                for id in scanned.sessions {
                    let s = match view.get(id) {
                        Ok(s) => s,
                        Err(Error::NotFound { .. }) => continue,
                        Err(e) => return Err(e),
                    };
                    sessions.sessions += 1;
                    sessions.turns += s.context.len() as u64;
                    sessions.turn_bytes += s.context_bytes() as u64;
                    sessions.turns_appended = sessions.turns_appended.saturating_add(s.turn_count);
                }
                let pending_erasure = self
                    .erasure(user)?
                    .filter(|e| e.stage != ErasureStage::Done);
                let consents = profile
                    .iter()
                    .flat_map(|p| p.consents.iter())
                    .map(|(kind, state)| ConsentSummary {
                        kind: *kind,
                        granted: state.granted,
                        at: state.at,
                    })
                    .collect();
                Ok(UserSummary {
                    user,
                    username: u.username,
                    email: u.email,
                    display_name: u.display_name,
                    status: u.status,
                    created_at: u.created_at,
                    updated_at: u.updated_at,
                    profile: profile.as_ref().map(profile_summary),
                    consents,
                    sessions,
                    files: scanned.files,
                    grants_given: scanned.given,
                    grants_received: scanned.received,
                    pending_erasure,
                    data_region: self.region.map(str::to_string),
                })
            },
        )
        .await
    }
}
