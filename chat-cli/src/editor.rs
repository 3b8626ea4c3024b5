//! The input line: editing keys, history (kept in a file across runs), tab completion and
//! password entry. Pure apart from the history file; the screens draw it.
//!
//! Every key is handled as it arrives, so a burst (a paste without bracketed paste, an input
//! method sending several characters, `tmux send-keys`) is all there at once, and each Enter in
//! it submits its line.

use std::collections::VecDeque;
use std::io::Write;
use std::path::PathBuf;

use chat_client::Input;
use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use unicode_width::UnicodeWidthChar;

/// The most history entries kept (in memory and in the file).
pub(crate) const MAX_HISTORY: usize = 1000;

/// What a key did to the line.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Edit {
    /// Nothing the screen must know about (it still redraws).
    Moved,
    /// The text changed.
    Changed,
    /// Enter: this line is done (the editor is empty again).
    Submit(String),
    /// Ctrl-C on an empty line.
    Interrupt,
    /// Ctrl-D on an empty line.
    Eof,
    /// Esc.
    Escape,
    /// A key the editor does not use.
    Ignored,
}

/// Names that tab completes.
#[derive(Debug, Default)]
pub(crate) struct Words {
    /// Users, most relevant first.
    pub(crate) users: Vec<String>,
    /// Rooms, without `#`.
    pub(crate) rooms: Vec<String>,
}

/// A completion in progress: repeated Tabs cycle through `candidates`.
#[derive(Debug)]
struct Completion {
    start: usize,
    candidates: Vec<String>,
    index: usize,
}

/// The line being edited.
#[derive(Debug, Default)]
pub(crate) struct Editor {
    line: Vec<char>,
    cursor: usize,
    history: History,
    /// Position while walking the history (`None`: editing a new line), and the new line.
    walk: Option<(usize, Vec<char>)>,
    completion: Option<Completion>,
    /// Entering a password: no echo, no history, no completion.
    secret: bool,
    /// Passwords entered, so a line holding one is never kept in the history.
    secrets: Vec<String>,
}

impl Editor {
    /// An editor whose history lives in `path` (loaded now, appended to on every line).
    pub(crate) fn new(history: Option<PathBuf>) -> Self {
        Self {
            history: History::load(history),
            ..Self::default()
        }
    }

    /// The text.
    pub(crate) fn text(&self) -> String {
        self.line.iter().collect()
    }

    /// Whether a password is being entered.
    pub(crate) fn secret(&self) -> bool {
        self.secret
    }

    /// Starts (or ends) password entry; the line is cleared either way.
    pub(crate) fn set_secret(&mut self, secret: bool) {
        self.secret = secret;
        self.clear();
    }

    /// Empties the line.
    pub(crate) fn clear(&mut self) {
        self.line.clear();
        self.cursor = 0;
        self.walk = None;
        self.completion = None;
    }

    /// The line as shown and the cursor's column in it: a password as nothing, the password
    /// of `/login NAME PASSWORD` as stars, newlines as `↵`, control characters escaped.
    pub(crate) fn display(&self) -> (String, usize) {
        if self.secret {
            return (String::new(), 0);
        }
        let hidden_from = hidden_from(&self.line);
        let mut shown = String::new();
        let mut col = 0;
        for (i, &c) in self.line.iter().enumerate() {
            let piece = if i >= hidden_from && c != ' ' {
                "*".to_owned()
            } else if c == '\n' {
                "↵".to_owned()
            } else {
                crate::render::clean(&c.to_string())
            };
            if i < self.cursor {
                col += piece.chars().map(|c| c.width().unwrap_or(0)).sum::<usize>();
            }
            shown.push_str(&piece);
        }
        (shown, col)
    }

    /// Inserts pasted text as it is (newlines included: Enter sends it as one message).
    pub(crate) fn paste(&mut self, text: &str) -> Edit {
        let text = text.replace("\r\n", "\n").replace('\r', "\n");
        let text = text.trim_end_matches('\n');
        self.completion = None;
        for c in text.chars() {
            self.insert(c);
        }
        Edit::Changed
    }

    /// Handles one key.
    pub(crate) fn key(&mut self, key: KeyEvent, words: &Words) -> Edit {
        if key.kind == KeyEventKind::Release {
            return Edit::Ignored;
        }
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        let alt = key.modifiers.contains(KeyModifiers::ALT);
        if key.code != KeyCode::Tab {
            self.completion = None;
        }
        match key.code {
            KeyCode::Char('c') if ctrl => {
                if self.line.is_empty() {
                    return Edit::Interrupt;
                }
                self.clear();
                Edit::Changed
            }
            KeyCode::Char('d') if ctrl => {
                if self.line.is_empty() {
                    return Edit::Eof;
                }
                self.delete()
            }
            KeyCode::Char('a') if ctrl => self.go(0),
            KeyCode::Char('e') if ctrl => self.go(self.line.len()),
            KeyCode::Char('b') if ctrl => self.go(self.cursor.saturating_sub(1)),
            KeyCode::Char('f') if ctrl => self.go((self.cursor + 1).min(self.line.len())),
            KeyCode::Char('u') if ctrl => {
                self.line.drain(..self.cursor);
                self.cursor = 0;
                Edit::Changed
            }
            KeyCode::Char('k') if ctrl => {
                self.line.truncate(self.cursor);
                Edit::Changed
            }
            KeyCode::Char('w') if ctrl => {
                let mut start = self.cursor;
                while start > 0 && self.line[start - 1] == ' ' {
                    start -= 1;
                }
                while start > 0 && self.line[start - 1] != ' ' {
                    start -= 1;
                }
                self.line.drain(start..self.cursor);
                self.cursor = start;
                Edit::Changed
            }
            KeyCode::Char('j') if ctrl => self.submit(),
            KeyCode::Char(c) if !ctrl && !alt => {
                self.insert(c);
                Edit::Changed
            }
            KeyCode::Enter if alt => {
                self.insert('\n');
                Edit::Changed
            }
            KeyCode::Enter => self.submit(),
            KeyCode::Backspace if self.cursor > 0 => {
                self.cursor -= 1;
                self.line.remove(self.cursor);
                Edit::Changed
            }
            KeyCode::Delete => self.delete(),
            KeyCode::Left => self.go(self.cursor.saturating_sub(1)),
            KeyCode::Right => self.go((self.cursor + 1).min(self.line.len())),
            KeyCode::Home => self.go(0),
            KeyCode::End => self.go(self.line.len()),
            KeyCode::Up if !self.secret => self.older(),
            KeyCode::Down if !self.secret => self.newer(),
            KeyCode::Tab if !self.secret => self.complete(words),
            KeyCode::Esc => Edit::Escape,
            _ => Edit::Ignored,
        }
    }

    fn insert(&mut self, c: char) {
        let c = if c == '\r' { '\n' } else { c };
        self.line.insert(self.cursor, c);
        self.cursor += 1;
    }

    fn delete(&mut self) -> Edit {
        if self.cursor < self.line.len() {
            self.line.remove(self.cursor);
            return Edit::Changed;
        }
        Edit::Moved
    }

    fn go(&mut self, to: usize) -> Edit {
        self.cursor = to;
        Edit::Moved
    }

    fn submit(&mut self) -> Edit {
        let line = self.text();
        self.clear();
        if !self.secret && !line.trim().is_empty() && keepable(&line, &self.secrets) {
            self.history.add(line.clone());
        }
        if self.secret {
            self.secrets.push(line.clone());
            if self.secrets.len() > 4 {
                self.secrets.remove(0);
            }
        }
        Edit::Submit(line)
    }

    fn older(&mut self) -> Edit {
        let entries = &self.history.entries;
        let at = match &self.walk {
            Some((0, _)) => return Edit::Moved,
            Some((at, _)) => at - 1,
            None if entries.is_empty() => return Edit::Moved,
            None => {
                self.walk = Some((entries.len(), self.line.clone()));
                entries.len() - 1
            }
        };
        self.line = entries[at].chars().collect();
        self.cursor = self.line.len();
        if let Some((pos, _)) = &mut self.walk {
            *pos = at;
        }
        Edit::Changed
    }

    fn newer(&mut self) -> Edit {
        let Some((at, draft)) = self.walk.take() else {
            return Edit::Moved;
        };
        if at + 1 >= self.history.entries.len() {
            self.line = draft;
        } else {
            self.line = self.history.entries[at + 1].chars().collect();
            self.walk = Some((at + 1, draft));
        }
        self.cursor = self.line.len();
        Edit::Changed
    }

    /// Completes the word before the cursor: a command as the first word, `#room`, or a user;
    /// repeated Tabs cycle through the candidates.
    fn complete(&mut self, words: &Words) -> Edit {
        if let Some(done) = &mut self.completion {
            if done.candidates.len() < 2 {
                return Edit::Moved;
            }
            done.index = (done.index + 1) % done.candidates.len();
            let (start, word) = (done.start, done.candidates[done.index].clone());
            return self.replace_word(start, &word);
        }
        let start = self.line[..self.cursor]
            .iter()
            .rposition(|c| *c == ' ' || *c == '\n')
            .map_or(0, |i| i + 1);
        let word: String = self.line[start..self.cursor].iter().collect();
        let lower = word.to_lowercase();
        let candidates: Vec<String> = if start == 0 && word.starts_with('/') {
            chat_client::command::NAMES
                .iter()
                .filter(|name| name.starts_with(&lower))
                .map(|name| format!("{name} "))
                .collect()
        } else if let Some(room) = lower.strip_prefix('#') {
            words
                .rooms
                .iter()
                .filter(|r| r.to_lowercase().starts_with(room))
                .map(|r| format!("#{r} "))
                .collect()
        } else if !word.is_empty() {
            let after_command = self.line.first() == Some(&'/');
            words
                .users
                .iter()
                .filter(|u| u.to_lowercase().starts_with(&lower))
                .map(|u| {
                    if start == 0 && !after_command {
                        format!("{u}: ")
                    } else {
                        format!("{u} ")
                    }
                })
                .collect()
        } else {
            Vec::new()
        };
        let Some(first) = candidates.first().cloned() else {
            return Edit::Moved;
        };
        self.completion = Some(Completion {
            start,
            candidates,
            index: 0,
        });
        self.replace_word(start, &first)
    }

    fn replace_word(&mut self, start: usize, word: &str) -> Edit {
        self.line.splice(start..self.cursor, word.chars());
        self.cursor = start + word.chars().count();
        Edit::Changed
    }
}

/// What an edit of the input line asks of the client, with the password prompt's rules: a line
/// typed while a password is asked for goes out as that password, never as a line; leaving the
/// prompt cancels it. Keeps the editor hiding its text exactly while a password is asked for.
/// Returns whether a line (not a password) was submitted.
pub(crate) fn edit_inputs(
    edit: Edit,
    editor: &mut Editor,
    passwords: &mut Passwords,
    inputs: &mut Vec<Input>,
) -> bool {
    let secret = editor.secret();
    let mut submitted = false;
    match edit {
        Edit::Submit(line) if secret => {
            passwords.hidden();
            inputs.push(Input::Password(Some(line)));
        }
        Edit::Submit(line) => {
            passwords.line(&line);
            inputs.push(Input::Line(line));
            submitted = true;
        }
        Edit::Interrupt | Edit::Eof | Edit::Escape if secret => {
            passwords.cancel();
            inputs.push(Input::Password(None));
        }
        Edit::Interrupt | Edit::Eof => inputs.push(Input::Quit),
        Edit::Changed if !secret => inputs.push(Input::Keys(editor.text())),
        Edit::Changed | Edit::Moved | Edit::Escape | Edit::Ignored => {}
    }
    if editor.secret() != passwords.hiding() {
        editor.set_secret(passwords.hiding());
    }
    submitted
}

/// When the input line hides what is typed. Set as soon as a `/login NAME` or `/register NAME`
/// line is entered, before the client's [`Event::AskPassword`] comes back, so a password typed
/// ahead (a fast typist, a paste) is never shown nor sent as a message; kept through a
/// registration's confirmation; ended by a login, a failure or a cancel.
///
/// [`Event::AskPassword`]: chat_client::Event::AskPassword
#[derive(Debug, Default)]
pub(crate) struct Passwords {
    /// Hidden lines still expected.
    expected: u8,
    /// What to ask, once the client said.
    prompt: Option<String>,
    /// Whether `CHAT_PASSWORD` answers instead.
    configured: bool,
}

impl Passwords {
    /// `configured`: a password is set in the environment (nothing is asked).
    pub(crate) fn new(configured: bool) -> Self {
        Self {
            configured,
            ..Self::default()
        }
    }

    /// Whether the line hides what is typed.
    pub(crate) fn hiding(&self) -> bool {
        self.expected > 0
    }

    /// The prompt while hiding.
    pub(crate) fn prompt(&self) -> String {
        self.prompt.clone().unwrap_or_else(|| "password".into())
    }

    /// A visible line was entered.
    pub(crate) fn line(&mut self, line: &str) {
        let words: Vec<&str> = line.split_whitespace().collect();
        self.expected = match words.as_slice() {
            _ if self.configured => 0,
            [login, _] if login.eq_ignore_ascii_case("/login") => 1,
            [register, _] if register.eq_ignore_ascii_case("/register") => 2,
            _ => 0,
        };
        self.prompt = None;
    }

    /// A hidden line was entered.
    pub(crate) fn hidden(&mut self) {
        self.expected = self.expected.saturating_sub(1);
    }

    /// Cancelled (Esc, Ctrl-C).
    pub(crate) fn cancel(&mut self) {
        self.expected = 0;
    }

    /// What the client said.
    pub(crate) fn event(&mut self, event: &chat_client::Event) {
        use chat_client::Event;
        match event {
            Event::AskPassword {
                prompt,
                confirm_next,
            } => {
                self.prompt = Some(prompt.clone());
                self.expected = if *confirm_next { 2 } else { 1 };
            }
            Event::LoggedIn { .. } | Event::Failed(_) => self.expected = 0,
            _ => {}
        }
    }
}

/// Remembers the names an event mentions, for tab completion (at most 500 of each).
pub(crate) fn learn(event: &chat_client::Event, words: &mut Words) {
    fn add(list: &mut Vec<String>, name: &str) {
        if let Some(at) = list.iter().position(|n| n == name) {
            list.remove(at);
        } else if list.len() >= 500 {
            list.pop();
        }
        list.insert(0, name.to_owned());
    }
    use chat_client::Event;
    match event {
        Event::Message { message, .. } => add(&mut words.users, &message.from),
        Event::Members { members, .. } => {
            for m in members {
                if !words.users.contains(&m.status.user) {
                    add(&mut words.users, &m.status.user);
                }
            }
        }
        Event::Users(members) => {
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

/// Where a password typed on a `/login NAME PASSWORD` line starts (`line.len()`: none).
fn hidden_from(line: &[char]) -> usize {
    let text: String = line.iter().collect();
    let lower = text.to_lowercase();
    if !(lower.starts_with("/login ") || lower.starts_with("/register ")) {
        return line.len();
    }
    // Skip the command and the name: everything after the second word is hidden.
    let mut words = 0;
    let mut in_word = false;
    for (i, c) in line.iter().enumerate() {
        if *c == ' ' {
            if in_word {
                words += 1;
            }
            in_word = false;
        } else {
            if !in_word && words == 2 {
                return i;
            }
            in_word = true;
        }
    }
    line.len()
}

/// Whether a line may be kept in the history: never one with a password.
fn keepable(line: &str, secrets: &[String]) -> bool {
    let chars: Vec<char> = line.chars().collect();
    hidden_from(&chars) == chars.len() && !secrets.iter().any(|s| line.contains(s.as_str()))
}

/// Lines entered, oldest first, mirrored in a file (one line each, `\` and newlines escaped).
#[derive(Debug, Default)]
struct History {
    entries: VecDeque<String>,
    path: Option<PathBuf>,
}

impl History {
    fn load(path: Option<PathBuf>) -> Self {
        let mut entries: VecDeque<String> = path
            .as_ref()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .map(|text| text.lines().map(unescape).collect())
            .unwrap_or_default();
        let over = entries.len() > MAX_HISTORY;
        while entries.len() > MAX_HISTORY {
            entries.pop_front();
        }
        let history = Self { entries, path };
        if over {
            history.rewrite();
        }
        history
    }

    fn add(&mut self, line: String) {
        if self.entries.back() == Some(&line) {
            return;
        }
        self.entries.push_back(line.clone());
        if self.entries.len() > MAX_HISTORY {
            // Halve the file's rewrites: drop a tenth at once.
            self.entries.drain(..MAX_HISTORY / 10);
            return self.rewrite();
        }
        if let Some(path) = &self.path {
            let appended = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .and_then(|mut f| writeln!(f, "{}", escape(&line)));
            if appended.is_err() {
                self.path = None;
            }
        }
    }

    fn rewrite(&self) {
        if let Some(path) = &self.path {
            let text: String = self
                .entries
                .iter()
                .map(|e| format!("{}\n", escape(e)))
                .collect();
            let _ = std::fs::write(path, text);
        }
    }
}

fn escape(line: &str) -> String {
    line.replace('\\', "\\\\").replace('\n', "\\n")
}

fn unescape(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n') => out.push('\n'),
                Some(other) => out.push(other),
                None => {}
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The history file: `$XDG_STATE_HOME/chat-cli/history`, else
/// `~/.local/state/chat-cli/history` (the directory is created); `None` without either.
pub(crate) fn history_path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_STATE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|home| PathBuf::from(home).join(".local/state"))
        })?;
    let dir = base.join("chat-cli");
    std::fs::create_dir_all(&dir).ok()?;
    Some(dir.join("history"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn press(editor: &mut Editor, code: KeyCode, modifiers: KeyModifiers) -> Edit {
        editor.key(KeyEvent::new(code, modifiers), &Words::default())
    }

    fn typed(editor: &mut Editor, text: &str) -> Vec<Edit> {
        text.chars()
            .map(|c| match c {
                '\n' => press(editor, KeyCode::Enter, KeyModifiers::NONE),
                c => press(editor, KeyCode::Char(c), KeyModifiers::NONE),
            })
            .filter(|e| matches!(e, Edit::Submit(_)))
            .collect()
    }

    // Issue 14, defect 1: a paste without bracketed paste lost every line but the first.
    #[test]
    fn a_burst_of_keys_submits_every_line() {
        let mut editor = Editor::new(None);
        assert_eq!(
            typed(&mut editor, "a\nb\nこんにちは\n/help\n"),
            [
                Edit::Submit("a".into()),
                Edit::Submit("b".into()),
                Edit::Submit("こんにちは".into()),
                Edit::Submit("/help".into())
            ]
        );
        // A bracketed paste stays one (multi-line) message.
        editor.paste("one\r\ntwo\n");
        assert_eq!(editor.display(), ("one↵two".into(), 7));
        assert_eq!(
            press(&mut editor, KeyCode::Enter, KeyModifiers::NONE),
            Edit::Submit("one\ntwo".into())
        );
    }

    // Issue 14, defect 6.
    #[test]
    fn ctrl_c_clears_the_line_and_quits_only_when_it_is_empty() {
        let mut editor = Editor::new(None);
        typed(&mut editor, "half a thought");
        assert_eq!(
            press(&mut editor, KeyCode::Char('c'), KeyModifiers::CONTROL),
            Edit::Changed
        );
        assert_eq!(editor.text(), "");
        assert_eq!(
            press(&mut editor, KeyCode::Char('c'), KeyModifiers::CONTROL),
            Edit::Interrupt
        );
        assert_eq!(
            press(&mut editor, KeyCode::Char('d'), KeyModifiers::CONTROL),
            Edit::Eof
        );
    }

    #[test]
    fn passwords_are_never_shown_nor_kept() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("history");
        let mut editor = Editor::new(Some(path.clone()));
        editor.set_secret(true);
        typed(&mut editor, "hunter22");
        assert_eq!(editor.display(), (String::new(), 0));
        assert_eq!(typed(&mut editor, "\n"), [Edit::Submit("hunter22".into())]);
        editor.set_secret(false);
        typed(&mut editor, "/login alice s3cret pw");
        assert_eq!(editor.display().0, "/login alice ****** **");
        typed(
            &mut editor,
            "\nhunter22 by mistake\n/join #rust\nline\nwith \\ slash\n",
        );
        let kept = std::fs::read_to_string(&path).expect("history file");
        assert_eq!(kept, "/join #rust\nline\nwith \\\\ slash\n");
        // Read back in the next run, and walked with Up/Down.
        let mut next = Editor::new(Some(path));
        press(&mut next, KeyCode::Up, KeyModifiers::NONE);
        assert_eq!(next.text(), "with \\ slash");
        press(&mut next, KeyCode::Up, KeyModifiers::NONE);
        assert_eq!(next.text(), "line");
        press(&mut next, KeyCode::Down, KeyModifiers::NONE);
        press(&mut next, KeyCode::Down, KeyModifiers::NONE);
        assert_eq!(next.text(), "");
    }

    #[test]
    fn tab_completes_commands_rooms_and_users() {
        let words = Words {
            users: vec!["bob".into(), "bobby".into()],
            rooms: vec!["rust".into()],
        };
        let mut editor = Editor::new(None);
        typed(&mut editor, "/jo");
        editor.key(KeyEvent::new(KeyCode::Tab, KeyModifiers::NONE), &words);
        assert_eq!(editor.text(), "/join ");
        typed(&mut editor, "#r");
        editor.key(KeyEvent::new(KeyCode::Tab, KeyModifiers::NONE), &words);
        assert_eq!(editor.text(), "/join #rust ");
        editor.clear();
        typed(&mut editor, "bo");
        editor.key(KeyEvent::new(KeyCode::Tab, KeyModifiers::NONE), &words);
        assert_eq!(editor.text(), "bob: ");
        editor.key(KeyEvent::new(KeyCode::Tab, KeyModifiers::NONE), &words);
        assert_eq!(editor.text(), "bobby: ");
    }
}
