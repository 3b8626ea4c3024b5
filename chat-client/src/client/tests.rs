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
        Self::with(false, Some("correct horse"))
    }

    /// A person at a terminal, with no password configured.
    fn person() -> Self {
        Self::with(true, None)
    }

    fn with(interactive: bool, password: Option<&str>) -> Self {
        Self::on(&["127.0.0.1:7878"], interactive, password)
    }

    /// A client of the nodes at `servers`.
    fn on(servers: &[&str], interactive: bool, password: Option<&str>) -> Self {
        let settings = Settings {
            servers: servers.iter().map(|s| (*s).to_owned()).collect(),
            device: "laptop".into(),
            password: password.map(Into::into),
            client_name: "test".into(),
            linger: Duration::from_millis(200),
            interactive,
        };
        Self {
            client: Client::with_seed(settings, 7),
            now: Instant::now(),
        }
    }

    /// A client connected to a server whose default room is `room`.
    fn welcomed(room: &str) -> Self {
        Self::new().welcome(room)
    }

    fn welcome(mut self, room: &str) -> Self {
        let h = &mut self;
        assert_eq!(
            h.drain(),
            [Output::Connect {
                after: Duration::ZERO,
                server: 0,
            }]
        );
        h.client.handle_connected(h.now);
        assert!(matches!(
            &h.drain()[..],
            [Output::Send(ClientMessage::Hello(_))]
        ));
        h.client.handle_message(welcome(room), h.now);
        let interactive = h.client.settings.interactive;
        let connected = Output::Print(Event::Connected {
            server: "127.0.0.1:7878".into(),
        });
        assert_eq!(
            h.drain(),
            if interactive { vec![connected] } else { vec![] }
        );
        self
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
        ErrorCode::BadCredentials,
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
    let [_, Output::Connect { after, server: 0 }] = &outputs[..] else {
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
    assert_eq!(
        outputs[0],
        Output::Print(Event::Reconnected {
            server: "127.0.0.1:7878".into()
        })
    );
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
        let Output::Connect { after, server: 0 } = output else {
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
    h.client.handle_keys("hel", h.now);
    assert_eq!(h.drain(), [typing(true)]);
    h.now += Duration::from_secs(1);
    h.client.handle_keys("hel", h.now);
    assert_eq!(h.drain(), [], "not refreshed within 3 s");
    h.now += TYPING_REFRESH;
    h.client.handle_keys("hel", h.now);
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

fn prints(outputs: &[Output]) -> Vec<&Event> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Print(event) => Some(event),
            _ => None,
        })
        .collect()
}

fn requests(outputs: &[Output]) -> Vec<(RequestId, &Request)> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Send(ClientMessage::Request { id, request }) => Some((*id, request)),
            _ => None,
        })
        .collect()
}

/// Logged in as alice from a terminal (password asked for and typed).
fn person_logged_in(room: &str) -> Harness {
    let mut h = Harness::person().welcome(room);
    h.line("/login alice");
    h.drain();
    h.client.handle_password(Some("correct horse"), h.now);
    let id = h.sent_request();
    h.reply(id, Reply::Session(session("alice")));
    h.client.handle_message(ServerMessage::CaughtUp, h.now);
    h.drain();
    h
}

// Issue 14, defect 7: 300 lines from a script failed 201 with "too many requests".
#[test]
fn requests_are_paced_to_the_servers_rate_limit() {
    let mut h = Harness::logged_in("lobby");
    for i in 0..30 {
        h.line(&format!("line {i}"));
    }
    // The welcome allows 10 a second with a burst of 10: 9 at once (a margin under both), and
    // the login took one.
    assert_eq!(requests(&h.drain()).len(), 8);
    let mut sent = 8;
    let start = h.now;
    while sent < 30 {
        let next = h
            .client
            .poll_timeout()
            .expect("a timer for the paced requests");
        assert!(next > h.now);
        h.now = next;
        h.client.handle_timeout(h.now);
        sent += requests(&h.drain()).len();
    }
    let took = h.now - start;
    // 22 more at 9 a second.
    assert!(took >= Duration::from_millis(2400), "{took:?}");
    assert!(took <= Duration::from_millis(2500), "{took:?}");
}

#[test]
fn a_rate_limited_request_is_sent_again_after_the_wait() {
    let mut h = Harness::logged_in("lobby");
    h.line("hello");
    let outputs = h.drain();
    let [(id, request)] = requests(&outputs)[..] else {
        panic!("{outputs:?}");
    };
    let request = request.clone();
    let error = ErrorReply::new(
        ErrorCode::RateLimited {
            retry_after_ms: 250,
        },
        "too many requests",
    );
    h.client
        .handle_message(ServerMessage::Err { id, error }, h.now);
    assert_eq!(h.drain(), [], "not failed, not yet sent again");
    assert!(!h.client.failed());
    h.advance(Duration::from_millis(249));
    assert_eq!(h.drain(), []);
    h.advance(Duration::from_millis(1));
    let outputs = h.drain();
    let [(again, resent)] = requests(&outputs)[..] else {
        panic!("{outputs:?}");
    };
    assert_ne!(again, id);
    assert_eq!(
        *resent, request,
        "the same message, client message id included"
    );
}

// Issue 14, defect 4.
#[test]
fn a_person_is_asked_for_a_password_only_for_a_valid_name() {
    let mut h = Harness::person().welcome("lobby");
    h.line("/login al!ce");
    let outputs = h.drain();
    assert!(
        matches!(prints(&outputs)[..], [Event::Failed(text)] if text.contains("not a username")),
        "{outputs:?}"
    );
    assert!(!h.client.asking_password());
    h.line("/register al ice");
    let outputs = h.drain();
    assert!(
        matches!(prints(&outputs)[..], [Event::Failed(text)] if text.starts_with("usage: /register NAME")),
        "the second word is not taken as a password: {outputs:?}"
    );
    assert!(requests(&outputs).is_empty());
}

#[test]
fn a_short_password_is_asked_again_and_registration_confirms_it() {
    let mut h = Harness::person().welcome("lobby");
    h.line("/register alice");
    assert!(matches!(
        prints(&h.drain())[..],
        [Event::AskPassword { prompt, confirm_next: true }] if prompt == "new password for alice"
    ));
    h.client.handle_password(Some("short"), h.now);
    let outputs = h.drain();
    assert!(matches!(
        prints(&outputs)[..],
        [Event::Notice(_), Event::AskPassword { .. }]
    ));
    // Still asking: a line typed now is the password, never a message.
    assert!(h.client.asking_password());
    h.line("long enough");
    assert!(matches!(
        prints(&h.drain())[..],
        [Event::AskPassword { prompt, confirm_next: false }] if prompt == "the password for alice again"
    ));
    h.client.handle_password(Some("long enougH"), h.now);
    assert!(matches!(
        prints(&h.drain())[..],
        [Event::Notice(text), Event::AskPassword { .. }] if text.contains("differ")
    ));
    h.client.handle_password(Some("long enough"), h.now);
    h.client.handle_password(Some("long enough"), h.now);
    let outputs = h.drain();
    assert!(matches!(
        requests(&outputs)[..],
        [(_, Request::Register { username, password, .. })] if username == "alice" && password == "long enough"
    ));
    // Later, the password typed at the chat prompt by mistake is not posted.
    let id = requests(&outputs)[0].0;
    h.reply(id, Reply::Session(session("alice")));
    h.drain();
    h.line("long enough");
    let outputs = h.drain();
    assert!(requests(&outputs).is_empty(), "{outputs:?}");
    assert!(matches!(prints(&outputs)[..], [Event::Failed(text)] if text.contains("password")));
}

#[test]
fn a_password_prompt_can_be_cancelled() {
    let mut h = Harness::person().welcome("lobby");
    h.line("/login alice");
    h.drain();
    h.client.handle_password(None, h.now);
    assert!(matches!(prints(&h.drain())[..], [Event::Notice(_)]));
    assert!(!h.client.asking_password());
}

// Issue 14, defect 3.
#[test]
fn a_person_is_told_at_once_that_the_server_is_unreachable() {
    let mut h = Harness::person();
    h.drain();
    h.client.handle_connect_failed("connection refused", h.now);
    h.drain();
    h.line("/login alice");
    let outputs = h.drain();
    assert!(
        matches!(prints(&outputs)[..], [Event::Failed(text)] if text.starts_with("not connected")),
        "{outputs:?}"
    );
    assert!(!h.client.asking_password());
    h.line("/help");
    assert!(matches!(prints(&h.drain())[..], [Event::Help(_)]));
    h.line("/quit");
    assert_eq!(h.drain(), [Output::Exit(0)]);
}

#[test]
fn quitting_does_not_wait_for_queued_lines() {
    let mut h = Harness::logged_in("lobby");
    h.line("/rooms");
    h.drain();
    h.line("/users");
    h.client.handle_quit(h.now);
    assert_eq!(h.drain(), [Output::Exit(0)]);
}

// Issue 14, defect 5.
#[test]
fn typing_is_never_announced_for_commands_and_ends_with_a_discarded_draft() {
    let mut h = Harness::logged_in("lobby");
    let typing = |active| {
        Output::Send(ClientMessage::Typing {
            target: Target::Room("lobby".into()),
            active,
        })
    };
    for line in ["/", "/s", "/sw", "/switch bob"] {
        h.client.handle_keys(line, h.now);
    }
    assert_eq!(h.drain(), []);
    h.client.handle_keys("draft", h.now);
    assert_eq!(h.drain(), [typing(true)]);
    h.client.handle_keys("", h.now);
    assert_eq!(h.drain(), [typing(false)], "ended at once, not after 5 s");
}

#[test]
fn others_typing_is_a_state_reported_on_change_and_expiring() {
    let mut h = Harness::logged_in("lobby");
    let relay = |active| ServerMessage::Typing {
        user: "bob".into(),
        target: Target::Room("lobby".into()),
        active,
    };
    h.client.handle_message(relay(true), h.now);
    assert!(matches!(
        prints(&h.drain())[..],
        [Event::Typing { active: true, .. }]
    ));
    // Refreshes every 3 s change nothing shown.
    for _ in 0..5 {
        h.advance(Duration::from_secs(3));
        h.client.handle_message(relay(true), h.now);
        assert_eq!(h.drain(), []);
    }
    assert_eq!(h.client.typists(&Target::Room("lobby".into())), ["bob"]);
    // Silence ends it.
    h.advance(TYPING_SHOWN);
    assert!(matches!(
        prints(&h.drain())[..],
        [Event::Typing { active: false, .. }]
    ));
    assert!(h.client.typists(&Target::Room("lobby".into())).is_empty());
    // A message from the typist ends it too.
    h.client.handle_message(relay(true), h.now);
    h.drain();
    h.client
        .handle_message(ServerMessage::Message(message(9, "bob", "done")), h.now);
    let outputs = h.drain();
    assert!(matches!(
        prints(&outputs)[..],
        [Event::Typing { active: false, .. }, Event::Message { .. }]
    ));
}

#[test]
fn own_messages_are_pending_until_stored() {
    let mut h = person_logged_in("lobby");
    h.line("hello");
    let outputs = h.drain();
    assert!(matches!(
        prints(&outputs)[..],
        [Event::Own { message, status: Delivery::Pending }] if message.text == "hello" && message.from == "alice"
    ));
    let id = requests(&outputs)[0].0;
    h.reply(
        id,
        Reply::Sent {
            id: MessageId(5),
            sent_at: 77,
        },
    );
    assert!(matches!(
        prints(&h.drain())[..],
        [Event::Own { message, status: Delivery::Stored }] if message.id == MessageId(5) && message.sent_at == 77
    ));
}

// Issue 14, defect 8.
#[test]
fn a_new_nick_is_announced_where_the_user_is() {
    let mut h = person_logged_in("lobby");
    h.line("/nick Alice A.");
    let id = h.sent_request();
    h.reply(id, Reply::Done);
    let outputs = h.drain();
    assert!(matches!(
        requests(&outputs)[..],
        [(_, Request::Send { target: Target::Room(room), text, .. })] if room == "lobby" && text == "/me is now known as Alice A."
    ));
    h.line("/me waves");
    assert!(matches!(
        requests(&h.drain())[..],
        [(_, Request::Send { text, .. })] if text == "/me waves"
    ));
}

// Issue 14, defect 4: the server ends a connection that has not logged in within 30 s, so a
// password is often typed while the client reconnects.
#[test]
fn a_password_typed_while_reconnecting_logs_in_once_connected() {
    let mut h = Harness::person().welcome("lobby");
    h.line("/login alice");
    h.drain();
    h.client.handle_message(
        ServerMessage::Error(ErrorReply::new(ErrorCode::Timeout, "no login in time")),
        h.now,
    );
    h.client.handle_disconnect(h.now);
    h.drain();
    h.client.handle_password(Some("correct horse"), h.now);
    assert!(requests(&h.drain()).is_empty(), "nothing to send it on");
    h.client.handle_connected(h.now);
    h.drain();
    h.client.handle_message(welcome("lobby"), h.now);
    let outputs = h.drain();
    assert!(
        matches!(requests(&outputs)[..], [(_, Request::Login { username, .. })] if username == "alice"),
        "{outputs:?}"
    );
}

/// Logged in as alice on a version-2 server, with these unread counts before `CaughtUp`.
fn logged_in_v2(room: &str, counts: Vec<UnreadCount>) -> Harness {
    let mut h = Harness::new();
    h.drain();
    h.client.handle_connected(h.now);
    h.drain();
    let ServerMessage::Welcome(mut welcome) = welcome(room) else {
        unreachable!("a welcome");
    };
    welcome.version = 2;
    h.client
        .handle_message(ServerMessage::Welcome(welcome), h.now);
    h.line("/login alice");
    let id = h.sent_request();
    h.reply(id, Reply::Session(session("alice")));
    h.client
        .handle_message(ServerMessage::Unread(counts.clone()), h.now);
    h.client.handle_message(ServerMessage::CaughtUp, h.now);
    let out = h.drain();
    assert!(prints(&out).contains(&&Event::Unread(counts)), "{out:?}");
    h
}

#[test]
fn read_marks_up_to_the_newest_message_seen_and_only_forward() {
    let lobby = Target::Room("lobby".into());
    let mut h = logged_in_v2(
        "lobby",
        vec![UnreadCount {
            target: lobby.clone(),
            read_up_to: MessageId(3),
            unread: 2,
            latest: MessageId(5),
        }],
    );
    // What the counts said is newest.
    h.line("/read");
    let out = h.drain();
    let [(id, request)] = requests(&out)[..] else {
        panic!("{out:?}");
    };
    assert_eq!(
        request,
        &Request::MarkRead {
            target: lobby.clone(),
            up_to: MessageId(5)
        }
    );
    h.reply(id, Reply::Done);
    assert_eq!(
        prints(&h.drain()),
        [&Event::MarkedRead {
            target: lobby.clone(),
            up_to: MessageId(5),
            asked: true
        }]
    );
    // Nothing newer: nothing asked.
    h.line("/read");
    assert_eq!(
        h.drain(),
        [Output::Print(Event::Notice(
            "nothing new to mark read in #lobby".into()
        ))]
    );
    // A message arrives; a front end marks it read without a line typed.
    h.client
        .handle_message(ServerMessage::Message(message(7, "bob", "hi")), h.now);
    h.drain();
    h.client.mark_read(lobby.clone(), h.now);
    let out = h.drain();
    let [(id, request)] = requests(&out)[..] else {
        panic!("{out:?}");
    };
    assert_eq!(
        request,
        &Request::MarkRead {
            target: lobby.clone(),
            up_to: MessageId(7)
        }
    );
    h.reply(id, Reply::Done);
    assert_eq!(
        prints(&h.drain()),
        [&Event::MarkedRead {
            target: lobby.clone(),
            up_to: MessageId(7),
            asked: false
        }]
    );
    // Another device read further: shown, and nothing left to mark here.
    h.client.handle_message(
        ServerMessage::ReadMarker {
            target: lobby.clone(),
            up_to: MessageId(9),
        },
        h.now,
    );
    assert_eq!(
        prints(&h.drain()),
        [&Event::ReadElsewhere {
            target: lobby.clone(),
            up_to: MessageId(9)
        }]
    );
    h.client.mark_read(lobby, h.now);
    assert_eq!(h.drain(), []);
}

#[test]
fn search_asks_a_page_and_shows_the_hits() {
    let mut h = logged_in_v2("lobby", Vec::new());
    h.line("/search --before 50 deploy friday");
    let out = h.drain();
    let [(id, request)] = requests(&out)[..] else {
        panic!("{out:?}");
    };
    assert_eq!(
        request,
        &Request::Search {
            text: "deploy friday".into(),
            before: Some(MessageId(50)),
            limit: SEARCH_PAGE
        }
    );
    let hit = message(42, "bob", "deploy on friday");
    h.reply(
        id,
        Reply::SearchResults {
            messages: vec![hit.clone()],
            more: false,
        },
    );
    assert_eq!(
        prints(&h.drain()),
        [&Event::Found {
            text: "deploy friday".into(),
            messages: vec![hit],
            more: false,
            me: Some("alice".into())
        }]
    );
}

#[test]
fn read_and_search_need_a_version_2_server() {
    let mut h = Harness::logged_in("lobby");
    for line in ["/read", "/search hi"] {
        h.line(line);
        assert_eq!(
            h.drain(),
            [Output::Print(Event::Failed(
                "this server does not speak protocol version 2".into()
            ))]
        );
    }
}

// ===== several servers (issue 12) =====

const NODES: [&str; 3] = ["10.0.0.1:7878", "10.0.0.2:7878", "10.0.0.3:7878"];

/// The only `Connect` among `outputs`: its wait and server.
fn connect(outputs: &[Output]) -> (Duration, usize) {
    let connects: Vec<(Duration, usize)> = outputs
        .iter()
        .filter_map(|o| match o {
            Output::Connect { after, server } => Some((*after, *server)),
            _ => None,
        })
        .collect();
    match connects[..] {
        [one] => one,
        _ => panic!("expected one Connect: {outputs:?}"),
    }
}

#[test]
fn failed_attempts_move_to_the_next_server_at_once_and_back_off_once_per_round() {
    let mut h = Harness::on(&NODES, false, None);
    assert_eq!(
        h.drain(),
        [Output::Connect {
            after: Duration::ZERO,
            server: 0
        }]
    );
    // The first round: each address reported once, the next tried at once, the back-off only
    // after the last.
    let mut base = MIN_BACKOFF * 2;
    for (i, node) in NODES.iter().enumerate() {
        assert_eq!(h.client.server(), *node);
        h.client.handle_connect_failed("refused", h.now);
        let outputs = h.drain();
        assert!(
            matches!(&prints(&outputs)[..], [Event::Unreachable { server, error }] if server == node && error == "refused"),
            "{outputs:?}"
        );
        let (after, server) = connect(&outputs);
        assert_eq!(server, (i + 1) % NODES.len());
        if i + 1 < NODES.len() {
            assert_eq!(after, Duration::ZERO, "no back-off within a round");
        } else {
            assert!(after >= base / 2 && after <= base * 3 / 2, "{after:?}");
        }
    }
    // Later rounds: nothing more reported; the back-off doubles once per round.
    for _round in 0..6 {
        base = (base * 2).min(MAX_BACKOFF);
        for i in 0..NODES.len() {
            h.client.handle_connect_failed("refused", h.now);
            let outputs = h.drain();
            assert!(prints(&outputs).is_empty(), "{outputs:?}");
            let (after, server) = connect(&outputs);
            assert_eq!(server, (i + 1) % NODES.len());
            if i + 1 < NODES.len() {
                assert_eq!(after, Duration::ZERO);
            } else {
                assert!(
                    after >= base / 2 && after <= base * 3 / 2,
                    "{after:?} for {base:?}"
                );
            }
        }
    }
    assert_eq!(base, MAX_BACKOFF);
}

#[test]
fn a_dead_first_server_is_passed_over_for_a_live_one() {
    let mut h = Harness::on(&NODES[..2], true, None);
    h.drain();
    h.client.handle_connect_failed("connection refused", h.now);
    assert_eq!(connect(&h.drain()), (Duration::ZERO, 1));
    h.client.handle_connected(h.now);
    h.drain();
    h.client.handle_message(welcome("lobby"), h.now);
    assert_eq!(
        h.drain(),
        [Output::Print(Event::Connected {
            server: NODES[1].into()
        })]
    );
    assert_eq!(h.client.server(), NODES[1]);
}

#[test]
fn a_silent_server_is_passed_over_too() {
    let mut h = Harness::on(&NODES[..2], false, None);
    h.drain();
    h.client.handle_connected(h.now);
    h.drain();
    h.advance(HANDSHAKE_TIMEOUT);
    let outputs = h.drain();
    assert_eq!(outputs[0], Output::Close);
    assert_eq!(connect(&outputs), (Duration::ZERO, 1));
}

#[test]
fn a_lost_node_fails_over_to_the_next_resuming_and_resending_with_the_same_ids() {
    let mut h = Harness::on(&NODES, false, Some("correct horse")).welcome("lobby");
    h.line("/login alice");
    let id = h.sent_request();
    h.reply(id, Reply::Session(session("alice")));
    h.client.handle_message(ServerMessage::CaughtUp, h.now);
    h.drain();
    h.line("one");
    h.line("two");
    let sent = h.drain();
    assert_eq!(requests(&sent).len(), 2);
    // The first is stored; the second is in flight when node 0 dies.
    let [(first, _), _] = requests(&sent)[..] else {
        panic!("{sent:?}");
    };
    h.reply(
        first,
        Reply::Sent {
            id: MessageId(5),
            sent_at: 1,
        },
    );
    h.drain();

    h.client.handle_disconnect(h.now);
    let outputs = h.drain();
    assert_eq!(outputs[0], Output::Print(Event::Reconnecting));
    let (after, server) = connect(&outputs);
    assert_eq!(server, 1, "the next node");
    assert!(after >= MIN_BACKOFF / 2 && after <= MIN_BACKOFF * 3 / 2);
    // Node 1 is dead too: node 2 at once, node 0 (the lost one) last.
    h.client.handle_connect_failed("refused", h.now);
    let outputs = h.drain();
    assert!(prints(&outputs).is_empty(), "reported once: {outputs:?}");
    assert_eq!(connect(&outputs), (Duration::ZERO, 2));

    h.client.handle_connected(h.now);
    h.drain();
    h.client.handle_message(welcome("lobby"), h.now);
    let resume = match &h.drain()[..] {
        [Output::Send(ClientMessage::Request {
            id,
            request: Request::Resume { token, .. },
        })] if token == "token" => *id,
        other => panic!("expected a resume: {other:?}"),
    };
    h.reply(resume, Reply::Session(session("alice")));
    let outputs = h.drain();
    assert_eq!(
        outputs[0],
        Output::Print(Event::Reconnected {
            server: NODES[2].into()
        })
    );
    // Only the unanswered message goes again, byte for byte.
    assert_eq!(outputs[1..], [sent[1].clone()]);
    assert_eq!(h.client.server(), NODES[2]);

    // Lost again: node 0 next (round robin from the one that worked), at the shortest wait.
    h.client.handle_disconnect(h.now);
    let (after, server) = connect(&h.drain());
    assert_eq!(server, 0);
    assert!(after <= MIN_BACKOFF * 3 / 2);
}
