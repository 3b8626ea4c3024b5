//! Client failover between nodes (issue 12): two `chat-server` processes on one PostgreSQL
//! database (`CHAT_TEST_POSTGRES`; skipped without it, failed under `CI=true`), a
//! `chat_client::Client` driven by `chat_client::run` over a `Failover` connector given both,
//! and the node it is connected to killed with SIGKILL mid-stream. The nodes run alone, or as
//! a cluster joined through one real nats-server (`--nats`, `--node-id`; skipped without
//! `nats-server`, failed under `CI=true`) with the recipient connected to the surviving node
//! throughout. Processes are started here and ended here, by PID.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use chat_client::{run, Client, Delivery, Event, Failover, Input, Session, Settings, TcpConnector};
use chat_proto::{MessageId, ServerMessage, Target};
use chat_testkit::*;
use tokio::process::{Child, Command};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};
use tokio::time::timeout;

/// Messages alice sends.
const MESSAGES: u64 = 1000;
/// Messages stored before her node is killed.
const BEFORE_KILL: usize = 300;
/// Alice's device.
const DEVICE: &str = "alice-failover";
/// Messages she keeps in flight.
const IN_FLIGHT: usize = 64;

/// Starts a node (the binary) over `db` with its TCP listener on `addr` (port 0: any), joined to
/// `cluster`'s nats-server under its name if given; returns it with its TCP address.
async fn spawn_node(
    db: &TestDb,
    addr: SocketAddr,
    cluster: Option<(&TestNats, &str)>,
) -> (Child, SocketAddr) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_chat-server"));
    command
        .arg("--listen")
        .arg(addr.to_string())
        .args(["--web-listen", "127.0.0.1:0", "--db"])
        .arg(db.arg())
        .args(["--rate", "100000", "--burst", "100000"])
        .env("RUST_LOG", "warn")
        .stderr(Stdio::null());
    if let Some((nats, name)) = cluster {
        command
            .arg("--nats")
            .arg(nats.url())
            .args(["--node-id", name]);
    }
    let (child, ready) = spawn_ready(&mut command)
        .await
        .expect("the server binary starts");
    (child, ready.tcp)
}

/// The next event the client shows, within [`WAIT`].
async fn next(events: &mut UnboundedReceiver<Event>, what: &str) -> Event {
    timeout(WAIT, events.recv())
        .await
        .unwrap_or_else(|_| panic!("no event while waiting for {what}"))
        .unwrap_or_else(|| panic!("the client stopped while waiting for {what}"))
}

/// The number in `message N`.
fn number(text: &str) -> u64 {
    text.strip_prefix("message ")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("not one of alice's: {text:?}"))
}

/// How the two nodes run.
enum Second {
    /// B alone (no bus), started before alice connects.
    Running,
    /// B alone, started once A is dead (the client meanwhile tries both in turn, backing off
    /// per round).
    AfterTheKill,
    /// A and B one cluster through this nats-server, both started before anyone connects; bob
    /// is connected to B during the whole stream.
    Cluster(TestNats),
}

#[tokio::test]
async fn a_client_fails_over_to_a_node_started_once_its_own_died() {
    if let Some(db) = TestDb::postgres().await {
        fail_over(db, Second::AfterTheKill).await;
    }
}

#[tokio::test]
async fn a_client_fails_over_to_the_other_running_node() {
    if let Some(db) = TestDb::postgres().await {
        fail_over(db, Second::Running).await;
    }
}

/// Issue 12: kill -9 of node A of a running cluster while alice streams through it; she fails
/// over to B, and bob, on B all along, receives live every message she was told was stored,
/// exactly once and in increasing id order.
#[tokio::test]
async fn a_cluster_node_killed_mid_stream_loses_and_duplicates_nothing_live() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let Some(nats) = TestNats::start().await else {
        return;
    };
    fail_over(db, Second::Cluster(nats)).await;
}

/// Bob's live stream on B: every chat message but "hello", as `(id, text)` in arrival order,
/// read until every one of alice's [`MESSAGES`] has arrived, then for a while longer so that a
/// duplicate would show. He never acknowledges, so his backlog later holds them all again.
async fn bob_live(mut bob: Session<chat_client::Tcp>) -> Vec<(MessageId, String)> {
    let mut live = Vec::new();
    let mut numbers = std::collections::HashSet::new();
    let mut linger = None;
    loop {
        let wait = linger.map_or(LIVE_WAIT, |until: tokio::time::Instant| {
            until.saturating_duration_since(tokio::time::Instant::now())
        });
        match bob.next_event_within(wait).await {
            Ok(Some(ServerMessage::Message(m))) if m.text != "hello" => {
                numbers.insert(number(&m.text));
                live.push((m.id, m.text));
                if linger.is_none() && numbers.len() as u64 == MESSAGES {
                    linger = Some(tokio::time::Instant::now() + Duration::from_millis(500));
                }
            }
            Ok(Some(_)) => {}
            Ok(None) => panic!("bob's connection to B closed: {:?}", bob.close_reason()),
            Err(_) if linger.is_some() => return live,
            Err(e) => panic!(
                "bob received {} of alice's messages live, then nothing: {e}",
                numbers.len()
            ),
        }
    }
}

/// How long bob may wait for the next live message (B recovers what A committed but never
/// published when it hears of the hole, at the latest when A is declared down).
const LIVE_WAIT: Duration = Duration::from_secs(30);

/// A free port on 127.0.0.1 for a node started later (the client is given its address first).
fn free_addr() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binds");
    listener.local_addr().expect("has an address")
}

/// Alice streams direct messages to bob through a client given nodes `[A, B]`; A is killed
/// with SIGKILL part-way; she must resume on B and every message be stored exactly once.
async fn fail_over(db: TestDb, second: Second) {
    let any = SocketAddr::from(([127, 0, 0, 1], 0));
    let nats = match &second {
        Second::Cluster(nats) => Some(nats),
        Second::Running | Second::AfterTheKill => None,
    };
    let (mut a, a_addr) = spawn_node(&db, any, nats.map(|n| (n, "a"))).await;
    // In a cluster B runs from the start and learns alice, bob, alice's device and their
    // conversation from A. Alone, B loads the directory once, at start: every user and device
    // is known before it starts.
    let (mut b, mut b_addr, mut bob) = match nats {
        Some(nats) => {
            let (b, addr) = spawn_node(&db, any, Some((nats, "b"))).await;
            let bob = logged_in(addr, "bob", true).await;
            (Some(b), addr, Some(bob))
        }
        None => {
            drop(logged_in(a_addr, "bob", true).await);
            (None, free_addr(), None)
        }
    };
    drop(logged_in(a_addr, "alice", true).await);
    let mut alice = Session::connect(a_addr).await.expect("connects");
    alice
        .login("alice", PASSWORD, DEVICE)
        .await
        .expect("alice's device is known");
    // In a cluster, A may not have heard of bob's registration on B yet: retry a moment.
    let deadline = tokio::time::Instant::now() + WAIT;
    while let Err(error) = alice.send_text(user("bob"), u64::MAX, "hello").await {
        assert!(
            nats.is_some() && tokio::time::Instant::now() < deadline,
            "alice cannot write to bob: {error}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(alice);
    if let Some(bob) = &mut bob {
        // B knows alice, her device and the conversation once her first message reaches bob.
        bob.until(text_is("hello"))
            .await
            .expect("bob on B receives alice's hello from A");
        bob.clear_events();
    }
    if matches!(second, Second::Running) {
        let (node, addr) = spawn_node(&db, any, None).await;
        (b, b_addr) = (Some(node), addr);
    }
    let bob_live = bob.map(|bob| tokio::spawn(bob_live(bob)));

    let servers = vec![a_addr.to_string(), b_addr.to_string()];
    let connector =
        Failover::new(servers.iter().cloned().map(TcpConnector).collect()).expect("two servers");
    let settings = Settings {
        servers,
        device: DEVICE.into(),
        password: Some(PASSWORD.into()),
        client_name: "failover-test".into(),
        linger: Duration::from_millis(100),
        interactive: true,
    };
    let (input, lines) = unbounded_channel();
    let (shown, mut events) = unbounded_channel();
    let driver = tokio::spawn(run(Client::new(settings), connector, lines, move |event| {
        let _ = shown.send(event);
    }));
    match next(&mut events, "the connection").await {
        Event::Connected { server } => assert_eq!(server, a_addr.to_string()),
        other => panic!("expected to connect to A first: {other:?}"),
    }
    input
        .send(Input::Line("/login alice".into()))
        .expect("open");
    loop {
        match next(&mut events, "the login").await {
            Event::LoggedIn { user, .. } => break assert_eq!(user, "alice"),
            Event::Failed(error) => panic!("{error}"),
            _ => {}
        }
    }

    // A numbered stream of direct messages to bob, IN_FLIGHT at a time; A dies part-way.
    let mut stored: HashMap<u64, MessageId> = HashMap::new();
    let mut sent = 0u64;
    let mut killed = false;
    let mut reconnected = None;
    while (stored.len() as u64) < MESSAGES {
        while sent < MESSAGES && (sent as usize) < stored.len() + IN_FLIGHT {
            let line = format!("/msg bob message {sent}");
            input.send(Input::Line(line)).expect("open");
            sent += 1;
        }
        if !killed && stored.len() >= BEFORE_KILL {
            let pid = a.id().expect("A runs");
            let status = std::process::Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status()
                .expect("kill runs");
            assert!(status.success(), "SIGKILL sent to A");
            killed = true;
            let _ = timeout(WAIT, a.wait()).await.expect("A is gone");
            if b.is_none() {
                let (node, addr) = spawn_node(&db, b_addr, None).await;
                assert_eq!(addr, b_addr);
                b = Some(node);
            }
        }
        match next(&mut events, "the stream").await {
            Event::Own {
                message,
                status: Delivery::Stored,
            } => {
                let n = number(&message.text);
                let before = stored.insert(n, message.id);
                assert!(before.is_none(), "message {n} was reported stored twice");
            }
            Event::Reconnected { server } => reconnected = Some(server),
            Event::Failed(error) => panic!("a command failed: {error}"),
            _ => {}
        }
    }
    assert!(killed, "A was killed mid-stream");
    assert_eq!(reconnected, Some(b_addr.to_string()), "alice resumed on B");
    input.send(Input::Quit).expect("open");
    let code = timeout(WAIT, driver)
        .await
        .expect("the client stops")
        .expect("no panic");
    assert_eq!(code, 0, "every command succeeded");

    if let Some(bob_live) = bob_live {
        // Bob on B, live: each message once, with the id alice was given, in id order.
        let live = bob_live.await.expect("bob's reader did not panic");
        let mut seen: HashMap<u64, Vec<MessageId>> = HashMap::new();
        for (id, text) in &live {
            seen.entry(number(text)).or_default().push(*id);
        }
        for n in 0..MESSAGES {
            assert_eq!(
                seen.get(&n).map(Vec::as_slice),
                Some(&[stored[&n]][..]),
                "message {n}: delivered live to bob once, with the id alice was told"
            );
        }
        assert_eq!(live.len() as u64, MESSAGES, "nothing else, nothing twice");
        for pair in live.windows(2) {
            assert!(pair[0].0 < pair[1].0, "live out of id order: {pair:?}");
        }
    }

    // Bob's backlog on B: every message exactly once, with the id alice was given.
    let bob = logged_in(b_addr, "bob", false).await;
    let mut seen: HashMap<u64, Vec<MessageId>> = HashMap::new();
    for event in bob.events() {
        if let ServerMessage::Message(m) = event {
            if m.text == "hello" {
                continue;
            }
            assert_eq!(m.target, Target::User("bob".into()));
            seen.entry(number(&m.text)).or_default().push(m.id);
        }
    }
    for n in 0..MESSAGES {
        assert_eq!(
            seen.get(&n).map(Vec::as_slice),
            Some(&[stored[&n]][..]),
            "message {n}: stored once, as alice was told"
        );
    }
    assert_eq!(seen.len() as u64, MESSAGES);
    if let Some(mut b) = b {
        b.start_kill().expect("B stopped");
        let _ = b.wait().await;
    }
}
