//! Room roles and moderation (protocol version 2), scripted in the simulated world: one test
//! per rule of PROTOCOL.md's moderation section.

use chat_hub::sim::World;
use chat_hub::Write;
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

fn join(w: &mut World, s: chat_hub::SessionId, name: &str) {
    let joined = w.request(s, Request::Join { room: name.into() });
    assert!(matches!(joined, Ok(Reply::Room(_))), "{joined:?}");
}

fn kick(room: &str, user: &str, reason: &str) -> Request {
    Request::Kick {
        room: room.into(),
        user: user.into(),
        reason: reason.into(),
    }
}

fn ban(room: &str, user: &str) -> Request {
    Request::Ban {
        room: room.into(),
        user: user.into(),
        reason: String::new(),
    }
}

fn op(room: &str, user: &str) -> Request {
    Request::SetRole {
        room: room.into(),
        user: user.into(),
        role: Role::Moderator,
    }
}

fn mute(room: &str, user: &str, muted: bool) -> Request {
    Request::Mute {
        room: room.into(),
        user: user.into(),
        muted,
    }
}

/// The moderation notices in `events`: `(by, user, action, reason)`.
fn notices(events: &[ServerMessage]) -> Vec<(String, String, ModAction, String)> {
    events
        .iter()
        .filter_map(|e| match e {
            ServerMessage::Moderated {
                by,
                user,
                action,
                reason,
                ..
            } => Some((by.clone(), user.clone(), *action, reason.clone())),
            _ => None,
        })
        .collect()
}

fn notice(
    by: &str,
    user: &str,
    action: ModAction,
    reason: &str,
) -> (String, String, ModAction, String) {
    (by.into(), user.into(), action, reason.into())
}

/// alice creates #rust (its owner); bob and carol join. Inboxes are drained.
fn room_of_three() -> (World, [chat_hub::SessionId; 3]) {
    let mut w = World::default();
    let alice = w.register("alice");
    let bob = w.register("bob");
    let carol = w.register("carol");
    join(&mut w, alice, "rust");
    join(&mut w, bob, "rust");
    join(&mut w, carol, "rust");
    for s in [alice, bob, carol] {
        w.drain(s);
    }
    (w, [alice, bob, carol])
}

#[test]
fn the_creator_owns_the_room_and_makes_moderators() {
    let (mut w, [alice, bob, carol]) = room_of_three();
    assert_eq!(w.request(alice, op("rust", "bob")), Ok(Reply::Done));
    for s in [alice, bob, carol] {
        assert_eq!(
            notices(&w.drain(s)),
            [notice("alice", "bob", ModAction::Opped, "")]
        );
    }
    // Only the owner grants or revokes: a moderator cannot.
    assert_eq!(
        code(w.request(bob, op("rust", "carol"))),
        ErrorCode::Forbidden
    );
    // Nobody can be made owner.
    let owner = Request::SetRole {
        room: "rust".into(),
        user: "carol".into(),
        role: Role::Owner,
    };
    assert_eq!(code(w.request(alice, owner)), ErrorCode::Forbidden);
}

#[test]
fn members_cannot_moderate_and_moderators_cannot_act_on_their_equals() {
    let (mut w, [alice, bob, carol]) = room_of_three();
    assert_eq!(
        code(w.request(carol, kick("rust", "bob", ""))),
        ErrorCode::Forbidden
    );
    assert_eq!(
        code(w.request(carol, mute("rust", "bob", true))),
        ErrorCode::Forbidden
    );
    w.request(alice, op("rust", "bob")).expect("opped");
    w.request(alice, op("rust", "carol")).expect("opped");
    assert_eq!(
        code(w.request(bob, kick("rust", "carol", ""))),
        ErrorCode::Forbidden
    );
    assert_eq!(
        code(w.request(bob, ban("rust", "alice"))),
        ErrorCode::Forbidden
    );
    assert_eq!(
        code(w.request(bob, kick("rust", "bob", ""))),
        ErrorCode::Forbidden
    );
    assert_eq!(
        code(w.request(bob, kick("nowhere", "carol", ""))),
        ErrorCode::NoSuchRoom
    );
    let long = "x".repeat(chat_hub::MAX_REASON_LEN + 1);
    assert_eq!(
        code(w.request(alice, kick("rust", "carol", &long))),
        ErrorCode::TooLarge
    );
}

#[test]
fn a_kicked_user_receives_nothing_more_of_the_room_and_may_rejoin() {
    let (mut w, [alice, bob, carol]) = room_of_three();
    w.request(alice, op("rust", "bob")).expect("opped");
    for s in [alice, bob, carol] {
        w.drain(s);
    }
    assert_eq!(
        w.request(bob, kick("rust", "carol", "spam")),
        Ok(Reply::Done)
    );
    // The room and the user concerned are told, naming the moderator.
    for s in [alice, bob, carol] {
        assert_eq!(
            notices(&w.drain(s)),
            [notice("bob", "carol", ModAction::Kicked, "spam")]
        );
    }
    w.say(alice, room("rust"), "after the kick");
    w.send(
        alice,
        ClientMessage::Typing {
            target: room("rust"),
            active: true,
        },
    );
    assert_eq!(w.drain(carol), []);
    let history = Request::History {
        target: room("rust"),
        before: None,
        limit: 10,
    };
    assert_eq!(code(w.request(carol, history)), ErrorCode::NotAMember);
    // Nor at the next login.
    let (_, backlog) = w.login("carol", "carol-2");
    assert!(!backlog
        .iter()
        .any(|e| matches!(e, ServerMessage::Message(m) if m.text == "after the kick")));
    join(&mut w, carol, "rust");
}

#[test]
fn a_banned_user_cannot_rejoin_even_by_invitation_until_unbanned() {
    let (mut w, [alice, bob, carol]) = room_of_three();
    assert_eq!(w.request(alice, ban("rust", "carol")), Ok(Reply::Done));
    assert_eq!(
        notices(&w.drain(carol)),
        [notice("alice", "carol", ModAction::Banned, "")]
    );
    w.say(bob, room("rust"), "carol is gone");
    assert_eq!(w.drain(carol), []);
    assert_eq!(
        code(w.request(
            carol,
            Request::Join {
                room: "rust".into()
            }
        )),
        ErrorCode::Forbidden
    );
    let invite = Request::Invite {
        room: "rust".into(),
        user: "carol".into(),
    };
    assert_eq!(code(w.request(bob, invite.clone())), ErrorCode::Forbidden);
    // A ban outlives a restart.
    w.restart();
    let (carol, _) = w.login("carol", "carol-1");
    let (alice, _) = w.login("alice", "alice-1");
    assert_eq!(
        code(w.request(
            carol,
            Request::Join {
                room: "rust".into()
            }
        )),
        ErrorCode::Forbidden
    );
    let unban = Request::Unban {
        room: "rust".into(),
        user: "carol".into(),
    };
    assert_eq!(w.request(alice, unban), Ok(Reply::Done));
    join(&mut w, carol, "rust");
}

#[test]
fn a_muted_member_stays_but_cannot_post_until_unmuted() {
    let (mut w, [alice, bob, carol]) = room_of_three();
    assert_eq!(
        w.request(alice, mute("rust", "carol", true)),
        Ok(Reply::Done)
    );
    let refused = w.request(
        carol,
        Request::Send {
            target: room("rust"),
            client_msg_id: ClientMsgId(99),
            text: "let me speak".into(),
        },
    );
    assert_eq!(code(refused), ErrorCode::Forbidden);
    w.drain(carol);
    // Still a member: carol receives the room.
    w.say(bob, room("rust"), "you can read this");
    assert!(w
        .drain(carol)
        .iter()
        .any(|e| matches!(e, ServerMessage::Message(m) if m.text == "you can read this")));
    w.request(alice, mute("rust", "carol", false))
        .expect("unmuted");
    w.say(carol, room("rust"), "thanks");
}

#[test]
fn every_action_is_in_the_audit_log() {
    let (mut w, [alice, bob, _carol]) = room_of_three();
    w.request(alice, op("rust", "bob")).expect("opped");
    w.request(bob, mute("rust", "carol", true)).expect("muted");
    w.request(bob, kick("rust", "carol", "bye"))
        .expect("kicked");
    let conv = w.store.snapshot(w.now.wall).standings[0].conv;
    let log = w.store.audit_log(conv, None, 10);
    let actions: Vec<_> = log
        .iter()
        .map(|(_, r)| (r.action, r.reason.as_str()))
        .collect();
    assert_eq!(
        actions,
        [
            (ModAction::Kicked, "bye"),
            (ModAction::Muted, ""),
            (ModAction::Opped, "")
        ]
    );
    // Paged: below the newest.
    assert_eq!(w.store.audit_log(conv, Some(log[0].0), 10).len(), 2);
}

#[test]
fn a_server_operator_moderates_every_room() {
    let (mut w, [_alice, _bob, _carol]) = room_of_three();
    let dave = w.register("dave");
    let dave_id = w.store.user_id("dave").expect("registered");
    w.drain(dave);
    w.store.apply(vec![Write::SetOperator {
        user: dave_id,
        operator: true,
    }]);
    w.restart();
    let (dave, _) = w.login("dave", "dave-1");
    // Not even a member, yet he may act, on the owner too.
    assert_eq!(w.request(dave, kick("rust", "alice", "")), Ok(Reply::Done));
    assert_eq!(w.request(dave, ban("general", "carol")), Ok(Reply::Done));
}

#[test]
fn a_version_1_session_gets_a_left_notice_instead_and_cannot_send_version_2_requests() {
    let mut w = World::default();
    let alice = w.register("alice");
    let old = w.register_version("old", 1);
    let carol = w.register("carol");
    for s in [alice, old, carol] {
        join(&mut w, s, "rust");
    }
    w.drain(old);
    w.request(alice, op("rust", "carol")).expect("opped");
    // Nothing for the old client: it could not decode the notice.
    assert_eq!(w.drain(old), []);
    w.request(alice, kick("rust", "carol", "")).expect("kicked");
    assert_eq!(
        w.drain(old),
        [ServerMessage::Member {
            room: "rust".into(),
            user: "carol".into(),
            event: MemberEvent::Left,
        }]
    );
    assert_eq!(
        code(w.request(old, kick("rust", "alice", ""))),
        ErrorCode::BadRequest
    );
}

/// dave, a server operator (set in storage, as `chat-server admin op` does), and a restart.
fn with_operator(w: &mut World) -> chat_hub::SessionId {
    let dave = w.register("dave");
    let dave_id = w.store.user_id("dave").expect("registered");
    w.drain(dave);
    w.store.apply(vec![Write::SetOperator {
        user: dave_id,
        operator: true,
    }]);
    w.restart();
    w.login("dave", "dave-1").0
}

fn disable(user: &str, disabled: bool) -> Request {
    Request::SetDisabled {
        user: user.into(),
        disabled,
    }
}

#[test]
fn a_disabled_account_is_disconnected_and_cannot_log_in_or_resume_until_enabled() {
    let mut w = World::default();
    let dave = with_operator(&mut w);
    let mallory = w.connect();
    let registered = w.request(
        mallory,
        Request::Register {
            username: "mallory".into(),
            password: chat_hub::sim::PASSWORD.into(),
            device: "m-1".into(),
        },
    );
    let Ok(Reply::Session(session)) = registered else {
        panic!("{registered:?}");
    };
    w.drain(mallory);
    assert_eq!(w.request(dave, disable("mallory", true)), Ok(Reply::Done));
    assert!(w.is_closed(mallory), "the live session is closed");
    assert!(w.drain(mallory).iter().any(|m| matches!(
        m,
        ServerMessage::Error(e) if e.code == ErrorCode::Forbidden
    )));
    // Neither the password nor the token gets in; the right password is told why.
    let again = w.connect();
    let login = Request::Login {
        username: "mallory".into(),
        password: chat_hub::sim::PASSWORD.into(),
        device: "m-1".into(),
    };
    assert_eq!(code(w.request(again, login.clone())), ErrorCode::Forbidden);
    let resume = Request::Resume {
        token: session.token.clone(),
        device: "m-1".into(),
    };
    let other = w.connect();
    assert_eq!(code(w.request(other, resume.clone())), ErrorCode::Forbidden);
    // A wrong password still looks like any wrong password.
    let wrong = w.connect();
    let guess = Request::Login {
        username: "mallory".into(),
        password: "not the password".into(),
        device: "m-1".into(),
    };
    assert_eq!(code(w.request(wrong, guess)), ErrorCode::BadCredentials);
    // It survives a restart; enabling lets the token and the password in again.
    w.restart();
    let dave = w.login("dave", "dave-1").0;
    let other = w.connect();
    assert_eq!(code(w.request(other, resume.clone())), ErrorCode::Forbidden);
    assert_eq!(w.request(dave, disable("mallory", false)), Ok(Reply::Done));
    let back = w.connect();
    assert!(matches!(w.request(back, resume), Ok(Reply::Session(_))));
    let back = w.connect();
    assert!(matches!(w.request(back, login), Ok(Reply::Session(_))));
}

#[test]
fn only_server_operators_disable_and_never_another_operator() {
    let (mut w, [alice, _bob, _carol]) = room_of_three();
    // The owner of a room is no server operator.
    assert_eq!(
        code(w.request(alice, disable("bob", true))),
        ErrorCode::Forbidden
    );
    let dave = with_operator(&mut w);
    assert_eq!(
        code(w.request(dave, disable("dave", true))),
        ErrorCode::Forbidden
    );
    assert_eq!(
        code(w.request(dave, disable("nobody", true))),
        ErrorCode::NoSuchUser
    );
}

#[test]
fn the_audit_log_is_read_by_moderators_newest_first_and_account_actions_by_operators() {
    let (mut w, [alice, bob, carol]) = room_of_three();
    w.request(alice, op("rust", "bob")).expect("opped");
    w.request(bob, kick("rust", "carol", "spam"))
        .expect("kicked");
    w.request(bob, mute("rust", "alice", true))
        .expect_err("a moderator cannot mute the owner");
    let read = |room: Option<&str>, before: Option<u64>| Request::AuditLog {
        room: room.map(Into::into),
        before,
        limit: 1,
    };
    let Ok(Reply::AuditLog { entries, more }) = w.request(bob, read(Some("rust"), None)) else {
        panic!("a moderator reads the room's log");
    };
    assert!(more);
    assert_eq!(
        (
            entries[0].by.as_str(),
            entries[0].user.as_str(),
            entries[0].action,
            entries[0].reason.as_str(),
            entries[0].room.as_str()
        ),
        ("bob", "carol", ModAction::Kicked, "spam", "rust")
    );
    let Ok(Reply::AuditLog {
        entries: older,
        more,
    }) = w.request(alice, read(Some("#rust"), Some(entries[0].position)))
    else {
        panic!("the owner reads the next page");
    };
    assert!(!more);
    assert_eq!(older[0].action, ModAction::Opped);
    // A plain member may not read it, nor anyone the server log but an operator.
    join(&mut w, carol, "rust");
    assert_eq!(
        code(w.request(carol, read(Some("rust"), None))),
        ErrorCode::Forbidden
    );
    assert_eq!(code(w.request(bob, read(None, None))), ErrorCode::Forbidden);
    let dave = with_operator(&mut w);
    w.request(dave, disable("carol", true)).expect("disabled");
    let Ok(Reply::AuditLog { entries, .. }) = w.request(dave, read(None, None)) else {
        panic!("an operator reads the server log");
    };
    assert_eq!(
        (
            entries[0].by.as_str(),
            entries[0].user.as_str(),
            entries[0].room.as_str()
        ),
        ("dave", "carol", "")
    );
    assert_eq!(entries[0].action, ModAction::Disabled);
    // An operator reads any room's log without being a member.
    assert!(matches!(
        w.request(dave, read(Some("rust"), None)),
        Ok(Reply::AuditLog { .. })
    ));
}

#[test]
fn who_lists_roles_and_mutes_to_version_2_and_plain_members_to_version_1() {
    let (mut w, [alice, bob, _carol]) = room_of_three();
    let old = w.register_version("old", 1);
    join(&mut w, old, "rust");
    w.request(alice, op("rust", "bob")).expect("opped");
    w.request(bob, mute("rust", "carol", true)).expect("muted");
    let who = Request::Who {
        room: "rust".into(),
    };
    let Ok(Reply::Roster { members, .. }) = w.request(bob, who.clone()) else {
        panic!("a version-2 session gets a roster");
    };
    let roster: Vec<_> = members
        .iter()
        .map(|m| (m.status.user.as_str(), m.role, m.muted))
        .collect();
    assert_eq!(
        roster,
        [
            ("alice", Role::Owner, false),
            ("bob", Role::Moderator, false),
            ("carol", Role::Member, true),
            ("old", Role::Member, false),
        ]
    );
    let Ok(Reply::Members { members, .. }) = w.request(old, who) else {
        panic!("a version-1 session gets plain members");
    };
    assert_eq!(members.len(), 4);
}
