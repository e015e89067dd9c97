//! Any bytes through every record decoder: `Error::Corrupt` or a record
//! that re-encodes to itself, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    bharatvoice_store::fuzzing::decode_any(data);
});
