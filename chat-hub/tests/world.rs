//! Chat behaviour, scripted against the state machine in a simulated world (virtual clock,
//! in-memory storage model). Each test acts, then asserts exactly what every client received.

use chat_hub::sim::{World, PASSWORD};
use chat_hub::Config;
use chat_proto::*;

fn room(name: &str) -> Target {
    Target::Room(name.into())
}

fn user(name: &str) -> Target {
    Target::User(name.into())
}

/// `(from, target, text)` of every chat message in `events`.
fn texts(events: &[ServerMessage]) -> Vec<(String, Target, String)> {
    events
        .iter()
        .filter_map(|e| match e {
            ServerMessage::Message(m) => Some((m.from.clone(), m.target.clone(), m.text.clone())),
            _ => None,
        })
        .collect()
}

fn chat(from: &str, target: Target, text: &str) -> (String, Target, String) {
    (from.into(), target, text.into())
}

fn code(result: Result<Reply, ErrorReply>) -> ErrorCode {
    match result {
        Err(e) => e.code,
        Ok(reply) => panic!("expected an error, got {reply:?}"),
    }
}

fn register_request(name: &str, password: &str) -> Request {
    Request::Register {
        username: name.into(),
        password: password.into(),
        device: "d".into(),
    }
}

// ===== handshake and accounts =====

#[test]
fn hello_is_required_first_and_versions_are_negotiated() {
    let mut w = World::default();
    let s = w.open();
    w.send(s, ClientMessage::Ping { nonce: 3 });
    assert_eq!(w.drain(s), [ServerMessage::Pong { nonce: 3 }]);
    w.send(
        s,
        ClientMessage::Ack {
            up_to: MessageId(1),
        },
    );
    assert!(
        matches!(&w.drain(s)[..], [ServerMessage::Error(e)] if e.code == ErrorCode::BadRequest)
    );
    assert!(w.is_closed(s));

    let s = w.open();
    w.send(
        s,
        ClientMessage::Hello(Hello {
            min_version: 3,
            max_version: 5,
            client: "future".into(),
        }),
    );
    assert!(matches!(
        &w.drain(s)[..],
        [ServerMessage::Error(ErrorReply {
            code: ErrorCode::UnsupportedVersion { min: 1, max: 2 },
            ..
        })]
    ));
    assert!(w.is_closed(s));
}

#[test]
fn requests_need_a_login() {
    let mut w = World::default();
    let s = w.connect();
    assert_eq!(
        code(w.request(s, Request::ListUsers)),
        ErrorCode::NotAuthenticated
    );
    assert_eq!(
        code(w.request(s, Request::Join { room: "x".into() })),
        ErrorCode::NotAuthenticated
    );
}

#[test]
fn usernames_are_unique_without_case_and_validated() {
    let mut w = World::default();
    w.register("Alice");
    let s = w.connect();
    assert_eq!(
        code(w.request(s, register_request("alice", PASSWORD))),
        ErrorCode::UsernameTaken
    );
    assert_eq!(
        code(w.request(s, register_request("9lives", PASSWORD))),
        ErrorCode::InvalidName
    );
    assert_eq!(
        code(w.request(s, register_request("bob", "short"))),
        ErrorCode::WeakPassword
    );
    // Login is case-insensitive and reports the registered spelling.
    let reply = w.request(
        s,
        Request::Login {
            username: "ALICE".into(),
            password: PASSWORD.into(),
            device: "d".into(),
        },
    );
    assert!(matches!(reply, Ok(Reply::Session(session)) if session.user == "Alice"));
}

#[test]
fn bad_credentials_look_the_same_and_are_rate_limited() {
    let mut w = World::default();
    w.register("alice");
    let s = w.connect();
    let login = |name: &str, password: &str| Request::Login {
        username: name.into(),
        password: password.into(),
        device: "d".into(),
    };
    let unknown = w.request(s, login("nobody", PASSWORD)).unwrap_err();
    let wrong = w.request(s, login("alice", "wrong password")).unwrap_err();
    assert_eq!(
        (&unknown.code, &unknown.message),
        (&wrong.code, &wrong.message)
    );
    assert_eq!(wrong.code, ErrorCode::BadCredentials);
    // Three failures from one place (counting the one above): the next attempt from there
    // must wait, even with the right password...
    for _ in 0..2 {
        assert_eq!(
            code(w.request(s, login("alice", "wrong password"))),
            ErrorCode::BadCredentials
        );
    }
    assert!(matches!(
        code(w.request(s, login("alice", PASSWORD))),
        ErrorCode::RateLimited { retry_after_ms } if retry_after_ms > 0
    ));
    // ...but the real user elsewhere is not locked out...
    let elsewhere = w.connect_from("192.0.2.7".parse().expect("an address"));
    assert!(matches!(
        w.request(elsewhere, login("alice", PASSWORD)),
        Ok(Reply::Session(_))
    ));
    // ...and once the back-off has passed, the right password works from here too.
    w.advance(Config::default().login_backoff_base_ms);
    assert!(matches!(
        w.request(s, login("alice", PASSWORD)),
        Ok(Reply::Session(_))
    ));
}

#[test]
fn login_deadline_closes_idle_connections() {
    let mut w = World::default();
    let s = w.connect();
    let logged_in = w.register("alice");
    w.advance(Config::default().login_timeout_ms);
    assert!(matches!(&w.drain(s)[..], [ServerMessage::Error(e)] if e.code == ErrorCode::Timeout));
    assert!(w.is_closed(s));
    assert!(!w.is_closed(logged_in));
}

#[test]
fn resume_with_token_and_logout_revokes_it() {
    let mut w = World::default();
    let s = w.connect();
    let Ok(Reply::Session(session)) = w.request(
        s,
        Request::Register {
            username: "alice".into(),
            password: PASSWORD.into(),
            device: "phone".into(),
        },
    ) else {
        panic!("register failed");
    };
    w.expect_caught_up(s);
    w.disconnect(s);

    let resume = |device: &str| Request::Resume {
        token: session.token.clone(),
        device: device.into(),
    };
    let s = w.connect();
    assert_eq!(
        code(w.request(s, resume("laptop"))),
        ErrorCode::BadCredentials,
        "wrong device"
    );
    let Ok(Reply::Session(again)) = w.request(s, resume("phone")) else {
        panic!("resume failed");
    };
    assert_eq!(
        (again.token.as_str(), again.token_expires_at),
        (session.token.as_str(), session.token_expires_at)
    );
    w.expect_caught_up(s);
    assert_eq!(w.request(s, Request::Logout), Ok(Reply::Done));
    assert_eq!(
        code(w.request(s, Request::ListUsers)),
        ErrorCode::NotAuthenticated
    );
    assert_eq!(
        code(w.request(s, resume("phone"))),
        ErrorCode::BadCredentials,
        "revoked"
    );
}

#[test]
fn tokens_expire() {
    let mut w = World::default();
    let s = w.connect();
    let Ok(Reply::Session(session)) = w.request(s, register_request("alice", PASSWORD)) else {
        panic!("register failed");
    };
    w.advance(Config::default().token_ttl_ms);
    let s = w.connect();
    let resume = Request::Resume {
        token: session.token,
        device: "d".into(),
    };
    assert_eq!(code(w.request(s, resume)), ErrorCode::BadCredentials);
}

// ===== direct messages and devices =====

#[test]
fn direct_messages_reach_every_device_but_the_sending_one() {
    let mut w = World::default();
    let alice = w.register("alice");
    let bob = w.register("bob");
    let (bob_phone, _) = w.login("bob", "phone");
    let (alice_phone, _) = w.login("alice", "phone");
    w.drain(alice);
    w.drain(bob);

    w.say(alice, user("bob"), "hi bob");
    let expected = vec![chat("alice", user("bob"), "hi bob")];
    assert_eq!(texts(&w.drain(bob)), expected);
    assert_eq!(texts(&w.drain(bob_phone)), expected);
    assert_eq!(
        texts(&w.drain(alice_phone)),
        expected,
        "own message on another device"
    );
    assert_eq!(w.drain(alice), [], "not echoed to the sending connection");
}

#[test]
fn direct_message_to_unknown_user_fails() {
    let mut w = World::default();
    let alice = w.register("alice");
    let send = Request::Send {
        target: user("nobody"),
        client_msg_id: ClientMsgId(1),
        text: "hello?".into(),
    };
    assert_eq!(code(w.request(alice, send)), ErrorCode::NoSuchUser);
}

#[test]
fn sizes_are_enforced() {
    let mut w = World::default();
    let alice = w.register("alice");
    let send = |text: String| Request::Send {
        target: room("general"),
        client_msg_id: ClientMsgId(1),
        text,
    };
    let max = Config::default().max_text_len;
    assert_eq!(
        code(w.request(alice, send("x".repeat(max + 1)))),
        ErrorCode::TooLarge
    );
    assert_eq!(
        code(w.request(alice, send(String::new()))),
        ErrorCode::BadRequest
    );
    assert!(matches!(
        w.request(alice, send("x".repeat(max))),
        Ok(Reply::Sent { .. })
    ));
}

#[test]
fn requests_are_rate_limited_per_connection() {
    let mut w = World::default();
    let alice = w.register("alice");
    let burst = Config::default().request_burst;
    // Registering took one token.
    for _ in 1..burst {
        assert!(w.request(alice, Request::ListRooms).is_ok());
    }
    assert!(matches!(
        code(w.request(alice, Request::ListRooms)),
        ErrorCode::RateLimited { retry_after_ms: 20 }
    ));
    w.advance(20);
    assert!(w.request(alice, Request::ListRooms).is_ok());
}

// ===== rooms =====

#[test]
fn everyone_is_in_general() {
    let mut w = World::default();
    let alice = w.register("alice");
    let bob = w.register("bob");
    assert!(matches!(
        &w.drain(alice)[..],
        [ServerMessage::Member { room, user, event: MemberEvent::Joined }] if room == "general" && user == "bob"
    ));
    w.say(bob, room("#General"), "hello all");
    assert_eq!(
        texts(&w.drain(alice)),
        [chat("bob", room("general"), "hello all")]
    );
}

#[test]
fn rooms_are_isolated() {
    let mut w = World::default();
    let alice = w.register("alice");
    let bob = w.register("bob");
    let carol = w.register("carol");
    assert!(
        matches!(w.request(alice, Request::Join { room: "#rust".into() }), Ok(Reply::Room(r)) if r.name == "rust" && r.members == 1)
    );
    assert!(w
        .request(
            bob,
            Request::Join {
                room: "rust".into()
            }
        )
        .is_ok());
    assert!(w
        .request(carol, Request::Join { room: "go".into() })
        .is_ok());
    for s in [alice, bob, carol] {
        w.drain(s);
    }
    w.say(alice, room("rust"), "borrowck!");
    w.say(carol, room("go"), "goroutines!");
    assert_eq!(
        texts(&w.drain(bob)),
        [chat("alice", room("rust"), "borrowck!")]
    );
    assert_eq!(w.drain(alice), []);
    assert_eq!(w.drain(carol), []);
    let send = Request::Send {
        target: room("go"),
        client_msg_id: ClientMsgId(99),
        text: "sneaky".into(),
    };
    assert_eq!(code(w.request(alice, send)), ErrorCode::NotAMember);
}

#[test]
fn join_leave_invite_and_notices() {
    let mut w = World::default();
    let alice = w.register("alice");
    let bob = w.register("bob");
    let carol = w.register("carol");
    w.request(
        alice,
        Request::CreateRoom {
            room: "secret".into(),
            invite_only: true,
        },
    )
    .unwrap();
    assert_eq!(
        code(w.request(
            alice,
            Request::CreateRoom {
                room: "Secret".into(),
                invite_only: false
            }
        )),
        ErrorCode::RoomExists
    );
    assert_eq!(
        code(w.request(
            bob,
            Request::Join {
                room: "secret".into()
            }
        )),
        ErrorCode::Forbidden
    );
    assert_eq!(
        code(w.request(
            bob,
            Request::Invite {
                room: "secret".into(),
                user: "carol".into()
            }
        )),
        ErrorCode::Forbidden,
        "an invite-only room's name is public; only members act in it"
    );
    for s in [alice, bob, carol] {
        w.drain(s);
    }
    assert_eq!(
        w.request(
            alice,
            Request::Invite {
                room: "secret".into(),
                user: "bob".into()
            }
        ),
        Ok(Reply::Done)
    );
    let invited = ServerMessage::Member {
        room: "secret".into(),
        user: "bob".into(),
        event: MemberEvent::Invited { by: "alice".into() },
    };
    assert_eq!(w.drain(alice), std::slice::from_ref(&invited));
    assert_eq!(w.drain(bob), [invited]);
    assert_eq!(w.drain(carol), []);

    assert_eq!(
        w.request(
            bob,
            Request::Leave {
                room: "secret".into()
            }
        ),
        Ok(Reply::Done)
    );
    let left = ServerMessage::Member {
        room: "secret".into(),
        user: "bob".into(),
        event: MemberEvent::Left,
    };
    assert_eq!(w.drain(alice), std::slice::from_ref(&left));
    assert_eq!(w.drain(bob), [left]);
    assert_eq!(
        code(w.request(
            bob,
            Request::Leave {
                room: "secret".into()
            }
        )),
        ErrorCode::Forbidden
    );
    assert_eq!(
        code(w.request(
            bob,
            Request::Leave {
                room: "nowhere".into()
            }
        )),
        ErrorCode::NoSuchRoom
    );
}

#[test]
fn listings_show_counts_and_status() {
    let mut w = World::default();
    let alice = w.register("alice");
    let bob = w.register("bob");
    w.request(
        bob,
        Request::CreateRoom {
            room: "hidden".into(),
            invite_only: true,
        },
    )
    .unwrap();
    w.request(
        bob,
        Request::Join {
            room: "open".into(),
        },
    )
    .unwrap();
    w.disconnect(bob);
    let Ok(Reply::Rooms(rooms)) = w.request(alice, Request::ListRooms) else {
        panic!("no rooms");
    };
    let rooms: Vec<_> = rooms
        .iter()
        .map(|r| (r.name.as_str(), r.members, r.joined))
        .collect();
    assert_eq!(
        rooms,
        [
            ("general", 2, true),
            ("hidden", 1, false),
            ("open", 1, false)
        ],
        "invite-only rooms are listed (as invite-only) like IRC's +i channels"
    );
    let Ok(Reply::Roster { members, .. }) = w.request(
        alice,
        Request::Who {
            room: "general".into(),
        },
    ) else {
        panic!("no members");
    };
    let members: Vec<_> = members
        .iter()
        .map(|m| (m.status.user.as_str(), m.status.online))
        .collect();
    assert_eq!(members, [("alice", true), ("bob", false)]);
    w.request(
        alice,
        Request::SetDisplayName {
            display_name: "Alice A.".into(),
        },
    )
    .unwrap();
    let Ok(Reply::Users(users)) = w.request(alice, Request::ListUsers) else {
        panic!("no users");
    };
    assert_eq!(
        users[0],
        UserStatus {
            user: "alice".into(),
            display_name: "Alice A.".into(),
            online: true
        }
    );
}

#[test]
fn room_quota_is_enforced() {
    let mut w = World::new(Config {
        max_rooms_per_user: 2,
        ..World::config()
    });
    let alice = w.register("alice");
    w.request(alice, Request::Join { room: "one".into() })
        .unwrap();
    assert_eq!(
        code(w.request(alice, Request::Join { room: "two".into() })),
        ErrorCode::TooManyRooms
    );
}

#[test]
fn membership_survives_a_restart() {
    let mut w = World::default();
    let alice = w.register("alice");
    w.register("bob");
    w.request(
        alice,
        Request::Join {
            room: "rust".into(),
        },
    )
    .unwrap();
    w.restart();
    let (alice, _) = w.login("alice", "alice-1");
    let (bob, _) = w.login("bob", "bob-1");
    w.request(
        bob,
        Request::Join {
            room: "rust".into(),
        },
    )
    .unwrap();
    w.drain(alice);
    w.say(bob, room("rust"), "still here?");
    assert_eq!(
        texts(&w.drain(alice)),
        [chat("bob", room("rust"), "still here?")]
    );
}

// ===== delivery, offline queue, history =====

#[test]
fn offline_messages_are_replayed_in_order_then_caught_up() {
    let mut w = World::default();
    let alice = w.register("alice");
    let bob = w.register("bob");
    w.disconnect(bob);
    w.say(alice, user("bob"), "one");
    w.say(alice, room("general"), "two");
    let (bob, backlog) = w.login("bob", "bob-1");
    assert_eq!(
        texts(&backlog),
        [
            chat("alice", user("bob"), "one"),
            chat("alice", room("general"), "two")
        ]
    );
    // Not acknowledged: replayed again at the next login.
    w.disconnect(bob);
    let (bob, backlog) = w.login("bob", "bob-1");
    assert_eq!(texts(&backlog).len(), 2);
    // Acknowledged: never again on this device.
    let last = match backlog.last() {
        Some(ServerMessage::Message(m)) => m.id,
        other => panic!("{other:?}"),
    };
    w.send(bob, ClientMessage::Ack { up_to: last });
    w.disconnect(bob);
    let (_, backlog) = w.login("bob", "bob-1");
    assert_eq!(texts(&backlog), []);
    // A new device starts where the user's least advanced device is.
    let (_, backlog) = w.login("bob", "tablet");
    assert_eq!(texts(&backlog), []);
}

#[test]
fn backlog_comes_in_bounded_batches() {
    let mut w = World::new(Config {
        backlog_batch: 3,
        request_burst: 100,
        ..World::config()
    });
    let alice = w.register("alice");
    let bob = w.register("bob");
    w.disconnect(bob);
    for i in 0..10 {
        w.say(alice, user("bob"), &format!("m{i}"));
    }
    let (_, backlog) = w.login("bob", "bob-1");
    let got: Vec<String> = texts(&backlog).into_iter().map(|t| t.2).collect();
    assert_eq!(got, (0..10).map(|i| format!("m{i}")).collect::<Vec<_>>());
}

#[test]
fn a_message_stored_during_replay_is_delivered_once() {
    let mut w = World::default();
    let alice = w.register("alice");
    let bob = w.register("bob");
    w.disconnect(bob);
    w.say(alice, user("bob"), "before");
    w.hold_backlogs = true;
    let bob = w.connect();
    let login = Request::Login {
        username: "bob".into(),
        password: PASSWORD.into(),
        device: "bob-1".into(),
    };
    let id = w.send_request(bob, login);
    assert!(matches!(w.take_reply(bob, id), Some(Ok(Reply::Session(_)))));
    // The backlog query ran before this message was stored; its result arrives after.
    w.say(alice, user("bob"), "during");
    assert!(
        matches!(w.drain(bob).as_slice(), [ServerMessage::Unread(_)]),
        "nothing live before the replay, only the unread counts"
    );
    w.hold_backlogs = false;
    w.release_backlogs();
    let backlog = w.expect_caught_up(bob);
    assert_eq!(
        texts(&backlog),
        [
            chat("alice", user("bob"), "before"),
            chat("alice", user("bob"), "during")
        ]
    );
    assert_eq!(w.drain(bob), []);
    w.say(alice, user("bob"), "after");
    assert_eq!(texts(&w.drain(bob)), [chat("alice", user("bob"), "after")]);
}

#[test]
fn nothing_is_acknowledged_or_delivered_before_it_is_stored() {
    let mut w = World::default();
    let alice = w.register("alice");
    let bob = w.register("bob");
    w.drain(alice);
    w.hold_persists = true;
    let send = Request::Send {
        target: user("bob"),
        client_msg_id: ClientMsgId(7),
        text: "durable?".into(),
    };
    let id = w.send_request(alice, send);
    assert_eq!(w.take_reply(alice, id), None);
    assert_eq!(w.drain(bob), []);
    w.release_persists();
    assert!(matches!(
        w.take_reply(alice, id),
        Some(Ok(Reply::Sent { .. }))
    ));
    assert_eq!(
        texts(&w.drain(bob)),
        [chat("alice", user("bob"), "durable?")]
    );
}

/// A client that sends, then asks for history or a search without waiting for `Sent`
/// (pipelining) finds what it sent: the read waits for the persists issued before it. While
/// storage takes no writes, reads do not wait for them.
#[test]
fn a_read_sees_the_writes_pipelined_before_it() {
    let mut w = World::default();
    let alice = w.register("alice");
    w.drain(alice);
    let send = |id, text: &str| Request::Send {
        target: room("general"),
        client_msg_id: ClientMsgId(id),
        text: text.into(),
    };
    let history = || Request::History {
        target: room("general"),
        before: None,
        limit: 10,
    };
    let search = Request::Search {
        text: "pipelined".into(),
        before: None,
        limit: 10,
    };
    w.hold_persists = true;
    let (sent, send_first) = w.numbered(send(1, "pipelined words"));
    let (read, read_history) = w.numbered(history());
    let (found, find) = w.numbered(search);
    w.send_all(alice, [send_first, read_history, find]);
    assert_eq!(
        w.take_reply(alice, read),
        None,
        "answered before the send was stored"
    );
    assert_eq!(w.take_reply(alice, found), None);
    w.release_persists();
    assert!(matches!(
        w.take_reply(alice, sent),
        Some(Ok(Reply::Sent { .. }))
    ));
    let Some(Ok(Reply::Page { messages, .. })) = w.take_reply(alice, read) else {
        panic!("no history");
    };
    let texts: Vec<_> = messages.iter().map(|e| e.message.text.as_str()).collect();
    assert_eq!(texts, ["pipelined words"]);
    let Some(Ok(Reply::SearchResults { messages, .. })) = w.take_reply(alice, found) else {
        panic!("no search results");
    };
    assert_eq!(messages.len(), 1);

    // Storage down: the send stays in flight, the read is answered from what is stored.
    let (_, send_second) = w.numbered(send(2, "not stored yet"));
    w.send_all(alice, [send_second]);
    w.hub.handle_storage_available(false);
    w.run();
    let Ok(Reply::Page { messages, .. }) = w.request(alice, history()) else {
        panic!("no history while storage is down");
    };
    assert_eq!(messages.len(), 1);
    w.hub.handle_storage_available(true);
    w.release_persists();
}

#[test]
fn resends_are_answered_with_the_original_and_delivered_once() {
    let mut w = World::default();
    let alice = w.register("alice");
    let bob = w.register("bob");
    let send = || Request::Send {
        target: user("bob"),
        client_msg_id: ClientMsgId(42),
        text: "once".into(),
    };
    // A resend while the original is still being stored...
    w.hold_persists = true;
    let first = w.send_request(alice, send());
    let second = w.send_request(alice, send());
    w.hold_persists = false;
    w.release_persists();
    let (Some(Ok(a)), Some(Ok(b))) = (w.take_reply(alice, first), w.take_reply(alice, second))
    else {
        panic!("no replies");
    };
    assert_eq!(a, b);
    // ...and after a restart, when only storage remembers it.
    w.restart();
    let (alice, _) = w.login("alice", "alice-1");
    assert_eq!(w.request(alice, send()), Ok(a));
    let (_, backlog) = w.login("bob", "bob-1");
    assert_eq!(texts(&backlog), [chat("alice", user("bob"), "once")]);
    let _ = bob;
}

#[test]
fn history_pages_newest_first_members_only() {
    let mut w = World::default();
    // Version 1's `History` reply (version 2 answers `Page`: chat-hub/tests/edits.rs).
    let alice = w.register_version("alice", 1);
    let bob = w.register("bob");
    w.request(
        alice,
        Request::Join {
            room: "rust".into(),
        },
    )
    .unwrap();
    let ids: Vec<MessageId> = (0..5)
        .map(|i| w.say(alice, room("rust"), &format!("r{i}")))
        .collect();
    let history = |before| Request::History {
        target: room("rust"),
        before,
        limit: 2,
    };
    let Ok(Reply::History {
        messages,
        more: true,
    }) = w.request(alice, history(None))
    else {
        panic!("no page");
    };
    assert_eq!(
        messages.iter().map(|m| m.id).collect::<Vec<_>>(),
        [ids[4], ids[3]]
    );
    let Ok(Reply::History {
        messages,
        more: false,
    }) = w.request(alice, history(Some(ids[1])))
    else {
        panic!("no last page");
    };
    assert_eq!(messages.iter().map(|m| m.id).collect::<Vec<_>>(), [ids[0]]);
    assert_eq!(code(w.request(bob, history(None))), ErrorCode::NotAMember);

    w.say(bob, user("alice"), "dm");
    let Ok(Reply::History { messages, .. }) = w.request(
        alice,
        Request::History {
            target: user("bob"),
            before: None,
            limit: 10,
        },
    ) else {
        panic!("no dm history");
    };
    assert_eq!(
        texts(
            &messages
                .into_iter()
                .map(ServerMessage::Message)
                .collect::<Vec<_>>()
        ),
        [chat("bob", user("alice"), "dm")]
    );
}

// ===== presence and typing =====

#[test]
fn presence_reaches_only_those_who_share_a_conversation() {
    let mut w = World::new(Config {
        default_room: "lobby".into(),
        ..World::config()
    });
    let alice = w.register("alice");
    let bob = w.register("bob");
    w.request(
        alice,
        Request::Leave {
            room: "lobby".into(),
        },
    )
    .unwrap();
    w.request(
        bob,
        Request::Leave {
            room: "lobby".into(),
        },
    )
    .unwrap();
    let carol = w.register("carol");
    w.say(carol, user("alice"), "hi");
    w.advance(5000);
    for s in [alice, bob, carol] {
        w.drain(s);
    }
    w.disconnect(carol);
    w.advance(1000);
    assert_eq!(
        w.drain(alice),
        [ServerMessage::Presence {
            user: "carol".into(),
            online: false
        }]
    );
    assert_eq!(w.drain(bob), [], "bob shares nothing with carol");
}

#[test]
fn quick_reconnects_are_coalesced_away() {
    let mut w = World::default();
    let alice = w.register("alice");
    let bob = w.register("bob");
    w.advance(5000);
    w.drain(alice);
    // Bob's only connection drops and comes back within the coalescing window.
    w.disconnect(bob);
    let (bob, _) = w.login("bob", "bob-1");
    w.advance(5000);
    assert_eq!(w.drain(alice), [], "bob was online before and after");
    // A second device coming and going changes nothing either.
    let (phone, _) = w.login("bob", "phone");
    w.disconnect(phone);
    w.advance(5000);
    assert_eq!(w.drain(alice), []);
    // Gone for good: announced once the window has passed.
    w.disconnect(bob);
    w.advance(500);
    assert_eq!(w.drain(alice), []);
    w.advance(500);
    assert_eq!(
        w.drain(alice),
        [ServerMessage::Presence {
            user: "bob".into(),
            online: false
        }]
    );
}

#[test]
fn large_rooms_carry_no_presence() {
    let mut w = World::new(Config {
        presence_room_limit: 2,
        ..World::config()
    });
    let alice = w.register("alice");
    w.register("bob");
    let carol = w.register("carol");
    w.advance(5000);
    w.drain(alice);
    w.disconnect(carol);
    w.advance(5000);
    assert_eq!(
        w.drain(alice),
        [],
        "#general has 3 members, over the limit of 2"
    );
}

#[test]
fn typing_is_relayed_throttled_and_expires() {
    let mut w = World::default();
    let alice = w.register("alice");
    let bob = w.register("bob");
    let (alice_phone, _) = w.login("alice", "phone");
    w.advance(5000);
    for s in [alice, bob, alice_phone] {
        w.drain(s);
    }
    let typing = |active| ClientMessage::Typing {
        target: room("general"),
        active,
    };
    let notice = |active| ServerMessage::Typing {
        user: "alice".into(),
        target: room("general"),
        active,
    };
    w.send(alice, typing(true));
    assert_eq!(w.drain(bob), [notice(true)]);
    assert_eq!(
        w.drain(alice_phone),
        [],
        "never echoed to the typist's sessions"
    );
    w.advance(1000);
    w.send(alice, typing(true));
    assert_eq!(w.drain(bob), [], "throttled");
    w.advance(2000);
    w.send(alice, typing(true));
    assert_eq!(w.drain(bob), [notice(true)], "relayed again after 3 s");
    w.advance(5999);
    assert_eq!(w.drain(bob), []);
    w.advance(1);
    assert_eq!(
        w.drain(bob),
        [notice(false)],
        "expired 6 s after the last refresh"
    );

    w.send(alice, typing(true));
    w.say(alice, room("general"), "done typing");
    assert_eq!(
        w.drain(bob),
        [
            notice(true),
            ServerMessage::Message(match w.drain(alice_phone).pop() {
                Some(ServerMessage::Message(m)) => m,
                other => panic!("{other:?}"),
            })
        ]
    );
    w.advance(10_000);
    assert_eq!(w.drain(bob), [], "the message ended it: no expiry notice");
    w.send(
        alice,
        ClientMessage::Typing {
            target: user("bob"),
            active: true,
        },
    );
    assert_eq!(
        w.drain(bob),
        [ServerMessage::Typing {
            user: "alice".into(),
            target: user("bob"),
            active: true
        }]
    );
    w.send(
        alice,
        ClientMessage::Typing {
            target: user("bob"),
            active: false,
        },
    );
    assert_eq!(
        w.drain(bob),
        [ServerMessage::Typing {
            user: "alice".into(),
            target: user("bob"),
            active: false
        }]
    );
}

/// Regression (found by the session fuzz target): an id allocated to a resend that storage
/// recognises as a duplicate is never stored, but a new device's position can be taken from
/// it. After a restart new ids must still exceed that position, or the device skips messages.
#[test]
fn ids_stay_above_positions_saved_from_unstored_ids() {
    let mut w = World::default();
    let alice = w.register("alice");
    w.register("bob");
    let send = Request::Send {
        target: user("bob"),
        client_msg_id: ClientMsgId(1),
        text: "once".into(),
    };
    assert!(matches!(
        w.request(alice, send.clone()),
        Ok(Reply::Sent { .. })
    ));
    w.crash();
    // Only storage knows this is a resend: the hub allocates an id that is never stored.
    let (alice, _) = w.login("alice", "alice-1");
    assert!(matches!(w.request(alice, send), Ok(Reply::Sent { .. })));
    // Carol's first device starts at the hub's latest id, the unstored one.
    let carol = w.register("carol");
    w.disconnect(carol);
    w.crash();
    let (bob, _) = w.login("bob", "bob-1");
    w.say(bob, user("carol"), "do you see this?");
    let (_, backlog) = w.login("carol", "carol-1");
    assert_eq!(
        texts(&backlog),
        [chat("bob", user("carol"), "do you see this?")]
    );
}

#[test]
fn large_rooms_tell_only_the_user_concerned_about_membership() {
    let mut w = World::new(Config {
        presence_room_limit: 2,
        ..World::config()
    });
    let alice = w.register("alice");
    let bob = w.register("bob");
    w.drain(alice);
    w.drain(bob);
    // #general now has three members: over the limit of two.
    let carol = w.register("carol");
    assert_eq!(w.drain(alice), [], "not told in a large room");
    assert_eq!(w.drain(bob), []);
    w.register("dave");
    w.drain(alice);
    w.drain(bob);
    w.drain(carol);
    // Still three members after alice leaves: still large.
    w.request(
        alice,
        Request::Leave {
            room: "general".into(),
        },
    )
    .unwrap();
    assert_eq!(
        w.drain(alice),
        [ServerMessage::Member {
            room: "general".into(),
            user: "alice".into(),
            event: MemberEvent::Left
        }]
    );
    assert_eq!(w.drain(bob), []);
}

#[test]
fn a_rejoin_while_the_first_join_is_stored_sees_only_what_follows_it() {
    let mut w = World::default();
    let alice = w.register("alice");
    let bob = w.register("bob");
    let join = || Request::Join {
        room: "#rust".into(),
    };
    w.request(alice, join()).expect("joins");
    w.drain(alice);
    w.drain(bob);
    // Bob joins, leaves and joins again while none of it is stored yet; alice writes to the
    // room between his leave and his second join.
    w.hold_persists = true;
    w.send_request(bob, join());
    w.send_request(
        bob,
        Request::Leave {
            room: "#rust".into(),
        },
    );
    w.send_request(
        alice,
        Request::Send {
            target: room("#rust"),
            client_msg_id: ClientMsgId(1),
            text: "while bob was away".into(),
        },
    );
    w.send_request(bob, join());
    w.hold_persists = false;
    w.release_persists();
    let seen = texts(&w.drain(bob));
    assert!(
        !seen.contains(&chat("alice", room("rust"), "while bob was away")),
        "a message stored while bob was not a member reached him: {seen:?}"
    );
    // His membership is numbered by the second join: he gets what follows it.
    w.say(alice, room("#rust"), "welcome back");
    assert_eq!(
        texts(&w.drain(bob)),
        [chat("alice", room("rust"), "welcome back")]
    );
}

// ===== id blocks =====

/// A user row written straight to storage, as another node (or an earlier run) left it.
fn stored_user(id: u64, name: &str) -> chat_hub::Write {
    chat_hub::Write::CreateUser {
        id: chat_hub::UserId(id),
        name: name.into(),
        password_hash: PASSWORD.into(),
        created_at: 0,
    }
}

/// The ids of the users, conversations and devices storage holds.
fn stored_ids(world: &mut World) -> (Vec<u64>, Vec<u64>, Vec<u64>) {
    let snapshot = world.store.snapshot(world.now.wall);
    (
        snapshot.users.iter().map(|u| u.id.0).collect(),
        snapshot.convs.iter().map(|c| c.id.0).collect(),
        snapshot.devices.iter().map(|d| d.id.0).collect(),
    )
}

#[test]
fn new_ids_come_from_the_hubs_block_and_ids_of_other_blocks_do_not_move_it() {
    let mut world = World::default();
    let own = chat_hub::IdBlock::numbered(6).expect("a block below 2^53");
    let above = chat_hub::IdBlock::numbered(7).expect("a block below 2^53");
    // Rows of other nodes above and below the block, and one of an earlier run in it.
    world.store.apply(vec![
        stored_user(above.first + 5, "far"),
        stored_user(own.first + 41, "earlier"),
        chat_hub::Write::CreateConv {
            id: chat_hub::ConvId(above.first + 9),
            kind: chat_hub::ConvKind::Room {
                name: "elsewhere".into(),
                invite_only: false,
            },
            created_at: 0,
        },
        chat_hub::Write::SetDevice {
            id: chat_hub::DeviceId(above.first + 3),
            user: chat_hub::UserId(above.first + 5),
            name: "far-1".into(),
            cursor: MessageId(0),
            last_seen: 0,
        },
    ]);
    let (users_before, convs_before, devices_before) = stored_ids(&mut world);
    world.store.ids = own;
    world.crash();

    let bob = world.register("bob");
    world.register("carol");
    world.login("bob", "bob-2");
    assert!(matches!(
        world.request(
            bob,
            Request::CreateRoom {
                room: "ours".into(),
                invite_only: false,
            }
        ),
        Ok(Reply::Room(_))
    ));
    world.say(bob, user("carol"), "hi");
    world.say(bob, user("far"), "hello from here");

    let (users, convs, devices) = stored_ids(&mut world);
    let new = |all: Vec<u64>, before: &[u64]| -> Vec<u64> {
        all.into_iter().filter(|id| !before.contains(id)).collect()
    };
    // Users go on above the one of this block; conversations and devices start at the block.
    assert_eq!(new(users, &users_before), [own.first + 42, own.first + 43]);
    assert_eq!(
        new(convs, &convs_before),
        [own.first, own.first + 1, own.first + 2]
    );
    assert_eq!(
        new(devices, &devices_before),
        [own.first, own.first + 1, own.first + 2]
    );
}

#[test]
fn a_used_up_block_refuses_creation_and_never_reuses_an_id() {
    let mut world = World::default();
    world.register("alice");
    world.store.ids = chat_hub::IdBlock {
        first: 100,
        last: 101,
    };
    world.crash();
    // Two ids of each kind fit (alice, her device and the default room are outside the block).
    world.register("bob");
    world.register("carol");
    let dave = world.connect();
    let refused = world.request(dave, register_request("dave", PASSWORD));
    assert_eq!(code(refused.clone()), ErrorCode::Internal);
    let message = refused.unwrap_err().message;
    assert!(message.contains("user id"), "a clear message: {message}");
    // The refusal kept no hold on the name.
    assert_eq!(
        code(world.request(dave, register_request("dave", PASSWORD))),
        ErrorCode::Internal
    );

    // bob's and carol's devices took both device ids: a new device is refused, a known one
    // logs in.
    let third = world.connect();
    let login = |device: &str| Request::Login {
        username: "alice".into(),
        password: PASSWORD.into(),
        device: device.into(),
    };
    assert_eq!(
        code(world.request(third, login("alice-2"))),
        ErrorCode::Internal
    );
    let (alice, _) = world.login("alice", "alice-1");

    // Two rooms take both conversation ids; a third room and a new direct conversation are
    // refused.
    for room in ["first", "second"] {
        let joined = world.request(alice, Request::Join { room: room.into() });
        assert!(matches!(joined, Ok(Reply::Room(_))), "{joined:?}");
    }
    let create = Request::CreateRoom {
        room: "third".into(),
        invite_only: false,
    };
    assert_eq!(code(world.request(alice, create)), ErrorCode::Internal);
    let dm = Request::Send {
        target: user("bob"),
        client_msg_id: ClientMsgId(1),
        text: "hi".into(),
    };
    assert_eq!(code(world.request(alice, dm)), ErrorCode::Internal);

    let (users, convs, devices) = stored_ids(&mut world);
    assert_eq!(users, [1, 100, 101]);
    assert_eq!(convs, [1, 100, 101]);
    assert_eq!(devices, [1, 100, 101]);

    // A new block (a PostgreSQL node's restart) creates again.
    world.store.ids = chat_hub::IdBlock::numbered(1).expect("a block below 2^53");
    world.crash();
    world.register("dave");
    let (users, _, _) = stored_ids(&mut world);
    assert_eq!(users.last(), Some(&(1 << 32)));
}
