//! The privacy settings: whether storing audio needs consent, the notice
//! period of a consent withdrawal, and how often the erasure job looks.

use std::time::Duration;

use serde::Deserialize;

use crate::error::{Error, quote};

/// Privacy settings (`Config::privacy`).
///
/// | setting | default | TOML (`[privacy]`) | env |
/// |---|---|---|---|
/// | `require_consent` | `true`: storing audio needs the owner's audio-storage consent | `require_consent` | `BV_PRIVACY_REQUIRE_CONSENT` |
/// | `consent_notice` | 0: a withdrawal erases the user's audio at once | `consent_notice_secs` | `BV_PRIVACY_CONSENT_NOTICE_SECS` |
/// | `erasure_interval` | 60 s: how often the erasure job looks for due erasures | `erasure_interval_secs` | |
///
/// ```
/// use std::time::Duration;
/// use bharatvoice_store::{Config, PrivacyConfig};
/// let config = Config::new("/tmp/bv-example")
///     .privacy(PrivacyConfig::default().consent_notice(Duration::from_secs(7 * 86_400)));
/// assert!(config.privacy.require_consent);
/// let t = Config::from_toml_str("[privacy]\nrequire_consent = false").unwrap();
/// assert!(!t.privacy.require_consent);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PrivacyConfig {
    /// Refuse to store audio for a user without audio-storage consent
    /// ([`Error::ConsentRequired`]).
    pub require_consent: bool,
    /// How long after an audio-storage consent withdrawal the user's audio
    /// is erased; giving the consent back before then cancels it.
    pub consent_notice: Duration,
    /// How often the `erasure` job runs (it also runs at once when an
    /// erasure falls due with no notice).
    pub erasure_interval: Duration,
}

impl Default for PrivacyConfig {
    fn default() -> Self {
        PrivacyConfig {
            require_consent: true,
            consent_notice: Duration::ZERO,
            erasure_interval: Duration::from_secs(60),
        }
    }
}

/// The TOML shape of `[privacy]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FilePrivacyConfig {
    require_consent: Option<bool>,
    consent_notice_secs: Option<u64>,
    erasure_interval_secs: Option<u64>,
}

impl PrivacyConfig {
    pub(crate) fn from_file(f: FilePrivacyConfig) -> PrivacyConfig {
        let d = PrivacyConfig::default();
        PrivacyConfig {
            require_consent: f.require_consent.unwrap_or(d.require_consent),
            consent_notice: f
                .consent_notice_secs
                .map_or(d.consent_notice, Duration::from_secs),
            erasure_interval: f
                .erasure_interval_secs
                .map_or(d.erasure_interval, Duration::from_secs),
        }
    }

    pub(crate) fn apply_env(&mut self, get: &impl Fn(&str) -> Option<String>) -> Result<(), Error> {
        if let Some(v) = get("BV_PRIVACY_REQUIRE_CONSENT") {
            self.require_consent = crate::config::env_bool("BV_PRIVACY_REQUIRE_CONSENT", &v)?;
        }
        if let Some(v) = get("BV_PRIVACY_CONSENT_NOTICE_SECS") {
            let secs = v.trim().parse::<u64>().map_err(|_| Error::Config {
                reason: format!(
                    "BV_PRIVACY_CONSENT_NOTICE_SECS={} is not a number",
                    quote(&v)
                ),
            })?;
            self.consent_notice = Duration::from_secs(secs);
        }
        Ok(())
    }

    /// Checks every setting against its range.
    pub fn validate(&self) -> Result<(), Error> {
        if self.consent_notice > Duration::from_secs(crate::config::TEN_YEARS_SECS) {
            return Err(Error::Config {
                reason: "privacy.consent_notice must be at most 3650 days".into(),
            });
        }
        if self.erasure_interval < Duration::from_millis(1)
            || self.erasure_interval > Duration::from_secs(86_400)
        {
            return Err(Error::Config {
                reason: "privacy.erasure_interval must be 1 ms to 1 day".into(),
            });
        }
        Ok(())
    }

    /// Switches the consent gate on audio puts on or off.
    pub fn require_consent(mut self, on: bool) -> Self {
        self.require_consent = on;
        self
    }

    /// Sets the notice period of an audio-storage consent withdrawal.
    pub fn consent_notice(mut self, d: Duration) -> Self {
        self.consent_notice = d;
        self
    }

    /// Sets how often the erasure job runs.
    pub fn erasure_interval(mut self, d: Duration) -> Self {
        self.erasure_interval = d;
        self
    }
}
