//! Any bytes through the decoders of the other db rows (blob rows, usage,
//! damage, erasures, `meta` values, the shapes migrations read):
//! `Error::Corrupt` or a row that re-encodes to itself, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    bharatvoice_store::fuzzing::decode_rows(data);
});
