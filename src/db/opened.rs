//! Opened session contexts kept in memory, so that reading a session does
//! not decrypt its turns again when they have not changed.
//!
//! Why: a session's turns are sealed at rest (`db::session_row`), and an
//! assistant reads the same session on every turn of a conversation.
//! Opening 2 KiB of sealed context costs about 2 µs, more than the rest of
//! the read; this cache hands out the turns opened last time instead.
//!
//! It needs no invalidation to stay correct. An entry remembers exactly
//! what it was opened from: the session, its owner, the record key (by
//! instance: a key unwrapped again, after a rotation or an erasure, is
//! another instance) and the sealed bytes themselves (nonce and
//! ciphertext). A read uses the entry only when the row it just read holds
//! those same sealed bytes for the same owner under the same key, which is
//! the case where opening them again would give the same turns. A write
//! seals with a fresh nonce, so any change, committed or aborted, makes the
//! entry miss; a row altered on disk misses too, and fails to open as
//! before.
//!
//! Bounds: `Config::session_cache_bytes` of entries (each weighed as its
//! ciphertext plus its text; 0 turns the cache off), and an entry unused
//! for [`IDLE`] is dropped. Entries zero their text when dropped, and an
//! erasure drops them all (`Sealer::forget`).

use std::sync::Arc;
use std::time::Duration;

use zeroize::Zeroize;

use crate::db::sealing::Sealed;
use crate::model::session::Turn;
use crate::types::{SessionId, UserId};

/// An entry unused this long is dropped.
pub(crate) const IDLE: Duration = Duration::from_secs(10 * 60);

/// What each entry weighs besides its bytes (ids, vectors, the cache's
/// own bookkeeping), so that many tiny contexts still count.
const ENTRY_OVERHEAD: usize = 128;

/// The opened contexts of recently read or written sessions.
pub(crate) struct OpenedContexts {
    cache: Option<moka::sync::Cache<u128, Arc<Opened>>>,
}

/// One session's context as it was opened.
struct Opened {
    owner: UserId,
    key: u64,
    sealed: Sealed,
    turns: Vec<Turn>,
}

impl Drop for Opened {
    fn drop(&mut self) {
        for t in &mut self.turns {
            t.text.zeroize();
        }
    }
}

impl Opened {
    fn weight(&self) -> u32 {
        let text: usize = self.turns.iter().map(|t| t.text.len()).sum();
        let bytes = ENTRY_OVERHEAD + self.sealed.len() + text + self.turns.len() * 48;
        u32::try_from(bytes).unwrap_or(u32::MAX)
    }
}

impl OpenedContexts {
    /// A cache of at most `bytes` (0: none).
    pub(crate) fn new(bytes: u64) -> OpenedContexts {
        let cache = (bytes > 0).then(|| {
            moka::sync::Cache::builder()
                .max_capacity(bytes)
                .weigher(|_: &u128, o: &Arc<Opened>| o.weight())
                .time_to_idle(IDLE)
                .build()
        });
        OpenedContexts { cache }
    }

    /// The turns opened last time from exactly `sealed`, by `owner`'s
    /// record key instance `key`, for session `id`.
    pub(crate) fn get(
        &self,
        id: SessionId,
        owner: UserId,
        key: u64,
        sealed: &Sealed,
    ) -> Option<Vec<Turn>> {
        let o = self.cache.as_ref()?.get(&id.to_key())?;
        (o.owner == owner && o.key == key && o.sealed == *sealed).then(|| o.turns.clone())
    }

    /// Remembers the turns `sealed` opens to.
    pub(crate) fn put(
        &self,
        id: SessionId,
        owner: UserId,
        key: u64,
        sealed: Sealed,
        turns: Vec<Turn>,
    ) {
        if let Some(cache) = &self.cache {
            let o = Opened {
                owner,
                key,
                sealed,
                turns,
            };
            cache.insert(id.to_key(), Arc::new(o));
        }
    }

    /// Whether entries are kept at all.
    pub(crate) fn enabled(&self) -> bool {
        self.cache.is_some()
    }

    /// Drops every entry now (an erasure: no opened text of the erased
    /// user stays in memory).
    pub(crate) fn clear(&self) {
        if let Some(cache) = &self.cache {
            cache.invalidate_all();
            cache.run_pending_tasks();
        }
    }

    /// Entries held (after pending work), for tests.
    #[cfg(test)]
    pub(crate) fn len(&self) -> u64 {
        self.cache.as_ref().map_or(0, |c| {
            c.run_pending_tasks();
            c.entry_count()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::sealing::{RecordKey, aad};
    use crate::model::session::Role;

    fn turns(text: &str) -> Vec<Turn> {
        vec![Turn::new(Role::User, text)]
    }

    #[test]
    fn an_entry_serves_only_the_same_sealed_bytes_owner_and_key() {
        let key = RecordKey::new(&crate::blob::crypto::SecretKey::from_bytes([3; 32]));
        let (id, owner) = (SessionId::new(), UserId::new());
        let sealed = key.seal(&aad(b"t", id.to_key()), "a").unwrap();
        let cache = OpenedContexts::new(1 << 20);
        assert!(cache.get(id, owner, key.instance(), &sealed).is_none());
        cache.put(id, owner, key.instance(), sealed.clone(), turns("नमस्ते"));
        let hit = cache.get(id, owner, key.instance(), &sealed).unwrap();
        assert_eq!(hit[0].text, "नमस्ते");
        // Sealed again (a write): a fresh nonce, a miss.
        let resealed = key.seal(&aad(b"t", id.to_key()), "a").unwrap();
        assert!(cache.get(id, owner, key.instance(), &resealed).is_none());
        // Another owner, another key instance, another session: misses.
        assert!(
            cache
                .get(id, UserId::new(), key.instance(), &sealed)
                .is_none()
        );
        let again = RecordKey::new(&crate::blob::crypto::SecretKey::from_bytes([3; 32]));
        assert!(cache.get(id, owner, again.instance(), &sealed).is_none());
        assert!(
            cache
                .get(SessionId::new(), owner, key.instance(), &sealed)
                .is_none()
        );
        assert_eq!(cache.len(), 1);
        cache.clear();
        assert_eq!(cache.len(), 0);
        assert!(cache.get(id, owner, key.instance(), &sealed).is_none());
    }

    #[test]
    fn a_zero_size_keeps_nothing() {
        let key = RecordKey::new(&crate::blob::crypto::SecretKey::from_bytes([3; 32]));
        let (id, owner) = (SessionId::new(), UserId::new());
        let sealed = key.seal(&aad(b"t", id.to_key()), "a").unwrap();
        let cache = OpenedContexts::new(0);
        assert!(!cache.enabled());
        cache.put(id, owner, key.instance(), sealed.clone(), turns("x"));
        assert!(cache.get(id, owner, key.instance(), &sealed).is_none());
    }
}
