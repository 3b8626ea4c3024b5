//! Arbitrary operations from several users and devices against the chat state machine; the
//! delivery invariants are checked after every step.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| chat_hub::fuzzing::session(data));
