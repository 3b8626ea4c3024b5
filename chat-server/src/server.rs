//! [`Server`]: one engine, one connection limit, one shutdown, any number of listeners.

use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use chat_core::{Connection, Engine, EngineError};
use chat_proto::{encode, ErrorCode, ErrorReply, ServerMessage};
use futures_util::future::Either;
use futures_util::FutureExt;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::bus::BusStatsReader;
use crate::metrics::{Metrics, OpenConnection, Transport};
use crate::park::{self, Lot};
use crate::pump::{self, Served};
use crate::tls::Tls;
use crate::transport::tcp::FrameStream;
use crate::web;

/// Limits and options of the front ends.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Most connections at once, over every listener together; past it, new ones are refused
    /// (`ServerFull` on TCP, HTTP 503 on the web listener).
    pub max_connections: usize,
    /// How long shutdown waits for connections to flush before closing them.
    pub shutdown_grace: Duration,
    /// How long `/healthz` answers 503 before the listeners close at shutdown, so a load
    /// balancer stops sending new clients first (0: close at once).
    pub drain_notice: Duration,
    /// TLS for every listener (TCP gets TLS, the web listener HTTPS and WSS), if set.
    pub tls: Option<Arc<Tls>>,
    /// Web origins (`scheme://host:port`) allowed to open a WebSocket besides the server's own
    /// (the origin of the `Host` the page was loaded from).
    pub allowed_origins: Vec<String>,
    /// The counters of this node's bus to other nodes, shown at `/metrics` (`chat_bus_*`),
    /// if it has one.
    pub bus: Option<BusStatsReader>,
    /// Other nodes' WebSocket URLs (`ws://host:port/ws`, `wss://…`), for the browser client to
    /// fail over to (served at `/peers` and allowed by the page's Content-Security-Policy);
    /// see [`web_peer`](crate::web_peer) for what is accepted. Those nodes must allow this
    /// one's origin.
    pub web_peers: Vec<String>,
    /// How long a plain TCP connection may be idle (nothing read, written or queued for it
    /// but keepalive pings and pongs) before it is parked: its task and its registration with
    /// tokio's I/O driver are freed, and it is served again, at once, by its next input or
    /// frame. It is parked after one to two such periods. `None`: never park. TLS and
    /// WebSocket connections are not parked.
    pub park_after: Option<Duration>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            max_connections: 10_000,
            shutdown_grace: Duration::from_secs(3),
            drain_notice: Duration::ZERO,
            tls: None,
            allowed_origins: Vec::new(),
            bus: None,
            web_peers: Vec::new(),
            park_after: Some(Duration::from_secs(5)),
        }
    }
}

/// How long a TLS handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A chat server: owns the engine handle, the connection limit, cancellation, the task
/// tracker and the shutdown order, and serves any number of listeners.
///
/// ```no_run
/// # async fn demo(engine: chat_core::Engine) -> Result<(), Box<dyn std::error::Error>> {
/// use chat_server::{Server, ServerConfig};
/// let server = Server::new(engine, ServerConfig::default());
/// server.serve_tcp(tokio::net::TcpListener::bind("127.0.0.1:7878").await?);
/// server.serve_web(tokio::net::TcpListener::bind("127.0.0.1:8080").await?);
/// server.run(tokio::signal::ctrl_c()).await?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Server {
    shared: Arc<Shared>,
}

/// What every listener and connection task shares.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) engine: Engine,
    pub(crate) config: ServerConfig,
    /// One permit per open connection, over all listeners.
    limit: Arc<Semaphore>,
    /// Cancelled when shutdown begins: health turns 503 (for `drain_notice` before the
    /// listeners close).
    pub(crate) draining: CancellationToken,
    /// Cancelled when the listeners close: they stop accepting, idle HTTP connections close.
    pub(crate) stopping: CancellationToken,
    /// Cancelled when the grace period is over (or the engine failed): handshakes and the
    /// connections still flushing end at once (the engine closes the others' outboxes).
    pub(crate) cancel: CancellationToken,
    /// Every listener and connection task, waited for at shutdown.
    pub(crate) tasks: TaskTracker,
    pub(crate) metrics: Arc<Metrics>,
    /// Where idle plain connections are parked, if they are.
    pub(crate) lot: Option<Arc<Lot>>,
}

impl Server {
    /// A server over `engine`; it serves nothing until given listeners.
    pub fn new(engine: Engine, config: ServerConfig) -> Self {
        let metrics = Arc::new(Metrics::new(engine.clone(), config.bus.clone()));
        let lot = config.park_after.and_then(|period| {
            Lot::new(period, &metrics)
                .inspect_err(|error| {
                    tracing::warn!(%error, "cannot park idle connections; every one keeps a task");
                })
                .ok()
        });
        Self {
            shared: Arc::new(Shared {
                limit: Arc::new(Semaphore::new(config.max_connections)),
                engine,
                config,
                draining: CancellationToken::new(),
                stopping: CancellationToken::new(),
                cancel: CancellationToken::new(),
                tasks: TaskTracker::new(),
                metrics,
                lot: lot.map(Arc::new),
            }),
        }
    }

    /// Serves the binary protocol (over TLS if configured) on `listener` until shutdown.
    pub fn serve_tcp(&self, listener: TcpListener) {
        if let Some(lot) = &self.shared.lot {
            if let Some(epoll) = lot.take_epoll() {
                let shared = self.shared.clone();
                self.shared
                    .tasks
                    .spawn(park::run(lot.clone(), epoll, shared));
            }
        }
        let shared = self.shared.clone();
        self.shared
            .tasks
            .spawn(accept_loop(listener, shared, Transport::Tcp));
    }

    /// Serves HTTP (the web client, `/ws`, `/healthz`, `/metrics`; HTTPS if TLS is configured)
    /// on `listener` until shutdown.
    pub fn serve_web(&self, listener: TcpListener) {
        let shared = self.shared.clone();
        self.shared
            .tasks
            .spawn(accept_loop(listener, shared, Transport::Ws));
    }

    /// Runs until `shutdown` completes (or the engine stops), then shuts down in order: answer
    /// `/healthz` with 503 for `drain_notice`, stop accepting, have the engine send every client
    /// `ShuttingDown` and commit pending writes, wait (up to `shutdown_grace`) for connections to
    /// flush, then close the rest.
    ///
    /// # Errors
    /// If the engine fails (a storage error).
    pub async fn run(self, shutdown: impl Future) -> Result<(), EngineError> {
        let shared = &self.shared;
        let stopped = shared.engine.clone();
        tokio::select! {
            _ = shutdown => tracing::info!("shutting down"),
            result = stopped.join() => {
                tracing::error!("the engine stopped; closing every connection");
                shared.draining.cancel();
                shared.stopping.cancel();
                shared.cancel.cancel();
                shared.tasks.close();
                shared.tasks.wait().await;
                return result;
            }
        }
        shared.draining.cancel();
        if !shared.config.drain_notice.is_zero() {
            tokio::time::sleep(shared.config.drain_notice).await;
        }
        shared.stopping.cancel();
        let result = shared.engine.shut_down().await;
        shared.tasks.close();
        if timeout(shared.config.shutdown_grace, shared.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("connections still flushing after the grace period; closing them");
            shared.cancel.cancel();
            shared.tasks.wait().await;
        }
        result
    }
}

/// Serves `listener` with the binary protocol until `shutdown` completes (one TCP listener, no
/// web front end): shorthand for [`Server::new`], [`Server::serve_tcp`] and [`Server::run`].
///
/// # Errors
/// If the engine fails (a storage error).
pub async fn run(
    listener: TcpListener,
    engine: Engine,
    config: ServerConfig,
    shutdown: impl Future,
) -> Result<(), EngineError> {
    let server = Server::new(engine, config);
    server.serve_tcp(listener);
    server.run(shutdown).await
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, transport: Transport) {
    let mut backoff = Duration::from_millis(10);
    loop {
        let accepted = tokio::select! {
            () = shared.stopping.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => {
                backoff = Duration::from_millis(10);
                accepted
            }
            Err(error) => {
                // Out of file descriptors or the like: wait, then try again.
                tracing::warn!(%error, ?backoff, "accept failed");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        let Ok(permit) = shared.limit.clone().try_acquire_owned() else {
            tracing::warn!(%peer, via = transport.name(), "connection limit reached; refusing");
            shared.metrics.refused.inc();
            shared
                .tasks
                .spawn(refuse(stream, shared.clone(), transport));
            continue;
        };
        tracing::debug!(%peer, via = transport.name(), "accepted");
        let task = shared.clone();
        match transport {
            Transport::Tcp => shared.tasks.spawn(serve_tcp(stream, task, permit)),
            Transport::Ws => shared.tasks.spawn(web::serve(stream, task, permit)),
        };
    }
}

/// Serves one binary-protocol connection, over TLS if configured.
///
/// A plain connection's task is its set-up and then its pump, one after the other
/// (`FutureExt::then`): the task holds the larger of the two, not an `async` block's captured
/// arguments and set-up locals beside the pump for the connection's whole life. That is what
/// keeps tokio's task cell at 384 bytes.
fn serve_tcp(
    stream: TcpStream,
    shared: Arc<Shared>,
    permit: OwnedSemaphorePermit,
) -> impl Future<Output = ()> + Send {
    if let Some(tls) = &shared.config.tls {
        // Boxed: a TLS connection's state (handshake, TLS session, its pump) is its own
        // allocation, so a plain connection's task is no larger than a plain pump needs.
        let acceptor = tls.raw_acceptor();
        return Either::Right(Box::pin(serve_tls(acceptor, stream, shared, permit)));
    }
    let set_up = async move {
        no_delay(&stream);
        let conn = connect(&shared, peer_ip(&stream)).await;
        let io = FrameStream::new(stream, shared.engine.config().max_frame_len);
        let open = shared.metrics.open(Transport::Tcp);
        (io, conn, open, shared)
    };
    Either::Left(
        set_up.then(|(io, conn, open, shared)| serve_plain(io, conn, open, permit, shared)),
    )
}

/// The pump of a plain connection, which is parked when it is idle (if the server parks).
pub(crate) fn serve_plain(
    io: FrameStream<TcpStream>,
    conn: Connection,
    open: OpenConnection,
    permit: OwnedSemaphorePermit,
    shared: Arc<Shared>,
) -> impl Future<Output = ()> + Send {
    let period = shared.lot.as_ref().and_then(|lot| lot.period());
    let pump = pump::serve_parkable(io, conn, shared.cancel.clone(), open, period);
    pump.map(move |served| match served {
        Served::Ended => drop(permit),
        Served::Idle(io, conn, open) => park::park_idle(io, conn, open, permit, &shared),
    })
}

/// Serves one connection over TLS: the handshake, then the pump.
async fn serve_tls(
    acceptor: tokio_rustls::TlsAcceptor,
    stream: TcpStream,
    shared: Arc<Shared>,
    permit: OwnedSemaphorePermit,
) {
    no_delay(&stream);
    let peer = peer_ip(&stream);
    let Some(stream) = handshake(acceptor, stream, &shared.cancel).await else {
        return;
    };
    let conn = connect(&shared, peer).await;
    let open = shared.metrics.open(Transport::Tcp);
    let io = FrameStream::new(stream, shared.engine.config().max_frame_len);
    let cancel = shared.cancel.clone();
    pump::serve(io, conn, cancel, open).await;
    drop(permit);
}

/// Sends small frames at once (no Nagle delay); a socket that refuses is served anyway.
pub(crate) fn no_delay(stream: &TcpStream) {
    if let Err(error) = stream.set_nodelay(true) {
        tracing::debug!(%error, "cannot set TCP_NODELAY");
    }
}

/// The client's address, if the socket still knows it.
pub(crate) fn peer_ip(stream: &TcpStream) -> Option<IpAddr> {
    stream.peer_addr().ok().map(|addr| addr.ip())
}

/// Opens the engine side of a connection from `peer`: login throttling and hashing budgets
/// are per client address. The wait for the engine (hundreds of bytes of state, its channel's
/// send) is boxed: inline, it would size every connection's task for the rest of its life.
pub(crate) async fn connect(shared: &Shared, peer: Option<IpAddr>) -> Connection {
    Box::pin(async move {
        match peer {
            Some(ip) => shared.engine.connect_from(ip).await,
            None => shared.engine.connect().await,
        }
    })
    .await
}

/// A TLS handshake, bounded in time; `None` if it fails.
pub(crate) async fn handshake<S: AsyncRead + AsyncWrite + Unpin>(
    acceptor: tokio_rustls::TlsAcceptor,
    stream: S,
    cancel: &CancellationToken,
) -> Option<tokio_rustls::server::TlsStream<S>> {
    let accept = timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream));
    tokio::select! {
        () = cancel.cancelled() => None,
        result = accept => match result {
            Ok(Ok(stream)) => Some(stream),
            Ok(Err(error)) => {
                tracing::info!(%error, "TLS handshake failed");
                None
            }
            Err(_) => {
                tracing::info!("TLS handshake timed out");
                None
            }
        },
    }
}

/// Tells a connection over the limit why it is closed: `ServerFull` on TCP, 503 over HTTP.
async fn refuse(stream: TcpStream, shared: Arc<Shared>, transport: Transport) {
    let bytes: Vec<u8> = match transport {
        Transport::Tcp => {
            let error = ErrorReply::new(
                ErrorCode::ServerFull,
                "too many connections; try again later",
            );
            match encode(
                &ServerMessage::Error(error),
                shared.engine.config().max_frame_len,
            ) {
                Ok(frame) => frame.as_bytes().to_vec(),
                Err(_) => Vec::new(),
            }
        }
        Transport::Ws => web::SERVER_FULL.to_vec(),
    };
    let acceptor = shared.config.tls.as_ref().map(|tls| match transport {
        Transport::Tcp => tls.raw_acceptor(),
        Transport::Ws => tls.http_acceptor(),
    });
    let write = async move {
        match acceptor {
            None => write_and_close(stream, &bytes).await,
            Some(acceptor) => {
                if let Some(stream) = handshake(acceptor, stream, &shared.cancel).await {
                    write_and_close(stream, &bytes).await;
                }
            }
        }
    };
    let _ = timeout(Duration::from_secs(2), write).await;
}

async fn write_and_close(mut stream: impl AsyncWrite + Unpin, bytes: &[u8]) {
    if stream.write_all(bytes).await.is_ok() {
        let _ = stream.shutdown().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What an idle plain-TCP connection's task holds stays small: memory per idle
    /// connection is a target (docs/BENCHMARKS.md). tokio's task cell adds 112 bytes to the
    /// future (a 32-byte header; scheduler handle, task id and the task tracker's handle; a
    /// 48-byte trailer) and is 128-byte aligned: a future up to 272 bytes keeps it at 384
    /// (`-Zprint-type-sizes` shows the cell).
    #[tokio::test]
    async fn a_plain_connection_task_is_small() {
        let storage = chat_core::MemoryStorage::new();
        let engine = Engine::start(storage, chat_core::Config::default())
            .await
            .expect("engine");
        let server = Server::new(engine, ServerConfig::default());
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let _client = TcpStream::connect(addr).await.expect("connect");
        let (stream, _) = listener.accept().await.expect("accept");
        let permit = server
            .shared
            .limit
            .clone()
            .try_acquire_owned()
            .expect("permit");
        let task = serve_tcp(stream, server.shared.clone(), permit);
        let size = size_of_val(&task);
        println!("serve_tcp future: {size} bytes");
        assert!(size <= 272, "a plain connection's future is {size} bytes");
    }
}
