//! The SQLite writer: every write of a [`Store`](super::Store) goes through one connection,
//! driven through rusqlite by one OS thread that owns it.
//!
//! sqlx runs each statement on a worker thread of its own and hands every command and result
//! over channels: a batch of one BEGIN, a few INSERTs, the duplicate lookups and a COMMIT cost
//! a dozen thread wake-ups. Here a whole [`apply`](Writer::apply) is one job: the engine's
//! writer task sends it, this thread runs `BEGIN IMMEDIATE`, cached prepared statements and
//! `COMMIT` with direct calls into SQLite, and sends the result back — two wake-ups per
//! commit, whatever it holds. Messages are staged in this thread's memory ([`Staged`]) and
//! moved into `messages` by one statement per run ([`insert_messages`] says why). Reads stay on
//! the sqlx pool; WAL lets them run while this connection writes.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use rusqlite::{params, Connection, OpenFlags};
use tokio::sync::oneshot;

use super::gather;
use super::staged::Staged;
use super::{
    action_code, client_id, committed, int, kind_code, role_code, uint, DbFile, StoreError,
    BUSY_TIMEOUT,
};
use crate::{
    Committed, ConvKind, MessageId, Numbering, Standing, StoredMessage, UnixMillis, Write,
};

/// Prepared statements kept per connection (the writer uses about 25).
const STATEMENT_CACHE: usize = 64;

/// How to open the writer connection, again after a failure.
#[derive(Debug)]
pub(super) struct Target {
    /// A file path, or a `file:` URI (with [`OpenFlags::SQLITE_OPEN_URI`]).
    pub(super) path: PathBuf,
    pub(super) flags: OpenFlags,
    /// Run once the connection is open: the same settings as the pool's connections.
    pub(super) pragmas: String,
    /// The file and its identity at open, checked before each write (`None` in memory).
    pub(super) file: Option<Arc<DbFile>>,
}

impl Target {
    /// Opens the connection, and numbering above the highest id or position the file holds.
    fn open(&self) -> Result<Open, StoreError> {
        // A file's WAL frames are written a commit at a time (`gather`); an in-memory
        // database names its own VFS.
        let conn = if self.file.is_some() && gather::register() {
            Connection::open_with_flags_and_vfs(&self.path, self.flags, gather::NAME)?
        } else {
            Connection::open_with_flags(&self.path, self.flags)?
        };
        conn.busy_timeout(BUSY_TIMEOUT)?;
        conn.execute_batch(&self.pragmas)?;
        let staged = Staged::register(&conn)?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        let last: i64 = conn.query_row(LAST_POSITION, [], |row| row.get(0))?;
        let numbering = Numbering::new(MessageId(uint("message id", last)?));
        let indexed: i64 = conn.query_row(INDEXED, [], |row| row.get(0))?;
        Ok(Open {
            conn,
            staged,
            numbering,
            indexed: MessageId(uint("message id", indexed)?),
        })
    }
}

/// The writer's connection, its numbering of messages and how far the search index goes.
/// This connection is the file's only writer (`BEGIN IMMEDIATE`), so what it holds is the
/// file's: it moves only when a transaction commits, and is read again whenever the
/// connection is.
#[derive(Debug)]
struct Open {
    conn: Connection,
    /// The rows `conn`'s `staged_messages` reads.
    staged: Staged,
    numbering: Numbering,
    /// `search_indexed.up_to`: the messages above it are not in the search index yet.
    indexed: MessageId,
}

/// Messages left out of the search index until this many are waiting: one segment for them
/// all. A segment per commit (and its pages in the WAL) was most of FTS5's cost at low rates
/// (a message or two per commit: ~37 µs of a 165 µs commit); a search reads the ones waiting.
const INDEX_BATCH: u64 = 1024;

/// How long messages wait for the search index at most when fewer than [`INDEX_BATCH`] come.
const INDEX_WITHIN: Duration = Duration::from_secs(1);

const INDEXED: &str = "SELECT up_to FROM search_indexed";

/// Indexes the messages with ids in `(from, to]` and moves `up_to` to `to`, inside a
/// transaction: the index then holds every message up to it, as the triggers keep it.
fn index(conn: &Connection, from: MessageId, to: MessageId) -> Result<(), StoreError> {
    let (from, to) = (int("message id", from.0)?, int("message id", to.0)?);
    run_sql(
        conn,
        "INSERT INTO messages_fts (rowid, body) \
         SELECT id, body FROM messages WHERE id > ? AND id <= ? AND kind < 2",
        params![from, to],
    )?;
    run_sql(conn, "UPDATE search_indexed SET up_to = ?", params![to])
}

/// The highest message id or membership position stored (an id taken by a resend found to be
/// a duplicate is never stored, but a membership's `since` may be it).
const LAST_POSITION: &str = "SELECT max((SELECT coalesce(max(id), 0) FROM messages), \
     (SELECT coalesce(max(since), 0) FROM members))";

/// A handle on the writer thread; clones share it. The thread ends when every handle is gone
/// or at [`close`](Self::close).
#[derive(Clone, Debug)]
pub(super) struct Writer {
    jobs: mpsc::Sender<Job>,
}

#[derive(Debug)]
enum Job {
    Apply {
        persists: Vec<Vec<Write>>,
        done: oneshot::Sender<Result<Vec<Committed>, StoreError>>,
    },
    Close {
        done: oneshot::Sender<()>,
    },
}

/// What a handle reports once the thread is gone (closed, or ended by a panic).
fn closed() -> StoreError {
    StoreError::Database(sqlx::Error::PoolClosed)
}

impl Writer {
    /// Opens the writer connection on a new thread.
    pub(super) async fn start(target: Target) -> Result<Self, StoreError> {
        let (jobs, queue) = mpsc::channel();
        let (ready, opened) = oneshot::channel();
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || match target.open() {
                Ok(open) => {
                    let _ = ready.send(Ok(()));
                    run(&target, Some(open), &queue);
                }
                Err(error) => {
                    let _ = ready.send(Err(error));
                }
            })
            .map_err(|e| StoreError::Database(sqlx::Error::Io(e)))?;
        opened.await.map_err(|_| closed())??;
        Ok(Self { jobs })
    }

    /// Applies `persists` in one transaction on the writer thread.
    pub(super) async fn apply(
        &self,
        persists: &[Vec<Write>],
    ) -> Result<Vec<Committed>, StoreError> {
        let (done, result) = oneshot::channel();
        let job = Job::Apply {
            persists: persists.to_vec(),
            done,
        };
        self.jobs.send(job).map_err(|_| closed())?;
        result.await.map_err(|_| closed())?
    }

    /// Closes the connection once the jobs before this one are done; later applies fail.
    pub(super) async fn close(&self) {
        let (done, closed) = oneshot::channel();
        if self.jobs.send(Job::Close { done }).is_ok() {
            let _ = closed.await;
        }
    }
}

/// The writer thread: one job at a time, until closed or every handle is dropped. A file
/// database's WAL is checkpointed by a [`Checkpointer`] beside it, woken after each commit,
/// and emptied after a deletion ([`Erasure`]).
fn run(target: &Target, mut conn: Option<Open>, queue: &mpsc::Receiver<Job>) {
    let mut checkpointer = target.file.is_some().then(|| Checkpointer::start(target));
    // When the messages not yet in the search index are to be indexed, whatever came since.
    let mut index_by: Option<Instant> = None;
    let mut erasure = Erasure::default();
    loop {
        if erasure.due(Instant::now()) {
            erasure.run(conn.as_ref().map(|open| &open.conn));
            continue;
        }
        let waiting = conn
            .as_ref()
            .is_some_and(|open| open.numbering.last() > open.indexed);
        index_by = waiting.then(|| index_by.unwrap_or_else(|| Instant::now() + INDEX_WITHIN));
        let job = match index_by.into_iter().chain(erasure.at).min() {
            None => queue
                .recv()
                .map_err(|_| mpsc::RecvTimeoutError::Disconnected),
            Some(by) => queue.recv_timeout(by.saturating_duration_since(Instant::now())),
        };
        let job = match job {
            Ok(job) => job,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if index_by.is_some_and(|by| by <= Instant::now()) {
                    // Nothing came for a while: a transaction of its own for the index.
                    if let Err(error) = apply(target, &mut conn, Vec::new(), true) {
                        tracing::warn!(%error, "cannot index messages for search now");
                        // Tried again after as long, or with the next batch.
                        index_by = None;
                    } else if let Some(checkpointer) = &checkpointer {
                        checkpointer.committed();
                    }
                }
                continue;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        };
        match job {
            Job::Apply { persists, done } => {
                let erases = target.file.is_some() && persists.iter().flatten().any(erases);
                let result = apply(target, &mut conn, persists, false);
                if result.is_ok() {
                    if let Some(checkpointer) = &checkpointer {
                        checkpointer.committed();
                    }
                    if erases {
                        erasure.deleted(Instant::now());
                    }
                }
                let _ = done.send(result);
            }
            Job::Close { done } => {
                // The checkpointer's connection first: the last connection to close cleans
                // the WAL up.
                drop(checkpointer.take());
                drop(conn.take());
                let _ = done.send(());
                return;
            }
        }
    }
}

/// Whether `write` overwrites text that must then leave the disk: a deletion's.
fn erases(write: &Write) -> bool {
    matches!(write, Write::ChangeMessage { text: None, .. })
}

/// How long at most a deleted message's text stays in the WAL file (readers permitting), and
/// how often at most the writer empties the WAL for deletions.
///
/// `secure_delete` overwrites the text in the page a deletion changes, and a checkpoint
/// copies that page over the database file's; but the WAL keeps the page's earlier images,
/// text and all, in frames that only later commits overwrite: under steady load the WAL
/// rewinds once per `WAL_CHECKPOINT_PAGES` (256 MiB), and a quiet server's WAL may keep them
/// until it stops. Emptying it holds up the commits behind it while it copies what is left,
/// fsyncs the file and truncates the WAL, and the next commit fsyncs the new WAL's header.
/// Truncating is the cost: the WAL grows to 256 MiB under steady load, and freeing that took
/// 85 ms on this project's test VM (the whole emptying 95–110 ms, at 10k DMs/s; 0.1 ms on an
/// idle server). With a deletion every 0.4 s, emptying once a second made that stall the DM
/// p99 (14–18 ms against 2.0); once a minute the p99 did not move (2.64 against 2.59 ms).
const ERASE_WITHIN: Duration = Duration::from_secs(60);

/// How soon emptying the WAL is tried again when a reader or the checkpoint thread was in
/// it (not a divisor of [`CHECKPOINT_EVERY`], so as not to meet the checkpoints in step); each
/// failed try doubles the wait, up to [`ERASE_RETRY_MAX`]. A try that a reader holds up still
/// copies what it can, and fsyncs the file, on the writer's thread.
const ERASE_RETRY: Duration = Duration::from_millis(30);
const ERASE_RETRY_MAX: Duration = Duration::from_secs(1);

/// The writer empties the WAL after a deletion: `PRAGMA wal_checkpoint(TRUNCATE)` copies it
/// all into the database file and truncates it to nothing. The first deletion in a while is
/// erased at once (after its commit is answered); later ones wait until [`ERASE_WITHIN`]
/// after the last emptying, so a run of deletions costs one. Emptying never waits for a
/// reader or the checkpoint thread (the commits queued behind it would wait too): when one is
/// in the WAL it is tried again after [`ERASE_RETRY`], then less often.
#[derive(Debug, Default)]
struct Erasure {
    /// When the WAL is to be emptied next; `None` while no deletion waits.
    at: Option<Instant>,
    /// When it was last emptied.
    last: Option<Instant>,
    /// Tries that failed since then.
    failed: u32,
}

impl Erasure {
    /// A deletion was committed at `now`.
    fn deleted(&mut self, now: Instant) {
        let earliest = self.last.map_or(now, |last| (last + ERASE_WITHIN).max(now));
        self.at.get_or_insert(earliest);
    }

    fn due(&self, now: Instant) -> bool {
        self.at.is_some_and(|at| at <= now)
    }

    /// Empties the WAL through the writer's connection (`None`: closed after a failure, and
    /// opened again by the next commit), or schedules another try.
    fn run(&mut self, conn: Option<&Connection>) {
        let now = Instant::now();
        match conn.map(empty_wal) {
            Some(Ok(true)) => {
                self.at = None;
                self.last = Some(now);
                self.failed = 0;
            }
            Some(Ok(false)) => {
                let wait = ERASE_RETRY.saturating_mul(1 << self.failed.min(8));
                self.at = Some(now + wait.min(ERASE_RETRY_MAX));
                self.failed += 1;
            }
            Some(Err(error)) => {
                tracing::warn!(%error, "cannot empty the WAL after a deletion");
                self.at = Some(now + ERASE_WITHIN);
            }
            None => self.at = Some(now + ERASE_WITHIN),
        }
    }
}

/// `PRAGMA wal_checkpoint(TRUNCATE)` without waiting: whether the WAL is now empty (`false`
/// when a reader or another checkpoint held it; SQLite then copied what it could).
fn empty_wal(conn: &Connection) -> Result<bool, StoreError> {
    let began = Instant::now();
    conn.busy_timeout(Duration::ZERO)?;
    let busy = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| {
        row.get::<_, i64>(0)
    });
    conn.busy_timeout(BUSY_TIMEOUT)?;
    let emptied = busy? == 0;
    tracing::debug!(emptied, took = ?began.elapsed(), "emptying the WAL after a deletion");
    Ok(emptied)
}

/// How often the checkpointer copies the WAL back at most.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);

/// Copies the WAL back into the database file on a thread and connection of its own
/// (`PRAGMA wal_checkpoint(PASSIVE)`, at most every [`CHECKPOINT_EVERY`] while commits come).
///
/// A checkpoint copies pages and fsyncs the file: tens of milliseconds under load. Run by the
/// writer (SQLite's automatic checkpoint, after the commit that fills the WAL past its limit)
/// it held up every commit queued behind it: the p99 of stored-before-acknowledged latency
/// at fixed rates. A passive checkpoint never blocks the writer, which keeps its automatic
/// checkpoint as the bound on the WAL's size: that one now finds nearly every page copied
/// already, and rewinds the WAL.
struct Checkpointer {
    /// A commit came since the thread last began a checkpoint: set by the writer, taken by
    /// the thread.
    due: Arc<AtomicBool>,
    /// Taken at drop: the thread's loop ends when its receiver finds no sender.
    wake: Option<mpsc::SyncSender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Checkpointer {
    /// Starts the thread; if it cannot start, the writer's own checkpoints still run.
    fn start(target: &Target) -> Self {
        let (wake, woken) = mpsc::sync_channel(1);
        let due = Arc::new(AtomicBool::new(false));
        let (path, flags, taken) = (target.path.clone(), target.flags, Arc::clone(&due));
        let thread = std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || checkpoints(&path, flags, &taken, &woken))
            .map_err(|error| tracing::warn!(%error, "no checkpoint thread"))
            .ok();
        Self {
            due,
            wake: Some(wake),
            thread,
        }
    }

    /// A commit happened: a checkpoint is due. Only the first commit after a checkpoint began
    /// wakes the thread (one wake-up per checkpoint, not one per commit).
    fn committed(&self) {
        if !self.due.load(Ordering::Relaxed) && !self.due.swap(true, Ordering::AcqRel) {
            if let Some(wake) = &self.wake {
                let _ = wake.try_send(());
            }
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        // Dropping the sender ends the thread's loop; wait for its connection to close.
        drop(self.wake.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The checkpointer's loop, until the writer drops its end of `woken`. It sleeps while no
/// checkpoint is `due`; a commit that makes one due wakes it.
fn checkpoints(
    path: &std::path::Path,
    flags: OpenFlags,
    due: &AtomicBool,
    woken: &mpsc::Receiver<()>,
) {
    let conn = match Connection::open_with_flags(path, flags) {
        Ok(conn) => conn,
        Err(error) => {
            tracing::warn!(%error, "cannot open the checkpoint connection");
            return;
        }
    };
    loop {
        // A wake-up comes after `due` is set, so none is missed; a stale one only ends a
        // wait early, to find nothing due.
        while !due.swap(false, Ordering::AcqRel) {
            if woken.recv().is_err() {
                return;
            }
        }
        // Busy (another checkpoint running) or failed: the writer's own checkpoint still
        // bounds the WAL, and the next commit wakes this one again.
        if let Err(error) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::debug!(%error, "background checkpoint failed");
        }
        // The pause between checkpoints gathers commits (the first of them wakes this
        // thread, and it sleeps on), and ends at once when the writer goes (a closing store
        // does not wait for it).
        let until = Instant::now() + CHECKPOINT_EVERY;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            match woken.recv_timeout(left) {
                Ok(()) => {}
                Err(mpsc::RecvTimeoutError::Timeout) => break,
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            }
        }
    }
}

/// Checks the file, numbers `persists` ([`Numbering`]), then applies them in one `BEGIN
/// IMMEDIATE … COMMIT`. A failure leaves no transaction open and the numbering where it was:
/// SQLite may have rolled back by itself (a full disk), else it is rolled back here, and a
/// connection that cannot roll back is closed and opened again at the next apply. The same
/// transaction indexes the messages waiting for search once [`INDEX_BATCH`] wait, or any
/// that wait if `index_now`.
fn apply(
    target: &Target,
    conn: &mut Option<Open>,
    mut persists: Vec<Vec<Write>>,
    index_now: bool,
) -> Result<Vec<Committed>, StoreError> {
    if let Some(file) = &target.file {
        file.check()?;
    }
    let open = match conn {
        Some(open) => open,
        None => conn.insert(target.open()?),
    };
    let mut numbering = open.numbering;
    let positions: Vec<MessageId> = persists
        .iter_mut()
        .map(|writes| numbering.number(writes))
        .collect();
    let last = numbering.last();
    let index_to = (last > open.indexed && (index_now || last.0 - open.indexed.0 >= INDEX_BATCH))
        .then_some(last);
    let result = in_transaction(open, &persists, index_to).map(|duplicates| {
        open.numbering = numbering;
        open.indexed = index_to.unwrap_or(open.indexed);
        committed(positions, duplicates)
    });
    let db = &open.conn;
    if result.is_err() && !db.is_autocommit() {
        let rolled_back = db.execute_batch("ROLLBACK");
        if rolled_back.is_err() || !db.is_autocommit() {
            tracing::warn!(
                error = rolled_back.err().map(tracing::field::display),
                "cannot roll back a failed write; reopening the database"
            );
            *conn = None;
        }
    }
    result
}

const BEGIN: &str = "BEGIN IMMEDIATE";
const COMMIT: &str = "COMMIT";

/// The staged messages in order (the kind is the column's default, 0: only messages take this
/// path); a resend of a client message id stored before, or earlier in the same run, inserts
/// nothing. (`WHERE true` keeps SQLite's parser from reading `ON` as a join's.) Any other
/// constraint that fails (none should) fails the statement, `OR FAIL`, without undoing the rows
/// it inserted: the failed transaction is rolled back whole anyway, and a statement that may not
/// abort needs no statement journal (SQLite would otherwise copy each page the statement
/// changes before changing it: 0.5 µs a message in commits of 400).
const INSERT_STAGED: &str =
    "INSERT OR FAIL INTO messages (id, conv_id, sender, device, client_msg_id, sent_at, body) \
     SELECT id, conv_id, sender, device, client_msg_id, sent_at, body \
     FROM staged_messages WHERE true ORDER BY rowid \
     ON CONFLICT (client_msg_id, sender) WHERE kind < 3 DO NOTHING";

const ORIGINAL: &str =
    "SELECT id, sent_at FROM messages WHERE sender = ? AND client_msg_id = ? AND kind < 3";

/// Runs `persists` in order; consecutive messages (the usual batch is nothing else) are
/// inserted together by [`insert_messages`]. Then indexes the messages above `open.indexed`
/// for search, up to `index_to` if given.
fn in_transaction(
    open: &Open,
    persists: &[Vec<Write>],
    index_to: Option<MessageId>,
) -> Result<Vec<Option<(MessageId, UnixMillis)>>, StoreError> {
    let Open {
        conn,
        staged,
        indexed,
        ..
    } = open;
    conn.prepare_cached(BEGIN)?.execute([])?;
    let mut duplicates = vec![None; persists.len()];
    let mut run: Vec<(usize, &StoredMessage)> = Vec::new();
    for (index, writes) in persists.iter().enumerate() {
        for write in writes {
            match write {
                Write::InsertMessage(message) if message.kind.is_message() => {
                    run.push((index, message));
                }
                write => {
                    insert_messages(conn, staged, &run, &mut duplicates)?;
                    run.clear();
                    apply_one(conn, write)?;
                }
            }
        }
    }
    insert_messages(conn, staged, &run, &mut duplicates)?;
    if let Some(to) = index_to {
        index(conn, *indexed, to)?;
    }
    conn.prepare_cached(COMMIT)?.execute([])?;
    Ok(duplicates)
}

/// Inserts a run of messages with one statement: the rows are staged in the writer's memory
/// ([`Staged`]), then one `INSERT … SELECT` moves them all. One statement rather
/// than one per message: every statement that writes `messages` inside a transaction opens a
/// statement savepoint, and FTS5 writes its pending terms out as a segment at each one (when
/// the index took messages as they came, a segment per message). A message whose
/// sender already stored its client message id is skipped, and the original is recorded for
/// its persist.
fn insert_messages(
    conn: &Connection,
    staged: &Staged,
    run: &[(usize, &StoredMessage)],
    duplicates: &mut [Option<(MessageId, UnixMillis)>],
) -> Result<(), StoreError> {
    if run.is_empty() {
        return Ok(());
    }
    // The rows of the last run (or of one whose numbers did not convert halfway) go here:
    // nothing reads them in between.
    staged.clear();
    for (_, m) in run {
        let row = [
            int("message id", m.id.0)?,
            int("conversation id", m.conv.0)?,
            int("user id", m.sender.0)?,
            int("device id", m.device.0)?,
            client_id(m.client_msg_id),
            int("time", m.sent_at)?,
        ];
        staged.push(row, &m.text);
    }
    let inserted = conn.prepare_cached(INSERT_STAGED)?.execute([])?;
    if inserted == run.len() {
        return Ok(());
    }
    // Some were resends: each message's (sender, client id) row is either itself or the
    // original.
    let mut original = conn.prepare_cached(ORIGINAL)?;
    for &(index, m) in run {
        let mut rows = original.query(params![
            int("user id", m.sender.0)?,
            client_id(m.client_msg_id)
        ])?;
        let Some(row) = rows.next()? else {
            continue;
        };
        let (id, sent_at): (i64, i64) = (row.get(0)?, row.get(1)?);
        if id == int("message id", m.id.0)? {
            continue;
        }
        if let Some(slot) = duplicates.get_mut(index) {
            *slot = Some((MessageId(uint("message id", id)?), uint("time", sent_at)?));
        }
    }
    Ok(())
}

/// Runs one cached statement.
fn run_sql(conn: &Connection, sql: &str, params: impl rusqlite::Params) -> Result<(), StoreError> {
    conn.prepare_cached(sql)?.execute(params)?;
    Ok(())
}

fn apply_one(conn: &Connection, write: &Write) -> Result<(), StoreError> {
    match write {
        Write::CreateUser {
            id,
            name,
            password_hash,
            created_at,
        } => run_sql(
            conn,
            "INSERT INTO users (id, name, name_key, display_name, password_hash, created_at) \
             VALUES (?, ?, ?, ?, ?, ?)",
            params![
                int("user id", id.0)?,
                name,
                name.to_ascii_lowercase(),
                name,
                password_hash,
                int("time", *created_at)?,
            ],
        ),
        Write::SetDisplayName { user, display_name } => run_sql(
            conn,
            "UPDATE users SET display_name = ? WHERE id = ?",
            params![display_name, int("user id", user.0)?],
        ),
        Write::CreateConv {
            id,
            kind: ConvKind::Room { name, invite_only },
            created_at,
        } => run_sql(
            conn,
            "INSERT INTO convs (id, room_name, invite_only, created_at) VALUES (?, ?, ?, ?)",
            params![
                int("conversation id", id.0)?,
                name,
                invite_only,
                int("time", *created_at)?,
            ],
        ),
        Write::CreateConv {
            id,
            kind: ConvKind::Direct { a, b },
            created_at,
        } => run_sql(
            conn,
            "INSERT INTO convs (id, user_a, user_b, created_at) VALUES (?, ?, ?, ?)",
            params![
                int("conversation id", id.0)?,
                int("user id", a.0)?,
                int("user id", b.0)?,
                int("time", *created_at)?,
            ],
        ),
        Write::AddMember { conv, user, since } => run_sql(
            conn,
            "INSERT INTO members (user_id, conv_id, since) VALUES (?, ?, ?) \
             ON CONFLICT (user_id, conv_id) DO UPDATE SET since = excluded.since",
            params![
                int("user id", user.0)?,
                int("conversation id", conv.0)?,
                int("message id", since.0)?,
            ],
        ),
        Write::RemoveMember { conv, user } => run_sql(
            conn,
            "DELETE FROM members WHERE user_id = ? AND conv_id = ?",
            params![int("user id", user.0)?, int("conversation id", conv.0)?],
        ),
        Write::SetDevice {
            id,
            user,
            name,
            cursor,
            last_seen,
        } => run_sql(
            conn,
            "INSERT INTO devices (id, user_id, name, cursor, last_seen) VALUES (?, ?, ?, ?, ?) \
             ON CONFLICT (id) DO UPDATE SET cursor = excluded.cursor, last_seen = excluded.last_seen",
            params![
                int("device id", id.0)?,
                int("user id", user.0)?,
                name,
                int("message id", cursor.0)?,
                int("time", *last_seen)?,
            ],
        ),
        Write::DeleteDevice { id } => {
            let id = int("device id", id.0)?;
            run_sql(conn, "DELETE FROM tokens WHERE device_id = ?", [id])?;
            run_sql(conn, "DELETE FROM devices WHERE id = ?", [id])
        }
        Write::CreateToken {
            hash,
            user,
            device,
            expires_at,
        } => run_sql(
            conn,
            "INSERT INTO tokens (hash, user_id, device_id, expires_at) VALUES (?, ?, ?, ?)",
            params![
                &hash[..],
                int("user id", user.0)?,
                int("device id", device.0)?,
                int("time", *expires_at)?,
            ],
        ),
        Write::RevokeToken { hash } => {
            run_sql(conn, "DELETE FROM tokens WHERE hash = ?", [&hash[..]])
        }
        Write::SetStanding {
            conv,
            user,
            standing,
        } if *standing == Standing::default() => run_sql(
            conn,
            "DELETE FROM standings WHERE conv_id = ? AND user_id = ?",
            params![int("conversation id", conv.0)?, int("user id", user.0)?],
        ),
        Write::SetStanding {
            conv,
            user,
            standing,
        } => run_sql(
            conn,
            "INSERT INTO standings (conv_id, user_id, role, banned, muted) VALUES (?, ?, ?, ?, ?) \
             ON CONFLICT (conv_id, user_id) DO UPDATE SET role = excluded.role, \
             banned = excluded.banned, muted = excluded.muted",
            params![
                int("conversation id", conv.0)?,
                int("user id", user.0)?,
                role_code(standing.role),
                standing.banned,
                standing.muted,
            ],
        ),
        Write::Audit(record) => run_sql(
            conn,
            "INSERT INTO audit_log (conv_id, actor, target, action, reason, at) \
             VALUES (?, ?, ?, ?, ?, ?)",
            params![
                int("conversation id", record.conv.0)?,
                int("user id", record.actor.0)?,
                int("user id", record.target.0)?,
                action_code(record.action),
                record.reason,
                int("time", record.at)?,
            ],
        ),
        Write::SetTopic { conv, topic } => run_sql(
            conn,
            "UPDATE convs SET topic = ? WHERE id = ?",
            params![topic, int("conversation id", conv.0)?],
        ),
        Write::SetOperator {
            user,
            operator: true,
        } => run_sql(
            conn,
            "INSERT OR IGNORE INTO operators (user_id) VALUES (?)",
            [int("user id", user.0)?],
        ),
        Write::SetOperator {
            user,
            operator: false,
        } => run_sql(
            conn,
            "DELETE FROM operators WHERE user_id = ?",
            [int("user id", user.0)?],
        ),
        Write::SetDisabled { user, disabled } => run_sql(
            conn,
            "UPDATE users SET disabled = ? WHERE id = ?",
            params![disabled, int("user id", user.0)?],
        ),
        Write::SetReadMarker { user, conv, up_to } => run_sql(
            conn,
            "INSERT INTO read_markers (user_id, conv_id, up_to) VALUES (?, ?, ?) \
             ON CONFLICT (user_id, conv_id) DO UPDATE SET up_to = max(up_to, excluded.up_to)",
            params![
                int("user id", user.0)?,
                int("conversation id", conv.0)?,
                int("message id", up_to.0)?,
            ],
        ),
        Write::InsertMessage(m) => {
            let (kind, target) = kind_code(m.kind)?;
            run_sql(
                conn,
                "INSERT INTO messages \
                 (id, conv_id, sender, device, client_msg_id, sent_at, body, kind, target) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                params![
                    int("message id", m.id.0)?,
                    int("conversation id", m.conv.0)?,
                    int("user id", m.sender.0)?,
                    int("device id", m.device.0)?,
                    client_id(m.client_msg_id),
                    int("time", m.sent_at)?,
                    m.text,
                    kind,
                    target,
                ],
            )
        }
        Write::ChangeMessage {
            target,
            text: Some(text),
        } => run_sql(
            conn,
            "UPDATE messages SET body = ?, kind = 1 WHERE id = ? AND kind IN (0, 1)",
            params![text, int("message id", target.0)?],
        ),
        Write::ChangeMessage { target, text: None } => {
            let target = int("message id", target.0)?;
            run_sql(
                conn,
                "UPDATE messages SET body = '' WHERE target = ? AND kind = 3",
                [target],
            )?;
            run_sql(
                conn,
                "UPDATE messages SET body = '', kind = 2 WHERE id = ? AND kind IN (0, 1)",
                [target],
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::storage::Storage;
    use crate::{
        ClientMsgId, ConvId, DeviceId, MessageId, MessageKind, Store, StoredMessage, UserId, Write,
    };

    fn user(id: u64, name: &str) -> Write {
        Write::CreateUser {
            id: UserId(id),
            name: name.to_owned(),
            password_hash: "$argon2id$x".to_owned(),
            created_at: 1,
        }
    }

    /// A statement that fails inside the transaction (SQLite keeps the transaction open after
    /// a constraint error) is rolled back whole, and the write lock is not kept.
    #[tokio::test]
    async fn a_failed_batch_writes_nothing_and_holds_no_lock() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(dir.path().join("chat.db"))
            .await
            .expect("opens");
        store
            .apply(&[vec![user(1, "alice")]])
            .await
            .expect("stored");
        let taken = store
            .apply(&[vec![user(2, "bob")], vec![user(3, "ALICE")]])
            .await;
        assert!(taken.is_err(), "{taken:?}");
        // Another connection can write (it would wait out the busy timeout and fail if the
        // writer still held the transaction)...
        sqlx::query("DELETE FROM tokens")
            .execute(&store.pool)
            .await
            .expect("the write lock is free");
        // ...and the writer goes on; bob was rolled back with the failed persist.
        store.apply(&[vec![user(2, "bob")]]).await.expect("stored");
        let names: Vec<String> = store
            .snapshot(0)
            .await
            .expect("reads")
            .users
            .into_iter()
            .map(|u| u.name)
            .collect();
        assert_eq!(names, ["alice", "bob"]);
        store.close().await;
        let closed = store.apply(&[vec![user(4, "carol")]]).await;
        assert!(closed.is_err(), "{closed:?}");
    }

    /// Commits reach the database file from the WAL by the checkpoint thread, long before
    /// the writer's own checkpoint limit (thousands of pages), and without a commit waiting;
    /// commits that come while it pauses between checkpoints are copied by the next one (one
    /// wake-up per checkpoint: none is lost).
    #[tokio::test]
    async fn the_wal_is_checkpointed_beside_the_writer() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("chat.db");
        let store = Store::open(&path).await.expect("opens");
        // Migrations leave the schema checkpointed (a pool connection's own checkpoint):
        // the file's size now is what the writer's commits are measured against.
        let mut before = std::fs::metadata(&path).expect("file").len();
        for round in 0..3u64 {
            let users: Vec<Vec<Write>> = (1..=200)
                .map(|i| round * 1000 + i)
                .map(|i| vec![user(i, &format!("user{i}"))])
                .collect();
            store.apply(&users).await.expect("stored");
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            loop {
                let now = std::fs::metadata(&path).expect("file").len();
                if now > before {
                    before = now;
                    break;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "round {round}: no checkpoint within 10 s: the file stayed at {now} bytes"
                );
                // Nothing to wait on but the file: the checkpoint thread reports to no one.
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        }
        store.close().await;
    }

    /// A deletion's commit empties the WAL (its earlier frames hold the deleted text). A
    /// reader in the WAL holds that off without holding up commits, and once it is done the
    /// writer empties the WAL by itself.
    #[tokio::test]
    async fn a_deletion_empties_the_wal_when_no_reader_is_in_it() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("chat.db");
        let wal = dir.path().join("chat.db-wal");
        let wal_len = || std::fs::metadata(&wal).map_or(0, |m| m.len());
        let store = Store::open(&path).await.expect("opens");
        store
            .apply(&[vec![user(1, "alice")]])
            .await
            .expect("stored");
        // A reader's transaction: its snapshot includes the WAL's frames.
        let reader = rusqlite::Connection::open(&path).expect("opens");
        reader.execute_batch("BEGIN").expect("begins");
        let users: i64 = reader
            .query_row("SELECT count(*) FROM users", [], |row| row.get(0))
            .expect("reads");
        assert_eq!(users, 1);
        let delete = Write::ChangeMessage {
            target: MessageId(1),
            text: None,
        };
        store.apply(&[vec![delete]]).await.expect("stored");
        store.apply(&[vec![user(2, "bob")]]).await.expect("stored");
        assert!(wal_len() > 0, "the reader keeps the WAL");
        reader.execute_batch("COMMIT").expect("ends");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while wal_len() > 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "the WAL still holds {} bytes 10 s after its reader ended",
                wal_len()
            );
            // The writer reports the emptying to no one: poll.
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let names = store.snapshot(0).await.expect("reads").users;
        assert_eq!(names.len(), 2, "both users are in the database file");
        store.close().await;
    }

    /// Deletions in a row empty the WAL once: the first at once, the next [`super::ERASE_WITHIN`]
    /// after.
    #[test]
    fn deletions_in_a_row_empty_the_wal_once() {
        let t = std::time::Instant::now();
        let ms = std::time::Duration::from_millis;
        let mut erasure = super::Erasure::default();
        erasure.deleted(t);
        assert!(erasure.due(t));
        // As `run` leaves it once the WAL is empty.
        erasure.at = None;
        erasure.last = Some(t);
        erasure.deleted(t + ms(100));
        erasure.deleted(t + ms(200));
        assert!(!erasure.due(t + super::ERASE_WITHIN - ms(1)));
        assert!(erasure.due(t + super::ERASE_WITHIN));
        assert_eq!(erasure.at, Some(t + super::ERASE_WITHIN));
    }

    /// New messages reach the search index in batches: at once past [`super::INDEX_BATCH`],
    /// soon after the last commit otherwise; the index then holds exactly the messages up to
    /// `search_indexed.up_to`.
    #[tokio::test]
    async fn messages_are_indexed_for_search_in_batches() {
        let store = Store::open_in_memory().await.expect("opens");
        let message = |id: u64| {
            vec![Write::InsertMessage(StoredMessage {
                id: MessageId(id),
                conv: ConvId(1),
                sender: UserId(1),
                device: DeviceId(1),
                client_msg_id: ClientMsgId(id),
                sent_at: id,
                text: format!("word{} everywhere", id % 7),
                kind: MessageKind::Message,
            })]
        };
        let indexed = || async {
            let up_to: i64 = sqlx::query_scalar("SELECT up_to FROM search_indexed")
                .fetch_one(&store.pool)
                .await
                .expect("reads");
            let in_index: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM messages_fts WHERE messages_fts MATCH 'everywhere'",
            )
            .fetch_one(&store.pool)
            .await
            .expect("reads");
            (up_to, in_index)
        };
        let batch = super::INDEX_BATCH;
        // A batch's worth in one commit: indexed by that commit.
        let first: Vec<Vec<Write>> = (1..=batch + 10).map(message).collect();
        store.apply(&first).await.expect("stored");
        let last = i64::try_from(batch + 10).expect("small");
        assert_eq!(indexed().await, (last, last));
        // A few more: indexed within about a second.
        let more: Vec<Vec<Write>> = (batch + 11..=batch + 20).map(message).collect();
        store.apply(&more).await.expect("stored");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let (up_to, in_index) = indexed().await;
            assert_eq!(
                in_index, up_to,
                "the index holds exactly the messages up to up_to"
            );
            if up_to == last + 10 {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "not indexed within 10 s: up to {up_to}"
            );
            // The writer reports its idle indexing to no one: poll.
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        store.close().await;
    }

    /// The in-memory database is one database for the writer and the readers.
    #[tokio::test]
    async fn in_memory_writes_are_read_back() {
        let store = Store::open_in_memory().await.expect("opens");
        let other = Store::open_in_memory().await.expect("opens");
        store
            .apply(&[vec![user(1, "alice")]])
            .await
            .expect("stored");
        let users = store.snapshot(0).await.expect("reads").users;
        assert_eq!(users.len(), 1);
        assert!(other.snapshot(0).await.expect("reads").users.is_empty());
    }
}
