//! Tag versions: how `invalidate_tag` costs O(1) however many entries carry
//! the tag.
//!
//! Every tag has a version. An entry records, when it is written, the
//! version of each of its tags; it counts as missing once any of them moved.
//! `invalidate_tag` bumps one counter (and writes one row of `cache.redb`),
//! and every entry written under the old version is stale from that moment:
//! a lookup compares the versions it recorded with the current ones (an
//! atomic load per tag, through an `Arc` the entry holds, so no map lookup
//! on the hot path). Stale entries are dropped when met and by the sweep.
//!
//! Versions persist in tier 2's `tags` table and only ever grow. A tag's
//! state is loaded from there the first time it is used in a process; states
//! no entry refers to are pruned by the sweep and reloaded on next use.
//!
//! Each tag also keeps `members`, an estimate of the live entries written
//! under its current version, for the count `invalidate_tag` returns when
//! tier 2 (which counts its rows exactly) is off or degraded.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use crate::error::Error;

/// Most tags one entry may carry.
pub(crate) const MAX_TAGS: usize = 32;
/// Longest tag, in bytes.
pub(crate) const MAX_TAG_BYTES: usize = 256;

/// One tag's version, shared by the entries that carry it.
#[derive(Debug)]
pub(crate) struct TagState {
    pub(crate) name: Box<str>,
    version: AtomicU64,
    members: AtomicI64,
    /// The in-memory version may be behind (unknown to) tier 2: set when the
    /// version could not be loaded from it.
    dirty: AtomicBool,
}

impl TagState {
    #[inline]
    pub(crate) fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    /// Moves to the next version (tier 2 off); returns the member estimate
    /// it had.
    pub(crate) fn bump(&self) -> u64 {
        self.version.fetch_add(1, Ordering::AcqRel);
        self.take_members()
    }

    /// Takes the member estimate (a bump made tier 2's count the answer).
    pub(crate) fn take_members(&self) -> u64 {
        self.members.swap(0, Ordering::AcqRel).max(0).unsigned_abs()
    }

    /// Sets the version to at least `v` (a durable bump, or recovery of a
    /// degraded tier 2).
    pub(crate) fn raise_to(&self, v: u64) {
        self.version.fetch_max(v, Ordering::AcqRel);
    }

    pub(crate) fn add_member(&self, n: i64) {
        self.members.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn is_dirty(&self) -> bool {
        self.dirty.load(Ordering::Acquire)
    }

    pub(crate) fn clear_dirty(&self) {
        self.dirty.store(false, Ordering::Release);
    }
}

/// A tag as an entry recorded it: its state and the version at write time.
#[derive(Debug, Clone)]
pub(crate) struct TagRef {
    pub(crate) state: Arc<TagState>,
    pub(crate) version: u64,
}

impl TagRef {
    #[inline]
    pub(crate) fn is_current(&self) -> bool {
        self.state.version() == self.version
    }
}

/// The tags known to this process.
#[derive(Debug, Default)]
pub(crate) struct Tags {
    map: RwLock<HashMap<Box<str>, Arc<TagState>>>,
}

/// Checks a tag name from a caller.
pub(crate) fn validate(tag: &str) -> Result<(), Error> {
    if tag.is_empty() || tag.len() > MAX_TAG_BYTES {
        return Err(Error::invalid(
            "tag",
            format!("a tag must be 1 to {MAX_TAG_BYTES} bytes long"),
        ));
    }
    Ok(())
}

impl Tags {
    /// The state of `name`, loading its version with `load` (from tier 2)
    /// on first use. `load` returns `None` when it could not read tier 2:
    /// the tag then starts dirty, to be reconciled when tier 2 comes back.
    pub(crate) fn get(&self, name: &str, load: impl FnOnce() -> Option<u64>) -> Arc<TagState> {
        if let Some(s) = self.map.read().ok().and_then(|m| m.get(name).cloned()) {
            return s;
        }
        let loaded = load();
        let fresh = Arc::new(TagState {
            name: name.into(),
            version: AtomicU64::new(loaded.unwrap_or(0)),
            members: AtomicI64::new(0),
            dirty: AtomicBool::new(loaded.is_none()),
        });
        match self.map.write() {
            Ok(mut m) => Arc::clone(m.entry(name.into()).or_insert(fresh)),
            Err(_) => fresh,
        }
    }

    /// Every known state (for recovery and `clear`).
    pub(crate) fn all(&self) -> Vec<Arc<TagState>> {
        self.map
            .read()
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Forgets states no entry refers to (and that carry nothing tier 2
    /// lacks); they are reloaded from tier 2 on next use.
    pub(crate) fn prune(&self) -> usize {
        let Ok(mut m) = self.map.write() else {
            return 0;
        };
        let before = m.len();
        m.retain(|_, s| Arc::strong_count(s) > 1 || s.is_dirty());
        before - m.len()
    }

    /// Forgets every state (tier 2 off: nothing to reload from, and `clear`
    /// made every entry stale anyway).
    pub(crate) fn reset_members(&self) {
        for s in self.all() {
            s.members.store(0, Ordering::Relaxed);
        }
    }
}
