//! The web listener over real sockets on 127.0.0.1: WebSocket clients chatting with TCP
//! clients through one server, hostile WebSocket input, the `Origin` check, one connection
//! limit over both listeners, the page's headers, health and metrics.

use chat_client::{ws_with, Session, WsOptions};
use chat_core::Config;
use chat_proto::*;
use chat_server::ServerConfig;
use chat_testkit::*;
use futures_util::{SinkExt, StreamExt};

use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;

async fn start_with(config: Config, server: ServerConfig) -> (TestServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = TestServer::start(&dir.path().join("chat.db"), config, server).await;
    (server, dir)
}

/// A bare `GET` over HTTP/1.1; returns the status line's code, the head and the body.

#[tokio::test]
async fn websocket_and_tcp_clients_chat_through_one_server() {
    let config = Config {
        typing_relay_interval_ms: 100,
        typing_expiry_ms: 300,
        ..config()
    };
    let (server, _dir) = start_with(config, ServerConfig::default()).await;
    let mut web = logged_in_ws(server.web, "webby", true).await;
    let mut cli = logged_in(server.addr, "termy", true).await;
    web.request(Request::Join {
        room: "lobby".into(),
    })
    .await
    .expect("joins");
    cli.request(Request::Join {
        room: "lobby".into(),
    })
    .await
    .expect("joins");

    // A room, both ways.
    web.send_text(room("lobby"), 1, "from the browser")
        .await
        .expect("stored");
    cli.until(text_is("from the browser"))
        .await
        .expect("arrives over TCP");
    cli.send_text(room("lobby"), 1, "from the terminal")
        .await
        .expect("stored");
    web.until(text_is("from the terminal"))
        .await
        .expect("arrives over WebSocket");

    // A direct message.
    cli.send_text(user("webby"), 2, "psst")
        .await
        .expect("stored");
    let got = web.until(text_is("psst")).await.expect("arrives");
    assert!(
        matches!(got, ServerMessage::Message(m) if m.from == "termy" && m.target == user("webby"))
    );

    // Typing, relayed across transports.
    cli.send(ClientMessage::Typing {
        target: user("webby"),
        active: true,
    })
    .await
    .expect("sends");
    web.until(|e| matches!(e, ServerMessage::Typing { user, active: true, .. } if user == "termy"))
        .await
        .expect("typing arrives");

    // Offline delivery: the browser user leaves, the terminal user writes, the browser user
    // comes back on the same device and gets it in the backlog.
    drop(web);
    cli.send_text(user("webby"), 3, "while you were away")
        .await
        .expect("stored");
    let mut back = Session::connect_ws(server.web).await.expect("connects");
    back.login("webby", PASSWORD, "webby-dev")
        .await
        .expect("logs in");
    assert!(
        back.texts().contains(&"while you were away".to_owned()),
        "{:?}",
        back.texts()
    );
    server.stop().await;
}

/// Reads a raw WebSocket until it closes; returns the chat frames received.
async fn frames_until_closed<S>(
    socket: &mut tokio_tungstenite::WebSocketStream<S>,
) -> Vec<ServerMessage>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut frames = Vec::new();
    loop {
        match timeout(WAIT, socket.next()).await.expect("closes in time") {
            Some(Ok(Message::Binary(bytes))) => {
                if let Ok(Some((msg, _))) = decode_frame::<ServerMessage>(&bytes, MAX_FRAME_LEN_CAP)
                {
                    frames.push(msg);
                }
            }
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return frames,
            Some(Ok(_)) => {}
        }
    }
}

fn is_error(frames: &[ServerMessage], code: ErrorCode) -> bool {
    frames
        .iter()
        .any(|f| matches!(f, ServerMessage::Error(ErrorReply { code: c, .. }) if *c == code))
}

#[tokio::test]
async fn hostile_websocket_input_closes_only_that_connection() {
    let (server, _dir) = start_with(config(), ServerConfig::default()).await;
    let mut alice = logged_in_ws(server.web, "alice", true).await;
    let mut bob = logged_in(server.addr, "bob", true).await;
    let max = config().max_frame_len;

    let hostile: Vec<(&str, Message, ErrorCode)> = vec![
        ("text", Message::text("hello"), ErrorCode::BadRequest),
        (
            "garbage",
            Message::binary(vec![0, 0, 0, 3, 0xff, 0xfe, 0xfd]),
            ErrorCode::BadRequest,
        ),
        (
            "huge declared length",
            Message::binary(0x4000_0000u32.to_be_bytes().to_vec()),
            ErrorCode::TooLarge,
        ),
        (
            "oversize message",
            Message::binary(vec![0u8; max + 100]),
            ErrorCode::TooLarge,
        ),
        (
            "two frames in one message",
            Message::binary(
                [
                    encode(&ClientMessage::Ping { nonce: 1 }, max)
                        .expect("encodes")
                        .as_bytes(),
                    encode(&ClientMessage::Ping { nonce: 2 }, max)
                        .expect("encodes")
                        .as_bytes(),
                ]
                .concat(),
            ),
            ErrorCode::BadRequest,
        ),
        (
            "half a frame",
            Message::binary(vec![0, 0, 0, 9, 1]),
            ErrorCode::BadRequest,
        ),
    ];
    for (what, message, code) in hostile {
        let mut raw = chat_client::ws(server.web).await.expect("connects");
        let socket = raw.get_mut();
        // Oversized messages may be cut off while still being written: that is fine.
        let _ = socket.send(message).await;
        let frames = frames_until_closed(socket).await;
        assert!(is_error(&frames, code), "{what}: {frames:?}");
    }

    // Everyone else carries on, on both transports.
    alice
        .send_text(user("bob"), 1, "still here")
        .await
        .expect("stored");
    bob.until(text_is("still here")).await.expect("arrives");
    bob.send_text(user("alice"), 1, "me too")
        .await
        .expect("stored");
    alice.until(text_is("me too")).await.expect("arrives");
    server.stop().await;
}

#[tokio::test]
async fn a_foreign_origin_is_refused_and_the_own_one_accepted() {
    let allowed = ServerConfig {
        allowed_origins: vec!["https://chat.example".into()],
        ..ServerConfig::default()
    };
    let (server, _dir) = start_with(config(), allowed).await;
    let with_origin = |origin: &str| WsOptions {
        addr: server.web,
        tls: None,
        origin: Some(origin.to_owned()),
    };
    let refused = ws_with(&with_origin("http://evil.example")).await;
    assert!(
        matches!(&refused, Err(chat_client::Error::WebSocket(e)) if e.contains("403")),
        "{refused:?}"
    );
    let own = format!("http://{}", server.web);
    for origin in [own.as_str(), "https://chat.example"] {
        let transport = ws_with(&with_origin(origin)).await.expect("accepted");
        Session::handshake(transport, "test")
            .await
            .expect("welcomed");
    }
    server.stop().await;
}

#[tokio::test]
async fn one_connection_limit_covers_both_listeners() {
    let limited = ServerConfig {
        max_connections: 2,
        ..ServerConfig::default()
    };
    let (server, _dir) = start_with(config(), limited).await;
    let _tcp = Session::connect(server.addr).await.expect("first fits");
    let _web = Session::connect_ws(server.web).await.expect("second fits");
    // The third is refused on either listener.
    let refused = Session::connect(server.addr).await;
    assert!(
        matches!(&refused, Err(chat_client::Error::Refused(e)) if e.code == ErrorCode::ServerFull),
        "{refused:?}"
    );
    let refused = chat_client::ws(server.web).await;
    assert!(
        matches!(&refused, Err(chat_client::Error::WebSocket(e)) if e.contains("503")),
        "{refused:?}"
    );
    server.stop().await;
}

#[tokio::test]
async fn the_page_is_served_with_a_strict_content_security_policy() {
    let (server, _dir) = start_with(config(), ServerConfig::default()).await;
    let (code, head, body) = http_get(server.web, "/").await;
    assert_eq!(code, 200, "{head}");
    assert!(
        body.contains("<script type=\"module\" src=\"/app.js\">"),
        "{body}"
    );
    let head = head.to_ascii_lowercase();
    assert!(
        head.contains(
            "content-security-policy: default-src 'none'; script-src 'self'; style-src 'self'"
        ),
        "{head}"
    );
    assert!(!head.contains("unsafe-inline"), "{head}");
    let (code, _, _) = http_get(server.web, "/lib/chat-proto.js").await;
    assert_eq!(code, 200);
    let (code, _, _) = http_get(server.web, "/nope").await;
    assert_eq!(code, 404);
    server.stop().await;
}

// Issue 12: the page fails over to other nodes' `/ws`.
#[tokio::test]
async fn the_page_learns_the_peers_it_may_fail_over_to() {
    let peers = ["ws://127.0.0.1:1/ws", "wss://chat2.example/ws"];
    let with_peers = ServerConfig {
        web_peers: peers.iter().map(|p| (*p).to_owned()).collect(),
        ..ServerConfig::default()
    };
    let (server, _dir) = start_with(config(), with_peers).await;
    let (code, head, body) = http_get(server.web, "/peers").await;
    assert_eq!(code, 200, "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/json"),
        "{head}"
    );
    let json: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(json, serde_json::json!({ "peers": peers }));
    let (_, head, _) = http_get(server.web, "/").await;
    let policy = format!(
        "connect-src 'self' ws://{} {};",
        server.web,
        peers.join(" ")
    );
    assert!(head.contains(&policy), "{head}");
    server.stop().await;

    let (server, _dir) = start_with(config(), ServerConfig::default()).await;
    let (code, _, body) = http_get(server.web, "/peers").await;
    assert_eq!((code, body.trim()), (200, r#"{"peers":[]}"#));
    server.stop().await;
}

/// Every file of the browser client (but its tests) is embedded and served as it is on disk,
/// so a module added to chat-server/web/ cannot be forgotten in the binary.
#[tokio::test]
async fn every_file_of_the_web_client_is_served() {
    let (server, _dir) = start_with(config(), ServerConfig::default()).await;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("web");
    let mut files = Vec::new();
    let mut dirs = vec![root.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("reads web/") {
            let path = entry.expect("an entry").path();
            if path.is_dir() {
                if path.file_name().is_some_and(|n| n != "test") {
                    dirs.push(path);
                }
            } else {
                files.push(path);
            }
        }
    }
    assert!(files.len() >= 10, "{files:?}");
    for file in files {
        let relative = file.strip_prefix(&root).expect("under web/");
        let url = match relative.to_str().expect("a UTF-8 name") {
            "index.html" => "/".to_owned(),
            other => format!("/{other}"),
        };
        let (code, _, body) = http_get(server.web, &url).await;
        assert_eq!(code, 200, "{url}");
        let on_disk = std::fs::read_to_string(&file).expect("reads");
        assert_eq!(body, on_disk, "{url}");
    }
    server.stop().await;
}

#[tokio::test]
async fn health_turns_503_before_the_listeners_close_at_shutdown() {
    let server_config = ServerConfig {
        drain_notice: std::time::Duration::from_secs(2),
        ..ServerConfig::default()
    };
    let (mut server, _dir) = start_with(config(), server_config).await;
    assert_eq!(http_get(server.web, "/healthz").await.0, 200);
    server.begin_stop();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (code, _, body) = http_get(server.web, "/healthz").await;
        if code == 503 {
            assert_eq!(body, "shutting down\n");
            break;
        }
        assert_eq!(code, 200);
        assert!(tokio::time::Instant::now() < deadline, "never 503");
        tokio::task::yield_now().await;
    }
    server.stop().await;
}

#[tokio::test]
async fn health_and_metrics_move_with_traffic() {
    let (server, _dir) = start_with(config(), ServerConfig::default()).await;
    let (code, _, body) = http_get(server.web, "/healthz").await;
    assert_eq!((code, body.as_str()), (200, "ok\n"));

    let sample = |text: &str, name: &str| metric(text, name).unwrap_or(0.0);
    let (_, _, before) = http_get(server.web, "/metrics").await;
    let mut alice = logged_in_ws(server.web, "alice", true).await;
    let mut bob = logged_in(server.addr, "bob", true).await;
    alice
        .send_text(user("bob"), 1, "counted")
        .await
        .expect("stored");
    bob.until(text_is("counted")).await.expect("arrives");
    let mut mallory = Session::connect(server.addr).await.expect("connects");
    let failed = mallory.login("alice", "wrong password", "m").await;
    assert!(failed.is_err());
    let (_, _, after) = http_get(server.web, "/metrics").await;

    assert_eq!(
        sample(&after, "chat_connections{transport=\"ws\"} "),
        1.0,
        "{after}"
    );
    assert_eq!(
        sample(&after, "chat_connections{transport=\"tcp\"} "),
        2.0,
        "{after}"
    );
    assert_eq!(sample(&after, "chat_sessions_online "), 2.0, "{after}");
    for name in [
        "chat_messages_stored_total ",
        "chat_messages_delivered_total{transport=\"tcp\"} ",
        "chat_failed_logins_total ",
        "chat_commits_total ",
        "chat_commit_batch_persists_total ",
    ] {
        assert!(
            sample(&after, name) > sample(&before, name),
            "{name} did not move:\n{before}\n---\n{after}"
        );
    }
    assert!(after.contains("chat_rate_limited_total"), "{after}");
    assert!(
        after.contains("chat_slow_consumer_disconnects_total"),
        "{after}"
    );
    assert!(after.contains("chat_outbox_drops_total"), "{after}");
    assert!(after.contains("chat_commit_seconds_total"), "{after}");
    drop((alice, bob, mallory));
    server.stop().await;
}

#[tokio::test]
async fn websocket_connections_get_the_same_keepalive_and_rate_limits() {
    let config = Config {
        keepalive_interval_ms: 200,
        keepalive_timeout_ms: 200,
        request_rate_per_sec: 1,
        request_burst: 2,
        ..config()
    };
    let (server, _dir) = start_with(config, ServerConfig::default()).await;
    let mut alice = logged_in_ws(server.web, "alice", true).await;
    // The login took one token of the burst; one more request passes, the next is refused.
    alice
        .request(Request::ListRooms)
        .await
        .expect("within the burst");
    let refused = alice.request(Request::ListRooms).await;
    assert!(
        matches!(&refused, Err(chat_client::Error::Refused(e)) if matches!(e.code, ErrorCode::RateLimited { .. })),
        "{refused:?}"
    );

    // A silent WebSocket is pinged, then closed with a timeout error.
    let mut silent = Session::connect_ws(server.web).await.expect("connects");
    silent.set_answer_pings(false);
    let mut events = Vec::new();
    while let Some(event) = silent.next_event().await.expect("in time") {
        events.push(event);
    }
    assert!(
        matches!(events.first(), Some(ServerMessage::Ping { .. })),
        "{events:?}"
    );
    assert!(is_error(&events, ErrorCode::Timeout), "{events:?}");
    server.stop().await;
}

#[tokio::test]
async fn a_websocket_client_that_never_reads_is_cut_off_without_hurting_others() {
    let config = Config {
        request_rate_per_sec: 100_000,
        request_burst: 100_000,
        outbox_soft_bytes: 192 * 1024,
        outbox_hard_bytes: 256 * 1024,
        // Sleepy falls behind, catches up from storage, takes nothing, and is closed.
        stall_timeout_ms: 1000,
        ..config()
    };
    let (server, _dir) = start_with(config, ServerConfig::default()).await;
    let mut alice = logged_in(server.addr, "alice", true).await;
    let mut bob = logged_in_ws(server.web, "bob", true).await;
    // Sleepy logs in over WebSocket, then never reads again. Its receive buffer is small, or
    // the kernel would take the whole flood on its behalf.
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(16 * 1024).expect("buffer size");
    let stream = socket.connect(server.web).await.expect("connects");
    let ws = chat_client::ws_on(stream).await.expect("upgrades");
    let mut sleepy = Session::handshake(ws, "sleepy").await.expect("welcome");
    sleepy
        .register("sleepy", PASSWORD, "sleepy-dev")
        .await
        .expect("registers");
    // Presence is coalesced: let sleepy's coming online be announced before the flood.
    bob.until(|e| matches!(e, ServerMessage::Presence { user, online: true } if user == "sleepy"))
        .await
        .expect("sleepy online");

    let text = "z".repeat(4000);
    let total = 4000u64; // 16 MB toward sleepy: far beyond its bounds and socket buffers.
    let mut window = std::collections::VecDeque::new();
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
        // Bob keeps up over his WebSocket and is never held back by sleepy.
        if i % 64 == 0 {
            bob.until(
                |e| matches!(e, ServerMessage::Message(m) if m.client_msg_id == ClientMsgId(i)),
            )
            .await
            .expect("arrives");
            bob.clear_events();
        }
    }
    bob.until(
        |e| matches!(e, ServerMessage::Message(m) if m.client_msg_id == ClientMsgId(total - 1)),
    )
    .await
    .expect("arrives");

    // Sleepy took nothing for the stall timeout: it is closed (bob sees it go offline), and
    // draining it ends, short of everything.
    bob.until(|e| matches!(e, ServerMessage::Presence { user, online: false } if user == "sleepy"))
        .await
        .expect("sleepy was cut off");
    let mut received = 0u64;
    while let Some(event) = sleepy.next_event().await.expect("in time") {
        received += u64::from(matches!(event, ServerMessage::Message(_)));
    }
    assert!(
        received < total,
        "sleepy was cut off ({received} of {total})"
    );
    server.stop().await;
}
