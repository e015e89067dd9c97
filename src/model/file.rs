//! Metadata of a stored audio (or other) file; the blob layer fills it.

use serde::{Deserialize, Serialize};

use crate::types::{BlobAddress, FileId, SessionId, Timestamp, UserId};

/// The metadata record of one stored file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AudioFile {
    /// Time-ordered id.
    pub id: FileId,
    /// The user who owns it.
    pub owner: UserId,
    /// Where its bytes are (content address).
    pub blob: BlobAddress,
    /// The original file name, as given (never used to build a path).
    pub name: Option<String>,
    /// MIME type, e.g. `audio/wav`.
    pub content_type: String,
    /// Size of the plaintext.
    pub plain_bytes: u64,
    /// Size of the blob on disk.
    pub stored_bytes: u64,
    /// SHA-256 of the plaintext, checked on every full read.
    pub sha256: [u8; 32],
    /// How the blob is encrypted.
    pub encryption: Encryption,
    /// How the blob is compressed.
    pub codec: Codec,
    /// Which version of the owner's key sealed it.
    pub key_version: u32,
    /// The conversation it came from, if any.
    pub session_id: Option<SessionId>,
    /// Free tags.
    pub tags: Vec<String>,
    /// When retention ends, if it does.
    pub expires_at: Option<Timestamp>,
    /// How often it was read.
    pub access_count: u64,
    /// When it was stored.
    pub created_at: Timestamp,
    /// The last change.
    pub updated_at: Timestamp,
    /// When it was soft-deleted.
    pub deleted_at: Option<Timestamp>,
}

/// The cipher of a blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Encryption {
    /// Stored in the clear.
    None,
    /// AES-256-GCM-SIV in the STREAM construction.
    Aes256GcmSiv,
}

/// The compression of a blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Codec {
    /// Not compressed.
    None,
    /// zstd, per chunk (chunks that do not shrink are stored raw).
    Zstd,
}

/// The name `bvstore` and the JSON output use.
impl std::fmt::Display for Encryption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Encryption::None => "none",
            Encryption::Aes256GcmSiv => "aes256-gcm-siv",
        })
    }
}

/// The name `bvstore` and the JSON output use.
impl std::fmt::Display for Codec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Codec::None => "none",
            Codec::Zstd => "zstd",
        })
    }
}

/// What is needed to insert a file record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAudioFile {
    /// The owner (must be a live user).
    pub owner: UserId,
    /// Where its bytes are.
    pub blob: BlobAddress,
    /// Original name.
    pub name: Option<String>,
    /// MIME type.
    pub content_type: String,
    /// Plaintext size.
    pub plain_bytes: u64,
    /// Stored size.
    pub stored_bytes: u64,
    /// SHA-256 of the plaintext.
    pub sha256: [u8; 32],
    /// Cipher.
    pub encryption: Encryption,
    /// Compression.
    pub codec: Codec,
    /// Key version.
    pub key_version: u32,
    /// Conversation, if any.
    pub session_id: Option<SessionId>,
    /// Tags.
    pub tags: Vec<String>,
    /// End of retention, if any.
    pub expires_at: Option<Timestamp>,
}
