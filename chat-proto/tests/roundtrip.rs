//! Every message variant survives encode → decode unchanged.
//!
//! Property tests draw messages from `arbitrary` (driven by proptest's bytes); the explicit
//! samples below make sure each variant is exercised at least once, and the exhaustive `match`es
//! in the `*_tag` functions stop compiling when a variant is added without a sample.

use arbitrary::{Arbitrary, Unstructured};
use chat_proto::*;
use proptest::prelude::*;
use std::collections::BTreeSet;

fn roundtrip<M: WireMessage + PartialEq + std::fmt::Debug>(msg: &M) {
    let frame = encode(msg, MAX_FRAME_LEN_CAP).expect("encodes");
    let (decoded, used) = decode_frame::<M>(frame.as_bytes(), MAX_FRAME_LEN_CAP)
        .expect("decodes")
        .expect("whole frame");
    assert_eq!(used, frame.len());
    assert_eq!(&decoded, msg);
}

fn arbitrary_from<'a, T: Arbitrary<'a>>(bytes: &'a [u8]) -> Option<T> {
    T::arbitrary_take_rest(Unstructured::new(bytes)).ok()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn client_messages_roundtrip(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        if let Some(msg) = arbitrary_from::<ClientMessage>(&bytes) {
            roundtrip(&msg);
        }
    }

    #[test]
    fn server_messages_roundtrip(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        if let Some(msg) = arbitrary_from::<ServerMessage>(&bytes) {
            roundtrip(&msg);
        }
    }
}

fn client_tag(msg: &ClientMessage) -> String {
    match msg {
        ClientMessage::Hello(_) => "Hello".into(),
        ClientMessage::Request { request, .. } => format!("Request::{}", request_tag(request)),
        ClientMessage::Ack { .. } => "Ack".into(),
        ClientMessage::Typing { .. } => "Typing".into(),
        ClientMessage::Ping { .. } => "Ping".into(),
        ClientMessage::Pong { .. } => "Pong".into(),
    }
}

fn request_tag(request: &Request) -> &'static str {
    match request {
        Request::Register { .. } => "Register",
        Request::Login { .. } => "Login",
        Request::Resume { .. } => "Resume",
        Request::Logout => "Logout",
        Request::CreateRoom { .. } => "CreateRoom",
        Request::Join { .. } => "Join",
        Request::Leave { .. } => "Leave",
        Request::Invite { .. } => "Invite",
        Request::ListRooms => "ListRooms",
        Request::Who { .. } => "Who",
        Request::ListUsers => "ListUsers",
        Request::SetDisplayName { .. } => "SetDisplayName",
        Request::Send { .. } => "Send",
        Request::History { .. } => "History",
        Request::SetRole { .. } => "SetRole",
        Request::Kick { .. } => "Kick",
        Request::Ban { .. } => "Ban",
        Request::Unban { .. } => "Unban",
        Request::Mute { .. } => "Mute",
        Request::Edit { .. } => "Edit",
        Request::Delete { .. } => "Delete",
        Request::Redact { .. } => "Redact",
        Request::SetTopic { .. } => "SetTopic",
        Request::RoomList => "RoomList",
        Request::SetDisabled { .. } => "SetDisabled",
        Request::AuditLog { .. } => "AuditLog",
        Request::MarkRead { .. } => "MarkRead",
        Request::Search { .. } => "Search",
    }
}

fn server_tag(msg: &ServerMessage) -> String {
    match msg {
        ServerMessage::Welcome(_) => "Welcome".into(),
        ServerMessage::Ok { reply, .. } => format!("Ok::{}", reply_tag(reply)),
        ServerMessage::Err { error, .. } => format!("Err::{}", code_tag(&error.code)),
        ServerMessage::Message(_) => "Message".into(),
        ServerMessage::CaughtUp => "CaughtUp".into(),
        ServerMessage::Presence { .. } => "Presence".into(),
        ServerMessage::Typing { .. } => "Typing".into(),
        ServerMessage::Member { event, .. } => format!("Member::{event:?}"),
        ServerMessage::Error(_) => "Error".into(),
        ServerMessage::ShuttingDown => "ShuttingDown".into(),
        ServerMessage::Ping { .. } => "Ping".into(),
        ServerMessage::Pong { .. } => "Pong".into(),
        ServerMessage::Moderated { action, .. } => format!("Moderated::{action:?}"),
        ServerMessage::Edited { .. } => "Edited".into(),
        ServerMessage::Deleted { .. } => "Deleted".into(),
        ServerMessage::Topic { .. } => "Topic".into(),
        ServerMessage::DisplayName { .. } => "DisplayName".into(),
        ServerMessage::ReadMarker { .. } => "ReadMarker".into(),
        ServerMessage::Unread(_) => "Unread".into(),
    }
}

fn reply_tag(reply: &Reply) -> &'static str {
    match reply {
        Reply::Done => "Done",
        Reply::Session(_) => "Session",
        Reply::Sent { .. } => "Sent",
        Reply::Room(_) => "Room",
        Reply::Rooms(_) => "Rooms",
        Reply::Members { .. } => "Members",
        Reply::Users(_) => "Users",
        Reply::History { .. } => "History",
        Reply::Page { .. } => "Page",
        Reply::RoomList(_) => "RoomList",
        Reply::AuditLog { .. } => "AuditLog",
        Reply::SearchResults { .. } => "SearchResults",
        Reply::Roster { .. } => "Roster",
    }
}

fn code_tag(code: &ErrorCode) -> &'static str {
    match code {
        ErrorCode::BadRequest => "BadRequest",
        ErrorCode::UnsupportedVersion { .. } => "UnsupportedVersion",
        ErrorCode::NotAuthenticated => "NotAuthenticated",
        ErrorCode::AlreadyAuthenticated => "AlreadyAuthenticated",
        ErrorCode::UsernameTaken => "UsernameTaken",
        ErrorCode::InvalidName => "InvalidName",
        ErrorCode::WeakPassword => "WeakPassword",
        ErrorCode::BadCredentials => "BadCredentials",
        ErrorCode::NoSuchUser => "NoSuchUser",
        ErrorCode::NoSuchRoom => "NoSuchRoom",
        ErrorCode::RoomExists => "RoomExists",
        ErrorCode::NotAMember => "NotAMember",
        ErrorCode::Forbidden => "Forbidden",
        ErrorCode::TooLarge => "TooLarge",
        ErrorCode::TooManyRooms => "TooManyRooms",
        ErrorCode::RateLimited { .. } => "RateLimited",
        ErrorCode::ServerFull => "ServerFull",
        ErrorCode::Timeout => "Timeout",
        ErrorCode::Internal => "Internal",
        ErrorCode::Unavailable { .. } => "Unavailable",
    }
}

fn room(name: &str) -> Target {
    Target::Room(name.into())
}

fn user(name: &str) -> Target {
    Target::User(name.into())
}

fn chat_message() -> ChatMessage {
    ChatMessage {
        id: MessageId(u64::MAX),
        from: "ünïcødé".into(),
        target: user("bob"),
        sent_at: 1_763_700_000_000,
        client_msg_id: ClientMsgId(1 << 40),
        text: "multi\nline\u{0}text".into(),
    }
}

fn status() -> UserStatus {
    UserStatus {
        user: "alice".into(),
        display_name: "Alice A.".into(),
        online: true,
    }
}

fn room_info() -> RoomInfo {
    RoomInfo {
        name: "rust".into(),
        invite_only: true,
        members: 70_000,
        joined: false,
    }
}

fn client_samples() -> Vec<ClientMessage> {
    let requests = vec![
        Request::Register {
            username: "alice".into(),
            password: "correct horse".into(),
            device: "laptop".into(),
        },
        Request::Login {
            username: "alice".into(),
            password: String::new(),
            device: "phone".into(),
        },
        Request::Resume {
            token: "t".repeat(43),
            device: "phone".into(),
        },
        Request::Logout,
        Request::CreateRoom {
            room: "rust".into(),
            invite_only: true,
        },
        Request::Join {
            room: "general".into(),
        },
        Request::Leave {
            room: "general".into(),
        },
        Request::Invite {
            room: "rust".into(),
            user: "bob".into(),
        },
        Request::ListRooms,
        Request::Who {
            room: "rust".into(),
        },
        Request::ListUsers,
        Request::SetDisplayName {
            display_name: "Alice".into(),
        },
        Request::Send {
            target: room("rust"),
            client_msg_id: ClientMsgId(0),
            text: String::new(),
        },
        Request::History {
            target: user("bob"),
            before: Some(MessageId(99)),
            limit: u16::MAX,
        },
        Request::SetRole {
            room: "rust".into(),
            user: "bob".into(),
            role: Role::Owner,
        },
        Request::Kick {
            room: "rust".into(),
            user: "bob".into(),
            reason: "ünïcødé".into(),
        },
        Request::Ban {
            room: "rust".into(),
            user: "bob".into(),
            reason: String::new(),
        },
        Request::Unban {
            room: "rust".into(),
            user: "bob".into(),
        },
        Request::Mute {
            room: "rust".into(),
            user: "bob".into(),
            muted: true,
        },
        Request::Edit {
            message: MessageId(u64::MAX),
            text: "ünïcødé".into(),
        },
        Request::Delete {
            message: MessageId(0),
        },
        Request::Redact {
            message: MessageId(251),
            reason: "why".into(),
        },
        Request::SetTopic {
            room: "rust".into(),
            topic: "ünïcødé".into(),
        },
        Request::RoomList,
        Request::SetDisabled {
            user: "mallory".into(),
            disabled: true,
        },
        Request::AuditLog {
            room: Some("rust".into()),
            before: Some(u64::MAX),
            limit: u16::MAX,
        },
        Request::AuditLog {
            room: None,
            before: None,
            limit: 0,
        },
        Request::MarkRead {
            target: user("bob"),
            up_to: MessageId(u64::MAX),
        },
        Request::Search {
            text: "ünïcødé words".into(),
            before: Some(MessageId(251)),
            limit: u16::MAX,
        },
    ];
    let mut samples = vec![
        ClientMessage::Hello(Hello {
            min_version: 0,
            max_version: u16::MAX,
            client: "x".into(),
        }),
        ClientMessage::Ack {
            up_to: MessageId(251),
        },
        ClientMessage::Typing {
            target: user("bob"),
            active: false,
        },
        ClientMessage::Ping { nonce: u64::MAX },
        ClientMessage::Pong { nonce: 250 },
    ];
    samples.extend(
        requests
            .into_iter()
            .enumerate()
            .map(|(i, request)| ClientMessage::Request {
                id: RequestId(i as u32 * 1000),
                request,
            }),
    );
    samples
}

fn server_samples() -> Vec<ServerMessage> {
    let replies = vec![
        Reply::Done,
        Reply::Session(Session {
            user: "alice".into(),
            display_name: "Alice".into(),
            token: "secret".into(),
            token_expires_at: u64::MAX,
        }),
        Reply::Sent {
            id: MessageId(1),
            sent_at: 2,
        },
        Reply::Room(room_info()),
        Reply::Rooms(vec![room_info(), room_info()]),
        Reply::Members {
            room: "rust".into(),
            members: vec![status()],
        },
        Reply::Users(vec![]),
        Reply::History {
            messages: vec![chat_message(), chat_message()],
            more: true,
        },
    ];
    let codes = vec![
        ErrorCode::BadRequest,
        ErrorCode::UnsupportedVersion { min: 1, max: 3 },
        ErrorCode::NotAuthenticated,
        ErrorCode::AlreadyAuthenticated,
        ErrorCode::UsernameTaken,
        ErrorCode::InvalidName,
        ErrorCode::WeakPassword,
        ErrorCode::BadCredentials,
        ErrorCode::NoSuchUser,
        ErrorCode::NoSuchRoom,
        ErrorCode::RoomExists,
        ErrorCode::NotAMember,
        ErrorCode::Forbidden,
        ErrorCode::TooLarge,
        ErrorCode::TooManyRooms,
        ErrorCode::RateLimited {
            retry_after_ms: u32::MAX,
        },
        ErrorCode::ServerFull,
        ErrorCode::Timeout,
        ErrorCode::Internal,
        ErrorCode::Unavailable {
            retry_after_ms: 1000,
        },
    ];
    let mut samples = vec![
        ServerMessage::Welcome(Welcome {
            version: 1,
            server: "chat-server/0.1.0".into(),
            limits: Limits {
                max_frame_len: 65_536,
                max_text_len: 4096,
                max_rooms_per_user: 100,
                max_history_page: 200,
                request_rate_per_sec: 20,
                request_burst: 40,
                login_timeout_ms: 10_000,
                keepalive_interval_ms: 30_000,
                keepalive_timeout_ms: 15_000,
            },
            default_room: "general".into(),
        }),
        ServerMessage::Message(chat_message()),
        ServerMessage::CaughtUp,
        ServerMessage::Presence {
            user: "bob".into(),
            online: false,
        },
        ServerMessage::Typing {
            user: "bob".into(),
            target: room("general"),
            active: true,
        },
        ServerMessage::Error(ErrorReply::new(ErrorCode::TooLarge, "frame too large")),
        ServerMessage::ShuttingDown,
        ServerMessage::Ping { nonce: 1 },
        ServerMessage::Pong { nonce: 2 },
    ];
    for event in [
        MemberEvent::Joined,
        MemberEvent::Left,
        MemberEvent::Invited { by: "carol".into() },
    ] {
        samples.push(ServerMessage::Member {
            room: "rust".into(),
            user: "dave".into(),
            event,
        });
    }
    for action in [
        ModAction::Kicked,
        ModAction::Banned,
        ModAction::Unbanned,
        ModAction::Muted,
        ModAction::Unmuted,
        ModAction::Opped,
        ModAction::Deopped,
        ModAction::Redacted,
        ModAction::Disabled,
        ModAction::Enabled,
    ] {
        samples.push(ServerMessage::Moderated {
            room: "rust".into(),
            by: "alice".into(),
            user: "dave".into(),
            action,
            reason: "why".into(),
        });
    }
    samples.push(ServerMessage::Topic {
        room: "rust".into(),
        topic: "t".into(),
        by: String::new(),
    });
    samples.push(ServerMessage::DisplayName {
        user: "bob".into(),
        display_name: "Bob B.".into(),
    });
    samples.push(ServerMessage::Ok {
        id: RequestId(9),
        reply: Reply::RoomList(vec![RoomEntry {
            info: room_info(),
            topic: "t".into(),
            unread: u32::MAX,
        }]),
    });
    samples.push(ServerMessage::Ok {
        id: RequestId(10),
        reply: Reply::AuditLog {
            entries: vec![AuditEntry {
                position: u64::MAX,
                room: String::new(),
                by: "root".into(),
                user: "mallory".into(),
                action: ModAction::Disabled,
                reason: "ünïcødé".into(),
                at: u64::MAX,
            }],
            more: true,
        },
    });
    samples.push(ServerMessage::ReadMarker {
        target: room("rust"),
        up_to: MessageId(65_536),
    });
    samples.push(ServerMessage::Unread(vec![
        UnreadCount {
            target: room("rust"),
            read_up_to: MessageId(0),
            unread: 1000,
            latest: MessageId(u64::MAX),
        },
        UnreadCount {
            target: user("bob"),
            read_up_to: MessageId(7),
            unread: 0,
            latest: MessageId(0),
        },
    ]));
    samples.push(ServerMessage::Ok {
        id: RequestId(10),
        reply: Reply::SearchResults {
            messages: vec![chat_message()],
            more: false,
        },
    });
    samples.push(ServerMessage::Ok {
        id: RequestId(11),
        reply: Reply::Roster {
            room: "rust".into(),
            members: vec![RosterEntry {
                status: UserStatus {
                    user: "bob".into(),
                    display_name: "ünïcødé".into(),
                    online: true,
                },
                role: Role::Owner,
                muted: true,
            }],
        },
    });
    samples.push(ServerMessage::Edited {
        id: MessageId(2),
        message: MessageId(1),
        from: "bob".into(),
        target: user("alice"),
        text: "ünïcødé".into(),
    });
    samples.push(ServerMessage::Deleted {
        id: MessageId(3),
        message: MessageId(1),
        target: room("rust"),
        by: "alice".into(),
        redacted: true,
        reason: "why".into(),
    });
    samples.push(ServerMessage::Ok {
        id: RequestId(8),
        reply: Reply::Page {
            messages: vec![PageEntry {
                message: chat_message(),
                edited: true,
                deleted: false,
            }],
            more: true,
        },
    });
    samples.extend(replies.into_iter().map(|reply| ServerMessage::Ok {
        id: RequestId(7),
        reply,
    }));
    samples.extend(codes.into_iter().map(|code| ServerMessage::Err {
        id: RequestId(u32::MAX),
        error: ErrorReply::new(code, "why"),
    }));
    samples
}

#[test]
fn every_client_variant_roundtrips() {
    let samples = client_samples();
    let tags: BTreeSet<_> = samples.iter().map(client_tag).collect();
    assert_eq!(tags.len(), 5 + 14 + 14, "one sample per variant: {tags:?}");
    samples.iter().for_each(roundtrip);
}

#[test]
fn every_server_variant_roundtrips() {
    let samples = server_samples();
    let tags: BTreeSet<_> = samples.iter().map(server_tag).collect();
    assert_eq!(
        tags.len(),
        9 + 3 + 8 + 20 + 10 + 2 + 2 + 3 + 3 + 1,
        "one sample per variant: {tags:?}"
    );
    samples.iter().for_each(roundtrip);
}

/// Regression: the decode limit once equalled the payload size, but bincode counts the
/// in-memory size of vector elements, so a valid page of small messages failed to decode.
#[test]
fn decode_limit_allows_in_memory_expansion() {
    let tiny = |i| ChatMessage {
        id: MessageId(i),
        from: String::new(),
        target: Target::Room(String::new()),
        sent_at: 0,
        client_msg_id: ClientMsgId(0),
        text: String::new(),
    };
    for n in [1, 3, 30, 3000] {
        roundtrip(&ServerMessage::Ok {
            id: RequestId(1),
            reply: Reply::History {
                messages: (0..n).map(tiny).collect(),
                more: false,
            },
        });
        let users = vec![
            UserStatus {
                user: String::new(),
                display_name: String::new(),
                online: false,
            };
            n as usize
        ];
        roundtrip(&ServerMessage::Ok {
            id: RequestId(1),
            reply: Reply::Users(users),
        });
    }
}
