//! The protocol's semantics as docs/PROTOCOL.md states them (its "Semantics" section), one
//! test per rule, against the hub in the simulated world.

use chat_hub::sim::{World, PASSWORD};
use chat_hub::Config;
use chat_proto::*;

fn register(name: &str) -> Request {
    Request::Register {
        username: name.into(),
        password: PASSWORD.into(),
        device: format!("{name}-1"),
    }
}

fn hello() -> ClientMessage {
    ClientMessage::Hello(Hello::current("test"))
}

fn reply_id(msg: &ServerMessage) -> Option<RequestId> {
    match msg {
        ServerMessage::Ok { id, .. } | ServerMessage::Err { id, .. } => Some(*id),
        _ => None,
    }
}

#[test]
fn pipelined_requests_are_handled_in_the_order_sent() {
    let mut w = World::default();
    let s = w.open();
    let (register_id, register) = w.numbered(register("alice"));
    let (join_id, join) = w.numbered(Request::Join {
        room: "rust".into(),
    });
    let (send_id, send) = w.numbered(Request::Send {
        target: Target::Room("rust".into()),
        client_msg_id: ClientMsgId(1),
        text: "hi".into(),
    });
    // Hello, Register, Join and Send in one write: the login is still being hashed when the
    // rest arrives, yet nothing is answered `NotAuthenticated`.
    w.send_all(s, [hello(), register, join, send]);
    let events = w.drain(s);
    assert!(matches!(events[0], ServerMessage::Welcome(_)), "{events:?}");
    let replies: Vec<_> = events.iter().filter_map(reply_id).collect();
    assert_eq!(replies, [register_id, join_id, send_id], "{events:?}");
    assert!(
        events
            .iter()
            .all(|e| !matches!(e, ServerMessage::Err { .. })),
        "{events:?}"
    );
    assert!(events.contains(&ServerMessage::CaughtUp));
}

#[test]
fn a_failed_login_answers_what_was_pipelined_behind_it_as_unauthenticated() {
    let mut w = World::default();
    w.register("alice");
    let s = w.connect();
    let (login_id, login) = w.numbered(Request::Login {
        username: "alice".into(),
        password: "wrong password".into(),
        device: "d".into(),
    });
    let (list_id, list) = w.numbered(Request::ListUsers);
    w.send_all(s, [login, list]);
    let events = w.drain(s);
    let codes: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            ServerMessage::Err { id, error } => Some((*id, error.code.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        codes,
        [
            (login_id, ErrorCode::BadCredentials),
            (list_id, ErrorCode::NotAuthenticated)
        ]
    );
    assert_eq!(w.hub.stats().failed_logins, 1);
    assert_eq!(w.hub.online_count(), 1, "alice's registration session");
}

#[test]
fn at_most_64_messages_wait_behind_a_login() {
    let mut w = World::default();
    let s = w.connect();
    let (_, login) = w.numbered(register("alice"));
    let mut ids = Vec::new();
    let mut msgs = vec![login];
    for _ in 0..70 {
        let (id, msg) = w.numbered(Request::ListRooms);
        ids.push(id);
        msgs.push(msg);
    }
    w.send_all(s, msgs);
    let events = w.drain(s);
    let refused = events
        .iter()
        .filter(|e| matches!(e, ServerMessage::Err { error, .. } if error.code == ErrorCode::BadRequest))
        .count();
    let answered = events
        .iter()
        .filter(|e| {
            matches!(
                e,
                ServerMessage::Ok {
                    reply: Reply::Rooms(_),
                    ..
                }
            )
        })
        .count();
    assert_eq!(
        (answered, refused),
        (64, 6),
        "the rate limit's burst is 100"
    );
}

#[test]
fn register_logs_in_and_a_second_login_is_refused() {
    let mut w = World::default();
    let s = w.connect();
    let reply = w.request(s, register("alice"));
    assert!(matches!(reply, Ok(Reply::Session(_))), "{reply:?}");
    w.expect_caught_up(s);
    let again = w.request(
        s,
        Request::Login {
            username: "alice".into(),
            password: PASSWORD.into(),
            device: "other".into(),
        },
    );
    assert!(
        matches!(&again, Err(e) if e.code == ErrorCode::AlreadyAuthenticated),
        "{again:?}"
    );
}

#[test]
fn the_welcome_names_the_default_room_and_the_keepalive() {
    let config = Config {
        default_room: "Lobby".into(),
        keepalive_interval_ms: 20_000,
        keepalive_timeout_ms: 7_000,
        ..World::config()
    };
    let mut w = World::new(config);
    let s = w.open();
    w.send(s, hello());
    let welcome = match &w.drain(s)[..] {
        [ServerMessage::Welcome(welcome)] => welcome.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(welcome.default_room, "lobby");
    assert_eq!(welcome.limits.keepalive_interval_ms, 20_000);
    assert_eq!(welcome.limits.keepalive_timeout_ms, 7_000);
    // Every new user is a member of it.
    let alice = w.register("alice");
    let rooms = w.request(alice, Request::ListRooms);
    let Ok(Reply::Rooms(rooms)) = rooms else {
        panic!("{rooms:?}")
    };
    assert!(rooms.iter().any(|r| r.name == "lobby" && r.joined));
}

#[test]
fn join_creates_a_missing_room_and_create_refuses_an_existing_one() {
    let mut w = World::default();
    let alice = w.register("alice");
    let joined = w.request(
        alice,
        Request::Join {
            room: "#New".into(),
        },
    );
    assert!(
        matches!(&joined, Ok(Reply::Room(info)) if info.name == "new" && info.members == 1),
        "{joined:?}"
    );
    let create = w.request(
        alice,
        Request::CreateRoom {
            room: "new".into(),
            invite_only: false,
        },
    );
    assert!(matches!(&create, Err(e) if e.code == ErrorCode::RoomExists));
    let who = w.request(
        alice,
        Request::Who {
            room: "nowhere".into(),
        },
    );
    assert!(matches!(&who, Err(e) if e.code == ErrorCode::NoSuchRoom));
}

#[test]
fn names_and_device_ids_follow_the_rules() {
    let mut w = World::default();
    let alice = w.register("alice");
    for bad in ["1room", "-x", "a b", ""] {
        let r = w.request(alice, Request::Join { room: bad.into() });
        assert!(
            matches!(&r, Err(e) if e.code == ErrorCode::InvalidName),
            "{bad}: {r:?}"
        );
    }
    let s = w.connect();
    let long_device = "d".repeat(65);
    let r = w.request(
        s,
        Request::Register {
            username: "bob".into(),
            password: PASSWORD.into(),
            device: long_device,
        },
    );
    assert!(
        matches!(&r, Err(e) if e.code == ErrorCode::InvalidName),
        "{r:?}"
    );
}

#[test]
fn the_rate_limit_counts_requests_not_acks_or_typing() {
    let config = Config {
        request_rate_per_sec: 1,
        request_burst: 3,
        ..World::config()
    };
    let mut w = World::new(config);
    let alice = w.register("alice");
    // Registering took one token; acks, typing and pings take none.
    for _ in 0..50 {
        w.send(
            alice,
            ClientMessage::Ack {
                up_to: MessageId(0),
            },
        );
        w.send(
            alice,
            ClientMessage::Typing {
                target: Target::Room("general".into()),
                active: true,
            },
        );
        w.send(alice, ClientMessage::Ping { nonce: 1 });
    }
    w.drain(alice);
    assert!(w.request(alice, Request::ListRooms).is_ok());
    assert!(w.request(alice, Request::ListUsers).is_ok());
    let limited = w.request(alice, Request::ListRooms);
    assert!(
        matches!(&limited, Err(e) if matches!(e.code, ErrorCode::RateLimited { .. })),
        "{limited:?}"
    );
    assert_eq!(w.hub.stats().rate_limited, 1);
}

#[test]
fn a_reply_comes_before_the_events_it_causes() {
    let mut w = World::default();
    let alice = w.register("alice");
    let bob = w.register("bob");
    w.request(
        alice,
        Request::Join {
            room: "rust".into(),
        },
    )
    .expect("joins");
    w.drain(alice);
    let id = w.send_request(
        bob,
        Request::Join {
            room: "rust".into(),
        },
    );
    let events = w.drain(bob);
    assert!(
        matches!(&events[..], [ServerMessage::Ok { id: i, .. }, ServerMessage::Member { event: MemberEvent::Joined, .. }] if *i == id),
        "{events:?}"
    );
    // Message ids are one sequence across conversations.
    let a = w.say(alice, Target::Room("rust".into()), "one");
    let b = w.say(bob, Target::User("alice".into()), "two");
    let c = w.say(alice, Target::Room("general".into()), "three");
    assert!(a < b && b < c, "{a:?} {b:?} {c:?}");
}

#[test]
fn a_wall_clock_step_moves_no_deadline() {
    let mut w = World::default();
    let alice = w.register("alice");
    let bob = w.register("bob");
    w.advance(5000);
    w.drain(bob);
    let typing = ClientMessage::Typing {
        target: Target::User("bob".into()),
        active: true,
    };
    w.send(alice, typing);
    assert_eq!(w.drain(bob).len(), 1, "typing relayed");
    // The wall clock jumps a day ahead, then back: typing still expires after 6 s of the
    // monotonic clock, no sooner.
    w.step_wall_clock(24 * 3600 * 1000);
    w.advance(10);
    w.step_wall_clock(-2 * 24 * 3600 * 1000);
    w.advance(5900);
    assert!(w.drain(bob).is_empty(), "not expired early");
    w.advance(200);
    assert!(
        matches!(
            &w.drain(bob)[..],
            [ServerMessage::Typing { active: false, .. }]
        ),
        "expired on time"
    );
    // An idle connection is still closed after the login timeout, not before.
    let idle = w.connect();
    w.step_wall_clock(-3600 * 1000);
    w.advance(Config::default().login_timeout_ms - 1);
    assert!(!w.is_closed(idle));
    w.advance(1);
    assert!(w.is_closed(idle));
}

#[test]
fn a_silent_connection_is_pinged_then_closed_and_any_message_is_a_sign_of_life() {
    // The sweep runs every quarter of the shorter period: every 2 s here.
    let config = Config {
        keepalive_interval_ms: 20_000,
        keepalive_timeout_ms: 8_000,
        login_timeout_ms: 3_600_000,
        ..World::config()
    };
    let mut w = World::new(config);
    let s = w.open_from(Some([127, 0, 0, 1].into()));
    let pinged = |w: &mut World| matches!(&w.drain(s)[..], [ServerMessage::Ping { .. }]);

    // The keepalive runs from the connection: a ping may come before the hello.
    w.advance(19_999);
    assert!(w.drain(s).is_empty(), "not before the interval");
    w.advance(1);
    assert!(pinged(&mut w), "pinged after 20 s of silence");

    // Any message answers it (here the hello), and moves the next ping.
    w.advance(5_000);
    w.send(s, hello());
    assert!(matches!(&w.drain(s)[..], [ServerMessage::Welcome(_)]));
    w.advance(16_000);
    let ack = ClientMessage::Ack {
        up_to: MessageId(0),
    };
    w.send(s, ack);
    // Silent from 41 s: due at 61 s, sent by the sweep at 62 s.
    w.advance(20_999);
    assert!(w.drain(s).is_empty(), "the ack was a sign of life");
    w.advance(1);
    assert!(pinged(&mut w), "at most a quarter period late");

    // Unanswered, the ping closes the connection once the timeout has passed.
    w.advance(7_999);
    assert!(!w.is_closed(s));
    w.advance(1);
    assert!(w.is_closed(s));
    let closing = w.drain(s);
    assert!(
        matches!(
            &closing[..],
            [ServerMessage::Error(ErrorReply {
                code: ErrorCode::Timeout,
                ..
            })]
        ),
        "{closing:?}"
    );
}

#[test]
fn in_process_connections_are_never_pinged() {
    let config = Config {
        keepalive_interval_ms: 1_000,
        keepalive_timeout_ms: 1_000,
        ..World::config()
    };
    let mut w = World::new(config);
    let alice = w.register("alice");
    w.drain(alice);
    w.advance(60_000);
    assert!(w.drain(alice).is_empty());
    assert!(!w.is_closed(alice));
    assert_eq!(
        w.hub.poll_timeout(),
        None,
        "no sweep without a network connection"
    );
}
