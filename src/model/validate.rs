//! Rules for names and text that users type: usernames, emails, language
//! tags, metric names, and the characters no text field may hold. Each
//! returns the normalised form or
//! [`Error::InvalidInput`](crate::Error::InvalidInput) saying what is accepted.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize};

use crate::error::{Error, quote};

/// Whether `c` is a control character (Unicode general category Cc) or a
/// bidirectional override or isolate (U+202A–U+202E, U+2066–U+2069): the
/// characters that can clear a terminal, forge an output line or reorder
/// the text around them. No single-line field of the store accepts them,
/// and `bvstore` escapes them wherever it prints text.
///
/// ```
/// use bharatvoice_store::is_control_or_bidi;
/// assert!(is_control_or_bidi('\x1b') && is_control_or_bidi('\n'));
/// assert!(is_control_or_bidi('\u{202e}'));
/// assert!(!is_control_or_bidi('अ') && !is_control_or_bidi(' '));
/// ```
pub fn is_control_or_bidi(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Refuses a single-line text field holding a control or bidi character.
pub(crate) fn check_line(field: &'static str, text: &str) -> Result<(), Error> {
    check_chars(field, text, is_control_or_bidi)
}

/// Refuses free text (a conversation turn) holding a control or bidi
/// character other than a line feed or a tab.
pub(crate) fn check_text(field: &'static str, text: &str) -> Result<(), Error> {
    check_chars(field, text, |c| {
        is_control_or_bidi(c) && !matches!(c, '\n' | '\t')
    })
}

fn check_chars(field: &'static str, text: &str, bad: impl Fn(char) -> bool) -> Result<(), Error> {
    match text.chars().find(|&c| bad(c)) {
        None => Ok(()),
        Some(c) => Err(Error::invalid(
            field,
            format!(
                "{} holds the control or bidi character {}",
                quote(text),
                c.escape_unicode()
            ),
        )),
    }
}

/// Whether `c` may appear in a normalised username.
fn username_char(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '.' | '-')
}

/// [`normalize_username`] without an allocation when `raw` is already in
/// normal form (the common case for lookups: names come back as stored).
pub(crate) fn normalize_username_cow(raw: &str) -> Result<Cow<'_, str>, Error> {
    // Username characters are all ASCII, so bytes count as characters here.
    if (3..=32).contains(&raw.len())
        && raw.starts_with(|c: char| c.is_ascii_alphanumeric())
        && raw.chars().all(username_char)
    {
        return Ok(Cow::Borrowed(raw));
    }
    normalize_username(raw).map(Cow::Owned)
}

/// Normalises a username: trimmed, lower-cased; 3–32 characters from
/// `a-z`, `0-9`, `_`, `.`, `-`, starting with a letter or digit.
///
/// ```
/// use bharatvoice_store::normalize_username;
/// assert_eq!(normalize_username("  Ravi_K ").unwrap(), "ravi_k");
/// assert!(normalize_username("ra vi").is_err());
/// ```
pub fn normalize_username(raw: &str) -> Result<String, Error> {
    let name = raw.trim().to_lowercase();
    let len = name.chars().count();
    if !(3..=32).contains(&len) {
        return Err(Error::invalid(
            "username",
            format!("{} must be 3 to 32 characters", quote(raw)),
        ));
    }
    if !name.chars().all(username_char) {
        return Err(Error::invalid(
            "username",
            format!(
                "{} may hold only letters a-z, digits, '_', '.' and '-'",
                quote(raw)
            ),
        ));
    }
    if !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err(Error::invalid(
            "username",
            format!("{} must start with a letter or digit", quote(raw)),
        ));
    }
    Ok(name)
}

/// Normalises an email address: trimmed and lower-cased, one `@`, a
/// non-empty local part, a domain with a dot, no spaces, at most 254 bytes.
///
/// ```
/// use bharatvoice_store::normalize_email;
/// assert_eq!(normalize_email("Priya@Example.IN").unwrap(), "priya@example.in");
/// assert!(normalize_email("priya@localhost").is_err());
/// ```
pub fn normalize_email(raw: &str) -> Result<String, Error> {
    let email = raw.trim().to_lowercase();
    let bad = |why: &str| Error::invalid("email", format!("{} {why}", quote(raw)));
    if email.is_empty() || email.len() > 254 {
        return Err(bad("must be 1 to 254 bytes"));
    }
    if email
        .chars()
        .any(|c| c.is_whitespace() || is_control_or_bidi(c))
    {
        return Err(bad("must not contain spaces or control characters"));
    }
    let (local, domain) = email.split_once('@').ok_or_else(|| bad("needs an '@'"))?;
    if local.is_empty() || domain.contains('@') {
        return Err(bad("needs exactly one '@' after a non-empty name"));
    }
    if !domain.contains('.')
        || domain.starts_with('.')
        || domain.ends_with('.')
        || domain.contains("..")
    {
        return Err(bad("needs a domain such as example.in"));
    }
    Ok(email)
}

/// Checks a metric name: 1–128 characters from `A-Z a-z 0-9 _ . :`.
pub(crate) fn check_metric_name(name: &str) -> Result<(), Error> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':'));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            "metric name",
            format!(
                "{} must be 1 to 128 characters from A-Z a-z 0-9 _ . :",
                quote(name)
            ),
        ))
    }
}

/// A BCP-47 language tag such as `hi-IN`, `ta-IN` or `sat-Olck-IN`, in
/// canonical case.
///
/// Accepted: a 2–3 letter language (or 5–8 letters), an optional 4-letter
/// script, an optional region (2 letters or 3 digits), and variants (5–8
/// alphanumerics, or a digit and 3 alphanumerics). Extensions and private
/// use subtags are refused; a voice assistant picks models by these tags and
/// should not guess at the rest.
///
/// ```
/// use bharatvoice_store::LanguageTag;
/// let t: LanguageTag = "HI-in".parse().unwrap();
/// assert_eq!(t.as_str(), "hi-IN");
/// assert!("hindi-india-x".parse::<LanguageTag>().is_err());
/// ```
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct LanguageTag(String);

impl LanguageTag {
    /// The canonical text of the tag.
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// The primary language subtag, e.g. `hi`.
    pub fn language(&self) -> &str {
        self.0.split('-').next().unwrap_or(&self.0)
    }
}

impl FromStr for LanguageTag {
    type Err = Error;
    fn from_str(raw: &str) -> Result<Self, Error> {
        let bad = |why: &str| Error::invalid("language tag", format!("{}: {why}", quote(raw)));
        if raw.is_empty() || raw.len() > 35 {
            return Err(bad("must be 1 to 35 characters, e.g. hi-IN"));
        }
        let mut parts = raw.split(['-', '_']);
        let lang = parts.next().unwrap_or_default();
        let alpha = |s: &str| s.bytes().all(|b| b.is_ascii_alphabetic());
        if !(matches!(lang.len(), 2 | 3 | 5..=8) && alpha(lang)) {
            return Err(bad("the language must be 2-3 letters, e.g. hi, ta, sat"));
        }
        let mut out = lang.to_ascii_lowercase();
        // 0: script allowed next, 1: region allowed next, 2: variants only
        let mut stage = 0;
        for part in parts {
            out.push('-');
            if stage == 0 && part.len() == 4 && alpha(part) {
                let mut chars = part.chars();
                let first = chars.next().map(|c| c.to_ascii_uppercase()).unwrap_or('X');
                out.push(first);
                out.push_str(&chars.as_str().to_ascii_lowercase());
                stage = 1;
            } else if stage <= 1
                && ((part.len() == 2 && alpha(part))
                    || (part.len() == 3 && part.bytes().all(|b| b.is_ascii_digit())))
            {
                out.push_str(&part.to_ascii_uppercase());
                stage = 2;
            } else if (5..=8).contains(&part.len())
                && part.bytes().all(|b| b.is_ascii_alphanumeric())
                || (part.len() == 4
                    && part.as_bytes()[0].is_ascii_digit()
                    && part.bytes().all(|b| b.is_ascii_alphanumeric()))
            {
                out.push_str(&part.to_ascii_lowercase());
                stage = 2;
            } else {
                return Err(bad(&format!(
                    "subtag {} is not a script, region or variant",
                    quote(part)
                )));
            }
        }
        Ok(LanguageTag(out))
    }
}

impl fmt::Display for LanguageTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for LanguageTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LanguageTag({})", self.0)
    }
}

impl<'de> Deserialize<'de> for LanguageTag {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The allocation-free path agrees with the full normalisation on
        /// every input, accepted or not.
        #[test]
        fn borrowed_username_normalisation_agrees(raw in "[ a-zA-Z0-9_.\\-é]{0,40}") {
            let full = normalize_username(&raw).ok();
            let fast = normalize_username_cow(&raw).ok().map(|c| c.into_owned());
            prop_assert_eq!(full, fast);
        }
    }

    #[test]
    fn already_normal_names_are_borrowed() {
        assert!(matches!(
            normalize_username_cow("ravi_k"),
            Ok(Cow::Borrowed("ravi_k"))
        ));
        assert!(matches!(normalize_username_cow(" Ravi_K "), Ok(Cow::Owned(n)) if n == "ravi_k"));
        assert!(normalize_username_cow("_ravi").is_err());
        assert!(normalize_username_cow("ra").is_err());
    }
}
