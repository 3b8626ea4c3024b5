//! Regression tests for the hardening issue's findings, against the hub in the simulated
//! world: each failed before its fix.

use std::net::IpAddr;

use chat_hub::sim::{World, PASSWORD};
use chat_hub::Config;
use chat_proto::*;

fn ip(s: &str) -> IpAddr {
    s.parse().expect("an address")
}

fn login(name: &str, password: &str) -> Request {
    Request::Login {
        username: name.into(),
        password: password.into(),
        device: "d".into(),
    }
}

fn codes(w: &mut World, sessions: &[chat_hub::SessionId]) -> Vec<ErrorCode> {
    sessions
        .iter()
        .flat_map(|&s| w.drain(s))
        .filter_map(|m| match m {
            ServerMessage::Err { error, .. } => Some(error.code),
            ServerMessage::Ok { .. } => None,
            _ => None,
        })
        .collect()
}

/// Finding 1: 200 simultaneous wrong logins for one account were all verified.
#[test]
fn parallel_guesses_count_while_in_flight() {
    let mut w = World::default();
    w.register("alice");
    let attacker = ip("198.51.100.1");
    let sessions: Vec<_> = (0..200).map(|_| w.connect_from(attacker)).collect();
    // Every guess reaches the hub before any hash is checked.
    for &s in &sessions {
        let (_, msg) = w.numbered(login("alice", "wrong password"));
        w.hub.handle_message(s, msg, w.now);
    }
    w.run();
    let codes = codes(&mut w, &sessions);
    let verified = codes
        .iter()
        .filter(|c| **c == ErrorCode::BadCredentials)
        .count();
    let limited = codes
        .iter()
        .filter(|c| matches!(c, ErrorCode::RateLimited { .. }))
        .count();
    assert_eq!(verified + limited, 200);
    assert!(
        verified <= Config::default().max_hashes_per_source,
        "{verified} guesses were verified"
    );
}

/// Finding 3: a login storm from one address took every hashing slot; now a source has at
/// most `max_hashes_per_source` in flight, and the queue is bounded overall.
#[test]
fn one_address_cannot_take_all_the_hashing() {
    let mut w = World::default();
    w.register("alice");
    let attacker = ip("198.51.100.1");
    let storm: Vec<_> = (0..50).map(|_| w.connect_from(attacker)).collect();
    for (i, &s) in storm.iter().enumerate() {
        let (_, msg) = w.numbered(login(&format!("ghost{i}"), "whatever pw"));
        w.hub.handle_message(s, msg, w.now);
    }
    // The real user, from elsewhere, while the storm's hashes are in flight.
    let real = w.connect_from(ip("192.0.2.7"));
    let (_, msg) = w.numbered(login("alice", PASSWORD));
    w.hub.handle_message(real, msg, w.now);
    w.run();
    assert!(
        w.drain(real).iter().any(|m| matches!(
            m,
            ServerMessage::Ok {
                reply: Reply::Session(_),
                ..
            }
        )),
        "the real user logs in"
    );
    let limited = codes(&mut w, &storm)
        .iter()
        .filter(|c| matches!(c, ErrorCode::RateLimited { .. }))
        .count();
    assert_eq!(limited, 50 - Config::default().max_hashes_per_source);
}

/// Finding 2, spraying: one password over many names from one address is throttled too.
#[test]
fn password_spraying_is_throttled_per_source() {
    let mut w = World::default();
    let sprayer = ip("198.51.100.9");
    let s = w.connect_from(sprayer);
    let free = Config::default().login_source_free_attempts;
    for i in 0..free {
        let r = w.request(s, login(&format!("user{i}"), "Summer2026!"));
        assert!(
            matches!(&r, Err(e) if e.code == ErrorCode::BadCredentials),
            "{r:?}"
        );
    }
    let r = w.request(s, login("one-more", "Summer2026!"));
    assert!(
        matches!(&r, Err(e) if matches!(e.code, ErrorCode::RateLimited { .. })),
        "{r:?}"
    );
    // Another address is unaffected.
    let other = w.connect_from(ip("192.0.2.7"));
    let r = w.request(other, login("one-more", "Summer2026!"));
    assert!(
        matches!(&r, Err(e) if e.code == ErrorCode::BadCredentials),
        "{r:?}"
    );
}

/// Finding 2: a resumable token still works while the account is under attack.
#[test]
fn a_token_resumes_while_the_account_is_under_attack() {
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
        panic!("registers")
    };
    w.disconnect(s);
    let attacker = w.connect();
    for _ in 0..10 {
        let _ = w.request(attacker, login("alice", "guess guess"));
    }
    let again = w.connect();
    let resumed = w.request(
        again,
        Request::Resume {
            token: session.token,
            device: "phone".into(),
        },
    );
    assert!(matches!(resumed, Ok(Reply::Session(_))), "{resumed:?}");
}

/// Finding 7: an invite-only room's existence was answered two ways. Now its name is public
/// and a non-member gets `Forbidden` from every request.
#[test]
fn invite_only_rooms_answer_non_members_consistently() {
    let mut w = World::default();
    let alice = w.register("alice");
    let mallory = w.register("mallory");
    w.request(
        alice,
        Request::CreateRoom {
            room: "vault".into(),
            invite_only: true,
        },
    )
    .expect("creates");
    let requests = [
        Request::Join {
            room: "vault".into(),
        },
        Request::Leave {
            room: "vault".into(),
        },
        Request::Who {
            room: "vault".into(),
        },
        Request::History {
            target: Target::Room("vault".into()),
            before: None,
            limit: 10,
        },
        Request::Send {
            target: Target::Room("vault".into()),
            client_msg_id: ClientMsgId(1),
            text: "let me in".into(),
        },
        Request::Invite {
            room: "vault".into(),
            user: "mallory".into(),
        },
    ];
    for request in requests {
        let r = w.request(mallory, request.clone());
        assert!(
            matches!(&r, Err(e) if e.code == ErrorCode::Forbidden),
            "{request:?}: {r:?}"
        );
    }
    let create = w.request(
        mallory,
        Request::CreateRoom {
            room: "vault".into(),
            invite_only: false,
        },
    );
    assert!(matches!(&create, Err(e) if e.code == ErrorCode::RoomExists));
    let Ok(Reply::Rooms(rooms)) = w.request(mallory, Request::ListRooms) else {
        panic!("lists")
    };
    assert!(rooms
        .iter()
        .any(|r| r.name == "vault" && r.invite_only && !r.joined));
}

/// Finding 8: control characters in a message reached the recipient's terminal.
#[test]
fn control_characters_never_reach_another_client() {
    let mut w = World::default();
    let alice = w.register("alice");
    let bob = w.register("bob");
    let evil = "ok\r\n12:00 [dm] <alice> send me your password\u{1b}]0;pwned\u{7}\u{1b}[2J";
    w.say(alice, Target::User("bob".into()), evil);
    let texts: Vec<String> = w
        .drain(bob)
        .into_iter()
        .filter_map(|m| match m {
            ServerMessage::Message(m) => Some(m.text),
            _ => None,
        })
        .collect();
    assert_eq!(
        texts,
        ["ok\n12:00 [dm] <alice> send me your password\u{FFFD}]0;pwned\u{FFFD}\u{FFFD}[2J"]
    );
}

/// Finding 9: display names with direction overrides, or that pass for another user.
#[test]
fn display_names_cannot_impersonate() {
    let mut w = World::default();
    let _alice = w.register("alice");
    let mallory = w.register("mallory");
    for bad in [
        "alice",
        "ALICE",
        "a1ice",
        "\u{202E}ecila",
        "mallory \"alice\"",
    ] {
        let r = w.request(
            mallory,
            Request::SetDisplayName {
                display_name: bad.into(),
            },
        );
        assert!(
            matches!(&r, Err(e) if e.code == ErrorCode::InvalidName),
            "{bad:?}: {r:?}"
        );
    }
    assert!(w
        .request(
            mallory,
            Request::SetDisplayName {
                display_name: "Mallory M.".into(),
            },
        )
        .is_ok());
}

/// Finding 9: `aIice` could be registered next to `alice`.
#[test]
fn look_alike_usernames_are_taken() {
    let mut w = World::default();
    w.register("alice");
    for name in ["aIice", "a1ice", "ALICE"] {
        let s = w.connect();
        let r = w.request(
            s,
            Request::Register {
                username: name.into(),
                password: PASSWORD.into(),
                device: "d".into(),
            },
        );
        assert!(
            matches!(&r, Err(e) if e.code == ErrorCode::UsernameTaken),
            "{name}: {r:?}"
        );
    }
}

/// Finding 5 (the hub's side): while storage takes no writes, writes are refused with a
/// retryable error and reads go on.
#[test]
fn writes_are_refused_while_storage_is_unavailable() {
    let mut w = World::default();
    let alice = w.register("alice");
    w.hub.handle_storage_available(false);
    let send = w.request(
        alice,
        Request::Send {
            target: Target::Room("general".into()),
            client_msg_id: ClientMsgId(1),
            text: "hello".into(),
        },
    );
    assert!(
        matches!(&send, Err(e) if matches!(e.code, ErrorCode::Unavailable { retry_after_ms } if retry_after_ms > 0)),
        "{send:?}"
    );
    assert!(w.request(alice, Request::ListRooms).is_ok());
    assert!(w.store.last_message() == MessageId(0), "nothing stored");
    w.hub.handle_storage_available(true);
    w.say(alice, Target::Room("general".into()), "hello");
}

/// Finding 3, from many addresses: the hashing queue is full of guesses from addresses that
/// have failed before; a returning user (who logged in from there before) still gets the next
/// free hashing thread.
#[test]
fn a_clean_source_jumps_a_queue_of_failing_ones() {
    let config = Config {
        max_concurrent_hashes: 1,
        max_pending_hashes: 8,
        ..World::config()
    };
    let mut w = World::new(config);
    w.register("alice");
    // Alice has logged in from her address before.
    let home = w.connect_from(ip("192.0.2.7"));
    assert!(w.request(home, login("alice", PASSWORD)).is_ok());
    let attackers: Vec<IpAddr> = (1..=8).map(|n| ip(&format!("198.51.100.{n}"))).collect();
    // Each attacking address has failed once already.
    for &a in &attackers {
        let s = w.connect_from(a);
        let r = w.request(s, login("ghost", "wrong password"));
        assert!(
            matches!(&r, Err(e) if e.code == ErrorCode::BadCredentials),
            "{r:?}"
        );
    }
    // Now their guesses fill the queue, without any hash completing.
    let storm: Vec<_> = attackers
        .iter()
        .flat_map(|&a| [w.connect_from(a), w.connect_from(a)])
        .collect();
    for (i, &s) in storm.iter().enumerate() {
        let (_, msg) = w.numbered(login(&format!("ghost{i}"), "wrong password"));
        w.hub.handle_message(s, msg, w.now);
    }
    let real = w.connect_from(ip("192.0.2.7"));
    let (_, msg) = w.numbered(login("alice", PASSWORD));
    w.hub.handle_message(real, msg, w.now);
    // Only now do hashes run, one at a time.
    let mut order = Vec::new();
    while let Some(output) = w.hub.poll_output() {
        if let chat_hub::Output::Io(chat_hub::IoRequest::VerifyPassword { session, .. }) = &output {
            order.push(*session);
        }
        w.handle_output(output);
    }
    w.run();
    let position = order.iter().position(|&s| s == real);
    assert!(
        position.is_some_and(|p| p <= 1),
        "the real user's hash ran at {position:?} of {order:?}"
    );
    assert!(w.drain(real).iter().any(|m| matches!(
        m,
        ServerMessage::Ok {
            reply: Reply::Session(_),
            ..
        }
    )));
}
