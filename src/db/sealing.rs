//! Personal fields at rest: sealed under their owner's record key.
//!
//! Why: blobs are encrypted, but what a person said to the assistant (a
//! session's turns) sat in `store.redb` in plain text, and redb is
//! copy-on-write, so the bytes of a changed or deleted row can stay in
//! freed pages long after the row is gone. Sealing those fields under a key
//! of the owner's own, which erasure destroys, makes them unreadable
//! wherever their old bytes lie.
//!
//! ```text
//! master key
//!   └─ wraps, per owner (table `record_keys`): a random record key
//!        └─ seals each personal field: AES-256-GCM-SIV, random 96-bit nonce,
//!           associated data = what the field is + the record's id
//! ```
//!
//! The record key is apart from the owner's blob keys (table `keys`):
//! erasing a user's audio destroys those and keeps the account, the
//! profile and the sessions readable; erasing the user destroys both, in
//! the erasure's first transaction. A master key rotation re-wraps record
//! keys with the rest (`blob::keys::rewrap_all`). The associated data
//! binds a sealed field to its record: moved to another row, it does not
//! open.
//!
//! `db` does not unwrap keys itself: the keyring (`blob::keys`) implements
//! [`RecordKeys`] and is installed into the `Db` once it is loaded
//! ([`Db::install_sealer`](crate::db::Db::install_sealer)).

use std::sync::Arc;

use aes_gcm_siv::Aes256GcmSiv;
use aes_gcm_siv::aead::{AeadInOut, KeyInit};
use redb::WriteTransaction;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::blob::crypto::{SecretKey, random_bytes};
use crate::db::keys::{self as stored, WrappedKey};
use crate::db::opened::OpenedContexts;
use crate::db::txn::ReadTxn;
use crate::error::Error;
use crate::types::UserId;

/// A field sealed under its owner's record key, as stored.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Sealed {
    nonce: [u8; 12],
    #[serde(with = "bytes")]
    body: Vec<u8>,
}

/// The sealed body as serde bytes rather than a sequence of `u8`: the same
/// postcard encoding (a length, then the bytes), decoded in one copy
/// instead of one call per byte.
mod bytes {
    use serde::de::{Deserializer, Error, SeqAccess, Visitor};
    use serde::ser::Serializer;

    pub(super) fn serialize<S: Serializer>(body: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(body)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        struct Body;
        impl<'de> Visitor<'de> for Body {
            type Value = Vec<u8>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("sealed bytes")
            }
            fn visit_bytes<E: Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
                Ok(v.to_vec())
            }
            fn visit_byte_buf<E: Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
                Ok(v)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
                let mut out = Vec::new();
                while let Some(b) = seq.next_element()? {
                    out.push(b);
                }
                Ok(out)
            }
        }
        d.deserialize_byte_buf(Body)
    }
}

impl Sealed {
    /// The sealed bytes' length (the plaintext's plus a 16-byte tag).
    pub(crate) fn len(&self) -> usize {
        self.body.len()
    }
}

impl std::fmt::Debug for Sealed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Sealed({} bytes)", self.body.len())
    }
}

/// An owner's record key, ready to seal and open (the cipher's key
/// schedule is computed once).
pub(crate) struct RecordKey {
    cipher: Aes256GcmSiv,
    /// Tells this unwrapped key from every other in the process (see
    /// [`RecordKey::instance`]).
    instance: u64,
}

/// The next [`RecordKey::instance`].
static NEXT_INSTANCE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

impl std::fmt::Debug for RecordKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RecordKey([secret])")
    }
}

impl RecordKey {
    /// The cipher of a record key.
    pub(crate) fn new(key: &SecretKey) -> RecordKey {
        RecordKey {
            cipher: Aes256GcmSiv::new(key.bytes().into()),
            instance: NEXT_INSTANCE.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        }
    }

    /// A number no other record key made in this process has: what the
    /// opened-context cache (`db::opened`) remembers a key by, so that a
    /// key unwrapped again (after a rotation or an erasure) never serves
    /// what an earlier one opened.
    pub(crate) fn instance(&self) -> u64 {
        self.instance
    }

    /// Seals `value` (postcard) for the field `aad` names. The plaintext
    /// is encrypted in place: no copy of it is left behind.
    pub(crate) fn seal<T: Serialize + ?Sized>(
        &self,
        aad: &[u8],
        value: &T,
    ) -> Result<Sealed, Error> {
        let mut body = postcard::to_stdvec(value)
            .map_err(|e| Error::invalid("record", format!("cannot be encoded: {e}")))?;
        let nonce = random_bytes::<12>()?;
        self.cipher
            .encrypt_in_place(&nonce.into(), aad, &mut body)
            .map_err(|_| Error::io("sealing a field", std::io::Error::other("AEAD failure")))?;
        Ok(Sealed { nonce, body })
    }

    /// Opens a field sealed by [`seal`](Self::seal) for the same `aad`
    /// (decrypting in place); [`Error::Corrupt`] about `what` if it does
    /// not open or decode.
    pub(crate) fn open<T: DeserializeOwned>(
        &self,
        aad: &[u8],
        sealed: Sealed,
        what: impl Fn() -> String,
    ) -> Result<T, Error> {
        let Sealed { nonce, mut body } = sealed;
        self.cipher
            .decrypt_in_place(&nonce.into(), aad, &mut body)
            .map_err(|_| {
                Error::corrupt(what(), "a sealed field does not open under its owner's key")
            })?;
        crate::db::codec::decode_body(&body, what)
    }
}

/// The associated data of a field: its name, then the record's id.
pub(crate) fn aad(field: &'static [u8], id: u128) -> Vec<u8> {
    let mut out = Vec::with_capacity(field.len() + 16);
    out.extend_from_slice(field);
    out.extend_from_slice(&id.to_be_bytes());
    out
}

/// What wraps and unwraps owners' record keys: the keyring.
pub(crate) trait RecordKeys: Send + Sync {
    /// Unwraps an owner's record key under the master key.
    fn unwrap(&self, owner: UserId, wrapped: &WrappedKey) -> Result<RecordKey, Error>;
    /// A new random record key for an owner: the key, and the key wrapped
    /// under the master key `txn` sees.
    fn generate(
        &self,
        txn: &WriteTransaction,
        owner: UserId,
    ) -> Result<(RecordKey, WrappedKey), Error>;
    /// A record key remembered for the owner.
    fn cached(&self, owner: UserId) -> Option<Arc<RecordKey>>;
    /// Remembers an owner's record key (unwrapped from a committed row).
    fn remember(&self, owner: UserId, key: &Arc<RecordKey>);
}

/// Finds owners' record keys in a transaction, and holds the contexts
/// opened with them (`db::opened`). Cheap to clone.
#[derive(Clone)]
pub(crate) struct Sealer {
    keys: Arc<dyn RecordKeys>,
    opened: Arc<OpenedContexts>,
}

impl Sealer {
    pub(crate) fn new(keys: Arc<dyn RecordKeys>, opened: Arc<OpenedContexts>) -> Sealer {
        Sealer { keys, opened }
    }

    /// The session contexts opened lately.
    pub(crate) fn opened(&self) -> &OpenedContexts {
        &self.opened
    }

    /// Drops everything opened with any owner's key from memory (after an
    /// erasure).
    pub(crate) fn forget_opened(&self) {
        self.opened.clear();
    }

    /// The owner's record key as `txn` sees it; [`Error::MissingKey`] if
    /// the owner has none (erased). Only keys read from a committed
    /// snapshot are remembered: a key made in a write transaction that
    /// then aborts must not outlive it.
    pub(crate) fn key(&self, txn: &impl ReadTxn, owner: UserId) -> Result<Arc<RecordKey>, Error> {
        if let Some(k) = self.keys.cached(owner) {
            return Ok(k);
        }
        let wrapped = stored::record_key(txn, owner)?.ok_or_else(|| Error::MissingKey {
            reason: format!(
                "the record key of user {owner} is gone (erased?); their records cannot be read"
            ),
        })?;
        let key = Arc::new(self.keys.unwrap(owner, &wrapped)?);
        if txn.is_snapshot() {
            self.keys.remember(owner, &key);
        }
        Ok(key)
    }

    /// The owner's record key in a write, made (and stored in `txn`) if
    /// the owner has none yet.
    pub(crate) fn key_or_create(
        &self,
        txn: &WriteTransaction,
        owner: UserId,
    ) -> Result<Arc<RecordKey>, Error> {
        if let Some(k) = self.keys.cached(owner) {
            return Ok(k);
        }
        if let Some(wrapped) = stored::record_key(txn, owner)? {
            return Ok(Arc::new(self.keys.unwrap(owner, &wrapped)?));
        }
        let (key, wrapped) = self.keys.generate(txn, owner)?;
        stored::put_record_key(txn, owner, &wrapped)?;
        Ok(Arc::new(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_field_opens_only_under_its_key_and_for_its_record() {
        let key = RecordKey::new(&SecretKey::from_bytes([1; 32]));
        let other = RecordKey::new(&SecretKey::from_bytes([2; 32]));
        let sealed = key.seal(&aad(b"turns", 7), "नमस्ते").unwrap();
        assert!(!sealed.body.windows(6).any(|w| w == &"नमस्ते".as_bytes()[..6]));
        let back: String = key
            .open(&aad(b"turns", 7), sealed.clone(), String::new)
            .unwrap();
        assert_eq!(back, "नमस्ते");
        for (k, a) in [(&other, aad(b"turns", 7)), (&key, aad(b"turns", 8))] {
            assert!(matches!(
                k.open::<String>(&a, sealed.clone(), String::new),
                Err(Error::Corrupt { .. })
            ));
        }
        // Serde bytes and a sequence of u8 are the same postcard bytes.
        #[derive(Serialize)]
        struct AsSeq<'a> {
            nonce: [u8; 12],
            body: &'a Vec<u8>,
        }
        let as_seq = postcard::to_stdvec(&AsSeq {
            nonce: sealed.nonce,
            body: &sealed.body,
        })
        .unwrap();
        assert_eq!(postcard::to_stdvec(&sealed).unwrap(), as_seq);
        assert_eq!(postcard::from_bytes::<Sealed>(&as_seq).unwrap(), sealed);
        let again = key.seal(&aad(b"turns", 7), "नमस्ते").unwrap();
        assert_ne!(again.nonce, sealed.nonce, "a fresh nonce each time");
    }
}
