//! Edits, deletions and redactions (protocol version 2), in the simulated world.

use chat_hub::sim::World;
use chat_hub::{MessageKind, SessionId};
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

fn join(w: &mut World, s: SessionId, name: &str) {
    let joined = w.request(s, Request::Join { room: name.into() });
    assert!(matches!(joined, Ok(Reply::Room(_))), "{joined:?}");
}

fn edit(message: MessageId, text: &str) -> Request {
    Request::Edit {
        message,
        text: text.into(),
    }
}

fn page(w: &mut World, s: SessionId) -> Vec<PageEntry> {
    let history = Request::History {
        target: room("rust"),
        before: None,
        limit: 50,
    };
    match w.request(s, history) {
        Ok(Reply::Page { messages, .. }) => messages,
        other => panic!("{other:?}"),
    }
}

/// alice owns #rust; bob and carol are in it. Inboxes drained.
fn setup() -> (World, [SessionId; 3]) {
    let mut w = World::default();
    let alice = w.register("alice");
    let bob = w.register("bob");
    let carol = w.register("carol");
    for s in [alice, bob, carol] {
        join(&mut w, s, "rust");
    }
    for s in [alice, bob, carol] {
        w.drain(s);
    }
    (w, [alice, bob, carol])
}

#[test]
fn an_edit_reaches_every_member_live_and_history_shows_the_latest_text() {
    let (mut w, [alice, bob, _carol]) = setup();
    let id = w.say(bob, room("rust"), "helo");
    w.drain(alice);
    let change = match w.request(bob, edit(id, "hello")) {
        Ok(Reply::Sent { id, .. }) => id,
        other => panic!("{other:?}"),
    };
    assert!(change > id, "a change takes the next id");
    assert_eq!(
        w.drain(alice),
        [ServerMessage::Edited {
            id: change,
            message: id,
            from: "bob".into(),
            target: room("rust"),
            text: "hello".into(),
        }]
    );
    let entries = page(&mut w, alice);
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].message.text, "hello");
    assert!(entries[0].edited && !entries[0].deleted);
}

#[test]
fn only_the_author_edits_or_deletes_and_only_moderators_redact() {
    let (mut w, [alice, bob, carol]) = setup();
    let id = w.say(bob, room("rust"), "mine");
    assert_eq!(
        code(w.request(carol, edit(id, "yours"))),
        ErrorCode::Forbidden
    );
    assert_eq!(
        code(w.request(carol, Request::Delete { message: id })),
        ErrorCode::Forbidden
    );
    let redact = |reason: &str| Request::Redact {
        message: id,
        reason: reason.into(),
    };
    assert_eq!(code(w.request(carol, redact(""))), ErrorCode::Forbidden);
    // Unknown, or not visible: no such message.
    assert_eq!(
        code(w.request(carol, edit(MessageId(9999), "x"))),
        ErrorCode::BadRequest
    );
    let dave = w.register("dave");
    assert_eq!(code(w.request(dave, redact(""))), ErrorCode::BadRequest);
    // The owner redacts, and it is audited.
    assert!(matches!(
        w.request(alice, redact("rude")),
        Ok(Reply::Sent { .. })
    ));
    let conv = w.store.message(id).expect("stored").conv;
    let log = w.store.audit_log(conv, None, 10);
    assert_eq!(log[0].1.action, ModAction::Redacted);
    assert_eq!(log[0].1.reason, "rude");
    // A tombstone cannot be edited.
    assert_eq!(
        code(w.request(bob, edit(id, "again"))),
        ErrorCode::BadRequest
    );
}

#[test]
fn a_deleted_message_is_erased_from_storage_backlog_and_history() {
    let (mut w, [alice, bob, carol]) = setup();
    let id = w.say(bob, room("rust"), "secret plan");
    w.request(bob, edit(id, "secret plan v2")).expect("edited");
    w.disconnect(carol);
    let deleted = match w.request(bob, Request::Delete { message: id }) {
        Ok(Reply::Sent { id, .. }) => id,
        other => panic!("{other:?}"),
    };
    let events = w.drain(alice);
    assert!(events.iter().any(|e| matches!(e,
        ServerMessage::Deleted { id: d, message, redacted: false, by, .. }
            if *d == deleted && *message == id && by == "bob")));
    // Erased, not hidden: the message and its edit hold no text.
    for m in w.store.messages.values() {
        assert!(!m.text.contains("secret"), "{m:?}");
    }
    assert_eq!(
        w.store.message(id).expect("kept").kind,
        MessageKind::Deleted
    );
    // History shows a tombstone to version 2, nothing to version 1.
    let entries = page(&mut w, alice);
    assert!(entries[0].deleted && entries[0].message.text.is_empty());
    let old = w.register_version("old", 1);
    join(&mut w, old, "rust");
    // carol's backlog carries neither the text nor the edit, only the deletion.
    let (_, backlog) = w.login("carol", "carol-1");
    assert!(!backlog
        .iter()
        .any(|e| matches!(e, ServerMessage::Message(m) if m.id == id)));
    assert!(!backlog
        .iter()
        .any(|e| matches!(e, ServerMessage::Edited { .. })));
    assert!(backlog
        .iter()
        .any(|e| matches!(e, ServerMessage::Deleted { message, .. } if *message == id)));
}

#[test]
fn a_version_1_session_gets_no_change_events_and_a_history_without_tombstones() {
    let (mut w, [_alice, bob, _carol]) = setup();
    let old = w.register_version("old", 1);
    join(&mut w, old, "rust");
    let keep = w.say(bob, room("rust"), "kept");
    let gone = w.say(bob, room("rust"), "gone");
    w.drain(old);
    w.request(bob, edit(keep, "kept, edited")).expect("edited");
    w.request(bob, Request::Delete { message: gone })
        .expect("deleted");
    assert_eq!(w.drain(old), []);
    let history = Request::History {
        target: room("rust"),
        before: None,
        limit: 50,
    };
    match w.request(old, history) {
        Ok(Reply::History { messages, .. }) => {
            let texts: Vec<_> = messages.iter().map(|m| m.text.as_str()).collect();
            assert_eq!(texts, ["kept, edited"]);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        code(w.request(old, Request::Delete { message: keep })),
        ErrorCode::BadRequest
    );
}

#[test]
fn a_muted_member_cannot_edit_but_may_delete() {
    let (mut w, [alice, bob, _carol]) = setup();
    let id = w.say(bob, room("rust"), "first");
    let mute = Request::Mute {
        room: "rust".into(),
        user: "bob".into(),
        muted: true,
    };
    w.request(alice, mute).expect("muted");
    assert_eq!(code(w.request(bob, edit(id, "spam"))), ErrorCode::Forbidden);
    assert!(matches!(
        w.request(bob, Request::Delete { message: id }),
        Ok(Reply::Sent { .. })
    ));
}
