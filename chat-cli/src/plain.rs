//! `--plain`: a line-oriented interactive mode. Events print as lines above a prompt that shows
//! where a line goes (and who is typing there); our own small editor handles the keys.

use std::io::{self, Write};

use chat_client::command::target_label;
use chat_client::{Event, Input};
use chat_proto::Target;
use crossterm::event::Event as TermEvent;
use unicode_width::UnicodeWidthStr;

use crate::editor::{edit_inputs, Edit, Editor, Passwords, Words};
use crate::render;
use crate::terminal::Screen;

/// The plain screen's state.
pub(crate) struct Plain {
    editor: Editor,
    words: Words,
    /// Output lines not yet written.
    pending: Vec<String>,
    me: Option<String>,
    current: Option<Target>,
    typing: Vec<(String, Target)>,
    passwords: Passwords,
    bell: bool,
    ring: bool,
}

impl Plain {
    /// A plain screen (the terminal is already in raw mode).
    pub(crate) fn new(editor: Editor, bell: bool) -> Self {
        Self {
            editor,
            words: Words::default(),
            pending: Vec::new(),
            me: None,
            current: None,
            typing: Vec::new(),
            passwords: Passwords::new(std::env::var_os("CHAT_PASSWORD").is_some()),
            bell,
            ring: false,
        }
    }

    fn prompt(&self) -> String {
        if self.passwords.hiding() {
            return format!(
                "{} (hidden, Esc cancels): ",
                render::clean(&self.passwords.prompt())
            );
        }
        let here: Vec<&str> = self
            .typing
            .iter()
            .filter(|(user, to)| render::typing_here(user, to, self.current.as_ref()))
            .map(|(user, _)| user.as_str())
            .collect();
        let typing = if here.is_empty() {
            String::new()
        } else {
            format!("({} typing) ", render::clean(&here.join(", ")))
        };
        let target = self
            .current
            .as_ref()
            .map_or_else(|| "-".to_owned(), |t| render::clean(&target_label(t)));
        format!("{typing}[{target}]> ")
    }
}

impl Screen for Plain {
    fn client(&mut self, event: Event, _inputs: &mut Vec<Input>) {
        crate::editor::learn(&event, &mut self.words);
        self.passwords.event(&event);
        if self.editor.secret() != self.passwords.hiding() {
            self.editor.set_secret(self.passwords.hiding());
        }
        match &event {
            Event::LoggedIn { user, room } => {
                self.me = Some(user.clone());
                self.current = Some(Target::Room(room.clone()));
            }
            Event::LoggedOut => self.me = None,
            Event::Switched(target) => self.current = Some(target.clone()),
            Event::Joined { room, .. } => self.current = Some(Target::Room(room.name.clone())),
            Event::Left(room) if self.current == Some(Target::Room(room.clone())) => {
                self.current = None;
            }
            Event::Typing {
                user,
                target,
                active,
            } => {
                self.typing.retain(|(u, t)| u != user || t != target);
                if *active {
                    self.typing.push((user.clone(), target.clone()));
                }
            }
            Event::Message { message, me, .. }
                if self.bell
                    && me.as_deref().is_some_and(|me| {
                        message.from != me
                            && (render::mentions(&message.text, me)
                                || matches!(message.target, Target::User(_)))
                    }) =>
            {
                self.ring = true;
            }
            _ => {}
        }
        self.pending.extend(render::dated(&event, render::now_ms()));
    }

    fn term(&mut self, event: TermEvent, inputs: &mut Vec<Input>) {
        let edit = match event {
            TermEvent::Key(key) => self.editor.key(key, &self.words),
            TermEvent::Paste(text) => self.editor.paste(&text),
            _ => Edit::Moved,
        };
        edit_inputs(edit, &mut self.editor, &mut self.passwords, inputs);
    }

    fn draw(&mut self) -> io::Result<()> {
        let mut out = io::stdout().lock();
        write!(out, "\r\x1b[2K")?;
        for line in self.pending.drain(..) {
            write!(out, "{line}\r\n")?;
        }
        if std::mem::take(&mut self.ring) {
            write!(out, "\x07")?;
        }
        let cols = crossterm::terminal::size().map_or(80, |(c, _)| usize::from(c).max(20));
        let prompt = self.prompt();
        let (text, cursor) = self.editor.display();
        let room = cols.saturating_sub(prompt.width() + 1).max(8);
        // Scroll the line sideways so the cursor stays visible.
        let mut skip = 0;
        let chars: Vec<char> = text.chars().collect();
        let mut col = cursor;
        while col > room && skip < chars.len() {
            col -= unicode_width::UnicodeWidthChar::width(chars[skip]).unwrap_or(0);
            skip += 1;
        }
        let mut shown = String::new();
        let mut width = 0;
        for &c in &chars[skip..] {
            let w = unicode_width::UnicodeWidthChar::width(c).unwrap_or(0);
            if width + w > room {
                break;
            }
            width += w;
            shown.push(c);
        }
        write!(out, "{prompt}{shown}\r")?;
        let at = prompt.width() + col;
        if at > 0 {
            write!(out, "\x1b[{at}C")?;
        }
        out.flush()
    }
}
