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

fn sent(reply: Result<Reply, Error>) -> MessageId {
    match reply {
        Ok(Reply::Sent { id, .. }) => id,
        other => panic!("expected Sent, got {other:?}"),
    }
}

#[tokio::test]
async fn edits_deletions_and_redactions_reach_every_device_and_erase_the_text() {
    let (server, dir) = {
        let dir = tempfile::tempdir().expect("temp dir");
        let server = TestServer::start(
            &dir.path().join("chat.db"),
            config(),
            chat_server::ServerConfig::default(),
        )
        .await;
        (server, dir)
    };
    let mut alice = logged_in(server.addr, "alice", true).await;
    let mut bob = logged_in(server.addr, "bob", true).await;
    alice
        .request(Request::CreateRoom {
            room: "rust".into(),
            invite_only: false,
        })
        .await
        .expect("created");
    bob.request(Request::Join {
        room: "rust".into(),
    })
    .await
    .expect("joins");
    let typo = bob
        .send_text(room("rust"), 1, "teh secret")
        .await
        .expect("stored");
    alice.until(text_is("teh secret")).await.expect("arrives");
    let edit = sent(
        bob.request(Request::Edit {
            message: typo,
            text: "the secret".into(),
        })
        .await,
    );
    let got = alice
        .until(|e| matches!(e, ServerMessage::Edited { .. }))
        .await
        .expect("edit arrives");
    assert!(
        matches!(got, ServerMessage::Edited { id, message, text, .. } if id == edit && message == typo && text == "the secret")
    );
    // Only the author edits; only a moderator redacts.
    let refused = alice
        .request(Request::Edit {
            message: typo,
            text: "mine now".into(),
        })
        .await;
    assert_eq!(self::refused(refused), ErrorCode::Forbidden);
    let refused = bob
        .request(Request::Redact {
            message: typo,
            reason: String::new(),
        })
        .await;
    assert_eq!(self::refused(refused), ErrorCode::Forbidden);
    // bob's other device is offline; alice (the owner) redacts.
    let redaction = sent(
        alice
            .request(Request::Redact {
                message: typo,
                reason: "leak".into(),
            })
            .await,
    );
    bob.until(|e| matches!(e, ServerMessage::Deleted { id, .. } if *id == redaction))
        .await
        .expect("deletion arrives");
    let (mut phone, backlog) = {
        let mut s = chat_client::Session::connect(server.addr)
            .await
            .expect("connects");
        s.login("bob", PASSWORD, "bob-phone")
            .await
            .expect("logs in");
        let backlog = s.events().to_vec();
        (s, backlog)
    };
    assert!(!backlog
        .iter()
        .any(|e| matches!(e, ServerMessage::Message(m) if m.id == typo)));
    // History: a tombstone with no text.
    let page = phone
        .request(Request::History {
            target: room("rust"),
            before: None,
            limit: 10,
        })
        .await
        .expect("history");
    match page {
        Reply::Page { messages, .. } => {
            let entry = messages
                .iter()
                .find(|e| e.message.id == typo)
                .expect("tombstone");
            assert!(entry.deleted && entry.message.text.is_empty());
        }
        other => panic!("{other:?}"),
    }
    server.stop().await;
    // Erased from the file, not hidden.
    let bytes = std::fs::read(dir.path().join("chat.db")).expect("reads");
    let wal = std::fs::read(dir.path().join("chat.db-wal")).unwrap_or_default();
    for data in [bytes, wal] {
        assert!(
            !data.windows(10).any(|w| w == b"the secret"),
            "the text survives in the database"
        );
    }
}
