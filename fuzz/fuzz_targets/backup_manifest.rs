//! Any bytes as a generation's manifest.json (under its MAC and without),
//! its manifest.mac, a destination's backup.json and a metadata delta
//! applied on restore: the refusal each documents, or a value that
//! re-serialises to itself (a delta: a file of its length), never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    bharatvoice_store::fuzzing::backup_manifest(data);
});
