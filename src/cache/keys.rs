//! Listing keys by pattern: the cache's `KEYS`.
//!
//! A [`Pattern`] is a glob matched against the whole key: `*` matches any
//! run of characters (none too), `?` exactly one character, and `\` makes
//! the character after it literal; every other character matches itself
//! (Redis's `[abc]` classes are not supported: `[` is a literal).
//!
//! A listing reads both tiers and returns each live key once, sorted. A key
//! tier 1 holds is decided there, as a lookup would decide it (an expired or
//! stale entry hides an older row in tier 2); any other key by its newest
//! row in tier 2, the write-behind overlay before `cache.redb`, whose
//! entries are read from the pattern's literal prefix on. Expired and stale
//! entries are left out. It costs a pass over tier 1 and over tier 2's keys
//! that share the prefix: a command for operators and tests, not for a hot
//! path (Redis warns the same of `KEYS`).

use std::collections::{BTreeMap, HashMap};

use crate::cache::item::Staleness;
use crate::cache::tier2::scan::RowHead;
use crate::cache::{CacheCore, MAX_KEY_BYTES};
use crate::error::Error;
use crate::types::Timestamp;

/// One element of a [`Pattern`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    /// This character.
    Literal(char),
    /// `?`: any one character.
    One,
    /// `*`: any run of characters.
    Any,
}

/// A glob over cache keys (`*`, `?`, `\` escapes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pattern {
    tokens: Vec<Token>,
}

impl Pattern {
    /// Parses `pattern`: 1 to 64 KiB, like a key. A trailing lone `\` is
    /// a literal backslash.
    pub(crate) fn parse(pattern: &str) -> Result<Pattern, Error> {
        if crate::cache::validate_key(pattern).is_err() {
            return Err(Error::invalid(
                "pattern",
                format!("a key pattern must be 1 to {MAX_KEY_BYTES} bytes long"),
            ));
        }
        let mut tokens = Vec::with_capacity(pattern.len());
        let mut chars = pattern.chars();
        while let Some(c) = chars.next() {
            tokens.push(match c {
                '*' if tokens.last() == Some(&Token::Any) => continue,
                '*' => Token::Any,
                '?' => Token::One,
                '\\' => Token::Literal(chars.next().unwrap_or('\\')),
                c => Token::Literal(c),
            });
        }
        Ok(Pattern { tokens })
    }

    /// The literal text every matching key starts with.
    pub(crate) fn prefix(&self) -> String {
        self.tokens
            .iter()
            .map_while(|t| match t {
                Token::Literal(c) => Some(*c),
                _ => None,
            })
            .collect()
    }

    /// Whether `key`, whole, matches. Linear backtracking over the last
    /// `*` seen: O(key × pattern) at worst, without recursion.
    pub(crate) fn matches(&self, key: &str) -> bool {
        let key: Vec<char> = key.chars().collect();
        let (mut p, mut k) = (0, 0);
        // Where the last `*` is, and where its match would end next.
        let mut star: Option<(usize, usize)> = None;
        while k < key.len() {
            match self.tokens.get(p) {
                Some(Token::Any) => {
                    star = Some((p, k));
                    p += 1;
                }
                Some(Token::One) => (p, k) = (p + 1, k + 1),
                Some(Token::Literal(c)) if *c == key[k] => (p, k) = (p + 1, k + 1),
                _ => match star {
                    Some((sp, sk)) => {
                        star = Some((sp, sk + 1));
                        (p, k) = (sp + 1, sk + 1);
                    }
                    None => return false,
                },
            }
        }
        self.tokens[p..].iter().all(|t| *t == Token::Any)
    }
}

impl CacheCore {
    /// The live keys matching `pattern`, sorted (see the module doc).
    pub(crate) async fn keys(&self, pattern: &str) -> Result<Vec<String>, Error> {
        self.check_open()?;
        let pattern = Pattern::parse(pattern)?;
        let generation = self.generation();
        // Each key tier 1 holds, and whether its entry is live.
        let mut keys: BTreeMap<String, bool> = BTreeMap::new();
        for (key, item) in self.tier1.iter() {
            if pattern.matches(&key) {
                let live = item.check(&self.clock, generation) == Staleness::Fresh;
                keys.insert(key.to_string(), live);
            }
        }
        if let Some(t2) = &self.tier2 {
            let prefix = pattern.prefix();
            let rows = t2.scan(prefix, move |k| pattern.matches(k)).await?;
            let now = self.clock.now();
            let mut versions = HashMap::new();
            for (key, head) in rows {
                keys.entry(key)
                    .or_insert_with(|| self.is_live(&head, generation, now, &mut versions));
            }
        }
        Ok(keys
            .into_iter()
            .filter_map(|(key, live)| live.then_some(key))
            .collect())
    }

    /// Whether a tier-2 row is live: written in this generation under its
    /// tags' current versions, and not expired. `versions` keeps the tag
    /// versions already looked up.
    fn is_live(
        &self,
        head: &RowHead,
        generation: u64,
        now: Timestamp,
        versions: &mut HashMap<Box<str>, u64>,
    ) -> bool {
        if head.generation != generation || head.deadline.is_some_and(|d| now >= d) {
            return false;
        }
        head.tags.iter().all(|(name, version)| {
            let current = *versions
                .entry(name.clone())
                .or_insert_with(|| self.tag(name).version());
            current == *version
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::Pattern;
    use crate::{CacheConfig, Config, ManualClock, SetOptions, Store, Timestamp};

    fn matches(pattern: &str, key: &str) -> bool {
        Pattern::parse(pattern).unwrap().matches(key)
    }

    #[test]
    fn globs_match_the_whole_key() {
        for (p, k) in [
            ("*", "anything"),
            ("user:*", "user:"),
            ("user:*", "user:42:name"),
            ("user:?", "user:7"),
            ("*:name", "user:42:name"),
            ("u*r:*:n?me", "user:42:name"),
            ("a*b*c", "aXbYbZc"),
            ("प्र*", "प्रिया"),
            ("?", "क"),
            (r"literal\*", "literal*"),
            (r"q\?", "q?"),
            ("[ab]", "[ab]"),
        ] {
            assert!(matches(p, k), "{p} should match {k}");
        }
        for (p, k) in [
            ("user:?", "user:42"),
            ("user:*", "users:1"),
            ("*:name", "user:42:names"),
            ("a*b*c", "aXbYbZ"),
            (r"literal\*", "literalX"),
            ("?", ""),
            ("abc", "ab"),
        ] {
            assert!(!matches(p, k), "{p} should not match {k}");
        }
        assert!(Pattern::parse("").is_err());
    }

    #[test]
    fn the_prefix_is_the_literal_head() {
        let prefix = |p: &str| Pattern::parse(p).unwrap().prefix();
        assert_eq!(prefix("user:*:name"), "user:");
        assert_eq!(prefix(r"a\*b?"), "a*b");
        assert_eq!(prefix("*x"), "");
        assert_eq!(prefix("plain"), "plain");
    }

    /// Keys come from both tiers (a reopened store holds them only on disk),
    /// once each, sorted; expired, deleted and stale keys are left out.
    #[tokio::test]
    async fn keys_lists_both_tiers_without_dead_entries() {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::new(Timestamp::now());
        let config = || {
            Config::new(dir.path())
                .clock(clock.clone())
                .cache(CacheConfig::default())
        };
        let store = Store::open(config()).await.unwrap();
        let c = store.cache();
        let ttl = SetOptions::new().ttl(Duration::from_secs(60));
        c.set_bytes("user:1", b"a").await.unwrap();
        c.set_bytes_with("user:2", b"b", &ttl).await.unwrap();
        c.set_bytes("user:3", b"c").await.unwrap();
        c.set_bytes("session:1", b"s").await.unwrap();
        store.close().await;
        drop(store);

        let store = Store::open(config()).await.unwrap();
        let c = store.cache();
        assert_eq!(
            c.keys("user:*").await.unwrap(),
            ["user:1", "user:2", "user:3"]
        );
        c.set_bytes("user:0", b"memory only").await.unwrap();
        assert_eq!(
            c.get_bytes("user:3").await.unwrap().unwrap().as_bytes(),
            b"c"
        );
        c.set_bytes_with("user:9", b"t", &SetOptions::new().tag("gone"))
            .await
            .unwrap();
        c.invalidate_tag("gone").await.unwrap();
        c.delete("user:1").await.unwrap();
        clock.advance(Duration::from_secs(61));
        assert_eq!(c.keys("user:?").await.unwrap(), ["user:0", "user:3"]);
        assert_eq!(c.keys("*:1").await.unwrap(), ["session:1"]);
        assert!(c.keys("nothing*").await.unwrap().is_empty());
        store.close().await;
    }
}
