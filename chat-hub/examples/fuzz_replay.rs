//! Replays one `session` fuzz input: `cargo run -p chat-hub --features arbitrary --example fuzz_replay FILE`
//! (set `CHAT_FUZZ_TRACE=1` to print each step).

fn main() {
    let path = std::env::args().nth(1).expect("usage: fuzz_replay FILE");
    let data = std::fs::read(&path).expect("readable input");
    chat_hub::fuzzing::session(&data);
    println!("{path}: all invariants held");
}
