//! Any bytes as an owner's key row, a wrapped key, master key text and a
//! key file: the refusal each documents or a key that reads back, never a
//! panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    bharatvoice_store::fuzzing::key_record(data);
});
