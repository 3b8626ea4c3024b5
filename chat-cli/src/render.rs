//! Turning server events and replies into output lines. Pure apart from [`clock`], which reads
//! the local time zone; unit-tested with fixed times.

use chat_proto::{
    ChatMessage, MemberEvent, RoomInfo, ServerMessage, Target, UnixMillis, UserStatus,
};
use chrono::{Local, TimeZone};

/// `HH:MM` in local time.
pub(crate) fn clock(at: UnixMillis) -> String {
    i64::try_from(at)
        .ok()
        .and_then(|ms| Local.timestamp_millis_opt(ms).single())
        .map_or_else(|| "--:--".into(), |t| t.format("%H:%M").to_string())
}

/// A chat message, e.g. `12:01 #general <alice> hello` or `12:01 [dm] <bob> hi`. Messages
/// replayed from the offline queue end in `(earlier)`.
pub(crate) fn message(time: &str, m: &ChatMessage, me: Option<&str>, earlier: bool) -> String {
    let place = match &m.target {
        Target::Room(room) => format!("#{room}"),
        Target::User(to) if Some(m.from.as_str()) == me && Some(to.as_str()) != me => {
            format!("[dm to {to}]")
        }
        Target::User(_) => "[dm]".into(),
    };
    let mark = if earlier { "  (earlier)" } else { "" };
    format!("{time} {place} <{}> {}{mark}", m.from, m.text)
}

/// An event other than a chat message or a reply, or `None` if it shows nothing.
pub(crate) fn event(time: &str, event: &ServerMessage) -> Option<String> {
    let text = match event {
        ServerMessage::Typing {
            user,
            target,
            active: true,
        } => match target {
            Target::Room(room) => format!("* {user} is typing in #{room}"),
            Target::User(_) => format!("* {user} is typing"),
        },
        ServerMessage::Presence { user, online } => {
            format!("* {user} is {}", if *online { "online" } else { "offline" })
        }
        ServerMessage::Member { room, user, event } => match event {
            MemberEvent::Joined => format!("* {user} joined #{room}"),
            MemberEvent::Left => format!("* {user} left #{room}"),
            MemberEvent::Invited { by } => format!("* {by} added {user} to #{room}"),
        },
        ServerMessage::ShuttingDown => "* the server is shutting down".into(),
        ServerMessage::Error(error) => return Some(format!("! {}", error.message)),
        _ => return None,
    };
    Some(format!("{time} {text}"))
}

/// A room list, one room per line.
pub(crate) fn rooms(rooms: &[RoomInfo]) -> Vec<String> {
    if rooms.is_empty() {
        return vec!["* no rooms".into()];
    }
    rooms
        .iter()
        .map(|r| {
            let mut notes = vec![format!(
                "{} member{}",
                r.members,
                if r.members == 1 { "" } else { "s" }
            )];
            if r.invite_only {
                notes.push("invite-only".into());
            }
            if r.joined {
                notes.push("joined".into());
            }
            format!("* #{} ({})", r.name, notes.join(", "))
        })
        .collect()
}

/// Users with their status on one line: `* #rust: alice (online), bob`.
pub(crate) fn users(label: &str, users: &[UserStatus]) -> String {
    let names: Vec<String> = users
        .iter()
        .map(|u| {
            let mut name = u.user.clone();
            if u.display_name != u.user {
                name.push_str(&format!(" \"{}\"", u.display_name));
            }
            if u.online {
                name.push_str(" (online)");
            }
            name
        })
        .collect();
    format!("* {label}: {}", names.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_proto::{ClientMsgId, ErrorCode, ErrorReply, MessageId};

    fn msg(from: &str, target: Target, text: &str) -> ChatMessage {
        ChatMessage {
            id: MessageId(1),
            from: from.into(),
            target,
            sent_at: 0,
            client_msg_id: ClientMsgId(1),
            text: text.into(),
        }
    }

    #[test]
    fn messages() {
        let room = msg("alice", Target::Room("general".into()), "hello");
        assert_eq!(
            message("12:01", &room, Some("bob"), false),
            "12:01 #general <alice> hello"
        );
        let dm = msg("bob", Target::User("alice".into()), "hi");
        assert_eq!(
            message("12:01", &dm, Some("alice"), false),
            "12:01 [dm] <bob> hi"
        );
        assert_eq!(
            message("12:01", &dm, Some("bob"), true),
            "12:01 [dm to alice] <bob> hi  (earlier)"
        );
    }

    #[test]
    fn events() {
        let typing = ServerMessage::Typing {
            user: "bob".into(),
            target: Target::Room("general".into()),
            active: true,
        };
        assert_eq!(
            event("12:01", &typing).as_deref(),
            Some("12:01 * bob is typing in #general")
        );
        let stopped = ServerMessage::Typing {
            user: "bob".into(),
            target: Target::Room("general".into()),
            active: false,
        };
        assert_eq!(event("12:01", &stopped), None);
        let online = ServerMessage::Presence {
            user: "carol".into(),
            online: true,
        };
        assert_eq!(
            event("12:01", &online).as_deref(),
            Some("12:01 * carol is online")
        );
        let joined = ServerMessage::Member {
            room: "rust".into(),
            user: "dave".into(),
            event: MemberEvent::Joined,
        };
        assert_eq!(
            event("12:01", &joined).as_deref(),
            Some("12:01 * dave joined #rust")
        );
        let error = ServerMessage::Error(ErrorReply::new(ErrorCode::Timeout, "no login in time"));
        assert_eq!(
            event("12:01", &error).as_deref(),
            Some("! no login in time")
        );
    }

    #[test]
    fn listings() {
        let info = RoomInfo {
            name: "rust".into(),
            invite_only: true,
            members: 1,
            joined: true,
        };
        assert_eq!(rooms(&[info]), ["* #rust (1 member, invite-only, joined)"]);
        let people = [
            UserStatus {
                user: "alice".into(),
                display_name: "Alice".into(),
                online: true,
            },
            UserStatus {
                user: "bob".into(),
                display_name: "bob".into(),
                online: false,
            },
        ];
        assert_eq!(
            users("#rust", &people),
            "* #rust: alice \"Alice\" (online), bob"
        );
    }
}
