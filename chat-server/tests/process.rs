//! The real `chat-server` binary, on each backend (SQLite; PostgreSQL with
//! `CHAT_TEST_POSTGRES`): killed with SIGKILL in the middle of a stream of sends, and stopped
//! with SIGTERM. Processes are started here and ended here, by PID.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::process::Stdio;

use chat_client::Error;
use chat_proto::*;
use chat_testkit::*;
use tokio::process::{Child, Command};
use tokio::time::timeout;

on_every_backend!(
    sigkill_mid_stream_loses_nothing_acknowledged_and_duplicates_nothing,
    sigterm_tells_clients_and_exits_zero,
);

/// Starts the binary on an ephemeral port; returns it with the address it reported.
async fn spawn_server(db: &TestDb) -> (Child, SocketAddr) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_chat-server"));
    command
        .args([
            "--listen",
            "127.0.0.1:0",
            "--web-listen",
            "127.0.0.1:0",
            "--db",
        ])
        .arg(db.arg())
        .args(["--rate", "100000", "--burst", "100000"])
        .env("RUST_LOG", "warn")
        .stderr(Stdio::null());
    let (child, ready) = spawn_ready(&mut command)
        .await
        .expect("the server binary starts");
    (child, ready.tcp)
}

const MESSAGES: u64 = 3000;

async fn sigkill_mid_stream_loses_nothing_acknowledged_and_duplicates_nothing(db: TestDb) {
    let (mut server, addr) = spawn_server(&db).await;
    let mut alice = logged_in(addr, "alice", true).await;
    drop(logged_in(addr, "bob", true).await);

    // Alice streams DMs to bob with up to 128 in flight; the server dies part-way.
    let mut in_flight: HashMap<RequestId, u64> = HashMap::new();
    let mut acked: BTreeSet<u64> = BTreeSet::new();
    let mut next = 0u64;
    let mut killed = false;
    loop {
        while in_flight.len() < 128 && next < MESSAGES && !killed {
            let request = Request::Send {
                target: user("bob"),
                client_msg_id: ClientMsgId(next),
                text: format!("message {next}"),
            };
            let Ok(id) = alice.send_request(request).await else {
                break;
            };
            in_flight.insert(id, next);
            next += 1;
        }
        if !killed && acked.len() >= 1000 {
            server.start_kill().expect("SIGKILL sent");
            killed = true;
        }
        match alice.next_event().await {
            Ok(Some(ServerMessage::Ok {
                id,
                reply: Reply::Sent { .. },
            })) => {
                if let Some(n) = in_flight.remove(&id) {
                    acked.insert(n);
                }
            }
            Ok(Some(_)) => {}
            Ok(None) => break,
            Err(error @ Error::Timeout(_)) => panic!("the stream moves: {error}"),
            Err(_) => break,
        }
    }
    assert!(killed, "the server was killed mid-stream");
    let _ = server.wait().await;
    assert!(
        acked.len() >= 1000 && (acked.len() as u64) < MESSAGES,
        "acknowledged {}",
        acked.len()
    );

    // Restarted on the same database: alice resends everything, acknowledged or not.
    let (mut server, addr) = spawn_server(&db).await;
    let mut alice = logged_in(addr, "alice", false).await;
    for n in 0..MESSAGES {
        alice
            .send_text(user("bob"), n, &format!("message {n}"))
            .await
            .expect("stored");
    }
    let bob = logged_in(addr, "bob", false).await;
    let mut seen: HashMap<u64, usize> = HashMap::new();
    for event in bob.events() {
        if let ServerMessage::Message(m) = event {
            *seen.entry(m.client_msg_id.0).or_default() += 1;
        }
    }
    for n in &acked {
        assert!(seen.contains_key(n), "acknowledged message {n} was lost");
    }
    assert!(
        seen.values().all(|&count| count == 1),
        "a message was delivered twice"
    );
    assert_eq!(seen.len() as u64, MESSAGES, "every message exactly once");
    server.start_kill().expect("stopped");
    let _ = server.wait().await;
}

async fn sigterm_tells_clients_and_exits_zero(db: TestDb) {
    let (mut server, addr) = spawn_server(&db).await;
    let mut alice = logged_in(addr, "alice", true).await;
    let pid = server.id().expect("running");
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    until_shut_down(&mut alice).await;
    let status = timeout(WAIT, server.wait())
        .await
        .expect("exits in time")
        .expect("waits");
    assert!(status.success(), "exit status {status:?}");
}
