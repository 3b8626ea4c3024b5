//! The chat server: one [`Server`] over one [`chat_core::Engine`], serving any number of
//! listeners — the binary protocol over TCP and the browser client over HTTP + WebSocket —
//! with TLS, health and metrics.
//!
//! This crate moves frames between connections and the engine and enforces transport limits;
//! it holds no chat rules.
//!
//! # Layout
//! - [`Server`] (`server`): the engine handle, one connection limit over every listener,
//!   accept loops with back-off, cancellation, the task tracker and the shutdown order;
//!   [`run`] is the one-TCP-listener shorthand.
//! - `pump`: the transport-neutral policy, one task per connection: write back-pressure
//!   against the engine's outbox, error frames at the end, flush with a timeout (keepalive
//!   and shutdown reach it through the outbox).
//! - `park`: idle plain connections kept without a task (their sockets on an epoll instance
//!   of the server's own), served again by their next input or frame.
//! - `transport`: what differs per transport, behind one trait (reading and writing one
//!   value): `tcp` (bufferless idle reads, or a buffered stream under TLS) and `ws` (one frame
//!   per binary message).
//! - `web`: HTTP: the embedded browser client, `/ws`, `/peers` (other nodes for the page to
//!   fail over to, [`web_peer`]), `/healthz`, `/metrics`, the `Origin` check and the
//!   Content-Security-Policy.
//! - [`tls`]: certificates from PEM files or generated, reloadable.
//! - `metrics`: Prometheus metrics, the engine's counts read at each scrape.
//! - [`bus`]: numbered publications and heartbeats between nodes over NATS; a subscriber
//!   is told of every loss (a gap) so it can recover from the database.
//! - [`cluster`]: one node of several: the engine joined to the other nodes over the bus.
//! - [`ready`]: the machine-readable line the binary prints once it listens, and its parser.

pub mod bus;
pub mod cluster;
mod metrics;
mod park;
mod pump;
pub mod ready;
mod server;
pub mod tls;
mod transport;
mod web;

pub use server::{run, Server, ServerConfig};
pub use tls::{Tls, TlsError};
pub use web::web_peer;
