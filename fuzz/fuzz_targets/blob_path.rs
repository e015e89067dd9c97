//! Any bytes as a path the blob directory's watch hears of: the layout's
//! parser names a blob only at its own path, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    bharatvoice_store::fuzzing::blob_path(data);
});
