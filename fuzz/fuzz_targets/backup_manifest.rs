//! Any bytes as a generation's manifest.json (under its MAC and without),
//! its manifest.mac and a destination's backup.json: the refusal each
//! documents or a value that re-serialises to itself, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    bharatvoice_store::fuzzing::backup_manifest(data);
});
