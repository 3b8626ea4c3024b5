//! The `session` fuzz target's invariants: over random inputs here, and over every input of
//! the committed corpus, so each `cargo test` re-checks what the fuzzer kept.

use std::fs;
use std::path::Path;

use proptest::prelude::*;

#[test]
fn session_corpus() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/session");
    let mut count = 0;
    for entry in fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("directory entry").path();
        chat_hub::fuzzing::session(
            &fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
        );
        count += 1;
    }
    assert!(count > 0, "{} holds no inputs", dir.display());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn session_invariants_hold(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        chat_hub::fuzzing::session(&bytes);
    }
}
