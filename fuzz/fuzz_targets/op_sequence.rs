//! Operation sequences on a real store against an in-memory model, with
//! injected I/O failures of `store.redb`: every answer as the model says,
//! a failed commit all or nothing, clean listings and `verify` at the end.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    bharatvoice_store::fuzzing::op_sequence(data);
});
