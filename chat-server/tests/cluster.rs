//! Two nodes (the binary, twice) on one PostgreSQL database, joined through one real
//! nats-server (issue 12): what happens on one reaches the other's users live, exactly once
//! and in order, also while nats-server restarts. Needs `CHAT_TEST_POSTGRES` and
//! `nats-server` (each skipped with a note when missing, failed under `CI=true`). Every
//! process is started here and ended here by its PID (`kill_on_drop`).

use std::collections::HashMap;
use std::process::Stdio;
use std::time::Duration;

use chat_client::Session;
use chat_proto::{MessageId, Request, ServerMessage, Target};
use chat_server::ready::Ready;
use chat_testkit::*;
use tokio::process::{Child, Command};

/// A node over `db`, joined to `nats` as `name`; returns it with its TCP address.
async fn node(db: &TestDb, nats: &TestNats, name: &str) -> (Child, std::net::SocketAddr) {
    let (child, ready) = node_ready(db, nats, name).await;
    (child, ready.tcp)
}

/// A node over `db`, joined to `nats` as `name`, with its web listener (metrics).
async fn node_ready(db: &TestDb, nats: &TestNats, name: &str) -> (Child, Ready) {
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
        .arg("--nats")
        .arg(nats.url())
        .args(["--node-id", name])
        .args(["--rate", "100000", "--burst", "100000"])
        .env("RUST_LOG", "warn")
        .kill_on_drop(true)
        .stderr(Stdio::null());
    spawn_ready(&mut command)
        .await
        .expect("the server binary starts")
}

/// PostgreSQL and nats-server, or `None` (skipped) if either is missing.
async fn infrastructure() -> Option<(TestDb, TestNats)> {
    let db = TestDb::postgres().await?;
    let nats = TestNats::start().await?;
    Some((db, nats))
}

/// Every chat message `session` receives, as `(id, text)` in arrival order.
struct Inbox(Vec<(MessageId, String)>);

impl Inbox {
    /// Takes what `session` kept meanwhile, then waits until `last` has arrived.
    async fn until(&mut self, session: &mut Session<chat_client::Tcp>, last: &str) {
        let kept: Vec<ServerMessage> = session.events().to_vec();
        session.clear_events();
        kept.iter().for_each(|e| self.take(e));
        while !self.0.iter().any(|(_, text)| text == last) {
            let event = session
                .next_event_within(WAIT)
                .await
                .unwrap_or_else(|e| panic!("waiting for {last:?}: {e}"))
                .unwrap_or_else(|| panic!("closed while waiting for {last:?}"));
            self.take(&event);
        }
    }

    fn take(&mut self, event: &ServerMessage) {
        if let ServerMessage::Message(m) = event {
            self.0.push((m.id, m.text.clone()));
        }
    }

    /// Each of `texts` received exactly once, and everything received in increasing id order
    /// (a device acknowledges cumulatively: an id below one already received would be
    /// skipped).
    fn exactly_once_in_order(&self, texts: &[String]) {
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for (_, text) in &self.0 {
            *counts.entry(text.as_str()).or_default() += 1;
        }
        for text in texts {
            assert_eq!(
                counts.get(text.as_str()),
                Some(&1),
                "{text:?} once: {:?}",
                self.0
            );
        }
        for pair in self.0.windows(2) {
            assert!(pair[0].0 < pair[1].0, "out of id order: {pair:?}");
        }
    }
}

async fn join(session: &mut Session<chat_client::Tcp>, room: &str) {
    session
        .request(Request::Join { room: room.into() })
        .await
        .expect("joins");
}

#[tokio::test]
async fn rooms_and_direct_messages_cross_nodes_both_ways_exactly_once() {
    let Some((db, nats)) = infrastructure().await else {
        return;
    };
    let (_a, a) = node(&db, &nats, "a").await;
    let (_b, b) = node(&db, &nats, "b").await;
    // Registered on different nodes at the same time: each node learns the other's user.
    let mut alice = logged_in(a, "alice", true).await;
    let mut bob = logged_in(b, "bob", true).await;
    // Joined on A, written to from B (and the other way round).
    join(&mut alice, "rust").await;
    join(&mut bob, "rust").await;
    let mut from_alice = Vec::new();
    let mut from_bob = Vec::new();
    for i in 0..40u64 {
        let text = format!("alice in #rust {i}");
        alice
            .send_text(Target::Room("rust".into()), i + 1, &text)
            .await
            .expect("stored");
        from_alice.push(text);
        let text = format!("bob in #rust {i}");
        bob.send_text(Target::Room("rust".into()), i + 1, &text)
            .await
            .expect("stored");
        from_bob.push(text);
        let text = format!("alice to bob {i}");
        alice
            .send_text(Target::User("bob".into()), 1000 + i, &text)
            .await
            .expect("stored");
        from_alice.push(text);
        let text = format!("bob to alice {i}");
        bob.send_text(Target::User("alice".into()), 1000 + i, &text)
            .await
            .expect("stored");
        from_bob.push(text);
    }
    let mut bobs = Inbox(Vec::new());
    bobs.until(&mut bob, "alice to bob 39").await;
    bobs.exactly_once_in_order(&from_alice);
    let mut alices = Inbox(Vec::new());
    alices.until(&mut alice, "bob to alice 39").await;
    alices.exactly_once_in_order(&from_bob);
}

#[tokio::test]
async fn a_restart_of_nats_loses_and_duplicates_nothing() {
    let Some((db, mut nats)) = infrastructure().await else {
        return;
    };
    let (_a, a) = node(&db, &nats, "a").await;
    let (_b, b_ready) = node_ready(&db, &nats, "b").await;
    let b = b_ready.tcp;
    let mut alice = logged_in(a, "alice", true).await;
    let mut bob = logged_in(b, "bob", true).await;
    join(&mut alice, "rust").await;
    join(&mut bob, "rust").await;
    // Bob must know alice's room membership before she writes: wait for her first message.
    alice
        .send_text(Target::Room("rust".into()), 1, "before")
        .await
        .expect("stored");
    let mut inbox = Inbox(Vec::new());
    inbox.until(&mut bob, "before").await;
    let mut texts = vec!["before".to_string()];
    for i in 0..200u64 {
        if i == 60 {
            nats.kill();
        }
        if i == 120 {
            nats.restart().await;
        }
        let text = format!("message {i}");
        alice
            .send_text(Target::Room("rust".into()), i + 2, &text)
            .await
            .expect("stored: the database is the truth, NATS only notifies");
        texts.push(text);
        if i % 20 == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    // What NATS lost arrives too, read from the database.
    inbox.until(&mut bob, "message 199").await;
    // Anything still to come would be a duplicate: give it a moment to show.
    while let Ok(Some(event)) = bob.next_event_within(Duration::from_millis(300)).await {
        inbox.take(&event);
    }
    inbox.exactly_once_in_order(&texts);
    // Node b says what it recovered, and what it applied from node a.
    let web = b_ready.web.expect("node b serves metrics");
    let (status, _, metrics) = http_get(web, "/metrics").await;
    assert_eq!(status, 200);
    let value =
        |name: &str| metric(&metrics, name).unwrap_or_else(|| panic!("{name} in {metrics}"));
    assert!(value("chat_cluster_recoveries_total") >= 1.0, "{metrics}");
    assert!(
        value("chat_cluster_batches_applied_total") >= 1.0,
        "{metrics}"
    );
    assert!(value("chat_bus_reconnects_total") >= 1.0, "{metrics}");
}

#[tokio::test]
async fn presence_and_typing_cross_nodes_and_a_dead_node_takes_its_users_offline() {
    let Some((db, nats)) = infrastructure().await else {
        return;
    };
    let (mut a_node, a) = node(&db, &nats, "a").await;
    let (_b_node, b) = node(&db, &nats, "b").await;
    let mut bob = logged_in(b, "bob", true).await;
    join(&mut bob, "rust").await;
    let mut alice = logged_in(a, "alice", true).await;
    join(&mut alice, "rust").await;
    // Bob sees alice come online on the other node (her node's heartbeat carries her).
    bob.until(|e| matches!(e, ServerMessage::Presence { user, online: true } if user == "alice"))
        .await
        .expect("alice is online on node a");
    // She types in #rust on a: bob on b is told.
    alice
        .send(chat_proto::ClientMessage::Typing {
            target: Target::Room("rust".into()),
            active: true,
        })
        .await
        .expect("sent");
    bob.until(|e| matches!(e, ServerMessage::Typing { user, active: true, .. } if user == "alice"))
        .await
        .expect("bob sees alice typing");
    // Her node dies: within a few heartbeats she is offline for bob.
    let pid = a_node.id().expect("node a runs");
    let status = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success(), "SIGKILL sent to node a");
    let _ = a_node.wait().await;
    // Three missed heartbeats (2 s each) make a node down: wait longer than usual.
    let mut bob = bob.with_wait(Duration::from_secs(30));
    bob.until(|e| matches!(e, ServerMessage::Presence { user, online: false } if user == "alice"))
        .await
        .expect("alice goes offline with her node");
}

#[tokio::test]
async fn one_name_registered_on_both_nodes_at_once_goes_to_one_and_both_nodes_go_on() {
    let Some((db, nats)) = infrastructure().await else {
        return;
    };
    let (_a_node, a) = node(&db, &nats, "a").await;
    let (_b_node, b) = node(&db, &nats, "b").await;
    for round in 0..5 {
        let name = format!("carol{round}");
        let register = |addr| {
            let name = name.clone();
            async move {
                let mut session = Session::connect(addr).await.expect("connects");
                session
                    .register(&name, PASSWORD, "phone")
                    .await
                    .map(|_| session)
            }
        };
        let (on_a, on_b) = tokio::join!(register(a), register(b));
        assert!(
            on_a.is_ok() != on_b.is_ok(),
            "{name} registered exactly once: a {:?}, b {:?}",
            on_a.as_ref().err(),
            on_b.as_ref().err()
        );
    }
    // Neither node's writer is stuck: each stores a message.
    let mut alice = logged_in(a, "alice", true).await;
    let mut bob = logged_in(b, "bob", true).await;
    alice
        .send_text(Target::Room("general".into()), 1, "still writing on a")
        .await
        .expect("stored on a");
    bob.send_text(Target::Room("general".into()), 1, "still writing on b")
        .await
        .expect("stored on b");
}
