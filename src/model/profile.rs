//! A user's profile: languages, voice, retention and consent.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::model::validate::{LanguageTag, check_line};
use crate::types::{ProfileId, Timestamp, UserId};

/// One profile per user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserProfile {
    /// Its own id.
    pub id: ProfileId,
    /// The user it belongs to.
    pub user_id: UserId,
    /// Languages in order of preference, e.g. `hi-IN`, `ta-IN`.
    pub languages: Vec<LanguageTag>,
    /// Region, e.g. `Tamil Nadu`.
    pub region: Option<String>,
    /// Accent, e.g. `Madurai`.
    pub accent: Option<String>,
    /// How the assistant should speak.
    pub voice: VoicePreferences,
    /// Days to keep the user's audio; `None` means the store default.
    pub audio_retention_days: Option<u32>,
    /// Consent flags with the time each was given or withdrawn.
    pub consents: BTreeMap<ConsentKind, ConsentState>,
    /// Free-form preferences.
    pub preferences: BTreeMap<String, String>,
    /// When the profile was made.
    pub created_at: Timestamp,
    /// The last change.
    pub updated_at: Timestamp,
}

impl UserProfile {
    /// Whether consent of this kind is currently given.
    pub fn has_consent(&self, kind: ConsentKind) -> bool {
        self.consents.get(&kind).is_some_and(|c| c.granted)
    }
}

/// How the assistant should speak to the user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VoicePreferences {
    /// A voice name, if chosen.
    pub voice: Option<String>,
    /// Speaking rate, 0.25–4.0 (1.0 is normal).
    pub speaking_rate: f32,
    /// Pitch shift in semitones, −12–12.
    pub pitch: f32,
}

impl Default for VoicePreferences {
    fn default() -> Self {
        VoicePreferences {
            voice: None,
            speaking_rate: 1.0,
            pitch: 0.0,
        }
    }
}

/// What a user may consent to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConsentKind {
    /// Keeping recordings of the user's voice.
    AudioStorage,
    /// Adapting models to the user.
    Personalisation,
    /// Usage analytics.
    Analytics,
}

/// The name `bvstore` and the JSON output use.
impl std::fmt::Display for ConsentKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ConsentKind::AudioStorage => "audio-storage",
            ConsentKind::Personalisation => "personalisation",
            ConsentKind::Analytics => "analytics",
        })
    }
}

impl std::str::FromStr for ConsentKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "audio-storage" => Ok(ConsentKind::AudioStorage),
            "personalisation" | "personalization" => Ok(ConsentKind::Personalisation),
            "analytics" => Ok(ConsentKind::Analytics),
            _ => Err(Error::invalid(
                "consent",
                format!(
                    "{} is not one of audio-storage, personalisation, analytics",
                    crate::error::quote(s)
                ),
            )),
        }
    }
}

/// Whether a consent is given, and since when.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentState {
    /// Given (`true`) or withdrawn (`false`).
    pub granted: bool,
    /// When it was given or withdrawn.
    pub at: Timestamp,
}

/// A change to a profile; `None` fields stay as they are. Applied by
/// [`Profiles::upsert`](crate::Profiles::upsert), which creates the profile
/// on first use.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProfileUpdate {
    /// New language list (at least one tag).
    pub languages: Option<Vec<LanguageTag>>,
    /// New region (`Some(None)` clears it).
    pub region: Option<Option<String>>,
    /// New accent (`Some(None)` clears it).
    pub accent: Option<Option<String>>,
    /// New voice preferences.
    pub voice: Option<VoicePreferences>,
    /// New retention (`Some(None)` returns to the store default).
    pub audio_retention_days: Option<Option<u32>>,
    /// Consents to give (`true`) or withdraw (`false`), stamped with now.
    pub consents: Vec<(ConsentKind, bool)>,
    /// Preferences to set (`Some`) or remove (`None`).
    pub preferences: Vec<(String, Option<String>)>,
}

impl ProfileUpdate {
    /// Checks every field; nothing is written when this fails.
    pub(crate) fn validate(&self) -> Result<(), Error> {
        if let Some(langs) = &self.languages
            && (langs.is_empty() || langs.len() > 16)
        {
            return Err(Error::invalid("languages", "give 1 to 16 language tags"));
        }
        for text in [&self.region, &self.accent].into_iter().flatten().flatten() {
            if text.len() > 128 {
                return Err(Error::invalid("region/accent", "at most 128 bytes"));
            }
            check_line("region/accent", text)?;
        }
        if let Some(v) = &self.voice {
            if let Some(name) = &v.voice {
                check_line("voice", name)?;
            }
            if !(0.25..=4.0).contains(&v.speaking_rate) {
                return Err(Error::invalid(
                    "speaking rate",
                    "must be between 0.25 and 4.0",
                ));
            }
            if !(-12.0..=12.0).contains(&v.pitch) {
                return Err(Error::invalid(
                    "pitch",
                    "must be between -12 and 12 semitones",
                ));
            }
        }
        if let Some(Some(days)) = self.audio_retention_days
            && !(1..=3650).contains(&days)
        {
            return Err(Error::invalid(
                "retention days",
                format!("{days} must be 1 to 3650"),
            ));
        }
        for (k, v) in &self.preferences {
            if k.is_empty() || k.len() > 64 || v.as_ref().is_some_and(|v| v.len() > 4096) {
                return Err(Error::invalid(
                    "preference",
                    "keys 1-64 bytes, values up to 4096 bytes",
                ));
            }
            check_line("preference", k)?;
            if let Some(v) = v {
                check_line("preference", v)?;
            }
        }
        Ok(())
    }

    /// Applies the change to `p` at time `now`.
    pub(crate) fn apply(&self, p: &mut UserProfile, now: Timestamp) {
        if let Some(l) = &self.languages {
            p.languages = l.clone();
        }
        if let Some(r) = &self.region {
            p.region = r.clone();
        }
        if let Some(a) = &self.accent {
            p.accent = a.clone();
        }
        if let Some(v) = &self.voice {
            p.voice = v.clone();
        }
        if let Some(d) = self.audio_retention_days {
            p.audio_retention_days = d;
        }
        for &(kind, granted) in &self.consents {
            p.consents.insert(kind, ConsentState { granted, at: now });
        }
        for (k, v) in &self.preferences {
            match v {
                Some(v) => {
                    p.preferences.insert(k.clone(), v.clone());
                }
                None => {
                    p.preferences.remove(k);
                }
            }
        }
        p.updated_at = now;
    }
}
