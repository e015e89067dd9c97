//! Any bytes as a TOML configuration and as `BV_*` environment lines: a
//! configuration that validates or `Error::Config`, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    bharatvoice_store::fuzzing::config_file(data);
});
