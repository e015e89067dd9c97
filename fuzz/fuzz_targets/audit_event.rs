//! Any bytes as an audit entry, head, anchor or old audit event, and as a
//! script building a chain: verify agrees with the model, an append
//! extends the chain or is refused, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    bharatvoice_store::fuzzing::audit_event(data);
});
