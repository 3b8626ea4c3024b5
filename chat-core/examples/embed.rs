//! Runs the chat engine inside this process: two users register, exchange a direct message
//! and a room message, and everything is printed as it arrives.
//!
//! `cargo run -p chat-core --example embed`

use chat_core::{Config, Connection, Engine, Store};
use chat_proto::{
    ClientMessage, ClientMsgId, Hello, Reply, Request, RequestId, ServerMessage, Target,
};

/// Sends `request` and waits for its reply, printing every event on the way.
async fn ask(conn: &mut Connection, who: &str, id: u32, request: Request) -> Reply {
    let id = RequestId(id);
    conn.send(ClientMessage::Request { id, request })
        .await
        .expect("engine running");
    loop {
        match conn.recv().await.expect("connection open") {
            ServerMessage::Ok { id: got, reply } if got == id => return reply,
            ServerMessage::Err { id: got, error } if got == id => panic!("{who}: {error}"),
            event => println!("{who} <- {event:?}"),
        }
    }
}

/// Waits for the next chat message, printing other events.
async fn next_message(conn: &mut Connection, who: &str) {
    loop {
        match conn.recv().await.expect("connection open") {
            ServerMessage::Message(m) => {
                return println!(
                    "{who} <- message #{} from {} to {:?}: {}",
                    m.id.0, m.from, m.target, m.text
                );
            }
            event => println!("{who} <- {event:?}"),
        }
    }
}

async fn join(engine: &Engine, name: &str) -> Connection {
    let mut conn = engine.connect().await;
    conn.send(ClientMessage::Hello(Hello::current("embed-example")))
        .await
        .expect("engine running");
    let register = Request::Register {
        username: name.into(),
        password: "correct horse battery".into(),
        device: "example".into(),
    };
    ask(&mut conn, name, 1, register).await;
    conn
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // A real server would use `Store::open("chat.db")`.
    let engine = Engine::start(Store::open_in_memory().await?, Config::default()).await?;
    let mut alice = join(&engine, "alice").await;
    let mut bob = join(&engine, "bob").await;

    let dm = Request::Send {
        target: Target::User("bob".into()),
        client_msg_id: ClientMsgId(1),
        text: "hi bob, this never touched a socket".into(),
    };
    ask(&mut alice, "alice", 2, dm).await;
    next_message(&mut bob, "bob").await;

    let room = Request::Send {
        target: Target::Room("general".into()),
        client_msg_id: ClientMsgId(2),
        text: "hello #general".into(),
    };
    ask(&mut bob, "bob", 2, room).await;
    next_message(&mut alice, "alice").await;

    engine.shut_down().await?;
    Ok(())
}
