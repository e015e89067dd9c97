//! A cached entry as tier 1 holds it, and [`CacheValue`], the handle a
//! `get_bytes` returns without copying.

use std::sync::Arc;

use crate::cache::tags::TagRef;
use crate::clock::Clock;
use crate::types::Timestamp;

/// Weighed bytes per tier-1 entry on top of key and value: moka's own
/// bookkeeping (~150–180 B per entry, which its weigher does not see), this
/// struct, its `Arc` and the key's `String`.
pub(crate) const ENTRY_OVERHEAD: usize = 256;
/// Weighed bytes per tag an entry carries.
pub(crate) const TAG_OVERHEAD: usize = 24;

/// One entry: its bytes, deadline, and the versions it was written under.
#[derive(Debug)]
pub(crate) struct Item {
    pub(crate) value: Box<[u8]>,
    pub(crate) deadline: Option<Timestamp>,
    /// The `clear` generation it was written in.
    pub(crate) generation: u64,
    pub(crate) tags: Box<[TagRef]>,
}

/// Why an entry cannot be returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Staleness {
    Fresh,
    Expired,
    /// A tag moved, or the cache was cleared, since it was written.
    Stale,
}

impl Item {
    /// Whether the entry may be returned now.
    #[inline]
    pub(crate) fn check(&self, clock: &Clock, generation: u64) -> Staleness {
        if self.generation != generation || !self.tags.iter().all(TagRef::is_current) {
            return Staleness::Stale;
        }
        match self.deadline {
            Some(d) if clock.now() >= d => Staleness::Expired,
            _ => Staleness::Fresh,
        }
    }

    /// The bytes tier 1 charges for this entry under `key`.
    pub(crate) fn weight(&self, key: &str) -> u32 {
        let w = key.len() + self.value.len() + ENTRY_OVERHEAD + self.tags.len() * TAG_OVERHEAD;
        u32::try_from(w).unwrap_or(u32::MAX)
    }
}

/// A cached value's bytes, shared with the cache (no copy is made).
///
/// ```
/// # use bharatvoice_store::*;
/// # #[tokio::main] async fn main() -> Result<(), Error> {
/// # let dir = tempfile::tempdir().unwrap();
/// # let store = Store::open(Config::new(dir.path())).await?;
/// store.cache().set_bytes("greeting", "नमस्ते".as_bytes()).await?;
/// let v = store.cache().get_bytes("greeting").await?.unwrap();
/// assert_eq!(&*v, "नमस्ते".as_bytes());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct CacheValue(pub(crate) Arc<Item>);

impl CacheValue {
    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0.value
    }
    /// The deadline of the entry, if it has one.
    pub fn expires_at(&self) -> Option<Timestamp> {
        self.0.deadline
    }
}

impl std::ops::Deref for CacheValue {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0.value
    }
}

impl AsRef<[u8]> for CacheValue {
    fn as_ref(&self) -> &[u8] {
        &self.0.value
    }
}

impl std::fmt::Debug for CacheValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheValue")
            .field("len", &self.0.value.len())
            .field("expires_at", &self.0.deadline)
            .finish()
    }
}

impl PartialEq<[u8]> for CacheValue {
    fn eq(&self, other: &[u8]) -> bool {
        *self.0.value == *other
    }
}
