//! [`copy_to_postgres`]: moves a SQLite database into PostgreSQL — every table of the schema,
//! row for row — in one transaction on the target, then checks that each table holds as many
//! rows as the source.
//!
//! The source is read in one read transaction (a consistent snapshot, so a server may even
//! be running on it, though what it writes afterwards is not copied); every table is read in
//! keyset-ordered pages of 5,000 rows, so memory stays bounded however large it is. One piece
//! of code copies every table: [`TABLES`] says what its columns are, and a new table is a line
//! there. *(v2)* Messages arrive without their search words (SQLite keeps its own index): they
//! are written afterwards, in pages, from the copied text.

use sqlx::sqlite::SqliteRow;
use sqlx::{Postgres, Row, Sqlite, Transaction};

use crate::pg_store::{index_messages, PgStore};
use crate::store::{Store, StoreError};
use crate::IdBlock;

/// Rows read and written at a time.
const PAGE: i64 = 5000;

/// A column's type, the same in both schemas (PostgreSQL's `BIGINT`, `TEXT`, `BOOLEAN`,
/// `BYTEA`).
#[derive(Clone, Copy, Debug)]
enum Type {
    Int,
    OptInt,
    Text,
    OptText,
    Bool,
    Bytes,
}

/// A table to copy: its columns, the first `key` of which are its primary key (the page order).
struct Table {
    name: &'static str,
    columns: &'static [(&'static str, Type)],
    key: usize,
}

/// Every table, in the order they are copied.
const TABLES: &[Table] = &[
    Table {
        name: "users",
        columns: &[
            ("id", Type::Int),
            ("name", Type::Text),
            ("name_key", Type::Text),
            ("display_name", Type::Text),
            ("password_hash", Type::Text),
            ("created_at", Type::Int),
            ("disabled", Type::Bool),
        ],
        key: 1,
    },
    Table {
        name: "convs",
        columns: &[
            ("id", Type::Int),
            ("room_name", Type::OptText),
            ("invite_only", Type::Bool),
            ("user_a", Type::OptInt),
            ("user_b", Type::OptInt),
            ("created_at", Type::Int),
            ("topic", Type::Text),
        ],
        key: 1,
    },
    Table {
        name: "members",
        columns: &[
            ("user_id", Type::Int),
            ("conv_id", Type::Int),
            ("since", Type::Int),
        ],
        key: 2,
    },
    Table {
        name: "devices",
        columns: &[
            ("id", Type::Int),
            ("user_id", Type::Int),
            ("name", Type::Text),
            ("cursor", Type::Int),
            ("last_seen", Type::Int),
        ],
        key: 1,
    },
    Table {
        name: "tokens",
        columns: &[
            ("hash", Type::Bytes),
            ("user_id", Type::Int),
            ("device_id", Type::Int),
            ("expires_at", Type::Int),
        ],
        key: 1,
    },
    Table {
        name: "messages",
        columns: &[
            ("id", Type::Int),
            ("conv_id", Type::Int),
            ("sender", Type::Int),
            ("device", Type::Int),
            ("client_msg_id", Type::Int),
            ("sent_at", Type::Int),
            ("body", Type::Text),
            ("kind", Type::Int),
            ("target", Type::OptInt),
        ],
        key: 1,
    },
    Table {
        name: "standings",
        columns: &[
            ("conv_id", Type::Int),
            ("user_id", Type::Int),
            ("role", Type::Int),
            ("banned", Type::Bool),
            ("muted", Type::Bool),
        ],
        key: 2,
    },
    Table {
        name: "operators",
        columns: &[("user_id", Type::Int)],
        key: 1,
    },
    Table {
        name: "audit_log",
        columns: &[
            ("id", Type::Int),
            ("conv_id", Type::Int),
            ("actor", Type::Int),
            ("target", Type::Int),
            ("action", Type::Int),
            ("reason", Type::Text),
            ("at", Type::Int),
        ],
        key: 1,
    },
    Table {
        name: "read_markers",
        columns: &[
            ("user_id", Type::Int),
            ("conv_id", Type::Int),
            ("up_to", Type::Int),
        ],
        key: 2,
    },
];

/// Rows per table, in the order tables are copied.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RowCounts(Vec<(&'static str, u64)>);

impl RowCounts {
    /// The rows of `table` (0 for a table not copied).
    pub fn get(&self, table: &str) -> u64 {
        self.0
            .iter()
            .find(|(name, _)| *name == table)
            .map_or(0, |&(_, count)| count)
    }

    /// Every table with its count.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        self.0.iter().copied()
    }

    fn total(&self) -> u64 {
        self.0.iter().map(|(_, count)| count).sum()
    }
}

impl std::fmt::Display for RowCounts {
    /// `users 2, convs 3, …`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, (table, count)) in self.iter().enumerate() {
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
    let existing = target_counts(&mut dst).await?;
    if existing.total() > 0 {
        if if_not_empty == IfNotEmpty::Refuse {
            return Err(CopyError::NotEmpty(existing));
        }
        let names: Vec<&str> = TABLES.iter().map(|t| t.name).collect();
        sqlx::query(&format!("TRUNCATE {}", names.join(", ")))
            .execute(&mut *dst)
            .await
            .map_err(target)?;
    }
    for table in TABLES {
        copy_table(table, &mut src, &mut dst).await?;
    }
    index_messages(&mut dst, PAGE).await.map_err(target)?;
    // The audit log's ids came with its rows: its sequence continues after them.
    sqlx::query(
        "SELECT setval(pg_get_serial_sequence('audit_log', 'id'), \
                       coalesce(max(id), 0) + 1, false) FROM audit_log",
    )
    .execute(&mut *dst)
    .await
    .map_err(target)?;
    // Numbering goes on above every id and position copied (see `chat_hub::Numbering`).
    sqlx::query(
        "UPDATE message_seq SET last = GREATEST((SELECT coalesce(max(id), 0) FROM messages), \
                                                (SELECT coalesce(max(since), 0) FROM members))",
    )
    .execute(&mut *dst)
    .await
    .map_err(target)?;
    // Nodes take blocks of user, conversation and device ids above every copied id's block
    // (see `chat_hub::IdBlock`), and never a block handed out before (a forced copy).
    sqlx::query(
        "SELECT setval('id_blocks', \
                       GREATEST(GREATEST((SELECT coalesce(max(id), 0) FROM users), \
                                         (SELECT coalesce(max(id), 0) FROM convs), \
                                         (SELECT coalesce(max(id), 0) FROM devices)) / $1 + 1, \
                                (SELECT last_value + is_called::int FROM id_blocks)), \
                       false)",
    )
    .bind(IdBlock::SIZE as i64)
    .execute(&mut *dst)
    .await
    .map_err(target)?;
    let copied = source_counts(&mut src).await?;
    let arrived = target_counts(&mut dst).await?;
    if copied != arrived {
        return Err(CopyError::Mismatch { copied, arrived });
    }
    dst.commit().await.map_err(target)?;
    src.rollback().await.map_err(source)?;
    Ok(copied)
}

/// One query for every table's row count.
fn count_query() -> String {
    let counts: Vec<String> = TABLES
        .iter()
        .map(|t| format!("(SELECT count(*) FROM {})", t.name))
        .collect();
    format!("SELECT {}", counts.join(", "))
}

/// The counts of a row of [`count_query`].
fn counts_of<R: Row>(row: &R) -> Result<RowCounts, sqlx::Error>
where
    usize: sqlx::ColumnIndex<R>,
    i64: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let mut counts = Vec::with_capacity(TABLES.len());
    for (i, table) in TABLES.iter().enumerate() {
        let n: i64 = row.try_get(i)?;
        counts.push((table.name, u64::try_from(n).unwrap_or(0)));
    }
    Ok(RowCounts(counts))
}

async fn source_counts(src: &mut Transaction<'_, Sqlite>) -> Result<RowCounts, CopyError> {
    let row = sqlx::query(&count_query())
        .fetch_one(&mut **src)
        .await
        .map_err(source)?;
    counts_of(&row).map_err(source)
}

async fn target_counts(dst: &mut Transaction<'_, Postgres>) -> Result<RowCounts, CopyError> {
    let row = sqlx::query(&count_query())
        .fetch_one(&mut **dst)
        .await
        .map_err(target)?;
    counts_of(&row).map_err(target)
}

/// A page of one column's values.
enum Values {
    Int(Vec<i64>),
    OptInt(Vec<Option<i64>>),
    Text(Vec<String>),
    OptText(Vec<Option<String>>),
    Bool(Vec<bool>),
    Bytes(Vec<Vec<u8>>),
}

impl Values {
    fn new(ty: Type) -> Self {
        match ty {
            Type::Int => Self::Int(Vec::new()),
            Type::OptInt => Self::OptInt(Vec::new()),
            Type::Text => Self::Text(Vec::new()),
            Type::OptText => Self::OptText(Vec::new()),
            Type::Bool => Self::Bool(Vec::new()),
            Type::Bytes => Self::Bytes(Vec::new()),
        }
    }

    /// Appends column `i` of `row`.
    fn push(&mut self, row: &SqliteRow, i: usize) -> Result<(), sqlx::Error> {
        match self {
            Self::Int(v) => v.push(row.try_get(i)?),
            Self::OptInt(v) => v.push(row.try_get(i)?),
            Self::Text(v) => v.push(row.try_get(i)?),
            Self::OptText(v) => v.push(row.try_get(i)?),
            Self::Bool(v) => v.push(row.try_get(i)?),
            Self::Bytes(v) => v.push(row.try_get(i)?),
        }
        Ok(())
    }

    /// The PostgreSQL array type of the column, for `UNNEST`.
    fn array_type(&self) -> &'static str {
        match self {
            Self::Int(_) | Self::OptInt(_) => "int8[]",
            Self::Text(_) | Self::OptText(_) => "text[]",
            Self::Bool(_) => "bool[]",
            Self::Bytes(_) => "bytea[]",
        }
    }
}

/// Copies one table in pages, in primary-key order.
async fn copy_table(
    table: &Table,
    src: &mut Transaction<'_, Sqlite>,
    dst: &mut Transaction<'_, Postgres>,
) -> Result<(), CopyError> {
    let names: Vec<&str> = table.columns.iter().map(|(name, _)| *name).collect();
    let key = names[..table.key].join(", ");
    let marks = vec!["?"; table.key].join(", ");
    let select = format!("SELECT {} FROM {}", names.join(", "), table.name);
    let first = format!("{select} ORDER BY {key} LIMIT ?");
    let next = format!("{select} WHERE ({key}) > ({marks}) ORDER BY {key} LIMIT ?");
    let arrays: Vec<String> = table
        .columns
        .iter()
        .enumerate()
        .map(|(i, &(_, ty))| format!("${}::{}", i + 1, Values::new(ty).array_type()))
        .collect();
    // Identity columns (the audit log's id) take the copied values.
    let insert = format!(
        "INSERT INTO {} ({}) OVERRIDING SYSTEM VALUE SELECT * FROM UNNEST({})",
        table.name,
        names.join(", "),
        arrays.join(", ")
    );
    let mut last: Option<SqliteRow> = None;
    loop {
        let mut query = sqlx::query(if last.is_some() { &next } else { &first });
        if let Some(row) = &last {
            for (i, &(_, ty)) in table.columns[..table.key].iter().enumerate() {
                query = match ty {
                    Type::Bytes => query.bind(row.try_get::<Vec<u8>, _>(i).map_err(source)?),
                    Type::Text | Type::OptText => {
                        query.bind(row.try_get::<Option<String>, _>(i).map_err(source)?)
                    }
                    _ => query.bind(row.try_get::<Option<i64>, _>(i).map_err(source)?),
                };
            }
        }
        let page = query
            .bind(PAGE)
            .fetch_all(&mut **src)
            .await
            .map_err(source)?;
        if page.is_empty() {
            return Ok(());
        }
        let mut columns: Vec<Values> = table
            .columns
            .iter()
            .map(|&(_, ty)| Values::new(ty))
            .collect();
        for row in &page {
            for (i, column) in columns.iter_mut().enumerate() {
                column.push(row, i).map_err(source)?;
            }
        }
        let mut query = sqlx::query(&insert);
        for column in columns {
            query = match column {
                Values::Int(v) => query.bind(v),
                Values::OptInt(v) => query.bind(v),
                Values::Text(v) => query.bind(v),
                Values::OptText(v) => query.bind(v),
                Values::Bool(v) => query.bind(v),
                Values::Bytes(v) => query.bind(v),
            };
        }
        query.execute(&mut **dst).await.map_err(target)?;
        last = page.into_iter().last();
    }
}
