//! Any bytes through the cache's tier-2 row parser: `Error::Corrupt` or a
//! row that re-encodes to itself, never a panic. The bytes, and a parsed
//! row's value, also go through the parsers a cache read applies to a
//! value (JSON into a few types; the decimal integer of `incr`/`decr`):
//! a value or `WrongType`, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    bharatvoice_store::fuzzing::cache_row(data);
});
