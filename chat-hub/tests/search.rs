//! Search (protocol version 2), in the simulated world.

use chat_hub::sim::{World, PASSWORD};
use chat_hub::SessionId;
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

/// The hits of a search: `(id, from, target, text)`, and whether there are more.
fn search(
    w: &mut World,
    s: SessionId,
    text: &str,
    before: Option<MessageId>,
    limit: u16,
) -> (Vec<(MessageId, String, Target, String)>, bool) {
    let request = Request::Search {
        text: text.into(),
        before,
        limit,
    };
    match w.request(s, request) {
        Ok(Reply::SearchResults { messages, more }) => (
            messages
                .into_iter()
                .map(|m| (m.id, m.from, m.target, m.text))
                .collect(),
            more,
        ),
        other => panic!("{other:?}"),
    }
}

fn ids(hits: &[(MessageId, String, Target, String)]) -> Vec<MessageId> {
    hits.iter().map(|h| h.0).collect()
}

#[test]
fn search_finds_the_users_own_conversations_only_newest_first_and_paged() {
    let mut w = World::default();
    let alice = w.register("alice");
    let bob = w.register("bob");
    let carol = w.register("carol");
    let create = Request::CreateRoom {
        room: "secret".into(),
        invite_only: true,
    };
    assert!(w.request(carol, create).is_ok());
    w.say(carol, room("secret"), "deploy the secret plan");
    w.say(carol, Target::User("bob".into()), "deploy between us");
    let first = w.say(bob, room("general"), "Time to DEPLOY!");
    w.say(bob, room("general"), "unrelated");
    let second = w.say(bob, Target::User("alice".into()), "deploy now?");
    let third = w.say(alice, room("general"), "deploying... no, deploy: done");
    let (hits, more) = search(&mut w, alice, "deploy", None, 10);
    assert_eq!(ids(&hits), [third, second, first]);
    assert!(!more);
    assert_eq!(
        hits[1],
        (
            second,
            "bob".into(),
            Target::User("alice".into()),
            "deploy now?".into()
        )
    );
    // Paged: newest first, then below the last one seen.
    let (page, more) = search(&mut w, alice, "deploy", None, 2);
    assert_eq!((ids(&page), more), (vec![third, second], true));
    let (page, more) = search(&mut w, alice, "deploy", Some(second), 2);
    assert_eq!((ids(&page), more), (vec![first], false));
    // Every word must be there, in any case.
    let (hits, _) = search(&mut w, alice, "deploy TIME", None, 10);
    assert_eq!(ids(&hits), [first]);
    let (hits, _) = search(&mut w, alice, "plan", None, 10);
    assert_eq!(hits, []);
    // Carol finds hers.
    let (hits, _) = search(&mut w, carol, "deploy", None, 10);
    assert_eq!(hits.len(), 2 + 2);
}

#[test]
fn a_member_who_joined_later_finds_what_history_shows_and_nothing_after_leaving() {
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
    let old = w.say(bob, room("rust"), "old news");
    assert!(w
        .request(
            alice,
            Request::Join {
                room: "rust".into()
            }
        )
        .is_ok());
    let new = w.say(bob, room("rust"), "fresh news");
    let (hits, _) = search(&mut w, alice, "news", None, 10);
    // The room's older message too: history shows it to members.
    assert_eq!(ids(&hits), [new, old]);
    // Having left, nothing of the room.
    assert!(w
        .request(
            alice,
            Request::Leave {
                room: "rust".into()
            }
        )
        .is_ok());
    let (hits, _) = search(&mut w, alice, "news", None, 10);
    assert_eq!(hits, []);
}

#[test]
fn deleted_and_redacted_messages_are_never_found_and_edits_by_their_new_text_only() {
    let mut w = World::default();
    let alice = w.register("alice");
    let bob = w.register("bob");
    assert!(w
        .request(
            alice,
            Request::Join {
                room: "rust".into()
            }
        )
        .is_ok());
    assert!(w
        .request(
            bob,
            Request::Join {
                room: "rust".into()
            }
        )
        .is_ok());
    let deleted = w.say(bob, room("rust"), "password hunter2");
    let redacted = w.say(bob, room("rust"), "buy cheap password");
    let edited = w.say(bob, room("rust"), "the pasword is wrong");
    assert!(w.request(bob, Request::Delete { message: deleted }).is_ok());
    let redact = Request::Redact {
        message: redacted,
        reason: "spam".into(),
    };
    assert!(w.request(alice, redact).is_ok());
    let edit = Request::Edit {
        message: edited,
        text: "the password is right".into(),
    };
    assert!(w.request(bob, edit).is_ok());
    let (hits, _) = search(&mut w, alice, "password", None, 10);
    assert_eq!(
        hits,
        [(
            edited,
            "bob".into(),
            room("rust"),
            "the password is right".into()
        )]
    );
    for gone in ["hunter2", "cheap", "pasword", "wrong"] {
        let (hits, _) = search(&mut w, bob, gone, None, 10);
        assert_eq!(hits, [], "{gone}");
    }
}

#[test]
fn bad_searches_are_refused() {
    let mut w = World::default();
    let alice = w.register("alice");
    let request = |text: &str| Request::Search {
        text: text.into(),
        before: None,
        limit: 10,
    };
    assert_eq!(
        code(w.request(alice, request("  ?! "))),
        ErrorCode::BadRequest
    );
    assert_eq!(
        code(w.request(alice, request(&"word ".repeat(60)))),
        ErrorCode::TooLarge
    );
    assert_eq!(
        code(w.request(alice, request("a b c d e f g h i"))),
        ErrorCode::TooLarge
    );
    // A version-1 connection cannot ask.
    let old = w.connect_version(1);
    let login = Request::Login {
        username: "alice".into(),
        password: PASSWORD.into(),
        device: "old".into(),
    };
    assert!(matches!(w.request(old, login), Ok(Reply::Session(_))));
    assert_eq!(code(w.request(old, request("hi"))), ErrorCode::BadRequest);
}

#[test]
fn the_page_is_capped_by_the_server() {
    let mut w = World::default();
    let alice = w.register("alice");
    let max = usize::from(World::config().max_history_page);
    for i in 0..=max {
        w.advance(1000);
        w.say(alice, room("general"), &format!("word {i}"));
    }
    let (hits, more) = search(&mut w, alice, "word", None, u16::MAX);
    assert_eq!((hits.len(), more), (max, true));
}

#[test]
fn a_search_or_room_list_is_answered_even_after_a_logout_behind_it() {
    let mut w = World::default();
    let alice = w.register("alice");
    let hi = w.say(alice, room("general"), "hello there");
    let (search, first) = w.numbered(Request::Search {
        text: "hello".into(),
        before: None,
        limit: 10,
    });
    let (list, second) = w.numbered(Request::RoomList);
    let (_, logout) = w.numbered(Request::Logout);
    // Both reads finish after the logout was handled.
    w.send_all(alice, [first, second, logout]);
    match w.take_reply(alice, search) {
        Some(Ok(Reply::SearchResults { messages, .. })) => {
            assert_eq!(messages.iter().map(|m| m.id).collect::<Vec<_>>(), [hi]);
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        w.take_reply(alice, list),
        Some(Ok(Reply::RoomList(_)))
    ));
}
