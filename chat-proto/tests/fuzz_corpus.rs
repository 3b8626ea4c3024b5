//! Replays the committed fuzz corpora through the fuzz targets' own bodies, so every
//! `cargo test` re-checks each input the fuzzer ever kept.

use std::fs;
use std::path::Path;

fn replay(target: &str, run: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut count = 0;
    for entry in fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("directory entry").path();
        run(&fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())));
        count += 1;
    }
    assert!(count > 0, "{} holds no inputs", dir.display());
}

#[test]
fn decode_frames_corpus() {
    replay("decode_frames", chat_proto::fuzzing::decode_frames);
}

#[test]
fn roundtrip_corpus() {
    replay("roundtrip", chat_proto::fuzzing::roundtrip);
}
