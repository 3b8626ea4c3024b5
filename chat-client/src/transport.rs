//! How client messages reach a server: the [`Transport`] trait, TCP (a [`Tcp`] framed socket)
//! and, with the `engine` feature, an in-process `chat_core::Connection`; [`Connector`],
//! which opens a fresh transport for each (re)connection; and [`Failover`], a connector over
//! several servers (nodes of one cluster), aimed at one of them by [`Connector::pick`].

use std::future::Future;
use std::net::{IpAddr, SocketAddr};

use chat_proto::{ClientCodec, ClientMessage, ServerMessage};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpSocket, TcpStream, ToSocketAddrs};
use tokio_util::codec::Framed;

use crate::Error;

/// A connection to a server carrying typed messages both ways.
pub trait Transport: Send {
    /// Sends one message and flushes it.
    ///
    /// # Errors
    /// If the connection is broken.
    fn send(&mut self, msg: ClientMessage) -> impl Future<Output = Result<(), Error>> + Send;

    /// Queues one message without flushing (see [`flush`](Self::flush)); by default, sends it.
    ///
    /// # Errors
    /// If the connection is broken.
    fn feed(&mut self, msg: ClientMessage) -> impl Future<Output = Result<(), Error>> + Send {
        self.send(msg)
    }

    /// Writes out what [`feed`](Self::feed) queued.
    ///
    /// # Errors
    /// If the connection is broken.
    fn flush(&mut self) -> impl Future<Output = Result<(), Error>> + Send {
        async { Ok(()) }
    }

    /// The next message from the server; `None` once the connection ended cleanly.
    /// Cancel-safe: a message is never lost when the future is dropped unfinished.
    fn recv(&mut self) -> impl Future<Output = Option<Result<ServerMessage, Error>>> + Send;
}

/// Opens transports to a server, once per (re)connection.
pub trait Connector: Send {
    /// The transport opened.
    type Transport: Transport;

    /// Aims the next [`connect`](Self::connect) at the `server`th address, as
    /// [`Output::Connect`](crate::Output::Connect) names it (an index into
    /// [`Settings::servers`](crate::Settings::servers)). A connector to one server has nothing
    /// to choose and ignores it (the default); [`Failover`] picks one of its connectors.
    fn pick(&mut self, server: usize) {
        let _ = server;
    }

    /// Opens a connection.
    ///
    /// # Errors
    /// If the server cannot be reached.
    fn connect(&mut self) -> impl Future<Output = Result<Self::Transport, Error>> + Send;
}

/// A TCP connection speaking the chat protocol.
pub type Tcp = Framed<TcpStream, ClientCodec>;

/// Connects over TCP (with `TCP_NODELAY`).
///
/// # Errors
/// [`Error::Io`] if the connection fails.
pub async fn tcp(addr: impl ToSocketAddrs) -> Result<Tcp, Error> {
    let stream = TcpStream::connect(addr).await?;
    let _ = stream.set_nodelay(true);
    Ok(Framed::new(stream, ClientCodec::new()))
}

/// Connects over TCP from the local address `source` (to spread many connections over several
/// loopback addresses, each with its own ephemeral ports).
///
/// # Errors
/// [`Error::Io`] if binding or connecting fails.
pub async fn tcp_from(addr: SocketAddr, source: IpAddr) -> Result<Tcp, Error> {
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.bind(SocketAddr::new(source, 0))?;
    let stream = socket.connect(addr).await?;
    let _ = stream.set_nodelay(true);
    Ok(Framed::new(stream, ClientCodec::new()))
}

impl<S> Transport for Framed<S, ClientCodec>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    async fn send(&mut self, msg: ClientMessage) -> Result<(), Error> {
        SinkExt::send(self, msg).await.map_err(Error::from)
    }

    async fn feed(&mut self, msg: ClientMessage) -> Result<(), Error> {
        SinkExt::feed(self, msg).await.map_err(Error::from)
    }

    async fn flush(&mut self) -> Result<(), Error> {
        SinkExt::<ClientMessage>::flush(self)
            .await
            .map_err(Error::from)
    }

    async fn recv(&mut self) -> Option<Result<ServerMessage, Error>> {
        self.next().await.map(|r| r.map_err(Error::from))
    }
}

/// Connects to a TCP address, by name or number (`host:port`).
#[derive(Clone, Debug)]
pub struct TcpConnector(pub String);

impl Connector for TcpConnector {
    type Transport = Tcp;

    async fn connect(&mut self) -> Result<Tcp, Error> {
        tcp(self.0.as_str()).await
    }
}

/// A connector over several servers' connectors (the nodes of one cluster, any of which will
/// do), in the order of [`Settings::servers`](crate::Settings::servers): each connection goes
/// to the one last [`pick`](Connector::pick)ed (the first until then). The client's rotation
/// chooses which; this only carries it out, for any transport (TCP, TLS, WebSocket).
#[derive(Clone, Debug)]
pub struct Failover<C> {
    /// One connector per server.
    servers: Vec<C>,
    /// The index of the one to connect to next.
    next: usize,
}

impl<C> Failover<C> {
    /// A connector over `servers`, or `None` if there are none.
    pub fn new(servers: Vec<C>) -> Option<Self> {
        if servers.is_empty() {
            return None;
        }
        Some(Self { servers, next: 0 })
    }

    /// The connectors, in order.
    pub fn servers(&self) -> &[C] {
        &self.servers
    }
}

impl<C: Connector> Connector for Failover<C> {
    type Transport = C::Transport;

    /// Aims at `servers[server]` (wrapping around past the last).
    fn pick(&mut self, server: usize) {
        self.next = server % self.servers.len();
    }

    async fn connect(&mut self) -> Result<C::Transport, Error> {
        // `new` refuses an empty list and `pick` stays in bounds.
        self.servers[self.next].connect().await
    }
}

#[cfg(feature = "engine")]
mod engine {
    use chat_core::{Connection, Engine};

    use super::{Connector, Error, Transport};
    use chat_proto::{ClientMessage, ServerMessage};

    impl Transport for Connection {
        async fn send(&mut self, msg: ClientMessage) -> Result<(), Error> {
            Self::send(self, msg).await.map_err(|_| Error::EngineClosed)
        }

        async fn recv(&mut self) -> Option<Result<ServerMessage, Error>> {
            Self::recv(self).await.map(Ok)
        }
    }

    impl Connector for Engine {
        type Transport = Connection;

        async fn connect(&mut self) -> Result<Connection, Error> {
            Ok(Self::connect(self).await)
        }
    }
}
