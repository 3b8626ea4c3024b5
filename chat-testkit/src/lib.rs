//! Test support shared by every crate's tests: the test [`config`], a server on an ephemeral
//! 127.0.0.1 port ([`TestServer`]), the server binary started as a process
//! ([`spawn_ready`]), and logged-in users over TCP ([`logged_in`]) or in process
//! ([`logged_in_embedded`]). Every wait has a timeout; failures panic (this is test code).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use chat_client::{Session, Tcp, Transport};
use chat_core::{Config, Connection, Engine, EngineError, PasswordParams, Store};
use chat_proto::{ServerMessage, Target};
use chat_server::ready::{wait_ready, Ready};
use chat_server::ServerConfig;
use tokio::net::TcpListener;
use tokio::process::{Child, Command};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::timeout;

pub use chat_client;

/// How long a test waits for anything.
pub const WAIT: Duration = Duration::from_secs(10);
/// Every test user's password.
pub const PASSWORD: &str = "correct horse";

/// The engine configuration for tests: production limits, cheap password hashing.
pub fn config() -> Config {
    Config {
        password: PasswordParams::INSECURE_FAST,
        ..Config::default()
    }
}

/// A server running in this process over a SQLite file.
pub struct TestServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its database file.
    pub db: PathBuf,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), EngineError>>>,
    /// The temporary directory holding `db`, when the server made it.
    _dir: Option<tempfile::TempDir>,
}

/// Starts a server with the test [`config`] on a temporary database and any free port.
pub async fn start_server() -> TestServer {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut server = TestServer::start(
        &dir.path().join("chat.db"),
        config(),
        ServerConfig::default(),
    )
    .await;
    server._dir = Some(dir);
    server
}

impl TestServer {
    /// Starts a server over `db` on any free 127.0.0.1 port.
    pub async fn start(db: &Path, config: Config, server: ServerConfig) -> Self {
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        Self::start_at(db, any, config, server).await
    }

    /// Starts a server over `db` on `addr` (to restart one on the address it had).
    pub async fn start_at(
        db: &Path,
        addr: SocketAddr,
        config: Config,
        server: ServerConfig,
    ) -> Self {
        let store = Store::open(db).await.expect("store opens");
        let engine = Engine::start(store, config).await.expect("engine starts");
        let listener = TcpListener::bind(addr).await.expect("binds");
        let addr = listener.local_addr().expect("has an address");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(chat_server::run(listener, engine, server, stopped));
        Self {
            addr,
            db: db.to_owned(),
            stop: Some(stop),
            task: Some(task),
            _dir: None,
        }
    }

    /// Shuts down gracefully and waits for it.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let result = timeout(WAIT, task).await.expect("stops in time");
            result.expect("no panic").expect("clean shutdown");
        }
    }
}

/// Starts a server process prepared in `command` (its stdout is piped here; it is killed
/// when the [`Child`] is dropped) and waits for its ready line.
///
/// # Errors
/// If it does not start, or does not report ready within 30 s.
pub async fn spawn_ready(command: &mut Command) -> Result<(Child, Ready), String> {
    let mut child = command
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("{:?}: {e}", command.as_std().get_program()))?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let ready = timeout(Duration::from_secs(30), wait_ready(stdout))
        .await
        .map_err(|_| "the server did not report ready in time".to_string())??;
    Ok((child, ready))
}

/// Connects to `addr` and registers (or logs in) `name` with [`PASSWORD`] on device
/// `<name>-dev`, waiting for `CaughtUp`.
pub async fn logged_in(addr: SocketAddr, name: &str, register: bool) -> Session<Tcp> {
    let session = Session::connect(addr).await.expect("connects");
    log_in(session, name, register).await
}

/// As [`logged_in`], speaking protocol `version` only (e.g. 1, to act as an old client).
pub async fn logged_in_version(
    addr: SocketAddr,
    name: &str,
    register: bool,
    version: u16,
) -> Session<Tcp> {
    let transport = chat_client::tcp(addr).await.expect("connects");
    let hello = chat_proto::Hello::version(version, format!("test-v{version}"));
    let session = Session::handshake_with(transport, hello)
        .await
        .expect("welcomed");
    assert_eq!(session.welcome().version, version, "version agreed");
    log_in(session, name, register).await
}

/// As [`logged_in`], over an in-process connection to `engine`.
pub async fn logged_in_embedded(
    engine: &Engine,
    name: &str,
    register: bool,
) -> Session<Connection> {
    let session = Session::embedded(engine, "test").await.expect("connects");
    log_in(session, name, register).await
}

async fn log_in<T: Transport>(mut session: Session<T>, name: &str, register: bool) -> Session<T> {
    let device = format!("{name}-dev");
    let result = if register {
        session.register(name, PASSWORD, &device).await
    } else {
        session.login(name, PASSWORD, &device).await
    };
    if let Err(error) = result {
        panic!("{name}: {error}");
    }
    session
}

/// A room target.
pub fn room(name: &str) -> Target {
    Target::Room(name.into())
}

/// A user target (a direct conversation).
pub fn user(name: &str) -> Target {
    Target::User(name.into())
}

/// Matches the chat message with this text.
pub fn text_is(text: &str) -> impl Fn(&ServerMessage) -> bool + '_ {
    move |e| matches!(e, ServerMessage::Message(m) if m.text == text)
}
