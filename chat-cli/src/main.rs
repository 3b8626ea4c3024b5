//! The `chat-cli` binary.

fn main() {
    eprintln!("chat-cli: not built yet; see the open chat-cli issue");
    std::process::exit(2);
}
