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
//! the server at the top. A conversation is marked read on the server (protocol version 2)
//! when its buffer is shown and when it is left, so the user's other devices stop counting
//! it; the activity bar starts from the server's unread counts at login. [`App`] is the state and is drawn on any ratatui backend (the tests
//! use `TestBackend`); [`Tui`] puts it on the terminal.

use std::collections::{HashSet, VecDeque};
use std::io;

use chat_client::command::target_label;
use chat_client::{Delivery, Event, Input, NICK_ANNOUNCEMENT};
use chat_proto::{
    ChatMessage, MemberEvent, MessageId, ModAction, Role, RosterEntry, Target, UnixMillis,
    UserStatus,
};
use crossterm::event::{Event as TermEvent, KeyCode, KeyEventKind, KeyModifiers};
use ratatui::backend::{Backend, CrosstermBackend};
use ratatui::Terminal;

use crate::editor::{edit_inputs, learn, Editor, Passwords, Words};
use crate::render::{self, clean, mentions};
use crate::terminal::Screen;

mod draw;

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
    members: Vec<RosterEntry>,
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

    /// Adds a page of history (newest first) to what is shown, in id order; returns how many
    /// messages were new.
    fn prepend(&mut self, messages: &[ChatMessage], me: Option<&str>) -> usize {
        let room = MAX_ENTRIES.saturating_sub(self.entries.len());
        let mut added = 0;
        for m in messages.iter().take(room) {
            if m.id.0 == 0 || !self.ids.insert(m.id) {
                continue;
            }
            added += 1;
            let highlight = me.is_some_and(|me| m.from != me && mentions(&m.text, me));
            // In id order among the messages shown (usually: before all of them).
            let id = |e: &Entry| match &e.kind {
                Kind::Message { message, .. } if message.id.0 != 0 => Some(message.id),
                _ => None,
            };
            let at = match self.entries.iter().position(|e| id(e) > Some(m.id)) {
                Some(at) => at,
                None => self
                    .entries
                    .iter()
                    .rposition(|e| id(e).is_some_and(|id| id < m.id))
                    .map_or(0, |at| at + 1),
            };
            self.entries.insert(
                at,
                Entry {
                    at: m.sent_at,
                    kind: Kind::Message {
                        message: m.clone(),
                        status: (Some(m.from.as_str()) == me).then_some(Delivery::Stored),
                        highlight,
                    },
                },
            );
        }
        added
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

    /// Marks buffer `i`'s conversation read up to its newest message (the client asks the
    /// server only if that moves the marker).
    fn mark_read(&self, i: usize, inputs: &mut Vec<Input>) {
        if let Some(Buffer {
            target: Some(target),
            left: false,
            ..
        }) = self.buffers.get(i)
        {
            if self.me.is_some() {
                inputs.push(Input::MarkRead(target.clone()));
            }
        }
    }

    /// Makes buffer `i` the one shown; tells the client where lines go now. The buffer left
    /// and the buffer shown are both read up to their newest message.
    fn switch(&mut self, i: usize, inputs: &mut Vec<Input>) {
        if i >= self.buffers.len() {
            return;
        }
        if i != self.active {
            self.mark_read(self.active, inputs);
        }
        self.mark_read(i, inputs);
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
            } => {
                // Someone's new name: the member list asks the server again.
                if let (Target::Room(room), true) =
                    (&message.target, message.text.starts_with(NICK_ANNOUNCEMENT))
                {
                    inputs.push(Input::Members(room.clone()));
                }
                self.message(message, earlier);
            }
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
                // Not loading: the user typed /history; its page is merged into the buffer.
                let typed = !std::mem::replace(&mut buffer.loading, false);
                buffer.more = Some(more);
                let added = buffer.prepend(&messages, me.as_deref());
                if typed {
                    let n = messages.len();
                    let note = format!(
                        "* {n} message{} of history ({added} not shown before) in {}; PageUp scrolls",
                        if n == 1 { "" } else { "s" },
                        buffer.name()
                    );
                    let active = self.active;
                    self.info(active, note, false);
                }
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
                    MemberEvent::Left => members.retain(|m| m.status.user != *user),
                    MemberEvent::Joined | MemberEvent::Invited { .. } => {
                        if !members.iter().any(|m| m.status.user == *user) {
                            members.push(RosterEntry {
                                status: UserStatus {
                                    user: user.clone(),
                                    display_name: user.clone(),
                                    online: matches!(change, MemberEvent::Joined),
                                },
                                role: Role::Member,
                                muted: false,
                            });
                        }
                    }
                }
                for line in render::untimed(&event) {
                    self.info(i, line, false);
                }
            }
            Event::Moderated {
                ref room,
                ref user,
                action,
                ..
            } => {
                let i = self.buffer(&Target::Room(room.clone()));
                let members = &mut self.buffers[i].members;
                if matches!(action, ModAction::Kicked | ModAction::Banned) {
                    members.retain(|m| m.status.user != *user);
                }
                if let Some(m) = members.iter_mut().find(|m| m.status.user == *user) {
                    match action {
                        ModAction::Opped => m.role = Role::Moderator,
                        ModAction::Deopped => m.role = Role::Member,
                        ModAction::Muted => m.muted = true,
                        ModAction::Unmuted => m.muted = false,
                        _ => {}
                    }
                }
                for line in render::untimed(&event) {
                    self.info(i, line, false);
                }
            }
            Event::Presence { ref user, online } => {
                for buffer in &mut self.buffers {
                    for member in &mut buffer.members {
                        if member.status.user == *user {
                            member.status.online = online;
                        }
                    }
                }
                for line in render::untimed(&event) {
                    self.info(0, line, false);
                }
            }
            Event::Unread(ref counts) => {
                for count in counts.iter().filter(|c| c.unread > 0) {
                    let i = self.buffer(&count.target);
                    if i == self.active {
                        self.mark_read(i, inputs);
                    } else {
                        self.buffers[i].unread = count.unread as usize;
                    }
                }
                self.lines_status(&event);
            }
            Event::ReadElsewhere { ref target, up_to } => {
                let me = self.me.clone();
                if let Some(buffer) = self
                    .buffers
                    .iter_mut()
                    .find(|b| b.target.as_ref() == Some(target))
                {
                    // What is still unread here: the messages of others after the marker.
                    let after = buffer
                        .entries
                        .iter()
                        .filter(|e| {
                            matches!(&e.kind, Kind::Message { message, .. }
                                if message.id > up_to && Some(&message.from) != me.as_ref())
                        })
                        .count();
                    buffer.unread = buffer.unread.min(after);
                    if buffer.unread == 0 {
                        buffer.highlight = false;
                    }
                }
                self.lines_status(&event);
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
            Event::Connected { ref server } => {
                self.link = "online";
                self.server.clone_from(server);
                self.lines_status(&event);
            }
            Event::Reconnected { ref server } => {
                self.link = "online";
                self.server.clone_from(server);
                self.lines_status(&event);
                // Members may have come and gone meanwhile.
                for buffer in &mut self.buffers {
                    buffer.asked_members = false;
                }
                let active = self.active;
                self.open(active, inputs);
            }
            Event::Reconnecting => {
                self.link = "reconnecting";
                self.lines_status(&event);
            }
            Event::Unreachable { ref server, .. } => {
                self.link = "unreachable";
                self.server.clone_from(server);
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
        let edit = self.editor.key(key, &self.words);
        if edit_inputs(edit, &mut self.editor, &mut self.passwords, inputs) {
            self.buffers[self.active].scroll = 0;
        }
    }

    fn scroll_up(&mut self, inputs: &mut Vec<Input>) {
        let (width, page) = (self.width, self.page);
        let logged_in = self.me.is_some();
        let buffer = &mut self.buffers[self.active];
        let rows = draw::rows(buffer, width, None).len();
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
}

#[cfg(test)]
mod tests;
