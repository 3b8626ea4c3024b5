//! Parsing one input line into a [`Command`]. Pure: no I/O, unit-tested.
//!
//! A line starting with `/` is a command; anything else is text for the current target.

use chat_proto::{MessageId, ModAction, Target};

/// One line of input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// `/help`: list the commands.
    Help,
    /// `/register NAME [PASSWORD]`: create an account and log in.
    Register {
        /// The username.
        name: String,
        /// The password, if typed (else the client's configured one).
        password: Option<String>,
    },
    /// `/login NAME [PASSWORD]`: log in.
    Login {
        /// The username.
        name: String,
        /// The password, if typed (else the client's configured one).
        password: Option<String>,
    },
    /// `/logout`.
    Logout,
    /// `/join #room`: join (creating it if missing) and talk there.
    Join(String),
    /// `/create #room [--invite-only]`.
    Create {
        /// The room name, without `#`.
        room: String,
        /// Whether only members may add members.
        invite_only: bool,
    },
    /// `/invite USER #room`.
    Invite {
        /// Who to add.
        user: String,
        /// The room name, without `#`.
        room: String,
    },
    /// `/leave [#room]` (default: the current room).
    Leave(Option<String>),
    /// `/rooms`.
    Rooms,
    /// `/who [#room]` (default: the current room).
    Who(Option<String>),
    /// `/users`.
    Users,
    /// `/msg USER TEXT`: a direct message.
    Msg {
        /// The recipient.
        user: String,
        /// The text.
        text: String,
    },
    /// `/switch #room|USER`: where plain lines go.
    Switch(Target),
    /// `/history [N]`: the last N messages of the current target.
    History(u16),
    /// `/nick DISPLAY NAME`.
    Nick(String),
    /// `/me ACTION`: an action in the current conversation, shown as `* alice ACTION`.
    Me(String),
    /// `/op NAME`, `/deop NAME`, `/kick NAME [REASON]`, `/ban NAME [REASON]`, `/unban NAME`,
    /// `/mute NAME`, `/unmute NAME`: moderation in the current room.
    Moderate {
        /// What to do.
        action: ModAction,
        /// To whom.
        user: String,
        /// Why (kick and ban; else empty).
        reason: String,
    },
    /// `/topic [TEXT]`: set (or, without text, clear) the current room's topic.
    Topic(String),
    /// `/edit ID TEXT`: replace the text of one of your messages.
    Edit {
        /// The message id (as `/history` shows it).
        message: MessageId,
        /// The new text.
        text: String,
    },
    /// `/delete ID`: delete one of your messages.
    Delete(MessageId),
    /// `/redact ID [REASON]`: delete any message of a room (moderators).
    Redact {
        /// The message id.
        message: MessageId,
        /// Why (may be empty).
        reason: String,
    },
    /// `/disable NAME`, `/enable NAME`: disable an account or enable it again (server
    /// operators).
    Disable {
        /// The username.
        user: String,
        /// Whether the account is disabled from now on.
        disabled: bool,
    },
    /// `/audit [#room|*]`: the latest moderation actions of a room (default: the current one),
    /// or with `*` the server-wide log of account actions.
    Audit(AuditOf),
    /// `/read`: mark the current conversation read up to its newest message.
    Read,
    /// `/search [--before ID] TEXT`: find messages holding every word of TEXT.
    Search {
        /// The words.
        text: String,
        /// Only messages older than this one (the next page).
        before: Option<MessageId>,
    },
    /// `/quit` or `/exit`.
    Quit,
    /// A line without a leading `/`: text for the current target.
    Say(String),
    /// A blank line.
    Nothing,
    /// A line that did not parse, with its usage hint (reported in turn, like any line).
    Invalid(String),
}

/// Whose audit log `/audit` reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuditOf {
    /// The current room.
    Current,
    /// A named room.
    Room(String),
    /// The server-wide log (`*`).
    Server,
}

/// The help text, one command per line.
pub const HELP: &str = "\
/register NAME [PASSWORD]   create an account and log in
/login NAME [PASSWORD]      log in (password asked for if left out, or $CHAT_PASSWORD)
/logout                     log out
/join #room                 join a room (created if missing) and switch to it
/create #room [--invite-only]  create a room
/invite USER #room          add a user to a room
/leave [#room]              leave a room (default: the current one)
/rooms                      list rooms
/who [#room]                who is in a room, and who is online
/users                      every user, and who is online
/msg USER TEXT              send a direct message
/switch #room|USER          where plain lines go
/history [N]                the last N messages here (default 20)
/nick DISPLAY NAME          set your display name (announced where you are)
/me ACTION                  say what you do: * alice waves
/op NAME, /deop NAME        make a member of this room a moderator, or not (owner)
/kick NAME [REASON]         remove a member from this room; they may rejoin (moderators)
/ban NAME [REASON]          remove and keep out of this room; /unban NAME (moderators)
/mute NAME, /unmute NAME    stop a member of this room posting, or let them (moderators)
/topic [TEXT]               set or clear this room's topic (owner, moderators)
/edit ID TEXT               replace the text of your message ID (/history shows ids)
/delete ID                  delete your message ID
/redact ID [REASON]         delete any message of a room (moderators)
/audit [#room|*]            recent moderation in a room, or * for accounts (moderators)
/disable NAME, /enable NAME disable an account or enable it again (server operators)
/read                       mark this conversation read up to its newest message
/search [--before ID] TEXT  find messages with every word of TEXT in your conversations
/quit                       leave
Anything else is sent to the current room or user.";

/// Parses a line.
///
/// # Errors
/// A one-line usage hint for an unknown command or wrong arguments.
pub fn parse(line: &str) -> Result<Command, String> {
    let line = line.trim();
    let Some(rest) = line.strip_prefix('/') else {
        return Ok(if line.is_empty() {
            Command::Nothing
        } else {
            Command::Say(line.to_owned())
        });
    };
    let (name, args) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
    let args = args.trim();
    let words: Vec<&str> = args.split_whitespace().collect();
    let usage = |text: &str| Err(format!("usage: {text}"));
    Ok(match (name, words.as_slice()) {
        ("help", _) => Command::Help,
        ("register", [name]) => Command::Register {
            name: (*name).into(),
            password: None,
        },
        ("register", [name, password]) => Command::Register {
            name: (*name).into(),
            password: Some((*password).into()),
        },
        ("register", _) => return usage("/register NAME [PASSWORD]"),
        ("login", [name]) => Command::Login {
            name: (*name).into(),
            password: None,
        },
        ("login", [name, password]) => Command::Login {
            name: (*name).into(),
            password: Some((*password).into()),
        },
        ("login", _) => return usage("/login NAME [PASSWORD]"),
        ("logout", []) => Command::Logout,
        ("join", [room]) => Command::Join(room_name(room)),
        ("join", _) => return usage("/join #room"),
        ("create", [room]) => Command::Create {
            room: room_name(room),
            invite_only: false,
        },
        ("create", [room, "--invite-only"]) => Command::Create {
            room: room_name(room),
            invite_only: true,
        },
        ("create", _) => return usage("/create #room [--invite-only]"),
        ("invite", [user, room]) => Command::Invite {
            user: (*user).into(),
            room: room_name(room),
        },
        ("invite", _) => return usage("/invite USER #room"),
        ("leave", []) => Command::Leave(None),
        ("leave", [room]) => Command::Leave(Some(room_name(room))),
        ("leave", _) => return usage("/leave [#room]"),
        ("rooms", []) => Command::Rooms,
        ("who", []) => Command::Who(None),
        ("who", [room]) => Command::Who(Some(room_name(room))),
        ("who", _) => return usage("/who [#room]"),
        ("users", []) => Command::Users,
        ("msg", [user, _, ..]) => {
            let text = args[user.len()..].trim();
            Command::Msg {
                user: (*user).into(),
                text: text.into(),
            }
        }
        ("msg", _) => return usage("/msg USER TEXT"),
        ("switch", [target]) => Command::Switch(target_of(target)),
        ("switch", _) => return usage("/switch #room|USER"),
        ("history", []) => Command::History(20),
        ("history", [n]) => match n.parse() {
            Ok(n) if n > 0 => Command::History(n),
            _ => return usage("/history [N], N from 1 to 65535"),
        },
        ("history", _) => return usage("/history [N]"),
        ("nick", [_, ..]) => Command::Nick(args.into()),
        ("nick", _) => return usage("/nick DISPLAY NAME"),
        ("me", [_, ..]) => Command::Me(args.into()),
        ("me", _) => return usage("/me ACTION"),
        ("op" | "deop" | "unban" | "mute" | "unmute", [user]) => Command::Moderate {
            action: match name {
                "op" => ModAction::Opped,
                "deop" => ModAction::Deopped,
                "unban" => ModAction::Unbanned,
                "mute" => ModAction::Muted,
                _ => ModAction::Unmuted,
            },
            user: (*user).into(),
            reason: String::new(),
        },
        ("op" | "deop" | "unban" | "mute" | "unmute", _) => {
            return Err(format!("usage: /{name} NAME"))
        }
        ("kick" | "ban", [user, ..]) => Command::Moderate {
            action: if name == "kick" {
                ModAction::Kicked
            } else {
                ModAction::Banned
            },
            user: (*user).into(),
            reason: args[user.len()..].trim().into(),
        },
        ("kick" | "ban", _) => return Err(format!("usage: /{name} NAME [REASON]")),
        ("topic", _) => Command::Topic(args.into()),
        ("disable" | "enable", [user]) => Command::Disable {
            user: (*user).into(),
            disabled: name == "disable",
        },
        ("disable" | "enable", _) => return Err(format!("usage: /{name} NAME")),
        ("audit", []) => Command::Audit(AuditOf::Current),
        ("audit", ["*"]) => Command::Audit(AuditOf::Server),
        ("audit", [room]) => Command::Audit(AuditOf::Room(room.trim_start_matches('#').into())),
        ("audit", _) => return usage("/audit [#room|*]"),
        ("edit", [id, _, ..]) => match id.trim_start_matches('#').parse() {
            Ok(n) => Command::Edit {
                message: MessageId(n),
                text: args[id.len()..].trim().into(),
            },
            Err(_) => return usage("/edit ID TEXT"),
        },
        ("edit", _) => return usage("/edit ID TEXT"),
        ("delete", [id]) => match id.trim_start_matches('#').parse() {
            Ok(n) => Command::Delete(MessageId(n)),
            Err(_) => return usage("/delete ID"),
        },
        ("delete", _) => return usage("/delete ID"),
        ("redact", [id, ..]) => match id.trim_start_matches('#').parse() {
            Ok(n) => Command::Redact {
                message: MessageId(n),
                reason: args[id.len()..].trim().into(),
            },
            Err(_) => return usage("/redact ID [REASON]"),
        },
        ("redact", _) => return usage("/redact ID [REASON]"),
        ("read", []) => Command::Read,
        ("search", ["--before", id, _, ..]) => match id.trim_start_matches('#').parse() {
            Ok(n) => Command::Search {
                text: args["--before".len()..].trim_start()[id.len()..]
                    .trim()
                    .into(),
                before: Some(MessageId(n)),
            },
            Err(_) => return usage("/search [--before ID] TEXT"),
        },
        ("search", ["--before", ..] | []) => return usage("/search [--before ID] TEXT"),
        ("search", _) => Command::Search {
            text: args.into(),
            before: None,
        },
        ("quit" | "exit", []) => Command::Quit,
        ("logout" | "rooms" | "users" | "quit" | "exit" | "read", _) => {
            return Err(format!("usage: /{name}"))
        }
        _ => return Err(format!("unknown command /{name}: /help lists them")),
    })
}

/// Every command's name, for completion.
pub const NAMES: &[&str] = &[
    "/ban",
    "/create",
    "/delete",
    "/deop",
    "/edit",
    "/exit",
    "/help",
    "/history",
    "/invite",
    "/join",
    "/kick",
    "/leave",
    "/login",
    "/logout",
    "/me",
    "/msg",
    "/mute",
    "/nick",
    "/op",
    "/quit",
    "/read",
    "/redact",
    "/register",
    "/rooms",
    "/search",
    "/switch",
    "/topic",
    "/unban",
    "/unmute",
    "/users",
    "/who",
];

/// Checks a username by the server's rules (1–32 of `a–z A–Z 0–9 _ -`, starting with a
/// letter) before anything is sent or asked.
///
/// # Errors
/// What is wrong with it, in words.
pub fn check_username(name: &str) -> Result<(), String> {
    let ok = (1..=32).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a username: 1-32 letters, digits, '_' or '-', starting with a letter"
        ))
    }
}

/// A room name without its `#`.
fn room_name(word: &str) -> String {
    word.trim_start_matches('#').to_owned()
}

/// `#room` is a room, anything else a user.
pub fn target_of(word: &str) -> Target {
    match word.strip_prefix('#') {
        Some(room) => Target::Room(room.to_owned()),
        None => Target::User(word.to_owned()),
    }
}

/// How a target is written: `#room` or `user`.
pub fn target_label(target: &Target) -> String {
    match target {
        Target::Room(room) => format!("#{room}"),
        Target::User(user) => user.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moderation_commands() {
        let m = |action, user: &str, reason: &str| {
            Ok(Command::Moderate {
                action,
                user: user.into(),
                reason: reason.into(),
            })
        };
        assert_eq!(parse("/op bob"), m(ModAction::Opped, "bob", ""));
        assert_eq!(parse("/deop bob"), m(ModAction::Deopped, "bob", ""));
        assert_eq!(
            parse("/kick bob  too loud, sorry"),
            m(ModAction::Kicked, "bob", "too loud, sorry")
        );
        assert_eq!(parse("/ban bob"), m(ModAction::Banned, "bob", ""));
        assert_eq!(parse("/unban bob"), m(ModAction::Unbanned, "bob", ""));
        assert_eq!(parse("/mute bob"), m(ModAction::Muted, "bob", ""));
        assert_eq!(parse("/unmute bob"), m(ModAction::Unmuted, "bob", ""));
        assert_eq!(parse("/mute"), Err("usage: /mute NAME".into()));
        assert_eq!(parse("/kick"), Err("usage: /kick NAME [REASON]".into()));
        assert_eq!(parse("/op bob carol"), Err("usage: /op NAME".into()));
        assert_eq!(
            parse("/edit 42 better words"),
            Ok(Command::Edit {
                message: MessageId(42),
                text: "better words".into()
            })
        );
        assert_eq!(parse("/delete #42"), Ok(Command::Delete(MessageId(42))));
        assert_eq!(
            parse("/topic  Rust and friends "),
            Ok(Command::Topic("Rust and friends".into()))
        );
        assert_eq!(parse("/topic"), Ok(Command::Topic(String::new())));
        assert_eq!(
            parse("/disable mallory"),
            Ok(Command::Disable {
                user: "mallory".into(),
                disabled: true
            })
        );
        assert_eq!(
            parse("/enable mallory"),
            Ok(Command::Disable {
                user: "mallory".into(),
                disabled: false
            })
        );
        assert!(parse("/disable").is_err());
        assert_eq!(parse("/audit"), Ok(Command::Audit(AuditOf::Current)));
        assert_eq!(parse("/audit *"), Ok(Command::Audit(AuditOf::Server)));
        assert_eq!(
            parse("/audit #rust"),
            Ok(Command::Audit(AuditOf::Room("rust".into())))
        );
        assert_eq!(
            parse("/redact 7 off topic"),
            Ok(Command::Redact {
                message: MessageId(7),
                reason: "off topic".into()
            })
        );
        assert_eq!(parse("/edit 42"), Err("usage: /edit ID TEXT".into()));
        assert_eq!(parse("/delete x"), Err("usage: /delete ID".into()));
    }

    #[test]
    fn read_and_search() {
        assert_eq!(parse("/read"), Ok(Command::Read));
        assert_eq!(parse("/read now"), Err("usage: /read".into()));
        assert_eq!(
            parse("/search  deploy   friday "),
            Ok(Command::Search {
                text: "deploy   friday".into(),
                before: None
            })
        );
        assert_eq!(
            parse("/search --before #42 deploy friday"),
            Ok(Command::Search {
                text: "deploy friday".into(),
                before: Some(MessageId(42))
            })
        );
        assert_eq!(
            parse("/search --before 42 4"),
            Ok(Command::Search {
                text: "4".into(),
                before: Some(MessageId(42))
            })
        );
        for bad in [
            "/search",
            "/search --before 42",
            "/search --before x deploy",
        ] {
            assert_eq!(
                parse(bad),
                Err("usage: /search [--before ID] TEXT".into()),
                "{bad}"
            );
        }
    }

    #[test]
    fn plain_lines_are_messages() {
        assert_eq!(
            parse("  hello there "),
            Ok(Command::Say("hello there".into()))
        );
        assert_eq!(parse("   "), Ok(Command::Nothing));
    }

    #[test]
    fn commands_with_arguments() {
        assert_eq!(
            parse("/register alice"),
            Ok(Command::Register {
                name: "alice".into(),
                password: None
            })
        );
        assert_eq!(
            parse("/login alice s3cret-pw"),
            Ok(Command::Login {
                name: "alice".into(),
                password: Some("s3cret-pw".into())
            })
        );
        assert_eq!(parse("/join #rust"), Ok(Command::Join("rust".into())));
        assert_eq!(
            parse("/create #ops --invite-only"),
            Ok(Command::Create {
                room: "ops".into(),
                invite_only: true
            })
        );
        assert_eq!(
            parse("/invite bob #ops"),
            Ok(Command::Invite {
                user: "bob".into(),
                room: "ops".into()
            })
        );
        assert_eq!(parse("/leave"), Ok(Command::Leave(None)));
        assert_eq!(
            parse("/msg bob  hi  there"),
            Ok(Command::Msg {
                user: "bob".into(),
                text: "hi  there".into()
            })
        );
        assert_eq!(
            parse("/switch #rust"),
            Ok(Command::Switch(Target::Room("rust".into())))
        );
        assert_eq!(
            parse("/switch bob"),
            Ok(Command::Switch(Target::User("bob".into())))
        );
        assert_eq!(parse("/history"), Ok(Command::History(20)));
        assert_eq!(parse("/history 5"), Ok(Command::History(5)));
        assert_eq!(
            parse("/nick Alice A."),
            Ok(Command::Nick("Alice A.".into()))
        );
        assert_eq!(parse("/quit"), Ok(Command::Quit));
    }

    #[test]
    fn mistakes_get_a_usage_hint() {
        for (line, hint) in [
            ("/join", "usage: /join #room"),
            ("/msg bob", "usage: /msg USER TEXT"),
            ("/history lots", "usage: /history [N], N from 1 to 65535"),
            ("/rooms extra", "usage: /rooms"),
            (
                "/frobnicate",
                "unknown command /frobnicate: /help lists them",
            ),
        ] {
            assert_eq!(parse(line), Err(hint.to_owned()), "{line}");
        }
    }
}
