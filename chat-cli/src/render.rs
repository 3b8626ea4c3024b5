//! Turning the client's events into output lines. Pure apart from [`clock`], which reads the
//! local time zone; unit-tested with fixed times.

use chat_client::command::target_label;
use chat_client::Event;
use chat_proto::{ChatMessage, MemberEvent, RoomInfo, Target, UnixMillis, UserStatus};
use chrono::{Local, TimeZone};

/// The lines that show `event`; `now` stamps events that carry no time of their own.
pub(crate) fn lines(event: &Event, now: UnixMillis) -> Vec<String> {
    let text = match event {
        Event::Message {
            message: m,
            me,
            earlier,
        } => message(&clock(m.sent_at), m, me.as_deref(), *earlier),
        Event::History { messages, more, me } => {
            let mut lines = Vec::new();
            if messages.is_empty() {
                lines.push("* no messages yet".into());
            }
            for m in messages.iter().rev() {
                lines.push(message(&clock(m.sent_at), m, me.as_deref(), false));
            }
            if *more {
                lines.push("* older messages exist: /history N shows more".into());
            }
            return lines;
        }
        Event::Help(text) => return text.lines().map(str::to_owned).collect(),
        Event::Switched(target) => format!("* talking to {}", target_label(target)),
        Event::LoggedIn { user, room } => format!("* logged in as {user}; talking to #{room}"),
        Event::LoggedOut => "* logged out".into(),
        Event::Reconnecting => "* reconnecting…".into(),
        Event::Reconnected => "* reconnected".into(),
        Event::Unreachable { server, error } => {
            format!("* cannot reach {server} ({error}); retrying…")
        }
        Event::Joined { room, created } => {
            let verb = if *created { "created" } else { "joined" };
            let plural = if room.members == 1 { "" } else { "s" };
            format!(
                "* {verb} #{} ({} member{plural}); talking there",
                room.name, room.members
            )
        }
        Event::Added { user, room } => format!("* added {user} to #{room}"),
        Event::Left(room) => format!("* left #{room}"),
        Event::Rooms(list) => return rooms(list),
        Event::Members { room, members } => users(&format!("#{room}"), members),
        Event::Users(list) => users("users", list),
        Event::DisplayName(name) => format!("* display name set to {name}"),
        Event::Failed(text) => format!("! {text}"),
        Event::Unexpected(text) => format!("* {text}"),
        other => return self::event(&clock(now), other).into_iter().collect(),
    };
    vec![text]
}

/// `HH:MM` in local time.
pub(crate) fn clock(at: UnixMillis) -> String {
    i64::try_from(at)
        .ok()
        .and_then(|ms| Local.timestamp_millis_opt(ms).single())
        .map_or_else(|| "--:--".into(), |t| t.format("%H:%M").to_string())
}

/// The current time in Unix milliseconds.
pub(crate) fn now_ms() -> UnixMillis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(0))
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

/// A server event other than a chat message, or `None` if it shows nothing.
pub(crate) fn event(time: &str, event: &Event) -> Option<String> {
    let text = match event {
        Event::Typing {
            user,
            target,
            active: true,
        } => match target {
            Target::Room(room) => format!("* {user} is typing in #{room}"),
            Target::User(_) => format!("* {user} is typing"),
        },
        Event::Presence { user, online } => {
            format!("* {user} is {}", if *online { "online" } else { "offline" })
        }
        Event::Member { room, user, event } => match event {
            MemberEvent::Joined => format!("* {user} joined #{room}"),
            MemberEvent::Left => format!("* {user} left #{room}"),
            MemberEvent::Invited { by } => format!("* {by} added {user} to #{room}"),
        },
        Event::ShuttingDown => "* the server is shutting down".into(),
        Event::ServerError(error) => return Some(format!("! {}", error.message)),
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
        let typing = Event::Typing {
            user: "bob".into(),
            target: Target::Room("general".into()),
            active: true,
        };
        assert_eq!(
            event("12:01", &typing).as_deref(),
            Some("12:01 * bob is typing in #general")
        );
        let stopped = Event::Typing {
            user: "bob".into(),
            target: Target::Room("general".into()),
            active: false,
        };
        assert_eq!(event("12:01", &stopped), None);
        let online = Event::Presence {
            user: "carol".into(),
            online: true,
        };
        assert_eq!(
            event("12:01", &online).as_deref(),
            Some("12:01 * carol is online")
        );
        let joined = Event::Member {
            room: "rust".into(),
            user: "dave".into(),
            event: MemberEvent::Joined,
        };
        assert_eq!(
            event("12:01", &joined).as_deref(),
            Some("12:01 * dave joined #rust")
        );
        let error = Event::ServerError(ErrorReply::new(ErrorCode::Timeout, "no login in time"));
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
