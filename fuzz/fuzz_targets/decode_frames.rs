//! Arbitrary bytes, in fuzzer-chosen chunks, through the frame decoder.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| chat_proto::fuzzing::decode_frames(data));
