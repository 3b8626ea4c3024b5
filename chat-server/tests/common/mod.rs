//! Helpers for the integration tests: a server on an ephemeral 127.0.0.1 port over a
//! temporary SQLite file, and a protocol client over real TCP. Every wait has a timeout.

#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chat_core::{Config, Engine, EngineError, PasswordParams, Store};
use chat_proto::*;
use chat_server::ServerConfig;
use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::timeout;
use tokio_util::codec::Framed;

pub const WAIT: Duration = Duration::from_secs(10);
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
    pub addr: SocketAddr,
    pub db: PathBuf,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), EngineError>>>,
}

impl TestServer {
    pub async fn start(db: &Path, config: Config, server: ServerConfig) -> Self {
        let store = Store::open(db).await.expect("store opens");
        let engine = Engine::start(store, config).await.expect("engine starts");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("binds");
        let addr = listener.local_addr().expect("has an address");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(chat_server::run(listener, engine, server, stopped));
        Self {
            addr,
            db: db.to_owned(),
            stop: Some(stop),
            task: Some(task),
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

/// A protocol client that keeps the events it saw while waiting for something else.
pub struct Client {
    pub framed: Framed<TcpStream, ClientCodec>,
    pub events: Vec<ServerMessage>,
    next: u32,
}

impl Client {
    /// Connects and says hello.
    pub async fn connect(addr: SocketAddr) -> Self {
        let stream = timeout(WAIT, TcpStream::connect(addr))
            .await
            .expect("in time")
            .expect("connects");
        let mut client = Self {
            framed: Framed::new(stream, ClientCodec::new()),
            events: Vec::new(),
            next: 0,
        };
        client
            .send(ClientMessage::Hello(Hello::current("test")))
            .await;
        let welcome = client.next_event().await;
        assert!(
            matches!(welcome, Some(ServerMessage::Welcome(_))),
            "{welcome:?}"
        );
        client
    }

    /// Registers (or logs in) `name` on device `<name>-dev` and waits for `CaughtUp`.
    pub async fn login(addr: SocketAddr, name: &str, register: bool) -> Self {
        let mut client = Self::connect(addr).await;
        let (username, password, device) =
            (name.to_owned(), PASSWORD.to_owned(), format!("{name}-dev"));
        let request = if register {
            Request::Register {
                username,
                password,
                device,
            }
        } else {
            Request::Login {
                username,
                password,
                device,
            }
        };
        let reply = client.request(request).await;
        assert!(matches!(reply, Ok(Reply::Session(_))), "{name}: {reply:?}");
        client.until(|e| *e == ServerMessage::CaughtUp).await;
        client
    }

    pub async fn send(&mut self, msg: ClientMessage) {
        timeout(WAIT, self.framed.send(msg))
            .await
            .expect("in time")
            .expect("sends");
    }

    /// The next event, or `None` once the server closed the connection.
    pub async fn next_event(&mut self) -> Option<ServerMessage> {
        match timeout(WAIT, self.framed.next())
            .await
            .expect("an event in time")
        {
            Some(Ok(msg)) => Some(msg),
            _ => None,
        }
    }

    /// Sends a request with a fresh id without waiting; returns the id.
    pub async fn send_request(&mut self, request: Request) -> RequestId {
        self.next += 1;
        let id = RequestId(self.next);
        self.send(ClientMessage::Request { id, request }).await;
        id
    }

    pub async fn request(&mut self, request: Request) -> Result<Reply, ErrorReply> {
        let id = self.send_request(request).await;
        match self.until(|e| matches!(e, ServerMessage::Ok { id: i, .. } | ServerMessage::Err { id: i, .. } if *i == id)).await {
            ServerMessage::Ok { reply, .. } => Ok(reply),
            ServerMessage::Err { error, .. } => Err(error),
            _ => unreachable!("matched above"),
        }
    }

    /// Waits for an event matching `want`, keeping the others in `events`.
    pub async fn until(&mut self, want: impl Fn(&ServerMessage) -> bool) -> ServerMessage {
        if let Some(at) = self.events.iter().position(&want) {
            return self.events.remove(at);
        }
        loop {
            match self.next_event().await {
                Some(event) if want(&event) => return event,
                Some(event) => self.events.push(event),
                None => panic!("closed while waiting; {} events seen", self.events.len()),
            }
        }
    }

    pub async fn say(&mut self, target: Target, id: u64, text: &str) -> MessageId {
        let request = Request::Send {
            target,
            client_msg_id: ClientMsgId(id),
            text: text.into(),
        };
        match self.request(request).await {
            Ok(Reply::Sent { id, .. }) => id,
            other => panic!("send failed: {other:?}"),
        }
    }

    /// Texts of the chat messages among the kept events, in order.
    pub fn texts(&self) -> Vec<String> {
        self.events
            .iter()
            .filter_map(|e| match e {
                ServerMessage::Message(m) => Some(m.text.clone()),
                _ => None,
            })
            .collect()
    }
}

pub fn room(name: &str) -> Target {
    Target::Room(name.into())
}

pub fn user(name: &str) -> Target {
    Target::User(name.into())
}

pub fn text_is(text: &str) -> impl Fn(&ServerMessage) -> bool + '_ {
    move |e| matches!(e, ServerMessage::Message(m) if m.text == text)
}
