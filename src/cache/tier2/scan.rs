//! Listing tier 2's keys: the write-behind overlay, then `cache.redb`
//! from a prefix on, each key with what decides whether it is live (its
//! deadline, generation and tag versions), never its value.

use std::collections::HashMap;

use redb::ReadableDatabase;

use super::Tier2;
use super::row::{self, ENTRIES, Row, RowView};
use crate::error::Error;
use crate::types::Timestamp;

/// What a listing needs of a row: when it expires and the versions it was
/// written under.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RowHead {
    pub(crate) deadline: Option<Timestamp>,
    pub(crate) generation: u64,
    pub(crate) tags: Vec<(Box<str>, u64)>,
}

impl RowHead {
    fn of(row: &Row) -> RowHead {
        RowHead {
            deadline: row.deadline,
            generation: row.generation,
            tags: row.tags.clone(),
        }
    }

    fn of_view(view: &RowView<'_>) -> RowHead {
        RowHead {
            deadline: view.deadline,
            generation: view.generation,
            tags: view.tags.iter().map(|(t, v)| ((*t).into(), *v)).collect(),
        }
    }
}

impl Tier2 {
    /// The keys starting with `prefix` that `wanted` accepts, with their
    /// rows' heads: a key's newest row, the overlay's before the file's.
    /// Runs on a blocking thread. [`Error::CacheUnavailable`] if the file
    /// cannot be read (degraded, or a row fails its checksum: the file is
    /// then set aside as damaged).
    pub(crate) async fn scan(
        &self,
        prefix: String,
        wanted: impl Fn(&str) -> bool + Send + 'static,
    ) -> Result<Vec<(String, RowHead)>, Error> {
        let mut found = self.pending_heads(&prefix, &wanted);
        let Some(db) = self.shared.db() else {
            return Err(self.unavailable());
        };
        let shared = std::sync::Arc::clone(&self.shared);
        let read = move || -> Result<Result<Vec<(String, RowHead)>, Error>, redb::Error> {
            let txn = db.begin_read()?;
            let table = match txn.open_table(ENTRIES) {
                Ok(t) => t,
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Ok(Vec::new())),
                Err(e) => return Err(e.into()),
            };
            let mut out = Vec::new();
            for item in table.range(prefix.as_str()..)? {
                let (k, v) = item?;
                let key = k.value();
                if !key.starts_with(prefix.as_str()) {
                    break;
                }
                if !wanted(key) {
                    continue;
                }
                match row::unseal(v.value(), key) {
                    Ok(view) => out.push((key.to_string(), RowHead::of_view(&view))),
                    Err(corrupt) => return Ok(Err(corrupt)),
                }
            }
            Ok(Ok(out))
        };
        let file = tokio::task::spawn_blocking(move || shared.engine("listing keys", read))
            .await
            .map_err(|e| Error::join("listing the cache's keys", e))?;
        let rows = match file {
            Ok(Ok(rows)) => rows,
            Ok(Err(corrupt)) => {
                self.shared.note_damage(corrupt.to_string());
                return Err(self.unavailable());
            }
            Err(reason) => return Err(Error::CacheUnavailable { reason }),
        };
        for (key, head) in rows {
            found.entry(key).or_insert(head);
        }
        Ok(found.into_iter().collect())
    }

    /// The overlay's rows (newest first: the open batch, then the one
    /// being committed) of the keys `prefix` and `wanted` accept.
    fn pending_heads(
        &self,
        prefix: &str,
        wanted: &impl Fn(&str) -> bool,
    ) -> HashMap<String, RowHead> {
        let mut found = HashMap::new();
        let Ok(q) = self.shared.queue.lock() else {
            return found;
        };
        let committing = q.committing.iter().flat_map(|c| c.iter());
        for (key, (_, row)) in q.overlay.iter().chain(committing) {
            if key.starts_with(prefix) && wanted(key) && !found.contains_key(&**key) {
                found.insert(key.to_string(), RowHead::of(row));
            }
        }
        found
    }
}
