//! Any bytes sent to a store's admin socket, and as the answer an admin
//! client reads: one answer line, or the client's documented refusal,
//! never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    bharatvoice_store::fuzzing::admin_request(data);
});
