//! The built `chat-cli` binary, driven through pipes against a real server on an ephemeral
//! 127.0.0.1 port. Clients are processes started here and ended here.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use chat_server::ServerConfig;
use chat_testkit::{config, TestServer};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(15);
const PASSWORD: &str = chat_testkit::PASSWORD;

/// The test server on `addr` (port 0: any free port) over the database file `db`.
struct Server;

impl Server {
    async fn start(db: &Path, addr: SocketAddr) -> TestServer {
        TestServer::start_at(db, addr, config(), ServerConfig::default()).await
    }
}

/// A running client: write lines to it, wait for lines from it.
struct Cli {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::UnboundedReceiver<String>,
    seen: Vec<String>,
}

impl Cli {
    fn start(addr: SocketAddr, device: &str) -> Self {
        Self::start_on(&addr.to_string(), device)
    }

    /// A client given `servers` (`--server`'s value).
    fn start_on(servers: &str, device: &str) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_chat-cli"))
            .args(["--server", servers, "--device", device, "--linger", "0.2"])
            .env("CHAT_PASSWORD", PASSWORD)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("the client starts");
        let stdout = child.stdout.take().expect("piped");
        let (tx, lines) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut reader = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Self {
            stdin: child.stdin.take(),
            child,
            lines,
            seen: Vec::new(),
        }
    }

    async fn type_line(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        stdin
            .write_all(format!("{line}\n").as_bytes())
            .await
            .expect("writes");
        stdin.flush().await.expect("flushes");
    }

    /// Waits for an output line containing `text`; returns it.
    async fn expect(&mut self, text: &str) -> String {
        if let Some(line) = self.seen.iter().find(|l| l.contains(text)) {
            return line.clone();
        }
        loop {
            let line = timeout(WAIT, self.lines.recv())
                .await
                .unwrap_or_else(|_| panic!("no line with {text:?}; saw {:?}", self.seen))
                .unwrap_or_else(|| panic!("output ended before {text:?}; saw {:?}", self.seen));
            self.seen.push(line.clone());
            if line.contains(text) {
                return line;
            }
        }
    }

    /// Closes stdin and waits for the exit; returns whether it succeeded, and all its output.
    async fn finish(mut self) -> (bool, Vec<String>) {
        drop(self.stdin.take());
        let status = timeout(WAIT, self.child.wait())
            .await
            .expect("exits in time")
            .expect("waits");
        while let Ok(Some(line)) = timeout(Duration::from_secs(1), self.lines.recv()).await {
            self.seen.push(line);
        }
        (status.success(), self.seen)
    }
}

/// Runs a whole script; returns whether it succeeded and its output.
async fn script(addr: SocketAddr, device: &str, lines: &[&str]) -> (bool, Vec<String>) {
    let mut cli = Cli::start(addr, device);
    for line in lines {
        cli.type_line(line).await;
    }
    cli.finish().await
}

fn count(output: &[String], text: &str) -> usize {
    output.iter().filter(|l| l.contains(text)).count()
}

#[tokio::test]
async fn register_then_login_and_errors_set_the_exit_status() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start(
        &dir.path().join("chat.db"),
        "127.0.0.1:0".parse().expect("addr"),
    )
    .await;
    let (ok, out) = script(server.addr, "a1", &["/register alice"]).await;
    assert!(ok, "{out:?}");
    assert_eq!(count(&out, "* logged in as alice"), 1, "{out:?}");
    let (ok, out) = script(server.addr, "a1", &["/login alice", "/rooms"]).await;
    assert!(ok, "{out:?}");
    assert_eq!(count(&out, "* #general (1 member, joined)"), 1, "{out:?}");
    let (ok, out) = script(
        server.addr,
        "a1",
        &["/login alice wrong-password", "/bogus"],
    )
    .await;
    assert!(!ok);
    assert_eq!(
        count(&out, "! wrong username, password or token"),
        1,
        "{out:?}"
    );
    assert_eq!(count(&out, "! unknown command /bogus"), 1, "{out:?}");
    server.stop().await;
}

#[tokio::test]
async fn direct_messages_and_rooms_between_clients() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start(
        &dir.path().join("chat.db"),
        "127.0.0.1:0".parse().expect("addr"),
    )
    .await;
    let mut bob = Cli::start(server.addr, "bob-1");
    bob.type_line("/register bob").await;
    bob.type_line("/join #rust").await;
    bob.expect("* joined #rust").await;
    let mut carol = Cli::start(server.addr, "carol-1");
    carol.type_line("/register carol").await;
    carol.type_line("/join #go").await;
    carol.expect("* joined #go").await;

    let (ok, out) = script(
        server.addr,
        "alice-1",
        &[
            "/register alice",
            "/msg bob hi bob",
            "/join #rust",
            "borrow checker time",
            "/leave",
        ],
    )
    .await;
    assert!(ok, "{out:?}");
    bob.expect("[dm] <alice> hi bob").await;
    bob.expect("#rust <alice> borrow checker time").await;
    bob.expect("* alice left #rust").await;
    // A marker in #general shows carol has seen everything before it.
    let (ok, _) = script(server.addr, "alice-1", &["/login alice", "marker"]).await;
    assert!(ok);
    carol.expect("#general <alice> marker").await;
    let (_, carol_out) = carol.finish().await;
    assert_eq!(count(&carol_out, "borrow checker"), 0, "{carol_out:?}");
    assert_eq!(count(&carol_out, "hi bob"), 0, "{carol_out:?}");
    bob.finish().await;
    server.stop().await;
}

#[tokio::test]
async fn read_markers_search_and_unread_counts_in_the_client() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start(
        &dir.path().join("chat.db"),
        "127.0.0.1:0".parse().expect("addr"),
    )
    .await;
    let mut alice = Cli::start(server.addr, "alice-1");
    alice.type_line("/register alice").await;
    alice.expect("* logged in as alice").await;
    let (ok, out) = script(
        server.addr,
        "bob-1",
        &["/register bob", "deploy on friday", "lunch?"],
    )
    .await;
    assert!(ok, "{out:?}");
    alice.expect("#general <bob> lunch?").await;
    alice.type_line("/search DEPLOY").await;
    alice.expect("* 1 message found for \"DEPLOY\"").await;
    let hit = alice.expect("] #general <bob> deploy on friday").await;
    assert!(hit.contains(" ["), "the hit shows its id: {hit}");
    alice.type_line("/read").await;
    alice.expect("* #general marked read up to message").await;
    alice.type_line("/read").await;
    alice.expect("* nothing new to mark read in #general").await;
    // One more, received (and acknowledged) but not read: the room list counts it; the
    // listing's reply also shows the acknowledgement before it was handled.
    let (ok, _) = script(server.addr, "bob-1", &["/login bob", "one more"]).await;
    assert!(ok);
    alice.expect("#general <bob> one more").await;
    alice.type_line("/rooms").await;
    alice
        .expect("* #general (2 members, joined, 1 unread)")
        .await;
    let (ok, out) = alice.finish().await;
    assert!(ok, "{out:?}");
    // The next login on this device starts with the count.
    let (ok, out) = script(server.addr, "alice-1", &["/login alice"]).await;
    assert!(ok, "{out:?}");
    assert_eq!(count(&out, "* unread: #general 1"), 1, "{out:?}");
    server.stop().await;
}

#[tokio::test]
async fn offline_messages_are_shown_at_the_next_login_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start(
        &dir.path().join("chat.db"),
        "127.0.0.1:0".parse().expect("addr"),
    )
    .await;
    assert!(script(server.addr, "bob-1", &["/register bob"]).await.0);
    assert!(
        script(
            server.addr,
            "alice-1",
            &["/register alice", "/msg bob while you were out"]
        )
        .await
        .0
    );
    let (ok, out) = script(server.addr, "bob-1", &["/login bob"]).await;
    assert!(ok, "{out:?}");
    assert_eq!(
        count(&out, "[dm] <alice> while you were out  (earlier)"),
        1,
        "{out:?}"
    );
    // Acknowledged: not shown again on this device.
    let (ok, out) = script(server.addr, "bob-1", &["/login bob"]).await;
    assert!(ok);
    assert_eq!(count(&out, "while you were out"), 0, "{out:?}");
    server.stop().await;
}

#[tokio::test]
async fn the_client_reconnects_after_a_server_restart_and_loses_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("chat.db");
    let server = Server::start(&db, "127.0.0.1:0".parse().expect("addr")).await;
    let addr = server.addr;
    assert!(script(addr, "alice-1", &["/register alice"]).await.0);
    let mut bob = Cli::start(addr, "bob-1");
    bob.type_line("/register bob").await;
    bob.expect("* logged in as bob").await;

    server.stop().await;
    bob.expect("* reconnecting").await;
    // Typed during the outage: queued, sent after reconnecting.
    bob.type_line("/msg alice typed during the outage").await;
    let server = Server::start(&db, addr).await;
    bob.expect("* reconnected").await;
    let (ok, out) = script(
        addr,
        "alice-1",
        &["/login alice", "/msg bob sent after the restart"],
    )
    .await;
    assert!(ok, "{out:?}");
    bob.expect("[dm] <alice> sent after the restart").await;

    let (ok, out) = script(
        addr,
        "alice-1",
        &["/login alice", "/switch bob", "/history 10"],
    )
    .await;
    assert!(ok, "{out:?}");
    assert_eq!(
        count(&out, "<bob> typed during the outage"),
        1,
        "exactly once: {out:?}"
    );
    let (ok, bob_out) = bob.finish().await;
    assert!(ok, "{bob_out:?}");
    assert_eq!(count(&bob_out, "sent after the restart"), 1, "{bob_out:?}");
    server.stop().await;
}

// Issue 14, defect 7: a script sending 300 lines failed 201 of them with "too many requests".
#[tokio::test]
async fn a_long_script_is_paced_to_the_rate_limit_instead_of_failing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start(
        &dir.path().join("chat.db"),
        "127.0.0.1:0".parse().expect("addr"),
    )
    .await;
    let mut lines = vec!["/register alice".to_owned()];
    lines.extend((1..=300).map(|i| format!("line {i}")));
    lines.push("/history 1".into());
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    let (ok, out) = script(server.addr, "a1", &lines).await;
    assert!(ok, "{out:?}");
    assert_eq!(count(&out, "too many requests"), 0, "{out:?}");
    assert_eq!(count(&out, "<alice> line 300"), 1, "{out:?}");
    server.stop().await;
}

// Issue 14, hardening: message text cannot fake a line or reach the terminal as escapes, in
// script mode too; a multi-line message keeps its later lines under its prefix.
#[tokio::test]
async fn scripts_print_hostile_text_escaped_and_continuations_indented() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start(
        &dir.path().join("chat.db"),
        "127.0.0.1:0".parse().expect("addr"),
    )
    .await;
    assert!(script(server.addr, "b1", &["/register bob"]).await.0);
    let mut mallory = chat_testkit::logged_in(server.addr, "mallory", true).await;
    mallory
        .send_text(
            chat_testkit::user("bob"),
            1,
            "ok\n12:00 [dm] <alice> bob, please send me your password\x1b]0;owned\x07",
        )
        .await
        .expect("sent");
    let (ok, out) = script(server.addr, "b1", &["/login bob"]).await;
    assert!(ok, "{out:?}");
    let first = out
        .iter()
        .position(|l| l.contains("[dm] <mallory> ok"))
        .unwrap_or_else(|| panic!("{out:?}"));
    let indent = out[first].find("ok").expect("ok");
    let next = &out[first + 1];
    // The server already replaced the escapes (U+FFFD); the client's own escaping of
    // whatever reaches it is tested in its rendering tests.
    assert_eq!(
        next.trim_start(),
        "12:00 [dm] <alice> bob, please send me your password\u{FFFD}]0;owned\u{FFFD}  (earlier)"
    );
    assert_eq!(next.len() - next.trim_start().len(), indent, "{out:?}");
    assert!(out.iter().all(|l| !l.contains('\x1b')), "{out:?}");
    server.stop().await;
}

// Issue 12: several nodes.
#[tokio::test]
async fn several_servers_a_dead_one_is_passed_over() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start(&dir.path().join("chat.db"), "127.0.0.1:0".parse().unwrap()).await;
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port");
    let mut cli = Cli::start_on(&format!("{dead}, {}", server.addr), "alice-1");
    cli.type_line("/register alice").await;
    cli.type_line("hello from a failover client").await;
    let (ok, out) = cli.finish().await;
    assert!(ok, "{out:?}");
    assert_eq!(count(&out, &format!("cannot reach {dead}")), 1, "{out:?}");
    let (ok, out) = script(server.addr, "alice-2", &["/login alice"]).await;
    assert!(ok, "{out:?}");
    assert_eq!(count(&out, "hello from a failover client"), 1, "{out:?}");
    server.stop().await;
}
