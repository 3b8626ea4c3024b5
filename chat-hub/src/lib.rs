//! The chat state machine: every chat decision, with no I/O, no clock and no async.
//!
//! [`Hub`] takes inputs (connections, client messages, completed I/O, timeouts), each with the
//! time, and emits [`Output`]s for a driver to carry out, in the style of quinn-proto. This crate
//! has no tokio, sqlx or argon2 in its manifest: that the hub never awaits, never touches a
//! socket or a database and never hashes a password is a property of the build, not a
//! convention. chat-core's engine is the driver; the simulated world in `sim` is another.
//!
//! # Layout
//! - [`Hub`]: the state machine and its driving contract; `hub/` splits its state into owners
//!   (directory, sessions, presence, delivery, moderation, read markers, outputs), each the
//!   only writer of its state.
//! - [`Config`]: every limit and interval; [`names`]: naming rules; `rate`: rate limiters.
//! - `types`: ids, time ([`Now`], [`Mono`]), stored records and [`Write`]s.
//! - [`MemoryStore`]: storage as a model in memory, the reference every database is held to.
//! - `sim` (feature `sim`): a simulated world with a virtual clock and model storage.
//! - `fuzzing` (feature `arbitrary`): the `session` fuzz target's body.

pub mod config;
#[cfg(feature = "arbitrary")]
pub mod fuzzing;
mod hub;
mod memory;
pub mod names;
mod rate;
#[cfg(feature = "sim")]
pub mod sim;
mod types;

pub use config::{Config, ConfigError, PasswordParams};
pub use hub::{
    token_hash, ChangeWhat, Completion, Hub, IoRequest, Output, PendingChange, Stats, Ticket,
    UnreadFor, AUDIT_SERVER, MAX_REASON_LEN, MAX_TOPIC_LEN,
};
pub use memory::MemoryStore;
pub use types::*;
