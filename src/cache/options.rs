//! How a value is written ([`SetOptions`]) and what `ttl` reports ([`Ttl`]).

use std::time::Duration;

use crate::cache::tags::{self, MAX_TAGS};
use crate::error::Error;
use crate::types::Timestamp;

/// When a `set` writes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Condition {
    /// Always (plain `SET`).
    #[default]
    Always,
    /// Only if the key holds no live value (`SET NX`).
    IfAbsent,
    /// Only if the key holds a live value (`SET XX`).
    IfPresent,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum TtlSetting {
    #[default]
    Default,
    Never,
    For(Duration),
}

/// TTL, tags and condition of a write.
///
/// ```
/// use std::time::Duration;
/// use bharatvoice_store::SetOptions;
/// let opts = SetOptions::new()
///     .ttl(Duration::from_secs(300))
///     .tag("user:42")
///     .if_absent();
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SetOptions {
    ttl: TtlSetting,
    tags: Vec<String>,
    condition: Condition,
}

impl SetOptions {
    /// The default TTL of the cache, no tags, unconditional.
    pub fn new() -> Self {
        Self::default()
    }
    /// Expire `ttl` from now (must be more than zero).
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = TtlSetting::For(ttl);
        self
    }
    /// Never expire, whatever the cache's default TTL.
    pub fn no_expiry(mut self) -> Self {
        self.ttl = TtlSetting::Never;
        self
    }
    /// Adds a tag (`invalidate_tag` of it makes the entry stale).
    pub fn tag(mut self, tag: impl Into<String>) -> Self {
        self.tags.push(tag.into());
        self
    }
    /// Adds tags.
    pub fn tags<I: IntoIterator<Item = S>, S: Into<String>>(mut self, tags: I) -> Self {
        self.tags.extend(tags.into_iter().map(Into::into));
        self
    }
    /// Write only if the key is absent (NX).
    pub fn if_absent(mut self) -> Self {
        self.condition = Condition::IfAbsent;
        self
    }
    /// Write only if the key is present (XX).
    pub fn if_present(mut self) -> Self {
        self.condition = Condition::IfPresent;
        self
    }
    /// Sets the condition.
    pub fn condition(mut self, c: Condition) -> Self {
        self.condition = c;
        self
    }

    pub(crate) fn when(&self) -> Condition {
        self.condition
    }

    pub(crate) fn tag_names(&self) -> &[String] {
        &self.tags
    }

    /// The deadline a write at `now` gets.
    pub(crate) fn deadline(&self, now: Timestamp, default: Option<Duration>) -> Option<Timestamp> {
        match self.ttl {
            TtlSetting::Default => default.map(|d| now.plus(d)),
            TtlSetting::Never => None,
            TtlSetting::For(d) => Some(now.plus(d)),
        }
    }

    pub(crate) fn validate(&self) -> Result<(), Error> {
        if self.ttl == TtlSetting::For(Duration::ZERO) {
            return Err(Error::invalid("ttl", "a TTL must be more than zero"));
        }
        if self.tags.len() > MAX_TAGS {
            return Err(Error::invalid(
                "tags",
                format!("at most {MAX_TAGS} tags per entry"),
            ));
        }
        self.tags.iter().try_for_each(|t| tags::validate(t))
    }
}

/// The time a key has left ([`Cache::ttl`](crate::Cache::ttl)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ttl {
    /// The key holds no live value.
    Missing,
    /// The key never expires.
    NoExpiry,
    /// The key expires after this long.
    Remaining(Duration),
}
