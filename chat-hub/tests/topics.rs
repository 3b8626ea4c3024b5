//! Room topics and display-name events (protocol version 2), in the simulated world.

use chat_hub::sim::World;
use chat_hub::SessionId;
use chat_proto::*;

fn code(result: Result<Reply, ErrorReply>) -> ErrorCode {
    match result {
        Err(e) => e.code,
        Ok(reply) => panic!("expected an error, got {reply:?}"),
    }
}

fn join(w: &mut World, s: SessionId, name: &str) {
    let joined = w.request(s, Request::Join { room: name.into() });
    assert!(matches!(joined, Ok(Reply::Room(_))), "{joined:?}");
}

fn topic(text: &str) -> Request {
    Request::SetTopic {
        room: "rust".into(),
        topic: text.into(),
    }
}

#[test]
fn owners_and_moderators_set_the_topic_shown_on_join_and_in_the_room_list() {
    let mut w = World::default();
    let alice = w.register("alice");
    let bob = w.register("bob");
    let old = w.register_version("old", 1);
    for s in [alice, bob, old] {
        join(&mut w, s, "rust");
    }
    for s in [alice, bob, old] {
        w.drain(s);
    }
    assert_eq!(code(w.request(bob, topic("mine"))), ErrorCode::Forbidden);
    let long = "x".repeat(chat_hub::MAX_TOPIC_LEN + 1);
    assert_eq!(code(w.request(alice, topic(&long))), ErrorCode::TooLarge);
    assert_eq!(w.request(alice, topic("All things Rust")), Ok(Reply::Done));
    let set = ServerMessage::Topic {
        room: "rust".into(),
        topic: "All things Rust".into(),
        by: "alice".into(),
    };
    assert_eq!(w.drain(bob), std::slice::from_ref(&set));
    assert_eq!(w.drain(alice), [set]);
    assert_eq!(w.drain(old), []);
    // A moderator may too.
    let op = Request::SetRole {
        room: "rust".into(),
        user: "bob".into(),
        role: Role::Moderator,
    };
    w.request(alice, op).expect("opped");
    assert_eq!(w.request(bob, topic("All things Rust!")), Ok(Reply::Done));
    // Shown on joining, and kept over a restart.
    w.restart();
    let carol = w.register("carol");
    w.request(
        carol,
        Request::Join {
            room: "rust".into(),
        },
    )
    .expect("joins");
    let events = w.drain(carol);
    assert!(events.contains(&ServerMessage::Topic {
        room: "rust".into(),
        topic: "All things Rust!".into(),
        by: String::new(),
    }));
    match w.request(carol, Request::RoomList) {
        Ok(Reply::RoomList(rooms)) => {
            let rust = rooms
                .iter()
                .find(|r| r.info.name == "rust")
                .expect("listed");
            assert_eq!(rust.topic, "All things Rust!");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_display_name_change_reaches_those_who_share_a_conversation() {
    let mut w = World::default();
    let alice = w.register("alice");
    let bob = w.register("bob");
    let (alice2, _) = w.login("alice", "alice-2");
    let old = w.register_version("old", 1);
    let loner = w.register("loner");
    // loner leaves the default room: shares nothing with alice.
    w.request(
        loner,
        Request::Leave {
            room: "general".into(),
        },
    )
    .expect("leaves");
    for s in [alice, bob, alice2, old, loner] {
        w.drain(s);
    }
    let rename = Request::SetDisplayName {
        display_name: "Alice A.".into(),
    };
    assert_eq!(w.request(alice, rename), Ok(Reply::Done));
    let event = ServerMessage::DisplayName {
        user: "alice".into(),
        display_name: "Alice A.".into(),
    };
    assert_eq!(w.drain(bob), std::slice::from_ref(&event));
    assert_eq!(w.drain(alice2), [event]);
    assert_eq!(w.drain(old), []);
    assert_eq!(w.drain(loner), []);
}
