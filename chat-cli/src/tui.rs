//! The full-screen interface (ratatui over crossterm), after weechat and irssi:
//!
//! ```text
//!  #rust — 3 members — bob is typing…                         title: buffer, typing
//!  ── Sunday 22 November 2026 ──────────────────  │ alice     messages   │ member list
//!  12:01 <bob> hello                               │ bob       (rooms)
//!  12:02 <alice> hi bob…                           │
//!  [12:03] [alice] [online] [2:#rust] [Act: 3:bob(1!)]                 status, activity
//!  [#rust] draft                                                        input line
//! ```
//!
//! Buffer 1 is the status buffer; every room and conversation gets its own. Alt+number,
//! Ctrl+N/Ctrl+P or `/switch` change buffer; PageUp/PageDown scroll, loading older history from
//! the server at the top. [`App`] is the state and is drawn on any ratatui backend (the tests
//! use `TestBackend`); [`Tui`] puts it on the terminal.

use std::collections::{HashSet, VecDeque};
use std::io;

use chat_client::command::target_label;
use chat_client::{Delivery, Event, Input};
use chat_proto::{ChatMessage, MemberEvent, MessageId, Target, UnixMillis, UserStatus};
use crossterm::event::{Event as TermEvent, KeyCode, KeyEventKind, KeyModifiers};
use ratatui::backend::{Backend, CrosstermBackend};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::{Frame, Terminal};
use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

use crate::editor::{Edit, Editor, Passwords, Words};
use crate::render::{self, clean};
use crate::terminal::Screen;

/// The most entries a buffer keeps; older ones are loaded again from the server on scrolling.
pub(crate) const MAX_ENTRIES: usize = 2000;
/// Messages asked for per page of history.
const PAGE: u16 = 50;
/// The member list's width.
const MEMBERS_WIDTH: u16 = 18;
/// The most buffers; past it, the oldest conversation without unread messages is closed.
const MAX_BUFFERS: usize = 100;
/// The keys, added to `/help`.
const KEYS: &str = "\
Keys: Alt+1..9/0 or Ctrl+N/Ctrl+P change buffer (1 is status), PageUp/PageDown scroll
(older history loads at the top), Tab completes, Up/Down recall lines, Alt+Enter adds a line,
Ctrl-C clears the line (on an empty line it quits, as does Ctrl-D), Ctrl-L redraws.";

/// The full-screen interface on a ratatui terminal.
pub(crate) struct Tui<B: Backend> {
    terminal: Terminal<B>,
    app: App,
}

impl Tui<CrosstermBackend<io::Stdout>> {
    /// On stdout (already in raw mode, on the alternate screen).
    ///
    /// # Errors
    /// If the terminal cannot be set up.
    pub(crate) fn on_stdout(app: App) -> io::Result<Self> {
        Ok(Self {
            terminal: Terminal::new(CrosstermBackend::new(io::stdout()))?,
            app,
        })
    }
}

impl<B: Backend> Screen for Tui<B> {
    fn client(&mut self, event: Event, inputs: &mut Vec<Input>) {
        self.app.client(event, inputs);
    }

    fn term(&mut self, event: TermEvent, inputs: &mut Vec<Input>) {
        if matches!(&event, TermEvent::Key(k) if k.code == KeyCode::Char('l') && k.modifiers.contains(KeyModifiers::CONTROL))
        {
            let _ = self.terminal.clear();
        }
        self.app.term(event, inputs);
    }

    fn draw(&mut self) -> io::Result<()> {
        if std::mem::take(&mut self.app.ring) {
            use std::io::Write;
            let mut out = io::stdout();
            let _ = out.write_all(b"\x07");
            let _ = out.flush();
        }
        self.terminal.draw(|frame| self.app.draw(frame))?;
        Ok(())
    }
}

/// One line of a buffer.
#[derive(Clone, Debug)]
struct Entry {
    /// When (0: unknown).
    at: UnixMillis,
    kind: Kind,
}

#[derive(Clone, Debug)]
enum Kind {
    /// A chat message; `status` for the user's own.
    Message {
        message: ChatMessage,
        status: Option<Delivery>,
        highlight: bool,
    },
    /// Information from the client or server.
    Info(String),
    /// An error.
    Error(String),
}

/// A room, a conversation, or the status buffer (`target: None`).
#[derive(Debug)]
struct Buffer {
    target: Option<Target>,
    entries: VecDeque<Entry>,
    ids: HashSet<MessageId>,
    unread: usize,
    highlight: bool,
    /// Rows scrolled up from the bottom.
    scroll: usize,
    /// Whether older messages exist on the server (`None`: not asked yet).
    more: Option<bool>,
    loading: bool,
    members: Vec<UserStatus>,
    /// Whether the members were asked for.
    asked_members: bool,
    left: bool,
}

impl Buffer {
    fn new(target: Option<Target>) -> Self {
        Self {
            target,
            entries: VecDeque::new(),
            ids: HashSet::new(),
            unread: 0,
            highlight: false,
            scroll: 0,
            more: None,
            loading: false,
            members: Vec::new(),
            asked_members: false,
            left: false,
        }
    }

    fn name(&self) -> String {
        self.target
            .as_ref()
            .map_or_else(|| "status".into(), |t| clean(&target_label(t)))
    }

    fn push(&mut self, entry: Entry) {
        if let Kind::Message { message, .. } = &entry.kind {
            if message.id.0 != 0 && !self.ids.insert(message.id) {
                return;
            }
        }
        self.entries.push_back(entry);
        while self.entries.len() > MAX_ENTRIES {
            if let Some(Entry {
                kind: Kind::Message { message, .. },
                ..
            }) = self.entries.pop_front()
            {
                self.ids.remove(&message.id);
                self.more = Some(true);
            }
        }
    }

    /// The oldest message id shown.
    fn oldest(&self) -> Option<MessageId> {
        self.entries.iter().find_map(|e| match &e.kind {
            Kind::Message { message, .. } if message.id.0 != 0 => Some(message.id),
            _ => None,
        })
    }

    /// Adds a page of history (newest first) before what is shown.
    fn prepend(&mut self, messages: &[ChatMessage], me: Option<&str>) {
        let room = MAX_ENTRIES.saturating_sub(self.entries.len());
        for m in messages.iter().take(room) {
            if m.id.0 == 0 || !self.ids.insert(m.id) {
                continue;
            }
            let highlight = me.is_some_and(|me| m.from != me && mentions(&m.text, me));
            self.entries.push_front(Entry {
                at: m.sent_at,
                kind: Kind::Message {
                    message: m.clone(),
                    status: (Some(m.from.as_str()) == me).then_some(Delivery::Stored),
                    highlight,
                },
            });
        }
    }
}

/// The full-screen interface's state: buffers, input line, status; drawn by [`App::draw`].
pub(crate) struct App {
    buffers: Vec<Buffer>,
    active: usize,
    editor: Editor,
    words: Words,
    me: Option<String>,
    server: String,
    link: &'static str,
    /// Where a line typed goes.
    target: Option<Target>,
    typing: Vec<(String, Target)>,
    passwords: Passwords,
    bell: bool,
    /// Ring the bell at the next draw.
    ring: bool,
    /// The rows and columns of the message area at the last draw (for paging).
    page: usize,
    width: usize,
}

impl App {
    /// A screen with the status buffer only.
    pub(crate) fn new(editor: Editor, server: String, bell: bool) -> Self {
        Self {
            buffers: vec![Buffer::new(None)],
            active: 0,
            editor,
            words: Words::default(),
            me: None,
            server,
            link: "connecting",
            target: None,
            typing: Vec::new(),
            passwords: Passwords::new(std::env::var_os("CHAT_PASSWORD").is_some()),
            bell,
            ring: false,
            page: 10,
            width: 80,
        }
    }

    fn buffer(&mut self, target: &Target) -> usize {
        if let Some(i) = self
            .buffers
            .iter()
            .position(|b| b.target.as_ref() == Some(target))
        {
            return i;
        }
        if self.buffers.len() >= MAX_BUFFERS {
            let active = self.active;
            let closable = (1..self.buffers.len())
                .find(|&i| i != active && self.buffers[i].unread == 0)
                .unwrap_or(if active == 1 { 2 } else { 1 });
            self.buffers.remove(closable);
            if self.active > closable {
                self.active -= 1;
            }
        }
        self.buffers.push(Buffer::new(Some(target.clone())));
        self.buffers.len() - 1
    }

    /// The buffer of a message: its room, or the other user of a direct conversation.
    fn buffer_of(&mut self, m: &ChatMessage) -> usize {
        let target = match &m.target {
            Target::Room(_) => m.target.clone(),
            Target::User(to) if Some(m.from.as_str()) == self.me.as_deref() => {
                Target::User(to.clone())
            }
            Target::User(_) => Target::User(m.from.clone()),
        };
        self.buffer(&target)
    }

    fn info(&mut self, at: usize, text: String, error: bool) {
        let kind = if error {
            Kind::Error(text)
        } else {
            Kind::Info(text)
        };
        self.buffers[at].push(Entry {
            at: render::now_ms(),
            kind,
        });
    }

    fn lines_here(&mut self, event: &Event) {
        let active = self.active;
        for line in render::untimed(event) {
            let error = line.starts_with('!');
            self.info(active, line, error);
        }
    }

    /// Makes buffer `i` the one shown; tells the client where lines go now.
    fn switch(&mut self, i: usize, inputs: &mut Vec<Input>) {
        let Some(buffer) = self.buffers.get_mut(i) else {
            return;
        };
        buffer.unread = 0;
        buffer.highlight = false;
        self.active = i;
        if let Some(target) = buffer.target.clone() {
            if self.target.as_ref() != Some(&target) {
                self.target = Some(target.clone());
                inputs.push(Input::Line(format!("/switch {}", target_label(&target))));
            }
            self.open(i, inputs);
        }
    }

    /// Loads a buffer's recent history (and a room's members) the first time it is shown.
    fn open(&mut self, i: usize, inputs: &mut Vec<Input>) {
        if self.me.is_none() {
            return;
        }
        let buffer = &mut self.buffers[i];
        let Some(target) = buffer.target.clone() else {
            return;
        };
        if buffer.more.is_none() && !buffer.loading {
            buffer.loading = true;
            inputs.push(Input::History {
                target: target.clone(),
                before: None,
                limit: PAGE,
            });
        }
        if let (Target::Room(room), false) = (&target, buffer.asked_members) {
            buffer.asked_members = true;
            inputs.push(Input::Members(room.clone()));
        }
    }

    fn message(&mut self, message: ChatMessage, earlier: bool) {
        let i = self.buffer_of(&message);
        let me = self.me.clone().unwrap_or_default();
        let direct = matches!(message.target, Target::User(_));
        let highlight = message.from != me && (mentions(&message.text, &me) || direct);
        let shown = self.buffers[i].ids.contains(&message.id);
        self.buffers[i].push(Entry {
            at: message.sent_at,
            kind: Kind::Message {
                message,
                status: None,
                highlight,
            },
        });
        if shown {
            return;
        }
        if i != self.active {
            let buffer = &mut self.buffers[i];
            buffer.unread += 1;
            buffer.highlight |= highlight;
        }
        if highlight && self.bell && !earlier {
            self.ring = true;
        }
    }

    fn own(&mut self, message: ChatMessage, status: Delivery) {
        let i = self.buffer_of(&message);
        let buffer = &mut self.buffers[i];
        let found = buffer.entries.iter_mut().rev().find(|e| {
            matches!(&e.kind, Kind::Message { message: m, status: Some(_), .. }
                if m.client_msg_id == message.client_msg_id)
        });
        match found {
            Some(_) if status == Delivery::Pending => {}
            Some(entry) => {
                if status == Delivery::Stored {
                    buffer.ids.insert(message.id);
                    entry.at = message.sent_at;
                }
                entry.kind = Kind::Message {
                    message,
                    status: Some(status),
                    highlight: false,
                };
            }
            None => buffer.push(Entry {
                at: if message.sent_at == 0 {
                    render::now_ms()
                } else {
                    message.sent_at
                },
                kind: Kind::Message {
                    message,
                    status: Some(status),
                    highlight: false,
                },
            }),
        }
    }

    /// Shows an event from the client.
    pub(crate) fn client(&mut self, event: Event, inputs: &mut Vec<Input>) {
        learn(&event, &mut self.words);
        self.passwords.event(&event);
        if self.editor.secret() != self.passwords.hiding() {
            self.editor.set_secret(self.passwords.hiding());
        }
        match event {
            Event::Message {
                message, earlier, ..
            } => self.message(message, earlier),
            Event::Own { message, status } => self.own(message, status),
            Event::History {
                target,
                messages,
                more,
                me,
                ..
            } => {
                let i = self.buffer(&target);
                let buffer = &mut self.buffers[i];
                buffer.loading = false;
                buffer.more = Some(more);
                buffer.prepend(&messages, me.as_deref());
            }
            Event::LoggedIn { user, room } => {
                self.me = Some(user.clone());
                self.link = "online";
                self.info(0, format!("* logged in as {}", clean(&user)), false);
                let target = Target::Room(room);
                self.target = Some(target.clone());
                let i = self.buffer(&target);
                self.switch(i, inputs);
            }
            Event::LoggedOut => {
                self.me = None;
                self.info(0, "* logged out".into(), false);
            }
            Event::Switched(target) => {
                self.target = Some(target.clone());
                let i = self.buffer(&target);
                self.switch(i, inputs);
            }
            Event::Joined { ref room, .. } => {
                let target = Target::Room(room.name.clone());
                self.target = Some(target.clone());
                let i = self.buffer(&target);
                self.buffers[i].left = false;
                self.buffers[i].asked_members = false;
                for line in render::untimed(&event) {
                    self.info(i, line, false);
                }
                self.switch(i, inputs);
            }
            Event::Left(ref room) => {
                let target = Target::Room(room.clone());
                let i = self.buffer(&target);
                self.buffers[i].left = true;
                self.buffers[i].members.clear();
                if self.target.as_ref() == Some(&target) {
                    self.target = None;
                }
                for line in render::untimed(&event) {
                    self.info(i, line, false);
                }
            }
            Event::Members {
                ref room,
                ref members,
                asked,
            } => {
                let i = self.buffer(&Target::Room(room.clone()));
                self.buffers[i].members.clone_from(members);
                if asked {
                    self.lines_here(&event);
                }
            }
            Event::Member {
                ref room,
                ref user,
                event: ref change,
            } => {
                let i = self.buffer(&Target::Room(room.clone()));
                if Some(user) == self.me.as_ref() && *change == MemberEvent::Joined {
                    // Said already by "joined #room".
                    return;
                }
                let members = &mut self.buffers[i].members;
                match change {
                    MemberEvent::Left => members.retain(|m| m.user != *user),
                    MemberEvent::Joined | MemberEvent::Invited { .. } => {
                        if !members.iter().any(|m| m.user == *user) {
                            members.push(UserStatus {
                                user: user.clone(),
                                display_name: user.clone(),
                                online: matches!(change, MemberEvent::Joined),
                            });
                        }
                    }
                }
                for line in render::untimed(&event) {
                    self.info(i, line, false);
                }
            }
            Event::Presence { ref user, online } => {
                for buffer in &mut self.buffers {
                    for member in &mut buffer.members {
                        if member.user == *user {
                            member.online = online;
                        }
                    }
                }
                for line in render::untimed(&event) {
                    self.info(0, line, false);
                }
            }
            Event::Typing {
                user,
                target,
                active,
            } => {
                self.typing.retain(|(u, t)| *u != user || *t != target);
                if active {
                    self.typing.push((user, target));
                }
            }
            Event::Connected { .. } | Event::Reconnected => {
                self.link = "online";
                self.lines_status(&event);
            }
            Event::Reconnecting => {
                self.link = "reconnecting";
                self.lines_status(&event);
            }
            Event::Unreachable { .. } => {
                self.link = "unreachable";
                self.lines_status(&event);
                // Said where the user looks, too.
                if self.active != 0 {
                    self.lines_here(&event);
                }
            }
            Event::Help(_) => {
                self.lines_here(&event);
                let active = self.active;
                for line in KEYS.lines() {
                    self.info(active, line.to_owned(), false);
                }
            }
            other => self.lines_here(&other),
        }
    }

    fn lines_status(&mut self, event: &Event) {
        for line in render::untimed(event) {
            self.info(0, line, false);
        }
    }

    /// Handles a key, paste or resize.
    pub(crate) fn term(&mut self, event: TermEvent, inputs: &mut Vec<Input>) {
        let key = match event {
            TermEvent::Key(key) if key.kind != KeyEventKind::Release => key,
            TermEvent::Paste(text) => {
                self.editor.paste(&text);
                if !self.editor.secret() {
                    inputs.push(Input::Keys(self.editor.text()));
                }
                return;
            }
            _ => return,
        };
        let alt = key.modifiers.contains(KeyModifiers::ALT);
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        match key.code {
            KeyCode::Char(c @ '0'..='9') if alt => {
                let n = c
                    .to_digit(10)
                    .map_or(0, |d| if d == 0 { 10 } else { d as usize });
                return self.switch(n - 1, inputs);
            }
            KeyCode::Char('n') if ctrl => {
                return self.switch((self.active + 1) % self.buffers.len(), inputs);
            }
            KeyCode::Char('p') if ctrl => {
                let n = self.buffers.len();
                return self.switch((self.active + n - 1) % n, inputs);
            }
            KeyCode::PageUp => return self.scroll_up(inputs),
            KeyCode::PageDown => {
                let buffer = &mut self.buffers[self.active];
                buffer.scroll = buffer.scroll.saturating_sub(self.page / 2);
                return;
            }
            _ => {}
        }
        let secret = self.editor.secret();
        match self.editor.key(key, &self.words) {
            Edit::Submit(line) if secret => {
                self.passwords.hidden();
                inputs.push(Input::Password(Some(line)));
            }
            Edit::Submit(line) => {
                self.buffers[self.active].scroll = 0;
                self.passwords.line(&line);
                inputs.push(Input::Line(line));
            }
            Edit::Interrupt | Edit::Eof | Edit::Escape if secret => {
                self.passwords.cancel();
                inputs.push(Input::Password(None));
            }
            Edit::Interrupt | Edit::Eof => inputs.push(Input::Quit),
            Edit::Changed if !secret => inputs.push(Input::Keys(self.editor.text())),
            Edit::Changed | Edit::Moved | Edit::Escape | Edit::Ignored => {}
        }
        if self.editor.secret() != self.passwords.hiding() {
            self.editor.set_secret(self.passwords.hiding());
        }
    }

    fn scroll_up(&mut self, inputs: &mut Vec<Input>) {
        let (width, page) = (self.width, self.page);
        let logged_in = self.me.is_some();
        let buffer = &mut self.buffers[self.active];
        let rows = rows(buffer, width, None).len();
        let top = rows.saturating_sub(page);
        buffer.scroll = (buffer.scroll + page / 2).min(top);
        if buffer.scroll >= top && logged_in && !buffer.loading && buffer.more != Some(false) {
            if let Some(target) = buffer.target.clone() {
                buffer.loading = true;
                inputs.push(Input::History {
                    target,
                    before: buffer.oldest(),
                    limit: PAGE,
                });
            }
        }
    }

    /// Draws the whole screen.
    pub(crate) fn draw(&mut self, frame: &mut Frame<'_>) {
        let [title, body, status, input] = Layout::vertical([
            Constraint::Length(1),
            Constraint::Min(1),
            Constraint::Length(1),
            Constraint::Length(1),
        ])
        .areas(frame.area());
        let bar = Style::default().bg(Color::Blue).fg(Color::White);
        frame.render_widget(Paragraph::new(self.title()).style(bar), title);
        let buffer = &self.buffers[self.active];
        let show_members = matches!(buffer.target, Some(Target::Room(_)))
            && body.width >= 50
            && !buffer.members.is_empty();
        let (messages, members) = if show_members {
            let [m, n] =
                Layout::horizontal([Constraint::Min(20), Constraint::Length(MEMBERS_WIDTH)])
                    .areas(body);
            (m, Some(n))
        } else {
            (body, None)
        };
        self.page = usize::from(messages.height).max(2);
        self.width = usize::from(messages.width);
        self.draw_messages(frame, messages);
        if let Some(area) = members {
            self.draw_members(frame, area);
        }
        frame.render_widget(Paragraph::new(self.status_line()).style(bar), status);
        self.draw_input(frame, input);
    }

    fn title(&self) -> Line<'static> {
        let buffer = &self.buffers[self.active];
        let mut text = format!(" {}", buffer.name());
        match &buffer.target {
            Some(Target::Room(_)) if buffer.left => text.push_str(" (left)"),
            Some(Target::Room(_)) => {
                let n = buffer.members.len();
                if n > 0 {
                    text.push_str(&format!(" — {n} member{}", if n == 1 { "" } else { "s" }));
                }
            }
            Some(Target::User(user)) => {
                text.push_str(&format!(" — conversation with {}", clean(user)))
            }
            None => text.push_str(&format!(" — {}", clean(&self.server))),
        }
        let here: Vec<&str> = self
            .typing
            .iter()
            .filter(|(user, to)| typing_here(user, to, buffer.target.as_ref()))
            .map(|(user, _)| user.as_str())
            .collect();
        match here.as_slice() {
            [] => {}
            [one] => text.push_str(&format!(" — {} is typing…", clean(one))),
            many => text.push_str(&format!(" — {} are typing…", clean(&many.join(", ")))),
        }
        Line::from(text)
    }

    fn draw_messages(&mut self, frame: &mut Frame<'_>, area: Rect) {
        let width = usize::from(area.width);
        let height = usize::from(area.height);
        let me = self.me.clone();
        let buffer = &mut self.buffers[self.active];
        let all = rows(buffer, width, me.as_deref());
        let top = all.len().saturating_sub(height);
        buffer.scroll = buffer.scroll.min(top);
        let end = all.len() - buffer.scroll;
        let start = end.saturating_sub(height);
        let mut shown: Vec<Line<'static>> = all[start..end].to_vec();
        if buffer.scroll > 0 && !shown.is_empty() {
            let last = shown.len() - 1;
            shown[last] = Line::styled(
                format!("-- more below ({} rows): PageDown --", buffer.scroll),
                Style::default().fg(Color::Black).bg(Color::Yellow),
            );
        }
        // Bottom-aligned, like a chat log.
        let pad = height.saturating_sub(shown.len());
        let mut lines = vec![Line::default(); pad];
        lines.extend(shown);
        frame.render_widget(Paragraph::new(lines), area);
    }

    fn draw_members(&self, frame: &mut Frame<'_>, area: Rect) {
        let buffer = &self.buffers[self.active];
        let mut members: Vec<&UserStatus> = buffer.members.iter().collect();
        members.sort_by(|a, b| b.online.cmp(&a.online).then(a.user.cmp(&b.user)));
        let lines: Vec<Line<'static>> = members
            .into_iter()
            .map(|m| {
                let style = if m.online {
                    Style::default().fg(Color::Green)
                } else {
                    Style::default().fg(Color::DarkGray)
                };
                let mut name = clean(&m.user);
                if m.display_name != m.user {
                    name.push_str(&format!(" ({})", clean(&m.display_name)));
                }
                Line::from(vec![Span::raw("│ "), Span::styled(name, style)])
            })
            .collect();
        frame.render_widget(Paragraph::new(lines), area);
    }

    fn status_line(&self) -> Line<'static> {
        let time = chrono::Local::now().format("%H:%M").to_string();
        let user = self
            .me
            .as_deref()
            .map_or_else(|| "not logged in".into(), clean);
        let buffer = &self.buffers[self.active];
        let mut spans = vec![
            Span::raw(format!("[{time}] [{user}] ")),
            Span::raw(format!("[{} {}] ", self.link, clean(&self.server))),
            Span::raw(format!("[{}:{}] ", self.active + 1, buffer.name())),
        ];
        let active: Vec<(usize, &Buffer)> = self
            .buffers
            .iter()
            .enumerate()
            .filter(|(_, b)| b.unread > 0)
            .collect();
        if !active.is_empty() {
            spans.push(Span::raw("[Act: "));
            for (n, (i, b)) in active.iter().enumerate() {
                if n > 0 {
                    spans.push(Span::raw(","));
                }
                let mark = if b.highlight { "!" } else { "" };
                let text = format!("{}:{}({}{mark})", i + 1, b.name(), b.unread);
                let style = if b.highlight {
                    Style::default()
                        .fg(Color::LightMagenta)
                        .add_modifier(Modifier::BOLD)
                } else {
                    Style::default()
                        .fg(Color::White)
                        .add_modifier(Modifier::BOLD)
                };
                spans.push(Span::styled(text, style));
            }
            spans.push(Span::raw("]"));
        }
        Line::from(spans)
    }

    fn draw_input(&self, frame: &mut Frame<'_>, area: Rect) {
        let prompt = match self.passwords.hiding() {
            true => format!(
                "{} (hidden, Esc cancels): ",
                clean(&self.passwords.prompt())
            ),
            false => match &self.target {
                Some(target) => format!("[{}] ", clean(&target_label(target))),
                None => "[nowhere: /join #room] ".into(),
            },
        };
        let (text, cursor) = self.editor.display();
        let room = usize::from(area.width)
            .saturating_sub(prompt.width() + 1)
            .max(4);
        let chars: Vec<char> = text.chars().collect();
        let (mut skip, mut col) = (0, cursor);
        while col > room && skip < chars.len() {
            col -= chars[skip].width().unwrap_or(0);
            skip += 1;
        }
        let shown: String = chars[skip..].iter().collect();
        let line = Line::from(vec![
            Span::styled(prompt.clone(), Style::default().fg(Color::Cyan)),
            Span::raw(shown),
        ]);
        frame.render_widget(Paragraph::new(line), area);
        let x = area.x + u16::try_from(prompt.width() + col).unwrap_or(area.width);
        frame.set_cursor_position((x.min(area.right().saturating_sub(1)), area.y));
    }
}

/// A buffer's rows at `width`: day separators, messages with their continuation lines indented
/// under the prefix, everything wrapped.
fn rows(buffer: &Buffer, width: usize, me: Option<&str>) -> Vec<Line<'static>> {
    let width = width.max(10);
    let mut out = Vec::new();
    let mut day = None;
    if buffer.loading {
        out.push(Line::styled(
            "-- loading older messages… --",
            Style::default().fg(Color::DarkGray),
        ));
    } else if buffer.more == Some(true) {
        out.push(Line::styled(
            "-- older messages: PageUp --",
            Style::default().fg(Color::DarkGray),
        ));
    }
    for entry in &buffer.entries {
        if entry.at > 0 {
            let key = render::day_key(entry.at);
            if key != day {
                let label = format!("── {} ", render::day(entry.at));
                let fill = width.saturating_sub(label.width());
                out.push(Line::styled(
                    format!("{label}{}", "─".repeat(fill)),
                    Style::default().fg(Color::DarkGray),
                ));
                day = key;
            }
        }
        let time = if entry.at > 0 {
            render::clock(entry.at)
        } else {
            "     ".into()
        };
        let (prefix, text, style) = match &entry.kind {
            Kind::Message {
                message,
                status,
                highlight,
            } => {
                let (who, text) = render::speaker(message);
                let mut text = text.to_owned();
                let style = match status {
                    Some(Delivery::Pending) => {
                        text.push_str(" …");
                        Style::default().fg(Color::DarkGray)
                    }
                    Some(Delivery::Refused) => {
                        text.push_str(" (not sent)");
                        Style::default().fg(Color::Red)
                    }
                    Some(Delivery::Stored) => Style::default(),
                    None if *highlight => Style::default()
                        .fg(Color::Yellow)
                        .add_modifier(Modifier::BOLD),
                    None => Style::default(),
                };
                let own = status.is_some() || Some(message.from.as_str()) == me;
                let who_style = if own {
                    Style::default().fg(Color::Cyan)
                } else {
                    Style::default().fg(Color::Green)
                };
                let prefix = vec![
                    Span::styled(format!("{time} "), Style::default().fg(Color::DarkGray)),
                    Span::styled(who, who_style),
                ];
                (prefix, render::text_lines(&text), style)
            }
            Kind::Info(text) => (
                vec![Span::styled(
                    format!("{time} "),
                    Style::default().fg(Color::DarkGray),
                )],
                render::text_lines(text),
                Style::default().fg(Color::Cyan),
            ),
            Kind::Error(text) => (
                vec![Span::styled(
                    format!("{time} "),
                    Style::default().fg(Color::DarkGray),
                )],
                render::text_lines(text),
                Style::default().fg(Color::Red),
            ),
        };
        wrap(&mut out, prefix, &text, style, width);
    }
    out
}

/// Appends `lines` after `prefix`, wrapped at `width`, every later row indented to the
/// prefix's width.
fn wrap(
    out: &mut Vec<Line<'static>>,
    prefix: Vec<Span<'static>>,
    lines: &[String],
    style: Style,
    width: usize,
) {
    let prefix_width: usize = prefix.iter().map(|s| s.content.width()).sum();
    let indent = if prefix_width + 10 > width {
        2
    } else {
        prefix_width
    };
    let mut first = Some(prefix);
    for line in lines {
        let mut row = String::new();
        let mut row_width = 0;
        let mut chars = line.chars().peekable();
        loop {
            let lead = if first.is_some() {
                prefix_width
            } else {
                indent
            };
            let room = width.saturating_sub(lead).max(1);
            while let Some(&c) = chars.peek() {
                let w = c.width().unwrap_or(0);
                if row_width + w > room && row_width > 0 {
                    break;
                }
                row.push(c);
                row_width += w;
                chars.next();
            }
            let mut spans = first
                .take()
                .unwrap_or_else(|| vec![Span::raw(" ".repeat(indent))]);
            spans.push(Span::styled(std::mem::take(&mut row), style));
            out.push(Line::from(spans));
            row_width = 0;
            if chars.peek().is_none() {
                break;
            }
        }
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

/// Remembers the names an event mentions, for tab completion (at most 500 of each).
pub(crate) fn learn(event: &Event, words: &mut Words) {
    fn add(list: &mut Vec<String>, name: &str) {
        if let Some(at) = list.iter().position(|n| n == name) {
            list.remove(at);
        } else if list.len() >= 500 {
            list.pop();
        }
        list.insert(0, name.to_owned());
    }
    match event {
        Event::Message { message, .. } => add(&mut words.users, &message.from),
        Event::Members { members, .. } | Event::Users(members) => {
            for m in members {
                if !words.users.contains(&m.user) {
                    add(&mut words.users, &m.user);
                }
            }
        }
        Event::Member { room, user, .. } => {
            add(&mut words.users, user);
            add(&mut words.rooms, room);
        }
        Event::Joined { room, .. } => add(&mut words.rooms, &room.name),
        Event::LoggedIn { room, .. } => add(&mut words.rooms, room),
        Event::Rooms(rooms) => {
            for r in rooms {
                if !words.rooms.contains(&r.name) {
                    add(&mut words.rooms, &r.name);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
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
                members: vec![UserStatus {
                    user: "bob".into(),
                    display_name: "Bobby".into(),
                    online: true,
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
        // Alt+2 reads #general: its count goes, the prompt follows.
        let mut inputs = Vec::new();
        app.term(
            TermEvent::Key(KeyEvent::new(KeyCode::Char('2'), KeyModifiers::ALT)),
            &mut inputs,
        );
        assert_eq!(inputs, [Input::Line("/switch #general".into())]);
        let rows = screen(&mut app, 90, 8);
        assert!(rows[6].contains("[Act: 4:carol(1!)]"), "{rows:#?}");
        assert!(rows[7].starts_with("[#general]"), "{rows:#?}");
        assert!(rows
            .iter()
            .any(|r| r.contains("<bob> alice: are you there?")));
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
    fn mentions_are_whole_words() {
        assert!(mentions("hey Alice!", "alice"));
        assert!(!mentions("malice", "alice"));
        assert!(!mentions("alice_b", "alice"));
    }
}
