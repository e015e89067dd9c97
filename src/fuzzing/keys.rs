//! The `key_record` target: what the keyring reads. An owner's key row
//! (`keys`), a wrapped key alone (`record_keys`, and the master key check
//! and the audit key in `meta`), each opened under the fuzz master key as
//! the keyring would open it; the master key as text
//! ([`MasterKey::parse`](crate::MasterKey::parse): config, environment)
//! and as a key file ([`MasterKey::from_file`](crate::MasterKey::from_file)).

use super::{FUZZ_ID, accepted, try_one};
use crate::blob::crypto::{SecretKey, WrappedKey, unwrap, wrap};
use crate::blob::keys::{address_context, kek_context, record_key_context};
use crate::db::codec;
use crate::db::keys::OwnerKeysRecord;
use crate::error::Error;

/// The master key the target opens wrapped keys under.
const FUZZ_MASTER: [u8; 32] = [0x6b; 32];

fn master() -> SecretKey {
    SecretKey::from_bytes(FUZZ_MASTER)
}

fn owner() -> crate::UserId {
    crate::UserId::from_key(FUZZ_ID)
}

/// An owner's key row: it must re-encode to itself, and each of its keys
/// opens under the master key or is refused (`None`), never a panic.
fn try_owner_row(data: &[u8]) -> bool {
    if !try_one::<OwnerKeysRecord>(data) {
        return false;
    }
    let row = codec::decode::<OwnerKeysRecord>(data, "fuzz").expect("decoded above");
    let master = master();
    for (version, wrapped) in &row.versions {
        let _ = unwrap(&master, wrapped, &kek_context(owner(), *version));
    }
    let _ = unwrap(&master, &row.address, &address_context(owner()));
    true
}

/// A wrapped key stored alone (format 1): it re-encodes to itself and
/// opens or is refused.
fn try_wrapped(data: &[u8]) -> bool {
    let Some(wrapped) = accepted(codec::decode_versioned::<WrappedKey>(1, data, || {
        "fuzz".into()
    })) else {
        return false;
    };
    let again = codec::encode_versioned(1, &wrapped).expect("encodes");
    let back: WrappedKey = codec::decode_versioned(1, &again, || "fuzz".into()).expect("decodes");
    assert_eq!(back, wrapped, "a wrapped key re-encodes to itself");
    let _ = unwrap(&master(), &wrapped, &record_key_context(owner()));
    true
}

/// The master key as text: a key, which prints back (as hex) to itself,
/// or [`Error::InvalidKey`] that does not echo the text.
fn try_key_text(data: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(data) else {
        return false;
    };
    match SecretKey::parse(text) {
        Ok(key) => {
            let back = SecretKey::parse(&key.to_hex()).expect("a key's hex parses");
            assert!(back == key, "a parsed key prints back to itself");
            true
        }
        Err(Error::InvalidKey { origin }) => {
            assert_eq!(origin, "the master key text", "the key text is not echoed");
            false
        }
        Err(other) => panic!("parsing key text returned a non-InvalidKey error: {other}"),
    }
}

/// The key file of this thread (mode 0600, rewritten for each input).
fn key_file() -> std::path::PathBuf {
    thread_local! {
        static DIR: super::Scratch = super::Scratch::new("key-file");
    }
    DIR.with(|d| d.path().join("master.key"))
}

/// `data` as a key file: 32 raw bytes are the key, anything else must read
/// as key text would; a refusal is [`Error::InvalidKey`] naming the file.
fn try_key_file(data: &[u8]) -> bool {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let path = &key_file();
    let mut f = std::fs::File::options()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .expect("the key file opens");
    f.write_all(data).expect("the key file is written");
    drop(f);
    let as_text = std::str::from_utf8(data)
        .ok()
        .and_then(|t| SecretKey::parse(t).ok());
    match SecretKey::from_file(path) {
        Ok(key) => {
            let expected = <[u8; 32]>::try_from(data)
                .map(SecretKey::from_bytes)
                .ok()
                .or(as_text);
            assert!(
                expected == Some(key),
                "a key file reads as its bytes or text"
            );
            true
        }
        Err(Error::InvalidKey { origin }) => {
            assert!(
                data.len() != 32 && as_text.is_none(),
                "a valid key file was refused"
            );
            assert!(origin.contains(&*path.to_string_lossy()), "{origin}");
            false
        }
        Err(other) => panic!("reading a key file returned a non-InvalidKey error: {other}"),
    }
}

/// Feeds `data` to every key decoder; returns how many accepted it.
/// Panics (the fuzzer's signal) only if a decoder misbehaves.
pub fn key_record(data: &[u8]) -> usize {
    [
        try_owner_row(data),
        try_wrapped(data),
        try_key_text(data),
        try_key_file(data),
    ]
    .iter()
    .filter(|ok| **ok)
    .count()
}

/// Valid inputs of each kind: key rows and wrapped keys sealed under the
/// fuzz master key (they open), key text in each accepted spelling.
pub fn sample_key_records() -> Vec<(&'static str, Vec<u8>)> {
    use base64::Engine;
    let master = master();
    let kek = SecretKey::from_bytes([0x11; 32]);
    let wrapped = |key: &SecretKey, context: &[u8]| wrap(&master, key, context).expect("wraps");
    let row = OwnerKeysRecord {
        current: 2,
        versions: vec![
            (1, wrapped(&kek, &kek_context(owner(), 1))),
            (2, wrapped(&kek, &kek_context(owner(), 2))),
        ],
        address: wrapped(&kek, &address_context(owner())),
        rotating: true,
    };
    let record_key = wrapped(&kek, &record_key_context(owner()));
    let raw = [0x42u8; 32];
    let b64 = |e: base64::engine::GeneralPurpose| e.encode(raw).into_bytes();
    vec![
        ("owner_keys", codec::encode(&row).expect("encodes")),
        (
            "record_key",
            codec::encode_versioned(1, &record_key).expect("encodes"),
        ),
        ("key_hex", hex::encode(raw).into_bytes()),
        (
            "key_hex_line",
            format!("{}\n", hex::encode_upper(raw)).into_bytes(),
        ),
        ("key_base64", b64(base64::engine::general_purpose::STANDARD)),
        (
            "key_base64_url",
            b64(base64::engine::general_purpose::URL_SAFE_NO_PAD),
        ),
        ("key_raw", raw.to_vec()),
    ]
}
