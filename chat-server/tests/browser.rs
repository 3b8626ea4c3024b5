//! The browser client in a real browser: headless Chromium driven over WebDriver
//! (chromedriver, started here on a free loopback port and ended here by PID).
//!
//! Two browser users register, join a room, exchange messages, write directly and see each
//! other typing; a reload resumes the session; the server restarts and the page reconnects by
//! itself, showing what was sent meanwhile exactly once; a terminal user (a
//! `chat_client::Session` over TCP) and a browser user talk; hostile text renders as text.
//! Screenshots go to `target/browser-screenshots/`.
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

async fn screenshot(page: &Client, name: &str) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/browser-screenshots");
    let _ = std::fs::create_dir_all(&dir);
    if let Ok(png) = page.screenshot().await {
        let _ = std::fs::write(dir.join(format!("{name}.png")), png);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_browsers_and_a_terminal_chat() {
    let chromium = find_program(&["chromium", "chromium-browser", "google-chrome"]);
    let chromedriver = find_program(&["chromedriver"]);
    let (Some(chromium), Some(chromedriver)) = (chromium, chromedriver) else {
        let reason =
            "chromium or chromedriver is missing (apt-get install chromium chromium-driver)";
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{reason}: under CI=true this is a failure, not a skip");
        }
        println!("skipped: {reason}");
        return;
    };
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
