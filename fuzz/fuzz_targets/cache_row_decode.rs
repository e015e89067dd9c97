//! Any bytes through the cache's tier-2 row parser: `Error::Corrupt` or a
//! row that re-encodes to itself, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    bharatvoice_store::fuzzing::cache_row(data);
});
