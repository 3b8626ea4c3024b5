//! [`PgStore`]: durable state in PostgreSQL through sqlx, the second [`Storage`] backend.
//!
//! The schema is in `migrations/postgres/` (embedded with `sqlx::migrate!`, applied at connect)
//! and mirrors SQLite's: the same tables, the same two message indexes. Queries are checked at
//! run time only, so building never needs a database. Semantics are those of [`Store`]: a batch
//! of persists is one transaction, committed with `synchronous_commit = on` (the WAL record is
//! flushed before the commit returns) by default; messages go in with one
//! `INSERT … SELECT FROM UNNEST(arrays) ON CONFLICT DO NOTHING RETURNING id` per run, so a
//! batch of any size is one statement, prepared once per connection. A batch of nothing but
//! messages (the usual one) is that statement alone, in autocommit: one round trip.
//!
//! *(v2)* Search: each message row carries `search`, the words of its latest text as
//! [`names::words`] splits them, made a `tsvector` with `array_to_tsvector` (PostgreSQL parses
//! no text, so it sees exactly the model's words) and found through a GIN index.
//!
//! Ids of users, conversations and devices: each [`snapshot`](Storage::snapshot) (each start
//! of a node) takes block `n = nextval('id_blocks')`, ids `n * 2^32 ..= (n + 1) * 2^32 - 1`
//! ([`IdBlock::numbered`]), so nodes sharing the database assign disjoint ids; blocks stop
//! below 2^53 ([`StoreError::IdBlocksUsedUp`] past it), so every id is an exact JavaScript
//! number.
//!
//! Connections come from a [`PgPool`], which replaces a broken connection on the next acquire;
//! a failure surfaces as [`StoreError::Database`].
//!
//! [`Store`]: crate::Store

use std::collections::{HashMap, HashSet};
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool, Postgres, Transaction};

use crate::names;
use crate::storage::Storage;
use crate::store::{
    action_code, audit_record, client_id, committed, int, kind_code, message, role_code,
    snapshot_from, snapshot_rows, uint, AuditRow, Durability, MessageRow, StoreError,
};
use crate::{
    AuditRecord, Committed, ConvId, ConvKind, DeviceId, IdBlock, MessageId, Numbering, Snapshot,
    Standing, StoredMessage, TokenRecord, UnixMillis, UnreadTally, UserId, Write, UNNUMBERED,
};

const MESSAGE_COLUMNS: &str =
    "m.id, m.conv_id, m.sender, m.device, m.client_msg_id, m.sent_at, m.body, m.kind, m.target";

/// Connections in the pool: the writer holds one, reads (backlog, history, logins) share the
/// rest.
const MAX_CONNECTIONS: u32 = 8;

/// The database: a connection pool to one PostgreSQL database.
#[derive(Clone, Debug)]
pub struct PgStore {
    pub(crate) pool: PgPool,
}

impl PgStore {
    /// Connects to the database at `url` (`postgres://USER[:PASSWORD]@HOST[:PORT]/DB`) and
    /// migrates it, with [`Durability::Full`].
    ///
    /// # Errors
    /// If the URL is malformed, the server cannot be reached or refuses the login, or the
    /// schema cannot be brought up to date.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_with(url, Durability::Full).await
    }

    /// Connects to the database at `url` and migrates it. [`Durability::Full`] commits with
    /// `synchronous_commit = on`; [`Durability::Process`] with `synchronous_commit = off`, which
    /// survives the chat server being killed but may lose the last commits if the database
    /// server itself crashes.
    ///
    /// # Errors
    /// As [`connect`](Self::connect).
    pub async fn connect_with(url: &str, durability: Durability) -> Result<Self, StoreError> {
        let synchronous_commit = match durability {
            Durability::Full => "on",
            Durability::Process => "off",
        };
        let options = PgConnectOptions::from_str(url)?
            .options([("synchronous_commit", synchronous_commit)])
            .application_name("chat-server");
        // One connection first, for the server's own error (the pool would retry until its
        // timeout and report only that).
        PgConnection::connect_with(&options).await?.close().await?;
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await?;
        sqlx::migrate!("./migrations/postgres").run(&pool).await?;
        Ok(Self { pool })
    }
}

/// `url` without its password (in the user part or a `password=` parameter), for messages
/// and logs.
///
/// ```
/// assert_eq!(
///     chat_core::redact_url("postgres://chat:secret@db.local:5432/chat"),
///     "postgres://chat@db.local:5432/chat"
/// );
/// ```
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(user, _)| user);
            format!("{user}@{host}")
        }
        None => authority.to_owned(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let query: Vec<&str> = query
                .split('&')
                .map(|pair| {
                    if pair.to_ascii_lowercase().starts_with("password=") {
                        "password=…"
                    } else {
                        pair
                    }
                })
                .collect();
            format!("{path}?{}", query.join("&"))
        }
        None => tail.to_owned(),
    };
    format!("{scheme}://{authority}{tail}")
}

impl Storage for PgStore {
    async fn snapshot(&self, now: UnixMillis) -> Result<Snapshot, StoreError> {
        sqlx::query("DELETE FROM tokens WHERE expires_at <= $1")
            .bind(int("time", now)?)
            .execute(&self.pool)
            .await?;
        // A new block at every start: a restart can never collide with ids its previous run
        // handed out, and costs one of 2^21 blocks.
        let n: i64 = sqlx::query_scalar("SELECT nextval('id_blocks')")
            .fetch_one(&self.pool)
            .await?;
        let n = uint("id block", n)?;
        let ids = IdBlock::numbered(n).ok_or(StoreError::IdBlocksUsedUp(n))?;
        Ok(Snapshot {
            ids,
            ..self.directory().await?
        })
    }

    async fn directory(&self) -> Result<Snapshot, StoreError> {
        let mut snapshot = snapshot_from(snapshot_rows!(&self.pool).await?)?;
        // Every id numbered so far, resends found to be duplicates included: with several
        // nodes, the hub applies commits in order from here (see `chat_hub::Numbering`).
        let last: i64 = sqlx::query_scalar("SELECT last FROM message_seq")
            .fetch_one(&self.pool)
            .await?;
        snapshot.last_message = snapshot
            .last_message
            .max(MessageId(uint("message id", last)?));
        Ok(snapshot)
    }

    async fn apply(&self, persists: &[Vec<Write>]) -> Result<Vec<Committed>, StoreError> {
        let mut duplicates = vec![None; persists.len()];
        if persists.iter().flatten().all(
            |w| matches!(w, Write::InsertMessage(m) if m.kind.is_message() && m.id == UNNUMBERED),
        ) {
            // Messages only (the usual batch): one statement numbers and inserts them, atomic
            // and durable on its own in autocommit — one round trip instead of five (BEGIN,
            // lock, INSERT, numbering, COMMIT).
            let run: Vec<(usize, &StoredMessage)> = persists
                .iter()
                .enumerate()
                .flat_map(|(index, writes)| writes.iter().map(move |w| (index, w)))
                .filter_map(|(index, w)| match w {
                    Write::InsertMessage(message) => Some((index, message)),
                    _ => None,
                })
                .collect();
            let mut conn = self.pool.acquire().await?;
            let last = insert_numbered(&mut conn, &run, &mut duplicates).await?;
            // The statement numbered them in order: each persist's messages take the next ids.
            let mut numbering = Numbering::new(last);
            let positions = persists.iter().map(|writes| {
                let position = numbering.persist();
                writes.iter().for_each(|_| {
                    numbering.message(UNNUMBERED);
                });
                position
            });
            return Ok(committed(positions, duplicates));
        }
        let mut persists = persists.to_vec();
        let mut tx = self.pool.begin().await?;
        // Numbered under the lock of the one numbering row when anything takes a number.
        let numbered = persists
            .iter()
            .flatten()
            .any(|w| matches!(w, Write::InsertMessage(_) | Write::AddMember { .. }));
        let mut numbering = Numbering::default();
        if numbered {
            let last: i64 = sqlx::query_scalar("SELECT last FROM message_seq FOR UPDATE")
                .fetch_one(&mut *tx)
                .await?;
            numbering = Numbering::new(MessageId(uint("message id", last)?));
        }
        let positions: Vec<MessageId> = persists
            .iter_mut()
            .map(|writes| numbering.number(writes))
            .collect();
        let taken = create_users(&mut tx, &mut persists).await?;
        let adopted = create_convs(&mut tx, &mut persists).await?;
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
                insert_messages(&mut tx, &run, &mut duplicates).await?;
                run.clear();
                apply_one(&mut tx, write).await?;
            }
        }
        insert_messages(&mut tx, &run, &mut duplicates).await?;
        if numbered {
            sqlx::query("UPDATE message_seq SET last = $1")
                .bind(int("message id", numbering.last().0)?)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        let mut committed = committed(positions, duplicates);
        for (index, adoption) in adopted {
            if let Some(c) = committed.get_mut(index) {
                c.adopted = Some(adoption);
            }
        }
        for (index, user) in taken {
            if let Some(c) = committed.get_mut(index) {
                c.taken = Some(user);
            }
        }
        Ok(committed)
    }

    async fn backlog(
        &self,
        user: UserId,
        device: DeviceId,
        after: MessageId,
        limit: usize,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        // Per conversation, at most `limit` rows from the (conv_id, id) index, then the
        // smallest `limit` of those: bounded by rooms × limit however long the backlog is.
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS} FROM members AS mb CROSS JOIN LATERAL ( \
                 SELECT * FROM messages AS c \
                 WHERE c.conv_id = mb.conv_id AND c.id > GREATEST(mb.since, $2) \
                   AND c.device <> $3 \
                   AND c.kind <> 2 AND NOT (c.kind = 3 AND c.body = '') \
                 ORDER BY c.id LIMIT $4) AS m \
             WHERE mb.user_id = $1 ORDER BY m.id LIMIT $4"
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
             WHERE m.conv_id = $1 AND m.id < $2 AND m.kind < 3 ORDER BY m.id DESC LIMIT $3"
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
            sqlx::query_scalar("SELECT password_hash FROM users WHERE id = $1")
                .bind(int("user id", user.0)?)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    async fn find_token(&self, hash: [u8; 32]) -> Result<Option<TokenRecord>, StoreError> {
        let row = sqlx::query_as::<_, (i64, i64, i64)>(
            "SELECT user_id, device_id, expires_at FROM tokens WHERE hash = $1",
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
            "SELECT {MESSAGE_COLUMNS} FROM messages AS m WHERE m.id > $1 AND m.id <= $2 \
             ORDER BY m.id LIMIT $3"
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
        let sql = format!("SELECT {MESSAGE_COLUMNS} FROM messages AS m WHERE m.id = $1");
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
             WHERE conv_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3",
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
        let (mut ids, mut afters) = (Vec::with_capacity(convs.len()), Vec::new());
        for &(conv, after) in convs {
            ids.push(int("conversation id", conv.0)?);
            afters.push(int("message id", after.0)?);
        }
        let up_to = match up_to {
            Some(up_to) => int("message id", up_to.0)?,
            None => i64::MAX,
        };
        // Per conversation, newest first from the (conv_id, id) index, at most `cap` rows.
        let rows = sqlx::query_as::<_, (i64, i64, Option<i64>)>(
            "SELECT c.conv, u.n, u.latest \
             FROM UNNEST($1::int8[], $2::int8[]) WITH ORDINALITY AS c (conv, after, ord) \
             CROSS JOIN LATERAL ( \
                 SELECT count(*) AS n, max(r.id) AS latest FROM ( \
                     SELECT m.id FROM messages AS m \
                     WHERE m.conv_id = c.conv AND m.id > c.after AND m.id <= $3 \
                       AND m.kind < 2 AND m.sender <> $4 \
                     ORDER BY m.id DESC LIMIT $5) AS r) AS u \
             ORDER BY c.ord",
        )
        .bind(&ids)
        .bind(&afters)
        .bind(up_to)
        .bind(int("user id", user.0)?)
        .bind(i64::from(cap))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(conv, count, latest)| {
                Ok(UnreadTally {
                    conv: ConvId(uint("conversation id", conv)?),
                    count: u32::try_from(count).map_err(|_| StoreError::OutOfRange {
                        what: "unread count",
                        value: count.into(),
                    })?,
                    latest: MessageId(uint("message id", latest.unwrap_or(0))?),
                })
            })
            .collect()
    }

    async fn search(
        &self,
        user: UserId,
        words: &[String],
        before: Option<MessageId>,
        limit: usize,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        // The GIN index finds the matches; membership is a primary-key lookup each.
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages AS m \
             JOIN members AS mb ON mb.user_id = $1 AND mb.conv_id = m.conv_id \
             WHERE m.search @@ $2::tsquery \
               AND m.kind < 2 AND m.id < $3 \
             ORDER BY m.id DESC LIMIT $4"
        );
        let before = match before {
            Some(before) => int("message id", before.0)?,
            None => i64::MAX,
        };
        let rows = sqlx::query_as::<_, MessageRow>(&sql)
            .bind(int("user id", user.0)?)
            .bind(tsquery(words))
            .bind(before)
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter().map(message).collect()
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}

/// The words of `text` as `search` holds them: space-separated, for
/// `array_to_tsvector(string_to_array(…, ' '))` (words never hold a space).
pub(crate) fn search_words(text: &str) -> String {
    names::words(text).collect::<Vec<_>>().join(" ")
}

/// A `tsquery` holding every one of `words`, each a quoted lexeme (never an operator).
fn tsquery(words: &[String]) -> String {
    let quoted: Vec<String> = words
        .iter()
        .map(|w| format!("'{}'", w.replace('\\', "\\\\").replace('\'', "''")))
        .collect();
    quoted.join(" & ")
}

/// Writes `search` for every message of `tx` (kinds 0 and 1) whose `search` is not set, in
/// pages of `page` rows, from the body: for rows that arrived without it (a copy from SQLite).
pub(crate) async fn index_messages(tx: &mut PgConnection, page: i64) -> Result<(), sqlx::Error> {
    let mut after = i64::MIN;
    loop {
        let rows: Vec<(i64, String)> = sqlx::query_as(
            "SELECT id, body FROM messages WHERE kind < 2 AND search IS NULL AND id > $1 \
             ORDER BY id LIMIT $2",
        )
        .bind(after)
        .bind(page)
        .fetch_all(&mut *tx)
        .await?;
        let Some(&(last, _)) = rows.last() else {
            return Ok(());
        };
        let (ids, words): (Vec<i64>, Vec<String>) = rows
            .iter()
            .map(|(id, body)| (*id, search_words(body)))
            .unzip();
        sqlx::query(
            "UPDATE messages SET search = array_to_tsvector(string_to_array(r.words, ' ')) \
             FROM UNNEST($1::int8[], $2::text[]) AS r (id, words) WHERE messages.id = r.id",
        )
        .bind(&ids)
        .bind(&words)
        .execute(&mut *tx)
        .await?;
        after = last;
    }
}

/// Message rows as column arrays, for `UNNEST`.
#[derive(Default)]
pub(crate) struct MessageColumns {
    pub(crate) id: Vec<i64>,
    pub(crate) conv: Vec<i64>,
    pub(crate) sender: Vec<i64>,
    pub(crate) device: Vec<i64>,
    pub(crate) client: Vec<i64>,
    pub(crate) sent_at: Vec<i64>,
    pub(crate) body: Vec<String>,
    /// *(v2)* Each body's words, space-separated.
    pub(crate) words: Vec<String>,
}

impl MessageColumns {
    /// Appends one message, its numbers checked (an unnumbered id as 0, for
    /// [`insert_numbered`] to number).
    fn push(&mut self, m: &StoredMessage) -> Result<(), StoreError> {
        let id = if m.id == UNNUMBERED {
            MessageId(0)
        } else {
            m.id
        };
        self.id.push(int("message id", id.0)?);
        self.conv.push(int("conversation id", m.conv.0)?);
        self.sender.push(int("user id", m.sender.0)?);
        self.device.push(int("device id", m.device.0)?);
        self.client.push(client_id(m.client_msg_id));
        self.sent_at.push(int("time", m.sent_at)?);
        self.body.push(m.text.clone());
        self.words.push(search_words(&m.text));
        Ok(())
    }

    /// Inserts every row, skipping those whose `(sender, client_msg_id)` is already stored;
    /// returns the ids inserted.
    pub(crate) async fn insert(&self, conn: &mut PgConnection) -> Result<Vec<i64>, StoreError> {
        Ok(sqlx::query_scalar(
            "INSERT INTO messages \
                 (id, conv_id, sender, device, client_msg_id, sent_at, body, search) \
             SELECT r.id, r.conv, r.sender, r.device, r.client, r.sent_at, r.body, \
                    array_to_tsvector(string_to_array(r.words, ' ')) \
             FROM UNNEST($1::int8[], $2::int8[], $3::int8[], $4::int8[], $5::int8[], \
                         $6::int8[], $7::text[], $8::text[]) \
                 AS r (id, conv, sender, device, client, sent_at, body, words) \
             ON CONFLICT (client_msg_id, sender) WHERE kind < 3 DO NOTHING RETURNING id",
        )
        .bind(&self.id)
        .bind(&self.conv)
        .bind(&self.sender)
        .bind(&self.device)
        .bind(&self.client)
        .bind(&self.sent_at)
        .bind(&self.body)
        .bind(&self.words)
        .fetch_all(conn)
        .await?)
    }
}

/// Creates the users of `persists` first, each unless another node registered its name
/// first: then nothing of its persist is written, nor any later write naming the user
/// (`(persist, user)`). The user writes are taken out of `persists`.
async fn create_users(
    tx: &mut Transaction<'_, Postgres>,
    persists: &mut [Vec<Write>],
) -> Result<Vec<(usize, UserId)>, StoreError> {
    let mut taken = Vec::new();
    for index in 0..persists.len() {
        let mut users = Vec::new();
        persists[index].retain(|w| match w {
            Write::CreateUser {
                id,
                name,
                password_hash,
                created_at,
            } => {
                users.push((*id, name.clone(), password_hash.clone(), *created_at));
                false
            }
            _ => true,
        });
        for (id, name, password_hash, created_at) in users {
            let created: Option<i64> = sqlx::query_scalar(
                "INSERT INTO users (id, name, name_key, display_name, password_hash, created_at) \
                 VALUES ($1, $2, $3, $2, $4, $5) ON CONFLICT (name_key) DO NOTHING RETURNING id",
            )
            .bind(int("user id", id.0)?)
            .bind(&name)
            .bind(name.to_ascii_lowercase())
            .bind(&password_hash)
            .bind(int("time", created_at)?)
            .fetch_optional(&mut **tx)
            .await?;
            if created.is_some() {
                continue;
            }
            taken.push((index, id));
            for persist in persists[index..].iter_mut() {
                persist.retain(|w| !w.names_user(id));
            }
        }
    }
    Ok(taken)
}

/// Creates the conversations of `persists` first, each unless another node created a room
/// of the same name, or the same two users' direct conversation, first: then that one is
/// adopted (`(persist, (ours, theirs))`), and this and every later write naming ours names
/// theirs. The conversation writes are taken out of `persists`.
async fn create_convs(
    tx: &mut Transaction<'_, Postgres>,
    persists: &mut [Vec<Write>],
) -> Result<Vec<(usize, (ConvId, ConvId))>, StoreError> {
    let mut adopted = Vec::new();
    for index in 0..persists.len() {
        let mut convs = Vec::new();
        persists[index].retain(|w| match w {
            Write::CreateConv {
                id,
                kind,
                created_at,
            } => {
                convs.push((*id, kind.clone(), *created_at));
                false
            }
            _ => true,
        });
        for (id, kind, created_at) in convs {
            let theirs = match kind {
                ConvKind::Room { name, invite_only } => {
                    let created: Option<i64> = sqlx::query_scalar(
                        "INSERT INTO convs (id, room_name, invite_only, created_at) \
                         VALUES ($1, $2, $3, $4) ON CONFLICT (room_name) DO NOTHING RETURNING id",
                    )
                    .bind(int("conversation id", id.0)?)
                    .bind(&name)
                    .bind(invite_only)
                    .bind(int("time", created_at)?)
                    .fetch_optional(&mut **tx)
                    .await?;
                    if created.is_some() {
                        continue;
                    }
                    sqlx::query_scalar("SELECT id FROM convs WHERE room_name = $1")
                        .bind(&name)
                        .fetch_one(&mut **tx)
                        .await?
                }
                ConvKind::Direct { a, b } => {
                    let created: Option<i64> = sqlx::query_scalar(
                        "INSERT INTO convs (id, user_a, user_b, created_at) VALUES ($1, $2, $3, $4) \
                         ON CONFLICT (user_a, user_b) WHERE user_a IS NOT NULL DO NOTHING \
                         RETURNING id",
                    )
                    .bind(int("conversation id", id.0)?)
                    .bind(int("user id", a.0)?)
                    .bind(int("user id", b.0)?)
                    .bind(int("time", created_at)?)
                    .fetch_optional(&mut **tx)
                    .await?;
                    if created.is_some() {
                        continue;
                    }
                    sqlx::query_scalar("SELECT id FROM convs WHERE user_a = $1 AND user_b = $2")
                        .bind(int("user id", a.0)?)
                        .bind(int("user id", b.0)?)
                        .fetch_one(&mut **tx)
                        .await?
                }
            };
            let theirs = ConvId(uint("conversation id", theirs)?);
            adopted.push((index, (id, theirs)));
            for write in persists[index..].iter_mut().flatten() {
                write.rename_conv(id, theirs);
            }
        }
    }
    Ok(adopted)
}

/// Numbers and inserts unnumbered messages with one statement: it moves the numbering row by
/// their count (its lock held until the statement commits) and gives them the ids above where
/// it was, in order. A message whose sender already stored its client message id is skipped
/// (its id left unused), and the original is recorded for its persist. Returns where the
/// numbering was.
async fn insert_numbered(
    conn: &mut PgConnection,
    messages: &[(usize, &StoredMessage)],
    duplicates: &mut [Option<(MessageId, UnixMillis)>],
) -> Result<MessageId, StoreError> {
    let mut rows = MessageColumns::default();
    for (_, m) in messages {
        rows.push(m)?;
    }
    // A batch is at most a few thousand messages (the engine's group commit).
    let count = i64::try_from(messages.len()).unwrap_or(i64::MAX);
    let (base, inserted): (i64, Vec<i64>) = sqlx::query_as(
        "WITH seq AS (UPDATE message_seq SET last = last + $1 RETURNING last - $1 AS base), \
         ins AS (INSERT INTO messages \
                     (id, conv_id, sender, device, client_msg_id, sent_at, body, search) \
                 SELECT seq.base + r.ord, r.conv, r.sender, r.device, r.client, r.sent_at, \
                        r.body, array_to_tsvector(string_to_array(r.words, ' ')) \
                 FROM seq, UNNEST($2::int8[], $3::int8[], $4::int8[], $5::int8[], $6::int8[], \
                                  $7::text[], $8::text[]) WITH ORDINALITY \
                     AS r (conv, sender, device, client, sent_at, body, words, ord) \
                 ORDER BY r.ord \
                 ON CONFLICT (client_msg_id, sender) WHERE kind < 3 DO NOTHING RETURNING id) \
         SELECT (SELECT base FROM seq), ARRAY(SELECT id FROM ins)",
    )
    .bind(count)
    .bind(&rows.conv)
    .bind(&rows.sender)
    .bind(&rows.device)
    .bind(&rows.client)
    .bind(&rows.sent_at)
    .bind(&rows.body)
    .bind(&rows.words)
    .fetch_one(&mut *conn)
    .await?;
    for (id, offset) in rows.id.iter_mut().zip(1..) {
        *id = base + offset;
    }
    find_originals(conn, &rows, inserted, messages, duplicates).await?;
    Ok(MessageId(uint("message id", base)?))
}

/// Inserts messages with one statement; a message whose sender already stored its client
/// message id is skipped, and the original is recorded for its persist.
async fn insert_messages(
    conn: &mut PgConnection,
    messages: &[(usize, &StoredMessage)],
    duplicates: &mut [Option<(MessageId, UnixMillis)>],
) -> Result<(), StoreError> {
    if messages.is_empty() {
        return Ok(());
    }
    let mut rows = MessageColumns::default();
    for (_, m) in messages {
        rows.push(m)?;
    }
    let inserted = rows.insert(conn).await?;
    find_originals(conn, &rows, inserted, messages, duplicates).await
}

/// Records, for each of `rows` not among the `inserted` ids (a resend), the original it
/// duplicates, for its persist.
async fn find_originals(
    conn: &mut PgConnection,
    rows: &MessageColumns,
    inserted: Vec<i64>,
    messages: &[(usize, &StoredMessage)],
    duplicates: &mut [Option<(MessageId, UnixMillis)>],
) -> Result<(), StoreError> {
    if inserted.len() == messages.len() {
        return Ok(());
    }
    // Resends: look the originals up by (sender, client message id), all in one query.
    let inserted: HashSet<i64> = inserted.into_iter().collect();
    let (mut senders, mut clients) = (Vec::new(), Vec::new());
    for (i, id) in rows.id.iter().enumerate() {
        if !inserted.contains(id) {
            senders.push(rows.sender[i]);
            clients.push(rows.client[i]);
        }
    }
    let originals: HashMap<(i64, i64), (i64, i64)> = sqlx::query_as::<_, (i64, i64, i64, i64)>(
        "SELECT m.sender, m.client_msg_id, m.id, m.sent_at FROM messages AS m \
             JOIN UNNEST($1::int8[], $2::int8[]) AS r (sender, client_msg_id) \
               ON m.sender = r.sender AND m.client_msg_id = r.client_msg_id AND m.kind < 3",
    )
    .bind(&senders)
    .bind(&clients)
    .fetch_all(&mut *conn)
    .await?
    .into_iter()
    .map(|(sender, client, id, sent_at)| ((sender, client), (id, sent_at)))
    .collect();
    for (i, &(index, _)) in messages.iter().enumerate() {
        if inserted.contains(&rows.id[i]) {
            continue;
        }
        let original = originals.get(&(rows.sender[i], rows.client[i]));
        if let (Some(slot), Some(&(id, sent_at))) = (duplicates.get_mut(index), original) {
            *slot = Some((MessageId(uint("message id", id)?), uint("time", sent_at)?));
        }
    }
    Ok(())
}

async fn apply_one(tx: &mut Transaction<'_, Postgres>, write: &Write) -> Result<(), StoreError> {
    let query = match write {
        Write::CreateUser {
            id,
            name,
            password_hash,
            created_at,
        } => sqlx::query(
            "INSERT INTO users (id, name, name_key, display_name, password_hash, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(int("user id", id.0)?)
        .bind(name)
        .bind(name.to_ascii_lowercase())
        .bind(name)
        .bind(password_hash)
        .bind(int("time", *created_at)?),
        Write::SetDisplayName { user, display_name } => {
            sqlx::query("UPDATE users SET display_name = $1 WHERE id = $2")
                .bind(display_name)
                .bind(int("user id", user.0)?)
        }
        Write::CreateConv {
            id,
            kind: ConvKind::Room { name, invite_only },
            created_at,
        } => sqlx::query(
            "INSERT INTO convs (id, room_name, invite_only, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(int("conversation id", id.0)?)
        .bind(name)
        .bind(invite_only)
        .bind(int("time", *created_at)?),
        Write::CreateConv {
            id,
            kind: ConvKind::Direct { a, b },
            created_at,
        } => sqlx::query(
            "INSERT INTO convs (id, user_a, user_b, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(int("conversation id", id.0)?)
        .bind(int("user id", a.0)?)
        .bind(int("user id", b.0)?)
        .bind(int("time", *created_at)?),
        Write::AddMember { conv, user, since } => sqlx::query(
            "INSERT INTO members (user_id, conv_id, since) VALUES ($1, $2, $3) \
             ON CONFLICT (user_id, conv_id) DO UPDATE SET since = excluded.since",
        )
        .bind(int("user id", user.0)?)
        .bind(int("conversation id", conv.0)?)
        .bind(int("message id", since.0)?),
        Write::RemoveMember { conv, user } => {
            sqlx::query("DELETE FROM members WHERE user_id = $1 AND conv_id = $2")
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
            "INSERT INTO devices (id, user_id, name, cursor, last_seen) \
             VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (id) DO UPDATE SET cursor = excluded.cursor, \
                                            last_seen = excluded.last_seen",
        )
        .bind(int("device id", id.0)?)
        .bind(int("user id", user.0)?)
        .bind(name)
        .bind(int("message id", cursor.0)?)
        .bind(int("time", *last_seen)?),
        Write::DeleteDevice { id } => {
            sqlx::query("DELETE FROM tokens WHERE device_id = $1")
                .bind(int("device id", id.0)?)
                .execute(&mut **tx)
                .await?;
            sqlx::query("DELETE FROM devices WHERE id = $1").bind(int("device id", id.0)?)
        }
        Write::CreateToken {
            hash,
            user,
            device,
            expires_at,
        } => sqlx::query(
            "INSERT INTO tokens (hash, user_id, device_id, expires_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(&hash[..])
        .bind(int("user id", user.0)?)
        .bind(int("device id", device.0)?)
        .bind(int("time", *expires_at)?),
        Write::RevokeToken { hash } => {
            sqlx::query("DELETE FROM tokens WHERE hash = $1").bind(&hash[..])
        }
        Write::SetStanding {
            conv,
            user,
            standing,
        } if *standing == Standing::default() => {
            sqlx::query("DELETE FROM standings WHERE conv_id = $1 AND user_id = $2")
                .bind(int("conversation id", conv.0)?)
                .bind(int("user id", user.0)?)
        }
        Write::SetStanding {
            conv,
            user,
            standing,
        } => sqlx::query(
            "INSERT INTO standings (conv_id, user_id, role, banned, muted) \
             VALUES ($1, $2, $3, $4, $5) \
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
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(int("conversation id", record.conv.0)?)
        .bind(int("user id", record.actor.0)?)
        .bind(int("user id", record.target.0)?)
        .bind(action_code(record.action))
        .bind(&record.reason)
        .bind(int("time", record.at)?),
        Write::SetTopic { conv, topic } => sqlx::query("UPDATE convs SET topic = $1 WHERE id = $2")
            .bind(topic)
            .bind(int("conversation id", conv.0)?),
        Write::SetOperator {
            user,
            operator: true,
        } => sqlx::query("INSERT INTO operators (user_id) VALUES ($1) ON CONFLICT DO NOTHING")
            .bind(int("user id", user.0)?),
        Write::SetOperator {
            user,
            operator: false,
        } => sqlx::query("DELETE FROM operators WHERE user_id = $1").bind(int("user id", user.0)?),
        Write::SetDisabled { user, disabled } => {
            sqlx::query("UPDATE users SET disabled = $1 WHERE id = $2")
                .bind(disabled)
                .bind(int("user id", user.0)?)
        }
        Write::SetReadMarker { user, conv, up_to } => sqlx::query(
            "INSERT INTO read_markers (user_id, conv_id, up_to) VALUES ($1, $2, $3) \
             ON CONFLICT (user_id, conv_id) \
             DO UPDATE SET up_to = GREATEST(read_markers.up_to, excluded.up_to)",
        )
        .bind(int("user id", user.0)?)
        .bind(int("conversation id", conv.0)?)
        .bind(int("message id", up_to.0)?),
        Write::InsertMessage(m) => {
            let (kind, target) = kind_code(m.kind)?;
            sqlx::query(
                "INSERT INTO messages \
                 (id, conv_id, sender, device, client_msg_id, sent_at, body, kind, target) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
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
        } => sqlx::query(
            "UPDATE messages SET body = $1, kind = 1, \
             search = array_to_tsvector(string_to_array($3, ' ')) \
             WHERE id = $2 AND kind IN (0, 1)",
        )
        .bind(text)
        .bind(int("message id", target.0)?)
        .bind(search_words(text)),
        Write::ChangeMessage { target, text: None } => {
            sqlx::query("UPDATE messages SET body = '' WHERE target = $1 AND kind = 3")
                .bind(int("message id", target.0)?)
                .execute(&mut **tx)
                .await?;
            sqlx::query(
                "UPDATE messages SET body = '', kind = 2, search = NULL \
                 WHERE id = $1 AND kind IN (0, 1)",
            )
            .bind(int("message id", target.0)?)
        }
    };
    query.execute(&mut **tx).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{search_words, tsquery};

    #[test]
    fn search_words_and_queries_are_the_models() {
        assert_eq!(
            search_words("Deploy, e-mail: a@b.com v2.0 Zoë!"),
            "deploy e mail a b com v2 0 zoë"
        );
        assert_eq!(search_words("?!"), "");
        let words = ["deploy".to_owned(), "it's".to_owned(), "a\\b".to_owned()];
        assert_eq!(tsquery(&words), r"'deploy' & 'it''s' & 'a\\b'");
    }
}
