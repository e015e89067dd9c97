//! Any bytes as a blob header: parse, never panic, never allocate from an
//! unchecked length.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    bharatvoice_store::fuzzing::blob_header(data);
});
