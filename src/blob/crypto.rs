//! Sealing and opening chunks, compressing them, and wrapping keys.
//!
//! Chunks are sealed with AES-256-GCM-SIV in the STREAM construction
//! (`aead-stream`'s `StreamBE32`: nonce = 7-byte prefix ‖ u32 BE index ‖
//! last flag), used through its stateless `StreamPrimitive` so that any
//! chunk can be sealed or opened on its own — in parallel when writing, and
//! alone for a range read. Keys are wrapped with plain AES-256-GCM-SIV under
//! a random nonce with associated data naming what the key is for, so a
//! wrapped key cannot be moved to another owner, version or blob.

use aead_stream::{NewStream, StreamBE32, StreamPrimitive};
use aes_gcm_siv::Aes256GcmSiv;
use aes_gcm_siv::aead::{Aead, KeyInit, Payload};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::blob::format::{Cipher, Header, KIND_RAW, KIND_ZSTD, TAG_LEN};
use crate::error::Error;

/// 32 secret bytes: zeroized on drop, never printed.
#[derive(Clone)]
pub struct SecretKey(Zeroizing<[u8; 32]>);

impl SecretKey {
    /// A key from these bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        SecretKey(Zeroizing::new(bytes))
    }
    /// A fresh random key.
    pub fn generate() -> Result<Self, Error> {
        Ok(SecretKey(Zeroizing::new(random_bytes::<32>()?)))
    }
    pub(crate) fn bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

impl PartialEq for SecretKey {
    fn eq(&self, other: &Self) -> bool {
        // Constant time: no early exit on the first differing byte.
        subtle::ConstantTimeEq::ct_eq(&self.0[..], &other.0[..]).into()
    }
}

/// Random bytes from the operating system.
pub(crate) fn random_bytes<const N: usize>() -> Result<[u8; N], Error> {
    let mut out = [0u8; N];
    getrandom::fill(&mut out)
        .map_err(|e| Error::io("reading random bytes", std::io::Error::other(e.to_string())))?;
    Ok(out)
}

pub(crate) use crate::db::keys::WrappedKey;

/// Seals `key` under `kek`, bound to `context`.
pub(crate) fn wrap(kek: &SecretKey, key: &SecretKey, context: &[u8]) -> Result<WrappedKey, Error> {
    let nonce = random_bytes::<12>()?;
    let cipher = Aes256GcmSiv::new(kek.bytes().into());
    let sealed = cipher
        .encrypt(
            &nonce.into(),
            Payload {
                msg: key.bytes(),
                aad: context,
            },
        )
        .map_err(|_| Error::io("wrapping a key", std::io::Error::other("AEAD failure")))?;
    Ok(WrappedKey::new(nonce, sealed))
}

/// Opens a wrapped key; `None` when `kek` or `context` is wrong (or it was changed).
pub(crate) fn unwrap(kek: &SecretKey, wrapped: &WrappedKey, context: &[u8]) -> Option<SecretKey> {
    let cipher = Aes256GcmSiv::new(kek.bytes().into());
    let plain = Zeroizing::new(
        cipher
            .decrypt(
                &(*wrapped.nonce()).into(),
                Payload {
                    msg: wrapped.sealed(),
                    aad: context,
                },
            )
            .ok()?,
    );
    let bytes: [u8; 32] = plain.as_slice().try_into().ok()?;
    Some(SecretKey::from_bytes(bytes))
}

/// Seals and opens the chunks of one blob.
pub(crate) struct ChunkSealer {
    header: Header,
    stream: Option<StreamBE32<Aes256GcmSiv>>,
}

impl ChunkSealer {
    /// A sealer for `header`; `key` is required when the header has a cipher.
    pub(crate) fn new(header: Header, key: Option<&SecretKey>) -> Result<Self, Error> {
        let stream = match (header.cipher, key) {
            (Cipher::None, _) => None,
            (Cipher::Aes256GcmSivStream, Some(k)) => {
                let aead = Aes256GcmSiv::new(k.bytes().into());
                Some(StreamBE32::from_aead(aead, &header.nonce_prefix.into()))
            }
            (Cipher::Aes256GcmSivStream, None) => {
                return Err(Error::corrupt(
                    "blob",
                    "encrypted, but its record holds no data key",
                ));
            }
        };
        Ok(ChunkSealer { header, stream })
    }

    fn checksum(&self, index: u32, last: bool, body: &[u8]) -> [u8; TAG_LEN] {
        let mut h = Sha256::new();
        h.update(b"bharatvoice-store chunk checksum v1");
        h.update(self.header.aad(last));
        h.update(index.to_be_bytes());
        h.update([u8::from(last)]);
        h.update(body);
        let digest = h.finalize();
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(&digest[..TAG_LEN]);
        tag
    }

    /// Seals chunk `index` in place (appends the tag).
    pub(crate) fn seal(&self, index: u32, last: bool, mut body: Vec<u8>) -> Result<Vec<u8>, Error> {
        match &self.stream {
            Some(s) => s
                .encrypt_in_place(index, last, &self.header.aad(last), &mut body)
                .map_err(|_| Error::io("sealing a chunk", std::io::Error::other("AEAD failure")))?,
            None => {
                let tag = self.checksum(index, last, &body);
                body.extend_from_slice(&tag);
            }
        }
        Ok(body)
    }

    /// Opens chunk `index`; any change to it, its place or the header fails.
    pub(crate) fn open(
        &self,
        index: u32,
        last: bool,
        mut sealed: Vec<u8>,
    ) -> Result<Vec<u8>, Error> {
        let fail = || Error::corrupt("blob", format!("chunk {index} failed authentication"));
        match &self.stream {
            Some(s) => s
                .decrypt_in_place(index, last, &self.header.aad(last), &mut sealed)
                .map_err(|_| fail())?,
            None => {
                let body_len = sealed.len().checked_sub(TAG_LEN).ok_or_else(fail)?;
                let expected = self.checksum(index, last, &sealed[..body_len]);
                if sealed[body_len..] != expected {
                    return Err(fail());
                }
                sealed.truncate(body_len);
            }
        }
        Ok(sealed)
    }
}

/// Room a chunk buffer keeps around its plaintext so that encoding and
/// sealing work in place: the kind byte in front, the tag behind.
pub(crate) const FRAME_SLACK: usize = 1 + TAG_LEN;

/// Compresses the plaintext in `framed[1..]` at `level` (or not at all),
/// keeping it raw when compression does not shrink it. Returns kind ‖
/// payload; a raw chunk reuses `framed` (byte 0 is set to the kind), so it
/// is never copied. An empty `framed` is an empty raw chunk.
pub(crate) fn encode_chunk(mut framed: Vec<u8>, level: Option<i32>) -> Vec<u8> {
    if framed.is_empty() {
        framed.push(KIND_RAW);
        return framed;
    }
    if let Some(level) = level
        && framed.len() > 1
        && let Some(compressed) = compress(&framed[1..], level)
    {
        return compressed;
    }
    framed[0] = KIND_RAW;
    framed
}

/// zstd into a fresh `KIND_ZSTD ‖ payload` buffer, or `None` when the output
/// would not be smaller than the input. Each thread keeps its compression
/// context: creating one per chunk showed up as ~2 % of a put's profile.
fn compress(data: &[u8], level: i32) -> Option<Vec<u8>> {
    thread_local! {
        static COMPRESSOR: std::cell::RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> =
            const { std::cell::RefCell::new(None) };
    }
    // Room for less than the input: a result that does not fit is no gain.
    let mut out = Vec::with_capacity(data.len() + FRAME_SLACK);
    out.push(KIND_ZSTD);
    let mut cursor = std::io::Cursor::new(out);
    cursor.set_position(1);
    let written = COMPRESSOR.with(|cell| {
        let mut slot = cell.try_borrow_mut().ok()?;
        if slot.as_ref().is_none_or(|(l, _)| *l != level) {
            *slot = Some((level, zstd::bulk::Compressor::new(level).ok()?));
        }
        let (_, compressor) = slot.as_mut()?;
        compressor.compress_to_buffer(data, &mut cursor).ok()
    })?;
    (written < data.len()).then(|| cursor.into_inner())
}

/// zstd back into at most `expected` bytes. Each thread keeps its
/// decompression context: creating one per chunk allocated (and freed)
/// about 160 KiB per read, churn that left a long-running process's
/// allocator holding ever more free memory.
fn decompress(payload: &[u8], expected: usize) -> Result<Vec<u8>, String> {
    thread_local! {
        static DECOMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
            const { std::cell::RefCell::new(None) };
    }
    DECOMPRESSOR.with(|cell| {
        let mut slot = cell
            .try_borrow_mut()
            .map_err(|_| "the context is in use".to_string())?;
        if slot.is_none() {
            *slot = Some(zstd::bulk::Decompressor::new().map_err(|e| e.to_string())?);
        }
        match slot.as_mut() {
            Some(d) => d.decompress(payload, expected).map_err(|e| e.to_string()),
            None => Err("no context".into()),
        }
    })
}

/// Decodes kind ‖ payload to exactly `expected` bytes of plaintext.
pub(crate) fn decode_chunk(body: Vec<u8>, expected: usize, index: u64) -> Result<Vec<u8>, Error> {
    let bad = |why: &str| Error::corrupt("blob", format!("chunk {index}: {why}"));
    let Some((&kind, payload)) = body.split_first() else {
        return Err(bad("empty"));
    };
    let plain = match kind {
        KIND_RAW => {
            let mut body = body;
            body.remove(0);
            body
        }
        KIND_ZSTD => decompress(payload, expected).map_err(|e| bad(&format!("zstd: {e}")))?,
        _ => return Err(bad("unknown chunk kind")),
    };
    if plain.len() != expected {
        return Err(bad(&format!(
            "holds {} bytes, expected {expected}",
            plain.len()
        )));
    }
    Ok(plain)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blob::format::{DEFAULT_CHUNK, PREFIX_LEN};

    fn header(cipher: Cipher) -> Header {
        Header {
            cipher,
            compressed: true,
            chunk_size: DEFAULT_CHUNK,
            plain_len: 10,
            key_version: 1,
            nonce_prefix: [3; PREFIX_LEN],
        }
    }

    #[test]
    fn sealed_chunks_are_bound_to_index_flag_and_header() {
        let key = SecretKey::generate().unwrap();
        for cipher in [Cipher::None, Cipher::Aes256GcmSivStream] {
            let sealer = ChunkSealer::new(header(cipher), Some(&key)).unwrap();
            let sealed = sealer.seal(4, true, b"\0hello".to_vec()).unwrap();
            assert_eq!(sealer.open(4, true, sealed.clone()).unwrap(), b"\0hello");
            assert!(sealer.open(5, true, sealed.clone()).is_err(), "index");
            assert!(sealer.open(4, false, sealed.clone()).is_err(), "last flag");
            let mut other = header(cipher);
            other.key_version = 2;
            assert!(
                ChunkSealer::new(other, Some(&key))
                    .unwrap()
                    .open(4, true, sealed.clone())
                    .is_err(),
                "header"
            );
            for i in 0..sealed.len() {
                let mut m = sealed.clone();
                m[i] ^= 1;
                assert!(sealer.open(4, true, m).is_err(), "bit {i}");
            }
        }
    }

    #[test]
    fn keys_wrap_and_debug_is_redacted() {
        let kek = SecretKey::generate().unwrap();
        let key = SecretKey::from_bytes([0xab; 32]);
        let w = wrap(&kek, &key, b"ctx").unwrap();
        assert_eq!(unwrap(&kek, &w, b"ctx").unwrap(), key);
        assert!(unwrap(&kek, &w, b"other").is_none());
        assert!(unwrap(&SecretKey::generate().unwrap(), &w, b"ctx").is_none());
        assert_eq!(format!("{key:?}"), "[redacted]");
        assert!(!format!("{w:?}").contains("ab"));
    }

    #[test]
    fn incompressible_chunks_stay_raw() {
        let noise = random_bytes::<4096>().unwrap().to_vec();
        let zeros = vec![0u8; 4096];
        let framed = |d: &[u8]| [&[0u8][..], d].concat();
        assert_eq!(encode_chunk(framed(&zeros), Some(1))[0], KIND_ZSTD);
        let enc = encode_chunk(framed(&noise), Some(1));
        assert_eq!(enc[0], KIND_RAW, "random bytes do not shrink: stored raw");
        assert_eq!(enc.len(), 4097);
        assert_eq!(decode_chunk(enc, 4096, 0).unwrap(), noise);
        assert!(decode_chunk(encode_chunk(framed(&zeros), Some(1)), 4095, 0).is_err());
        assert_eq!(
            decode_chunk(encode_chunk(framed(&zeros), Some(1)), 4096, 0).unwrap(),
            zeros
        );
        assert_eq!(
            decode_chunk(encode_chunk(Vec::new(), Some(1)), 0, 0).unwrap(),
            b""
        );
        assert_eq!(
            decode_chunk(encode_chunk(vec![9], Some(1)), 0, 0).unwrap(),
            b""
        );
    }
}
