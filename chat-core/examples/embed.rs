//! Runs the chat engine inside this process: two users register, exchange a direct message
//! and a room message, and everything is printed as it arrives.
//!
//! `cargo run -p chat-core --example embed`

use chat_client::Session;
use chat_core::{Config, Connection, Engine, Store};
use chat_proto::{ServerMessage, Target};

/// Connects to the engine in process and registers `name`.
async fn join(engine: &Engine, name: &str) -> Result<Session<Connection>, chat_client::Error> {
    let mut session = Session::embedded(engine, "embed-example").await?;
    session
        .register(name, "correct horse battery", "example")
        .await?;
    Ok(session)
}

/// Waits for the next chat message and prints it with every event that came before.
async fn next_message(
    session: &mut Session<Connection>,
    who: &str,
) -> Result<(), chat_client::Error> {
    let message = session
        .until(|e| matches!(e, ServerMessage::Message(_)))
        .await?;
    for event in session.events() {
        println!("{who} <- {event:?}");
    }
    session.clear_events();
    if let ServerMessage::Message(m) = message {
        println!(
            "{who} <- message #{} from {} to {:?}: {}",
            m.id.0, m.from, m.target, m.text
        );
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // A real server would use `Store::open("chat.db")`.
    let engine = Engine::start(Store::open_in_memory().await?, Config::default()).await?;
    let mut alice = join(&engine, "alice").await?;
    let mut bob = join(&engine, "bob").await?;

    let dm = Target::User("bob".into());
    alice
        .send_text(dm, 1, "hi bob, this never touched a socket")
        .await?;
    next_message(&mut bob, "bob").await?;

    // Every new user is in the server's default room.
    let room = Target::Room(bob.welcome().default_room.clone());
    bob.send_text(room, 2, "hello, everyone").await?;
    next_message(&mut alice, "alice").await?;

    engine.shut_down().await?;
    Ok(())
}
