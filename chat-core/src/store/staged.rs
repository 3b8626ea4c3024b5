//! The run of messages a commit inserts, as a table SQLite reads straight from the writer's
//! memory: `staged_messages`, an eponymous virtual table on the writer's connection. One
//! `INSERT … SELECT` moves a run into `messages` without first writing each row into a table
//! of its own (an in-memory temporary table did that: a statement and a B-tree insert per
//! message and a `DELETE` per run, ~0.4 µs a message, of which reading from memory gives back
//! 0.15–0.2 µs).
//!
//! The writer clears the last run's rows ([`Staged::clear`]), fills them ([`Staged::push`])
//! and runs the statement that reads them; the table's cursors read the same rows. Rows
//! come out in the order they were pushed, which the statement relies on: of two messages
//! with one client message id, the first is stored.

use std::cell::RefCell;
use std::os::raw::c_int;
use std::rc::Rc;

use rusqlite::vtab::{
    eponymous_only_module, Context, IndexInfo, VTab, VTabConnection, VTabCursor, Values,
};
use rusqlite::{ffi, Connection};

/// The table's name in SQL.
pub(super) const NAME: &str = "staged_messages";

/// The integer columns, in the order [`Staged::push`] takes them; `body`, the text, follows.
const SCHEMA: &str = "CREATE TABLE x(id INTEGER, conv_id INTEGER, sender INTEGER, \
     device INTEGER, client_msg_id INTEGER, sent_at INTEGER, body TEXT)";
const INTEGERS: usize = 6;

/// The rows, kept between runs so that a run allocates nothing once they have grown.
#[derive(Debug, Default)]
struct Rows {
    integers: Vec<[i64; INTEGERS]>,
    /// Every row's text, one after the other: row `i`'s ends at `ends[i]`.
    text: String,
    ends: Vec<usize>,
}

impl Rows {
    fn text(&self, row: usize) -> Option<&str> {
        let start = match row.checked_sub(1) {
            Some(before) => *self.ends.get(before)?,
            None => 0,
        };
        self.text.get(start..*self.ends.get(row)?)
    }
}

/// The writer's hold on the rows its connection's `staged_messages` reads. The rows live on
/// the writer's thread, as its connection does (`Rc`: neither is sent anywhere else).
#[derive(Clone, Debug, Default)]
pub(super) struct Staged(Rc<RefCell<Rows>>);

impl Staged {
    /// Declares `staged_messages` on `conn`, reading the rows of the handle returned.
    pub(super) fn register(conn: &Connection) -> rusqlite::Result<Self> {
        let staged = Self::default();
        conn.create_module(NAME, eponymous_only_module::<Table>(), Some(staged.clone()))?;
        Ok(staged)
    }

    /// Adds a row: `id, conv_id, sender, device, client_msg_id, sent_at`, then `body`.
    pub(super) fn push(&self, integers: [i64; INTEGERS], body: &str) {
        let mut rows = self.0.borrow_mut();
        rows.integers.push(integers);
        rows.text.push_str(body);
        let end = rows.text.len();
        rows.ends.push(end);
    }

    /// Removes every row, keeping the memory.
    pub(super) fn clear(&self) {
        let mut rows = self.0.borrow_mut();
        rows.integers.clear();
        rows.text.clear();
        rows.ends.clear();
    }
}

/// The virtual table; SQLite keeps it (`base` first, as it requires) for the connection's life.
#[repr(C)]
struct Table {
    base: ffi::sqlite3_vtab,
    rows: Staged,
}

// SAFETY: `Table` and `Cursor` are `repr(C)` with SQLite's base struct first, as rusqlite's
// trampolines require; nothing else here is unsafe.
unsafe impl<'vtab> VTab<'vtab> for Table {
    type Aux = Staged;
    type Cursor = Cursor;

    fn connect(
        _: &mut VTabConnection,
        aux: Option<&Staged>,
        _: &[&[u8]],
    ) -> rusqlite::Result<(String, Self)> {
        let rows = aux.cloned().unwrap_or_default();
        let table = Self {
            base: ffi::sqlite3_vtab::default(),
            rows,
        };
        Ok((SCHEMA.to_owned(), table))
    }

    fn best_index(&self, info: &mut IndexInfo) -> rusqlite::Result<()> {
        // A scan is all there is, in the order the rows were pushed: rowid order.
        let by_rowid = info.num_of_order_by() == 1
            && info
                .order_bys()
                .all(|o| o.column() == -1 && !o.is_order_by_desc());
        info.set_order_by_consumed(by_rowid);
        info.set_estimated_cost(1.0);
        info.set_estimated_rows(i64::try_from(self.rows.0.borrow().ends.len()).unwrap_or(i64::MAX));
        Ok(())
    }

    fn open(&'vtab mut self) -> rusqlite::Result<Cursor> {
        Ok(Cursor {
            base: ffi::sqlite3_vtab_cursor::default(),
            rows: self.rows.clone(),
            row: 0,
        })
    }
}

/// A scan of the rows.
#[repr(C)]
struct Cursor {
    base: ffi::sqlite3_vtab_cursor,
    rows: Staged,
    row: usize,
}

// SAFETY: as for `Table`.
unsafe impl VTabCursor for Cursor {
    fn filter(&mut self, _: c_int, _: Option<&str>, _: &Values<'_>) -> rusqlite::Result<()> {
        self.row = 0;
        Ok(())
    }

    fn next(&mut self) -> rusqlite::Result<()> {
        self.row += 1;
        Ok(())
    }

    fn eof(&self) -> bool {
        self.row >= self.rows.0.borrow().ends.len()
    }

    fn column(&self, ctx: &mut Context, column: c_int) -> rusqlite::Result<()> {
        let rows = self.rows.0.borrow();
        let column = usize::try_from(column).unwrap_or(usize::MAX);
        if let Some(&value) = rows.integers.get(self.row).and_then(|row| row.get(column)) {
            ctx.set_result(&value)
        } else if let Some(body) = rows.text(self.row).filter(|_| column == INTEGERS) {
            ctx.set_result(&body)
        } else {
            Err(rusqlite::Error::ModuleError(format!(
                "{NAME} has no column {column} in row {}",
                self.row
            )))
        }
    }

    fn rowid(&self) -> rusqlite::Result<i64> {
        Ok(i64::try_from(self.row).unwrap_or(i64::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(conn: &Connection, sql: &str) -> Vec<(i64, i64, String)> {
        let mut statement = conn.prepare(sql).unwrap();
        let rows = statement
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
            .unwrap();
        rows.collect::<Result<_, _>>().unwrap()
    }

    #[test]
    fn rows_come_out_in_the_order_pushed_and_are_gone_once_cleared() {
        let conn = Connection::open_in_memory().unwrap();
        let staged = Staged::register(&conn).unwrap();
        staged.push([3, 30, 300, 3000, 30000, 300000], "third");
        staged.push([1, 10, 100, 1000, 10000, 100000], "");
        staged.push([2, 20, 200, 2000, 20000, 200000], "zwei ü");
        let sql = "SELECT id, sent_at, body FROM staged_messages";
        let expected = vec![
            (3, 300000, "third".to_owned()),
            (1, 100000, String::new()),
            (2, 200000, "zwei ü".to_owned()),
        ];
        assert_eq!(scan(&conn, sql), expected);
        assert_eq!(scan(&conn, &format!("{sql} ORDER BY rowid")), expected);
        let mut reversed = expected.clone();
        reversed.reverse();
        assert_eq!(scan(&conn, &format!("{sql} ORDER BY rowid DESC")), reversed);
        assert_eq!(scan(&conn, &format!("{sql} ORDER BY id"))[0].0, 1);
        staged.clear();
        assert!(scan(&conn, sql).is_empty());
        staged.push([4, 40, 400, 4000, 40000, 400000], "again");
        assert_eq!(scan(&conn, sql), vec![(4, 400000, "again".to_owned())]);
    }
}
