//! The full-screen interface drawn on `TestBackend`: layout, activity, scrolling, passwords.

use super::*;
use chat_proto::{ClientMsgId, RoomInfo};
use crossterm::event::KeyEvent;
use ratatui::backend::TestBackend;

fn app() -> App {
    App::new(Editor::new(None), "127.0.0.1:7878".into(), false)
}

fn screen(app: &mut App, width: u16, height: u16) -> Vec<String> {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).expect("terminal");
    terminal.draw(|f| app.draw(f)).expect("draws");
    let buffer = terminal.backend().buffer().clone();
    (0..height)
        .map(|y| {
            (0..width)
                .map(|x| buffer[(x, y)].symbol().to_owned())
                .collect::<String>()
                .trim_end()
                .to_owned()
        })
        .collect()
}

fn msg(id: u64, from: &str, target: Target, text: &str) -> ChatMessage {
    ChatMessage {
        id: MessageId(id),
        from: from.into(),
        target,
        sent_at: 1_700_000_000_000 + id * 60_000,
        client_msg_id: ClientMsgId(id),
        text: text.into(),
    }
}

fn logged_in() -> (App, Vec<Input>) {
    let mut app = app();
    let mut inputs = Vec::new();
    app.client(
        Event::LoggedIn {
            user: "alice".into(),
            room: "general".into(),
        },
        &mut inputs,
    );
    (app, inputs)
}

#[test]
fn logging_in_opens_the_default_room_with_its_history_and_members() {
    let (mut app, inputs) = logged_in();
    assert_eq!(
        inputs,
        [
            Input::MarkRead(Target::Room("general".into())),
            Input::History {
                target: Target::Room("general".into()),
                before: None,
                limit: PAGE
            },
            Input::Members("general".into())
        ]
    );
    let mut inputs = Vec::new();
    app.client(
        Event::Members {
            room: "general".into(),
            members: vec![RosterEntry {
                status: UserStatus {
                    user: "bob".into(),
                    display_name: "Bobby".into(),
                    online: true,
                },
                role: Role::Member,
                muted: false,
            }],
            asked: false,
        },
        &mut inputs,
    );
    app.client(
        Event::History {
            target: Target::Room("general".into()),
            before: None,
            messages: vec![msg(
                2,
                "bob",
                Target::Room("general".into()),
                "second\nline two",
            )],
            more: true,
            me: Some("alice".into()),
            edited: Vec::new(),
            deleted: Vec::new(),
        },
        &mut inputs,
    );
    let rows = screen(&mut app, 70, 10);
    assert!(rows[0].starts_with(" #general — 1 member"), "{rows:#?}");
    assert!(
        rows.iter().any(|r| r.contains("│ bob (Bobby)")),
        "{rows:#?}"
    );
    let second = rows
        .iter()
        .position(|r| r.contains("<bob> second"))
        .expect("shown");
    assert!(
        rows[second + 1].starts_with("            line two"),
        "{rows:#?}"
    );
    assert!(
        rows[8].contains("[alice]") && rows[8].contains("[2:#general]"),
        "{rows:#?}"
    );
    assert!(rows[9].starts_with("[#general]"), "{rows:#?}");
}

#[test]
fn unread_counts_and_highlights_show_in_the_activity_bar() {
    let (mut app, _) = logged_in();
    let mut inputs = Vec::new();
    app.client(
        Event::Joined {
            room: RoomInfo {
                name: "rust".into(),
                invite_only: false,
                members: 2,
                joined: true,
            },
            created: false,
        },
        &mut inputs,
    );
    for (id, text) in [(3, "hello all"), (4, "alice: are you there?")] {
        app.client(
            Event::Message {
                message: msg(id, "bob", Target::Room("general".into()), text),
                me: Some("alice".into()),
                earlier: false,
            },
            &mut inputs,
        );
    }
    app.client(
        Event::Message {
            message: msg(5, "carol", Target::User("alice".into()), "psst"),
            me: Some("alice".into()),
            earlier: false,
        },
        &mut inputs,
    );
    let rows = screen(&mut app, 90, 8);
    assert!(
        rows[6].contains("[Act: 2:#general(2!),4:carol(1!)]"),
        "{rows:#?}"
    );
    // Alt+2 reads #general: its count goes, the prompt follows; the buffer left and the
    // buffer shown are marked read on the server.
    let mut inputs = Vec::new();
    app.term(
        TermEvent::Key(KeyEvent::new(KeyCode::Char('2'), KeyModifiers::ALT)),
        &mut inputs,
    );
    assert_eq!(
        inputs,
        [
            Input::MarkRead(Target::Room("rust".into())),
            Input::MarkRead(Target::Room("general".into())),
            Input::Line("/switch #general".into())
        ]
    );
    let rows = screen(&mut app, 90, 8);
    assert!(rows[6].contains("[Act: 4:carol(1!)]"), "{rows:#?}");
    assert!(rows[7].starts_with("[#general]"), "{rows:#?}");
    assert!(rows
        .iter()
        .any(|r| r.contains("<bob> alice: are you there?")));
}

#[test]
fn unread_counts_at_login_fill_the_activity_bar_and_other_devices_clear_them() {
    let (mut app, _) = logged_in();
    let count = |target: Target, unread| chat_proto::UnreadCount {
        target,
        read_up_to: MessageId(1),
        unread,
        latest: MessageId(9),
    };
    let mut inputs = Vec::new();
    app.client(
        Event::Unread(vec![
            count(Target::Room("general".into()), 2),
            count(Target::Room("rust".into()), 4),
            count(Target::User("bob".into()), 1),
            count(Target::Room("quiet".into()), 0),
        ]),
        &mut inputs,
    );
    // The buffer shown is read at once; the others wait in the activity bar.
    assert_eq!(inputs, [Input::MarkRead(Target::Room("general".into()))]);
    let rows = screen(&mut app, 90, 8);
    assert!(rows[6].contains("[Act: 3:#rust(4),4:bob(1)]"), "{rows:#?}");
    // The summary goes to the status buffer.
    assert!(app.buffers[0].entries.iter().any(|e| matches!(
        &e.kind,
        Kind::Info(line) if line == "* unread: #general 2, #rust 4, bob 1"
    )));
    // Another device read #rust: nothing of it is unread here any more.
    app.client(
        Event::ReadElsewhere {
            target: Target::Room("rust".into()),
            up_to: MessageId(9),
        },
        &mut inputs,
    );
    let rows = screen(&mut app, 90, 8);
    assert!(rows[6].contains("[Act: 4:bob(1)]"), "{rows:#?}");
}

#[test]
fn own_lines_are_pending_until_stored_and_typing_is_a_status() {
    let (mut app, _) = logged_in();
    let mut inputs = Vec::new();
    let mut mine = msg(0, "alice", Target::Room("general".into()), "on its way");
    mine.sent_at = 0;
    app.client(
        Event::Own {
            message: mine.clone(),
            status: Delivery::Pending,
        },
        &mut inputs,
    );
    app.client(
        Event::Typing {
            user: "bob".into(),
            target: Target::Room("general".into()),
            active: true,
        },
        &mut inputs,
    );
    let rows = screen(&mut app, 60, 6);
    assert!(
        rows.iter().any(|r| r.contains("<alice> on its way …")),
        "{rows:#?}"
    );
    assert!(rows[0].contains("bob is typing…"), "{rows:#?}");
    mine.id = MessageId(9);
    mine.sent_at = 1_700_000_000_000;
    app.client(
        Event::Own {
            message: mine,
            status: Delivery::Stored,
        },
        &mut inputs,
    );
    app.client(
        Event::Typing {
            user: "bob".into(),
            target: Target::Room("general".into()),
            active: false,
        },
        &mut inputs,
    );
    let rows = screen(&mut app, 60, 6);
    assert!(
        rows.iter().any(|r| r.ends_with("<alice> on its way")),
        "{rows:#?}"
    );
    assert!(!rows[0].contains("typing"), "{rows:#?}");
    assert_eq!(rows.iter().filter(|r| r.contains("on its way")).count(), 1);
}

#[test]
fn scrolling_to_the_top_loads_older_history() {
    let (mut app, _) = logged_in();
    let mut inputs = Vec::new();
    let messages: Vec<ChatMessage> = (100..130)
        .rev()
        .map(|id| msg(id, "bob", Target::Room("general".into()), &format!("m{id}")))
        .collect();
    app.client(
        Event::History {
            target: Target::Room("general".into()),
            before: None,
            messages,
            more: true,
            me: Some("alice".into()),
            edited: Vec::new(),
            deleted: Vec::new(),
        },
        &mut inputs,
    );
    screen(&mut app, 60, 12);
    let mut inputs = Vec::new();
    for _ in 0..20 {
        app.term(
            TermEvent::Key(KeyEvent::new(KeyCode::PageUp, KeyModifiers::NONE)),
            &mut inputs,
        );
    }
    assert_eq!(
        inputs,
        [Input::History {
            target: Target::Room("general".into()),
            before: Some(MessageId(100)),
            limit: PAGE
        }]
    );
    let rows = screen(&mut app, 60, 12);
    assert!(rows.iter().any(|r| r.contains("more below")), "{rows:#?}");
}

#[test]
fn the_status_line_shows_the_link_and_a_password_is_never_drawn() {
    let mut app = app();
    let mut inputs = Vec::new();
    app.client(
        Event::Unreachable {
            server: "127.0.0.1:7878".into(),
            error: "refused".into(),
        },
        &mut inputs,
    );
    let rows = screen(&mut app, 80, 5);
    assert!(
        rows[3].contains("[unreachable 127.0.0.1:7878]"),
        "{rows:#?}"
    );
    app.client(
        Event::AskPassword {
            prompt: "password for alice".into(),
            confirm_next: false,
        },
        &mut inputs,
    );
    for c in "hunter22".chars() {
        app.term(
            TermEvent::Key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE)),
            &mut inputs,
        );
    }
    assert!(
        inputs.is_empty(),
        "no typing notices for a password: {inputs:?}"
    );
    let rows = screen(&mut app, 80, 5);
    assert_eq!(rows[4], "password for alice (hidden, Esc cancels):");
    app.term(
        TermEvent::Key(KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE)),
        &mut inputs,
    );
    assert_eq!(inputs, [Input::Password(Some("hunter22".into()))]);
    assert!(!screen(&mut app, 80, 5).join("\n").contains("hunter22"));
}

#[test]
fn a_typed_history_says_what_it_added() {
    let (mut app, _) = logged_in();
    let mut inputs = Vec::new();
    let page = |ids: std::ops::Range<u64>| Event::History {
        target: Target::Room("general".into()),
        before: None,
        messages: ids
            .rev()
            .map(|id| msg(id, "bob", Target::Room("general".into()), &format!("m{id}")))
            .collect(),
        more: false,
        me: Some("alice".into()),
        edited: Vec::new(),
        deleted: Vec::new(),
    };
    // The page asked for at login, then the same page and one more from /history.
    app.client(page(1..3), &mut inputs);
    app.client(page(1..4), &mut inputs);
    let rows = screen(&mut app, 90, 8);
    assert!(
        rows.iter()
            .any(|r| r.contains("* 3 messages of history (1 not shown before) in #general")),
        "{rows:#?}"
    );
    let order: Vec<usize> = ["m1", "m2", "m3"]
        .iter()
        .map(|m| rows.iter().position(|r| r.ends_with(m)).expect("shown"))
        .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{rows:#?}");
}

/// A hostile server: odd names and texts, impossible times, many conversations, tiny
/// terminals. Nothing panics, the buffers stay bounded, and no control character is drawn.
#[test]
fn hostile_input_never_panics_nor_reaches_the_screen() {
    let (mut app, _) = logged_in();
    let mut inputs = Vec::new();
    let texts = [
        String::new(),
        "\x1b[2J\x1b]0;t\x07\u{9b}\r\n\n\t".to_owned(),
        "界".repeat(3000),
        "a\n".repeat(500),
        "\u{202e}\u{200b}\u{feff}x".to_owned(),
    ];
    for (i, text) in texts.iter().enumerate() {
        let mut m = msg(10 + i as u64, text, Target::Room(text.clone()), text);
        m.sent_at = if i % 2 == 0 { u64::MAX } else { 0 };
        app.client(
            Event::Message {
                message: m,
                me: Some("alice".into()),
                earlier: false,
            },
            &mut inputs,
        );
        app.client(
            Event::Members {
                room: text.clone(),
                members: vec![RosterEntry {
                    status: UserStatus {
                        user: text.clone(),
                        display_name: text.clone(),
                        online: true,
                    },
                    role: Role::Moderator,
                    muted: true,
                }],
                asked: true,
            },
            &mut inputs,
        );
        app.client(
            Event::Typing {
                user: text.clone(),
                target: Target::Room(text.clone()),
                active: true,
            },
            &mut inputs,
        );
    }
    for i in 0..150 {
        app.client(
            Event::Message {
                message: msg(
                    1000 + i,
                    &format!("u{i}"),
                    Target::User("alice".into()),
                    "hi",
                ),
                me: Some("alice".into()),
                earlier: false,
            },
            &mut inputs,
        );
    }
    assert!(app.buffers.len() <= MAX_BUFFERS);
    for n in 0..app.buffers.len().min(12) {
        app.term(
            TermEvent::Key(KeyEvent::new(KeyCode::Char('n'), KeyModifiers::CONTROL)),
            &mut inputs,
        );
        app.term(
            TermEvent::Key(KeyEvent::new(KeyCode::PageUp, KeyModifiers::NONE)),
            &mut inputs,
        );
        for (width, height) in [(1, 1), (5, 3), (20, 4), (80, 24)] {
            let rows = screen(&mut app, width, height);
            for row in rows {
                assert!(!row.chars().any(char::is_control), "buffer {n}: {row:?}");
            }
        }
    }
}
