//! Moderation over real TCP: a room's owner makes a moderator, who kicks, bans and mutes
//! another user; a version-1 client in the room keeps working.

use chat_client::Error;
use chat_proto::*;
use chat_testkit::*;

fn moderated(action: ModAction, user: &str) -> impl Fn(&ServerMessage) -> bool + '_ {
    move |e| matches!(e, ServerMessage::Moderated { action: a, user: u, .. } if *a == action && u == user)
}

fn refused(result: Result<Reply, Error>) -> ErrorCode {
    match result {
        Err(Error::Refused(e)) => e.code,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn an_owner_a_moderator_and_two_users() {
    let server = start_server().await;
    let mut alice = logged_in(server.addr, "alice", true).await;
    let mut bob = logged_in(server.addr, "bob", true).await;
    let mut carol = logged_in(server.addr, "carol", true).await;
    let mut old = logged_in_version(server.addr, "old", true, 1).await;
    alice
        .request(Request::CreateRoom {
            room: "rust".into(),
            invite_only: false,
        })
        .await
        .expect("created");
    for s in [&mut bob, &mut carol, &mut old] {
        s.request(Request::Join {
            room: "rust".into(),
        })
        .await
        .expect("joins");
    }
    alice
        .request(Request::SetRole {
            room: "rust".into(),
            user: "bob".into(),
            role: Role::Moderator,
        })
        .await
        .expect("opped");
    bob.until(moderated(ModAction::Opped, "bob"))
        .await
        .expect("told");

    // Mute: carol stays but cannot post.
    bob.request(Request::Mute {
        room: "rust".into(),
        user: "carol".into(),
        muted: true,
    })
    .await
    .expect("muted");
    let send = carol.send_text(room("rust"), 1, "hello?").await;
    assert!(matches!(send, Err(Error::Refused(e)) if e.code == ErrorCode::Forbidden));

    // Kick: carol is told, then receives nothing of the room; the old client sees a leave.
    bob.request(Request::Kick {
        room: "rust".into(),
        user: "carol".into(),
        reason: "noise".into(),
    })
    .await
    .expect("kicked");
    let told = carol
        .until(moderated(ModAction::Kicked, "carol"))
        .await
        .expect("told");
    assert!(
        matches!(told, ServerMessage::Moderated { by, reason, .. } if by == "bob" && reason == "noise")
    );
    old.until(|e| {
        matches!(e, ServerMessage::Member { user, event: MemberEvent::Left, .. } if user == "carol")
    })
    .await
    .expect("the old client sees carol leave");
    alice
        .send_text(room("rust"), 1, "not for carol")
        .await
        .expect("stored");
    old.until(text_is("not for carol")).await.expect("arrives");
    // A marker in #general: everything before it has reached carol.
    alice
        .send_text(room("general"), 2, "marker")
        .await
        .expect("stored");
    carol.until(text_is("marker")).await.expect("arrives");
    assert!(!carol.texts().contains(&"not for carol".to_string()));

    // She may rejoin after a kick, not after a ban, not even by invitation.
    carol
        .request(Request::Join {
            room: "rust".into(),
        })
        .await
        .expect("rejoins");
    bob.request(Request::Ban {
        room: "rust".into(),
        user: "carol".into(),
        reason: String::new(),
    })
    .await
    .expect("banned");
    let join = carol
        .request(Request::Join {
            room: "rust".into(),
        })
        .await;
    assert_eq!(refused(join), ErrorCode::Forbidden);
    let invite = alice
        .request(Request::Invite {
            room: "rust".into(),
            user: "carol".into(),
        })
        .await;
    assert_eq!(refused(invite), ErrorCode::Forbidden);
    // Only moderators moderate; the old client cannot even ask.
    let kick = old
        .request(Request::Kick {
            room: "rust".into(),
            user: "bob".into(),
            reason: String::new(),
        })
        .await;
    assert_eq!(refused(kick), ErrorCode::BadRequest);
    assert!(!old
        .events()
        .iter()
        .any(|e| matches!(e, ServerMessage::Moderated { .. })));
    server.stop().await;
}
