//! Any bytes as a cache `KEYS` pattern and a key: the pattern matcher
//! agrees with a reference glob, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    bharatvoice_store::fuzzing::cache_pattern(data);
});
