//! The client's rules as scripts against the state alone: no sockets, no clock, no processes.

use super::*;
use chat_proto::{Limits, RequestId, Session as SessionReply};

/// A client and a virtual clock.
struct Harness {
    client: Client,
    now: Instant,
}

impl Harness {
    fn new() -> Self {
        let settings = Settings {
            server: "127.0.0.1:7878".into(),
            device: "laptop".into(),
            password: Some("correct horse".into()),
            client_name: "test".into(),
            linger: Duration::from_millis(200),
        };
        Self {
            client: Client::with_seed(settings, 7),
            now: Instant::now(),
        }
    }

    /// A client connected to a server whose default room is `room`.
    fn welcomed(room: &str) -> Self {
        let mut h = Self::new();
        assert_eq!(
            h.drain(),
            [Output::Connect {
                after: Duration::ZERO
            }]
        );
        h.client.handle_connected(h.now);
        assert!(matches!(
            &h.drain()[..],
            [Output::Send(ClientMessage::Hello(_))]
        ));
        h.client.handle_message(welcome(room), h.now);
        assert_eq!(h.drain(), []);
        h
    }

    /// Logged in as alice, caught up.
    fn logged_in(room: &str) -> Self {
        let mut h = Self::welcomed(room);
        h.line("/login alice");
        let id = h.sent_request();
        h.reply(id, Reply::Session(session("alice")));
        h.client.handle_message(ServerMessage::CaughtUp, h.now);
        h.drain();
        h
    }

    fn drain(&mut self) -> Vec<Output> {
        std::iter::from_fn(|| self.client.poll_output()).collect()
    }

    fn line(&mut self, line: &str) {
        self.client.handle_line(line, self.now);
    }

    fn reply(&mut self, id: RequestId, reply: Reply) {
        self.client
            .handle_message(ServerMessage::Ok { id, reply }, self.now);
    }

    fn advance(&mut self, by: Duration) {
        self.now += by;
        if self.client.poll_timeout().is_some_and(|at| at <= self.now) {
            self.client.handle_timeout(self.now);
        }
    }

    /// The only output must be one request; returns its id.
    fn sent_request(&mut self) -> RequestId {
        match &self.drain()[..] {
            [Output::Send(ClientMessage::Request { id, .. })] => *id,
            other => panic!("expected one request, got {other:?}"),
        }
    }
}

fn welcome(room: &str) -> ServerMessage {
    ServerMessage::Welcome(Welcome {
        version: 1,
        server: "test".into(),
        // The client does not look at the limits.
        limits: Limits {
            max_frame_len: 1 << 16,
            max_text_len: 1 << 12,
            max_rooms_per_user: 10,
            max_history_page: 10,
            request_rate_per_sec: 10,
            request_burst: 10,
            login_timeout_ms: 1000,
            keepalive_interval_ms: 1000,
            keepalive_timeout_ms: 1000,
        },
        default_room: room.into(),
    })
}

fn session(user: &str) -> SessionReply {
    SessionReply {
        user: user.into(),
        display_name: user.into(),
        token: "token".into(),
        token_expires_at: 0,
    }
}

fn message(id: u64, from: &str, text: &str) -> ChatMessage {
    ChatMessage {
        id: MessageId(id),
        from: from.into(),
        target: Target::Room("lobby".into()),
        sent_at: 0,
        client_msg_id: ClientMsgId(id),
        text: text.into(),
    }
}

fn room_info(name: &str) -> RoomInfo {
    RoomInfo {
        name: name.into(),
        invite_only: false,
        members: 1,
        joined: true,
    }
}

#[test]
fn lines_wait_while_a_request_other_than_a_message_is_unanswered() {
    let mut h = Harness::welcomed("lobby");
    h.line("/login alice");
    h.line("/join #rust");
    h.line("hello rust");
    // Only the login is out: the join waits for it, the text for the join.
    let login = h.sent_request();
    h.reply(login, Reply::Session(session("alice")));
    let outputs = h.drain();
    assert!(
        matches!(&outputs[0], Output::Print(Event::LoggedIn { user, room }) if user == "alice" && room == "lobby")
    );
    let [_, Output::Send(ClientMessage::Request {
        id: join,
        request: Request::Join { room },
    })] = &outputs[..]
    else {
        panic!("the join follows the login: {outputs:?}");
    };
    assert_eq!(room, "rust");
    let join = *join;
    h.reply(join, Reply::Room(room_info("rust")));
    let outputs = h.drain();
    assert!(matches!(
        &outputs[0],
        Output::Print(Event::Joined { created: false, .. })
    ));
    assert!(
        matches!(&outputs[1..], [Output::Send(ClientMessage::Request { request: Request::Send { target, text, .. }, .. })] if *target == Target::Room("rust".into()) && text == "hello rust")
    );
}

#[test]
fn messages_do_not_wait_for_each_other() {
    let mut h = Harness::logged_in("lobby");
    h.line("one");
    h.line("two");
    let outputs = h.drain();
    assert_eq!(outputs.len(), 2, "{outputs:?}");
    assert!(outputs.iter().all(|o| matches!(
        o,
        Output::Send(ClientMessage::Request { request: Request::Send { target, .. }, .. })
            if *target == Target::Room("lobby".into())
    )));
}

#[test]
fn the_default_room_comes_from_the_welcome() {
    let mut h = Harness::logged_in("town-square");
    assert_eq!(
        h.client.current(),
        Some(&Target::Room("town-square".into()))
    );
    h.line("hi");
    assert!(matches!(
        &h.drain()[..],
        [Output::Send(ClientMessage::Request { request: Request::Send { target, .. }, .. })]
            if *target == Target::Room("town-square".into())
    ));
}

#[test]
fn commands_that_fail_set_the_exit_status() {
    let mut h = Harness::welcomed("lobby");
    h.line("/bogus");
    h.line("text before any room");
    let outputs = h.drain();
    assert!(matches!(
        &outputs[..],
        [
            Output::Print(Event::Failed(unknown)),
            Output::Print(Event::Failed(nowhere)),
        ] if unknown.starts_with("unknown command /bogus") && nowhere.starts_with("nowhere to send")
    ));
    h.line("/quit");
    assert_eq!(h.drain(), [Output::Exit(1)]);
    // Nothing after the exit.
    h.line("/rooms");
    assert_eq!(h.drain(), []);
}

#[test]
fn a_refused_request_is_reported() {
    let mut h = Harness::welcomed("lobby");
    h.line("/login alice wrong-password");
    let id = h.sent_request();
    let error = ErrorReply::new(
        chat_proto::ErrorCode::BadCredentials,
        "wrong username, password or token",
    );
    h.client
        .handle_message(ServerMessage::Err { id, error }, h.now);
    assert_eq!(
        h.drain(),
        [Output::Print(Event::Failed(
            "wrong username, password or token".into()
        ))]
    );
    assert!(h.client.failed());
}

#[test]
fn unanswered_requests_are_sent_again_after_a_reconnect_with_their_ids() {
    let mut h = Harness::logged_in("lobby");
    h.line("/msg bob during the outage");
    let outputs = h.drain();
    let [Output::Send(original @ ClientMessage::Request { .. })] = &outputs[..] else {
        panic!("{outputs:?}");
    };
    let original = original.clone();

    h.client.handle_disconnect(h.now);
    let outputs = h.drain();
    assert_eq!(outputs[0], Output::Print(Event::Reconnecting));
    let [_, Output::Connect { after }] = &outputs[..] else {
        panic!("{outputs:?}");
    };
    assert!(
        *after >= MIN_BACKOFF / 2 && *after <= MIN_BACKOFF * 3 / 2,
        "{after:?}"
    );
    // Typed while disconnected: waits.
    h.line("/rooms");
    assert_eq!(h.drain(), []);

    h.client.handle_connected(h.now);
    assert!(matches!(
        &h.drain()[..],
        [Output::Send(ClientMessage::Hello(_))]
    ));
    h.client.handle_message(welcome("lobby"), h.now);
    let resume = match &h.drain()[..] {
        [Output::Send(ClientMessage::Request {
            id,
            request: Request::Resume { token, device },
        })] if token == "token" && device == "laptop" => *id,
        other => panic!("expected a resume: {other:?}"),
    };
    h.reply(resume, Reply::Session(session("alice")));
    let outputs = h.drain();
    assert_eq!(outputs[0], Output::Print(Event::Reconnected));
    // The message again, byte for byte (same request id, same client message id), then the
    // line typed meanwhile.
    assert_eq!(outputs[1], Output::Send(original));
    assert!(
        matches!(
            &outputs[2..],
            [Output::Send(ClientMessage::Request {
                request: Request::ListRooms,
                ..
            })]
        ),
        "{outputs:?}"
    );
}

#[test]
fn a_login_in_flight_is_lost_with_the_connection() {
    let mut h = Harness::welcomed("lobby");
    h.line("/login alice");
    let _ = h.sent_request();
    h.client.handle_disconnect(h.now);
    let outputs = h.drain();
    assert!(outputs.contains(&Output::Print(Event::Failed(
        "the connection dropped during login: try again".into()
    ))));
}

#[test]
fn messages_are_shown_once_and_acknowledged_cumulatively() {
    let mut h = Harness::welcomed("lobby");
    h.line("/login alice");
    let id = h.sent_request();
    h.reply(id, Reply::Session(session("alice")));
    h.drain();
    // The backlog: shown as earlier, not acknowledged one by one.
    for id in [1, 2] {
        h.client
            .handle_message(ServerMessage::Message(message(id, "bob", "old")), h.now);
    }
    let outputs = h.drain();
    assert_eq!(outputs.len(), 2);
    assert!(outputs.iter().all(|o| matches!(
        o,
        Output::Print(Event::Message { earlier: true, me: Some(me), .. }) if me == "alice"
    )));
    h.client.handle_message(ServerMessage::CaughtUp, h.now);
    assert_eq!(
        h.drain(),
        [Output::Send(ClientMessage::Ack {
            up_to: MessageId(2)
        })]
    );
    // A live duplicate is not shown again; a new one is shown and acknowledged.
    h.client
        .handle_message(ServerMessage::Message(message(2, "bob", "old")), h.now);
    assert_eq!(
        h.drain(),
        [Output::Send(ClientMessage::Ack {
            up_to: MessageId(2)
        })]
    );
    h.client
        .handle_message(ServerMessage::Message(message(3, "bob", "new")), h.now);
    let outputs = h.drain();
    assert!(matches!(
        &outputs[..],
        [
            Output::Print(Event::Message { earlier: false, message, .. }),
            Output::Send(ClientMessage::Ack { up_to: MessageId(3) }),
        ] if message.text == "new"
    ));
}

#[test]
fn pings_are_answered_even_before_the_welcome() {
    let mut h = Harness::new();
    h.drain();
    h.client.handle_connected(h.now);
    h.drain();
    h.client
        .handle_message(ServerMessage::Ping { nonce: 9 }, h.now);
    assert_eq!(h.drain(), [Output::Send(ClientMessage::Pong { nonce: 9 })]);
    h.client.handle_message(welcome("lobby"), h.now);
    h.client
        .handle_message(ServerMessage::Ping { nonce: 10 }, h.now);
    assert_eq!(h.drain(), [Output::Send(ClientMessage::Pong { nonce: 10 })]);
}

#[test]
fn failed_connections_back_off_exponentially_up_to_five_seconds() {
    let mut h = Harness::new();
    h.drain();
    h.client.handle_connect_failed("refused", h.now);
    let outputs = h.drain();
    assert!(
        matches!(&outputs[0], Output::Print(Event::Unreachable { error, .. }) if error == "refused")
    );
    let mut base = MIN_BACKOFF * 2;
    let mut delays = vec![outputs[1].clone()];
    for _ in 0..8 {
        h.client.handle_connect_failed("refused", h.now);
        // Reported once only.
        delays.extend(h.drain());
    }
    for output in delays {
        let Output::Connect { after } = output else {
            panic!("{output:?}");
        };
        assert!(
            after >= base / 2 && after <= base * 3 / 2,
            "{after:?} for {base:?}"
        );
        base = (base * 2).min(MAX_BACKOFF);
    }
}

#[test]
fn a_silent_handshake_times_out_and_retries() {
    let mut h = Harness::new();
    h.drain();
    h.client.handle_connected(h.now);
    h.drain();
    h.advance(HANDSHAKE_TIMEOUT);
    let outputs = h.drain();
    assert_eq!(outputs[0], Output::Close);
    assert!(matches!(outputs.last(), Some(Output::Connect { .. })));
}

#[test]
fn typing_is_announced_refreshed_and_ended_after_a_pause() {
    let mut h = Harness::logged_in("lobby");
    let typing = |active| {
        Output::Send(ClientMessage::Typing {
            target: Target::Room("lobby".into()),
            active,
        })
    };
    h.client.handle_keys(true, h.now);
    assert_eq!(h.drain(), [typing(true)]);
    h.now += Duration::from_secs(1);
    h.client.handle_keys(true, h.now);
    assert_eq!(h.drain(), [], "not refreshed within 3 s");
    h.now += TYPING_REFRESH;
    h.client.handle_keys(true, h.now);
    assert_eq!(h.drain(), [typing(true)]);
    h.advance(TYPING_PAUSE);
    assert_eq!(h.drain(), [typing(false)]);
    assert_eq!(h.client.poll_timeout(), None);
}

#[test]
fn finished_input_lingers_then_exits_with_the_status() {
    let mut h = Harness::logged_in("lobby");
    h.line("/rooms");
    let id = h.sent_request();
    h.client.handle_input_end(h.now);
    assert_eq!(h.drain(), []);
    h.reply(id, Reply::Rooms(vec![room_info("lobby")]));
    assert!(matches!(&h.drain()[..], [Output::Print(Event::Rooms(_))]));
    h.advance(Duration::from_millis(100));
    assert_eq!(h.drain(), []);
    h.advance(Duration::from_millis(100));
    assert_eq!(h.drain(), [Output::Exit(0)]);
}

#[test]
fn finished_input_gives_up_on_replies_that_never_come() {
    let mut h = Harness::logged_in("lobby");
    h.line("/rooms");
    let _ = h.sent_request();
    h.client.handle_input_end(h.now);
    h.advance(REPLY_WAIT);
    assert_eq!(
        h.drain(),
        [
            Output::Print(Event::Failed("gave up waiting for replies".into())),
            Output::Exit(1)
        ]
    );
}
