//! A VFS over SQLite's default one that writes a commit's WAL frames with one system call.
//!
//! SQLite appends each WAL frame with two writes, its 24-byte header then its page, so a
//! commit that dirties 16 pages costs 32 `pwrite`s. A frame is 4,120 bytes, so nearly every
//! one of those writes starts or ends inside a file system block, and when the page cache no
//! longer holds that block (the WAL overwritten after a checkpoint rewound it) the kernel
//! reads it back before the write can go on (docs/BENCHMARKS.md, seventh pass). Through this
//! VFS the frames a transaction appends are gathered in memory and written at once, as soon
//! as the commit frame is complete: one call per commit, and only its first and last blocks
//! partial.
//!
//! What keeps it safe:
//! - Only appends are held: a write anywhere else (a frame rewritten in place, the headers
//!   rewritten by a checksum pass) writes what is held first, then goes straight through, so
//!   the file always reads as SQLite wrote it in SQLite's order.
//! - Everything held is written before any other call on the WAL file: a read (the writer
//!   reading back a frame it wrote), a size, a sync (so `synchronous = FULL` syncs the
//!   gathered write, as before), a truncation, a file control, the close.
//! - A commit is written before it is published: the commit frame's page is the last write
//!   of a commit, so the frames reach the operating system, and a failure is the commit's
//!   error, before SQLite updates the WAL index that other connections read. The index is
//!   updated around a memory barrier (`xShmBarrier` on the database file), which writes
//!   anything still held too; that cannot report an error, so a failure there fails every
//!   later call on the WAL (it only has something to write if a commit was not recognised).
//!
//! Only the store's writer connection opens its database through this VFS; readers, the
//! checkpointer and other processes use SQLite's default VFS, which this one wraps (the same
//! locks, the same shared memory), and see the same file.

use std::ffi::{c_char, c_int, c_void, CStr};
use std::sync::OnceLock;
use std::{ptr, slice};

use rusqlite::ffi;

/// The name the writer connection opens its database with.
pub(super) const NAME: &str = "chat-gather";
const NAME_C: &CStr = c"chat-gather";

/// Most bytes held at once, and so written in one call: a larger transaction is written in
/// pieces. The default Unix VFS writes at most 128 KiB − 1 bytes a call (`seekAndWriteFd`
/// masks the length to 17 bits: SQLite itself never writes more than a 64 KiB page).
const HOLD_AT_MOST: usize = 0x1_ffff;

/// Bytes of a WAL frame's header; bytes 4..8 are non-zero only in a commit frame's.
const FRAME_HEADER: usize = 24;

/// Registers the VFS (once; later calls return the first result). `false` if SQLite has no
/// default VFS to wrap or refused the registration: the writer then opens its database
/// through the default VFS, as readers do.
pub(super) fn register() -> bool {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    *REGISTERED.get_or_init(|| {
        // SAFETY: sqlite3_vfs_find and sqlite3_vfs_register are thread-safe (they initialise
        // SQLite if needed and take its VFS mutex). The registered struct is leaked: SQLite
        // keeps the pointer for the life of the process.
        unsafe {
            let base = ffi::sqlite3_vfs_find(ptr::null());
            if base.is_null() || (*base).szOsFile < 0 {
                return false;
            }
            let vfs = Box::leak(Box::new(ffi::sqlite3_vfs {
                iVersion: 2,
                szOsFile: c_int::try_from(INNER_AT)
                    .ok()
                    .and_then(|at| at.checked_add((*base).szOsFile))
                    .unwrap_or(c_int::MAX),
                mxPathname: (*base).mxPathname,
                pNext: ptr::null_mut(),
                zName: NAME_C.as_ptr(),
                pAppData: base.cast(),
                xOpen: Some(open),
                xDelete: Some(delete),
                xAccess: Some(access),
                xFullPathname: Some(full_pathname),
                xDlOpen: Some(dl_open),
                xDlError: Some(dl_error),
                xDlSym: Some(dl_sym),
                xDlClose: Some(dl_close),
                xRandomness: Some(randomness),
                xSleep: Some(sleep),
                xCurrentTime: Some(current_time),
                xGetLastError: Some(get_last_error),
                xCurrentTimeInt64: Some(current_time_int64),
                xSetSystemCall: None,
                xGetSystemCall: None,
                xNextSystemCall: None,
            }));
            ffi::sqlite3_vfs_register(vfs, 0) == ffi::SQLITE_OK
        }
    })
}

/// What SQLite holds for a file opened through this VFS. The default VFS's own file record
/// follows it, at [`INNER_AT`].
#[repr(C)]
struct File {
    /// What SQLite reads: [`METHODS`].
    base: ffi::sqlite3_file,
    /// The default VFS's record of the same file.
    inner: *mut ffi::sqlite3_file,
    role: Role,
}

/// Where the default VFS's file record starts, after ours (aligned for any C struct).
const INNER_AT: usize = size_of::<File>().next_multiple_of(16);

enum Role {
    /// A main database file: its WAL's record while that is open (for the barrier).
    Database { wal: *mut File },
    /// A WAL file: the frames held.
    Wal(Box<Held>),
    /// Anything else (a rollback journal, a temporary file): passed straight through.
    Other,
}

/// The appends of a WAL file not written yet.
struct Held {
    /// The bytes for offsets `start..start + bytes.len()`; empty when nothing is held.
    bytes: Vec<u8>,
    start: i64,
    /// The end of the highest write (held or written); a write there is an append. The WAL
    /// header's write at 0 starts a new log and brings it back.
    end: i64,
    /// Where the page of the commit frame whose header was just written goes: that write
    /// is the commit's last.
    commit_page_at: Option<i64>,
    /// A write from the barrier failed: every later call on the file returns this.
    failed: c_int,
    /// The main database file's record, to unlink at close.
    database: *mut File,
}

/// SAFETY (for every function below): SQLite calls them with a pointer to a record it
/// allocated with the VFS's `szOsFile` bytes, on which [`open`] wrote a [`File`] (when its
/// `pMethods` is [`METHODS`]), and never calls two of them on one file at once.
unsafe fn this<'a>(file: *mut ffi::sqlite3_file) -> &'a mut File {
    unsafe { &mut *file.cast::<File>() }
}

/// The default VFS's methods for the file.
unsafe fn inner(file: &File) -> &ffi::sqlite3_io_methods {
    unsafe { &*(*file.inner).pMethods }
}

/// The VFS this one wraps.
unsafe fn base(vfs: *mut ffi::sqlite3_vfs) -> *mut ffi::sqlite3_vfs {
    unsafe { (*vfs).pAppData.cast() }
}

unsafe extern "C" fn open(
    vfs: *mut ffi::sqlite3_vfs,
    name: ffi::sqlite3_filename,
    file: *mut ffi::sqlite3_file,
    flags: c_int,
    out_flags: *mut c_int,
) -> c_int {
    unsafe {
        let base = base(vfs);
        let inner = file.cast::<u8>().add(INNER_AT).cast::<ffi::sqlite3_file>();
        (*inner).pMethods = ptr::null();
        let Some(base_open) = (*base).xOpen else {
            (*file).pMethods = ptr::null();
            return ffi::SQLITE_CANTOPEN;
        };
        let rc = base_open(base, name, inner, flags, out_flags);
        if rc != ffi::SQLITE_OK {
            // SQLite calls xClose only if pMethods is set: close what the base left open.
            if !(*inner).pMethods.is_null() {
                if let Some(close) = (*(*inner).pMethods).xClose {
                    close(inner);
                }
            }
            (*file).pMethods = ptr::null();
            return rc;
        }
        let role = if flags & ffi::SQLITE_OPEN_MAIN_DB != 0 {
            Role::Database {
                wal: ptr::null_mut(),
            }
        } else if flags & ffi::SQLITE_OPEN_WAL != 0 {
            // The database this WAL belongs to, opened through this VFS by the same pager.
            let database = ffi::sqlite3_database_file_object(name).cast::<File>();
            let ours = !database.is_null() && ptr::eq((*database).base.pMethods, &METHODS);
            Role::Wal(Box::new(Held {
                bytes: Vec::new(),
                start: 0,
                end: 0,
                commit_page_at: None,
                failed: ffi::SQLITE_OK,
                database: if ours { database } else { ptr::null_mut() },
            }))
        } else {
            Role::Other
        };
        ptr::write(
            file.cast::<File>(),
            File {
                base: ffi::sqlite3_file { pMethods: &METHODS },
                inner,
                role,
            },
        );
        let this = file.cast::<File>();
        if let Role::Wal(held) = &(*this).role {
            if !held.database.is_null() {
                if let Role::Database { wal } = &mut (*held.database).role {
                    *wal = this;
                }
            }
        }
        ffi::SQLITE_OK
    }
}

/// Writes what `file` holds, if anything: one call for every frame appended since the last.
unsafe fn write_held(file: &mut File) -> c_int {
    let Role::Wal(held) = &mut file.role else {
        return ffi::SQLITE_OK;
    };
    if held.failed != ffi::SQLITE_OK {
        return held.failed;
    }
    if held.bytes.is_empty() {
        return ffi::SQLITE_OK;
    }
    // At most HOLD_AT_MOST bytes: the length fits a c_int.
    let length = held.bytes.len() as c_int;
    #[cfg(test)]
    tests::count_wal_write();
    let rc = unsafe {
        let write = (*(*file.inner).pMethods).xWrite;
        write.map_or(ffi::SQLITE_IOERR_WRITE, |write| {
            write(file.inner, held.bytes.as_ptr().cast(), length, held.start)
        })
    };
    // Written or failed, it is no longer held: a failure fails the transaction, and SQLite
    // writes its frames again (or others) in the next one.
    held.bytes.clear();
    rc
}

unsafe extern "C" fn write(
    file: *mut ffi::sqlite3_file,
    data: *const c_void,
    amount: c_int,
    offset: i64,
) -> c_int {
    let file = unsafe { this(file) };
    if offset == 0 {
        // The WAL header: a new log starts, overwriting the old one from its beginning. What
        // is held belongs to the old one (SQLite never leaves any, a commit writes its
        // frames), and it goes where it was headed before the rewind.
        let rc = unsafe { write_held(file) };
        if rc != ffi::SQLITE_OK {
            return rc;
        }
        if let Role::Wal(held) = &mut file.role {
            held.end = 0;
        }
    }
    let Role::Wal(held) = &mut file.role else {
        return unsafe { forward_write(file, data, amount, offset) };
    };
    if held.failed != ffi::SQLITE_OK {
        return held.failed;
    }
    let Ok(length) = usize::try_from(amount) else {
        return ffi::SQLITE_IOERR_WRITE;
    };
    let bytes = if data.is_null() || length == 0 {
        &[][..]
    } else {
        // SAFETY: SQLite passes `amount` readable bytes.
        unsafe { slice::from_raw_parts(data.cast::<u8>(), length) }
    };
    let commit_page = held.commit_page_at.take() == Some(offset);
    // A new commit frame's header (at the end of the log, not one rewritten below it).
    if length == FRAME_HEADER
        && bytes.get(4..8).is_some_and(|size| size != [0; 4])
        && offset.saturating_add(i64::from(amount)) >= held.end
    {
        held.commit_page_at = Some(offset.saturating_add(i64::from(amount)));
    }
    let append = offset == held.end;
    if append && !held.bytes.is_empty() && held.bytes.len() + length <= HOLD_AT_MOST {
        held.bytes.extend_from_slice(bytes);
    } else {
        let rc = unsafe { write_held(file) };
        if rc != ffi::SQLITE_OK {
            return rc;
        }
        match &mut file.role {
            Role::Wal(held) if append && length < HOLD_AT_MOST => {
                held.start = offset;
                held.bytes.extend_from_slice(bytes);
            }
            _ => {
                #[cfg(test)]
                tests::count_wal_write();
                let rc = unsafe { forward_write(file, data, amount, offset) };
                if rc != ffi::SQLITE_OK {
                    return rc;
                }
            }
        }
    }
    if let Role::Wal(held) = &mut file.role {
        held.end = held.end.max(offset.saturating_add(i64::from(amount)));
    }
    if commit_page {
        unsafe { write_held(file) }
    } else {
        ffi::SQLITE_OK
    }
}

unsafe fn forward_write(file: &File, data: *const c_void, amount: c_int, offset: i64) -> c_int {
    unsafe {
        inner(file).xWrite.map_or(ffi::SQLITE_IOERR_WRITE, |write| {
            write(file.inner, data, amount, offset)
        })
    }
}

unsafe extern "C" fn close(file: *mut ffi::sqlite3_file) -> c_int {
    unsafe {
        let this = this(file);
        let written = write_held(this);
        match &this.role {
            Role::Wal(held) if !held.database.is_null() => {
                if let Role::Database { wal } = &mut (*held.database).role {
                    if ptr::eq(*wal, this) {
                        *wal = ptr::null_mut();
                    }
                }
            }
            Role::Database { wal } if !wal.is_null() => {
                if let Role::Wal(held) = &mut (**wal).role {
                    held.database = ptr::null_mut();
                }
            }
            _ => {}
        }
        let closed = inner(this)
            .xClose
            .map_or(ffi::SQLITE_OK, |close| close(this.inner));
        ptr::drop_in_place(file.cast::<File>());
        if written != ffi::SQLITE_OK {
            written
        } else {
            closed
        }
    }
}

/// Forwards a call to the default VFS's method after writing what the file holds.
macro_rules! after_writing {
    ($name:ident($($arg:ident: $ty:ty),*), $method:ident, $missing:expr) => {
        unsafe extern "C" fn $name(file: *mut ffi::sqlite3_file $(, $arg: $ty)*) -> c_int {
            unsafe {
                let this = this(file);
                let rc = write_held(this);
                if rc != ffi::SQLITE_OK {
                    return rc;
                }
                inner(this).$method.map_or($missing, |method| method(this.inner $(, $arg)*))
            }
        }
    };
}

after_writing!(read(data: *mut c_void, amount: c_int, offset: i64), xRead, ffi::SQLITE_IOERR_READ);
after_writing!(truncate(size: i64), xTruncate, ffi::SQLITE_IOERR_TRUNCATE);
after_writing!(sync(flags: c_int), xSync, ffi::SQLITE_IOERR_FSYNC);
after_writing!(file_size(size: *mut i64), xFileSize, ffi::SQLITE_IOERR_FSTAT);
after_writing!(file_control(op: c_int, arg: *mut c_void), xFileControl, ffi::SQLITE_NOTFOUND);

/// Forwards a call to the default VFS's method as it is, if its methods are of `$version` or
/// later (a version-1 record has no shared-memory methods, only version 3 has memory maps).
macro_rules! forward {
    ($name:ident($($arg:ident: $ty:ty),*) -> $ret:ty, $version:expr, $method:ident, $missing:expr) => {
        unsafe extern "C" fn $name(file: *mut ffi::sqlite3_file $(, $arg: $ty)*) -> $ret {
            unsafe {
                let this = this(file);
                let methods = inner(this);
                match methods.$method {
                    Some(method) if methods.iVersion >= $version => method(this.inner $(, $arg)*),
                    _ => $missing,
                }
            }
        }
    };
}

forward!(lock(level: c_int) -> c_int, 1, xLock, ffi::SQLITE_IOERR_LOCK);
forward!(unlock(level: c_int) -> c_int, 1, xUnlock, ffi::SQLITE_IOERR_UNLOCK);
forward!(check_reserved_lock(out: *mut c_int) -> c_int, 1, xCheckReservedLock, ffi::SQLITE_IOERR_CHECKRESERVEDLOCK);
forward!(sector_size() -> c_int, 1, xSectorSize, 4096);
forward!(device_characteristics() -> c_int, 1, xDeviceCharacteristics, 0);
forward!(shm_map(page: c_int, size: c_int, extend: c_int, out: *mut *mut c_void) -> c_int, 2, xShmMap, ffi::SQLITE_IOERR_SHMMAP);
forward!(shm_lock(offset: c_int, n: c_int, flags: c_int) -> c_int, 2, xShmLock, ffi::SQLITE_IOERR_SHMLOCK);
forward!(shm_unmap(delete: c_int) -> c_int, 2, xShmUnmap, ffi::SQLITE_OK);
forward!(unfetch(offset: i64, page: *mut c_void) -> c_int, 3, xUnfetch, ffi::SQLITE_OK);

unsafe extern "C" fn fetch(
    file: *mut ffi::sqlite3_file,
    offset: i64,
    amount: c_int,
    out: *mut *mut c_void,
) -> c_int {
    unsafe {
        let this = this(file);
        match inner(this).xFetch {
            Some(fetch) if inner(this).iVersion >= 3 => fetch(this.inner, offset, amount, out),
            // No memory map: SQLite reads instead.
            _ => {
                *out = ptr::null_mut();
                ffi::SQLITE_OK
            }
        }
    }
}

/// The barrier SQLite raises while it publishes a commit in the WAL index: the commit's
/// frames must be in the file before any other connection can learn of them.
unsafe extern "C" fn shm_barrier(file: *mut ffi::sqlite3_file) {
    unsafe {
        let this = this(file);
        if let Role::Database { wal } = this.role {
            if !wal.is_null() {
                let rc = write_held(&mut *wal);
                if let Role::Wal(held) = &mut (*wal).role {
                    if rc != ffi::SQLITE_OK {
                        held.failed = rc;
                    }
                }
            }
        }
        match inner(this).xShmBarrier {
            Some(barrier) if inner(this).iVersion >= 2 => barrier(this.inner),
            _ => {}
        }
    }
}

static METHODS: ffi::sqlite3_io_methods = ffi::sqlite3_io_methods {
    iVersion: 3,
    xClose: Some(close),
    xRead: Some(read),
    xWrite: Some(write),
    xTruncate: Some(truncate_and_rewind),
    xSync: Some(sync),
    xFileSize: Some(file_size),
    xLock: Some(lock),
    xUnlock: Some(unlock),
    xCheckReservedLock: Some(check_reserved_lock),
    xFileControl: Some(file_control),
    xSectorSize: Some(sector_size),
    xDeviceCharacteristics: Some(device_characteristics),
    xShmMap: Some(shm_map),
    xShmLock: Some(shm_lock),
    xShmBarrier: Some(shm_barrier),
    xShmUnmap: Some(shm_unmap),
    xFetch: Some(fetch),
    xUnfetch: Some(unfetch),
};

/// A truncation also moves where appends are expected.
unsafe extern "C" fn truncate_and_rewind(file: *mut ffi::sqlite3_file, size: i64) -> c_int {
    let rc = unsafe { truncate(file, size) };
    if let Role::Wal(held) = &mut unsafe { this(file) }.role {
        held.end = held.end.min(size);
    }
    rc
}

/// One of the VFS's own methods: the default VFS's, called with its own record (`$missing`
/// if it has none).
macro_rules! forward_vfs {
    ($name:ident($($arg:ident: $ty:ty),*) $(-> $ret:ty)?, $method:ident, $missing:expr) => {
        unsafe extern "C" fn $name(vfs: *mut ffi::sqlite3_vfs $(, $arg: $ty)*) $(-> $ret)? {
            unsafe {
                let base = base(vfs);
                (*base).$method.map_or($missing, |method| method(base $(, $arg)*))
            }
        }
    };
}

type Symbol = unsafe extern "C" fn(*mut ffi::sqlite3_vfs, *mut c_void, *const c_char);

forward_vfs!(delete(name: *const c_char, sync: c_int) -> c_int, xDelete, ffi::SQLITE_IOERR_DELETE);
forward_vfs!(access(name: *const c_char, flags: c_int, out: *mut c_int) -> c_int, xAccess, ffi::SQLITE_IOERR_ACCESS);
forward_vfs!(full_pathname(name: *const c_char, size: c_int, out: *mut c_char) -> c_int, xFullPathname, ffi::SQLITE_CANTOPEN);
forward_vfs!(dl_open(name: *const c_char) -> *mut c_void, xDlOpen, ptr::null_mut());
forward_vfs!(dl_error(size: c_int, out: *mut c_char), xDlError, ());
forward_vfs!(dl_sym(handle: *mut c_void, symbol: *const c_char) -> Option<Symbol>, xDlSym, None);
forward_vfs!(dl_close(handle: *mut c_void), xDlClose, ());
forward_vfs!(randomness(size: c_int, out: *mut c_char) -> c_int, xRandomness, 0);
forward_vfs!(sleep(micros: c_int) -> c_int, xSleep, 0);
forward_vfs!(current_time(out: *mut f64) -> c_int, xCurrentTime, ffi::SQLITE_ERROR);
forward_vfs!(get_last_error(size: c_int, out: *mut c_char) -> c_int, xGetLastError, 0);

unsafe extern "C" fn current_time_int64(vfs: *mut ffi::sqlite3_vfs, out: *mut i64) -> c_int {
    unsafe {
        let base = base(vfs);
        if (*base).iVersion >= 2 {
            if let Some(f) = (*base).xCurrentTimeInt64 {
                return f(base, out);
            }
        }
        // From the version-1 clock, as SQLite itself falls back.
        let mut days = 0.0;
        let rc = current_time(vfs, &mut days);
        *out = (days * 86_400_000.0) as i64;
        rc
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use rusqlite::{Connection, OpenFlags};

    use super::*;

    thread_local! {
        /// Writes that reached a WAL file from this thread (each test's connections stay on
        /// its thread).
        static WAL_WRITES: Cell<u64> = const { Cell::new(0) };
    }

    pub(super) fn count_wal_write() {
        WAL_WRITES.with(|writes| writes.set(writes.get() + 1));
    }

    fn wal_writes() -> u64 {
        WAL_WRITES.with(Cell::get)
    }

    /// A writer through this VFS and a reader through the default one, on a new file.
    fn open(synchronous: &str) -> (tempfile::TempDir, Connection, Connection) {
        assert!(register());
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("gather.db");
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE;
        let writer = Connection::open_with_flags_and_vfs(&path, flags, NAME).expect("writer");
        writer
            .execute_batch(&format!(
                "PRAGMA journal_mode = WAL; PRAGMA synchronous = {synchronous}; \
                 PRAGMA wal_autocheckpoint = 0; \
                 CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL); \
                 CREATE INDEX notes_body ON notes (body);"
            ))
            .expect("schema");
        let reader = Connection::open_with_flags(&path, flags).expect("reader");
        (dir, writer, reader)
    }

    /// Commits `rows` notes of `size` bytes in one transaction; returns the WAL writes it took.
    fn commit(writer: &Connection, first: i64, rows: i64, size: usize) -> u64 {
        let before = wal_writes();
        let tx = writer.unchecked_transaction().expect("begin");
        for id in first..first + rows {
            let body = format!("{id:>size$}");
            tx.execute("INSERT INTO notes (id, body) VALUES (?, ?)", (id, body))
                .expect("insert");
        }
        tx.commit().expect("commit");
        wal_writes() - before
    }

    fn count(reader: &Connection) -> i64 {
        reader
            .query_row("SELECT count(*) FROM notes", [], |row| row.get(0))
            .expect("count")
    }

    /// `rounds` commits of ten notes, each reaching the WAL in one write and seen by the
    /// reader as soon as it returns.
    fn commits_each_in_one_write(writer: &Connection, reader: &Connection, rounds: i64) {
        for round in 0..rounds {
            // Two pages of rows and two of index entries each time, at least: SQLite's own
            // path wrote two calls per page.
            assert_eq!(commit(writer, round * 10, 10, 700), 1, "round {round}");
            // The reader has its own file handle: it sees only what reached the file.
            assert_eq!(count(reader), (round + 1) * 10);
        }
    }

    #[test]
    fn a_commit_reaches_the_wal_in_one_write_before_it_returns() {
        let (_dir, writer, reader) = open("NORMAL");
        commits_each_in_one_write(&writer, &reader, 20);
        let check: String = reader
            .query_row("PRAGMA integrity_check", [], |row| row.get(0))
            .expect("check");
        assert_eq!(check, "ok");
    }

    #[test]
    fn a_transaction_larger_than_the_hold_is_written_in_pieces() {
        let (_dir, writer, reader) = open("NORMAL");
        // ~2 MB of rows, and as much of index: some 1,000 frames, spilled or not.
        let writes = commit(&writer, 0, 1000, 2000);
        assert!(writes > 1, "{writes} writes");
        assert!(
            writes < 1000,
            "{writes} writes for ~1,000 frames: not gathered"
        );
        assert_eq!(count(&reader), 1000);
        // A rolled-back transaction leaves nothing behind, and the next commit is whole.
        let tx = writer.unchecked_transaction().expect("begin");
        tx.execute("DELETE FROM notes", []).expect("delete");
        tx.rollback().expect("rollback");
        assert_eq!(commit(&writer, 1000, 5, 100), 1);
        assert_eq!(count(&reader), 1005);
    }

    #[test]
    fn a_log_rewound_by_a_checkpoint_is_gathered_from_its_start() {
        let (_dir, writer, reader) = open("NORMAL");
        for round in 0..10 {
            // After the first, each commit starts a new log: SQLite syncs its header alone,
            // then the frames follow (~12 writes of SQLite's own).
            let writes = commit(&writer, round * 100, 20, 500);
            assert!(writes <= 2, "round {round}: {writes} writes");
            // Copied back and truncated by another connection: the writer's next commit
            // writes a new WAL header at offset 0, then its frames.
            reader
                .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
                .expect("checkpoint");
            assert_eq!(count(&reader), (round + 1) * 20);
        }
        // Rewound by the writer itself (a checkpoint, then a restart at its next commit).
        writer
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
            .expect("checkpoint");
        assert!(commit(&writer, 5000, 20, 500) <= 2);
        assert_eq!(count(&reader), 220);
    }

    #[test]
    fn a_writer_opened_on_a_log_left_behind_appends_to_it() {
        let (dir, writer, reader) = open("NORMAL");
        commit(&writer, 0, 20, 500);
        // The reader keeps the log from being checkpointed away when the writer closes.
        drop(writer);
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE;
        let writer = Connection::open_with_flags_and_vfs(dir.path().join("gather.db"), flags, NAME)
            .expect("writer");
        writer
            .execute_batch("PRAGMA synchronous = NORMAL; PRAGMA wal_autocheckpoint = 0;")
            .expect("pragmas");
        for round in 1..5 {
            // The first frame's header goes straight to where the log ends, the rest together.
            assert!(commit(&writer, round * 100, 20, 500) <= 2, "round {round}");
            assert_eq!(count(&reader), (round + 1) * 20);
        }
    }

    #[test]
    fn full_durability_syncs_the_gathered_write() {
        let (_dir, writer, reader) = open("FULL");
        commits_each_in_one_write(&writer, &reader, 5);
    }
}
