//! Idle plain-TCP connections parked without a task: over real TCP on 127.0.0.1, watched
//! through `/metrics` (`chat_connections_parked`), with a park period of a few milliseconds.

use std::time::Duration;

use chat_client::Session;
use chat_core::Config;
use chat_proto::*;
use chat_server::ServerConfig;
use chat_testkit::*;
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::{sleep, timeout, Instant};
use tokio_util::codec::FramedRead;

const PARK_AFTER: Duration = Duration::from_millis(20);

/// A server parking after [`PARK_AFTER`], and its database (kept as long as the server).
async fn start(config: Config) -> (TestServer, TestDb) {
    start_parking_after(config, PARK_AFTER).await
}

async fn start_parking_after(config: Config, park_after: Duration) -> (TestServer, TestDb) {
    let db = TestDb::sqlite();
    let server = ServerConfig {
        park_after: Some(park_after),
        ..ServerConfig::default()
    };
    (TestServer::on(&db, config, server).await, db)
}

/// A gauge's value at `/metrics` (0 if absent).
async fn gauge(server: &TestServer, name: &str) -> f64 {
    let (_, _, text) = http_get(server.web, "/metrics").await;
    metric(&text, name).unwrap_or(0.0)
}

/// Waits until `/metrics` shows `parked` connections parked and `open` TCP connections open.
async fn until_counted(server: &TestServer, parked: f64, open: f64) {
    let deadline = Instant::now() + WAIT;
    loop {
        let now = (
            gauge(server, "chat_connections_parked ").await,
            gauge(server, "chat_connections{transport=\"tcp\"} ").await,
        );
        if now == (parked, open) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "(parked, open) is {now:?}, never ({parked}, {open})"
        );
        // A poll interval, not a wait for time to pass: the loop waits for the gauges.
        sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn parked_connections_are_served_again_by_input_and_by_frames() {
    let (server, _db) = start(config()).await;
    let mut alice = logged_in(server.addr, "alice", true).await;
    let mut bob = logged_in(server.addr, "bob", true).await;
    until_counted(&server, 2.0, 2.0).await;

    // alice's input wakes alice; the message queued for bob wakes bob.
    alice
        .send_text(user("bob"), 1, "to a parked bob")
        .await
        .expect("stored");
    bob.until(text_is("to a parked bob"))
        .await
        .expect("arrives");
    until_counted(&server, 2.0, 2.0).await;
    bob.send_text(user("alice"), 1, "and back")
        .await
        .expect("stored");
    alice.until(text_is("and back")).await.expect("arrives");
    until_counted(&server, 2.0, 2.0).await;

    // A parked connection whose peer leaves is closed, and its session ends.
    drop(alice);
    until_counted(&server, 1.0, 1.0).await;
    assert_eq!(gauge(&server, "chat_sessions_online ").await, 1.0);
    server.stop().await;
}

#[tokio::test]
async fn shutdown_reaches_parked_connections() {
    let (server, _db) = start(config()).await;
    let mut alice = logged_in(server.addr, "alice", true).await;
    until_counted(&server, 1.0, 1.0).await;
    server.stop().await;
    until_shut_down(&mut alice).await;
}

#[tokio::test]
async fn the_keepalive_reaches_parked_connections_and_keeps_them() {
    let config = Config {
        keepalive_interval_ms: 300,
        keepalive_timeout_ms: 300,
        ..config()
    };
    let (server, _db) = start(config).await;
    let mut client = Session::connect(server.addr).await.expect("connects");
    client.set_answer_pings(false);
    for _ in 0..2 {
        until_counted(&server, 1.0, 1.0).await;
        answer_ping(&mut client).await;
    }
    // Not answering: the parked connection is woken to be closed.
    until_counted(&server, 1.0, 1.0).await;
    assert!(matches!(
        client.next_event().await.expect("in time"),
        Some(ServerMessage::Ping { .. })
    ));
    assert!(matches!(
        client.next_event().await.expect("in time"),
        Some(ServerMessage::Error(ErrorReply {
            code: ErrorCode::Timeout,
            ..
        }))
    ));
    assert_eq!(client.next_event().await.expect("in time"), None);
    until_counted(&server, 0.0, 0.0).await;
    server.stop().await;
}

#[tokio::test]
async fn keepalive_traffic_does_not_keep_a_connection_served() {
    // Pings every ~100 ms, answered at once: a connection that counted them as traffic
    // would never see a quiet 300 ms, and never park.
    let config = Config {
        keepalive_interval_ms: 100,
        keepalive_timeout_ms: 1_000,
        ..config()
    };
    let (server, _db) = start_parking_after(config, Duration::from_millis(300)).await;
    let mut client = Session::connect(server.addr).await.expect("connects");
    let answering = tokio::spawn(async move {
        let mut pings = 0;
        while let Ok(Some(event)) = client.next_event().await {
            pings += u32::from(matches!(event, ServerMessage::Ping { .. }));
        }
        pings
    });
    let deadline = Instant::now() + WAIT;
    while gauge(&server, "chat_parkings_total ").await < 3.0 {
        assert!(Instant::now() < deadline, "parked fewer than 3 times");
        sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(
        gauge(&server, "chat_connections{transport=\"tcp\"} ").await,
        1.0,
        "still open"
    );
    server.stop().await;
    assert!(answering.await.expect("answered") >= 3, "pinged meanwhile");
}

#[tokio::test]
async fn a_connection_in_the_middle_of_a_frame_is_not_parked() {
    let (server, _db) = start(config()).await;
    let mut stream = TcpStream::connect(server.addr).await.expect("connects");
    let hello = encode(
        &ClientMessage::Hello(Hello::current("parking-test")),
        DEFAULT_MAX_FRAME_LEN,
    )
    .expect("encodes");
    let (head, payload) = hello.as_bytes().split_at(HEADER_LEN);
    // Only the head: the server's codec is in the middle of a frame.
    stream.write_all(head).await.expect("writes");
    until_counted(&server, 0.0, 1.0).await;
    // Several park periods later it is still served, and the rest of the frame completes it.
    for _ in 0..5 {
        sleep(PARK_AFTER).await;
        until_counted(&server, 0.0, 1.0).await;
    }
    stream.write_all(payload).await.expect("writes");
    let mut frames = FramedRead::new(stream, ClientCodec::new());
    let welcome = timeout(WAIT, frames.next()).await.expect("in time");
    assert!(
        matches!(welcome, Some(Ok(ServerMessage::Welcome(_)))),
        "{welcome:?}"
    );
    until_counted(&server, 1.0, 1.0).await;
    server.stop().await;
}
