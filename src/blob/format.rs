//! The blob container, format version 1.
//!
//! ```text
//! +--------------------+----------+----------+-----+------------+---------+
//! | header (40 bytes)  | chunk 0  | chunk 1  | ... | chunk table| trailer |
//! +--------------------+----------+----------+-----+------------+---------+
//!
//! header, all integers little-endian:
//!   0  6  magic "BVBLOB"
//!   6  1  format version (1)
//!   7  1  cipher: 0 none, 1 AES-256-GCM-SIV in STREAM (BE32)
//!   8  1  codec: 0 none, 1 zstd (per chunk)
//!   9  3  reserved, zero
//!  12  4  chunk size in plaintext bytes (4 KiB ..= 16 MiB)
//!  16  8  plaintext length
//!  24  4  key version (of the owner key that sealed the data key)
//!  28  7  nonce prefix (random per blob)
//!  35  5  reserved, zero
//!
//! chunk i (n = max(1, ceil(plaintext length / chunk size)) chunks):
//!   seal(i, last = (i == n-1), kind ‖ payload) where kind is 0 (raw) or
//!   1 (zstd) and payload decodes to exactly the chunk's plaintext size
//!   (chunk size, or the remainder for the last chunk)
//!
//! chunk table: n × u32, the stored length of each chunk
//! trailer:     u32 n, then "BVCT"
//! ```
//!
//! Sealing. With a cipher, a chunk is AES-256-GCM-SIV with nonce = prefix ‖
//! chunk index (u32 big-endian) ‖ last-chunk flag (the STREAM construction,
//! `aead-stream`'s `StreamBE32`), and associated data = the header. The
//! plaintext length is not known until the input ends, so every chunk but
//! the last authenticates the header with its length field zeroed, and the
//! last chunk authenticates the whole header: every header field is bound
//! to every chunk, and the length to the end of the stream. Without a
//! cipher, each chunk carries the first 16 bytes of SHA-256 over (domain,
//! header as above, index, flag, sealed bytes) in place of a tag: that
//! catches damage, not tampering.
//!
//! What is detected: a flipped bit anywhere (tag), truncation or a dropped
//! last chunk (last flag, chunk count, file length), chunks reordered
//! (index in the nonce), chunks spliced from another blob (different key
//! and prefix), a changed header (associated data). The chunk table and
//! trailer are not authenticated themselves: a changed entry only makes a
//! chunk fail its tag.

use crate::error::Error;

/// The magic bytes that open every blob.
pub(crate) const MAGIC: &[u8; 6] = b"BVBLOB";
/// The blob container version this build writes (and the only one it
/// reads): see `docs/FORMAT.md`.
pub const FORMAT_VERSION: u8 = 1;
/// Size of the header.
pub(crate) const HEADER_LEN: usize = 40;
/// Size of the trailer.
pub(crate) const TRAILER_LEN: usize = 8;
/// Trailer magic.
pub(crate) const TRAILER_MAGIC: &[u8; 4] = b"BVCT";
/// Bytes a sealed chunk adds: the tag.
pub(crate) const TAG_LEN: usize = 16;
/// Smallest and largest chunk sizes accepted.
pub(crate) const MIN_CHUNK: u32 = 4 << 10;
/// Largest chunk size accepted.
pub(crate) const MAX_CHUNK: u32 = 16 << 20;
/// Default chunk size: big enough to amortise a hop, small enough for seeks.
pub(crate) const DEFAULT_CHUNK: u32 = 256 << 10;
/// Length of the nonce prefix.
pub(crate) const PREFIX_LEN: usize = 7;

/// Kind byte of a chunk stored raw.
pub(crate) const KIND_RAW: u8 = 0;
/// Kind byte of a zstd-compressed chunk.
pub(crate) const KIND_ZSTD: u8 = 1;

/// The cipher of a blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cipher {
    None = 0,
    Aes256GcmSivStream = 1,
}

/// The parsed header of a blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    pub(crate) cipher: Cipher,
    pub(crate) compressed: bool,
    pub(crate) chunk_size: u32,
    pub(crate) plain_len: u64,
    pub(crate) key_version: u32,
    pub(crate) nonce_prefix: [u8; PREFIX_LEN],
}

fn bad(detail: impl Into<String>) -> Error {
    Error::corrupt("blob", detail)
}

impl Header {
    /// Encodes the header; with `with_len` false the length field is zero
    /// (the associated data of every chunk but the last).
    pub(crate) fn encode(&self, with_len: bool) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        h[..6].copy_from_slice(MAGIC);
        h[6] = FORMAT_VERSION;
        h[7] = self.cipher as u8;
        h[8] = u8::from(self.compressed);
        h[12..16].copy_from_slice(&self.chunk_size.to_le_bytes());
        if with_len {
            h[16..24].copy_from_slice(&self.plain_len.to_le_bytes());
        }
        h[24..28].copy_from_slice(&self.key_version.to_le_bytes());
        h[28..35].copy_from_slice(&self.nonce_prefix);
        h
    }

    /// Parses and checks a header; never trusts a field it has not checked.
    pub(crate) fn parse(bytes: &[u8]) -> Result<Header, Error> {
        if bytes.len() < HEADER_LEN {
            return Err(bad(format!(
                "{} bytes is too short for a header",
                bytes.len()
            )));
        }
        if &bytes[..6] != MAGIC {
            return Err(bad("not a blob (bad magic)"));
        }
        if bytes[6] != FORMAT_VERSION {
            return Err(bad(format!("unknown blob format version {}", bytes[6])));
        }
        let cipher = match bytes[7] {
            0 => Cipher::None,
            1 => Cipher::Aes256GcmSivStream,
            c => return Err(bad(format!("unknown cipher {c}"))),
        };
        let compressed = match bytes[8] {
            0 => false,
            1 => true,
            c => return Err(bad(format!("unknown codec {c}"))),
        };
        if bytes[9..12] != [0; 3] || bytes[35..40] != [0; 5] {
            return Err(bad("reserved header bytes are not zero"));
        }
        let u32_at =
            |i: usize| u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
        let chunk_size = u32_at(12);
        if !(MIN_CHUNK..=MAX_CHUNK).contains(&chunk_size) {
            return Err(bad(format!("chunk size {chunk_size} out of range")));
        }
        let mut len = [0u8; 8];
        len.copy_from_slice(&bytes[16..24]);
        let mut nonce_prefix = [0u8; PREFIX_LEN];
        nonce_prefix.copy_from_slice(&bytes[28..35]);
        let header = Header {
            cipher,
            compressed,
            chunk_size,
            plain_len: u64::from_le_bytes(len),
            key_version: u32_at(24),
            nonce_prefix,
        };
        if header.chunk_count() > u64::from(u32::MAX) {
            return Err(bad("too many chunks"));
        }
        Ok(header)
    }

    /// The number of chunks: at least one (an empty blob has one empty chunk).
    pub(crate) fn chunk_count(&self) -> u64 {
        self.plain_len.div_ceil(u64::from(self.chunk_size)).max(1)
    }

    /// The plaintext size of chunk `i`.
    pub(crate) fn chunk_plain_len(&self, i: u64) -> usize {
        let cs = u64::from(self.chunk_size);
        let start = i * cs;
        usize::try_from(self.plain_len.saturating_sub(start).min(cs)).unwrap_or(0)
    }

    /// The associated data for chunk `i`.
    pub(crate) fn aad(&self, last: bool) -> [u8; HEADER_LEN] {
        self.encode(last)
    }
}

/// Parses a trailer and checks it against the header and the file size;
/// returns the byte range of the chunk table.
pub(crate) fn table_range(
    header: &Header,
    file_len: u64,
    trailer: &[u8],
) -> Result<std::ops::Range<u64>, Error> {
    if trailer.len() != TRAILER_LEN || &trailer[4..] != TRAILER_MAGIC {
        return Err(bad("missing trailer (truncated?)"));
    }
    let n = u64::from(u32::from_le_bytes([
        trailer[0], trailer[1], trailer[2], trailer[3],
    ]));
    if n != header.chunk_count() {
        return Err(bad(format!(
            "trailer counts {n} chunks, header implies {}",
            header.chunk_count()
        )));
    }
    let table_len = n * 4;
    let min_len = HEADER_LEN as u64 + n * TAG_LEN as u64 + table_len + TRAILER_LEN as u64;
    if file_len < min_len {
        return Err(bad(format!("{file_len} bytes is too short for {n} chunks")));
    }
    let end = file_len - TRAILER_LEN as u64;
    Ok(end - table_len..end)
}

/// Parses the chunk table into offsets: chunk `i` is `offsets[i]..offsets[i+1]`.
pub(crate) fn chunk_offsets(table: &[u8], file_len: u64) -> Result<Vec<u64>, Error> {
    let n = table.len() / 4;
    let mut offsets = Vec::with_capacity(n + 1);
    let mut at = HEADER_LEN as u64;
    offsets.push(at);
    for entry in table.chunks_exact(4) {
        let len = u64::from(u32::from_le_bytes([entry[0], entry[1], entry[2], entry[3]]));
        if len < TAG_LEN as u64 {
            return Err(bad("a chunk is shorter than its tag"));
        }
        at += len;
        offsets.push(at);
    }
    let expected_end = file_len - (table.len() + TRAILER_LEN) as u64;
    if at != expected_end {
        return Err(bad(format!(
            "chunks end at {at}, table starts at {expected_end}"
        )));
    }
    Ok(offsets)
}

/// Encodes the chunk table and trailer for these stored chunk lengths.
pub(crate) fn encode_table(lengths: &[u32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(lengths.len() * 4 + TRAILER_LEN);
    for l in lengths {
        out.extend_from_slice(&l.to_le_bytes());
    }
    out.extend_from_slice(&(lengths.len() as u32).to_le_bytes());
    out.extend_from_slice(TRAILER_MAGIC);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> Header {
        Header {
            cipher: Cipher::Aes256GcmSivStream,
            compressed: true,
            chunk_size: DEFAULT_CHUNK,
            plain_len: 1_000_000,
            key_version: 3,
            nonce_prefix: [9; PREFIX_LEN],
        }
    }

    #[test]
    fn header_round_trips_and_rejects_damage() {
        let h = header();
        let bytes = h.encode(true);
        assert_eq!(Header::parse(&bytes).unwrap(), h);
        assert_eq!(h.chunk_count(), 4);
        assert_eq!(h.chunk_plain_len(3), 1_000_000 - 3 * 262_144);
        for i in [0, 6, 7, 8, 9, 15, 35] {
            let mut b = bytes;
            b[i] ^= 0x80;
            assert!(Header::parse(&b).is_err(), "byte {i}");
        }
        assert!(Header::parse(&bytes[..39]).is_err());
    }

    #[test]
    fn empty_and_exact_sizes() {
        let mut h = header();
        h.plain_len = 0;
        assert_eq!((h.chunk_count(), h.chunk_plain_len(0)), (1, 0));
        h.plain_len = u64::from(DEFAULT_CHUNK);
        assert_eq!(
            (h.chunk_count(), h.chunk_plain_len(0)),
            (1, DEFAULT_CHUNK as usize)
        );
        h.plain_len += 1;
        assert_eq!((h.chunk_count(), h.chunk_plain_len(1)), (2, 1));
    }
}
