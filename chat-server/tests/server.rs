//! The server over real TCP on 127.0.0.1, each test with its own ephemeral port and fresh
//! database, on each backend (SQLite; PostgreSQL with `CHAT_TEST_POSTGRES`).

use chat_client::Session;
use chat_core::Config;
use chat_proto::*;
use chat_server::ServerConfig;
use chat_testkit::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

on_every_backend!(
    two_users_exchange_direct_messages,
    rooms_are_isolated,
    offline_direct_messages_arrive_at_next_login_even_after_a_restart,
    typing_is_relayed_and_expires,
    presence_is_pushed,
    bad_input_closes_only_that_connection,
    a_client_that_never_reads_is_cut_off_without_hurting_others,
    connections_over_the_limit_are_refused_clearly,
    silent_connections_are_pinged_then_closed,
    shutdown_tells_clients,
    the_keepalive_runs_from_connect_so_a_ping_may_come_before_hello,
    hello_register_and_join_in_one_write_are_answered_in_order,
);

async fn start(db: &TestDb, config: Config) -> TestServer {
    start_with(db, config, ServerConfig::default()).await
}

async fn start_with(db: &TestDb, config: Config, server: ServerConfig) -> TestServer {
    TestServer::on(db, config, server).await
}

async fn two_users_exchange_direct_messages(db: TestDb) {
    let server = start(&db, config()).await;
    let mut alice = logged_in(server.addr, "alice", true).await;
    let mut bob = logged_in(server.addr, "bob", true).await;
    alice
        .send_text(user("bob"), 1, "hi bob")
        .await
        .expect("stored");
    let got = bob.until(text_is("hi bob")).await.expect("arrives");
    assert!(
        matches!(got, ServerMessage::Message(m) if m.from == "alice" && m.target == user("bob"))
    );
    bob.send_text(user("alice"), 1, "hi alice")
        .await
        .expect("stored");
    alice.until(text_is("hi alice")).await.expect("arrives");
    server.stop().await;
}

async fn rooms_are_isolated(db: TestDb) {
    let server = start(&db, config()).await;
    let mut alice = logged_in(server.addr, "alice", true).await;
    let mut bob = logged_in(server.addr, "bob", true).await;
    let mut carol = logged_in(server.addr, "carol", true).await;
    for (client, name) in [(&mut alice, "rust"), (&mut bob, "rust"), (&mut carol, "go")] {
        client
            .request(Request::Join { room: name.into() })
            .await
            .expect("joins");
    }
    alice
        .send_text(room("rust"), 1, "in rust")
        .await
        .expect("stored");
    carol
        .send_text(room("go"), 1, "in go")
        .await
        .expect("stored");
    bob.until(text_is("in rust")).await.expect("arrives");
    // A marker through #general shows each client has seen everything sent before it.
    alice
        .send_text(room("general"), 2, "marker")
        .await
        .expect("stored");
    for client in [&mut bob, &mut carol] {
        client.until(text_is("marker")).await.expect("arrives");
    }
    assert!(!bob.texts().contains(&"in go".to_string()));
    assert!(!carol.texts().contains(&"in rust".to_string()));
    server.stop().await;
}

async fn offline_direct_messages_arrive_at_next_login_even_after_a_restart(db: TestDb) {
    let server = TestServer::on(&db, config(), ServerConfig::default()).await;
    let mut alice = logged_in(server.addr, "alice", true).await;
    drop(logged_in(server.addr, "bob", true).await);
    alice
        .send_text(user("bob"), 1, "first")
        .await
        .expect("stored");
    let bob = logged_in(server.addr, "bob", false).await;
    assert_eq!(bob.texts(), ["first"]);
    drop(bob);
    alice
        .send_text(user("bob"), 2, "second")
        .await
        .expect("stored");
    server.stop().await;

    let server = TestServer::on(&db, config(), ServerConfig::default()).await;
    let bob = logged_in(server.addr, "bob", false).await;
    assert_eq!(
        bob.texts(),
        ["first", "second"],
        "nothing was acknowledged: both replayed"
    );
    server.stop().await;
}

async fn typing_is_relayed_and_expires(db: TestDb) {
    let config = Config {
        typing_relay_interval_ms: 100,
        typing_expiry_ms: 300,
        ..config()
    };
    let server = start(&db, config).await;
    let mut alice = logged_in(server.addr, "alice", true).await;
    let mut bob = logged_in(server.addr, "bob", true).await;
    let typing = |active| ClientMessage::Typing {
        target: user("bob"),
        active,
    };
    alice.send(typing(true)).await.expect("sends");
    let notice = |active| move |e: &ServerMessage| matches!(e, ServerMessage::Typing { user, active: a, .. } if user == "alice" && *a == active);
    bob.until(notice(true)).await.expect("arrives");
    // Not refreshed: it ends by itself.
    bob.until(notice(false)).await.expect("arrives");
    server.stop().await;
}

async fn presence_is_pushed(db: TestDb) {
    let config = Config {
        presence_coalesce_ms: 50,
        ..config()
    };
    let server = start(&db, config).await;
    let mut alice = logged_in(server.addr, "alice", true).await;
    let bob = logged_in(server.addr, "bob", true).await;
    alice
        .until(|e| matches!(e, ServerMessage::Presence { user, online: true } if user == "bob"))
        .await
        .expect("arrives");
    drop(bob);
    alice
        .until(|e| matches!(e, ServerMessage::Presence { user, online: false } if user == "bob"))
        .await
        .expect("arrives");
    server.stop().await;
}

/// Reads what the server sends until it closes; returns the frames decoded.
async fn read_until_closed(stream: &mut TcpStream) -> Vec<ServerMessage> {
    let mut bytes = Vec::new();
    let _ = timeout(WAIT, stream.read_to_end(&mut bytes))
        .await
        .expect("closed in time");
    let mut frames = Vec::new();
    let mut rest = &bytes[..];
    while let Ok(Some((msg, used))) = decode_frame::<ServerMessage>(rest, DEFAULT_MAX_FRAME_LEN) {
        frames.push(msg);
        rest = &rest[used..];
    }
    frames
}

async fn bad_input_closes_only_that_connection(db: TestDb) {
    let server = start(&db, config()).await;
    let mut alice = logged_in(server.addr, "alice", true).await;
    let mut bob = logged_in(server.addr, "bob", true).await;

    // An oversized length prefix: rejected from the head, with a typed error.
    let mut huge = TcpStream::connect(server.addr).await.expect("connects");
    huge.write_all(&0x4000_0000u32.to_be_bytes())
        .await
        .expect("writes");
    let frames = read_until_closed(&mut huge).await;
    assert!(
        matches!(
            &frames[..],
            [ServerMessage::Error(ErrorReply {
                code: ErrorCode::TooLarge,
                ..
            })]
        ),
        "{frames:?}"
    );

    // A well-framed payload that is not a message.
    let mut garbage = TcpStream::connect(server.addr).await.expect("connects");
    garbage
        .write_all(&[0, 0, 0, 3, 0xff, 0xfe, 0xfd])
        .await
        .expect("writes");
    let frames = read_until_closed(&mut garbage).await;
    assert!(
        matches!(
            &frames[..],
            [ServerMessage::Error(ErrorReply {
                code: ErrorCode::BadRequest,
                ..
            })]
        ),
        "{frames:?}"
    );

    // Everyone else carries on.
    alice
        .send_text(user("bob"), 1, "still here")
        .await
        .expect("stored");
    bob.until(text_is("still here")).await.expect("arrives");
    server.stop().await;
}

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024)
}

async fn a_client_that_never_reads_is_cut_off_without_hurting_others(db: TestDb) {
    let config = Config {
        request_rate_per_sec: 100_000,
        request_burst: 100_000,
        outbox_soft_bytes: 192 * 1024,
        outbox_hard_bytes: 256 * 1024,
        // Sleepy falls behind, is switched to catching up from storage, takes nothing more,
        // and is closed after this long.
        stall_timeout_ms: 1000,
        ..config()
    };
    let server = start(&db, config).await;
    let mut alice = logged_in(server.addr, "alice", true).await;
    let mut bob = logged_in(server.addr, "bob", true).await;
    // Sleepy logs in, then never reads again. Its receive buffer is small, or the kernel
    // would take the whole flood on its behalf (loopback buffers grow to 32 MiB here).
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(16 * 1024).expect("buffer size");
    let stream = socket.connect(server.addr).await.expect("connects");
    let transport = tokio_util::codec::Framed::new(stream, ClientCodec::new());
    let mut sleepy = Session::handshake(transport, "sleepy")
        .await
        .expect("welcome");
    sleepy
        .register("sleepy", PASSWORD, "sleepy-dev")
        .await
        .expect("registers");
    // Presence is coalesced: let sleepy's coming online be announced before the flood, so its
    // going offline is seen.
    bob.until(|e| matches!(e, ServerMessage::Presence { user, online: true } if user == "sleepy"))
        .await
        .expect("sleepy online");

    let before = rss_bytes();
    let text = "z".repeat(4000);
    let total = 4000u64; // 16 MB toward sleepy: far beyond its bounds and socket buffers.
    let mut window = std::collections::VecDeque::new();
    fn sleepy_offline(e: &ServerMessage) -> bool {
        matches!(e, ServerMessage::Presence { user, online: false } if user == "sleepy")
    }
    // Sleepy may be cut off before the flood ends (a slow machine): bob's events are cleared
    // as he keeps up, so its going offline is noted first.
    let mut cut_off = false;
    for i in 0..total {
        let send = Request::Send {
            target: room("general"),
            client_msg_id: ClientMsgId(i),
            text: text.clone(),
        };
        window.push_back(alice.send_request(send).await.expect("sends"));
        if window.len() >= 64 {
            let id = window.pop_front().expect("non-empty");
            alice
                .until(|e| matches!(e, ServerMessage::Ok { id: i, .. } if *i == id))
                .await
                .expect("arrives");
        }
        // Bob keeps up and is never held back by sleepy.
        if i % 64 == 0 {
            bob.until(
                |e| matches!(e, ServerMessage::Message(m) if m.client_msg_id == ClientMsgId(i)),
            )
            .await
            .expect("arrives");
            cut_off |= bob.events().iter().any(sleepy_offline);
            bob.clear_events();
        }
    }
    bob.until(
        |e| matches!(e, ServerMessage::Message(m) if m.client_msg_id == ClientMsgId(total - 1)),
    )
    .await
    .expect("arrives");
    let grown = rss_bytes().saturating_sub(before);
    assert!(
        grown < 12 * 1024 * 1024,
        "server memory grew by {grown} bytes"
    );

    // Sleepy took nothing for the stall timeout: it is closed (bob sees it go offline), and
    // draining it ends in EOF, short of everything.
    if !cut_off {
        bob.until(sleepy_offline).await.expect("sleepy was cut off");
    }
    let mut received = 0u64;
    loop {
        match sleepy.next_event().await {
            Ok(Some(event)) => received += u64::from(matches!(event, ServerMessage::Message(_))),
            Ok(None) => break,
            Err(e) => panic!("after {received}: {e}"),
        }
    }
    assert!(
        received < total,
        "sleepy was cut off ({received} of {total})"
    );
    server.stop().await;
}

async fn connections_over_the_limit_are_refused_clearly(db: TestDb) {
    let server_config = ServerConfig {
        max_connections: 1,
        ..ServerConfig::default()
    };
    let server = start_with(&db, config(), server_config).await;
    let _first = Session::connect(server.addr).await.expect("connects");
    let mut second = TcpStream::connect(server.addr).await.expect("connects");
    let frames = read_until_closed(&mut second).await;
    assert!(
        matches!(
            &frames[..],
            [ServerMessage::Error(ErrorReply {
                code: ErrorCode::ServerFull,
                ..
            })]
        ),
        "{frames:?}"
    );
    server.stop().await;
}

async fn silent_connections_are_pinged_then_closed(db: TestDb) {
    let config = Config {
        keepalive_interval_ms: 200,
        keepalive_timeout_ms: 200,
        ..config()
    };
    let server = start_with(&db, config, ServerConfig::default()).await;
    let mut client = Session::connect(server.addr).await.expect("connects");
    client.set_answer_pings(false);
    answer_ping(&mut client).await;
    assert!(
        matches!(
            client.next_event().await.expect("in time"),
            Some(ServerMessage::Ping { .. })
        ),
        "pinged again"
    );
    // Not answering: closed with a timeout error.
    assert!(matches!(
        client.next_event().await.expect("in time"),
        Some(ServerMessage::Error(ErrorReply {
            code: ErrorCode::Timeout,
            ..
        }))
    ));
    assert_eq!(client.next_event().await.expect("in time"), None);
    server.stop().await;
}

async fn shutdown_tells_clients(db: TestDb) {
    let server = start(&db, config()).await;
    let mut alice = logged_in(server.addr, "alice", true).await;
    server.stop().await;
    until_shut_down(&mut alice).await;
}

async fn the_keepalive_runs_from_connect_so_a_ping_may_come_before_hello(db: TestDb) {
    let config = Config {
        keepalive_interval_ms: 100,
        keepalive_timeout_ms: 100,
        ..config()
    };
    let server = start_with(&db, config, ServerConfig::default()).await;
    // A raw connection that never says hello: pinged, then closed with a timeout error.
    let mut raw = TcpStream::connect(server.addr).await.expect("connects");
    let frames = read_until_closed(&mut raw).await;
    assert!(
        matches!(
            &frames[..],
            [
                ServerMessage::Ping { .. },
                ServerMessage::Error(ErrorReply {
                    code: ErrorCode::Timeout,
                    ..
                })
            ]
        ),
        "{frames:?}"
    );
    server.stop().await;
}

async fn hello_register_and_join_in_one_write_are_answered_in_order(db: TestDb) {
    let server = start(&db, config()).await;
    let mut raw = TcpStream::connect(server.addr).await.expect("connects");
    let messages = [
        ClientMessage::Hello(Hello::current("pipeliner")),
        ClientMessage::Request {
            id: RequestId(1),
            request: Request::Register {
                username: "alice".into(),
                password: "correct horse battery".into(),
                device: "raw".into(),
            },
        },
        ClientMessage::Request {
            id: RequestId(2),
            request: Request::Join {
                room: "rust".into(),
            },
        },
    ];
    let mut bytes = Vec::new();
    for msg in &messages {
        let frame = encode(msg, DEFAULT_MAX_FRAME_LEN).expect("encodes");
        bytes.extend_from_slice(frame.as_bytes());
    }
    raw.write_all(&bytes).await.expect("writes");
    let mut codec = ClientCodec::default();
    let mut buf = bytes::BytesMut::new();
    let mut replies = Vec::new();
    while replies.len() < 2 {
        let msg = loop {
            if let Some(msg) =
                tokio_util::codec::Decoder::decode(&mut codec, &mut buf).expect("decodes")
            {
                break msg;
            }
            let read = timeout(WAIT, raw.read_buf(&mut buf))
                .await
                .expect("in time");
            assert!(read.expect("reads") > 0, "closed early: {replies:?}");
        };
        match msg {
            ServerMessage::Ok { id, .. } => replies.push(Ok(id)),
            ServerMessage::Err { id, error } => replies.push(Err((id, error.code))),
            _ => {}
        }
    }
    assert_eq!(replies, [Ok(RequestId(1)), Ok(RequestId(2))]);
    server.stop().await;
}
