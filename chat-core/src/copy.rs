//! [`copy_to_postgres`]: moves a SQLite database into PostgreSQL — every user, room, direct
//! conversation, membership, device, token and message, row for row — in one transaction on
//! the target, then checks that each table holds as many rows as the source.
//!
//! The source is read in one read transaction (a consistent snapshot, so a server may even
//! be running on it, though what it writes afterwards is not copied); every table is read in
//! keyset-ordered pages of 5,000 rows, so memory stays bounded however large it is.

use sqlx::{Postgres, Sqlite, Transaction};

use crate::pg_store::{MessageColumns, PgStore};
use crate::store::{Store, StoreError};

/// Rows read and written at a time.
const PAGE: i64 = 5000;

/// The tables, in the order they are copied.
const TABLES: [&str; 6] = ["users", "convs", "members", "devices", "tokens", "messages"];

/// Rows per table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RowCounts {
    /// Users.
    pub users: u64,
    /// Rooms and direct conversations.
    pub convs: u64,
    /// Memberships.
    pub members: u64,
    /// Devices (with their delivery positions).
    pub devices: u64,
    /// Session tokens.
    pub tokens: u64,
    /// Messages.
    pub messages: u64,
}

impl RowCounts {
    /// The table names.
    pub const TABLES: [&'static str; 6] = TABLES;

    /// The counts in the order of [`TABLES`](Self::TABLES).
    pub fn values(&self) -> [u64; 6] {
        [
            self.users,
            self.convs,
            self.members,
            self.devices,
            self.tokens,
            self.messages,
        ]
    }

    fn total(&self) -> u64 {
        self.values().iter().sum()
    }
}

impl std::fmt::Display for RowCounts {
    /// `users 2, convs 3, …`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, (table, count)) in TABLES.iter().zip(self.values()).enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{table} {count}")?;
        }
        Ok(())
    }
}

/// What a copy does when the target already holds data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IfNotEmpty {
    /// Refuse, changing nothing.
    Refuse,
    /// Empty the target's tables first (in the same transaction: a copy that fails leaves
    /// the target as it was).
    Replace,
}

/// Why a copy failed. The target is unchanged in every case.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    /// Reading the SQLite database failed.
    #[error("reading the source: {0}")]
    Source(StoreError),
    /// Writing the PostgreSQL database failed.
    #[error("writing the target: {0}")]
    Target(StoreError),
    /// The target already holds data and [`IfNotEmpty::Refuse`] was asked.
    #[error("the target is not empty ({0}); pass --force to replace its contents")]
    NotEmpty(RowCounts),
    /// After the copy, a table of the target does not hold as many rows as the source's.
    #[error("row counts differ after the copy: source {copied}; target {arrived}")]
    Mismatch {
        /// The source's counts.
        copied: RowCounts,
        /// The target's counts, before rolling back.
        arrived: RowCounts,
    },
}

fn source(error: sqlx::Error) -> CopyError {
    CopyError::Source(error.into())
}

fn target(error: sqlx::Error) -> CopyError {
    CopyError::Target(error.into())
}

/// Copies every row of `from` into `to`, in one transaction on `to`, and verifies the row
/// counts before committing. Returns the counts copied.
///
/// # Errors
/// If either database fails, the target is not empty and `if_not_empty` is
/// [`IfNotEmpty::Refuse`], or the counts disagree; in every case nothing is committed.
pub async fn copy_to_postgres(
    from: &Store,
    to: &PgStore,
    if_not_empty: IfNotEmpty,
) -> Result<RowCounts, CopyError> {
    let mut src = from.pool.begin().await.map_err(source)?;
    let mut dst = to.pool.begin().await.map_err(target)?;
    let existing = pg_counts(&mut dst).await?;
    if existing.total() > 0 {
        if if_not_empty == IfNotEmpty::Refuse {
            return Err(CopyError::NotEmpty(existing));
        }
        sqlx::query("TRUNCATE users, convs, members, devices, tokens, messages")
            .execute(&mut *dst)
            .await
            .map_err(target)?;
    }
    copy_users(&mut src, &mut dst).await?;
    copy_convs(&mut src, &mut dst).await?;
    copy_members(&mut src, &mut dst).await?;
    copy_devices(&mut src, &mut dst).await?;
    copy_tokens(&mut src, &mut dst).await?;
    copy_messages(&mut src, &mut dst).await?;
    let copied = sqlite_counts(&mut src).await?;
    let arrived = pg_counts(&mut dst).await?;
    if copied != arrived {
        return Err(CopyError::Mismatch { copied, arrived });
    }
    dst.commit().await.map_err(target)?;
    src.rollback().await.map_err(source)?;
    Ok(copied)
}

async fn sqlite_counts(tx: &mut Transaction<'_, Sqlite>) -> Result<RowCounts, CopyError> {
    let mut counts = [0u64; 6];
    for (table, count) in TABLES.iter().zip(&mut counts) {
        let n: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
            .fetch_one(&mut **tx)
            .await
            .map_err(source)?;
        *count = u64::try_from(n).unwrap_or(0);
    }
    Ok(counts_from(counts))
}

/// The target's row counts.
async fn pg_counts(tx: &mut Transaction<'_, Postgres>) -> Result<RowCounts, CopyError> {
    let mut counts = [0u64; 6];
    for (table, count) in TABLES.iter().zip(&mut counts) {
        let n: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
            .fetch_one(&mut **tx)
            .await
            .map_err(target)?;
        *count = u64::try_from(n).unwrap_or(0);
    }
    Ok(counts_from(counts))
}

fn counts_from([users, convs, members, devices, tokens, messages]: [u64; 6]) -> RowCounts {
    RowCounts {
        users,
        convs,
        members,
        devices,
        tokens,
        messages,
    }
}

type Src<'a, 'c> = &'a mut Transaction<'c, Sqlite>;
type Dst<'a, 'c> = &'a mut Transaction<'c, Postgres>;

async fn copy_users(src: Src<'_, '_>, dst: Dst<'_, '_>) -> Result<(), CopyError> {
    let mut after = i64::MIN;
    loop {
        let page = sqlx::query_as::<_, (i64, String, String, String, String, i64)>(
            "SELECT id, name, name_key, display_name, password_hash, created_at FROM users \
             WHERE id > ? ORDER BY id LIMIT ?",
        )
        .bind(after)
        .bind(PAGE)
        .fetch_all(&mut **src)
        .await
        .map_err(source)?;
        let Some(last) = page.last() else {
            return Ok(());
        };
        after = last.0;
        let (mut id, mut name, mut key, mut display, mut hash, mut created) =
            (vec![], vec![], vec![], vec![], vec![], vec![]);
        for row in page {
            id.push(row.0);
            name.push(row.1);
            key.push(row.2);
            display.push(row.3);
            hash.push(row.4);
            created.push(row.5);
        }
        sqlx::query(
            "INSERT INTO users (id, name, name_key, display_name, password_hash, created_at) \
             SELECT * FROM UNNEST($1::int8[], $2::text[], $3::text[], $4::text[], $5::text[], \
                                  $6::int8[])",
        )
        .bind(id)
        .bind(name)
        .bind(key)
        .bind(display)
        .bind(hash)
        .bind(created)
        .execute(&mut **dst)
        .await
        .map_err(target)?;
    }
}

type ConvRow = (i64, Option<String>, bool, Option<i64>, Option<i64>, i64);

async fn copy_convs(src: Src<'_, '_>, dst: Dst<'_, '_>) -> Result<(), CopyError> {
    let mut after = i64::MIN;
    loop {
        let page = sqlx::query_as::<_, ConvRow>(
            "SELECT id, room_name, invite_only, user_a, user_b, created_at FROM convs \
             WHERE id > ? ORDER BY id LIMIT ?",
        )
        .bind(after)
        .bind(PAGE)
        .fetch_all(&mut **src)
        .await
        .map_err(source)?;
        let Some(last) = page.last() else {
            return Ok(());
        };
        after = last.0;
        let (mut id, mut room, mut invite, mut a, mut b, mut created) =
            (vec![], vec![], vec![], vec![], vec![], vec![]);
        for row in page {
            id.push(row.0);
            room.push(row.1);
            invite.push(row.2);
            a.push(row.3);
            b.push(row.4);
            created.push(row.5);
        }
        sqlx::query(
            "INSERT INTO convs (id, room_name, invite_only, user_a, user_b, created_at) \
             SELECT * FROM UNNEST($1::int8[], $2::text[], $3::bool[], $4::int8[], $5::int8[], \
                                  $6::int8[])",
        )
        .bind(id)
        .bind(room)
        .bind(invite)
        .bind(a)
        .bind(b)
        .bind(created)
        .execute(&mut **dst)
        .await
        .map_err(target)?;
    }
}

async fn copy_members(src: Src<'_, '_>, dst: Dst<'_, '_>) -> Result<(), CopyError> {
    let mut after = (i64::MIN, i64::MIN);
    loop {
        let page = sqlx::query_as::<_, (i64, i64, i64)>(
            "SELECT user_id, conv_id, since FROM members WHERE (user_id, conv_id) > (?, ?) \
             ORDER BY user_id, conv_id LIMIT ?",
        )
        .bind(after.0)
        .bind(after.1)
        .bind(PAGE)
        .fetch_all(&mut **src)
        .await
        .map_err(source)?;
        let Some(last) = page.last() else {
            return Ok(());
        };
        after = (last.0, last.1);
        let (mut user, mut conv, mut since) = (vec![], vec![], vec![]);
        for row in page {
            user.push(row.0);
            conv.push(row.1);
            since.push(row.2);
        }
        sqlx::query(
            "INSERT INTO members (user_id, conv_id, since) \
             SELECT * FROM UNNEST($1::int8[], $2::int8[], $3::int8[])",
        )
        .bind(user)
        .bind(conv)
        .bind(since)
        .execute(&mut **dst)
        .await
        .map_err(target)?;
    }
}

async fn copy_devices(src: Src<'_, '_>, dst: Dst<'_, '_>) -> Result<(), CopyError> {
    let mut after = i64::MIN;
    loop {
        let page = sqlx::query_as::<_, (i64, i64, String, i64, i64)>(
            "SELECT id, user_id, name, cursor, last_seen FROM devices WHERE id > ? \
             ORDER BY id LIMIT ?",
        )
        .bind(after)
        .bind(PAGE)
        .fetch_all(&mut **src)
        .await
        .map_err(source)?;
        let Some(last) = page.last() else {
            return Ok(());
        };
        after = last.0;
        let (mut id, mut user, mut name, mut cursor, mut seen) =
            (vec![], vec![], vec![], vec![], vec![]);
        for row in page {
            id.push(row.0);
            user.push(row.1);
            name.push(row.2);
            cursor.push(row.3);
            seen.push(row.4);
        }
        sqlx::query(
            "INSERT INTO devices (id, user_id, name, cursor, last_seen) \
             SELECT * FROM UNNEST($1::int8[], $2::int8[], $3::text[], $4::int8[], $5::int8[])",
        )
        .bind(id)
        .bind(user)
        .bind(name)
        .bind(cursor)
        .bind(seen)
        .execute(&mut **dst)
        .await
        .map_err(target)?;
    }
}

async fn copy_tokens(src: Src<'_, '_>, dst: Dst<'_, '_>) -> Result<(), CopyError> {
    let mut after: Vec<u8> = Vec::new();
    loop {
        let page = sqlx::query_as::<_, (Vec<u8>, i64, i64, i64)>(
            "SELECT hash, user_id, device_id, expires_at FROM tokens WHERE hash > ? \
             ORDER BY hash LIMIT ?",
        )
        .bind(&after)
        .bind(PAGE)
        .fetch_all(&mut **src)
        .await
        .map_err(source)?;
        let Some(last) = page.last() else {
            return Ok(());
        };
        after.clone_from(&last.0);
        let (mut hash, mut user, mut device, mut expires) = (vec![], vec![], vec![], vec![]);
        for row in page {
            hash.push(row.0);
            user.push(row.1);
            device.push(row.2);
            expires.push(row.3);
        }
        sqlx::query(
            "INSERT INTO tokens (hash, user_id, device_id, expires_at) \
             SELECT * FROM UNNEST($1::bytea[], $2::int8[], $3::int8[], $4::int8[])",
        )
        .bind(hash)
        .bind(user)
        .bind(device)
        .bind(expires)
        .execute(&mut **dst)
        .await
        .map_err(target)?;
    }
}

async fn copy_messages(src: Src<'_, '_>, dst: Dst<'_, '_>) -> Result<(), CopyError> {
    let mut after = i64::MIN;
    loop {
        let page = sqlx::query_as::<_, (i64, i64, i64, i64, i64, i64, String)>(
            "SELECT id, conv_id, sender, device, client_msg_id, sent_at, body FROM messages \
             WHERE id > ? ORDER BY id LIMIT ?",
        )
        .bind(after)
        .bind(PAGE)
        .fetch_all(&mut **src)
        .await
        .map_err(source)?;
        let Some(last) = page.last() else {
            return Ok(());
        };
        after = last.0;
        let mut rows = MessageColumns::default();
        for (id, conv, sender, device, client, sent_at, body) in page {
            rows.id.push(id);
            rows.conv.push(conv);
            rows.sender.push(sender);
            rows.device.push(device);
            rows.client.push(client);
            rows.sent_at.push(sent_at);
            rows.body.push(body);
        }
        // A row skipped as a duplicate (impossible under the source's unique index) would
        // show in the count check.
        rows.insert(dst).await.map_err(CopyError::Target)?;
    }
}
