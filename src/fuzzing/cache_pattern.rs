//! The `cache_pattern` target: a `KEYS` pattern as an operator or a
//! client sends it ([`Pattern`]), checked against a reference matcher.
//!
//! The bytes up to the first `0` are the pattern, the rest a key. A
//! pattern parses (1 to 64 KiB) or is [`Error::InvalidInput`]; a parsed
//! one must match the key exactly when a plain dynamic-programming glob
//! over the same tokens does, every key it matches must start with its
//! prefix, and the pattern that escapes every character of the key must
//! match the key and nothing shorter.

use crate::cache::MAX_KEY_BYTES;
use crate::cache::keys::Pattern;
use crate::error::Error;

/// A token of the reference matcher.
#[derive(Clone, Copy, PartialEq)]
enum Tok {
    Char(char),
    One,
    Any,
}

/// The pattern's tokens, read as the module doc of `cache::keys` says:
/// `*` any run, `?` one character, `\` makes the next one literal (a
/// trailing lone `\` is itself).
fn tokens(pattern: &str) -> Vec<Tok> {
    let mut out = Vec::new();
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        out.push(match c {
            '*' => Tok::Any,
            '?' => Tok::One,
            '\\' => Tok::Char(chars.next().unwrap_or('\\')),
            c => Tok::Char(c),
        });
    }
    out
}

/// Whether `tokens` match all of `key`: the textbook table, one row per
/// token.
fn reference(tokens: &[Tok], key: &[char]) -> bool {
    // row[k]: the tokens so far match key[..k].
    let mut row = vec![false; key.len() + 1];
    row[0] = true;
    for t in tokens {
        let mut next = vec![false; key.len() + 1];
        for k in 0..=key.len() {
            next[k] = match t {
                Tok::Any => row[k] || (k > 0 && next[k - 1]),
                Tok::One => k > 0 && row[k - 1],
                Tok::Char(c) => k > 0 && row[k - 1] && key[k - 1] == *c,
            };
        }
        row = next;
    }
    row[key.len()]
}

fn parse(pattern: &str) -> Option<Pattern> {
    match Pattern::parse(pattern) {
        Ok(p) => {
            assert!(
                (1..=MAX_KEY_BYTES).contains(&pattern.len()),
                "{pattern:?} parsed"
            );
            Some(p)
        }
        Err(Error::InvalidInput { .. }) => {
            assert!(
                pattern.is_empty() || pattern.len() > MAX_KEY_BYTES,
                "a pattern of {} bytes was refused",
                pattern.len()
            );
            None
        }
        Err(other) => panic!("parsing a pattern returned a non-InvalidInput error: {other}"),
    }
}

/// Runs `data` (pattern, `0`, key) through the pattern parser and matcher
/// and checks them against the reference; returns whether the pattern
/// matched the key, `None` if it was refused. Panics (the fuzzer's signal)
/// on any disagreement.
pub fn cache_pattern(data: &[u8]) -> Option<bool> {
    let (pattern, key) = match data.iter().position(|b| *b == 0) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &[][..]),
    };
    let pattern = String::from_utf8_lossy(pattern);
    let key = String::from_utf8_lossy(key);
    let p = parse(&pattern)?;
    let key_chars: Vec<char> = key.chars().collect();
    let matched = p.matches(&key);
    let tokens = tokens(&pattern);
    // The reference table is tokens × key cells: skip it for the rare
    // input that would take longer than the fuzzer's time limit.
    if tokens.len().saturating_mul(key_chars.len() + 1) <= 1 << 22 {
        assert_eq!(
            matched,
            reference(&tokens, &key_chars),
            "{pattern:?} against {key:?}"
        );
    }
    if matched {
        assert!(
            key.starts_with(&p.prefix()),
            "{key:?} lacks the prefix of {pattern:?}"
        );
    }
    // The key, every character escaped, is a pattern for that key alone.
    let escaped: String = key_chars.iter().flat_map(|c| ['\\', *c]).collect();
    if let Some(exact) = parse(&escaped) {
        assert!(exact.matches(&key), "{escaped:?} does not match {key:?}");
        assert_eq!(exact.prefix(), *key);
        if let Some((last, _)) = key.char_indices().next_back() {
            assert!(
                !exact.matches(&key[..last]),
                "{escaped:?} matches a shorter key"
            );
        }
    }
    Some(matched)
}

/// Patterns with keys they match (or not), for the seed corpus and the
/// replay tests.
pub fn sample_patterns() -> Vec<(&'static str, Vec<u8>)> {
    let pair = |p: &str, k: &str| [p.as_bytes(), &[0], k.as_bytes()].concat();
    vec![
        ("star", pair("user:*", "user:42:name")),
        ("one", pair("user:?", "user:7")),
        ("middle", pair("u*r:*:n?me", "user:42:name")),
        ("backtrack", pair("a*b*c", "aXbYbZc")),
        ("escaped", pair(r"literal\*\?", "literal*?")),
        ("devanagari", pair("प्र*", "प्रिया")),
        ("no_match", pair("*:name", "user:42:names")),
        ("bracket", pair("[ab]", "[ab]")),
        ("trailing_backslash", pair(r"key\", r"key\")),
        ("pattern_only", b"session:*".to_vec()),
    ]
}
