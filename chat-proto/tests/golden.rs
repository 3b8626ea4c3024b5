//! Golden frames: these bytes are the wire format. They appear verbatim in docs/PROTOCOL.md; a
//! failure here means the format changed, which needs a new protocol version.

use chat_proto::*;

/// Asserts that `msg` encodes to exactly `hex` and that `hex` decodes back to `msg`.
fn check<M: WireMessage + PartialEq + std::fmt::Debug>(msg: M, hex: &str) {
    let frame = encode(&msg, DEFAULT_MAX_FRAME_LEN).expect("encodes");
    assert_eq!(
        hex::encode(frame.as_bytes()),
        hex.replace(' ', ""),
        "{msg:?}"
    );
    let bytes = hex::decode(hex.replace(' ', "")).expect("valid hex");
    let (decoded, used) = decode_frame::<M>(&bytes, DEFAULT_MAX_FRAME_LEN)
        .expect("decodes")
        .expect("whole frame");
    assert_eq!(used, bytes.len());
    assert_eq!(decoded, msg);
}

#[test]
fn hello() {
    check(
        ClientMessage::Hello(Hello {
            min_version: 1,
            max_version: 1,
            client: "cli".into(),
        }),
        "00000007 00 01 01 03636c69",
    );
}

#[test]
fn login_request() {
    check(
        ClientMessage::Request {
            id: RequestId(1),
            request: Request::Login {
                username: "alice".into(),
                password: "secret-pw".into(),
                device: "laptop".into(),
            },
        },
        "0000001a 01 01 01 05616c696365 097365637265742d7077 066c6170746f70",
    );
}

#[test]
fn send_to_room() {
    check(
        ClientMessage::Request {
            id: RequestId(2),
            request: Request::Send {
                target: Target::Room("general".into()),
                client_msg_id: ClientMsgId(300),
                text: "hi".into(),
            },
        },
        "00000012 01 02 0c 00 0767656e6572616c fb2c01 026869",
    );
}

#[test]
fn ack() {
    check(
        ClientMessage::Ack {
            up_to: MessageId(1000),
        },
        "00000004 02 fbe803",
    );
}

#[test]
fn delivered_direct_message() {
    check(
        ServerMessage::Message(ChatMessage {
            id: MessageId(42),
            from: "bob".into(),
            target: Target::User("alice".into()),
            sent_at: 1_763_700_000_000,
            client_msg_id: ClientMsgId(7),
            text: "hey".into(),
        }),
        "0000001b 03 2a 03626f62 01 05616c696365 fd0045b6a49a010000 07 03686579",
    );
}

#[test]
fn sent_reply() {
    check(
        ServerMessage::Ok {
            id: RequestId(2),
            reply: Reply::Sent {
                id: MessageId(42),
                sent_at: 1_763_700_000_000,
            },
        },
        "0000000d 01 02 02 2a fd0045b6a49a010000",
    );
}

#[test]
fn rate_limited_error() {
    check(
        ServerMessage::Err {
            id: RequestId(2),
            error: ErrorReply::new(
                ErrorCode::RateLimited {
                    retry_after_ms: 1500,
                },
                "slow down",
            ),
        },
        "00000010 02 02 0f fbdc05 09736c6f7720646f776e",
    );
}

#[test]
fn caught_up() {
    check(ServerMessage::CaughtUp, "00000001 04");
}

// ===== version 2 =====

#[test]
fn hello_for_versions_1_to_2() {
    check(
        ClientMessage::Hello(Hello {
            min_version: 1,
            max_version: 2,
            client: "cli".into(),
        }),
        "00000007 00 01 02 03636c69",
    );
}

#[test]
fn kick_request() {
    check(
        ClientMessage::Request {
            id: RequestId(3),
            request: Request::Kick {
                room: "rust".into(),
                user: "carol".into(),
                reason: "spam".into(),
            },
        },
        "00000013 01 03 0f 0472757374 056361726f6c 047370616d",
    );
}

#[test]
fn moderated_event() {
    check(
        ServerMessage::Moderated {
            room: "rust".into(),
            by: "bob".into(),
            user: "carol".into(),
            action: ModAction::Kicked,
            reason: "spam".into(),
        },
        "00000016 0c 0472757374 03626f62 056361726f6c 00 047370616d",
    );
}

#[test]
fn edit_request() {
    check(
        ClientMessage::Request {
            id: RequestId(4),
            request: Request::Edit {
                message: MessageId(42),
                text: "hello".into(),
            },
        },
        "0000000a 01 04 13 2a 0568656c6c6f",
    );
}

#[test]
fn edited_event() {
    check(
        ServerMessage::Edited {
            id: MessageId(43),
            message: MessageId(42),
            from: "bob".into(),
            target: Target::Room("rust".into()),
            text: "hello".into(),
        },
        "00000013 0d 2b 2a 03626f62 00 0472757374 0568656c6c6f",
    );
}

#[test]
fn deleted_event() {
    check(
        ServerMessage::Deleted {
            id: MessageId(44),
            message: MessageId(42),
            target: Target::Room("rust".into()),
            by: "alice".into(),
            redacted: true,
            reason: "spam".into(),
        },
        "00000015 0e 2c 2a 00 0472757374 05616c696365 01 047370616d",
    );
}

#[test]
fn empty_page_reply() {
    check(
        ServerMessage::Ok {
            id: RequestId(5),
            reply: Reply::Page {
                messages: Vec::new(),
                more: false,
            },
        },
        "00000005 01 05 08 00 00",
    );
}

#[test]
fn set_topic_request() {
    check(
        ClientMessage::Request {
            id: RequestId(6),
            request: Request::SetTopic {
                room: "rust".into(),
                topic: "hi".into(),
            },
        },
        "0000000b 01 06 16 0472757374 026869",
    );
}

#[test]
fn topic_event() {
    check(
        ServerMessage::Topic {
            room: "rust".into(),
            topic: "hi".into(),
            by: "bob".into(),
        },
        "0000000d 0f 0472757374 026869 03626f62",
    );
}

#[test]
fn set_disabled_request() {
    check(
        ClientMessage::Request {
            id: RequestId(7),
            request: Request::SetDisabled {
                user: "carol".into(),
                disabled: true,
            },
        },
        "0000000a 01 07 18 056361726f6c 01",
    );
}

#[test]
fn audit_log_request() {
    check(
        ClientMessage::Request {
            id: RequestId(8),
            request: Request::AuditLog {
                room: Some("rust".into()),
                before: None,
                limit: 20,
            },
        },
        "0000000b 01 08 19 01 0472757374 00 14",
    );
}

#[test]
fn audit_log_reply() {
    check(
        ServerMessage::Ok {
            id: RequestId(9),
            reply: Reply::AuditLog {
                entries: vec![AuditEntry {
                    position: 3,
                    room: String::new(),
                    by: "root".into(),
                    user: "carol".into(),
                    action: ModAction::Disabled,
                    reason: String::new(),
                    at: 1000,
                }],
                more: false,
            },
        },
        "00000017 01 09 0a 01 03 00 04726f6f74 056361726f6c 08 00 fbe803 00",
    );
}

#[test]
fn mark_read_request() {
    check(
        ClientMessage::Request {
            id: RequestId(7),
            request: Request::MarkRead {
                target: Target::Room("rust".into()),
                up_to: MessageId(42),
            },
        },
        "0000000a 01 07 1a 00 0472757374 2a",
    );
}

#[test]
fn read_marker_event() {
    check(
        ServerMessage::ReadMarker {
            target: Target::Room("rust".into()),
            up_to: MessageId(42),
        },
        "00000008 11 00 0472757374 2a",
    );
}

#[test]
fn unread_event() {
    check(
        ServerMessage::Unread(vec![UnreadCount {
            target: Target::Room("rust".into()),
            read_up_to: MessageId(40),
            unread: 2,
            latest: MessageId(42),
        }]),
        "0000000b 12 01 00 0472757374 28 02 2a",
    );
}

#[test]
fn search_request() {
    check(
        ClientMessage::Request {
            id: RequestId(8),
            request: Request::Search {
                text: "hi".into(),
                before: None,
                limit: 20,
            },
        },
        "00000008 01 08 1b 026869 00 14",
    );
}

#[test]
fn search_results_reply() {
    check(
        ServerMessage::Ok {
            id: RequestId(8),
            reply: Reply::SearchResults {
                messages: vec![ChatMessage {
                    id: MessageId(42),
                    from: "bob".into(),
                    target: Target::User("alice".into()),
                    sent_at: 1_763_700_000_000,
                    client_msg_id: ClientMsgId(7),
                    text: "hey".into(),
                }],
                more: false,
            },
        },
        "0000001f 01 08 0b 01 2a 03626f62 01 05616c696365 fd0045b6a49a010000 07 03686579 00",
    );
}

#[test]
fn room_list_reply() {
    check(
        ServerMessage::Ok {
            id: RequestId(9),
            reply: Reply::RoomList(vec![RoomEntry {
                info: RoomInfo {
                    name: "rust".into(),
                    invite_only: false,
                    members: 3,
                    joined: true,
                },
                topic: "hi".into(),
                unread: 2,
            }]),
        },
        "00000010 01 09 09 01 0472757374 00 03 01 026869 02",
    );
}

#[test]
fn roster_reply() {
    check(
        ServerMessage::Ok {
            id: RequestId(10),
            reply: Reply::Roster {
                room: "rust".into(),
                members: vec![RosterEntry {
                    status: UserStatus {
                        user: "bob".into(),
                        display_name: "bob".into(),
                        online: true,
                    },
                    role: Role::Moderator,
                    muted: false,
                }],
            },
        },
        "00000014 01 0a 0c 0472757374 01 03626f62 03626f62 01 01 00",
    );
}
