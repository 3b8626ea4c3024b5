//! The async engine over real storage, on each backend (SQLite files; PostgreSQL with
//! `CHAT_TEST_POSTGRES`): what the simulated world cannot show (real storage, restarts,
//! argon2id, back-pressure). Every wait is bounded by a timeout.

use chat_client::Session;
use chat_core::{Config, Engine, PasswordParams, Storage};
use chat_proto::*;
use chat_testkit::{
    config, logged_in_embedded, on_every_backend, text_is, until_shut_down, TestDb, WAIT,
};
use tokio::time::timeout;

on_every_backend!(
    messages_and_membership_survive_a_restart,
    passwords_are_stored_as_argon2id,
    a_reader_that_falls_behind_catches_up_from_storage_in_order,
    a_reader_that_takes_nothing_is_disconnected_after_the_stall_timeout,
    shutdown_tells_every_connection,
);

async fn start(db: &TestDb, config: Config) -> Engine {
    Engine::start(db.open().await, config)
        .await
        .expect("engine starts")
}

async fn messages_and_membership_survive_a_restart(db: TestDb) {
    let engine = start(&db, config()).await;
    let mut alice = logged_in_embedded(&engine, "alice", true).await;
    let mut bob = logged_in_embedded(&engine, "bob", true).await;
    alice
        .request(Request::Join {
            room: "rust".into(),
        })
        .await
        .expect("join");
    bob.request(Request::Join {
        room: "rust".into(),
    })
    .await
    .expect("join");

    alice
        .send_text(Target::User("bob".into()), 1, "live dm")
        .await
        .expect("stored");
    bob.until(text_is("live dm")).await.expect("arrives");
    alice
        .send_text(Target::Room("rust".into()), 2, "live room")
        .await
        .expect("stored");
    bob.until(text_is("live room")).await.expect("arrives");

    drop(bob);
    let offline = alice
        .send_text(Target::User("bob".into()), 3, "while you were out")
        .await
        .expect("stored");
    engine.shut_down().await.expect("clean shutdown");
    drop(alice);

    let engine = start(&db, config()).await;
    let mut bob = Session::embedded(&engine, "test").await.expect("connects");
    let login = Request::Login {
        username: "bob".into(),
        password: "correct horse".into(),
        device: "bob-dev".into(),
    };
    assert!(matches!(bob.request(login).await, Ok(Reply::Session(_))));
    let replayed = bob
        .until(text_is("while you were out"))
        .await
        .expect("arrives");
    assert!(matches!(replayed, ServerMessage::Message(m) if m.id == offline));
    bob.until(|e| *e == ServerMessage::CaughtUp)
        .await
        .expect("arrives");
    // Bob never acknowledged the live ones: they are replayed too, in order, before it.
    let replayed: Vec<&str> = bob
        .events()
        .iter()
        .filter_map(|e| match e {
            ServerMessage::Message(m) => Some(m.text.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(replayed, ["live dm", "live room"]);

    // Rooms are live again without re-joining; resends are recognised from storage.
    let mut alice = logged_in_embedded(&engine, "alice", false).await;
    let again = alice
        .send_text(Target::User("bob".into()), 3, "while you were out")
        .await
        .expect("stored");
    assert_eq!(again, offline);
    alice
        .send_text(Target::Room("rust".into()), 4, "after restart")
        .await
        .expect("stored");
    bob.until(text_is("after restart")).await.expect("arrives");
    engine.shut_down().await.expect("clean shutdown");
}

async fn passwords_are_stored_as_argon2id(db: TestDb) {
    let engine = start(
        &db,
        Config {
            password: PasswordParams::OWASP,
            ..Config::default()
        },
    )
    .await;
    let _alice = logged_in_embedded(&engine, "alice", true).await;
    engine.shut_down().await.expect("clean shutdown");
    let storage = db.open().await;
    // On PostgreSQL, ids come from the node's block (`IdBlock`), not from 1.
    let snapshot = storage.snapshot(0).await.expect("reads");
    let alice = snapshot
        .users
        .iter()
        .find(|u| u.name == "alice")
        .expect("alice is stored")
        .id;
    let hash = storage
        .password_hash(alice)
        .await
        .expect("reads")
        .expect("a hash");
    assert!(
        hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{hash}"
    );
}

/// Alice sends `count` messages of 1 KiB into #general, one at a time; bob reads along.
async fn burst<T: chat_client::Transport>(
    alice: &mut Session<T>,
    bob: &mut Session<T>,
    count: u64,
) -> Vec<MessageId> {
    let text = "x".repeat(1024);
    let mut ids = Vec::new();
    for i in 0..count {
        let request = Request::Send {
            target: Target::Room("general".into()),
            client_msg_id: ClientMsgId(i),
            text: text.clone(),
        };
        match alice.request(request).await {
            Ok(Reply::Sent { id, .. }) => ids.push(id),
            other => panic!("{other:?}"),
        }
        bob.until(|e| matches!(e, ServerMessage::Message(m) if m.client_msg_id == ClientMsgId(i)))
            .await
            .expect("arrives");
    }
    ids
}

fn burst_config() -> Config {
    Config {
        outbox_soft_bytes: 128 * 1024,
        outbox_hard_bytes: 192 * 1024,
        request_rate_per_sec: 10_000,
        request_burst: 10_000,
        ..config()
    }
}

// Issue 15: a reader that falls behind was cut off as a slow consumer; now it catches up from
// storage and stays connected.
async fn a_reader_that_falls_behind_catches_up_from_storage_in_order(db: TestDb) {
    let engine = start(&db, burst_config()).await;
    let mut alice = logged_in_embedded(&engine, "alice", true).await;
    let mut bob = logged_in_embedded(&engine, "bob", true).await;
    let mut sleepy = logged_in_embedded(&engine, "sleepy", true).await;

    // 300 messages of 1 KiB: more than sleepy's 192 KiB bound, while bob keeps reading.
    let mut sent = burst(&mut alice, &mut bob, 300).await;
    // Sleepy reads now: every message, in order, once, and nothing else in between.
    let mut received = Vec::new();
    while received.len() < sent.len() {
        match sleepy.next_event().await.expect("in time") {
            Some(ServerMessage::Message(m)) => received.push(m.id),
            Some(ServerMessage::CaughtUp) => panic!("a second CaughtUp"),
            Some(_) => {}
            None => panic!("disconnected after {} messages", received.len()),
        }
    }
    assert_eq!(received, sent);
    // Still connected and live.
    let id = alice
        .send_text(Target::Room("general".into()), 10_000, "still there?")
        .await
        .expect("stored");
    sent.push(id);
    sleepy
        .until(|e| matches!(e, ServerMessage::Message(m) if m.id == id))
        .await
        .expect("live again");
    engine.shut_down().await.expect("clean shutdown");
}

async fn a_reader_that_takes_nothing_is_disconnected_after_the_stall_timeout(db: TestDb) {
    let config = Config {
        stall_timeout_ms: 300,
        ..burst_config()
    };
    let engine = start(&db, config).await;
    let mut alice = logged_in_embedded(&engine, "alice", true).await;
    let mut bob = logged_in_embedded(&engine, "bob", true).await;
    let sleepy = logged_in_embedded(&engine, "sleepy", true).await;
    // Presence is coalesced: let sleepy's coming online be announced first.
    bob.until(|e| matches!(e, ServerMessage::Presence { user, online: true } if user == "sleepy"))
        .await
        .expect("sleepy online");
    burst(&mut alice, &mut bob, 300).await;
    // Sleepy takes nothing: it is closed, and the others see it go offline.
    bob.until(|e| matches!(e, ServerMessage::Presence { user, online: false } if user == "sleepy"))
        .await
        .expect("sleepy was disconnected");
    drop(sleepy);
    // Its messages are all replayed at the next login, paced to its queue bound.
    let sleepy = logged_in_embedded(&engine, "sleepy", false).await;
    let replayed = sleepy
        .events()
        .iter()
        .filter(|e| matches!(e, ServerMessage::Message(_)))
        .count();
    assert_eq!(replayed, 300);
    engine.shut_down().await.expect("clean shutdown");
}

async fn shutdown_tells_every_connection(db: TestDb) {
    let engine = start(&db, config()).await;
    let mut alice = logged_in_embedded(&engine, "alice", true).await;
    let mut fresh = Session::embedded(&engine, "test").await.expect("connects");
    engine.shut_down().await.expect("clean shutdown");
    for client in [&mut alice, &mut fresh] {
        until_shut_down(client).await;
    }
}

/// Regression: a new connection's first messages could be handled before the engine learned
/// of the connection, and were dropped (the client then waited forever). Many connections
/// that send without waiting for the welcome make that overtaking likely.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_messages_never_overtake_their_connection() {
    let db = TestDb::sqlite();
    // 300 registrations at once from one (in-process) source: lift the hashing bounds, which
    // would otherwise answer most of them `RateLimited` at once.
    let config = Config {
        max_hashes_per_source: 300,
        max_pending_hashes: 300,
        ..config()
    };
    let engine = start(&db, config).await;
    let tasks: Vec<_> = (0..300)
        .map(|i| {
            let engine = engine.clone();
            tokio::spawn(async move {
                let mut conn = engine.connect().await;
                conn.send(ClientMessage::Hello(Hello::current("eager")))
                    .await
                    .expect("running");
                let request = Request::Register {
                    username: format!("eager{i}"),
                    password: "correct horse".into(),
                    device: "d".into(),
                };
                conn.send(ClientMessage::Request {
                    id: RequestId(1),
                    request,
                })
                .await
                .expect("running");
                let mut seen = Vec::new();
                loop {
                    match timeout(WAIT, conn.recv()).await.expect("a reply in time") {
                        Some(ServerMessage::Ok {
                            id: RequestId(1), ..
                        }) => return,
                        Some(ServerMessage::Err { error, .. }) => panic!("{error}"),
                        Some(other) => seen.push(other),
                        None => panic!("closed after {seen:?}"),
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("every client got its reply");
    }
    engine.shut_down().await.expect("clean shutdown");
}
