//! Drawing the full-screen interface: title, messages (with the member list), status line and
//! input line; a buffer's entries become rows here (day separators, prefixes, wrapping).

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;
use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

use chat_client::command::target_label;
use chat_client::Delivery;
use chat_proto::{RosterEntry, Target};

use super::{App, Buffer, Kind, MEMBERS_WIDTH};
use crate::render::{self, clean, typing_here};

impl App {
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
        let mut members: Vec<&RosterEntry> = buffer.members.iter().collect();
        members.sort_by(|a, b| {
            (b.status.online, b.role)
                .cmp(&(a.status.online, a.role))
                .then(a.status.user.cmp(&b.status.user))
        });
        let lines: Vec<Line<'static>> = members
            .into_iter()
            .map(|entry| {
                let m = &entry.status;
                let style = if m.online {
                    Style::default().fg(Color::Green)
                } else {
                    Style::default().fg(Color::DarkGray)
                };
                let mut name = format!("{}{}", render::role_mark(entry.role), clean(&m.user));
                if m.display_name != m.user {
                    name.push_str(&format!(" ({})", clean(&m.display_name)));
                }
                if entry.muted {
                    name.push_str(" (muted)");
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
pub(super) fn rows(buffer: &Buffer, width: usize, me: Option<&str>) -> Vec<Line<'static>> {
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
