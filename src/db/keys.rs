//! The keyring row of each owner: its key-encryption keys by version and
//! its address key, all wrapped under the master key. Only wrapped bytes
//! are stored; the blob layer unwraps them.

use serde::{Deserialize, Serialize};

use crate::blob::crypto::WrappedKey;
use crate::db::codec::Record;

/// An owner's keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct OwnerKeysRecord {
    /// The version new blobs are sealed under.
    pub(crate) current: u32,
    /// Every live version, oldest first: (version, wrapped key-encryption key).
    pub(crate) versions: Vec<(u32, WrappedKey)>,
    /// The key of the owner's content addresses (never rotated: it keeps
    /// deduplication working across key versions).
    pub(crate) address: WrappedKey,
    /// A rotation moved new writes to `current` and old blobs are still
    /// being re-wrapped; old versions are destroyed when it finishes.
    pub(crate) rotating: bool,
}

impl Record for OwnerKeysRecord {
    const KIND: &'static str = "owner key record";
    const VERSION: u8 = 1;
}
