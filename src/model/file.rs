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
    /// SHA-256 of the plaintext, checked on every full read (lower-case hex
    /// in JSON).
    #[serde(with = "crate::types::hex32")]
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
    /// How often it was read (counted in memory and written by the
    /// `access-counts` job: a crash loses at most its last interval).
    pub access_count: u64,
    /// When it was last read (as [`access_count`](Self::access_count)).
    pub last_read_at: Option<Timestamp>,
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

#[cfg(test)]
mod tests {
    use super::*;

    /// `AudioFile` as it was derived before `sha256` and `blob` became hex
    /// in JSON: the stored (postcard) bytes must not change.
    #[derive(Serialize)]
    struct Before {
        id: FileId,
        owner: UserId,
        blob: OldAddress,
        name: Option<String>,
        content_type: String,
        plain_bytes: u64,
        stored_bytes: u64,
        sha256: [u8; 32],
        encryption: Encryption,
        codec: Codec,
        key_version: u32,
        session_id: Option<SessionId>,
        tags: Vec<String>,
        expires_at: Option<Timestamp>,
        access_count: u64,
        last_read_at: Option<Timestamp>,
        created_at: Timestamp,
        updated_at: Timestamp,
        deleted_at: Option<Timestamp>,
    }

    #[derive(Serialize)]
    struct OldAddress([u8; 32]);

    #[test]
    fn stored_bytes_are_unchanged_and_json_is_hex() {
        let t = Timestamp::from_micros(1_700_000_000_000_000);
        let f = AudioFile {
            id: FileId::new(),
            owner: UserId::new(),
            blob: BlobAddress([0xab; 32]),
            name: Some("clip.wav".into()),
            content_type: "audio/wav".into(),
            plain_bytes: 10,
            stored_bytes: 80,
            sha256: std::array::from_fn(|i| i as u8),
            encryption: Encryption::Aes256GcmSiv,
            codec: Codec::Zstd,
            key_version: 1,
            session_id: None,
            tags: vec!["demo".into()],
            expires_at: Some(t),
            access_count: 3,
            last_read_at: None,
            created_at: t,
            updated_at: t,
            deleted_at: None,
        };
        let before = Before {
            id: f.id,
            owner: f.owner,
            blob: OldAddress(f.blob.0),
            name: f.name.clone(),
            content_type: f.content_type.clone(),
            plain_bytes: f.plain_bytes,
            stored_bytes: f.stored_bytes,
            sha256: f.sha256,
            encryption: f.encryption,
            codec: f.codec,
            key_version: f.key_version,
            session_id: f.session_id,
            tags: f.tags.clone(),
            expires_at: f.expires_at,
            access_count: f.access_count,
            last_read_at: f.last_read_at,
            created_at: f.created_at,
            updated_at: f.updated_at,
            deleted_at: f.deleted_at,
        };
        let stored = postcard::to_stdvec(&f).unwrap();
        assert_eq!(stored, postcard::to_stdvec(&before).unwrap());
        assert_eq!(postcard::from_bytes::<AudioFile>(&stored).unwrap(), f);

        let json = serde_json::to_value(&f).unwrap();
        let hex: String = (0..32u8).map(|b| format!("{b:02x}")).collect();
        assert_eq!(json["sha256"], hex.as_str());
        assert_eq!(json["blob"], "ab".repeat(32).as_str());
        assert_eq!(serde_json::from_value::<AudioFile>(json).unwrap(), f);
        // JSON written before (arrays of numbers, no last read time) still reads.
        let mut old_json = serde_json::to_value(&before).unwrap();
        old_json.as_object_mut().unwrap().remove("last_read_at");
        assert_eq!(serde_json::from_value::<AudioFile>(old_json).unwrap(), f);
    }
}
