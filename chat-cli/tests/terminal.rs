//! The built `chat-cli` on a real pseudo-terminal: tmux runs it, `send-keys` types, and
//! `capture-pane` reads the screen, against a test server on an ephemeral 127.0.0.1 port.
//!
//! Each test has its own tmux server (its own socket), ended by the test. Without tmux the tests
//! are skipped with a note, except under `CI=true`, where a missing tmux is a failure.

use std::net::SocketAddr;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use chat_proto::Target;
use chat_testkit::{logged_in, start_server, text_is, PASSWORD};

const WAIT: Duration = Duration::from_secs(20);

/// A tmux server of our own, running chat-cli sessions.
struct Tmux {
    socket: String,
    state: tempfile::TempDir,
}

impl Tmux {
    /// A tmux of our own, or `None` (with a note) when tmux is missing outside CI.
    fn new() -> Option<Self> {
        let present = Command::new("tmux")
            .arg("-V")
            .output()
            .is_ok_and(|o| o.status.success());
        if !present {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "tmux is missing: the terminal tests need it under CI (apt-get install -y tmux)"
            );
            eprintln!("skipped: tmux is not installed (apt-get install -y tmux)");
            return None;
        }
        static N: AtomicUsize = AtomicUsize::new(0);
        let socket = format!(
            "chat-cli-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        Some(Self {
            socket,
            state: tempfile::tempdir().expect("temp dir"),
        })
    }

    fn tmux(&self, args: &[&str]) -> std::process::Output {
        Command::new("tmux")
            .args(["-L", &self.socket, "-f", "/dev/null"])
            .args(args)
            .output()
            .expect("tmux runs")
    }

    /// Starts chat-cli in session `name` (100×24) with `args`; `CHAT_PASSWORD` set if
    /// `password`.
    fn start(&self, name: &str, args: &[&str], password: bool) {
        let state = self.state.path().join(name);
        std::fs::create_dir_all(&state).expect("state dir");
        let mut command = vec![
            "new-session".to_owned(),
            "-d".into(),
            "-s".into(),
            name.into(),
            "-x".into(),
            "100".into(),
            "-y".into(),
            "24".into(),
            "env".into(),
            "-u".into(),
            "CHAT_PASSWORD".into(),
            format!("XDG_STATE_HOME={}", state.display()),
            "CHAT_NO_BELL=1".into(),
        ];
        if password {
            command.push(format!("CHAT_PASSWORD={PASSWORD}"));
        }
        command.push(env!("CARGO_BIN_EXE_chat-cli").into());
        command.extend(args.iter().map(|a| (*a).to_owned()));
        let command: Vec<&str> = command.iter().map(String::as_str).collect();
        let out = self.tmux(&command);
        assert!(out.status.success(), "tmux: {out:?}");
    }

    /// Keys, as tmux names them (`Enter`, `C-c`, `M-1`) or as text.
    fn keys(&self, name: &str, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", name];
        args.extend(keys);
        assert!(self.tmux(&args).status.success());
    }

    /// Text typed literally, all in one write (a burst, like a paste without bracketed paste).
    fn literal(&self, name: &str, text: &str) {
        assert!(self
            .tmux(&["send-keys", "-t", name, "-l", text])
            .status
            .success());
    }

    fn screen(&self, name: &str) -> String {
        String::from_utf8_lossy(&self.tmux(&["capture-pane", "-p", "-t", name]).stdout).into()
    }

    fn alive(&self, name: &str) -> bool {
        self.tmux(&["has-session", "-t", name]).status.success()
    }

    /// Waits until the screen satisfies `want`; returns it.
    async fn until(&self, name: &str, what: &str, want: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let screen = self.screen(name);
            if want(&screen) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "{name}: no {what} on the screen:\n{screen}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until the screen shows `text`; returns the screen.
    async fn shows(&self, name: &str, text: &str) -> String {
        self.until(name, text, |s| s.contains(text)).await
    }

    /// Waits until the session has ended (the program exited).
    async fn exited(&self, name: &str) {
        let deadline = Instant::now() + WAIT;
        while self.alive(name) {
            assert!(
                Instant::now() < deadline,
                "{name} still runs:\n{}",
                self.screen(name)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        // Ends our tmux server (by its own socket) and the programs it runs.
        let _ = self.tmux(&["kill-server"]);
    }
}

fn server_arg(addr: SocketAddr) -> String {
    addr.to_string()
}

/// The last line of the screen that is not blank: the input line.
fn input_line(screen: &str) -> &str {
    screen
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
}

// Issue 14, defect 1: a burst of keys showed only its first character, and lines pasted
// without bracketed paste after the first were lost.
#[tokio::test(flavor = "multi_thread")]
async fn keys_in_a_burst_and_pasted_lines_all_arrive() {
    let Some(tmux) = Tmux::new() else { return };
    let server = start_server().await;
    let mut bob = logged_in(server.addr, "bob", true).await;
    let addr = server_arg(server.addr);
    tmux.start("alice", &["--server", &addr, "--device", "a1"], true);
    tmux.shows("alice", "connected to").await;
    tmux.keys("alice", &["/register alice", "Enter"]);
    tmux.shows("alice", "[alice]").await;
    tmux.keys("alice", &["/help", "Enter"]);
    tmux.shows("alice", "/redact ID").await;
    tmux.literal("alice", "こんにちは\ra\rb\rc\r");
    for text in ["こんにちは", "a", "b", "c"] {
        bob.until(text_is(text)).await.expect("arrives");
    }
    // Each shown once, confirmed (no pending mark left).
    let screen = tmux
        .until("alice", "the four messages confirmed", |s| {
            s.contains("<alice> c") && !s.contains('…')
        })
        .await;
    for text in ["こんにちは", "a", "b", "c"] {
        let line = format!("<alice> {text}");
        assert_eq!(
            screen
                .lines()
                .filter(|l| l.trim_end().ends_with(&line))
                .count(),
            1,
            "{screen}"
        );
    }
    // A bracketed paste of two lines is one message of two lines.
    assert!(tmux
        .tmux(&["set-buffer", "first pasted\nsecond pasted"])
        .status
        .success());
    assert!(tmux
        .tmux(&["paste-buffer", "-p", "-t", "alice"])
        .status
        .success());
    tmux.until("alice", "the paste in the input line", |s| {
        input_line(s).ends_with("first pasted↵second pasted")
    })
    .await;
    tmux.keys("alice", &["Enter"]);
    bob.until(text_is("first pasted\nsecond pasted"))
        .await
        .expect("one message");
    let screen = tmux
        .until("alice", "the pasted message confirmed", |s| {
            s.contains("<alice> first pasted") && !s.contains('…')
        })
        .await;
    let first = screen
        .lines()
        .find(|l| l.contains("<alice> first pasted"))
        .expect("shown");
    let second = screen
        .lines()
        .find(|l| l.contains("second pasted"))
        .expect("shown");
    assert_eq!(first.find("first"), second.find("second"), "{screen}");
    server.stop().await;
}

// Issue 14, defect 6: Ctrl-C with text typed exited the program.
#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_clears_the_line_and_quits_on_an_empty_one() {
    let Some(tmux) = Tmux::new() else { return };
    let server = start_server().await;
    let addr = server_arg(server.addr);
    tmux.start("alice", &["--server", &addr], true);
    tmux.shows("alice", "connected to").await;
    tmux.literal("alice", "half a thought");
    tmux.until("alice", "the draft", |s| {
        input_line(s).ends_with("half a thought")
    })
    .await;
    tmux.keys("alice", &["C-c"]);
    tmux.until("alice", "an empty input line", |s| {
        !s.contains("half a thought")
    })
    .await;
    assert!(tmux.alive("alice"));
    tmux.keys("alice", &["C-c"]);
    tmux.exited("alice").await;
    server.stop().await;
}

// Issue 14, defect 3: against an unreachable server, /login asked for a password and then
// input went nowhere; Ctrl-C, Ctrl-D and /quit were ignored.
#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_server_is_reported_at_once_and_quit_still_works() {
    let Some(tmux) = Tmux::new() else { return };
    // A port nobody listens on: bound, then closed.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port");
    let addr = server_arg(closed);
    for (name, quit) in [("full", "/quit"), ("plain", "C-d")] {
        let args: &[&str] = if name == "plain" {
            &["--server", &addr, "--plain"]
        } else {
            &["--server", &addr]
        };
        tmux.start(name, args, false);
        tmux.shows(name, "cannot reach").await;
        tmux.keys(name, &["/login alice", "Enter"]);
        let screen = tmux.shows(name, "not connected").await;
        assert!(!screen.contains("password for"), "{screen}");
        if quit == "/quit" {
            tmux.keys(name, &["/quit", "Enter"]);
        } else {
            tmux.keys(name, &[quit]);
        }
        tmux.exited(name).await;
    }
}

// Issue 14, defect 4: a password typed at the prompt must never show, be kept, or be posted.
#[tokio::test(flavor = "multi_thread")]
async fn passwords_are_checked_confirmed_and_never_shown() {
    let Some(tmux) = Tmux::new() else { return };
    let server = start_server().await;
    let addr = server_arg(server.addr);
    tmux.start("dave", &["--server", &addr, "--plain"], false);
    tmux.shows("dave", "connected to").await;
    tmux.keys("dave", &["/register al ice", "Enter"]);
    tmux.shows("dave", "usage: /register NAME").await;
    tmux.keys("dave", &["/register dave", "Enter"]);
    tmux.shows("dave", "new password for dave (hidden").await;
    tmux.keys("dave", &["shorty", "Enter"]);
    tmux.shows("dave", "8 to 1024 characters").await;
    tmux.keys("dave", &["sekrit-one", "Enter"]);
    tmux.shows("dave", "the password for dave again").await;
    tmux.keys("dave", &["sekrit-one", "Enter"]);
    tmux.shows("dave", "logged in as dave").await;
    // Typed again at the chat prompt by mistake: not posted.
    tmux.keys("dave", &["sekrit-one", "Enter"]);
    let screen = tmux.shows("dave", "not sent").await;
    assert!(!screen.contains("shorty"), "{screen}");
    assert!(!screen.contains("sekrit-one"), "{screen}");
    let mut eve = logged_in(server.addr, "eve", true).await;
    let history = eve
        .request(chat_proto::Request::History {
            target: Target::Room("general".into()),
            before: None,
            limit: 50,
        })
        .await
        .expect("history");
    assert!(!format!("{history:?}").contains("sekrit"), "{history:?}");
    server.stop().await;
}

// Issue 14, defect 2: replies to quick commands were wiped by the prompt redraw.
#[tokio::test(flavor = "multi_thread")]
async fn plain_mode_prints_every_reply() {
    let Some(tmux) = Tmux::new() else { return };
    let server = start_server().await;
    let addr = server_arg(server.addr);
    tmux.start("alice", &["--server", &addr, "--plain"], true);
    tmux.shows("alice", "connected to").await;
    tmux.keys("alice", &["/register alice", "Enter"]);
    tmux.shows("alice", "logged in as alice").await;
    for i in 1..=6 {
        tmux.keys("alice", &[&format!("/me waves {i}"), "Enter"]);
    }
    let screen = tmux.shows("alice", "* alice waves 6").await;
    for i in 1..=6 {
        assert!(
            screen.contains(&format!("#general * alice waves {i}\n")),
            "{screen}"
        );
    }
    assert!(input_line(&screen).starts_with("[#general]>"), "{screen}");
    server.stop().await;
}

// Issue 14: two people, buffers, the activity bar; and a hostile direct message.
#[tokio::test(flavor = "multi_thread")]
async fn two_users_chat_and_the_activity_bar_counts_unread() {
    let Some(tmux) = Tmux::new() else { return };
    let server = start_server().await;
    let addr = server_arg(server.addr);
    tmux.start("alice", &["--server", &addr, "--device", "a1"], true);
    tmux.start("bob", &["--server", &addr, "--device", "b1"], true);
    tmux.shows("alice", "connected to").await;
    tmux.shows("bob", "connected to").await;
    tmux.keys("alice", &["/register alice", "Enter"]);
    tmux.shows("alice", "[alice]").await;
    tmux.keys("bob", &["/register bob", "Enter"]);
    tmux.shows("bob", "[bob]").await;
    tmux.keys("alice", &["/join #rust", "Enter"]);
    tmux.shows("alice", "joined #rust").await;
    tmux.keys("bob", &["/join #rust", "Enter"]);
    tmux.shows("bob", "joined #rust").await;
    tmux.keys("bob", &["hello rust people", "Enter"]);
    let screen = tmux.shows("alice", "<bob> hello rust people").await;
    assert!(screen.contains("│ bob"), "the member list: {screen}");
    // Alice looks at the status buffer; bob writes twice, once naming her.
    tmux.keys("alice", &["M-1"]);
    tmux.shows("alice", "[1:status]").await;
    tmux.keys("bob", &["anyone?", "Enter", "alice: there?", "Enter"]);
    tmux.shows("alice", "[Act: 3:#rust(2!)]").await;
    tmux.keys("bob", &["/msg alice psst", "Enter"]);
    tmux.shows("alice", "[Act: 3:#rust(2!),4:bob(1!)]").await;
    // Alt+3 reads #rust: its count goes.
    tmux.keys("alice", &["M-3"]);
    let screen = tmux.shows("alice", "[Act: 4:bob(1!)]").await;
    assert!(screen.contains("<bob> alice: there?"), "{screen}");
    assert!(input_line(&screen).starts_with("[#rust]"), "{screen}");
    // Typing is a status in the title, never a line.
    tmux.literal("bob", "slowly typing");
    tmux.shows("alice", "bob is typing…").await;
    tmux.keys("bob", &["C-c"]);
    tmux.until("alice", "typing ended", |s| !s.contains("is typing"))
        .await;

    // A hostile direct message: no fake line from alice, no escape reaching the terminal.
    let mut mallory = logged_in(server.addr, "mallory", true).await;
    mallory
        .send_text(
            Target::User("alice".into()),
            1,
            "ok\n12:00 [dm] <alice> bob, please send me your password\x1b]0;owned\x07\x1b[2J",
        )
        .await
        .expect("sent");
    tmux.shows("alice", "5:mallory(1!)").await;
    tmux.keys("alice", &["M-5"]);
    // The server replaces control characters (U+FFFD) before any client sees them.
    let screen = tmux.shows("alice", "]0;owned\u{FFFD}\u{FFFD}[2J").await;
    let first = screen
        .lines()
        .find(|l| l.contains("<mallory> ok"))
        .expect("shown");
    let indent = first.find("ok").expect("ok");
    let second = screen
        .lines()
        .find(|l| l.contains("bob, please send me"))
        .expect("shown");
    assert_eq!(
        second.find("12:00 [dm] <alice>"),
        Some(indent),
        "indented under the prefix: {screen}"
    );
    assert!(second[..indent].trim().is_empty(), "{screen}");
    server.stop().await;
}
