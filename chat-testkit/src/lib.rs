//! Test support shared by every crate's tests: the test [`config`], a fresh database on each
//! backend ([`TestDb`], [`on_every_backend!`]), a server on an ephemeral 127.0.0.1 port
//! ([`TestServer`]), a `nats-server` process ([`TestNats`]), the server binary started as a process ([`spawn_ready`]), and logged-in
//! users over TCP ([`logged_in`]), WebSocket ([`logged_in_ws`]) or in process
//! ([`logged_in_embedded`]). Every wait has a
//! timeout; failures panic (this is test code).

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use chat_client::{Session, Tcp, Transport, Ws};
use chat_core::{Config, Connection, Database, Engine, EngineError, Location, PasswordParams};
use chat_proto::{ServerMessage, Target};
use chat_server::ready::{wait_ready, Ready};
use chat_server::{Server, ServerConfig};
use tokio::net::TcpListener;
use tokio::process::{Child, Command};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::timeout;

pub use chat_client;
pub use db::{TestDb, POSTGRES_ENV};
pub use nats::{TestNats, NATS_SERVER};

mod db;
mod nats;

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

/// A server running in this process.
pub struct TestServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Where its web listener (HTTP, WebSocket) listens.
    pub web: SocketAddr,
    /// Its database.
    pub db: Location,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), EngineError>>>,
    /// Keeps a database the server made alive as long as the server.
    _db: Option<TestDb>,
}

/// Starts a server with the test [`config`] on a temporary SQLite database and any free port.
pub async fn start_server() -> TestServer {
    let db = TestDb::sqlite();
    let mut server = TestServer::on(&db, config(), ServerConfig::default()).await;
    server._db = Some(db);
    server
}

impl TestServer {
    /// Starts a server over the SQLite file `db` on any free 127.0.0.1 port.
    pub async fn start(db: &Path, config: Config, server: ServerConfig) -> Self {
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        Self::start_at(db, any, config, server).await
    }

    /// Starts a server over the SQLite file `db` on `addr` (to restart one on the address it
    /// had).
    pub async fn start_at(
        db: &Path,
        addr: SocketAddr,
        config: Config,
        server: ServerConfig,
    ) -> Self {
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        Self::start_on(db, addr, any, config, server).await
    }

    /// Starts a server over the SQLite file `db` with its TCP listener on `addr` and its web
    /// listener on `web` (either may be port 0).
    pub async fn start_on(
        db: &Path,
        addr: SocketAddr,
        web: SocketAddr,
        config: Config,
        server: ServerConfig,
    ) -> Self {
        Self::serve(Location::Sqlite(db.to_owned()), addr, web, config, server).await
    }

    /// Starts a server over `db` (either backend) on any free 127.0.0.1 port.
    pub async fn on(db: &TestDb, config: Config, server: ServerConfig) -> Self {
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        Self::on_at(db, any, config, server).await
    }

    /// Starts a server over `db` (either backend) on `addr`.
    pub async fn on_at(
        db: &TestDb,
        addr: SocketAddr,
        config: Config,
        server: ServerConfig,
    ) -> Self {
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        Self::serve(db.location().clone(), addr, any, config, server).await
    }

    async fn serve(
        db: Location,
        addr: SocketAddr,
        web: SocketAddr,
        config: Config,
        server: ServerConfig,
    ) -> Self {
        let storage = Database::open(&db, chat_core::Durability::Full)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let engine = Engine::start(storage, config).await.expect("engine starts");
        let listener = TcpListener::bind(addr).await.expect("binds");
        let addr = listener.local_addr().expect("has an address");
        let web_listener = TcpListener::bind(web).await.expect("binds");
        let web = web_listener.local_addr().expect("has an address");
        let (stop, stopped) = oneshot::channel::<()>();
        let server = Server::new(engine, server);
        server.serve_tcp(listener);
        server.serve_web(web_listener);
        let task = tokio::spawn(server.run(stopped));
        Self {
            addr,
            web,
            db,
            stop: Some(stop),
            task: Some(task),
            _db: None,
        }
    }

    /// Starts a graceful shutdown without waiting for it ([`stop`](Self::stop) waits).
    pub fn begin_stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
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

/// As [`logged_in`], over a WebSocket to the web listener at `web`.
pub async fn logged_in_ws(web: SocketAddr, name: &str, register: bool) -> Session<Ws> {
    let session = Session::connect_ws(web)
        .await
        .expect("connects over WebSocket");
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

/// `GET path` from the web listener at `addr` (HTTP/1.1, connection closed after): the status
/// code, the head and the body.
pub async fn http_get(addr: SocketAddr, path: &str) -> (u16, String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connects");
    let request = format!("GET {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("writes");
    let mut response = Vec::new();
    timeout(WAIT, stream.read_to_end(&mut response))
        .await
        .expect("answers in time")
        .expect("reads");
    let response = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let code = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, head.to_owned(), body.to_owned())
}

/// Waits for the next event, which must be a keepalive ping, and answers it (for a session
/// told not to answer pings itself, `Session::set_answer_pings(false)`).
pub async fn answer_ping<T: Transport>(client: &mut Session<T>) {
    let ping = client.next_event().await.expect("in time");
    let Some(ServerMessage::Ping { nonce }) = ping else {
        panic!("expected a ping, got {ping:?}");
    };
    client
        .send(chat_proto::ClientMessage::Pong { nonce })
        .await
        .expect("sends");
}

/// Waits until the server says it is shutting down, and then closes the connection.
pub async fn until_shut_down<T: Transport>(client: &mut Session<T>) {
    client
        .until(|e| *e == ServerMessage::ShuttingDown)
        .await
        .expect("arrives");
    assert_eq!(client.next_event().await.expect("in time"), None);
}

/// The value of the first sample in Prometheus text `metrics` whose line starts with `name`
/// (the metric's name with its labels, e.g. `chat_connections{transport="tcp"} `).
pub fn metric(metrics: &str, name: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(name)?.trim().parse().ok())
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
