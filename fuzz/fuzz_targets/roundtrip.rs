//! Arbitrary message -> encode -> decode must give the message back.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| chat_proto::fuzzing::roundtrip(data));
