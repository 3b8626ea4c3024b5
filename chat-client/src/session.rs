//! [`Session`]: the request/response client for programs and tests, over any [`Transport`].
//!
//! It says hello, matches replies to requests, keeps the events that arrive while it waits for
//! something else, and bounds every wait by a timeout. It never acknowledges messages by itself
//! (an `Ack` is the caller's decision) and, unless told otherwise, answers the server's pings.

use std::net::SocketAddr;
use std::time::Duration;

use chat_proto::{
    ClientMessage, ClientMsgId, Hello, MessageId, Reply, Request, RequestId, ServerMessage, Target,
    Welcome,
};
use tokio::net::ToSocketAddrs;
use tokio::time::timeout;

use crate::requests::Requests;
use crate::transport::{self, Tcp, Transport};
use crate::Error;

/// How long a [`Session`] waits for the next frame by default.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(10);

/// A connection that has said hello: send requests, await replies and events.
#[derive(Debug)]
pub struct Session<T> {
    transport: T,
    welcome: Welcome,
    /// Ids for requests, forgotten as replies arrive.
    requests: Requests<()>,
    /// Events received while waiting for something else, oldest first.
    events: Vec<ServerMessage>,
    wait: Duration,
    answer_pings: bool,
    /// Why the connection ended, if it ended with an error.
    closed_by: Option<Error>,
}

impl Session<Tcp> {
    /// Connects over TCP and says hello as `chat-client`.
    ///
    /// # Errors
    /// If the connection fails or the server does not welcome the client in time.
    pub async fn connect(addr: impl ToSocketAddrs) -> Result<Self, Error> {
        let transport = timeout(DEFAULT_WAIT, transport::tcp(addr))
            .await
            .map_err(|_| Error::Timeout(DEFAULT_WAIT))??;
        Self::handshake(transport, "chat-client").await
    }

    /// Connects over TCP from the local address `source` (see [`transport::tcp_from`]) and
    /// says hello as `client`.
    ///
    /// # Errors
    /// If the connection fails or the server does not welcome the client in time.
    pub async fn connect_from(
        addr: SocketAddr,
        source: Option<std::net::IpAddr>,
        client: &str,
    ) -> Result<Self, Error> {
        let transport = match source {
            Some(ip) => transport::tcp_from(addr, ip).await?,
            None => transport::tcp(addr).await?,
        };
        Self::handshake(transport, client).await
    }
}

impl Session<crate::ws::Ws> {
    /// Connects to a web listener's WebSocket (`ws://addr/ws`) and says hello as `chat-client`.
    ///
    /// # Errors
    /// If the connection or upgrade fails or the server does not welcome the client in time.
    pub async fn connect_ws(addr: SocketAddr) -> Result<Self, Error> {
        let transport = timeout(DEFAULT_WAIT, crate::ws::ws(addr))
            .await
            .map_err(|_| Error::Timeout(DEFAULT_WAIT))??;
        Self::handshake(transport, "chat-client").await
    }
}

#[cfg(feature = "engine")]
impl Session<chat_core::Connection> {
    /// Connects to an engine in this process and says hello as `client`.
    ///
    /// # Errors
    /// If the engine has stopped.
    pub async fn embedded(engine: &chat_core::Engine, client: &str) -> Result<Self, Error> {
        Self::handshake(engine.connect().await, client).await
    }
}

impl<T: Transport> Session<T> {
    /// Says hello as `client` on an open transport and waits for the welcome.
    ///
    /// # Errors
    /// [`Error::Refused`] if the server answers with an error, [`Error::Unexpected`] for any
    /// other answer, and the transport's errors.
    pub async fn handshake(transport: T, client: &str) -> Result<Self, Error> {
        Self::handshake_with(transport, Hello::current(client)).await
    }

    /// Says `hello` (any version range, e.g. [`Hello::version`]`(1, …)` to act as a version-1
    /// client) on an open transport and waits for the welcome; the version agreed is in
    /// [`welcome`](Self::welcome).
    ///
    /// # Errors
    /// As [`handshake`](Self::handshake).
    pub async fn handshake_with(mut transport: T, hello: Hello) -> Result<Self, Error> {
        transport.send(ClientMessage::Hello(hello)).await?;
        let mut events = Vec::new();
        let welcome = loop {
            let msg = timeout(DEFAULT_WAIT, transport.recv())
                .await
                .map_err(|_| Error::Timeout(DEFAULT_WAIT))?
                .ok_or(Error::Closed)??;
            match msg {
                ServerMessage::Welcome(welcome) => break welcome,
                ServerMessage::Error(error) => return Err(Error::Refused(error)),
                ServerMessage::Ping { nonce } => {
                    transport.send(ClientMessage::Pong { nonce }).await?;
                    events.push(ServerMessage::Ping { nonce });
                }
                other => return Err(Error::Unexpected(format!("{other:?}"))),
            }
        };
        Ok(Self {
            transport,
            welcome,
            requests: Requests::new(),
            events,
            wait: DEFAULT_WAIT,
            answer_pings: true,
            closed_by: None,
        })
    }

    /// Waits at most `wait` for each frame from now on.
    #[must_use]
    pub fn with_wait(mut self, wait: Duration) -> Self {
        self.wait = wait;
        self
    }

    /// Whether to answer the server's pings with pongs (the default). Pings are kept as events
    /// either way.
    pub fn set_answer_pings(&mut self, answer: bool) {
        self.answer_pings = answer;
    }

    /// The server's welcome: its limits and default room.
    pub fn welcome(&self) -> &Welcome {
        &self.welcome
    }

    /// Registers `username` and logs in as `device`, then waits for the backlog's end
    /// (`CaughtUp`), keeping the backlog among the [`events`](Self::events).
    ///
    /// # Errors
    /// [`Error::Refused`] if the server says no; connection errors and timeouts.
    pub async fn register(
        &mut self,
        username: &str,
        password: &str,
        device: &str,
    ) -> Result<chat_proto::Session, Error> {
        let request = Request::Register {
            username: username.into(),
            password: password.into(),
            device: device.into(),
        };
        self.log_in(request).await
    }

    /// Logs in as `device` with a password, then waits for the backlog's end (see
    /// [`register`](Self::register)).
    ///
    /// # Errors
    /// [`Error::Refused`] if the server says no; connection errors and timeouts.
    pub async fn login(
        &mut self,
        username: &str,
        password: &str,
        device: &str,
    ) -> Result<chat_proto::Session, Error> {
        let request = Request::Login {
            username: username.into(),
            password: password.into(),
            device: device.into(),
        };
        self.log_in(request).await
    }

    /// Sends a `Register`, `Login` or `Resume` and waits for its session and `CaughtUp`.
    async fn log_in(&mut self, request: Request) -> Result<chat_proto::Session, Error> {
        match self.request(request).await? {
            Reply::Session(session) => {
                self.until(|e| *e == ServerMessage::CaughtUp).await?;
                Ok(session)
            }
            other => Err(Error::Unexpected(format!("{other:?}"))),
        }
    }

    /// Sends a message (a request sent this way is not matched to its reply: use
    /// [`send_request`](Self::send_request)).
    ///
    /// # Errors
    /// If the connection is broken or the send takes longer than the wait.
    pub async fn send(&mut self, msg: ClientMessage) -> Result<(), Error> {
        timeout(self.wait, self.transport.send(msg))
            .await
            .map_err(|_| Error::Timeout(self.wait))?
    }

    /// Sends a request with a fresh id without waiting for the reply; returns the id.
    ///
    /// # Errors
    /// As [`send`](Self::send).
    pub async fn send_request(&mut self, request: Request) -> Result<RequestId, Error> {
        let (id, msg) = self.start(request);
        self.send(msg).await?;
        Ok(id)
    }

    /// Queues a request without flushing (pipelining); returns its id. [`flush`](Self::flush)
    /// writes out what was queued.
    ///
    /// # Errors
    /// If the connection is broken.
    pub async fn feed_request(&mut self, request: Request) -> Result<RequestId, Error> {
        let (id, msg) = self.start(request);
        self.transport.feed(msg).await?;
        Ok(id)
    }

    /// Writes out queued requests.
    ///
    /// # Errors
    /// If the connection is broken.
    pub async fn flush(&mut self) -> Result<(), Error> {
        self.transport.flush().await
    }

    fn start(&mut self, request: Request) -> (RequestId, ClientMessage) {
        let msg = self.requests.start((), request);
        let id = match &msg {
            ClientMessage::Request { id, .. } => *id,
            _ => RequestId(0),
        };
        (id, msg)
    }

    /// Sends a request and waits for its reply, keeping the events that come first.
    ///
    /// # Errors
    /// [`Error::Refused`] with the server's error reply; connection errors and timeouts.
    pub async fn request(&mut self, request: Request) -> Result<Reply, Error> {
        let id = self.send_request(request).await?;
        self.reply(id).await
    }

    /// Waits for the reply to request `id`.
    ///
    /// # Errors
    /// As [`request`](Self::request).
    pub async fn reply(&mut self, id: RequestId) -> Result<Reply, Error> {
        match self.until(|e| Requests::<()>::is_reply_to(e, id)).await? {
            ServerMessage::Ok { reply, .. } => Ok(reply),
            ServerMessage::Err { error, .. } => Err(Error::Refused(error)),
            other => Err(Error::Unexpected(format!("{other:?}"))),
        }
    }

    /// Sends `text` to `target` with the given client message id and waits until it is stored;
    /// returns its message id.
    ///
    /// # Errors
    /// As [`request`](Self::request).
    pub async fn send_text(
        &mut self,
        target: Target,
        client_msg_id: u64,
        text: &str,
    ) -> Result<MessageId, Error> {
        let request = Request::Send {
            target,
            client_msg_id: ClientMsgId(client_msg_id),
            text: text.into(),
        };
        match self.request(request).await? {
            Reply::Sent { id, .. } => Ok(id),
            other => Err(Error::Unexpected(format!("{other:?}"))),
        }
    }

    /// The next frame from the server (not one kept in [`events`](Self::events)); `None` once
    /// the connection has ended ([`close_reason`](Self::close_reason) says why, if not
    /// cleanly).
    ///
    /// # Errors
    /// [`Error::Timeout`] if nothing arrives within the wait.
    pub async fn next_event(&mut self) -> Result<Option<ServerMessage>, Error> {
        self.next_event_within(self.wait).await
    }

    /// As [`next_event`](Self::next_event), waiting at most `wait`.
    ///
    /// # Errors
    /// [`Error::Timeout`] if nothing arrives in time.
    pub async fn next_event_within(
        &mut self,
        wait: Duration,
    ) -> Result<Option<ServerMessage>, Error> {
        if self.closed_by.is_some() {
            return Ok(None);
        }
        let msg = match timeout(wait, self.transport.recv()).await {
            Err(_) => return Err(Error::Timeout(wait)),
            Ok(None) => return Ok(None),
            Ok(Some(Err(error))) => {
                self.closed_by = Some(error);
                return Ok(None);
            }
            Ok(Some(Ok(msg))) => msg,
        };
        match &msg {
            ServerMessage::Ok { id, .. } | ServerMessage::Err { id, .. } => {
                self.requests.remove(*id);
            }
            ServerMessage::Ping { nonce } if self.answer_pings => {
                let _ = self.send(ClientMessage::Pong { nonce: *nonce }).await;
            }
            _ => {}
        }
        Ok(Some(msg))
    }

    /// Waits for an event matching `want` (looking first among the kept events); keeps the
    /// others seen meanwhile.
    ///
    /// # Errors
    /// [`Error::Closed`] if the connection ends first (see [`close_reason`](Self::close_reason));
    /// [`Error::Timeout`] if the server is
    /// silent for longer than the wait.
    pub async fn until(
        &mut self,
        want: impl Fn(&ServerMessage) -> bool,
    ) -> Result<ServerMessage, Error> {
        if let Some(at) = self.events.iter().position(&want) {
            return Ok(self.events.remove(at));
        }
        loop {
            match self.next_event().await? {
                Some(event) if want(&event) => return Ok(event),
                Some(event) => self.events.push(event),
                None => return Err(Error::Closed),
            }
        }
    }

    /// The events kept while waiting for something else, oldest first.
    pub fn events(&self) -> &[ServerMessage] {
        &self.events
    }

    /// Forgets the kept events.
    pub fn clear_events(&mut self) {
        self.events.clear();
    }

    /// The texts of the chat messages among the kept events, in order.
    pub fn texts(&self) -> Vec<String> {
        self.events
            .iter()
            .filter_map(|e| match e {
                ServerMessage::Message(m) => Some(m.text.clone()),
                _ => None,
            })
            .collect()
    }

    /// Why the connection ended, if it ended with an error.
    pub fn close_reason(&self) -> Option<&Error> {
        self.closed_by.as_ref()
    }

    /// The transport, for raw use (e.g. a benchmark's own loop).
    pub fn into_transport(self) -> T {
        self.transport
    }
}
