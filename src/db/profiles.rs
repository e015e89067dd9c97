//! Profiles: one per user, created on the first upsert.

use std::collections::BTreeMap;

use tracing::instrument;

use crate::db::Db;
use crate::db::audit::{Entry, SYSTEM};
use crate::db::erasures::audio_consent_changed;
use crate::db::profile_row::{self, ProfileRow};
use crate::db::schema::PROFILES;
use crate::db::sealing::{RecordKey, Sealer};
use crate::db::txn::ReadTxn;
use crate::db::users::require_live;
use crate::error::{Entity, Error, StorageContext};
use crate::model::privacy::PrivacyEvent;
use crate::model::profile::{ConsentKind, ProfileUpdate, UserProfile, VoicePreferences};
use crate::types::{ProfileId, UserId};
use redb::ReadableTable;

/// The clear fields of the user's profile (ids, retention, consents,
/// times; the personal ones are empty), if it has one (whether the user
/// is live is the caller's business).
pub(crate) fn get(txn: &impl ReadTxn, user: UserId) -> Result<Option<UserProfile>, Error> {
    Ok(row(&txn.table(PROFILES)?, user)?.map(ProfileRow::into_head))
}

/// The stored profile of `user`, decoded as far as its clear fields.
pub(crate) fn row(
    profiles: &impl ReadableTable<u128, &'static [u8]>,
    user: UserId,
) -> Result<Option<ProfileRow>, Error> {
    match profiles.get(user.to_key()).ctx("reading a profile")? {
        Some(v) => ProfileRow::decode(v.value(), user).map(Some),
        None => Ok(None),
    }
}

/// Writes a profile, its personal fields sealed under `key`.
pub(crate) fn write(
    profiles: &mut redb::Table<u128, &'static [u8]>,
    profile: &UserProfile,
    key: &RecordKey,
) -> Result<(), Error> {
    let bytes = profile_row::encode(profile, key)?;
    profiles
        .insert(profile.user_id.to_key(), bytes.as_slice())
        .ctx("writing a profile")?;
    Ok(())
}

fn empty(user: UserId, now: crate::types::Timestamp) -> UserProfile {
    UserProfile {
        id: ProfileId::new(),
        user_id: user,
        languages: Vec::new(),
        region: None,
        accent: None,
        voice: VoicePreferences::default(),
        audio_retention_days: None,
        consents: BTreeMap::new(),
        preferences: BTreeMap::new(),
        created_at: now,
        updated_at: now,
    }
}

/// Writes a new user's first profile with `change` applied (sign-up).
pub(crate) fn create(
    txn: &redb::WriteTransaction,
    sealer: &Sealer,
    user: UserId,
    change: &ProfileUpdate,
    now: crate::types::Timestamp,
) -> Result<(), Error> {
    let mut profile = empty(user, now);
    change.apply(&mut profile, now);
    let key = sealer.key_or_create(txn, user)?;
    let mut profiles = txn.open_table(PROFILES).ctx("opening profiles")?;
    write(&mut profiles, &profile, &key)
}

/// User profiles; from [`Store::profiles`](crate::Store::profiles).
///
/// ```
/// # use bharatvoice_store::*;
/// # #[tokio::main] async fn main() -> Result<(), Error> {
/// # let dir = tempfile::tempdir().unwrap();
/// # let store = Store::open(Config::new(dir.path())).await?;
/// let user = store.users().create(NewUser::new("meena", "meena@example.in")).await?;
/// let change = ProfileUpdate {
///     languages: Some(vec!["ta-IN".parse()?, "en-IN".parse()?]),
///     consents: vec![(ConsentKind::AudioStorage, true)],
///     ..Default::default()
/// };
/// let profile = store.profiles().upsert(user.id, change).await?;
/// assert!(profile.has_consent(ConsentKind::AudioStorage));
/// assert_eq!(store.profiles().get(user.id)?.languages[0].as_str(), "ta-IN");
/// # Ok(()) }
/// ```
pub struct Profiles<'a> {
    pub(crate) db: &'a Db,
}

/// The consents a request changes: for each kind it names, its last value
/// in the request where that differs from the profile's (a withdrawal of
/// a consent never recorded counts: it is recorded now). Giving a consent
/// already given, or withdrawing one already withdrawn, is no change: no
/// event, no audit entry, no erasure scheduled again.
fn consents_changed(
    profile: &UserProfile,
    request: &[(ConsentKind, bool)],
) -> Vec<(ConsentKind, bool)> {
    let mut last = BTreeMap::new();
    for &(kind, granted) in request {
        last.insert(kind, granted);
    }
    last.into_iter()
        .filter(|(kind, granted)| profile.consents.get(kind).map(|c| c.granted) != Some(*granted))
        .collect()
}

/// A `profile.update` entry, and one `consent.give` or `consent.withdraw`
/// per consent changed, its kind as the outcome (ids and kinds only).
fn audit_entries(
    now: crate::types::Timestamp,
    user: UserId,
    consents: &[(crate::model::profile::ConsentKind, bool)],
) -> Vec<Entry> {
    let target = format!("user:{user}");
    let mut out = vec![Entry::new(now, SYSTEM, "profile.update", target.clone())];
    for (kind, granted) in consents {
        let action = if *granted {
            "consent.give"
        } else {
            "consent.withdraw"
        };
        out.push(Entry::new(now, SYSTEM, action, target.clone()).outcome(kind.to_string()));
    }
    out
}

impl Profiles<'_> {
    /// The profile of a live user; `NotFound` if the user has none yet.
    #[instrument(level = "debug", skip(self, user), fields(user = %user))]
    pub fn get(&self, user: UserId) -> Result<UserProfile, Error> {
        crate::telemetry::observe_sync(
            &self.db.telemetry,
            crate::telemetry::op_key!("profiles.get"),
            || {
                let sealer = self.db.sealer()?;
                self.db.read(|txn| {
                    let users = txn
                        .open_table(crate::db::schema::USERS)
                        .ctx("opening users")?;
                    crate::db::users::load_live(&users, user)?;
                    let profiles = txn.open_table(PROFILES).ctx("opening profiles")?;
                    let row = row(&profiles, user)?
                        .ok_or_else(|| Error::not_found(Entity::Profile, user))?;
                    row.open(&*sealer.key(txn, user)?)
                })
            },
        )
    }

    /// Applies `change` to the user's profile, creating it first if needed.
    /// Withdrawing audio-storage consent schedules the erasure of the
    /// user's audio after `privacy.consent_notice` (at once by default);
    /// giving it back before then cancels it (see
    /// [`Privacy`](crate::Privacy)).
    #[instrument(skip(self, change, user), fields(user = %user))]
    pub async fn upsert(&self, user: UserId, change: ProfileUpdate) -> Result<UserProfile, Error> {
        crate::telemetry::observe(
            &self.db.telemetry,
            crate::telemetry::op_key!("profiles.upsert"),
            async {
                change.validate()?;
                let now = self.db.now();
                let notice = self.db.settings.consent_notice;
                let sealer = self.db.sealer()?;
                let (profile, scheduled, changed) = self
                    .db
                    .write_audited(
                        move |txn| {
                            require_live(txn, user)?;
                            let key = sealer.key_or_create(txn, user)?;
                            let mut profiles = txn.open_table(PROFILES).ctx("opening profiles")?;
                            let mut profile = match row(&profiles, user)? {
                                Some(row) => row.open(&key)?,
                                None => empty(user, now),
                            };
                            let changed = consents_changed(&profile, &change.consents);
                            change.apply(&mut profile, now);
                            write(&mut profiles, &profile, &key)?;
                            drop(profiles);
                            let scheduled = match changed
                                .iter()
                                .find(|(k, _)| *k == ConsentKind::AudioStorage)
                            {
                                Some(&(_, granted)) => {
                                    audio_consent_changed(txn, user, granted, now, notice)?
                                }
                                None => None,
                            };
                            Ok((profile, scheduled, changed))
                        },
                        move |(_, _, changed)| audit_entries(now, user, changed),
                    )
                    .await?;
                let events = &self.db.settings.privacy_events;
                for (consent, granted) in changed {
                    let _ = events.send(PrivacyEvent::ConsentChanged {
                        user,
                        consent,
                        granted,
                    });
                }
                if let Some(e) = scheduled {
                    let _ = events.send(e);
                }
                Ok(profile)
            },
        )
        .await
    }

    /// Gives (`true`) or withdraws (`false`) a consent, stamped with now.
    pub async fn set_consent(
        &self,
        user: UserId,
        kind: ConsentKind,
        granted: bool,
    ) -> Result<UserProfile, Error> {
        crate::telemetry::observe(
            &self.db.telemetry,
            crate::telemetry::op_key!("profiles.set_consent"),
            async {
                let change = ProfileUpdate {
                    consents: vec![(kind, granted)],
                    ..Default::default()
                };
                self.upsert(user, change).await
            },
        )
        .await
    }
}

/// Fails with [`Error::ConsentRequired`] unless the user's profile holds
/// `kind` consent, as `txn` sees it (`NotFound` for a user who is not
/// live).
pub(crate) fn require_consent(
    txn: &impl ReadTxn,
    user: UserId,
    kind: ConsentKind,
) -> Result<(), Error> {
    crate::db::users::load_live(&txn.table(crate::db::schema::USERS)?, user)?;
    if has_consent(txn, user, kind)? {
        Ok(())
    } else {
        Err(Error::ConsentRequired {
            user,
            consent: kind,
        })
    }
}

/// Whether `user`'s profile holds `kind` consent, as `txn` sees it (false
/// for a user without a profile).
pub(crate) fn has_consent(
    txn: &impl ReadTxn,
    user: UserId,
    kind: ConsentKind,
) -> Result<bool, Error> {
    Ok(get(txn, user)?.is_some_and(|p| p.has_consent(kind)))
}
