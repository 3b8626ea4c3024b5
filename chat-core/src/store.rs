//! [`Store`]: durable state in SQLite through sqlx. The only module that knows SQL.
//!
//! The schema is in `migrations/sqlite/` (embedded with `sqlx::migrate!`, applied at open). The
//! database runs in WAL mode; with the default [`Durability::Full`] a committed transaction
//! survives a crash of the process or the machine, with [`Durability::Process`] a crash of the
//! process. Writes arrive in batches from the engine's writer task
//! (group commit): one transaction per batch, messages inserted by multi-row statements.
//!
//! Ids and times are `u64` in the hub and `INTEGER` (i64) in SQLite. Server-assigned values
//! are converted checked ([`int`], [`uint`]): a value out of range is a typed error, never a
//! wrapped number. Client message ids are the client's own 64 bits and are stored bit for bit
//! ([`client_id`]).

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Connection, QueryBuilder, Sqlite, SqliteConnection, SqlitePool};

use crate::storage::Storage;
use crate::{
    AuditRecord, ClientMsgId, ConvId, ConvKind, ConvRow, DeviceId, DeviceRow, MemberRow, MessageId,
    MessageKind, ModAction, ReadMarkerRow, Role, Snapshot, Standing, StandingRow, StoredMessage,
    TokenRecord, UnixMillis, UnreadTally, UserId, UserRow, Write,
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

/// Messages per multi-row INSERT (7 parameters each, well under SQLite's 32,766).
const INSERT_CHUNK: usize = 500;

/// Columns of a message row, in the order every query selects them.
pub(crate) type MessageRow = (i64, i64, i64, i64, i64, i64, String, i64, Option<i64>);

type Duplicates = Vec<Option<(MessageId, UnixMillis)>>;

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

/// The database: a small connection pool over one SQLite file (or memory).
#[derive(Clone, Debug)]
pub struct Store {
    pub(crate) pool: SqlitePool,
    /// The file and its identity at open, checked before each write (`None` in memory).
    file: Option<Arc<DbFile>>,
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
        let synchronous = match durability {
            Durability::Full => SqliteSynchronous::Full,
            Durability::Process => SqliteSynchronous::Normal,
        };
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(synchronous)
            // A deleted message's text is overwritten in the file, not left in free space.
            .pragma("secure_delete", "ON")
            .busy_timeout(Duration::from_secs(10));
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
        Self::migrate(pool, Some(Arc::new(file))).await
    }

    /// A private in-memory database, gone when the store is dropped.
    ///
    /// # Errors
    /// If SQLite cannot be started.
    pub async fn open_in_memory() -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str("sqlite::memory:")?;
        // One connection that never expires: every connection would be a separate database.
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await?;
        Self::migrate(pool, None).await
    }

    async fn migrate(pool: SqlitePool, file: Option<Arc<DbFile>>) -> Result<Self, StoreError> {
        sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
        Ok(Self { pool, file })
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
        let users = sqlx::query_as::<_, (i64, String, String)>(
            "SELECT id, name, display_name FROM users ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?;
        let convs = sqlx::query_as::<_, ConvRowSql>(
            "SELECT id, room_name, invite_only, user_a, user_b FROM convs ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?;
        let members = sqlx::query_as::<_, (i64, i64, i64)>(
            "SELECT conv_id, user_id, since FROM members ORDER BY conv_id, user_id",
        )
        .fetch_all(&self.pool)
        .await?;
        let devices = sqlx::query_as::<_, (i64, i64, String, i64, i64)>(
            "SELECT id, user_id, name, cursor, last_seen FROM devices ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?;
        let standings = sqlx::query_as::<_, (i64, i64, i64, bool, bool)>(
            "SELECT conv_id, user_id, role, banned, muted FROM standings ORDER BY conv_id, user_id",
        )
        .fetch_all(&self.pool)
        .await?;
        let topics = sqlx::query_as::<_, (i64, String)>(
            "SELECT id, topic FROM convs WHERE topic != '' ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?;
        let operators: Vec<i64> =
            sqlx::query_scalar("SELECT user_id FROM operators ORDER BY user_id")
                .fetch_all(&self.pool)
                .await?;
        let disabled: Vec<i64> =
            sqlx::query_scalar("SELECT id FROM users WHERE disabled ORDER BY id")
                .fetch_all(&self.pool)
                .await?;
        let read_markers = sqlx::query_as::<_, (i64, i64, i64)>(
            "SELECT user_id, conv_id, up_to FROM read_markers ORDER BY user_id, conv_id",
        )
        .fetch_all(&self.pool)
        .await?;
        let last_message: Option<i64> = sqlx::query_scalar("SELECT max(id) FROM messages")
            .fetch_one(&self.pool)
            .await?;
        snapshot_from(SnapshotRows {
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
        })
    }

    async fn apply(&self, persists: &[Vec<Write>]) -> Result<Duplicates, StoreError> {
        if let Some(file) = &self.file {
            file.check()?;
        }
        let mut conn = self.pool.acquire().await?;
        let result = apply_in_transaction(&mut conn, persists).await;
        if result.is_err() {
            // After a failed statement or COMMIT (a full disk: SQLite may or may not have
            // rolled back by itself), the connection's transaction state is unknown; a
            // connection left inside a transaction would hold the write lock while idle in
            // the pool. Closing it ends whatever it holds.
            let _ = conn.detach().close().await;
        }
        result
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
        // The index in descending id order, each match looked up by id and by membership:
        // the first `limit` matches end the scan.
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages_fts AS f \
             CROSS JOIN messages AS m CROSS JOIN members AS mb \
             WHERE messages_fts MATCH ?1 AND f.rowid < ?2 AND m.id = f.rowid AND m.kind < 2 \
               AND mb.user_id = ?3 AND mb.conv_id = m.conv_id \
             ORDER BY f.rowid DESC LIMIT ?4"
        );
        let before = match before {
            Some(before) => int("message id", before.0)?,
            None => i64::MAX,
        };
        let rows = sqlx::query_as::<_, MessageRow>(&sql)
            .bind(fts_query(words))
            .bind(before)
            .bind(int("user id", user.0)?)
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter().map(message).collect()
    }

    async fn close(&self) {
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

/// Applies `persists` in one `BEGIN IMMEDIATE … COMMIT` on `conn`.
async fn apply_in_transaction(
    conn: &mut SqliteConnection,
    persists: &[Vec<Write>],
) -> Result<Duplicates, StoreError> {
    sqlx::query("BEGIN IMMEDIATE").execute(&mut *conn).await?;
    let mut duplicates = vec![None; persists.len()];
    // Consecutive message inserts, with the persist each belongs to, written together.
    let mut run: Vec<(usize, &StoredMessage)> = Vec::new();
    for (index, writes) in persists.iter().enumerate() {
        for write in writes {
            if let Write::InsertMessage(message) = write {
                if message.kind.is_message() {
                    run.push((index, message));
                    continue;
                }
            }
            insert_messages(conn, &run, &mut duplicates).await?;
            run.clear();
            apply_one(conn, write).await?;
        }
    }
    insert_messages(conn, &run, &mut duplicates).await?;
    sqlx::query("COMMIT").execute(&mut *conn).await?;
    Ok(duplicates)
}

/// Inserts messages with multi-row statements; a message whose sender already stored its
/// client message id is skipped, and the original is recorded for its persist.
async fn insert_messages(
    tx: &mut SqliteConnection,
    messages: &[(usize, &StoredMessage)],
    duplicates: &mut [Option<(MessageId, UnixMillis)>],
) -> Result<(), StoreError> {
    for chunk in messages.chunks(INSERT_CHUNK) {
        let mut rows = Vec::with_capacity(chunk.len());
        for (_, m) in chunk {
            rows.push((
                int("message id", m.id.0)?,
                int("conversation id", m.conv.0)?,
                int("user id", m.sender.0)?,
                int("device id", m.device.0)?,
                client_id(m.client_msg_id),
                int("time", m.sent_at)?,
                m.text.as_str(),
            ));
        }
        let mut insert = QueryBuilder::<Sqlite>::new(
            "INSERT INTO messages (id, conv_id, sender, device, client_msg_id, sent_at, body) ",
        );
        insert.push_values(
            &rows,
            |mut row, &(id, conv, sender, device, client, at, text)| {
                row.push_bind(id)
                    .push_bind(conv)
                    .push_bind(sender)
                    .push_bind(device)
                    .push_bind(client)
                    .push_bind(at)
                    .push_bind(text);
            },
        );
        insert.push(" ON CONFLICT (sender, client_msg_id) WHERE kind < 3 DO NOTHING RETURNING id");
        let inserted: Vec<i64> = insert.build_query_scalar().fetch_all(&mut *tx).await?;
        if inserted.len() == chunk.len() {
            continue;
        }
        let inserted: std::collections::HashSet<i64> = inserted.into_iter().collect();
        for (&(index, _), &(id, _, sender, _, client, _, _)) in chunk.iter().zip(&rows) {
            if inserted.contains(&id) {
                continue;
            }
            let original = sqlx::query_as::<_, (i64, i64)>(
                "SELECT id, sent_at FROM messages \
                 WHERE sender = ? AND client_msg_id = ? AND kind < 3",
            )
            .bind(sender)
            .bind(client)
            .fetch_optional(&mut *tx)
            .await?;
            if let (Some(slot), Some((id, sent_at))) = (duplicates.get_mut(index), original) {
                *slot = Some((MessageId(uint("message id", id)?), uint("time", sent_at)?));
            }
        }
    }
    Ok(())
}

async fn apply_one(tx: &mut SqliteConnection, write: &Write) -> Result<(), StoreError> {
    let query = match write {
        Write::CreateUser {
            id,
            name,
            password_hash,
            created_at,
        } => sqlx::query(
            "INSERT INTO users (id, name, name_key, display_name, password_hash, created_at) \
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(int("user id", id.0)?)
        .bind(name)
        .bind(name.to_ascii_lowercase())
        .bind(name)
        .bind(password_hash)
        .bind(int("time", *created_at)?),
        Write::SetDisplayName { user, display_name } => {
            sqlx::query("UPDATE users SET display_name = ? WHERE id = ?")
                .bind(display_name)
                .bind(int("user id", user.0)?)
        }
        Write::CreateConv {
            id,
            kind: ConvKind::Room { name, invite_only },
            created_at,
        } => sqlx::query("INSERT INTO convs (id, room_name, invite_only, created_at) VALUES (?, ?, ?, ?)")
            .bind(int("conversation id", id.0)?)
            .bind(name)
            .bind(invite_only)
            .bind(int("time", *created_at)?),
        Write::CreateConv {
            id,
            kind: ConvKind::Direct { a, b },
            created_at,
        } => sqlx::query("INSERT INTO convs (id, user_a, user_b, created_at) VALUES (?, ?, ?, ?)")
            .bind(int("conversation id", id.0)?)
            .bind(int("user id", a.0)?)
            .bind(int("user id", b.0)?)
            .bind(int("time", *created_at)?),
        Write::AddMember { conv, user, since } => sqlx::query(
            "INSERT INTO members (user_id, conv_id, since) VALUES (?, ?, ?) \
             ON CONFLICT (user_id, conv_id) DO UPDATE SET since = excluded.since",
        )
        .bind(int("user id", user.0)?)
        .bind(int("conversation id", conv.0)?)
        .bind(int("message id", since.0)?),
        Write::RemoveMember { conv, user } => {
            sqlx::query("DELETE FROM members WHERE user_id = ? AND conv_id = ?")
                .bind(int("user id", user.0)?)
                .bind(int("conversation id", conv.0)?)
        }
        Write::SetDevice {
            id,
            user,
            name,
            cursor,
            last_seen,
        } => sqlx::query(
            "INSERT INTO devices (id, user_id, name, cursor, last_seen) VALUES (?, ?, ?, ?, ?) \
             ON CONFLICT (id) DO UPDATE SET cursor = excluded.cursor, last_seen = excluded.last_seen",
        )
        .bind(int("device id", id.0)?)
        .bind(int("user id", user.0)?)
        .bind(name)
        .bind(int("message id", cursor.0)?)
        .bind(int("time", *last_seen)?),
        Write::DeleteDevice { id } => {
            sqlx::query("DELETE FROM tokens WHERE device_id = ?")
                .bind(int("device id", id.0)?)
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM devices WHERE id = ?").bind(int("device id", id.0)?)
        }
        Write::CreateToken {
            hash,
            user,
            device,
            expires_at,
        } => sqlx::query("INSERT INTO tokens (hash, user_id, device_id, expires_at) VALUES (?, ?, ?, ?)")
            .bind(&hash[..])
            .bind(int("user id", user.0)?)
            .bind(int("device id", device.0)?)
            .bind(int("time", *expires_at)?),
        Write::RevokeToken { hash } => sqlx::query("DELETE FROM tokens WHERE hash = ?").bind(&hash[..]),
        Write::SetStanding {
            conv,
            user,
            standing,
        } if *standing == Standing::default() => {
            sqlx::query("DELETE FROM standings WHERE conv_id = ? AND user_id = ?")
                .bind(int("conversation id", conv.0)?)
                .bind(int("user id", user.0)?)
        }
        Write::SetStanding {
            conv,
            user,
            standing,
        } => sqlx::query(
            "INSERT INTO standings (conv_id, user_id, role, banned, muted) VALUES (?, ?, ?, ?, ?) \
             ON CONFLICT (conv_id, user_id) DO UPDATE SET role = excluded.role, \
             banned = excluded.banned, muted = excluded.muted",
        )
        .bind(int("conversation id", conv.0)?)
        .bind(int("user id", user.0)?)
        .bind(role_code(standing.role))
        .bind(standing.banned)
        .bind(standing.muted),
        Write::Audit(record) => sqlx::query(
            "INSERT INTO audit_log (conv_id, actor, target, action, reason, at) \
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(int("conversation id", record.conv.0)?)
        .bind(int("user id", record.actor.0)?)
        .bind(int("user id", record.target.0)?)
        .bind(action_code(record.action))
        .bind(&record.reason)
        .bind(int("time", record.at)?),
        Write::SetTopic { conv, topic } => sqlx::query("UPDATE convs SET topic = ? WHERE id = ?")
            .bind(topic)
            .bind(int("conversation id", conv.0)?),
        Write::SetOperator {
            user,
            operator: true,
        } => sqlx::query("INSERT OR IGNORE INTO operators (user_id) VALUES (?)")
            .bind(int("user id", user.0)?),
        Write::SetOperator {
            user,
            operator: false,
        } => sqlx::query("DELETE FROM operators WHERE user_id = ?").bind(int("user id", user.0)?),
        Write::SetDisabled { user, disabled } => sqlx::query("UPDATE users SET disabled = ? WHERE id = ?")
            .bind(disabled)
            .bind(int("user id", user.0)?),
        Write::SetReadMarker { user, conv, up_to } => sqlx::query(
            "INSERT INTO read_markers (user_id, conv_id, up_to) VALUES (?, ?, ?) \
             ON CONFLICT (user_id, conv_id) DO UPDATE SET up_to = max(up_to, excluded.up_to)",
        )
        .bind(int("user id", user.0)?)
        .bind(int("conversation id", conv.0)?)
        .bind(int("message id", up_to.0)?),
        Write::InsertMessage(m) => {
            let (kind, target) = kind_code(m.kind)?;
            sqlx::query(
                "INSERT INTO messages \
                 (id, conv_id, sender, device, client_msg_id, sent_at, body, kind, target) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(int("message id", m.id.0)?)
            .bind(int("conversation id", m.conv.0)?)
            .bind(int("user id", m.sender.0)?)
            .bind(int("device id", m.device.0)?)
            .bind(client_id(m.client_msg_id))
            .bind(int("time", m.sent_at)?)
            .bind(&m.text)
            .bind(kind)
            .bind(target)
        }
        Write::ChangeMessage {
            target,
            text: Some(text),
        } => sqlx::query("UPDATE messages SET body = ?, kind = 1 WHERE id = ? AND kind IN (0, 1)")
            .bind(text)
            .bind(int("message id", target.0)?),
        Write::ChangeMessage { target, text: None } => {
            sqlx::query("UPDATE messages SET body = '' WHERE target = ? AND kind = 3")
                .bind(int("message id", target.0)?)
                .execute(&mut *tx)
                .await?;
            sqlx::query("UPDATE messages SET body = '', kind = 2 WHERE id = ? AND kind IN (0, 1)")
                .bind(int("message id", target.0)?)
        }
    };
    query.execute(&mut *tx).await?;
    Ok(())
}
