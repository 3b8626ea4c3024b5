//! Turning the client's events into text. Pure apart from [`clock`] and [`now_ms`], which read
//! the local time zone and the clock; unit-tested with fixed times.
//!
//! Everything from the server is untrusted: [`clean`] escapes control characters in names and
//! [`text_lines`] in message text (a newline starts a continuation line, a tab becomes spaces),
//! so no server or user can move the cursor, change colours, set the window title or fake a
//! line of its own. A multi-line message shows its later lines indented under its prefix.

use chat_client::command::target_label;
use chat_client::{Event, ACTION_PREFIX};
use chat_proto::{ChatMessage, MemberEvent, ModAction, RoomInfo, Target, UnixMillis, UserStatus};
use chrono::{Local, TimeZone};
use unicode_width::UnicodeWidthStr;

/// `s` with every control character escaped: C0 as `^X`, DEL as `^?`, C1 and the bidirectional
/// and invisible formatting characters as `<U+XXXX>`. Newlines and tabs too: for names.
pub(crate) fn clean(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        escape(c, &mut out);
    }
    out
}

fn escape(c: char, out: &mut String) {
    match c {
        '\0'..='\x1f' => {
            out.push('^');
            out.push(char::from(b'@' + c as u8));
        }
        '\x7f' => out.push_str("^?"),
        '\u{80}'..='\u{9f}'
        | '\u{200b}'..='\u{200f}'
        | '\u{2028}'..='\u{202e}'
        | '\u{2060}'..='\u{206f}'
        | '\u{feff}'
        | '\u{fff9}'..='\u{fffb}' => out.push_str(&format!("<U+{:04X}>", u32::from(c))),
        c => out.push(c),
    }
}

/// A message text as lines: split at newlines, tabs as spaces, every other control character
/// escaped (see [`clean`]). Never empty.
pub(crate) fn text_lines(text: &str) -> Vec<String> {
    text.split('\n')
        .map(|line| {
            let mut out = String::with_capacity(line.len());
            for c in line.chars() {
                if c == '\t' {
                    out.push_str("    ");
                } else {
                    escape(c, &mut out);
                }
            }
            out
        })
        .collect()
}

/// `prefix` then the text's lines, the later ones indented to the prefix's width (at least
/// two spaces, so a continuation never looks like a line of its own).
pub(crate) fn block(prefix: &str, lines: &[String]) -> Vec<String> {
    let indent = " ".repeat(prefix.width().max(2));
    lines
        .iter()
        .enumerate()
        .map(|(i, line)| {
            if i == 0 {
                format!("{prefix}{line}")
            } else {
                format!("{indent}{line}")
            }
        })
        .collect()
}

/// The lines that show `event` in the line-oriented modes (plain and script); `now` stamps
/// events that carry no time of their own. Typing is a state, not a line: it shows nothing.
pub(crate) fn lines(event: &Event, now: UnixMillis) -> Vec<String> {
    lines_at(event, Some(now), &clock)
}

/// [`lines`] with the date in the time of messages from another day than `now`'s
/// (`2026-11-21 12:01`), for people; scripts keep `HH:MM`.
pub(crate) fn dated(event: &Event, now: UnixMillis) -> Vec<String> {
    let today = day_key(now);
    let stamp = move |at: UnixMillis| match (day_key(at), today) {
        (Some(day), Some(today)) if day != today => local(at).map_or_else(
            || "--:--".into(),
            |t| t.format("%Y-%m-%d %H:%M").to_string(),
        ),
        _ => clock(at),
    };
    lines_at(event, Some(now), &stamp)
}

/// [`lines`] without the time stamp of events (for screens that stamp lines themselves).
pub(crate) fn untimed(event: &Event) -> Vec<String> {
    lines_at(event, None, &clock)
}

fn lines_at(
    event: &Event,
    now: Option<UnixMillis>,
    clock: &dyn Fn(UnixMillis) -> String,
) -> Vec<String> {
    let text = match event {
        Event::Message {
            message: m,
            me,
            earlier,
        } => return message(&clock(m.sent_at), m, me.as_deref(), *earlier),
        Event::Own { message: m, status } => {
            return match status {
                chat_client::Delivery::Stored => message(&clock(m.sent_at), m, None, false),
                chat_client::Delivery::Pending | chat_client::Delivery::Refused => Vec::new(),
            }
        }
        Event::History {
            messages,
            more,
            me,
            edited,
            deleted,
            ..
        } => {
            let mut lines = Vec::new();
            if messages.is_empty() {
                lines.push("* no messages yet".into());
            }
            // Each line starts with the message's id, for /edit, /delete and /redact.
            for m in messages.iter().rev() {
                let time = format!("{} [{}]", clock(m.sent_at), m.id.0);
                if deleted.contains(&m.id) {
                    lines.push(format!("{time} {} (deleted)", place(m, me.as_deref())));
                    continue;
                }
                let mut shown = message(&time, m, me.as_deref(), false);
                if edited.contains(&m.id) {
                    if let Some(last) = shown.last_mut() {
                        last.push_str("  (edited)");
                    }
                }
                lines.extend(shown);
            }
            if *more {
                lines.push("* older messages exist: /history N shows more".into());
            }
            return lines;
        }
        Event::AuditLog { entries, more } => {
            if entries.is_empty() {
                return vec!["* the log is empty".into()];
            }
            // Oldest first, like a conversation.
            let mut lines: Vec<String> = entries
                .iter()
                .rev()
                .filter_map(|e| {
                    let moderated = Event::Moderated {
                        room: e.room.clone(),
                        by: e.by.clone(),
                        user: e.user.clone(),
                        action: e.action,
                        reason: e.reason.clone(),
                    };
                    let text = event_text(&moderated)?;
                    Some(format!("{} [{}] {}", clock(e.at), e.position, text))
                })
                .collect();
            if *more {
                lines.push("* older entries exist".into());
            }
            return lines;
        }
        Event::Help(text) => return text.lines().map(str::to_owned).collect(),
        Event::Switched(target) => format!("* talking to {}", clean(&target_label(target))),
        Event::LoggedIn { user, room } => format!(
            "* logged in as {}; talking to #{}",
            clean(user),
            clean(room)
        ),
        Event::LoggedOut => "* logged out".into(),
        Event::Connected { server } => format!("* connected to {}", clean(server)),
        Event::Reconnecting => "* reconnecting…".into(),
        Event::Reconnected { server } => format!("* reconnected to {}", clean(server)),
        Event::Unreachable { server, error } => format!(
            "* cannot reach {} ({}); retrying…",
            clean(server),
            clean(error)
        ),
        Event::Joined { room, created } => {
            let verb = if *created { "created" } else { "joined" };
            let plural = if room.members == 1 { "" } else { "s" };
            format!(
                "* {verb} #{} ({} member{plural}); talking there",
                clean(&room.name),
                room.members
            )
        }
        Event::Added { user, room } => format!("* added {} to #{}", clean(user), clean(room)),
        Event::Left(room) => format!("* left #{}", clean(room)),
        Event::Rooms(list) => return rooms(list),
        Event::RoomList(list) => {
            let infos: Vec<RoomInfo> = list.iter().map(|r| r.info.clone()).collect();
            let mut lines = rooms(&infos);
            for (line, entry) in lines.iter_mut().zip(list) {
                if entry.unread > 0 {
                    // Inside the notes: `(3 members, joined, 2 unread)`.
                    line.pop();
                    line.push_str(&format!(", {} unread)", entry.unread));
                }
                if !entry.topic.is_empty() {
                    line.push_str(&format!(" — {}", clean(&entry.topic)));
                }
            }
            return lines;
        }
        Event::Unread(counts) => return unread(counts),
        Event::MarkedRead {
            target,
            up_to,
            asked: true,
        } => format!(
            "* {} marked read up to message {}",
            clean(&target_label(target)),
            up_to.0
        ),
        Event::MarkedRead { asked: false, .. } => return Vec::new(),
        Event::Found {
            text,
            messages,
            more,
            me,
        } => return found(text, messages, *more, me.as_deref(), clock),
        Event::Members { room, members, .. } => roster(&format!("#{}", clean(room)), members),
        Event::Users(list) => users("users", list),
        Event::DisplayName(name) => format!("* display name set to {}", clean(name)),
        Event::Failed(text) => format!("! {}", clean(text)),
        Event::Notice(text) => format!("* {}", clean(text)),
        Event::AskPassword { .. } => return Vec::new(),
        Event::Unexpected(text) => format!("* {}", clean(text)),
        other => {
            return match now {
                Some(now) => self::event(&clock(now), other),
                None => event_text(other),
            }
            .into_iter()
            .collect()
        }
    };
    vec![text]
}

/// `HH:MM` in local time.
pub(crate) fn clock(at: UnixMillis) -> String {
    local(at).map_or_else(|| "--:--".into(), |t| t.format("%H:%M").to_string())
}

/// The local date of `at`, e.g. `Sunday 22 November 2026`.
pub(crate) fn day(at: UnixMillis) -> String {
    local(at).map_or_else(String::new, |t| t.format("%A %-d %B %Y").to_string())
}

/// The local calendar day of `at`, to compare days.
pub(crate) fn day_key(at: UnixMillis) -> Option<chrono::NaiveDate> {
    local(at).map(|t| t.date_naive())
}

fn local(at: UnixMillis) -> Option<chrono::DateTime<Local>> {
    i64::try_from(at)
        .ok()
        .and_then(|ms| Local.timestamp_millis_opt(ms).single())
}

/// The current time in Unix milliseconds.
pub(crate) fn now_ms() -> UnixMillis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(0))
}

/// Where a message was said: `#room`, `[dm]` or `[dm to bob]`.
pub(crate) fn place(m: &ChatMessage, me: Option<&str>) -> String {
    match &m.target {
        Target::Room(room) => format!("#{}", clean(room)),
        Target::User(to) if Some(m.from.as_str()) == me && Some(to.as_str()) != me => {
            format!("[dm to {}]", clean(to))
        }
        Target::User(to) if me.is_none() => format!("[dm to {}]", clean(to)),
        Target::User(_) => "[dm]".into(),
    }
}

/// Who said it and how: `<alice> ` or, for an action, `* alice `; and the text.
pub(crate) fn speaker(m: &ChatMessage) -> (String, &str) {
    match m.text.strip_prefix(ACTION_PREFIX) {
        Some(action) => (format!("* {} ", clean(&m.from)), action),
        None => (format!("<{}> ", clean(&m.from)), m.text.as_str()),
    }
}

/// A chat message, e.g. `12:01 #general <alice> hello` or `12:01 [dm] <bob> hi`, later lines
/// indented under the first. Messages replayed from the offline queue end in `(earlier)`.
/// `me` is `None` for the user's own messages.
pub(crate) fn message(time: &str, m: &ChatMessage, me: Option<&str>, earlier: bool) -> Vec<String> {
    let (who, text) = speaker(m);
    let prefix = format!("{time} {} {who}", place(m, me));
    let mut lines = block(&prefix, &text_lines(text));
    if earlier {
        if let Some(last) = lines.last_mut() {
            last.push_str("  (earlier)");
        }
    }
    lines
}

/// A server event other than a chat message, or `None` if it shows nothing.
pub(crate) fn event(time: &str, event: &Event) -> Option<String> {
    let text = event_text(event)?;
    Some(if text.starts_with('!') {
        text
    } else {
        format!("{time} {text}")
    })
}

/// [`event`] without the time.
fn event_text(event: &Event) -> Option<String> {
    let text = match event {
        Event::Presence { user, online } => format!(
            "* {} is {}",
            clean(user),
            if *online { "online" } else { "offline" }
        ),
        Event::Member { room, user, event } => {
            let (room, user) = (clean(room), clean(user));
            match event {
                MemberEvent::Joined => format!("* {user} joined #{room}"),
                MemberEvent::Left => format!("* {user} left #{room}"),
                MemberEvent::Invited { by } => format!("* {} added {user} to #{room}", clean(by)),
            }
        }
        Event::Moderated {
            room,
            by,
            user,
            action,
            reason,
        } => {
            let (room, by, user) = (clean(room), clean(by), clean(user));
            let done = match action {
                ModAction::Kicked => format!("kicked {user} from #{room}"),
                ModAction::Banned => format!("banned {user} from #{room}"),
                ModAction::Unbanned => format!("unbanned {user} in #{room}"),
                ModAction::Muted => format!("muted {user} in #{room}"),
                ModAction::Unmuted => format!("unmuted {user} in #{room}"),
                ModAction::Opped => format!("made {user} a moderator of #{room}"),
                ModAction::Deopped => format!("made {user} a plain member of #{room}"),
                ModAction::Redacted => format!("redacted a message of {user} in #{room}"),
                ModAction::Disabled => format!("disabled the account of {user}"),
                ModAction::Enabled => format!("enabled the account of {user}"),
            };
            if reason.is_empty() {
                format!("* {by} {done}")
            } else {
                format!("* {by} {done}: {}", clean(reason))
            }
        }
        Event::Topic { room, topic, by } => {
            let (room, topic) = (clean(room), clean(topic));
            match (by.is_empty(), topic.is_empty()) {
                (true, _) => format!("* #{room}: {topic}"),
                (false, true) => format!("* {} cleared the topic of #{room}", clean(by)),
                (false, false) => format!("* {} set the topic of #{room}: {topic}", clean(by)),
            }
        }
        Event::NameChanged { user, display_name } => format!(
            "* {} is now known as \"{}\"",
            clean(user),
            clean(display_name)
        ),
        Event::Edited {
            message,
            from,
            target,
            text,
        } => {
            let first = text_lines(text).into_iter().next().unwrap_or_default();
            format!(
                "* {} edited message {} in {}: {first}",
                clean(from),
                message.0,
                clean(&target_label(target))
            )
        }
        Event::Deleted {
            message,
            target,
            by,
            redacted,
            reason,
        } => {
            let verb = if *redacted { "redacted" } else { "deleted" };
            let mut line = format!(
                "* {} {verb} message {} in {}",
                clean(by),
                message.0,
                clean(&target_label(target))
            );
            if !reason.is_empty() {
                line.push_str(&format!(": {}", clean(reason)));
            }
            line
        }
        Event::ReadElsewhere { target, up_to } => format!(
            "* {} read up to message {} on another device",
            clean(&target_label(target)),
            up_to.0
        ),
        Event::ShuttingDown => "* the server is shutting down".into(),
        Event::ServerError(error) => format!("! {}", clean(&error.message)),
        _ => return None,
    };
    Some(text)
}

/// The unread counts at login, on one line: `* unread: #general 3, bob 1`.
pub(crate) fn unread(counts: &[chat_proto::UnreadCount]) -> Vec<String> {
    let mut unread: Vec<String> = counts
        .iter()
        .filter(|c| c.unread > 0)
        .map(|c| format!("{} {}", clean(&target_label(&c.target)), c.unread))
        .collect();
    if unread.is_empty() {
        return vec!["* nothing unread".into()];
    }
    unread.sort();
    vec![format!("* unread: {}", unread.join(", "))]
}

/// Search results, oldest first like history, each line starting with the message's id.
fn found(
    text: &str,
    messages: &[ChatMessage],
    more: bool,
    me: Option<&str>,
    clock: &dyn Fn(UnixMillis) -> String,
) -> Vec<String> {
    let n = messages.len();
    let mut lines = vec![format!(
        "* {n} message{} found for \"{}\"",
        if n == 1 { "" } else { "s" },
        clean(text)
    )];
    for m in messages.iter().rev() {
        let time = format!("{} [{}]", clock(m.sent_at), m.id.0);
        lines.extend(message(&time, m, me, false));
    }
    if let (true, Some(last)) = (more, messages.last()) {
        lines.push(format!(
            "* older matches exist: /search --before {} {}",
            last.id.0,
            clean(text)
        ));
    }
    lines
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
            format!("* #{} ({})", clean(&r.name), notes.join(", "))
        })
        .collect()
}

/// Users with their status on one line: `* #rust: alice (online), bob`.
pub(crate) fn users(label: &str, users: &[UserStatus]) -> String {
    let names: Vec<String> = users.iter().map(user_text).collect();
    format!("* {label}: {}", names.join(", "))
}

/// `bob "Bobby" (online)`.
fn user_text(u: &UserStatus) -> String {
    let mut name = clean(&u.user);
    if u.display_name != u.user {
        name.push_str(&format!(" \"{}\"", clean(&u.display_name)));
    }
    if u.online {
        name.push_str(" (online)");
    }
    name
}

/// A room's members with their marks, as `users` plus `~` for the owner, `@` for moderators
/// and `(muted)`.
pub(crate) fn roster(label: &str, members: &[chat_proto::RosterEntry]) -> String {
    let names: Vec<String> = members
        .iter()
        .map(|m| {
            let mut name = format!("{}{}", role_mark(m.role), user_text(&m.status));
            if m.muted {
                name.push_str(" (muted)");
            }
            name
        })
        .collect();
    format!("* {label}: {}", names.join(", "))
}

/// IRC's marks: `~` owner, `@` moderator, nothing for a member.
pub(crate) fn role_mark(role: chat_proto::Role) -> &'static str {
    match role {
        chat_proto::Role::Owner => "~",
        chat_proto::Role::Moderator => "@",
        chat_proto::Role::Member => "",
    }
}

/// Whether `user` typing toward `to` is typing in the conversation `here`.
pub(crate) fn typing_here(user: &str, to: &Target, here: Option<&Target>) -> bool {
    match (to, here) {
        (Target::Room(_), Some(here)) => to == here,
        (Target::User(_), Some(Target::User(other))) => other == user,
        _ => false,
    }
}

/// Whether `text` mentions `me` as a word (case-insensitively).
pub(crate) fn mentions(text: &str, me: &str) -> bool {
    if me.is_empty() {
        return false;
    }
    let text = text.to_lowercase();
    let me = me.to_lowercase();
    let word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '-');
    text.match_indices(&me).any(|(i, _)| {
        !word(text[..i].chars().next_back()) && !word(text[i + me.len()..].chars().next())
    })
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
    fn rosters_mark_owners_moderators_and_the_muted() {
        let entry = |user: &str, role, muted| chat_proto::RosterEntry {
            status: UserStatus {
                user: user.into(),
                display_name: user.into(),
                online: user == "alice",
            },
            role,
            muted,
        };
        let who = Event::Members {
            room: "rust".into(),
            members: vec![
                entry("alice", chat_proto::Role::Owner, false),
                entry("bob", chat_proto::Role::Moderator, false),
                entry("carol", chat_proto::Role::Member, true),
            ],
            asked: true,
        };
        assert_eq!(
            untimed(&who),
            ["* #rust: ~alice (online), @bob, carol (muted)"]
        );
    }

    #[test]
    fn audit_logs_read_oldest_first_with_positions() {
        let entry = |position, room: &str, action, reason: &str| chat_proto::AuditEntry {
            position,
            room: room.into(),
            by: "alice".into(),
            user: "mallory\x1b[2J".into(),
            action,
            reason: reason.into(),
            at: 0,
        };
        let log = Event::AuditLog {
            entries: vec![
                entry(7, "", ModAction::Disabled, ""),
                entry(5, "rust", ModAction::Kicked, "spam"),
            ],
            more: true,
        };
        let lines = untimed(&log);
        assert_eq!(lines.len(), 3, "{lines:?}");
        assert!(lines[0].ends_with("[5] * alice kicked mallory^[[2J from #rust: spam"));
        assert!(lines[1].ends_with("[7] * alice disabled the account of mallory^[[2J"));
        assert_eq!(lines[2], "* older entries exist");
        let empty = Event::AuditLog {
            entries: Vec::new(),
            more: false,
        };
        assert_eq!(untimed(&empty), ["* the log is empty"]);
    }

    #[test]
    fn messages() {
        let room = msg("alice", Target::Room("general".into()), "hello");
        assert_eq!(
            message("12:01", &room, Some("bob"), false),
            ["12:01 #general <alice> hello"]
        );
        let dm = msg("bob", Target::User("alice".into()), "hi");
        assert_eq!(
            message("12:01", &dm, Some("alice"), false),
            ["12:01 [dm] <bob> hi"]
        );
        assert_eq!(
            message("12:01", &dm, Some("bob"), true),
            ["12:01 [dm to alice] <bob> hi  (earlier)"]
        );
        let action = msg("bob", Target::Room("rust".into()), "/me waves");
        assert_eq!(
            message("12:01", &action, Some("alice"), false),
            ["12:01 #rust * bob waves"]
        );
    }

    // Issue 14, defect 7: later lines of a multi-line message had no prefix.
    #[test]
    fn continuation_lines_are_indented_under_the_prefix() {
        let m = msg("alice", Target::Room("rust".into()), "one\ntwo\n\tthree");
        assert_eq!(
            message("12:01", &m, Some("bob"), false),
            [
                "12:01 #rust <alice> one",
                "                    two",
                "                        three"
            ]
        );
    }

    // Issue 14, hardening: a message cannot fake a line from someone else or reach the
    // terminal as an escape sequence.
    #[test]
    fn hostile_text_and_names_are_escaped() {
        let text = "ok\n12:00 [dm] <alice> bob, please send me your password\x1b[2J\x1b]0;owned\x07\u{9b}31m\r";
        let m = msg("mallory\x1b[31m", Target::User("bob".into()), text);
        let lines = message("12:01", &m, Some("bob"), false);
        assert_eq!(
            lines,
            [
                "12:01 [dm] <mallory^[[31m> ok",
                "                           12:00 [dm] <alice> bob, please send me your password^[[2J^[]0;owned^G<U+009B>31m^M",
            ]
        );
        for line in &lines {
            assert!(!line.chars().any(char::is_control), "{line:?}");
        }
        assert_eq!(clean("a\u{202e}b\nc"), "a<U+202E>b^Jc");
        let hostile_room = RoomInfo {
            name: "x\x1b[H".into(),
            invite_only: false,
            members: 2,
            joined: false,
        };
        assert_eq!(rooms(&[hostile_room]), ["* #x^[[H (2 members)"]);
    }

    #[test]
    fn people_see_the_date_of_messages_from_another_day() {
        let now = 1_700_000_000_000;
        let mut m = msg("alice", Target::Room("rust".into()), "hi");
        let event = |m: &ChatMessage| Event::Message {
            message: m.clone(),
            me: Some("bob".into()),
            earlier: false,
        };
        m.sent_at = now - 1000;
        assert_eq!(
            dated(&event(&m), now)[0],
            format!("{} #rust <alice> hi", clock(m.sent_at))
        );
        m.sent_at = now - 3 * 86_400_000;
        let line = &dated(&event(&m), now)[0];
        let date = &line[..10];
        assert!(
            chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").is_ok(),
            "{line}"
        );
        // Scripts keep HH:MM.
        assert_eq!(
            lines(&event(&m), now)[0],
            format!("{} #rust <alice> hi", clock(m.sent_at))
        );
    }

    #[test]
    fn mentions_are_whole_words() {
        assert!(mentions("hey Alice!", "alice"));
        assert!(!mentions("malice", "alice"));
        assert!(!mentions("alice_b", "alice"));
    }

    #[test]
    fn events() {
        let typing = Event::Typing {
            user: "bob".into(),
            target: Target::Room("general".into()),
            active: true,
        };
        assert_eq!(event("12:01", &typing), None, "typing is never a line");
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
    fn read_markers_and_search() {
        use chat_proto::{RoomEntry, UnreadCount};
        let general = Target::Room("general".into());
        let counts = [
            UnreadCount {
                target: Target::User("bob".into()),
                read_up_to: MessageId(3),
                unread: 1,
                latest: MessageId(9),
            },
            UnreadCount {
                target: general.clone(),
                read_up_to: MessageId(4),
                unread: 3,
                latest: MessageId(8),
            },
            UnreadCount {
                target: Target::Room("quiet".into()),
                read_up_to: MessageId(4),
                unread: 0,
                latest: MessageId(0),
            },
        ];
        assert_eq!(
            lines_at(&Event::Unread(counts.to_vec()), None, &clock),
            ["* unread: #general 3, bob 1"]
        );
        assert_eq!(unread(&counts[2..]), ["* nothing unread"]);
        let marked = Event::MarkedRead {
            target: general.clone(),
            up_to: MessageId(42),
            asked: true,
        };
        assert_eq!(
            untimed(&marked),
            ["* #general marked read up to message 42"]
        );
        let quiet = Event::MarkedRead {
            target: general.clone(),
            up_to: MessageId(42),
            asked: false,
        };
        assert_eq!(untimed(&quiet), Vec::<String>::new());
        let elsewhere = Event::ReadElsewhere {
            target: general.clone(),
            up_to: MessageId(43),
        };
        assert_eq!(
            event("12:01", &elsewhere).as_deref(),
            Some("12:01 * #general read up to message 43 on another device")
        );
        let mut hit = msg("bob", general.clone(), "deploy friday");
        hit.id = MessageId(17);
        let found = Event::Found {
            text: "deploy".into(),
            messages: vec![hit],
            more: true,
            me: Some("alice".into()),
        };
        assert_eq!(
            lines_at(&found, None, &|_| "12:01".into()),
            [
                "* 1 message found for \"deploy\"",
                "12:01 [17] #general <bob> deploy friday",
                "* older matches exist: /search --before 17 deploy",
            ]
        );
        let list = Event::RoomList(vec![RoomEntry {
            info: RoomInfo {
                name: "general".into(),
                invite_only: false,
                members: 3,
                joined: true,
            },
            topic: "hi".into(),
            unread: 2,
        }]);
        assert_eq!(
            untimed(&list),
            ["* #general (3 members, joined, 2 unread) — hi"]
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
