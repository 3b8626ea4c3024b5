//! The `chat-server` binary.

fn main() {
    eprintln!("chat-server: not built yet; see the open chat-server issue");
    std::process::exit(2);
}
