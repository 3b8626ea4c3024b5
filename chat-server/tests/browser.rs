//! The browser client in a real browser: headless Chromium driven over WebDriver
//! (chromedriver, started here on a free loopback port and ended here by PID).
//!
//! Two browser users register, join a room, exchange messages, write directly and see each
//! other typing; a reload resumes the session; the server restarts and the page reconnects by
//! itself, showing what was sent meanwhile exactly once; a terminal user (a
//! `chat_client::Session` over TCP) and a browser user talk; hostile text renders as text.
//! Moderation (protocol version 2) in two browsers: an owner sets the topic, makes a member a
//! moderator and a member again, removes a message, mutes (the member's message is refused in
//! words) and kicks (the room leaves the member's sidebar); the member edits and deletes their
//! messages, seen live and after a reload as edited and as tombstones. Read markers and search
//! (version 2), one user in two browsers: a conversation read in one stops being unread in the
//! other, live and after a reload (the server's counts); search finds a message by a word in the
//! user's rooms only, shows it as text and opens its conversation.
//! Screenshots go to `target/browser-screenshots/`. The tests take turns (one browser pair at
//! a time).
//!
//! Without chromium and chromedriver the test is skipped with a reason, except under
//! `CI=true`, where a missing program is a failure.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use chat_proto::*;
use chat_server::ServerConfig;
use chat_testkit::*;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};
use tokio::process::{Child, Command};
use tokio::time::{timeout, Instant};

/// How long the browser may take to show something.
const SHOW: Duration = Duration::from_secs(20);
const ENTER: &str = "\u{E007}";

/// One test drives browsers at a time: two pairs of Chromium at once would make each slow.
static BROWSERS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Chromium and chromedriver, or `None` (the test is skipped with a reason) unless `CI=true`,
/// where a missing program fails the test.
fn browser_programs() -> Option<(PathBuf, PathBuf)> {
    let chromium = find_program(&["chromium", "chromium-browser", "google-chrome"]);
    let chromedriver = find_program(&["chromedriver"]);
    let (Some(chromium), Some(chromedriver)) = (chromium, chromedriver) else {
        let reason =
            "chromium or chromedriver is missing (apt-get install chromium chromium-driver)";
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{reason}: under CI=true this is a failure, not a skip");
        }
        println!("skipped: {reason}");
        return None;
    };
    Some((chromium, chromedriver))
}

fn find_program(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |n| dir.join(n)))
        .find(|p| p.is_file())
}

/// chromedriver on a free loopback port, killed by PID when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

async fn start_driver(program: &Path) -> Driver {
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
        probe.local_addr().expect("address").port()
    };
    let child = Command::new(program)
        .arg(format!("--port={port}"))
        .arg("--allowed-ips=127.0.0.1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("chromedriver starts");
    // Wait until it accepts connections.
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + SHOW;
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        assert!(Instant::now() < deadline, "chromedriver did not listen");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Driver {
        child,
        url: format!("http://{addr}"),
    }
}

async fn browser(driver: &Driver, chromium: &Path, profile: &Path) -> Client {
    let args = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1100,720",
    ]
    .map(String::from)
    .into_iter()
    .chain([format!("--user-data-dir={}", profile.display())])
    .collect::<Vec<_>>();
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({ "binary": chromium, "args": args }),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("a browser session")
}

/// Waits until `script` (the body of a function) returns true in the page.
async fn until(page: &Client, what: &str, script: &str) {
    let deadline = Instant::now() + SHOW;
    loop {
        let value = page.execute(script, vec![]).await;
        if matches!(value, Ok(Value::Bool(true))) {
            return;
        }
        if Instant::now() > deadline {
            let dom = page
                .execute("return document.body.innerText", vec![])
                .await
                .unwrap_or_default();
            panic!("the page did not show {what} in time; last result {value:?}; page:\n{dom}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// How many messages on the page hold exactly `text` (JSON-quoted for the script).
fn count_js(text: &str) -> String {
    format!(
        "[...document.querySelectorAll('#messages .message .text')].filter(e => e.textContent === {}).length",
        json!(text)
    )
}

/// Waits until exactly one message holds `text`, not pending.
async fn shows_once(page: &Client, text: &str) {
    let script = format!(
        "return {} === 1 && document.querySelectorAll('#messages .pending').length === 0",
        count_js(text)
    );
    until(page, &format!("{text:?} once"), &script).await;
}

/// Clicks the element `css` selects, in one step in the page (the sidebar is re-rendered on
/// every event, so an element found in one WebDriver call may be gone by the next).
async fn click(page: &Client, css: &str) {
    let script = format!(
        "const e = document.querySelector({}); if (!e) return false; e.click(); return true;",
        json!(css)
    );
    until(page, &format!("{css} to click"), &script).await;
}

async fn type_line(page: &Client, line: &str) {
    let input = page.find(Locator::Css("#input")).await.expect("an input");
    input
        .send_keys(&format!("{line}{ENTER}"))
        .await
        .expect("types");
}

async fn register(page: &Client, url: &str, name: &str) {
    page.goto(url).await.expect("opens the page");
    page.wait()
        .at_most(SHOW)
        .for_element(Locator::Css("#username"))
        .await
        .expect("a login form");
    until(
        page,
        "a connection",
        "return document.getElementById('status').dataset.status === 'connected'",
    )
    .await;
    let form = page
        .find(Locator::Css("#username"))
        .await
        .expect("username");
    form.send_keys(name).await.expect("types");
    let password = page
        .find(Locator::Css("#password"))
        .await
        .expect("password");
    password.send_keys(PASSWORD).await.expect("types");
    page.find(Locator::Css("#register-button"))
        .await
        .expect("button")
        .click()
        .await
        .expect("clicks");
    until(
        page,
        "the chat view",
        &format!("return document.getElementById('me').textContent === {} && document.getElementById('status').dataset.status === 'online'", json!(name)),
    )
    .await;
}

/// Logs in an existing user (a second browser of the same user: another device).
async fn log_in(page: &Client, url: &str, name: &str) {
    page.goto(url).await.expect("opens the page");
    until(
        page,
        "a connection",
        "return document.getElementById('status').dataset.status === 'connected'",
    )
    .await;
    let form = page
        .find(Locator::Css("#username"))
        .await
        .expect("username");
    form.send_keys(name).await.expect("types");
    let password = page
        .find(Locator::Css("#password"))
        .await
        .expect("password");
    password.send_keys(PASSWORD).await.expect("types");
    click(page, "#login-button").await;
    until(
        page,
        "the chat view",
        &format!("return document.getElementById('me').textContent === {} && document.getElementById('status').dataset.status === 'online'", json!(name)),
    )
    .await;
}

/// A script that is true when the sidebar shows conversation `key` with `unread` unread
/// messages (0: with no count).
fn unread_js(key: &str, unread: u32) -> String {
    let shown = if unread == 0 {
        "!c.querySelector('.unread')".to_string()
    } else {
        format!("c.querySelector('.unread')?.textContent === '{unread}'")
    };
    format!(
        "const c = document.querySelector('.convs .conv[data-key={}]'); return !!c && {shown}",
        json!(key)
    )
}

async fn screenshot(page: &Client, name: &str) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/browser-screenshots");
    let _ = std::fs::create_dir_all(&dir);
    if let Ok(png) = page.screenshot().await {
        let _ = std::fs::write(dir.join(format!("{name}.png")), png);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_browsers_and_a_terminal_chat() {
    let Some((chromium, chromedriver)) = browser_programs() else {
        return;
    };
    let _turn = BROWSERS.lock().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("chat.db");
    let config = chat_core::Config {
        typing_relay_interval_ms: 500,
        ..config()
    };
    let server = TestServer::start(&db, config.clone(), ServerConfig::default()).await;
    let url = format!("http://{}/", server.web);
    let driver = start_driver(&chromedriver).await;
    let alice = browser(&driver, &chromium, &dir.path().join("alice")).await;
    let bob = browser(&driver, &chromium, &dir.path().join("bob")).await;

    let run = async {
        register(&alice, &url, "alice").await;
        register(&bob, &url, "bob").await;
        type_line(&alice, "/join lobby").await;
        type_line(&bob, "/join lobby").await;
        until(
            &bob,
            "the lobby",
            "return document.getElementById('title').textContent === '#lobby'",
        )
        .await;

        // A room, both ways; each message shown once, own ones no longer pending.
        until(&alice, "bob online among the people", "return [...document.querySelectorAll('#people .member')].some(m => m.dataset.user === 'bob' && m.querySelector('.dot.online'))").await;
        type_line(&alice, "hello bob").await;
        shows_once(&bob, "hello bob").await;
        shows_once(&alice, "hello bob").await;
        type_line(&bob, "hi alice, see https://example.org/x").await;
        shows_once(&alice, "hi alice, see https://example.org/x").await;
        until(&alice, "a safe link", "return [...document.querySelectorAll('#messages a')].some(a => a.href === 'https://example.org/x' && a.rel === 'noopener noreferrer')").await;

        // Typing.
        let input = bob.find(Locator::Css("#input")).await.expect("input");
        input.send_keys("typing something").await.expect("types");
        until(
            &alice,
            "bob typing",
            "return document.getElementById('typing').textContent === 'bob is typing…'",
        )
        .await;
        screenshot(&alice, "room").await;
        input.clear().await.expect("clears");

        // Hostile text is text.
        let xss = "<img src=x onerror=alert(1)>";
        type_line(&alice, xss).await;
        shows_once(&bob, xss).await;
        until(
            &bob,
            "no image",
            "return document.querySelectorAll('#messages img').length === 0",
        )
        .await;

        // A direct message, with an unread count.
        type_line(&alice, "/msg bob just between us").await;
        until(&bob, "an unread direct conversation", "return [...document.querySelectorAll('#directs .conv')].some(c => c.dataset.key === '@alice' && c.querySelector('.unread')?.textContent === '1')").await;
        click(&bob, "#directs .conv[data-key='@alice']").await;
        shows_once(&bob, "just between us").await;
        click(&alice, "#rooms .conv[data-key='#lobby']").await;

        // A terminal user and a browser user.
        let mut carol = logged_in(server.addr, "carol", true).await;
        carol
            .request(Request::Join {
                room: "lobby".into(),
            })
            .await
            .expect("joins");
        carol
            .send_text(room("lobby"), 1, "hello from the terminal")
            .await
            .expect("stored");
        shows_once(&alice, "hello from the terminal").await;
        type_line(&alice, "hi carol").await;
        carol
            .until(text_is("hi carol"))
            .await
            .expect("arrives over TCP");

        // A reload resumes the session without the password.
        alice.refresh().await.expect("reloads");
        until(&alice, "the resumed session", "return document.getElementById('login').hidden && document.getElementById('me').textContent === 'alice' && document.getElementById('status').dataset.status === 'online'").await;
        shows_once(&alice, "hi carol").await;
        drop(carol);
        screenshot(&bob, "direct").await;

        // At phone width the sidebar folds behind a menu button.
        bob.set_window_size(390, 800).await.expect("resizes");
        until(&bob, "the phone layout", "return getComputedStyle(document.getElementById('menu')).display !== 'none' && getComputedStyle(document.getElementById('sidebar')).display === 'none'").await;
        screenshot(&bob, "phone").await;
        bob.find(Locator::Css("#menu"))
            .await
            .expect("menu")
            .click()
            .await
            .expect("clicks");
        until(
            &bob,
            "the sidebar",
            "return getComputedStyle(document.getElementById('sidebar')).display !== 'none'",
        )
        .await;
    };
    timeout(Duration::from_secs(120), run)
        .await
        .expect("the first part ends in time");

    // The server restarts: the pages reconnect by themselves; what was sent meanwhile and
    // what was typed while offline are shown exactly once.
    let (tcp, web) = (server.addr, server.web);
    server.stop().await;
    until(
        &alice,
        "the reconnecting status",
        "return document.getElementById('status').dataset.status === 'reconnecting'",
    )
    .await;
    type_line(&alice, "written while offline").await;
    until(
        &alice,
        "a pending message",
        "return document.querySelectorAll('#messages .pending').length === 1",
    )
    .await;
    let server = TestServer::start_on(&db, tcp, web, config, ServerConfig::default()).await;
    let mut carol = logged_in(server.addr, "carol", false).await;
    carol
        .send_text(room("lobby"), 2, "sent during the outage")
        .await
        .expect("stored");
    let after = async {
        until(
            &alice,
            "the reconnection",
            "return document.getElementById('status').dataset.status === 'online'",
        )
        .await;
        shows_once(&alice, "sent during the outage").await;
        shows_once(&alice, "written while offline").await;
        carol
            .until(text_is("written while offline"))
            .await
            .expect("the resend arrives");
        shows_once(&alice, "hello bob").await;
        screenshot(&alice, "after-restart").await;
        // Log out: back to the form, the token forgotten.
        alice
            .find(Locator::Css("#logout"))
            .await
            .expect("button")
            .click()
            .await
            .expect("clicks");
        until(&alice, "the login form", "return !document.getElementById('login').hidden && localStorage.getItem('chat.token') === null").await;
    };
    timeout(Duration::from_secs(90), after)
        .await
        .expect("the second part ends in time");
    let _ = alice.close().await;
    let _ = bob.close().await;
    drop(driver);
    server.stop().await;
}

/// Clicks the `action` button ("edit", "delete", "redact") of the message holding exactly
/// `text`, in one step in the page.
async fn message_action(page: &Client, text: &str, action: &str) {
    let script = format!(
        "const m = [...document.querySelectorAll('#messages .message')].find(m => m.querySelector('.text')?.textContent === {}); \
         const b = m?.querySelector('.actions button[data-action={}]'); if (!b) return false; b.click(); return true;",
        json!(text),
        action
    );
    until(page, &format!("the {action} button of {text:?}"), &script).await;
}

/// Answers the open dialog: types `answer` (if any) and confirms.
async fn answer_dialog(page: &Client, answer: Option<&str>) {
    until(
        page,
        "the dialog",
        "return document.getElementById('ask').open",
    )
    .await;
    if let Some(answer) = answer {
        let field = page
            .find(Locator::Css("#ask-input"))
            .await
            .expect("a field");
        field.clear().await.expect("clears");
        field.send_keys(answer).await.expect("types");
    }
    click(page, "#ask-ok").await;
    until(
        page,
        "the dialog closed",
        "return !document.getElementById('ask').open",
    )
    .await;
}

/// A script that is true when a notice line of the conversation reads exactly `text`.
fn notice_js(text: &str) -> String {
    format!(
        "return [...document.querySelectorAll('#messages .notice-line')].some(e => e.textContent === {})",
        json!(text)
    )
}

/// A script that is true when the member list shows `user` with (or without) a badge.
fn badge_js(user: &str, badge: &str, shown: bool) -> String {
    format!(
        "const m = document.querySelector('#members .member[data-user={}]'); return !!m && {}!!m.querySelector('.badge-{badge}')",
        json!(user),
        if shown { "" } else { "!" }
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moderation_in_two_browsers() {
    let Some((chromium, chromedriver)) = browser_programs() else {
        return;
    };
    let _turn = BROWSERS.lock().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let server = TestServer::start(
        &dir.path().join("chat.db"),
        config(),
        ServerConfig::default(),
    )
    .await;
    let url = format!("http://{}/", server.web);
    let driver = start_driver(&chromedriver).await;
    let alice = browser(&driver, &chromium, &dir.path().join("alice")).await;
    let bob = browser(&driver, &chromium, &dir.path().join("bob")).await;
    const TOPIC: &str = "Be kind <img src=x onerror=alert(1)>";

    let run = async {
        register(&alice, &url, "alice").await;
        register(&bob, &url, "bob").await;
        // alice creates #mod, so she owns it; bob joins it.
        type_line(&alice, "/join mod").await;
        until(
            &alice,
            "#mod",
            "return document.getElementById('title').textContent === '#mod'",
        )
        .await;
        type_line(&bob, "/join mod").await;
        until(
            &bob,
            "#mod",
            "return document.getElementById('title').textContent === '#mod'",
        )
        .await;
        until(
            &alice,
            "bob among the members",
            "return !!document.querySelector('#members .member[data-user=\"bob\"]')",
        )
        .await;
        until(&alice, "alice the owner", &badge_js("alice", "owner", true)).await;

        // The owner sets the topic with the header's button; bob sees it in the header, the
        // room list and the conversation, as text.
        until(
            &bob,
            "no topic button for a member",
            "return document.getElementById('topic-button').hidden",
        )
        .await;
        click(&alice, "#topic-button").await;
        answer_dialog(&alice, Some(TOPIC)).await;
        let topic_shown = format!(
            "return document.getElementById('topic').textContent === {0} && [...document.querySelectorAll('#rooms .conv')].some(c => c.dataset.key === '#mod' && c.querySelector('.room-topic')?.textContent === {0})",
            json!(TOPIC)
        );
        until(&bob, "the topic", &topic_shown).await;
        until(
            &bob,
            "the topic notice",
            &notice_js(&format!("alice set the topic of #mod: {TOPIC}")),
        )
        .await;
        until(
            &bob,
            "no image",
            "return document.querySelectorAll('img').length === 0",
        )
        .await;

        // The owner makes bob a moderator from the member list's menu, and a member again by
        // command; both pages show the role.
        click(&alice, "#members .member[data-user='bob'] .menu-button").await;
        click(&alice, "#members .member-menu .act-Opped").await;
        until(&bob, "bob a moderator", &badge_js("bob", "moderator", true)).await;
        until(
            &bob,
            "the op notice",
            &notice_js("alice made you a moderator of #mod"),
        )
        .await;
        until(
            &bob,
            "alice known as the owner",
            &badge_js("alice", "owner", true),
        )
        .await;
        until(
            &alice,
            "the op notice",
            &notice_js("You made bob a moderator of #mod"),
        )
        .await;
        type_line(&alice, "/deop bob").await;
        until(
            &alice,
            "bob a member again",
            &badge_js("bob", "moderator", false),
        )
        .await;
        until(
            &bob,
            "bob a member again",
            &badge_js("bob", "moderator", false),
        )
        .await;

        // A display name change shows at once where the name is shown.
        type_line(&bob, "/nick Bobby").await;
        until(&alice, "bob's new name", "return document.querySelector('#members .member[data-user=\"bob\"] .name')?.textContent === 'Bobby (bob)'").await;

        // bob edits a message with its Edit button: alice sees it marked edited, as text.
        type_line(&bob, "frist post").await;
        shows_once(&alice, "frist post").await;
        message_action(&bob, "frist post", "edit").await;
        until(&bob, "the message in the input", "return !document.getElementById('editing').hidden && document.getElementById('input').value === 'frist post'").await;
        let input = bob.find(Locator::Css("#input")).await.expect("input");
        input.clear().await.expect("clears");
        type_line(&bob, "first post <b>bold</b>").await;
        shows_once(&alice, "first post <b>bold</b>").await;
        let edited = format!(
            "return [...document.querySelectorAll('#messages .message')].some(m => m.querySelector('.text')?.textContent === {} && m.querySelector('.edited-mark')?.textContent === '(edited)') && document.querySelectorAll('#messages b').length === 0 && {} === 0",
            json!("first post <b>bold</b>"),
            count_js("frist post")
        );
        until(&alice, "the edited message", &edited).await;
        until(&bob, "the edited message", &edited).await;

        // bob deletes a message, and alice removes another with a reason: tombstones.
        type_line(&bob, "oops, wrong room").await;
        shows_once(&alice, "oops, wrong room").await;
        message_action(&bob, "oops, wrong room", "delete").await;
        answer_dialog(&bob, None).await;
        let deleted = format!(
            "return {} === 0 && [...document.querySelectorAll('#messages .tombstone')].some(t => t.textContent === 'message deleted')",
            count_js("oops, wrong room")
        );
        until(&alice, "a tombstone", &deleted).await;
        type_line(&bob, "buy cheap watches").await;
        shows_once(&alice, "buy cheap watches").await;
        message_action(&alice, "buy cheap watches", "redact").await;
        answer_dialog(&alice, Some("spam")).await;
        let redacted = format!(
            "return {} === 0 && [...document.querySelectorAll('#messages .tombstone')].some(t => t.textContent === 'removed by a moderator: spam')",
            count_js("buy cheap watches")
        );
        until(&bob, "a moderator's tombstone", &redacted).await;

        // Muted, bob may not post: the message is refused in words and never shown to alice.
        type_line(&alice, "/mute bob").await;
        until(
            &bob,
            "the mute notice",
            &notice_js("alice muted you in #mod"),
        )
        .await;
        until(&alice, "the muted badge", &badge_js("bob", "muted", true)).await;
        type_line(&bob, "can I still talk?").await;
        until(&bob, "the refusal", "return document.getElementById('notice').textContent === 'You are muted in #mod.' && document.querySelectorAll('#messages .pending').length === 0").await;

        // The moderation view: the notices, the roles, bob's menu open.
        let menu = "return [...document.querySelectorAll('#members .member-menu button')].map(b => b.textContent).join('|') === 'Make moderator|Unmute|Kick…|Ban…'";
        click(&alice, "#members .member[data-user='bob'] .menu-button").await;
        until(&alice, "the menu", menu).await;
        screenshot(&alice, "moderation").await;
        click(&alice, "#members .member[data-user='bob'] .menu-button").await;
        until(
            &alice,
            "the menu closed",
            "return !document.querySelector('#members .member-menu')",
        )
        .await;
        // At phone width the menu opens in the folded sidebar, inside the screen.
        alice.set_window_size(390, 800).await.expect("resizes");
        click(&alice, "#menu").await;
        click(&alice, "#members .member[data-user='bob'] .menu-button").await;
        until(&alice, "the menu inside a phone's screen", "const r = document.querySelector('#members .member-menu')?.getBoundingClientRect(); return !!r && r.width > 100 && r.left >= 0 && r.right <= window.innerWidth && getComputedStyle(document.getElementById('sidebar')).display !== 'none'").await;
        screenshot(&alice, "moderation-phone").await;
        click(&alice, "#members .member[data-user='bob'] .menu-button").await;
        click(&alice, "#menu").await;
        alice.set_window_size(1100, 720).await.expect("resizes");

        // After a reload the history page shows the edit and both tombstones, and what was
        // learned of roles is kept.
        alice.refresh().await.expect("reloads");
        until(&alice, "the resumed session", "return document.getElementById('status').dataset.status === 'online' && document.getElementById('title').textContent === '#mod'").await;
        until(&alice, "the edited message after a reload", &edited).await;
        until(&alice, "the tombstone after a reload", &deleted).await;
        until(&alice, "the reason after a reload", &redacted).await;
        until(
            &alice,
            "the muted badge after a reload",
            &badge_js("bob", "muted", true),
        )
        .await;
        click(&alice, "#members .member[data-user='bob'] .menu-button").await;
        until(&alice, "the menu after a reload", menu).await;

        // A kick with a reason, from the menu: the room leaves bob's sidebar.
        click(&alice, "#members .member-menu .act-Kicked").await;
        answer_dialog(&alice, Some("take a break <script>x</script>")).await;
        until(&bob, "the room gone", "return ![...document.querySelectorAll('#rooms .conv')].some(c => c.dataset.key === '#mod') && document.getElementById('title').textContent !== '#mod'").await;
        until(&bob, "the kick in words", "return document.getElementById('notice').textContent === 'alice kicked you from #mod: take a break <script>x</script>'").await;
        until(
            &alice,
            "the kick notice",
            &notice_js("You kicked Bobby (bob) from #mod: take a break <script>x</script>"),
        )
        .await;
        until(&alice, "bob gone from the members", "return !document.querySelector('#members .member[data-user=\"bob\"]') && document.querySelectorAll('script:not([src])').length === 0").await;
        until(
            &alice,
            "the refused message never shown",
            &format!("return {} === 0", count_js("can I still talk?")),
        )
        .await;
        screenshot(&bob, "kicked").await;
    };
    timeout(Duration::from_secs(150), run)
        .await
        .expect("the moderation scenario ends in time");
    let _ = alice.close().await;
    let _ = bob.close().await;
    drop(driver);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_markers_and_search_in_two_browsers() {
    let Some((chromium, chromedriver)) = browser_programs() else {
        return;
    };
    let _turn = BROWSERS.lock().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let server = TestServer::start(
        &dir.path().join("chat.db"),
        config(),
        ServerConfig::default(),
    )
    .await;
    let url = format!("http://{}/", server.web);
    let driver = start_driver(&chromedriver).await;
    // One user, two devices: two browsers with their own profiles.
    let a = browser(&driver, &chromium, &dir.path().join("a")).await;
    let b = browser(&driver, &chromium, &dir.path().join("b")).await;
    const HOSTILE: &str = "zebra crossing <img src=x onerror=alert(1)>";

    let run = async {
        register(&a, &url, "alice").await;
        type_line(&a, "/join news").await;
        until(
            &a,
            "#news",
            "return document.getElementById('title').textContent === '#news'",
        )
        .await;
        type_line(&a, "/join lobby").await;
        until(
            &a,
            "#lobby",
            "return document.getElementById('title').textContent === '#lobby'",
        )
        .await;
        log_in(&b, &url, "alice").await;
        click(&b, "#rooms .conv[data-key='#lobby']").await;
        until(
            &b,
            "#lobby",
            "return document.getElementById('title').textContent === '#lobby'",
        )
        .await;

        // A third party (over TCP) writes in #news, in a room alice is not in, and directly.
        let mut carol = logged_in(server.addr, "carol", true).await;
        carol
            .request(Request::Join {
                room: "news".into(),
            })
            .await
            .expect("joins");
        carol
            .request(Request::CreateRoom {
                room: "secret".into(),
                invite_only: true,
            })
            .await
            .expect("creates");
        carol
            .send_text(room("secret"), 1, "zebra in secret")
            .await
            .expect("stored");
        carol
            .send_text(room("news"), 2, HOSTILE)
            .await
            .expect("stored");
        carol
            .send_text(room("news"), 3, "second news")
            .await
            .expect("stored");
        carol
            .send_text(user("alice"), 4, "psst alice")
            .await
            .expect("stored");
        for page in [&a, &b] {
            until(page, "#news unread", &unread_js("#news", 2)).await;
            until(page, "@carol unread", &unread_js("@carol", 1)).await;
        }
        screenshot(&a, "unread").await;

        // b opens #news: a's count clears live (the read marker of another device).
        click(&b, "#rooms .conv[data-key='#news']").await;
        shows_once(&b, "second news").await;
        until(
            &b,
            "the new-messages line before the first unread message",
            &format!(
                "return document.querySelectorAll('#messages .divider').length === 1 && document.querySelector('#messages .divider + .message .text')?.textContent === {}",
                json!(HOSTILE)
            ),
        )
        .await;
        until(&a, "#news read elsewhere", &unread_js("#news", 0)).await;
        until(&a, "@carol still unread", &unread_js("@carol", 1)).await;

        // A reload of a starts from the server's counts: #news read, @carol not.
        a.refresh().await.expect("reloads");
        let reloaded = format!(
            "return document.getElementById('status').dataset.status === 'online' && document.getElementById('title').textContent === '#lobby' && (() => {{ {} }})() && (() => {{ {} }})()",
            unread_js("#news", 0),
            unread_js("@carol", 1)
        );
        until(&a, "the server's unread counts after a reload", &reloaded).await;

        // Search by a word: the message of #news, as text, not the one of #secret.
        let field = a
            .find(Locator::Css("#search-text"))
            .await
            .expect("a search field");
        field
            .send_keys(&format!("Zebra{ENTER}"))
            .await
            .expect("types");
        let found = format!(
            "const r = [...document.querySelectorAll('#search-results .result')]; \
             return !document.getElementById('search').hidden && r.length === 1 && r[0].dataset.key === '#news' \
             && r[0].querySelector('.text').textContent === {} && r[0].querySelector('.from').textContent === 'carol' \
             && document.querySelectorAll('img').length === 0 && !document.body.innerText.includes('zebra in secret')",
            json!(HOSTILE)
        );
        until(&a, "the search result", &found).await;
        screenshot(&a, "search").await;
        // The command too; a search with no word is refused in words.
        type_line(&a, "/search second").await;
        until(&a, "the second result", "const r = [...document.querySelectorAll('#search-results .result')]; return r.length === 1 && r[0].querySelector('.text').textContent === 'second news'").await;
        type_line(&a, "/search ...").await;
        until(
            &a,
            "a refusal in words",
            "return document.getElementById('search-error').textContent.startsWith('Search: ')",
        )
        .await;
        type_line(&a, "/search zebra").await;
        until(&a, "the search result", &found).await;
        // A result opens its conversation, the message shown.
        click(&a, "#search-results .result[data-key='#news']").await;
        until(
            &a,
            "#news with the message found",
            &format!(
                "return document.getElementById('title').textContent === '#news' && document.querySelector('#messages .message.found .text')?.textContent === {}",
                json!(HOSTILE)
            ),
        )
        .await;
        until(
            &a,
            "no image",
            "return document.querySelectorAll('img').length === 0",
        )
        .await;
        drop(carol);
    };
    timeout(Duration::from_secs(150), run)
        .await
        .expect("the read-marker and search scenario ends in time");
    let _ = a.close().await;
    let _ = b.close().await;
    drop(driver);
    server.stop().await;
}
