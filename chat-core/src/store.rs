//! [`Store`]: durable state in SQLite through sqlx. The only module that knows SQL.
//!
//! The schema is in `migrations/sqlite/` (embedded with `sqlx::migrate!`, applied at open). The
//! database runs in WAL mode; with the default [`Durability::Full`] a committed transaction
//! survives a crash of the process or the machine, with [`Durability::Process`] a crash of the
//! process. Writes arrive in batches from the engine's writer task
//! (group commit): one transaction per batch, run by the [`writer`] thread on a connection of
//! its own through rusqlite (cached prepared statements, no thread hop per statement). Reads
//! and migrations go through a small sqlx pool.
//!
//! Ids and times are `u64` in the hub and `INTEGER` (i64) in SQLite. Server-assigned values
//! are converted checked ([`int`], [`uint`]): a value out of range is a typed error, never a
//! wrapped number. Client message ids are the client's own 64 bits and are stored bit for bit
//! ([`client_id`]).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::TryStreamExt;
use rusqlite::OpenFlags;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;

mod gather;
mod staged;
mod writer;

use crate::names;
use crate::storage::Storage;
use crate::{
    AuditRecord, ClientMsgId, Committed, ConvId, ConvKind, ConvRow, DeviceId, DeviceRow, MemberRow,
    MessageId, MessageKind, ModAction, ReadMarkerRow, Role, Snapshot, Standing, StandingRow,
    StoredMessage, TokenRecord, UnixMillis, UnreadTally, UserId, UserRow, Write,
};

/// How a [`Role`] is stored.
pub(crate) fn role_code(role: Role) -> i64 {
    match role {
        Role::Member => 0,
        Role::Moderator => 1,
        Role::Owner => 2,
    }
}

/// A stored role code (an unknown one reads as a plain member).
pub(crate) fn role_from(code: i64) -> Role {
    match code {
        1 => Role::Moderator,
        2 => Role::Owner,
        _ => Role::Member,
    }
}

/// How a [`ModAction`] is stored.
pub(crate) fn action_code(action: ModAction) -> i64 {
    match action {
        ModAction::Kicked => 0,
        ModAction::Banned => 1,
        ModAction::Unbanned => 2,
        ModAction::Muted => 3,
        ModAction::Unmuted => 4,
        ModAction::Opped => 5,
        ModAction::Deopped => 6,
        ModAction::Redacted => 7,
        ModAction::Disabled => 8,
        ModAction::Enabled => 9,
    }
}

pub(crate) fn action_from(code: i64) -> Result<ModAction, StoreError> {
    Ok(match code {
        0 => ModAction::Kicked,
        1 => ModAction::Banned,
        2 => ModAction::Unbanned,
        3 => ModAction::Muted,
        4 => ModAction::Unmuted,
        5 => ModAction::Opped,
        6 => ModAction::Deopped,
        7 => ModAction::Redacted,
        8 => ModAction::Disabled,
        9 => ModAction::Enabled,
        _ => {
            return Err(StoreError::OutOfRange {
                what: "audit action",
                value: code.into(),
            })
        }
    })
}

/// A storage failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database failed.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    /// The database failed under the writer connection.
    #[error(transparent)]
    Sqlite(rusqlite::Error),
    /// The schema could not be brought up to date.
    #[error(transparent)]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The database file is damaged (SQLite's `quick_check` found problems).
    #[error(
        "the database is damaged ({0}); restore a backup, or recover what is readable with \
         `sqlite3 FILE .recover | sqlite3 NEW_FILE`"
    )]
    Damaged(String),
    /// The database file was deleted or replaced while the server ran: writes would go to a
    /// file no one will open again.
    #[error("the database file {0} was deleted or replaced while running; restart the server")]
    Replaced(String),
    /// A stored number is outside the range its type allows (a damaged database).
    #[error("{what} {value} is out of range")]
    OutOfRange {
        /// What the number is.
        what: &'static str,
        /// The number as stored.
        value: i128,
    },
    /// PostgreSQL's `id_blocks` sequence handed out a block of user, conversation and device
    /// ids past 2^53 ([`IdBlock::MAX_ID`](crate::IdBlock::MAX_ID)): ids there would not be exact JavaScript numbers,
    /// so no node can start on this database.
    #[error(
        "id block {0} would pass 2^53: every block of user, conversation and device ids is used"
    )]
    IdBlocksUsedUp(u64),
}

/// Each persist's report, from its position and duplicate.
pub(crate) fn committed(
    positions: impl IntoIterator<Item = MessageId>,
    duplicates: Vec<Option<(MessageId, UnixMillis)>>,
) -> Vec<Committed> {
    positions
        .into_iter()
        .zip(duplicates)
        .map(|(position, duplicate)| Committed {
            position,
            duplicate,
            adopted: None,
            taken: None,
        })
        .collect()
}

/// A server-assigned number as SQLite stores it.
pub(crate) fn int(what: &'static str, value: u64) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| StoreError::OutOfRange {
        what,
        value: value.into(),
    })
}

/// A stored number as the server uses it.
pub(crate) fn uint(what: &'static str, value: i64) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| StoreError::OutOfRange {
        what,
        value: value.into(),
    })
}

/// A client message id, stored bit for bit: clients choose all 64 bits.
pub(crate) fn client_id(id: ClientMsgId) -> i64 {
    i64::from_ne_bytes(id.0.to_ne_bytes())
}

pub(crate) fn client_id_from(stored: i64) -> ClientMsgId {
    ClientMsgId(u64::from_ne_bytes(stored.to_ne_bytes()))
}

/// How long a connection waits for another one's lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// WAL pages (4 KiB) after which the writer's own commit checkpoints (copies the WAL back into
/// the database file, then rewinds it). The checkpoint thread beside the writer
/// (`writer::Checkpointer`) copies pages every 100 ms while commits come, so this checkpoint
/// finds little left to copy; it bounds the WAL (256 MiB) and rewinds it, which only the
/// writer can do without blocking.
///
/// While commits keep coming the WAL never rewinds by itself: a commit rewinds it only if the
/// checkpoint thread had copied everything when it began, and under load a newer commit is
/// always waiting. So this checkpoint runs once per this many pages, and however little it
/// copies it holds the commits behind it for three fsyncs (the WAL, the database file, the
/// rewound WAL's header: 5–15 ms on this project's machine). At 16,000 pages that was every
/// ~2 s at 10k DMs/s, and most of their p99 (docs/BENCHMARKS.md, eleventh pass). A server
/// under little load rewinds at its next commit after the thread caught up, whatever this is.
/// At SQLite's default of 1,000 a batch's few hundred dirty index pages were copied back
/// every few commits (a quarter of the writer's CPU); at 4,000, with no checkpoint thread,
/// each checkpoint held up the commits behind it for tens of milliseconds.
const WAL_CHECKPOINT_PAGES: u32 = 65_536;

/// Columns of a message row, in the order every query selects them.
pub(crate) type MessageRow = (i64, i64, i64, i64, i64, i64, String, i64, Option<i64>);

const MESSAGE_COLUMNS: &str =
    "m.id, m.conv_id, m.sender, m.device, m.client_msg_id, m.sent_at, m.body, m.kind, m.target";

/// How a [`MessageKind`] is stored: its code and target.
pub(crate) fn kind_code(kind: MessageKind) -> Result<(i64, Option<i64>), StoreError> {
    Ok(match kind {
        MessageKind::Message => (0, None),
        MessageKind::Edited => (1, None),
        MessageKind::Deleted => (2, None),
        MessageKind::Edit { target } => (3, Some(int("message id", target.0)?)),
        MessageKind::Delete { target, redacted } => (
            if redacted { 5 } else { 4 },
            Some(int("message id", target.0)?),
        ),
    })
}

pub(crate) fn kind_from(code: i64, target: Option<i64>) -> Result<MessageKind, StoreError> {
    let target = || -> Result<MessageId, StoreError> {
        Ok(MessageId(uint("message id", target.unwrap_or(-1))?))
    };
    Ok(match code {
        0 => MessageKind::Message,
        1 => MessageKind::Edited,
        2 => MessageKind::Deleted,
        3 => MessageKind::Edit { target: target()? },
        4 | 5 => MessageKind::Delete {
            target: target()?,
            redacted: code == 5,
        },
        _ => {
            return Err(StoreError::OutOfRange {
                what: "message kind",
                value: code.into(),
            })
        }
    })
}

/// Turns SQLite's memory statistics off for this process. With them on (SQLite's default),
/// every allocation SQLite makes, in every thread, takes one process-wide mutex: the readers
/// decoding rows on several threads (sqlx copies each value it reads) queue on it, and a
/// burst's catch-up from storage spent half its time in the kernel waking them
/// (docs/BENCHMARKS.md, sixth pass). Nothing in this crate reads the statistics.
///
/// Returns whether it took effect: it cannot once SQLite is initialised (at the first
/// database opened), and it holds for every SQLite user in the process, so it is the
/// application's choice: `chat-server` makes it at start.
///
/// # Safety
/// No other thread may use SQLite while this runs (SQLite's `sqlite3_config` is not
/// thread-safe): call it first thing in `main`, before any thread that may open a database.
pub unsafe fn disable_sqlite_memory_statistics() -> bool {
    // SAFETY: the caller guarantees no concurrent SQLite use; SQLITE_CONFIG_MEMSTATUS takes
    // one `int`, passed as the variadic argument's C type. Once SQLite is initialised the call
    // changes nothing and returns SQLITE_MISUSE.
    let rc = unsafe {
        rusqlite::ffi::sqlite3_config(
            rusqlite::ffi::SQLITE_CONFIG_MEMSTATUS,
            std::ffi::c_int::from(0u8),
        )
    };
    rc == rusqlite::ffi::SQLITE_OK
}

/// How far a commit goes before it counts as stored.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Durability {
    /// `synchronous = FULL`: every commit is fsynced; it survives a crash of the process or of
    /// the machine (power loss). The default.
    #[default]
    Full,
    /// `synchronous = NORMAL` (in WAL mode): a commit reaches the operating system before it
    /// returns, so it survives the process being killed (`kill -9`); a power loss or kernel
    /// crash may lose the last commits. Far fewer fsyncs: lower latency and CPU.
    Process,
}

/// The database: one SQLite file (or memory), written by one connection on a thread of its
/// own, read through a small connection pool. Clones share both.
#[derive(Clone, Debug)]
pub struct Store {
    pub(crate) pool: SqlitePool,
    writer: writer::Writer,
}

/// The database file as it was opened.
#[derive(Debug)]
struct DbFile {
    path: PathBuf,
    identity: (u64, u64),
}

impl DbFile {
    /// Fails if the file at `path` is gone or is another file than the one opened.
    fn check(&self) -> Result<(), StoreError> {
        match file_identity(&self.path) {
            Ok(identity) if identity == self.identity => Ok(()),
            _ => Err(StoreError::Replaced(self.path.display().to_string())),
        }
    }
}

/// `(device, inode)` of a file.
#[cfg(unix)]
fn file_identity(path: &Path) -> std::io::Result<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path)?;
    Ok((meta.dev(), meta.ino()))
}

#[cfg(not(unix))]
fn file_identity(path: &Path) -> std::io::Result<(u64, u64)> {
    std::fs::metadata(path).map(|_| (0, 0))
}

/// The writer's errors: SQLite's "corrupt" and "not a database" as [`StoreError::Damaged`],
/// others as they are.
impl From<rusqlite::Error> for StoreError {
    fn from(error: rusqlite::Error) -> Self {
        if let rusqlite::Error::SqliteFailure(failure, message) = &error {
            if matches!(
                failure.code,
                rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase
            ) {
                return Self::Damaged(message.clone().unwrap_or_else(|| failure.to_string()));
            }
        }
        Self::Sqlite(error)
    }
}

/// SQLite's "corrupt" and "not a database" errors as [`StoreError::Damaged`]; others as they
/// are.
fn damaged_or(error: sqlx::Error) -> StoreError {
    if let sqlx::Error::Database(db) = &error {
        let primary = db
            .code()
            .and_then(|code| code.parse::<i32>().ok())
            .map(|code| code & 0xff);
        // SQLITE_CORRUPT, SQLITE_NOTADB.
        if matches!(primary, Some(11 | 26)) {
            return StoreError::Damaged(db.message().to_owned());
        }
    }
    StoreError::Database(error)
}

/// Creates the database file readable and writable by its owner only (0600); SQLite gives
/// its WAL and shared-memory files the same mode.
fn create_private(path: &Path) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

impl Store {
    /// Opens (creating if missing) the database file at `path` and migrates it.
    ///
    /// # Errors
    /// If the file cannot be opened or migrated.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::open_with(path, Durability::Full).await
    }

    /// Opens (creating if missing, with mode 0600) the database file at `path` with the given
    /// durability, checks its integrity (`PRAGMA quick_check`) and migrates it.
    ///
    /// # Errors
    /// If the file cannot be opened or migrated, or is damaged ([`StoreError::Damaged`]).
    pub async fn open_with(
        path: impl AsRef<Path>,
        durability: Durability,
    ) -> Result<Self, StoreError> {
        let path = path.as_ref();
        create_private(path).map_err(|e| StoreError::Database(sqlx::Error::Io(e)))?;
        let (synchronous, synchronous_pragma) = match durability {
            Durability::Full => (SqliteSynchronous::Full, "FULL"),
            Durability::Process => (SqliteSynchronous::Normal, "NORMAL"),
        };
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(synchronous)
            // A deleted message's text is overwritten in the file, not left in free space.
            .pragma("secure_delete", "ON")
            .busy_timeout(BUSY_TIMEOUT);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .map_err(damaged_or)?;
        let problems: Vec<String> = sqlx::query_scalar("PRAGMA quick_check(20)")
            .fetch_all(&pool)
            .await
            .map_err(damaged_or)?;
        if problems != ["ok"] {
            pool.close().await;
            return Err(StoreError::Damaged(problems.join("; ")));
        }
        let identity = file_identity(path).map_err(|e| StoreError::Database(sqlx::Error::Io(e)))?;
        let file = DbFile {
            path: path.to_owned(),
            identity,
        };
        // The writer connection opens the file the pool created (never creating one: a file
        // deleted meanwhile is an error, not a new empty database), with the same settings;
        // it checkpoints the WAL every WAL_CHECKPOINT_PAGES instead of SQLite's 1,000.
        let writer = writer::Target {
            path: path.to_owned(),
            flags: OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            pragmas: format!(
                "PRAGMA journal_mode = WAL; PRAGMA synchronous = {synchronous_pragma}; \
                 PRAGMA secure_delete = ON; PRAGMA foreign_keys = ON; \
                 PRAGMA wal_autocheckpoint = {WAL_CHECKPOINT_PAGES}; PRAGMA temp_store = MEMORY;"
            ),
            file: Some(Arc::new(file)),
        };
        Self::migrate(pool, writer).await
    }

    /// A private in-memory database, gone when the store is dropped.
    ///
    /// # Errors
    /// If SQLite cannot be started.
    pub async fn open_in_memory() -> Result<Self, StoreError> {
        // SQLite's `memdb` VFS shares a database whose name starts with '/' among the
        // connections of the process that open it (the pool's and the writer's), with the usual
        // locking; it is freed with the last one. Its rollback journal is kept in memory too.
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "/chat-memory-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let options = SqliteConnectOptions::new()
            .filename(&name)
            .vfs("memdb")
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Memory)
            .busy_timeout(BUSY_TIMEOUT);
        // One reading connection that never expires: it keeps the database alive.
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await?;
        let writer = writer::Target {
            path: PathBuf::from(format!("file:{name}?vfs=memdb")),
            flags: OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_URI
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            pragmas: "PRAGMA journal_mode = MEMORY; PRAGMA foreign_keys = ON; \
                      PRAGMA temp_store = MEMORY;"
                .to_owned(),
            file: None,
        };
        Self::migrate(pool, writer).await
    }

    /// Migrates the schema through the pool, then opens the writer connection.
    async fn migrate(pool: SqlitePool, writer: writer::Target) -> Result<Self, StoreError> {
        sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
        let writer = match writer::Writer::start(writer).await {
            Ok(writer) => writer,
            Err(error) => {
                pool.close().await;
                return Err(error);
            }
        };
        Ok(Self { pool, writer })
    }
}

impl Storage for Store {
    async fn snapshot(&self, now: UnixMillis) -> Result<Snapshot, StoreError> {
        // Housekeeping, not needed to start: a full disk must not keep the server down.
        let expired = sqlx::query("DELETE FROM tokens WHERE expires_at <= ?")
            .bind(int("time", now)?)
            .execute(&self.pool)
            .await;
        if let Err(error) = expired {
            tracing::warn!(%error, "cannot drop expired tokens now");
        }
        self.directory().await
    }

    async fn directory(&self) -> Result<Snapshot, StoreError> {
        snapshot_from(snapshot_rows!(&self.pool).await?)
    }

    async fn apply(&self, persists: &[Vec<Write>]) -> Result<Vec<Committed>, StoreError> {
        self.writer.apply(persists).await
    }

    async fn backlog(
        &self,
        user: UserId,
        device: DeviceId,
        after: MessageId,
        limit: usize,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS} FROM members AS mb \
             JOIN messages AS m ON m.conv_id = mb.conv_id AND m.id > max(mb.since, ?2) \
             WHERE mb.user_id = ?1 AND m.device != ?3 \
             AND m.kind != 2 AND NOT (m.kind = 3 AND m.body = '') ORDER BY m.id LIMIT ?4"
        );
        let rows = sqlx::query_as::<_, MessageRow>(&sql)
            .bind(int("user id", user.0)?)
            .bind(int("message id", after.0)?)
            .bind(int("device id", device.0)?)
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter().map(message).collect()
    }

    async fn history(
        &self,
        conv: ConvId,
        before: Option<MessageId>,
        limit: usize,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages AS m \
             WHERE m.conv_id = ?1 AND m.id < ?2 AND m.kind < 3 ORDER BY m.id DESC LIMIT ?3"
        );
        let before = match before {
            Some(before) => int("message id", before.0)?,
            None => i64::MAX,
        };
        let rows = sqlx::query_as::<_, MessageRow>(&sql)
            .bind(int("conversation id", conv.0)?)
            .bind(before)
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter().map(message).collect()
    }

    async fn password_hash(&self, user: UserId) -> Result<Option<String>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT password_hash FROM users WHERE id = ?")
                .bind(int("user id", user.0)?)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    async fn find_token(&self, hash: [u8; 32]) -> Result<Option<TokenRecord>, StoreError> {
        let row = sqlx::query_as::<_, (i64, i64, i64)>(
            "SELECT user_id, device_id, expires_at FROM tokens WHERE hash = ?",
        )
        .bind(&hash[..])
        .fetch_optional(&self.pool)
        .await?;
        row.map(|(user, device, expires_at)| {
            Ok(TokenRecord {
                user: UserId(uint("user id", user)?),
                device: DeviceId(uint("device id", device)?),
                expires_at: uint("time", expires_at)?,
            })
        })
        .transpose()
    }

    async fn committed(
        &self,
        after: MessageId,
        up_to: Option<MessageId>,
        limit: usize,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages AS m WHERE m.id > ? AND m.id <= ? \
             ORDER BY m.id LIMIT ?"
        );
        let up_to = up_to.map_or(Ok(i64::MAX), |id| int("message id", id.0))?;
        sqlx::query_as::<_, MessageRow>(&sql)
            .bind(int("message id", after.0)?)
            .bind(up_to)
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .await?
            .into_iter()
            .map(message)
            .collect()
    }

    async fn message(&self, id: MessageId) -> Result<Option<StoredMessage>, StoreError> {
        let sql = format!("SELECT {MESSAGE_COLUMNS} FROM messages AS m WHERE m.id = ?");
        sqlx::query_as::<_, MessageRow>(&sql)
            .bind(int("message id", id.0)?)
            .fetch_optional(&self.pool)
            .await?
            .map(message)
            .transpose()
    }

    async fn audit_log(
        &self,
        conv: ConvId,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<(u64, AuditRecord)>, StoreError> {
        let before = match before {
            Some(before) => int("audit position", before)?,
            None => i64::MAX,
        };
        let rows = sqlx::query_as::<_, AuditRow>(
            "SELECT id, conv_id, actor, target, action, reason, at FROM audit_log \
             WHERE conv_id = ?1 AND id < ?2 ORDER BY id DESC LIMIT ?3",
        )
        .bind(int("conversation id", conv.0)?)
        .bind(before)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(audit_record).collect()
    }

    async fn unread(
        &self,
        user: UserId,
        convs: &[(ConvId, MessageId)],
        up_to: Option<MessageId>,
        cap: u32,
    ) -> Result<Vec<UnreadTally>, StoreError> {
        let user = int("user id", user.0)?;
        let up_to = match up_to {
            Some(up_to) => int("message id", up_to.0)?,
            None => i64::MAX,
        };
        let mut conn = self.pool.acquire().await?;
        let mut tallies = Vec::with_capacity(convs.len());
        for &(conv, after) in convs {
            // Newest first from the (conv_id, id) index, at most `cap` rows.
            let (count, latest) = sqlx::query_as::<_, (i64, Option<i64>)>(
                "SELECT count(*), max(id) FROM (SELECT id FROM messages \
                 WHERE conv_id = ?1 AND id > ?2 AND id <= ?3 AND kind < 2 AND sender != ?4 \
                 ORDER BY id DESC LIMIT ?5)",
            )
            .bind(int("conversation id", conv.0)?)
            .bind(int("message id", after.0)?)
            .bind(up_to)
            .bind(user)
            .bind(i64::from(cap))
            .fetch_one(&mut *conn)
            .await?;
            tallies.push(UnreadTally {
                conv,
                count: u32::try_from(count).map_err(|_| StoreError::OutOfRange {
                    what: "unread count",
                    value: count.into(),
                })?,
                latest: MessageId(uint("message id", latest.unwrap_or(0))?),
            });
        }
        Ok(tallies)
    }

    async fn search(
        &self,
        user: UserId,
        words: &[String],
        before: Option<MessageId>,
        limit: usize,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        let before = match before {
            Some(before) => int("message id", before.0)?,
            None => i64::MAX,
        };
        let user = int("user id", user.0)?;
        // One read transaction: the index and the messages above it seen at one moment.
        let mut tx = self.pool.begin().await?;
        let indexed: i64 = sqlx::query_scalar("SELECT up_to FROM search_indexed")
            .fetch_one(&mut *tx)
            .await?;
        // The newest messages, not in the index yet (the writer indexes them in batches):
        // at most a batch and a commit's worth, matched here by their words.
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages AS m CROSS JOIN members AS mb \
             WHERE m.id > ?1 AND m.id < ?2 AND m.kind < 2 \
               AND mb.user_id = ?3 AND mb.conv_id = m.conv_id \
             ORDER BY m.id DESC"
        );
        let wanted: Vec<String> = words.iter().map(|w| w.to_lowercase()).collect();
        let mut found = Vec::new();
        let mut waiting = sqlx::query_as::<_, MessageRow>(&sql)
            .bind(indexed)
            .bind(before)
            .bind(user)
            .fetch(&mut *tx);
        while found.len() < limit {
            let Some(row) = waiting.try_next().await? else {
                break;
            };
            let text: Vec<String> = names::words(&row.6).collect();
            if wanted.iter().all(|w| text.contains(w)) {
                found.push(message(row)?);
            }
        }
        drop(waiting);
        if found.len() == limit {
            return Ok(found);
        }
        // Then the index in descending id order, each match looked up by id and by
        // membership: the first matches wanted end the scan.
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages_fts AS f \
             CROSS JOIN messages AS m CROSS JOIN members AS mb \
             WHERE messages_fts MATCH ?1 AND f.rowid < ?2 AND f.rowid <= ?3 \
               AND m.id = f.rowid AND m.kind < 2 \
               AND mb.user_id = ?4 AND mb.conv_id = m.conv_id \
             ORDER BY f.rowid DESC LIMIT ?5"
        );
        let rows = sqlx::query_as::<_, MessageRow>(&sql)
            .bind(fts_query(words))
            .bind(before)
            .bind(indexed)
            .bind(user)
            .bind(i64::try_from(limit - found.len()).unwrap_or(i64::MAX))
            .fetch_all(&mut *tx)
            .await?;
        for row in rows {
            found.push(message(row)?);
        }
        Ok(found)
    }

    async fn close(&self) {
        self.writer.close().await;
        self.pool.close().await;
    }
}

/// An FTS5 query that holds every one of `words`: each a quoted string (never an operator).
fn fts_query(words: &[String]) -> String {
    let quoted: Vec<String> = words
        .iter()
        .map(|w| format!("\"{}\"", w.replace('"', "\"\"")))
        .collect();
    quoted.join(" ")
}

/// A `convs` row: id, room name, invite-only, the two users of a direct conversation.
pub(crate) type ConvRowSql = (i64, Option<String>, bool, Option<i64>, Option<i64>);

/// Reads the rows of a snapshot from `$pool` (a SQLite or a PostgreSQL pool: the statements
/// are the same in both dialects), as an `async` block yielding
/// `Result<SnapshotRows, StoreError>`.
macro_rules! snapshot_rows {
    ($pool:expr) => {
        async {
            let pool = $pool;
            Ok::<_, $crate::store::StoreError>($crate::store::SnapshotRows {
                users: sqlx::query_as("SELECT id, name, display_name FROM users ORDER BY id")
                    .fetch_all(pool)
                    .await?,
                convs: sqlx::query_as(
                    "SELECT id, room_name, invite_only, user_a, user_b FROM convs ORDER BY id",
                )
                .fetch_all(pool)
                .await?,
                members: sqlx::query_as(
                    "SELECT conv_id, user_id, since FROM members ORDER BY conv_id, user_id",
                )
                .fetch_all(pool)
                .await?,
                devices: sqlx::query_as(
                    "SELECT id, user_id, name, cursor, last_seen FROM devices ORDER BY id",
                )
                .fetch_all(pool)
                .await?,
                standings: sqlx::query_as(
                    "SELECT conv_id, user_id, role, banned, muted FROM standings \
                     ORDER BY conv_id, user_id",
                )
                .fetch_all(pool)
                .await?,
                operators: sqlx::query_scalar("SELECT user_id FROM operators ORDER BY user_id")
                    .fetch_all(pool)
                    .await?,
                topics: sqlx::query_as("SELECT id, topic FROM convs WHERE topic <> '' ORDER BY id")
                    .fetch_all(pool)
                    .await?,
                disabled: sqlx::query_scalar("SELECT id FROM users WHERE disabled ORDER BY id")
                    .fetch_all(pool)
                    .await?,
                read_markers: sqlx::query_as(
                    "SELECT user_id, conv_id, up_to FROM read_markers ORDER BY user_id, conv_id",
                )
                .fetch_all(pool)
                .await?,
                last_message: sqlx::query_scalar("SELECT max(id) FROM messages")
                    .fetch_one(pool)
                    .await?,
            })
        }
    };
}
pub(crate) use snapshot_rows;

/// The rows a snapshot is made of, as both SQL backends read them.
pub(crate) struct SnapshotRows {
    pub users: Vec<(i64, String, String)>,
    pub convs: Vec<ConvRowSql>,
    pub members: Vec<(i64, i64, i64)>,
    pub devices: Vec<(i64, i64, String, i64, i64)>,
    pub standings: Vec<(i64, i64, i64, bool, bool)>,
    pub operators: Vec<i64>,
    pub topics: Vec<(i64, String)>,
    pub disabled: Vec<i64>,
    pub read_markers: Vec<(i64, i64, i64)>,
    pub last_message: Option<i64>,
}

/// Converts the rows of a snapshot into a [`Snapshot`], checking every number.
pub(crate) fn snapshot_from(rows: SnapshotRows) -> Result<Snapshot, StoreError> {
    let SnapshotRows {
        users,
        convs,
        members,
        devices,
        standings,
        operators,
        topics,
        disabled,
        read_markers,
        last_message,
    } = rows;
    let mut snapshot = Snapshot {
        last_message: MessageId(uint("message id", last_message.unwrap_or(0))?),
        ..Snapshot::default()
    };
    for (id, name, display_name) in users {
        let id = UserId(uint("user id", id)?);
        snapshot.users.push(UserRow {
            id,
            name,
            display_name,
        });
    }
    for (id, room, invite_only, a, b) in convs {
        let kind = match (room, a, b) {
            (Some(name), _, _) => ConvKind::Room { name, invite_only },
            (None, Some(a), Some(b)) => ConvKind::Direct {
                a: UserId(uint("user id", a)?),
                b: UserId(uint("user id", b)?),
            },
            _ => continue,
        };
        let id = ConvId(uint("conversation id", id)?);
        snapshot.convs.push(ConvRow { id, kind });
    }
    for (conv, user, since) in members {
        snapshot.members.push(MemberRow {
            conv: ConvId(uint("conversation id", conv)?),
            user: UserId(uint("user id", user)?),
            since: MessageId(uint("message id", since)?),
        });
    }
    for (id, user, name, cursor, last_seen) in devices {
        snapshot.devices.push(DeviceRow {
            id: DeviceId(uint("device id", id)?),
            user: UserId(uint("user id", user)?),
            name,
            cursor: MessageId(uint("message id", cursor)?),
            last_seen: uint("time", last_seen)?,
        });
    }
    for (conv, user, role, banned, muted) in standings {
        snapshot.standings.push(StandingRow {
            conv: ConvId(uint("conversation id", conv)?),
            user: UserId(uint("user id", user)?),
            standing: Standing {
                role: role_from(role),
                banned,
                muted,
            },
        });
    }
    for user in operators {
        snapshot.operators.push(UserId(uint("user id", user)?));
    }
    for user in disabled {
        snapshot.disabled.push(UserId(uint("user id", user)?));
    }
    for (conv, topic) in topics {
        snapshot
            .topics
            .push((ConvId(uint("conversation id", conv)?), topic));
    }
    for (user, conv, up_to) in read_markers {
        snapshot.read_markers.push(ReadMarkerRow {
            user: UserId(uint("user id", user)?),
            conv: ConvId(uint("conversation id", conv)?),
            up_to: MessageId(uint("message id", up_to)?),
        });
    }
    Ok(snapshot)
}

/// Columns of an audit log row: position, conversation, actor, target, action, reason, time.
pub(crate) type AuditRow = (i64, i64, i64, i64, i64, String, i64);

/// An audit log row, its numbers checked, with its position.
pub(crate) fn audit_record(
    (id, conv, actor, target, action, reason, at): AuditRow,
) -> Result<(u64, AuditRecord), StoreError> {
    let record = AuditRecord {
        conv: ConvId(uint("conversation id", conv)?),
        actor: UserId(uint("user id", actor)?),
        target: UserId(uint("user id", target)?),
        action: action_from(action)?,
        reason,
        at: uint("time", at)?,
    };
    Ok((uint("audit position", id)?, record))
}

pub(crate) fn message(
    (id, conv, sender, device, client_msg_id, sent_at, text, kind, target): MessageRow,
) -> Result<StoredMessage, StoreError> {
    Ok(StoredMessage {
        id: MessageId(uint("message id", id)?),
        conv: ConvId(uint("conversation id", conv)?),
        sender: UserId(uint("user id", sender)?),
        device: DeviceId(uint("device id", device)?),
        client_msg_id: client_id_from(client_msg_id),
        sent_at: uint("time", sent_at)?,
        text,
        kind: kind_from(kind, target)?,
    })
}
