//! Where lines come from: a line editor on a terminal, or plain stdin for scripts.
//!
//! On a terminal, rustyline runs on its own thread. Its hinter, called on every edit, reports
//! whether the line holds text for the current target, which drives the typing indicator; its
//! external printer puts events above the line being edited without mangling it. A `/login` or
//! `/register` without a password prompts for one without echo (unless `CHAT_PASSWORD` is set).

use std::borrow::Cow;
use std::sync::Mutex;

use rustyline::completion::Completer;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::history::DefaultHistory;
use rustyline::validate::Validator;
use rustyline::{Context, Editor, ExternalPrinter, Helper};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::mpsc::UnboundedSender;

use chat_client::Input;

/// Where output lines go: above the line editor, or plainly to stdout.
pub(crate) enum Screen {
    Printer(Mutex<Box<dyn ExternalPrinter + Send>>),
    Stdout,
}

impl Screen {
    /// Shows one line.
    pub(crate) fn line(&self, line: String) {
        match self {
            Self::Printer(printer) => {
                let mut printer = printer
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if printer.print(line.clone()).is_err() {
                    println!("{line}");
                }
            }
            Self::Stdout => println!("{line}"),
        }
    }
}

/// Reports edits to the client (see the module docs).
struct Keys {
    input: UnboundedSender<Input>,
    composing: std::cell::Cell<bool>,
}

impl Hinter for Keys {
    type Hint = String;

    fn hint(&self, line: &str, _pos: usize, _ctx: &Context<'_>) -> Option<String> {
        let composing = !line.trim().is_empty() && !line.starts_with('/');
        if composing || self.composing.get() {
            let _ = self.input.send(Input::Keys { composing });
        }
        self.composing.set(composing);
        None
    }
}

impl Completer for Keys {
    type Candidate = String;
}

impl Highlighter for Keys {
    fn highlight_hint<'h>(&self, hint: &'h str) -> Cow<'h, str> {
        Cow::Borrowed(hint)
    }
}

impl Validator for Keys {}

impl Helper for Keys {}

/// Starts the line editor on its own thread; returns the output that prints above it.
///
/// # Errors
/// If the terminal cannot be set up.
pub(crate) fn terminal(input: UnboundedSender<Input>) -> Result<Screen, String> {
    let mut editor: Editor<Keys, DefaultHistory> = Editor::new().map_err(|e| e.to_string())?;
    editor.set_helper(Some(Keys {
        input: input.clone(),
        composing: std::cell::Cell::new(false),
    }));
    let printer = editor
        .create_external_printer()
        .map_err(|e| e.to_string())?;
    std::thread::spawn(move || loop {
        match editor.readline("> ") {
            Ok(line) => {
                let _ = editor.add_history_entry(line.as_str());
                let line = with_password(line);
                if input.send(Input::Line(line)).is_err() {
                    return;
                }
            }
            Err(rustyline::error::ReadlineError::Interrupted) => {
                let _ = input.send(Input::Line("/quit".into()));
                return;
            }
            Err(_) => {
                let _ = input.send(Input::End);
                return;
            }
        }
    });
    Ok(Screen::Printer(Mutex::new(Box::new(printer))))
}

/// Asks for the password a `/login NAME` or `/register NAME` left out, without echo.
fn with_password(line: String) -> String {
    let words: Vec<&str> = line.split_whitespace().collect();
    let needs = matches!(words.as_slice(), ["/login" | "/register", _])
        && std::env::var_os("CHAT_PASSWORD").is_none();
    if !needs {
        return line;
    }
    match rpassword::prompt_password("password: ") {
        Ok(password) if !password.is_empty() => format!("{} {}", line.trim_end(), password),
        _ => line,
    }
}

/// Reads stdin line by line (no prompts, no escape sequences).
pub(crate) fn script(input: UnboundedSender<Input>) -> Screen {
    tokio::spawn(async move {
        let mut lines = BufReader::new(tokio::io::stdin()).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if input.send(Input::Line(line)).is_err() {
                return;
            }
        }
        let _ = input.send(Input::End);
    });
    Screen::Stdout
}
