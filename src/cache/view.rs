//! [`Cache`]: the cache's public operations, a view handed out by
//! [`Store::cache`](crate::Store::cache).

use std::future::Future;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::cache::item::CacheValue;
use crate::cache::options::{SetOptions, Ttl};
use crate::cache::stats::CacheStats;
use crate::cache::write::Loaded;
use crate::cache::{CacheCore, validate_key};
use crate::clock::remaining;
use crate::error::Error;

/// The tiered cache of a store: Redis operations, in-process.
///
/// Values are typed through serde (stored as JSON, so `incr` works on a
/// number written with [`set`](Cache::set) and `get::<i64>` reads a counter
/// made by [`incr`](Cache::incr)), with a raw-bytes path beside it. A value
/// read as the wrong type is [`Error::WrongType`].
///
/// ```
/// use std::time::Duration;
/// use bharatvoice_store::{Config, SetOptions, Store, Ttl};
/// # #[tokio::main] async fn main() -> bharatvoice_store::Result<()> {
/// # let dir = tempfile::tempdir().unwrap();
/// let store = Store::open(Config::new(dir.path())).await?;
/// let cache = store.cache();
/// let opts = SetOptions::new().ttl(Duration::from_secs(600)).tag("user:42");
/// cache.set_with("profile:42", &vec!["hi-IN", "en-IN"], &opts).await?;
/// let langs: Option<Vec<String>> = cache.get("profile:42").await?;
/// assert_eq!(langs.unwrap(), ["hi-IN", "en-IN"]);
/// assert!(!cache.set_nx("profile:42", &"other").await?);
/// assert!(matches!(cache.ttl("profile:42").await?, Ttl::Remaining(_)));
/// assert_eq!(cache.incr("visits:42", 1).await?, 1);
/// assert_eq!(cache.invalidate_tag("user:42").await?, 1);
/// assert_eq!(cache.get::<Vec<String>>("profile:42").await?, None);
/// # Ok(()) }
/// ```
#[derive(Clone, Copy)]
pub struct Cache<'a> {
    pub(crate) core: &'a CacheCore,
}

impl std::fmt::Debug for Cache<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache").finish_non_exhaustive()
    }
}

fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Box<[u8]>, Error> {
    serde_json::to_vec(value)
        .map(Vec::into_boxed_slice)
        .map_err(|e| Error::invalid("value", format!("cannot be encoded as JSON: {e}")))
}

pub(crate) fn decode<T: DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T, Error> {
    serde_json::from_slice(bytes)
        .map_err(|e| Error::wrong_type(key, std::any::type_name::<T>(), e.to_string()))
}

impl Cache<'_> {
    /// The value of `key` as a `T`, or `None` if it holds no live value.
    #[tracing::instrument(level = "debug", name = "cache.get", skip(self))]
    pub async fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, Error> {
        crate::telemetry::observe(
            &self.core.telemetry,
            crate::telemetry::op_key!("cache.get"),
            async {
                match self.core.lookup(key).await {
                    Some(item) => decode(key, &item.value).map(Some),
                    None => Ok(None),
                }
            },
        )
        .await
    }

    /// The bytes of `key`, shared with the cache (no copy).
    #[tracing::instrument(level = "debug", name = "cache.get_bytes", skip(self))]
    pub async fn get_bytes(&self, key: &str) -> Result<Option<CacheValue>, Error> {
        crate::telemetry::observe(
            &self.core.telemetry,
            crate::telemetry::op_key!("cache.get_bytes"),
            async { Ok(self.core.lookup(key).await.map(CacheValue)) },
        )
        .await
    }

    /// The values of several keys, in order.
    #[tracing::instrument(level = "debug", name = "cache.get_many", skip_all, fields(n = keys.len()))]
    pub async fn get_many<T: DeserializeOwned, K: AsRef<str>>(
        &self,
        keys: &[K],
    ) -> Result<Vec<Option<T>>, Error> {
        crate::telemetry::observe(
            &self.core.telemetry,
            crate::telemetry::op_key!("cache.get_many"),
            async {
                let mut out = Vec::with_capacity(keys.len());
                for k in keys {
                    let k = k.as_ref();
                    out.push(match self.core.lookup(k).await {
                        Some(item) => Some(decode(k, &item.value)?),
                        None => None,
                    });
                }
                Ok(out)
            },
        )
        .await
    }

    /// The bytes of several keys, in order.
    pub async fn get_many_bytes<K: AsRef<str>>(
        &self,
        keys: &[K],
    ) -> Result<Vec<Option<CacheValue>>, Error> {
        crate::telemetry::observe(
            &self.core.telemetry,
            crate::telemetry::op_key!("cache.get_many_bytes"),
            async {
                let mut out = Vec::with_capacity(keys.len());
                for k in keys {
                    out.push(self.core.lookup(k.as_ref()).await.map(CacheValue));
                }
                Ok(out)
            },
        )
        .await
    }

    /// Writes `value` under `key` with the default TTL and no tags.
    ///
    /// Written through, it returns once durable, or fails with
    /// [`Error::CacheUnavailable`] (changing nothing) if tier 2 cannot
    /// commit. Written behind, it returns at once and reaches tier 2 within
    /// the write-behind delay; while tier 2 is degraded it stays in memory
    /// only, and a crash may lose it.
    #[tracing::instrument(level = "debug", name = "cache.set", skip(self, value))]
    pub async fn set<T: Serialize + ?Sized>(&self, key: &str, value: &T) -> Result<(), Error> {
        crate::telemetry::observe(
            &self.core.telemetry,
            crate::telemetry::op_key!("cache.set"),
            async {
                self.core
                    .set(key, encode(value)?, &SetOptions::default())
                    .await
                    .map(drop)
            },
        )
        .await
    }

    /// Writes `value` with a TTL, tags and a condition; returns whether it
    /// was written (a condition may stop it). A condition on a key that
    /// tier 1 does not hold while tier 2 cannot be read is
    /// [`Error::CacheUnavailable`]: the answer is not known.
    #[tracing::instrument(level = "debug", name = "cache.set_with", skip(self, value))]
    pub async fn set_with<T: Serialize + ?Sized>(
        &self,
        key: &str,
        value: &T,
        opts: &SetOptions,
    ) -> Result<bool, Error> {
        crate::telemetry::observe(
            &self.core.telemetry,
            crate::telemetry::op_key!("cache.set_with"),
            async { self.core.set(key, encode(value)?, opts).await },
        )
        .await
    }

    /// Writes raw bytes under `key` with the default TTL and no tags.
    #[tracing::instrument(level = "debug", name = "cache.set_bytes", skip(self, value))]
    pub async fn set_bytes(&self, key: &str, value: &[u8]) -> Result<(), Error> {
        crate::telemetry::observe(
            &self.core.telemetry,
            crate::telemetry::op_key!("cache.set_bytes"),
            async {
                self.core
                    .set(key, value.into(), &SetOptions::default())
                    .await
                    .map(drop)
            },
        )
        .await
    }

    /// Writes raw bytes with options; returns whether they were written.
    #[tracing::instrument(level = "debug", name = "cache.set_bytes_with", skip(self, value))]
    pub async fn set_bytes_with(
        &self,
        key: &str,
        value: &[u8],
        opts: &SetOptions,
    ) -> Result<bool, Error> {
        crate::telemetry::observe(
            &self.core.telemetry,
            crate::telemetry::op_key!("cache.set_bytes_with"),
            async { self.core.set(key, value.into(), opts).await },
        )
        .await
    }

    /// Writes only if `key` holds no live value (`SET NX`); returns whether
    /// it wrote. Atomic across both tiers and all tasks. It never claims a
    /// key tier 2 may hold: with tier 2 degraded and the key not in memory
    /// it fails with [`Error::CacheUnavailable`].
    pub async fn set_nx<T: Serialize + ?Sized>(&self, key: &str, value: &T) -> Result<bool, Error> {
        crate::telemetry::observe(
            &self.core.telemetry,
            crate::telemetry::op_key!("cache.set_nx"),
            async {
                self.core
                    .set(key, encode(value)?, &SetOptions::new().if_absent())
                    .await
            },
        )
        .await
    }

    /// Writes only if `key` holds a live value (`SET XX`); returns whether
    /// it wrote.
    pub async fn set_xx<T: Serialize + ?Sized>(&self, key: &str, value: &T) -> Result<bool, Error> {
        crate::telemetry::observe(
            &self.core.telemetry,
            crate::telemetry::op_key!("cache.set_xx"),
            async {
                self.core
                    .set(key, encode(value)?, &SetOptions::new().if_present())
                    .await
            },
        )
        .await
    }

    /// Removes `key` from both tiers; returns whether it held a live value.
    /// Once this returns `Ok`, the value cannot come back, even after a
    /// crash. If tier 2 cannot commit the delete, it fails with
    /// [`Error::CacheUnavailable`] and the value is left as it was.
    #[tracing::instrument(level = "debug", name = "cache.delete", skip(self))]
    pub async fn delete(&self, key: &str) -> Result<bool, Error> {
        crate::telemetry::observe(
            &self.core.telemetry,
            crate::telemetry::op_key!("cache.delete"),
            async { self.core.delete(key).await },
        )
        .await
    }

    /// The time `key` has left.
    #[tracing::instrument(level = "debug", name = "cache.ttl", skip(self))]
    pub async fn ttl(&self, key: &str) -> Result<Ttl, Error> {
        crate::telemetry::observe(
            &self.core.telemetry,
            crate::telemetry::op_key!("cache.ttl"),
            async {
                validate_key(key)?;
                Ok(match self.core.lookup(key).await {
                    None => Ttl::Missing,
                    Some(item) => match item.deadline {
                        None => Ttl::NoExpiry,
                        Some(d) => match remaining(d, self.core.clock.now()) {
                            Some(left) => Ttl::Remaining(left),
                            None => Ttl::Missing,
                        },
                    },
                })
            },
        )
        .await
    }

    /// Changes the TTL of a live `key`: `Some(d)` expires it `d` from now
    /// (zero deletes it), `None` makes it persistent. Returns whether the key
    /// held a live value. With tier 2 degraded and the key not in memory,
    /// or a zero TTL (a delete) that tier 2 cannot commit, it fails with
    /// [`Error::CacheUnavailable`] and changes nothing.
    #[tracing::instrument(level = "debug", name = "cache.expire", skip(self))]
    pub async fn expire(&self, key: &str, ttl: Option<Duration>) -> Result<bool, Error> {
        crate::telemetry::observe(
            &self.core.telemetry,
            crate::telemetry::op_key!("cache.expire"),
            async { self.core.expire(key, ttl).await },
        )
        .await
    }

    /// The live keys matching `pattern`, sorted, each once (Redis's
    /// `KEYS`): `*` matches any run of characters, `?` one character, `\`
    /// makes the next character literal. Both tiers are listed; expired
    /// and stale entries are not. It reads every key in memory and those in
    /// `cache.redb` that share the pattern's literal prefix (`user:` of
    /// `user:*`): for operators and tests, not a hot path. With tier 2
    /// degraded it fails with [`Error::CacheUnavailable`] rather than list
    /// only what memory holds.
    ///
    /// ```
    /// # use bharatvoice_store::*;
    /// # #[tokio::main] async fn main() -> Result<(), Error> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = Store::open(Config::new(dir.path())).await?;
    /// let cache = store.cache();
    /// cache.set("user:7:name", &"Priya").await?;
    /// cache.set("user:42:name", &"Ravi").await?;
    /// cache.set("user:7:langs", &["ta-IN"]).await?;
    /// cache.set_with("user:9:name", &"Old", &SetOptions::new().tag("user:9")).await?;
    /// cache.invalidate_tag("user:9").await?; // stale: not listed
    /// assert_eq!(cache.keys("user:*:name").await?, ["user:42:name", "user:7:name"]);
    /// assert_eq!(cache.keys("user:?:*").await?, ["user:7:langs", "user:7:name"]);
    /// # Ok(()) }
    /// ```
    #[tracing::instrument(level = "debug", name = "cache.keys", skip(self))]
    pub async fn keys(&self, pattern: &str) -> Result<Vec<String>, Error> {
        crate::telemetry::observe(
            &self.core.telemetry,
            crate::telemetry::op_key!("cache.keys"),
            async { self.core.keys(pattern).await },
        )
        .await
    }

    /// Adds `by` to the decimal integer `key` holds, creating it at 0 (with
    /// the default TTL); returns the new value. Keeps the key's TTL and
    /// tags. A value that is not a 64-bit decimal integer is
    /// [`Error::WrongType`]; an overflow is [`Error::InvalidInput`]; both
    /// leave the value unchanged. Atomic across tiers and tasks. With
    /// tier 2 degraded and the key not in memory it fails with
    /// [`Error::CacheUnavailable`] rather than count from 0.
    #[tracing::instrument(level = "debug", name = "cache.incr", skip(self))]
    pub async fn incr(&self, key: &str, by: i64) -> Result<i64, Error> {
        crate::telemetry::observe(
            &self.core.telemetry,
            crate::telemetry::op_key!("cache.incr"),
            async { self.core.incr(key, by).await },
        )
        .await
    }

    /// Subtracts `by` (see [`incr`](Cache::incr)).
    pub async fn decr(&self, key: &str, by: i64) -> Result<i64, Error> {
        crate::telemetry::observe(
            &self.core.telemetry,
            crate::telemetry::op_key!("cache.decr"),
            async {
                let by = by
                    .checked_neg()
                    .ok_or_else(|| Error::invalid("by", "decrementing by i64::MIN overflows"))?;
                self.core.incr(key, by).await
            },
        )
        .await
    }

    /// The value of `key`, or else the loader's, cached with `opts` (its
    /// condition is ignored). Concurrent callers for the same missing key
    /// run the loader once and all get its value; if it fails, nothing is
    /// cached and the error goes to its caller (the next waiter then runs
    /// its own loader).
    ///
    /// ```
    /// # use bharatvoice_store::*;
    /// # #[tokio::main] async fn main() -> Result<(), Error> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = Store::open(Config::new(dir.path())).await?;
    /// let name: String = store
    ///     .cache()
    ///     .get_or_insert_with("name:7", &SetOptions::new().tag("user:7"), || async {
    ///         Ok::<_, Error>("Priya".to_string()) // e.g. read from the database
    ///     })
    ///     .await?;
    /// assert_eq!(name, "Priya");
    /// # Ok(()) }
    /// ```
    #[tracing::instrument(
        level = "debug",
        name = "cache.get_or_insert_with",
        skip_all,
        fields(key)
    )]
    pub async fn get_or_insert_with<T, E, F, Fut>(
        &self,
        key: &str,
        opts: &SetOptions,
        loader: F,
    ) -> Result<T, E>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: From<Error>,
    {
        crate::telemetry::observe_any(
            &self.core.telemetry,
            crate::telemetry::op_key!("cache.get_or_insert_with"),
            async {
                let load = || async {
                    let v = loader().await?;
                    let bytes = encode(&v).map_err(E::from)?;
                    Ok::<_, E>((v, bytes))
                };
                match self.core.get_or_load(key, opts, load).await? {
                    Loaded::Fresh(v) => Ok(v),
                    Loaded::Cached(item) => Ok(decode(key, &item.value)?),
                }
            },
        )
        .await
    }

    /// Makes every entry tagged `tag` stale, in O(1) whatever their number,
    /// durably. Returns an estimate of how many entries that touched: with
    /// tier 2 on, the rows tier 2 holds under the tag's current version;
    /// with tier 2 off, tier 1's count of entries written under it. If
    /// tier 2 cannot commit the bump, it fails with
    /// [`Error::CacheUnavailable`] and invalidates nothing. Either way an
    /// entry that expired, or that another tag (or `clear`) made stale,
    /// counts until it is reclaimed (when met, or by the sweep); deleted and
    /// overwritten entries do not count.
    #[tracing::instrument(level = "debug", name = "cache.invalidate_tag", skip(self))]
    pub async fn invalidate_tag(&self, tag: &str) -> Result<u64, Error> {
        crate::telemetry::observe(
            &self.core.telemetry,
            crate::telemetry::op_key!("cache.invalidate_tag"),
            async { self.core.invalidate_tag(tag).await },
        )
        .await
    }

    /// Empties both tiers, durably; if tier 2 cannot commit, fails with
    /// [`Error::CacheUnavailable`] and empties nothing.
    #[tracing::instrument(level = "debug", name = "cache.clear", skip(self))]
    pub async fn clear(&self) -> Result<(), Error> {
        crate::telemetry::observe(
            &self.core.telemetry,
            crate::telemetry::op_key!("cache.clear"),
            async { self.core.clear().await },
        )
        .await
    }

    /// Counters and sizes of both tiers.
    pub fn stats(&self) -> CacheStats {
        self.core.stats()
    }

    /// Waits until every write issued so far has reached tier 2 (a no-op
    /// with tier 2 off). With tier 2 degraded it fails with
    /// [`Error::CacheUnavailable`]: writes made while it is degraded stay
    /// in memory only, even after it recovers.
    pub async fn flush(&self) -> Result<(), Error> {
        crate::telemetry::observe(
            &self.core.telemetry,
            crate::telemetry::op_key!("cache.flush"),
            async { self.core.flush().await },
        )
        .await
    }

    /// Runs tier 1's pending housekeeping now (evictions and their
    /// counts); it otherwise runs every half second and on traffic.
    pub async fn run_pending_tasks(&self) {
        self.core.tier1.run_pending_tasks().await;
    }

    /// Makes tier 2's writes fail (`true`) or work again: for tests of
    /// degradation. Not part of the API: only with the `fault-injection`
    /// feature, which the crate's own tests turn on.
    #[cfg(feature = "fault-injection")]
    #[doc(hidden)]
    pub fn inject_tier2_fault(&self, on: bool) {
        if let Some(t2) = &self.core.tier2 {
            t2.set_fault(on);
        }
    }
}
