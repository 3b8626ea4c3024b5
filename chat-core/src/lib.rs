//! The chat engine: all chat behaviour, independent of any transport.
//!
//! # Layout
//! - [`Hub`]: the deterministic state machine that makes every decision. No I/O, no clock:
//!   inputs go in with the time, [`Output`]s come out.
//! - [`Store`]: SQLite storage through sqlx; the only code that knows SQL.
//! - [`Engine`]: the async driver. It owns a hub, persists its writes with group commit, runs
//!   password hashing on blocking threads, and hands frames to [`Connection`]s.
//! - [`Connection`]: one client's in-memory link to the engine, with a bounded outbound queue.
//! - [`sim`]: a simulated world (virtual clock, in-memory storage) for tests and fuzzing.
//! - `fuzzing` (feature `arbitrary`): the `session` fuzz target's body.

pub mod config;
mod engine;
#[cfg(feature = "arbitrary")]
pub mod fuzzing;
mod hub;
pub mod names;
mod outbox;
mod password;
mod rate;
pub mod sim;
mod store;
mod types;

pub use config::{Config, PasswordParams};
pub use engine::{Connection, Engine, EngineClosed, EngineError};
pub use hub::{Completion, Hub, Output, Ticket};
pub use store::{Durability, Store, StoreError};
pub use types::*;
