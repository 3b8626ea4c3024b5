//! Read markers and unread counts (protocol version 2), in the simulated world.

use chat_hub::sim::{World, PASSWORD};
use chat_hub::{Config, ConvId, SessionId};
use chat_proto::*;

fn room(name: &str) -> Target {
    Target::Room(name.into())
}

fn code(result: Result<Reply, ErrorReply>) -> ErrorCode {
    match result {
        Err(e) => e.code,
        Ok(reply) => panic!("expected an error, got {reply:?}"),
    }
}

fn mark(target: Target, up_to: MessageId) -> Request {
    Request::MarkRead { target, up_to }
}

/// The id of the default room in the model storage.
fn general(w: &World) -> ConvId {
    let alice = w.store.user_id("alice").expect("alice exists");
    (1..10)
        .map(ConvId)
        .find(|&c| w.store.member_since(c, alice).is_some())
        .expect("alice is in #general")
}

/// Logs `name` in on `device` speaking protocol `version`; returns the session and what came
/// before `CaughtUp`.
fn login_version(
    w: &mut World,
    name: &str,
    device: &str,
    version: u16,
) -> (SessionId, Vec<ServerMessage>) {
    let s = w.connect_version(version);
    let login = Request::Login {
        username: name.into(),
        password: PASSWORD.into(),
        device: device.into(),
    };
    assert!(matches!(w.request(s, login), Ok(Reply::Session(_))));
    let before = w.expect_caught_up(s);
    (s, before)
}

#[test]
fn a_marker_set_on_one_device_reaches_the_others_live() {
    let mut w = World::default();
    let alice = w.register("alice");
    let bob = w.register("bob");
    let (phone, _) = w.login("alice", "phone");
    let (old, _) = login_version(&mut w, "alice", "old", 1);
    let first = w.say(bob, room("general"), "one");
    let second = w.say(bob, room("general"), "two");
    for s in [alice, phone, old] {
        w.drain(s);
    }
    assert_eq!(
        w.request(alice, mark(room("general"), first)),
        Ok(Reply::Done)
    );
    let marker = ServerMessage::ReadMarker {
        target: room("general"),
        up_to: first,
    };
    assert_eq!(w.drain(phone), [marker]);
    assert_eq!(w.drain(alice), [], "the session that set it gets only Done");
    assert_eq!(w.drain(old), [], "never sent to version 1");
    assert_eq!(w.drain(bob), [], "markers are private");
    assert_eq!(
        w.store
            .read_marker(w.store.user_id("alice").unwrap(), general(&w)),
        Some(first)
    );
    // The phone moves it on; the first device hears of it.
    assert_eq!(
        w.request(phone, mark(room("general"), second)),
        Ok(Reply::Done)
    );
    assert_eq!(
        w.drain(alice),
        [ServerMessage::ReadMarker {
            target: room("general"),
            up_to: second,
        }]
    );
}

#[test]
fn markers_never_move_back_and_stop_at_the_newest_message() {
    let mut w = World::default();
    let alice = w.register("alice");
    let bob = w.register("bob");
    let (phone, _) = w.login("alice", "phone");
    let first = w.say(bob, room("general"), "one");
    let second = w.say(bob, room("general"), "two");
    assert_eq!(
        w.request(alice, mark(room("general"), second)),
        Ok(Reply::Done)
    );
    w.drain(phone);
    // Lower, or equal: answered Done, nothing stored or told.
    for lower in [first, second, MessageId(0)] {
        assert_eq!(
            w.request(alice, mark(room("general"), lower)),
            Ok(Reply::Done)
        );
    }
    assert_eq!(w.drain(phone), []);
    let alice_id = w.store.user_id("alice").unwrap();
    assert_eq!(w.store.read_marker(alice_id, general(&w)), Some(second));
    // Past the newest message: stops at it, so later messages are still unread.
    let third = w.say(bob, room("general"), "three");
    w.drain(phone);
    assert_eq!(
        w.request(alice, mark(room("general"), MessageId(u64::MAX))),
        Ok(Reply::Done)
    );
    assert_eq!(
        w.drain(phone),
        [ServerMessage::ReadMarker {
            target: room("general"),
            up_to: third,
        }]
    );
    let fourth = w.say(bob, room("general"), "four");
    w.disconnect(phone);
    let (_, before) = w.login("alice", "phone");
    let Some(ServerMessage::Unread(counts)) = before.first() else {
        panic!("unread counts first: {before:?}");
    };
    assert_eq!(counts[0].read_up_to, third);
    assert!(fourth > third);
    // The marker survives a restart.
    w.restart();
    let alice = w.login("alice", "laptop").0;
    assert_eq!(
        w.request(alice, mark(room("general"), second)),
        Ok(Reply::Done)
    );
    assert_eq!(w.store.read_marker(alice_id, general(&w)), Some(third));
}

#[test]
fn only_members_set_markers() {
    let mut w = World::default();
    let alice = w.register("alice");
    let bob = w.register("bob");
    let carol = w.register("carol");
    let create = Request::CreateRoom {
        room: "secret".into(),
        invite_only: true,
    };
    assert!(w.request(bob, create).is_ok());
    assert!(w
        .request(
            bob,
            Request::Join {
                room: "open".into()
            }
        )
        .is_ok());
    let id = w.say(bob, room("secret"), "psst");
    assert_eq!(
        code(w.request(alice, mark(room("secret"), id))),
        ErrorCode::Forbidden
    );
    assert_eq!(
        code(w.request(alice, mark(room("open"), id))),
        ErrorCode::NotAMember
    );
    assert_eq!(
        code(w.request(alice, mark(room("nowhere"), id))),
        ErrorCode::NoSuchRoom
    );
    assert_eq!(
        code(w.request(alice, mark(Target::User("nobody".into()), id))),
        ErrorCode::NoSuchUser
    );
    // A direct conversation exists only once someone wrote in it.
    assert_eq!(
        code(w.request(alice, mark(Target::User("carol".into()), id))),
        ErrorCode::NotAMember
    );
    let dm = w.say(carol, Target::User("alice".into()), "hi");
    assert_eq!(
        w.request(alice, mark(Target::User("carol".into()), dm)),
        Ok(Reply::Done)
    );
    // A version-1 connection cannot ask.
    let (old, _) = login_version(&mut w, "alice", "old", 1);
    assert_eq!(
        code(w.request(old, mark(room("general"), id))),
        ErrorCode::BadRequest
    );
}

#[test]
fn a_login_tells_the_unread_counts_before_the_backlog() {
    let mut w = World::default();
    let alice = w.register("alice");
    let bob = w.register("bob");
    w.say(alice, room("general"), "mine");
    let b1 = w.say(bob, room("general"), "b1");
    let b2 = w.say(bob, room("general"), "b2");
    let b3 = w.say(bob, room("general"), "b3");
    let dm = w.say(bob, Target::User("alice".into()), "psst");
    // Alice's device received everything live and acknowledged it; she read up to b1.
    w.drain(alice);
    w.send(alice, ClientMessage::Ack { up_to: dm });
    assert_eq!(w.request(alice, mark(room("general"), b1)), Ok(Reply::Done));
    w.disconnect(alice);
    // While she is away: two more, b2 is deleted (not counted any more), b3 is edited (still
    // one message).
    let b4 = w.say(bob, room("general"), "b4");
    let b5 = w.say(bob, room("general"), "b5");
    assert!(w.request(bob, Request::Delete { message: b2 }).is_ok());
    assert!(w
        .request(
            bob,
            Request::Edit {
                message: b3,
                text: "b3!".into()
            }
        )
        .is_ok());
    let (_, before) = w.login("alice", "alice-1");
    let Some((ServerMessage::Unread(counts), backlog)) = before.split_first() else {
        panic!("the counts come first: {before:?}");
    };
    // Counted up to what this device had: b3 in #general (b2 is gone), psst from bob. What
    // the backlog brings is new to the device and not counted.
    assert_eq!(
        counts.as_slice(),
        [
            UnreadCount {
                target: room("general"),
                read_up_to: b1,
                unread: 1,
                latest: b3,
            },
            // Never marked: read up to where the conversation started.
            UnreadCount {
                target: Target::User("bob".into()),
                read_up_to: b3,
                unread: 1,
                latest: dm,
            },
        ]
    );
    let ids: Vec<MessageId> = backlog
        .iter()
        .filter_map(|m| match m {
            ServerMessage::Message(m) => Some(m.id),
            _ => None,
        })
        .collect();
    assert_eq!(ids, [b4, b5]);
    assert!(
        !backlog
            .iter()
            .any(|m| matches!(m, ServerMessage::Unread(_))),
        "one list per login"
    );
    // A version-1 login gets none.
    let (_, before) = login_version(&mut w, "alice", "old", 1);
    assert!(!before.iter().any(|m| matches!(m, ServerMessage::Unread(_))));
}

#[test]
fn counts_stop_at_the_cap() {
    let mut w = World::new(Config {
        unread_cap: 3,
        ..World::config()
    });
    let alice = w.register("alice");
    let bob = w.register("bob");
    for i in 0..5 {
        w.say(bob, room("general"), &format!("m{i}"));
    }
    let last = w.say(bob, room("general"), "last");
    w.drain(alice);
    w.send(alice, ClientMessage::Ack { up_to: last });
    w.disconnect(alice);
    let (alice, before) = w.login("alice", "alice-1");
    let Some(ServerMessage::Unread(counts)) = before.first() else {
        panic!("{before:?}");
    };
    assert_eq!((counts[0].unread, counts[0].latest), (3, last));
    match w.request(alice, Request::RoomList) {
        Ok(Reply::RoomList(rooms)) => assert_eq!(rooms[0].unread, 3),
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_room_list_carries_unread_counts() {
    let mut w = World::default();
    let alice = w.register("alice");
    let bob = w.register("bob");
    assert!(w
        .request(
            bob,
            Request::Join {
                room: "rust".into()
            }
        )
        .is_ok());
    let b1 = w.say(bob, room("general"), "b1");
    w.say(bob, room("general"), "b2");
    w.say(alice, room("general"), "mine");
    w.say(bob, room("rust"), "not for alice");
    let list = |w: &mut World, s| match w.request(s, Request::RoomList) {
        Ok(Reply::RoomList(rooms)) => rooms
            .into_iter()
            .map(|r| (r.info.name, r.info.joined, r.unread))
            .collect::<Vec<_>>(),
        other => panic!("{other:?}"),
    };
    assert_eq!(
        list(&mut w, alice),
        [("general".into(), true, 2), ("rust".into(), false, 0)]
    );
    assert_eq!(w.request(alice, mark(room("general"), b1)), Ok(Reply::Done));
    assert_eq!(
        list(&mut w, alice),
        [("general".into(), true, 1), ("rust".into(), false, 0)]
    );
    // A member who joins later: only what came since.
    assert!(w
        .request(
            alice,
            Request::Join {
                room: "rust".into()
            }
        )
        .is_ok());
    w.say(bob, room("rust"), "welcome");
    assert_eq!(
        list(&mut w, alice),
        [("general".into(), true, 1), ("rust".into(), true, 1)]
    );
}

#[test]
fn a_login_counts_rooms_first_then_the_newest_direct_conversations_within_the_bound() {
    let mut w = World::new(Config {
        max_unread_convs: 3,
        ..World::config()
    });
    let alice = w.register("alice");
    assert!(w
        .request(
            alice,
            Request::Join {
                room: "rust".into()
            }
        )
        .is_ok());
    for name in ["bob", "carol"] {
        let s = w.register(name);
        w.say(s, Target::User("alice".into()), "hi");
    }
    w.disconnect(alice);
    let (_, before) = w.login("alice", "alice-1");
    let Some(ServerMessage::Unread(counts)) = before.first() else {
        panic!("{before:?}");
    };
    let targets: Vec<&Target> = counts.iter().map(|c| &c.target).collect();
    // Bob's conversation is the oldest: left out.
    assert_eq!(
        targets,
        [
            &room("general"),
            &room("rust"),
            &Target::User("carol".into())
        ]
    );
}
