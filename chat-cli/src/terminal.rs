//! The interactive modes' plumbing: one thread reads the terminal, one thread owns the screen,
//! and the client runs on tokio between them.
//!
//! ```text
//!  keys ─► reader thread ─┐
//!                         ├─► screen thread (the only writer to the terminal) ─► Input ─► client
//!  client events (show) ──┘
//! ```
//!
//! Everything that changes the screen goes through the screen thread, in order, so the
//! client's output and the input line never overwrite each other; the screen draws once after
//! each burst of keys and events.

use std::io::{self, Write};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::time::Duration;

use chat_client::{Event, Input};
use crossterm::event::Event as TermEvent;
use crossterm::{event, execute, terminal};
use tokio::sync::mpsc::UnboundedSender;

/// What the screen thread is told.
pub(crate) enum Message {
    /// A key, a paste, a resize.
    Term(TermEvent),
    /// Something from the client.
    Client(Event),
    /// The client has exited: restore the terminal and stop.
    Exit,
}

/// A way of showing the chat on a terminal in raw mode.
pub(crate) trait Screen {
    /// Shows an event from the client; pushes what the client must be told.
    fn client(&mut self, event: Event, inputs: &mut Vec<Input>);
    /// Handles a key, paste or resize; pushes what the client must be told.
    fn term(&mut self, event: TermEvent, inputs: &mut Vec<Input>);
    /// Brings the terminal up to date.
    ///
    /// # Errors
    /// If the terminal cannot be written.
    fn draw(&mut self) -> io::Result<()>;
}

/// Raw mode (and the alternate screen, if asked), undone on drop and on panic.
pub(crate) struct Raw {
    alternate: bool,
}

impl Raw {
    /// Enters raw mode with bracketed paste.
    ///
    /// # Errors
    /// If stdout is not a terminal that allows it.
    pub(crate) fn enter(alternate: bool) -> io::Result<Self> {
        terminal::enable_raw_mode()?;
        let mut out = io::stdout();
        if alternate {
            execute!(out, terminal::EnterAlternateScreen)?;
        }
        execute!(out, event::EnableBracketedPaste)?;
        let hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore(alternate);
            hook(info);
        }));
        Ok(Self { alternate })
    }
}

impl Drop for Raw {
    fn drop(&mut self) {
        restore(self.alternate);
    }
}

fn restore(alternate: bool) {
    let mut out = io::stdout();
    let _ = execute!(out, event::DisableBracketedPaste, crossterm::cursor::Show);
    if alternate {
        let _ = execute!(out, terminal::LeaveAlternateScreen);
    }
    let _ = terminal::disable_raw_mode();
    let _ = out.flush();
}

/// Starts the thread that reads the terminal into `to`.
pub(crate) fn read_keys(to: Sender<Message>) {
    std::thread::spawn(move || loop {
        match event::read() {
            Ok(ev) => {
                if to.send(Message::Term(ev)).is_err() {
                    return;
                }
            }
            Err(_) => return,
        }
    });
}

/// The screen thread's loop: until [`Message::Exit`], applies every message waiting, tells the
/// client, then draws. Redraws at least every second (the clock).
pub(crate) fn show(mut screen: impl Screen, from: &Receiver<Message>, to: &UnboundedSender<Input>) {
    let mut inputs = Vec::new();
    let _ = screen.draw();
    loop {
        let first = match from.recv_timeout(Duration::from_secs(1)) {
            Ok(first) => Some(first),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => return,
        };
        for msg in first
            .into_iter()
            .chain(std::iter::from_fn(|| from.try_recv().ok()))
        {
            match msg {
                Message::Term(ev) => screen.term(ev, &mut inputs),
                Message::Client(ev) => screen.client(ev, &mut inputs),
                Message::Exit => {
                    let _ = screen.draw();
                    return;
                }
            }
        }
        for input in inputs.drain(..) {
            let _ = to.send(input);
        }
        let _ = screen.draw();
    }
}
