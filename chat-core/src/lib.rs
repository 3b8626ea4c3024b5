//! The chat engine: all chat behaviour, independent of any transport.
//!
//! # Layout
//! - [`Hub`] (from the `chat-hub` crate, re-exported): the deterministic state machine that
//!   makes every decision. No I/O, no clock: inputs go in with the time, [`Output`]s come out.
//! - [`Storage`]: what the engine needs from a database; [`Store`] (SQLite: reads through sqlx,
//!   writes through rusqlite on a writer thread) and [`PgStore`] (PostgreSQL, sqlx) implement
//!   it (the only code that knows SQL); [`Database`] is
//!   whichever a `--db` value names; [`copy_to_postgres`] moves a SQLite database over.
//! - [`Engine`]: the async driver. It owns a hub, persists its writes with group commit, runs
//!   password hashing on blocking threads, and hands frames to [`Connection`]s.
//! - [`Connection`]: one client's in-memory link to the engine, with a bounded outbound queue.

mod copy;
mod database;
mod engine;
mod outbox;
mod password;
mod pg_store;
mod storage;
mod store;

pub use chat_hub::{config, names};
pub use chat_hub::{
    token_hash, AuditRecord, ClientMsgId, Committed, CommittedBatch, Completion, Config,
    ConfigError, ConvId, ConvKind, ConvRow, DeviceId, DeviceRow, Hub, IdBlock, IoRequest,
    MemberRow, MessageId, MessageKind, ModAction, Mono, NodeMessage, Now, Numbering, Output,
    PasswordParams, ReadMarkerRow, Role, SessionId, Snapshot, Standing, StandingRow, StoredMessage,
    Ticket, TokenRecord, TypingTo, UnixMillis, UnreadFor, UnreadTally, UserId, UserRow, Write,
    UNNUMBERED,
};
pub use copy::{copy_to_postgres, CopyError, IfNotEmpty, RowCounts};
pub use database::{Database, Location, OpenError};
pub use engine::{Connection, Engine, EngineClosed, EngineError, EngineStats, TrySendError};
pub use pg_store::{redact_url, PgStore};
pub use storage::{MemoryStorage, Storage};
pub use store::{disable_sqlite_memory_statistics, Durability, Store, StoreError};
