//! [`Database`]: the storage backend named by a location — a SQLite file path (or
//! `sqlite://PATH`) or a `postgres://` URL — for programs that choose it at run time.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::pg_store::{redact_url, PgStore};
use crate::storage::Storage;
use crate::store::{Durability, Store, StoreError};
use crate::{
    AuditRecord, Committed, ConvId, DeviceId, MessageId, Snapshot, StoredMessage, TokenRecord,
    UnixMillis, UnreadTally, UserId, Write,
};

/// Where the data is, parsed from a `--db` value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// A SQLite file: a plain path, or `sqlite://PATH` / `sqlite:PATH`.
    Sqlite(PathBuf),
    /// A PostgreSQL database: a `postgres://` or `postgresql://` URL.
    Postgres(String),
}

impl Location {
    /// Parses a `--db` value. Anything that is not a `postgres://`/`postgresql://` URL is a
    /// SQLite file, with an optional `sqlite://` or `sqlite:` prefix.
    pub fn parse(value: &str) -> Self {
        if value.starts_with("postgres://") || value.starts_with("postgresql://") {
            return Self::Postgres(value.to_owned());
        }
        let path = value
            .strip_prefix("sqlite://")
            .or_else(|| value.strip_prefix("sqlite:"))
            .unwrap_or(value);
        Self::Sqlite(PathBuf::from(path))
    }
}

impl fmt::Display for Location {
    /// The path, or the URL without its password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sqlite(path) => write!(f, "{}", path.display()),
            Self::Postgres(url) => f.write_str(&redact_url(url)),
        }
    }
}

/// Why a database could not be opened; the message names it (without a password).
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The SQLite file could not be opened or migrated.
    #[error("cannot open {path}: {source}")]
    Sqlite {
        /// The file.
        path: String,
        /// What failed.
        source: StoreError,
    },
    /// The PostgreSQL server could not be reached, refused the login, or the schema could not
    /// be migrated.
    #[error("cannot connect to {url}: {source}")]
    Postgres {
        /// The URL without its password.
        url: String,
        /// What failed.
        source: StoreError,
    },
}

/// One of the storage backends, chosen at run time: what `chat-server --db` opens.
#[derive(Clone, Debug)]
pub enum Database {
    /// A SQLite file.
    Sqlite(Store),
    /// A PostgreSQL database.
    Postgres(PgStore),
}

impl Database {
    /// Opens (creating a SQLite file if missing) and migrates the database at `location`.
    ///
    /// # Errors
    /// If it cannot be opened, reached or migrated; the message names the location.
    pub async fn open(location: &Location, durability: Durability) -> Result<Self, OpenError> {
        match location {
            Location::Sqlite(path) => Store::open_with(path, durability)
                .await
                .map(Self::Sqlite)
                .map_err(|source| OpenError::Sqlite {
                    path: path.display().to_string(),
                    source,
                }),
            Location::Postgres(url) => PgStore::connect_with(url, durability)
                .await
                .map(Self::Postgres)
                .map_err(|source| OpenError::Postgres {
                    url: redact_url(url),
                    source,
                }),
        }
    }

    /// Opens a SQLite file with [`Durability::Full`].
    ///
    /// # Errors
    /// As [`open`](Self::open).
    pub async fn sqlite(path: impl AsRef<Path>) -> Result<Self, OpenError> {
        Self::open(
            &Location::Sqlite(path.as_ref().to_owned()),
            Durability::Full,
        )
        .await
    }
}

/// Runs the same expression on whichever backend `$db` is.
macro_rules! on_backend {
    ($db:expr, $s:ident => $call:expr) => {
        match $db {
            Database::Sqlite($s) => $call,
            Database::Postgres($s) => $call,
        }
    };
}

impl Storage for Database {
    async fn snapshot(&self, now: UnixMillis) -> Result<Snapshot, StoreError> {
        on_backend!(self, s => s.snapshot(now).await)
    }

    async fn directory(&self) -> Result<Snapshot, StoreError> {
        on_backend!(self, s => s.directory().await)
    }

    async fn apply(&self, persists: &[Vec<Write>]) -> Result<Vec<Committed>, StoreError> {
        on_backend!(self, s => s.apply(persists).await)
    }

    async fn backlog(
        &self,
        user: UserId,
        device: DeviceId,
        after: MessageId,
        limit: usize,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        on_backend!(self, s => s.backlog(user, device, after, limit).await)
    }

    async fn history(
        &self,
        conv: ConvId,
        before: Option<MessageId>,
        limit: usize,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        on_backend!(self, s => s.history(conv, before, limit).await)
    }

    async fn password_hash(&self, user: UserId) -> Result<Option<String>, StoreError> {
        on_backend!(self, s => s.password_hash(user).await)
    }

    async fn find_token(&self, hash: [u8; 32]) -> Result<Option<TokenRecord>, StoreError> {
        on_backend!(self, s => s.find_token(hash).await)
    }

    async fn message(&self, id: MessageId) -> Result<Option<StoredMessage>, StoreError> {
        on_backend!(self, s => s.message(id).await)
    }

    async fn committed(
        &self,
        after: MessageId,
        up_to: Option<MessageId>,
        limit: usize,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        on_backend!(self, s => s.committed(after, up_to, limit).await)
    }

    async fn audit_log(
        &self,
        conv: ConvId,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<(u64, AuditRecord)>, StoreError> {
        on_backend!(self, s => s.audit_log(conv, before, limit).await)
    }

    async fn unread(
        &self,
        user: UserId,
        convs: &[(ConvId, MessageId)],
        up_to: Option<MessageId>,
        cap: u32,
    ) -> Result<Vec<UnreadTally>, StoreError> {
        on_backend!(self, s => s.unread(user, convs, up_to, cap).await)
    }

    async fn search(
        &self,
        user: UserId,
        words: &[String],
        before: Option<MessageId>,
        limit: usize,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        on_backend!(self, s => s.search(user, words, before, limit).await)
    }

    async fn close(&self) {
        on_backend!(self, s => s.close().await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_are_sqlite_files_unless_postgres_urls() {
        assert_eq!(
            Location::parse("chat.db"),
            Location::Sqlite("chat.db".into())
        );
        assert_eq!(
            Location::parse("sqlite:///var/lib/chat.db"),
            Location::Sqlite("/var/lib/chat.db".into())
        );
        assert_eq!(
            Location::parse("sqlite:chat.db"),
            Location::Sqlite("chat.db".into())
        );
        for url in ["postgres://u@h/db", "postgresql://u@h/db"] {
            assert_eq!(Location::parse(url), Location::Postgres(url.into()));
        }
    }

    #[test]
    fn passwords_never_show() {
        let shown = Location::parse("postgres://chat:s3cret@db:5432/chat?password=s3cret&x=1");
        assert_eq!(
            shown.to_string(),
            "postgres://chat@db:5432/chat?password=…&x=1"
        );
        assert_eq!(redact_url("postgres://db/chat"), "postgres://db/chat");
        assert_eq!(
            redact_url("postgres://a:b@c@host/db"),
            "postgres://a@host/db",
            "the last @ ends the user part"
        );
        assert_eq!(redact_url("not a url"), "not a url");
    }
}
