//! The metadata snapshot as it leaves the device: compressed with zstd and
//! sealed with AES-256-GCM-SIV before upload (blob files need neither:
//! they are sealed already).
//!
//! ```text
//! "BVSNAP01" ‖ nonce prefix (7 bytes) ‖ frames
//! frame = u32 BE length ‖ AES-256-GCM-SIV(zstd(4 MiB of store.redb))
//! ```
//!
//! The frames are the STREAM construction (`aead-stream`'s `StreamBE32`:
//! the nonce is the prefix, the frame's index and a last-frame flag), so
//! a frame cannot be dropped, moved or repeated, nor the file cut short,
//! without failing to open. The key is derived from the master key
//! (HMAC-SHA256 of a fixed label): only the master key's holder reads the
//! snapshot, as only they can sign a manifest.

use std::io::{Read, Write};
use std::path::Path;

use aead_stream::{NewStream, StreamBE32, StreamPrimitive};
use aes_gcm_siv::Aes256GcmSiv;
use aes_gcm_siv::aead::KeyInit;
use hmac::Mac;
use sha2::{Digest, Sha256};

use crate::blob::crypto::SecretKey;
use crate::error::Error;
use crate::ops::backup::copy::{create, io};
use crate::ops::backup::manifest::FileDigest;

const MAGIC: &[u8; 8] = b"BVSNAP01";
const PREFIX_LEN: usize = 7;
/// Plaintext bytes per frame.
const FRAME_PLAIN: usize = 4 << 20;
/// The largest frame a reader accepts (zstd's bound on 4 MiB, and a tag).
const FRAME_MAX: usize = FRAME_PLAIN + (FRAME_PLAIN >> 7) + 4096;
const LEVEL: i32 = 3;

fn stream(master: &SecretKey, prefix: &[u8; PREFIX_LEN]) -> StreamBE32<Aes256GcmSiv> {
    let mut m = <hmac::Hmac<Sha256> as hmac::KeyInit>::new_from_slice(master.bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
    m.update(b"bv/backup-metadata/v1");
    let key = SecretKey::from_bytes(m.finalize().into_bytes().into());
    let aead = Aes256GcmSiv::new(key.bytes().into());
    StreamBE32::from_aead(aead, prefix.into())
}

fn aad(prefix: &[u8; PREFIX_LEN]) -> [u8; 8 + PREFIX_LEN] {
    let mut out = [0u8; 8 + PREFIX_LEN];
    out[..8].copy_from_slice(MAGIC);
    out[8..].copy_from_slice(prefix);
    out
}

/// Seals the file `src` into `dst` (a new file, mode 0600); returns the
/// plaintext's size and SHA-256.
pub(crate) fn seal_file(src: &Path, dst: &Path, master: &SecretKey) -> Result<FileDigest, Error> {
    let prefix: [u8; PREFIX_LEN] = crate::blob::crypto::random_bytes()?;
    let stream = stream(master, &prefix);
    let aad = aad(&prefix);
    let mut input = std::fs::File::open(src).map_err(io("reading", src))?;
    let mut out = std::io::BufWriter::new(create(dst)?);
    let write = |out: &mut std::io::BufWriter<std::fs::File>, b: &[u8]| {
        out.write_all(b).map_err(io("writing", dst))
    };
    write(&mut out, MAGIC)?;
    write(&mut out, &prefix)?;
    let (mut hash, mut bytes) = (Sha256::new(), 0u64);
    let mut plain = vec![0u8; FRAME_PLAIN];
    let mut filled = fill(&mut input, &mut plain, src)?;
    let mut index = 0u32;
    loop {
        // Read one frame ahead: the last frame is the one no bytes follow.
        let mut next = vec![0u8; FRAME_PLAIN];
        let next_filled = if filled == FRAME_PLAIN {
            fill(&mut input, &mut next, src)?
        } else {
            0
        };
        let last = next_filled == 0;
        let body = &plain[..filled];
        hash.update(body);
        bytes += body.len() as u64;
        let mut frame = zstd::bulk::compress(body, LEVEL)
            .map_err(|e| Error::io("compressing the metadata snapshot", e))?;
        stream
            .encrypt_in_place(index, last, &aad, &mut frame)
            .map_err(|_| {
                Error::io(
                    "sealing the metadata snapshot",
                    std::io::Error::other("AEAD failure"),
                )
            })?;
        let len = u32::try_from(frame.len()).map_err(|_| {
            Error::io(
                "sealing the metadata snapshot",
                std::io::Error::other("frame too large"),
            )
        })?;
        write(&mut out, &len.to_be_bytes())?;
        write(&mut out, &frame)?;
        if last {
            break;
        }
        index = index.checked_add(1).ok_or_else(|| {
            Error::io(
                "sealing the metadata snapshot",
                std::io::Error::other("too many frames"),
            )
        })?;
        (plain, filled) = (next, next_filled);
    }
    out.flush().map_err(io("writing", dst))?;
    Ok(FileDigest {
        bytes,
        sha256: hash.finalize().into(),
    })
}

/// Opens the sealed snapshot `src` into `dst` (a new file, mode 0600);
/// returns the plaintext's size and SHA-256. A sealed file that was
/// altered, cut short or sealed under another master key is
/// [`Error::Integrity`] naming `what`.
pub(crate) fn open_file(
    src: &Path,
    dst: &Path,
    master: &SecretKey,
    what: &str,
) -> Result<FileDigest, Error> {
    let bad = |detail: &str| Error::Integrity {
        what: what.to_string(),
        detail: detail.to_string(),
    };
    let mut input = std::io::BufReader::new(std::fs::File::open(src).map_err(io("reading", src))?);
    let mut head = [0u8; 8 + PREFIX_LEN];
    input
        .read_exact(&mut head)
        .map_err(|_| bad("it is too short to be a sealed metadata snapshot"))?;
    if &head[..8] != MAGIC {
        return Err(bad("it is not a sealed metadata snapshot"));
    }
    let prefix: [u8; PREFIX_LEN] = head[8..]
        .try_into()
        .unwrap_or_else(|_| unreachable!("7 bytes"));
    let stream = stream(master, &prefix);
    let aad = aad(&prefix);
    let mut out = std::io::BufWriter::new(create(dst)?);
    let (mut hash, mut bytes) = (Sha256::new(), 0u64);
    let mut index = 0u32;
    loop {
        let mut len = [0u8; 4];
        input
            .read_exact(&mut len)
            .map_err(|_| bad("it ends before its last frame: it was cut short"))?;
        let len = u32::from_be_bytes(len) as usize;
        if len > FRAME_MAX {
            return Err(bad("a frame is larger than any this build writes"));
        }
        let mut frame = vec![0u8; len];
        input
            .read_exact(&mut frame)
            .map_err(|_| bad("it ends inside a frame: it was cut short"))?;
        // Is this the last frame? Only if nothing follows it.
        let last = input.fill_buf_is_empty(src)?;
        if stream
            .decrypt_in_place(index, last, &aad, &mut frame)
            .is_err()
        {
            return Err(bad(
                "a frame failed authentication: the snapshot was altered, cut short, or sealed under another master key",
            ));
        }
        let plain = zstd::bulk::decompress(&frame, FRAME_PLAIN)
            .map_err(|_| bad("a frame does not decompress"))?;
        hash.update(&plain);
        bytes += plain.len() as u64;
        out.write_all(&plain).map_err(io("writing", dst))?;
        if last {
            break;
        }
        index = index
            .checked_add(1)
            .ok_or_else(|| bad("it has more frames than any this build writes"))?;
    }
    out.flush().map_err(io("writing", dst))?;
    Ok(FileDigest {
        bytes,
        sha256: hash.finalize().into(),
    })
}

/// Whether a buffered reader is at its end.
trait AtEnd {
    fn fill_buf_is_empty(&mut self, path: &Path) -> Result<bool, Error>;
}

impl<R: Read> AtEnd for std::io::BufReader<R> {
    fn fill_buf_is_empty(&mut self, path: &Path) -> Result<bool, Error> {
        use std::io::BufRead;
        Ok(self.fill_buf().map_err(io("reading", path))?.is_empty())
    }
}

/// Reads until `buf` is full or the input ends; returns the bytes read.
fn fill(input: &mut std::fs::File, buf: &mut [u8], path: &Path) -> Result<usize, Error> {
    let mut n = 0;
    while n < buf.len() {
        match input.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io("reading", path)(e)),
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_opens_only_whole_and_under_its_key() {
        let dir = tempfile::tempdir().unwrap();
        let (plain, sealed, back) = (
            dir.path().join("p"),
            dir.path().join("s"),
            dir.path().join("b"),
        );
        let key = SecretKey::from_bytes([7; 32]);
        for size in [
            0usize,
            10,
            FRAME_PLAIN,
            FRAME_PLAIN + 1,
            2 * FRAME_PLAIN + 5,
        ] {
            let data: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
            std::fs::write(&plain, &data).unwrap();
            let d = seal_file(&plain, &sealed, &key).unwrap();
            assert_eq!(d.bytes, size as u64);
            assert_eq!(open_file(&sealed, &back, &key, "s").unwrap(), d);
            assert_eq!(std::fs::read(&back).unwrap(), data);
            let wrong = SecretKey::from_bytes([8; 32]);
            assert!(matches!(
                open_file(&sealed, &back, &wrong, "s"),
                Err(Error::Integrity { .. })
            ));
            let whole = std::fs::read(&sealed).unwrap();
            // Cut anywhere, or one bit flipped anywhere: refused.
            for cut in [whole.len() - 1, whole.len() / 2, 16, 3] {
                std::fs::write(&sealed, &whole[..cut]).unwrap();
                assert!(
                    open_file(&sealed, &back, &key, "s").is_err(),
                    "cut at {cut}"
                );
            }
            for at in [20, whole.len() / 2, whole.len() - 1] {
                let mut flipped = whole.clone();
                flipped[at] ^= 1;
                std::fs::write(&sealed, &flipped).unwrap();
                assert!(
                    open_file(&sealed, &back, &key, "s").is_err(),
                    "flip at {at}"
                );
            }
        }
    }
}
