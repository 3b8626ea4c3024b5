//! The chat server: a TCP front end over [`chat_core::Engine`].
//!
//! This crate moves frames between sockets and the engine and enforces transport limits; it
//! holds no chat rules.
//!
//! # Layout
//! - [`run`]: the accept loop: connection limit, accept back-off, graceful shutdown.
//! - `connection`: one task per socket: decode frames into the engine, write the engine's
//!   frames out (many per syscall), keepalive, bad-input handling.
//! - [`ServerConfig`]: the transport's limits and intervals.
//! - [`ready`]: the machine-readable line the binary prints once it listens, and its parser.

mod connection;
pub mod ready;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chat_core::Engine;
use chat_proto::{encode, ErrorCode, ErrorReply, ServerMessage};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Limits and intervals of the TCP front end.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Most connections at once; past it, new ones get `ServerFull` and are closed.
    pub max_connections: usize,
    /// How long shutdown waits for connections to flush before closing them.
    pub shutdown_grace: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            max_connections: 10_000,
            shutdown_grace: Duration::from_secs(3),
        }
    }
}

/// Serves `listener` until `shutdown` completes, then shuts down gracefully: stops accepting,
/// has the engine send every client `ShuttingDown` and commit pending writes, and waits (up to
/// `shutdown_grace`) for connections to flush.
///
/// # Errors
/// If the engine fails (a storage error).
pub async fn run(
    listener: TcpListener,
    engine: Engine,
    config: ServerConfig,
    shutdown: impl Future,
) -> Result<(), chat_core::EngineError> {
    let limit = Arc::new(Semaphore::new(config.max_connections));
    let cancel = CancellationToken::new();
    let tasks = TaskTracker::new();
    let stopped = engine.clone();
    tokio::select! {
        () = accept_loop(&listener, &engine, &limit, &cancel, &tasks) => {}
        _ = shutdown => tracing::info!("shutting down"),
        result = stopped.join() => {
            tracing::error!("the engine stopped; closing every connection");
            cancel.cancel();
            tasks.close();
            tasks.wait().await;
            return result;
        }
    }
    drop(listener);
    let result = engine.shut_down().await;
    tasks.close();
    if tokio::time::timeout(config.shutdown_grace, tasks.wait())
        .await
        .is_err()
    {
        tracing::warn!("connections still flushing after the grace period; closing them");
        cancel.cancel();
        tasks.wait().await;
    }
    result
}

async fn accept_loop(
    listener: &TcpListener,
    engine: &Engine,
    limit: &Arc<Semaphore>,
    cancel: &CancellationToken,
    tasks: &TaskTracker,
) {
    let mut backoff = Duration::from_millis(10);
    loop {
        let (stream, peer) = match listener.accept().await {
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
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            tracing::warn!(%peer, "connection limit reached; refusing");
            tasks.spawn(refuse(stream, engine.config().max_frame_len));
            continue;
        };
        let conn = engine.connect_from(peer.ip()).await;
        tracing::info!(%peer, session = conn.id().0, "connected");
        let keepalive = connection::Keepalive::of(engine.config());
        let cancel = cancel.clone();
        tasks.spawn(async move {
            connection::serve(stream, conn, keepalive, cancel).await;
            drop(permit);
        });
    }
}

/// Tells a connection over the limit why it is closed.
async fn refuse(mut stream: TcpStream, max_frame_len: usize) {
    let error = ErrorReply::new(
        ErrorCode::ServerFull,
        "too many connections; try again later",
    );
    if let Ok(frame) = encode(&ServerMessage::Error(error), max_frame_len) {
        let write = stream.write_all(frame.as_bytes());
        let _ = tokio::time::timeout(Duration::from_secs(1), write).await;
    }
    let _ = stream.shutdown().await;
}
