//! The chat client: one implementation of the protocol's client side, for the terminal client,
//! the load generator, tests and embedding programs.
//!
//! Two shapes, on one set of transports:
//!
//! - [`Client`] is the interactive client's state, sans I/O (like `chat_core::Hub` for the other
//!   end): lines typed and frames received go in with the time, frames to send, typed
//!   [`Event`]s to show and reconnection requests come out of [`Client::poll_output`]. It holds
//!   the rules: command parsing, script ordering, request correlation, resends after a
//!   reconnect, acknowledgements, messages shown once, typing. [`run`] drives it with tokio.
//! - [`Session`] is a request/response client for programs and tests: `connect`, `register`,
//!   `request`, `send_text`, `until(predicate)`, every wait bounded by a timeout.
//!
//! ```text
//!  lines, keys ──► Client ──► Output::Send ──► Transport ──► server
//!  frames ───────► (state) ─► Output::Print(Event) ──► front end
//!                          ─► Output::Connect { after, server } ──► Connector
//! ```
//!
//! # Layout
//! - [`command`]: a typed line to a [`Command`] (pure).
//! - `client`: [`Client`], its [`Settings`], [`Output`] and [`Event`].
//! - `requests`: [`Requests`], pending requests by id; replies matched to them.
//! - `rotation`: which of several servers to connect to next, and the back-off (pure).
//! - `reads`: how far each conversation is read, for `/read` (pure, bounded).
//! - `transport`: the [`Transport`] and [`Connector`] traits; TCP ([`Tcp`], [`TcpConnector`]);
//!   [`Failover`], a connector over several servers' connectors (any transport);
//!   with the `engine` feature, `chat_core::Connection` and `chat_core::Engine`.
//! - `ws`: WebSocket ([`Ws`], [`WsConnector`]) and TLS ([`TlsTcp`], [`TlsConnector`],
//!   [`tls_config`]) transports.
//! - `session`: [`Session`].
//! - `driver`: [`run`], the tokio driver of a [`Client`].
//!
//! **Invariant:** `client`, `command`, `requests` and `rotation` never touch tokio, a socket or the clock;
//! input from the network never panics.

pub mod command;

mod client;
mod driver;
mod reads;
mod requests;
mod rotation;
mod session;
mod transport;
mod ws;

pub use chat_proto;
pub use client::{
    Client, Delivery, Event, Output, Settings, ACTION_PREFIX, HANDSHAKE_TIMEOUT, MAX_BACKOFF,
    MAX_PASSWORD_LEN, MIN_BACKOFF, MIN_PASSWORD_LEN, NICK_ANNOUNCEMENT, REPLY_WAIT, SEARCH_PAGE,
    TYPING_PAUSE, TYPING_REFRESH, TYPING_SHOWN,
};
pub use command::{AuditOf, Command, HELP};
pub use driver::{run, Input};
pub use requests::{Answer, Requests};
pub use session::{Session, DEFAULT_WAIT};
pub use transport::{tcp, tcp_from, Connector, Failover, Tcp, TcpConnector, Transport};
pub use ws::{
    tls, tls_config, ws, ws_on, ws_with, MaybeTls, TlsConnector, TlsTcp, WebSocket, Ws,
    WsConnector, WsOptions,
};

use std::time::Duration;

use chat_proto::{CodecError, ErrorReply};

/// Everything that can go wrong talking to a server.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Connecting, reading or writing failed.
    #[error("connection: {0}")]
    Io(#[from] std::io::Error),
    /// The server sent bytes that are not a valid frame (or a frame was too large to send).
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// The WebSocket upgrade or connection failed.
    #[error("websocket: {0}")]
    WebSocket(String),
    /// TLS failed: an untrusted certificate, a name mismatch, an unreadable CA file.
    #[error("tls: {0}")]
    Tls(String),
    /// The in-process engine has stopped.
    #[error("the engine has stopped")]
    EngineClosed,
    /// The server closed the connection.
    #[error("the connection was closed")]
    Closed,
    /// Nothing arrived within the wait.
    #[error("nothing arrived within {0:?}")]
    Timeout(Duration),
    /// The server answered with an error.
    #[error("refused: {0}")]
    Refused(ErrorReply),
    /// The server answered something that does not fit.
    #[error("unexpected answer: {0}")]
    Unexpected(String),
}
