//! Any bytes as a whole blob file under a fixed key: an error or the
//! authenticated plaintext, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(plain) = bharatvoice_store::fuzzing::blob_read(data) {
        // Only authentic blobs decode; their length is what the header says.
        let len = u64::from_le_bytes(data[16..24].try_into().unwrap());
        assert_eq!(plain.len() as u64, len);
    }
});
