//! [`Store`]: durable state in SQLite through sqlx. The only module that knows SQL.
//!
//! The schema is in `migrations/` (embedded with `sqlx::migrate!`, applied at open). The
//! database runs in WAL mode; with the default [`Durability::Full`] a committed transaction
//! survives a crash of the process or the machine, with [`Durability::Process`] a crash of the
//! process. Writes arrive in batches from the engine's writer task
//! (group commit): one transaction per batch, messages inserted by multi-row statements.
//!
//! A PostgreSQL store would implement the same methods: the SQL here is plain apart from
//! `INSERT … ON CONFLICT … RETURNING` (which PostgreSQL shares) and `max(a, b)` (`GREATEST`).

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{QueryBuilder, Sqlite, SqlitePool, Transaction};

use crate::types::*;

/// A storage failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database failed.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    /// The schema could not be brought up to date.
    #[error(transparent)]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// Messages per multi-row INSERT (7 parameters each, well under SQLite's 32,766).
const INSERT_CHUNK: usize = 500;

/// Columns of a message row, in the order every query selects them.
type MessageRow = (i64, i64, i64, i64, i64, i64, String);

const MESSAGE_COLUMNS: &str =
    "m.id, m.conv_id, m.sender, m.device, m.client_msg_id, m.sent_at, m.body";

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
    pool: SqlitePool,
}

impl Store {
    /// Opens (creating if missing) the database file at `path` and migrates it.
    ///
    /// # Errors
    /// If the file cannot be opened or migrated.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::open_with(path, Durability::Full).await
    }

    /// Opens (creating if missing) the database file at `path` with the given durability.
    ///
    /// # Errors
    /// If the file cannot be opened or migrated.
    pub async fn open_with(
        path: impl AsRef<Path>,
        durability: Durability,
    ) -> Result<Self, StoreError> {
        let synchronous = match durability {
            Durability::Full => SqliteSynchronous::Full,
            Durability::Process => SqliteSynchronous::Normal,
        };
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(synchronous)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await?;
        Self::migrate(pool).await
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
        Self::migrate(pool).await
    }

    async fn migrate(pool: SqlitePool) -> Result<Self, StoreError> {
        sqlx::migrate!("./migrations").run(&pool).await?;
        Ok(Self { pool })
    }

    /// Everything the hub keeps in memory. Also drops expired tokens.
    ///
    /// # Errors
    /// If the database fails.
    pub async fn snapshot(&self, now: UnixMillis) -> Result<Snapshot, StoreError> {
        sqlx::query("DELETE FROM tokens WHERE expires_at <= ?")
            .bind(now as i64)
            .execute(&self.pool)
            .await?;
        let users = sqlx::query_as::<_, (i64, String, String)>(
            "SELECT id, name, display_name FROM users ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?;
        let convs = sqlx::query_as::<_, (i64, Option<String>, bool, Option<i64>, Option<i64>)>(
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
        let last_message: Option<i64> = sqlx::query_scalar("SELECT max(id) FROM messages")
            .fetch_one(&self.pool)
            .await?;
        Ok(Snapshot {
            users: users
                .into_iter()
                .map(|(id, name, display)| (UserId(id as u64), name, display))
                .collect(),
            convs: convs
                .into_iter()
                .filter_map(|(id, room, invite_only, a, b)| {
                    let kind = match (room, a, b) {
                        (Some(name), _, _) => ConvKind::Room { name, invite_only },
                        (None, Some(a), Some(b)) => ConvKind::Direct {
                            a: UserId(a as u64),
                            b: UserId(b as u64),
                        },
                        _ => return None,
                    };
                    Some((ConvId(id as u64), kind))
                })
                .collect(),
            members: members
                .into_iter()
                .map(|(conv, user, since)| {
                    (
                        ConvId(conv as u64),
                        UserId(user as u64),
                        MessageId(since as u64),
                    )
                })
                .collect(),
            devices: devices
                .into_iter()
                .map(|(id, user, name, cursor, seen)| {
                    (
                        DeviceId(id as u64),
                        UserId(user as u64),
                        name,
                        MessageId(cursor as u64),
                        seen as u64,
                    )
                })
                .collect(),
            last_message: MessageId(last_message.unwrap_or(0) as u64),
        })
    }

    /// Applies several persists in one transaction, in order. For each persist, returns the
    /// original `(id, sent_at)` if its message was a duplicate of an earlier send.
    ///
    /// # Errors
    /// If the database fails; then nothing of the batch is written.
    pub async fn apply(
        &self,
        persists: &[Vec<Write>],
    ) -> Result<Vec<Option<(MessageId, UnixMillis)>>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let mut duplicates = vec![None; persists.len()];
        // Consecutive message inserts, with the persist each belongs to, written together.
        let mut run: Vec<(usize, &StoredMessage)> = Vec::new();
        for (index, writes) in persists.iter().enumerate() {
            for write in writes {
                if let Write::InsertMessage(message) = write {
                    run.push((index, message));
                    continue;
                }
                insert_messages(&mut tx, &run, &mut duplicates).await?;
                run.clear();
                apply_one(&mut tx, write).await?;
            }
        }
        insert_messages(&mut tx, &run, &mut duplicates).await?;
        tx.commit().await?;
        Ok(duplicates)
    }

    /// Up to `limit` messages for `user` with ids above `after`, from each of the user's
    /// conversations since joining it, leaving out those sent from `device`; in id order.
    ///
    /// # Errors
    /// If the database fails.
    pub async fn backlog(
        &self,
        user: UserId,
        device: DeviceId,
        after: MessageId,
        limit: usize,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS} FROM members AS mb \
             JOIN messages AS m ON m.conv_id = mb.conv_id AND m.id > max(mb.since, ?2) \
             WHERE mb.user_id = ?1 AND m.device != ?3 ORDER BY m.id LIMIT ?4"
        );
        let rows = sqlx::query_as::<_, MessageRow>(&sql)
            .bind(user.0 as i64)
            .bind(after.0 as i64)
            .bind(device.0 as i64)
            .bind(limit as i64)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().map(message).collect())
    }

    /// Up to `limit` messages of `conv` with ids below `before`, newest first.
    ///
    /// # Errors
    /// If the database fails.
    pub async fn history(
        &self,
        conv: ConvId,
        before: Option<MessageId>,
        limit: usize,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages AS m \
             WHERE m.conv_id = ?1 AND m.id < ?2 ORDER BY m.id DESC LIMIT ?3"
        );
        let before = before.map_or(i64::MAX, |b| b.0 as i64);
        let rows = sqlx::query_as::<_, MessageRow>(&sql)
            .bind(conv.0 as i64)
            .bind(before)
            .bind(limit as i64)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().map(message).collect())
    }

    /// The stored password hash (PHC string) of `user`.
    ///
    /// # Errors
    /// If the database fails.
    pub async fn password_hash(&self, user: UserId) -> Result<Option<String>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT password_hash FROM users WHERE id = ?")
                .bind(user.0 as i64)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// The token whose SHA-256 is `hash`.
    ///
    /// # Errors
    /// If the database fails.
    pub async fn find_token(&self, hash: [u8; 32]) -> Result<Option<TokenRecord>, StoreError> {
        let row = sqlx::query_as::<_, (i64, i64, i64)>(
            "SELECT user_id, device_id, expires_at FROM tokens WHERE hash = ?",
        )
        .bind(&hash[..])
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|(user, device, expires_at)| TokenRecord {
            user: UserId(user as u64),
            device: DeviceId(device as u64),
            expires_at: expires_at as u64,
        }))
    }

    /// Closes the pool, waiting for connections to finish.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

fn message((id, conv, sender, device, client_msg_id, sent_at, text): MessageRow) -> StoredMessage {
    StoredMessage {
        id: MessageId(id as u64),
        conv: ConvId(conv as u64),
        sender: UserId(sender as u64),
        device: DeviceId(device as u64),
        client_msg_id: ClientMsgId(client_msg_id as u64),
        sent_at: sent_at as u64,
        text,
    }
}

/// Inserts messages with multi-row statements; a message whose sender already stored its
/// client message id is skipped, and the original is recorded for its persist.
async fn insert_messages(
    tx: &mut Transaction<'_, Sqlite>,
    messages: &[(usize, &StoredMessage)],
    duplicates: &mut [Option<(MessageId, UnixMillis)>],
) -> Result<(), StoreError> {
    for chunk in messages.chunks(INSERT_CHUNK) {
        let mut insert = QueryBuilder::<Sqlite>::new(
            "INSERT INTO messages (id, conv_id, sender, device, client_msg_id, sent_at, body) ",
        );
        insert.push_values(chunk, |mut row, (_, m)| {
            row.push_bind(m.id.0 as i64)
                .push_bind(m.conv.0 as i64)
                .push_bind(m.sender.0 as i64)
                .push_bind(m.device.0 as i64)
                .push_bind(m.client_msg_id.0 as i64)
                .push_bind(m.sent_at as i64)
                .push_bind(m.text.as_str());
        });
        insert.push(" ON CONFLICT (sender, client_msg_id) DO NOTHING RETURNING id");
        let inserted: Vec<i64> = insert.build_query_scalar().fetch_all(&mut **tx).await?;
        if inserted.len() == chunk.len() {
            continue;
        }
        let inserted: std::collections::HashSet<i64> = inserted.into_iter().collect();
        for &(index, m) in chunk {
            if inserted.contains(&(m.id.0 as i64)) {
                continue;
            }
            let original = sqlx::query_as::<_, (i64, i64)>(
                "SELECT id, sent_at FROM messages WHERE sender = ? AND client_msg_id = ?",
            )
            .bind(m.sender.0 as i64)
            .bind(m.client_msg_id.0 as i64)
            .fetch_optional(&mut **tx)
            .await?;
            if let (Some(slot), Some((id, sent_at))) = (duplicates.get_mut(index), original) {
                *slot = Some((MessageId(id as u64), sent_at as u64));
            }
        }
    }
    Ok(())
}

async fn apply_one(tx: &mut Transaction<'_, Sqlite>, write: &Write) -> Result<(), StoreError> {
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
        .bind(id.0 as i64)
        .bind(name)
        .bind(name.to_ascii_lowercase())
        .bind(name)
        .bind(password_hash)
        .bind(*created_at as i64),
        Write::SetDisplayName { user, display_name } => {
            sqlx::query("UPDATE users SET display_name = ? WHERE id = ?")
                .bind(display_name)
                .bind(user.0 as i64)
        }
        Write::CreateConv {
            id,
            kind: ConvKind::Room { name, invite_only },
            created_at,
        } => sqlx::query("INSERT INTO convs (id, room_name, invite_only, created_at) VALUES (?, ?, ?, ?)")
            .bind(id.0 as i64)
            .bind(name)
            .bind(invite_only)
            .bind(*created_at as i64),
        Write::CreateConv {
            id,
            kind: ConvKind::Direct { a, b },
            created_at,
        } => sqlx::query("INSERT INTO convs (id, user_a, user_b, created_at) VALUES (?, ?, ?, ?)")
            .bind(id.0 as i64)
            .bind(a.0 as i64)
            .bind(b.0 as i64)
            .bind(*created_at as i64),
        Write::AddMember { conv, user, since } => sqlx::query(
            "INSERT INTO members (user_id, conv_id, since) VALUES (?, ?, ?) \
             ON CONFLICT (user_id, conv_id) DO UPDATE SET since = excluded.since",
        )
        .bind(user.0 as i64)
        .bind(conv.0 as i64)
        .bind(since.0 as i64),
        Write::RemoveMember { conv, user } => {
            sqlx::query("DELETE FROM members WHERE user_id = ? AND conv_id = ?")
                .bind(user.0 as i64)
                .bind(conv.0 as i64)
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
        .bind(id.0 as i64)
        .bind(user.0 as i64)
        .bind(name)
        .bind(cursor.0 as i64)
        .bind(*last_seen as i64),
        Write::DeleteDevice { id } => {
            sqlx::query("DELETE FROM tokens WHERE device_id = ?")
                .bind(id.0 as i64)
                .execute(&mut **tx)
                .await?;
            sqlx::query("DELETE FROM devices WHERE id = ?").bind(id.0 as i64)
        }
        Write::CreateToken {
            hash,
            user,
            device,
            expires_at,
        } => sqlx::query("INSERT INTO tokens (hash, user_id, device_id, expires_at) VALUES (?, ?, ?, ?)")
            .bind(&hash[..])
            .bind(user.0 as i64)
            .bind(device.0 as i64)
            .bind(*expires_at as i64),
        Write::RevokeToken { hash } => sqlx::query("DELETE FROM tokens WHERE hash = ?").bind(&hash[..]),
        Write::InsertMessage(_) => return Ok(()),
    };
    query.execute(&mut **tx).await?;
    Ok(())
}
