//! What one tier-2 write transaction does to `cache.redb`: rows with their
//! indexes, byte and tag counts kept in step, the capacity bound, the sweep.
//!
//! Every function here runs on the tier-2 writer thread inside one write
//! transaction; a storage error aborts the whole transaction.

use std::collections::HashMap;

use redb::{ReadableTable, Table, WriteTransaction};

use crate::cache::tier2::row::{self, BY_EXPIRY, BY_SEQ, ENTRIES, META, Row, TAGS};
use crate::types::Timestamp;

/// The counters kept in the `meta` table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Meta {
    pub(crate) generation: u64,
    pub(crate) next_seq: u64,
    pub(crate) entries: u64,
    pub(crate) bytes: u64,
}

/// Why a row left tier 2 (for the eviction counters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cause {
    Size,
    Expired,
    Explicit,
    Tag,
}

/// The open tables of one write transaction.
pub(crate) struct Tables<'t> {
    meta_table: Table<'t, &'static str, u64>,
    entries: Table<'t, &'static str, &'static [u8]>,
    by_expiry: Table<'t, (i64, &'static str), ()>,
    by_seq: Table<'t, u64, &'static str>,
    tags: Table<'t, &'static str, (u64, u64)>,
    pub(crate) meta: Meta,
    /// Rows removed in this transaction, by cause.
    pub(crate) removed: Vec<Cause>,
}

type R<T> = Result<T, redb::Error>;

/// Deadline (µs), sequence and tags of a row.
type Header = (Option<i64>, u64, Vec<(String, u64)>);

/// What the indexes need of a row that is going.
struct Old {
    size: u64,
    /// `None` if the row did not parse.
    header: Option<Header>,
}

impl Old {
    fn of(key: &str, bytes: &[u8]) -> Old {
        Old {
            size: (key.len() + bytes.len()) as u64,
            header: row::unseal(bytes, key).ok().map(|v| {
                let tags = v.tags.iter().map(|(t, n)| (t.to_string(), *n)).collect();
                (v.deadline.map(|d| d.as_micros()), v.seq, tags)
            }),
        }
    }
}

/// Whether a row's recorded versions are the durable ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fit {
    Current,
    /// Written under an older generation or tag version.
    Stale,
    /// Written under a version not yet durable (a bump racing this write).
    Ahead,
}

impl<'t> Tables<'t> {
    pub(crate) fn open(txn: &'t WriteTransaction) -> R<Self> {
        let meta_table = txn.open_table(META)?;
        let get = |name: &str| -> R<u64> { Ok(meta_table.get(name)?.map_or(0, |v| v.value())) };
        let meta = Meta {
            generation: get("generation")?,
            next_seq: get("next_seq")?,
            entries: get("entries")?,
            bytes: get("bytes")?,
        };
        Ok(Tables {
            entries: txn.open_table(ENTRIES)?,
            by_expiry: txn.open_table(BY_EXPIRY)?,
            by_seq: txn.open_table(BY_SEQ)?,
            tags: txn.open_table(TAGS)?,
            meta_table,
            meta,
            removed: Vec::new(),
        })
    }

    /// Writes the counters back (call once, before commit).
    pub(crate) fn save_meta(&mut self, next_seq: u64) -> R<()> {
        self.meta.next_seq = self.meta.next_seq.max(next_seq);
        let m = self.meta;
        self.meta_table
            .insert("format_version", row::FORMAT_VERSION)?;
        self.meta_table.insert("generation", m.generation)?;
        self.meta_table.insert("next_seq", m.next_seq)?;
        self.meta_table.insert("entries", m.entries)?;
        self.meta_table.insert("bytes", m.bytes)?;
        Ok(())
    }

    /// The durable version of `tag` and the rows written under it.
    pub(crate) fn tag(&self, tag: &str) -> R<(u64, u64)> {
        Ok(self.tags.get(tag)?.map_or((0, 0), |v| v.value()))
    }

    /// How a row's recorded versions compare with the durable ones.
    pub(crate) fn fit(&self, generation: u64, tags: &[(&str, u64)]) -> R<Fit> {
        let mut fit = match generation.cmp(&self.meta.generation) {
            std::cmp::Ordering::Less => return Ok(Fit::Stale),
            std::cmp::Ordering::Greater => Fit::Ahead,
            std::cmp::Ordering::Equal => Fit::Current,
        };
        for (t, v) in tags {
            let (durable, _) = self.tag(t)?;
            match v.cmp(&durable) {
                std::cmp::Ordering::Less => return Ok(Fit::Stale),
                std::cmp::Ordering::Greater => fit = Fit::Ahead,
                std::cmp::Ordering::Equal => {}
            }
        }
        Ok(fit)
    }

    fn count_tags(&mut self, tags: &[(&str, u64)], delta: i64) -> R<()> {
        for (t, v) in tags {
            let (durable, n) = self.tag(t)?;
            if *v == durable {
                let n = n.saturating_add_signed(delta);
                self.tags.insert(*t, (durable, n))?;
            }
        }
        Ok(())
    }

    /// Takes a replaced or removed row's index entries and counts out.
    fn unindex(&mut self, key: &str, old: Old) -> R<()> {
        self.meta.entries = self.meta.entries.saturating_sub(1);
        self.meta.bytes = self.meta.bytes.saturating_sub(old.size);
        // A row that did not parse leaves its index entries behind; the
        // sweep and the capacity bound check each index entry against the
        // row before they act on it.
        if let Some((deadline, seq, tags)) = old.header {
            if let Some(d) = deadline {
                self.by_expiry.remove((d, key))?;
            }
            self.by_seq.remove(seq)?;
            let tags: Vec<(&str, u64)> = tags.iter().map(|(t, v)| (t.as_str(), *v)).collect();
            self.count_tags(&tags, -1)?;
        }
        Ok(())
    }

    /// Removes the row under `key` with its index entries; `cause` is
    /// recorded if there was one. Returns whether a row was removed.
    pub(crate) fn remove(&mut self, key: &str, cause: Cause) -> R<bool> {
        let old = match self.entries.remove(key)? {
            Some(g) => Old::of(key, g.value()),
            None => return Ok(false),
        };
        self.unindex(key, old)?;
        self.removed.push(cause);
        Ok(true)
    }

    /// Writes `row` under `key`, replacing what was there. A row whose
    /// versions are not the durable ones is not written (and the old row
    /// goes): a stale row is useless, and a row "ahead" of a version bump
    /// that is not durable yet could come back to life after a crash if the
    /// bump were lost and the same version reached again.
    pub(crate) fn put(&mut self, key: &str, new: &Row) -> R<bool> {
        let tags: Vec<(&str, u64)> = new.tags.iter().map(|(t, v)| (&**t, *v)).collect();
        if self.fit(new.generation, &tags)? != Fit::Current {
            // Replaced, not evicted: not counted.
            if self.remove(key, Cause::Explicit)? {
                self.removed.pop();
            }
            return Ok(false);
        }
        let bytes = row::seal(key, new);
        let old = self
            .entries
            .insert(key, bytes.as_slice())?
            .map(|g| Old::of(key, g.value()));
        if let Some(old) = old {
            self.unindex(key, old)?;
        }
        if let Some(d) = new.deadline {
            self.by_expiry.insert((d.as_micros(), key), ())?;
        }
        self.by_seq.insert(new.seq, key)?;
        self.meta.entries += 1;
        self.meta.bytes += (key.len() + bytes.len()) as u64;
        self.count_tags(&tags, 1)?;
        Ok(true)
    }

    /// Removes the row under `key` if it is expired or stale (lazy reclaim).
    pub(crate) fn reclaim(&mut self, key: &str, now: Timestamp) -> R<()> {
        let cause = match self.entries.get(key)? {
            None => return Ok(()),
            Some(v) => match row::unseal(v.value(), key) {
                Err(_) => Some(Cause::Tag),
                Ok(view) => {
                    if self.fit(view.generation, &view.tags)? == Fit::Stale {
                        Some(Cause::Tag)
                    } else if view.deadline.is_some_and(|d| d <= now) {
                        Some(Cause::Expired)
                    } else {
                        None
                    }
                }
            },
        };
        if let Some(cause) = cause {
            self.remove(key, cause)?;
        }
        Ok(())
    }

    /// Moves `tag` past its durable version, to `version` at least (so a
    /// bump always makes the rows written under the durable version stale,
    /// even if memory's version was behind it); returns the version now
    /// durable and how many rows were written under the one it replaced.
    pub(crate) fn bump_tag(&mut self, tag: &str, version: u64) -> R<(u64, u64)> {
        let (durable, rows) = self.tag(tag)?;
        let new = (durable + 1).max(version);
        self.tags.insert(tag, (new, 0))?;
        Ok((new, rows))
    }

    /// Empties the cache and moves to `generation` (at least).
    pub(crate) fn clear(&mut self, generation: u64) -> R<()> {
        self.entries.retain(|_, _| false)?;
        self.by_expiry.retain(|_, _| false)?;
        self.by_seq.retain(|_, _| false)?;
        let mut counted = Vec::new();
        for item in self.tags.iter()? {
            let (k, v) = item?;
            let (version, rows) = v.value();
            if rows > 0 {
                counted.push((k.value().to_string(), version));
            }
        }
        for (t, version) in counted {
            self.tags.insert(t.as_str(), (version, 0))?;
        }
        self.meta.generation = self.meta.generation.max(generation);
        self.meta.entries = 0;
        self.meta.bytes = 0;
        Ok(())
    }

    /// Removes the oldest writes until the rows fit in `capacity` bytes.
    pub(crate) fn enforce_capacity(&mut self, capacity: u64) -> R<()> {
        while self.meta.bytes > capacity {
            let Some((seq, key)) = self
                .by_seq
                .pop_first()?
                .map(|(s, k)| (s.value(), k.value().to_string()))
            else {
                break;
            };
            let matches = match self.entries.get(key.as_str())? {
                Some(v) => row::unseal(v.value(), &key).is_ok_and(|r| r.seq == seq),
                None => false,
            };
            if matches {
                self.remove(&key, Cause::Size)?;
            }
        }
        Ok(())
    }

    /// Removes up to `limit` rows whose deadline has passed.
    pub(crate) fn sweep_expired(&mut self, now: Timestamp, limit: usize) -> R<()> {
        let mut due = Vec::new();
        for item in self
            .by_expiry
            .range((i64::MIN, "")..(now.as_micros(), ""))?
        {
            let (k, _) = item?;
            let (d, key) = k.value();
            due.push((d, key.to_string()));
            if due.len() >= limit {
                break;
            }
        }
        for (d, key) in due {
            self.by_expiry.remove((d, key.as_str()))?;
            let matches = match self.entries.get(key.as_str())? {
                Some(v) => row::unseal(v.value(), &key)
                    .is_ok_and(|r| r.deadline.map(|t| t.as_micros()) == Some(d)),
                None => false,
            };
            if matches {
                self.remove(&key, Cause::Expired)?;
            }
        }
        Ok(())
    }

    /// Checks up to `limit` rows from `cursor` on and removes the stale and
    /// corrupt ones; returns where to go on next time (`None`: from the top).
    pub(crate) fn sweep_stale(&mut self, cursor: Option<&str>, limit: usize) -> R<Option<String>> {
        let mut versions: HashMap<String, u64> = HashMap::new();
        let mut stale = Vec::new();
        let mut last = None;
        let mut seen = 0;
        let range = match cursor {
            Some(c) => self.entries.range(c..)?,
            None => self.entries.range::<&str>(..)?,
        };
        for item in range {
            let (k, v) = item?;
            let key = k.value();
            seen += 1;
            let is_stale = match row::unseal(v.value(), key) {
                Err(_) => true,
                Ok(view) => {
                    view.generation != self.meta.generation
                        || view.tags.iter().any(|(t, ver)| {
                            let durable = *versions.entry(t.to_string()).or_insert_with(|| {
                                self.tags.get(*t).ok().flatten().map_or(0, |g| g.value().0)
                            });
                            *ver != durable
                        })
                }
            };
            if is_stale {
                stale.push(key.to_string());
            }
            if seen >= limit {
                last = Some(key.to_string());
                break;
            }
        }
        for key in stale {
            self.remove(&key, Cause::Tag)?;
        }
        // Start after the last key seen: append a NUL, the smallest suffix.
        Ok(last.map(|mut k| {
            k.push('\0');
            k
        }))
    }

    /// Writes a tag's version (recovery), keeping it from going back; a
    /// version already durable keeps its row count.
    pub(crate) fn raise_tag(&mut self, tag: &str, version: u64) -> R<u64> {
        let (durable, _) = self.tag(tag)?;
        if version <= durable {
            return Ok(durable);
        }
        self.tags.insert(tag, (version, 0))?;
        Ok(version)
    }
}
