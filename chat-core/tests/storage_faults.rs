//! Storage faults: a full disk, a damaged file, a deleted file, a failing read. The server
//! keeps serving what it can, tells clients in typed errors, and loses nothing acknowledged.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use chat_client::{Error, Session};
use chat_core::{
    Committed, ConvId, DeviceId, Durability, Engine, MemoryStorage, MessageId, Snapshot, Storage,
    Store, StoreError, StoredMessage, TokenRecord, UnixMillis, UserId, Write,
};
use chat_proto::*;
use chat_testkit::{config, logged_in_embedded, room, WAIT};
use tokio::time::timeout;

fn unavailable(result: &Result<Reply, Error>) -> bool {
    matches!(
        result,
        Err(Error::Refused(ErrorReply {
            code: ErrorCode::Unavailable { .. },
            ..
        }))
    )
}

/// Sends requests until one is refused as `Unavailable` (the first write that fails is not
/// answered until storage is back; the hub refuses the ones after it).
async fn until_unavailable<T: chat_client::Transport>(alice: &mut Session<T>) {
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut display = 0;
    loop {
        display += 1;
        let request = Request::SetDisplayName {
            display_name: format!("Alice {display}"),
        };
        let id = alice.send_request(request).await.expect("sends");
        match timeout(Duration::from_millis(300), alice.reply(id)).await {
            Ok(result) if unavailable(&result) => return,
            _ => assert!(
                tokio::time::Instant::now() < deadline,
                "writes never refused"
            ),
        }
    }
}

#[tokio::test]
async fn a_damaged_database_is_refused_at_start() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("chat.db");
    {
        let store = Store::open(&path).await.expect("opens");
        let engine = Engine::start(store, config()).await.expect("starts");
        let mut alice = logged_in_embedded(&engine, "alice", true).await;
        for i in 0..60 {
            alice
                .send_text(room("general"), i, &"x".repeat(4000))
                .await
                .expect("stored");
        }
        drop(alice);
        engine.shut_down().await.expect("stops");
    }
    // Scribble over pages in the middle of the file.
    let mut bytes = std::fs::read(&path).expect("readable");
    assert!(bytes.len() > 64 * 1024, "{} bytes", bytes.len());
    let middle = bytes.len() / 2;
    bytes[middle..middle + 16 * 1024].fill(0x5a);
    std::fs::write(&path, bytes).expect("writable");
    match Store::open(&path).await {
        Err(error @ StoreError::Damaged(_)) => {
            assert!(error.to_string().contains("damaged"), "{error}");
        }
        other => panic!("opened a damaged database: {other:?}"),
    }
}

#[cfg(unix)]
#[tokio::test]
async fn database_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("chat.db");
    let store = Store::open(&path).await.expect("opens");
    let engine = Engine::start(store, config()).await.expect("starts");
    let _alice = logged_in_embedded(&engine, "alice", true).await;
    for name in ["chat.db", "chat.db-wal", "chat.db-shm"] {
        let mode = std::fs::metadata(dir.path().join(name))
            .expect("exists")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{name}: {mode:o}");
    }
    engine.shut_down().await.expect("stops");
}

/// Storage whose backlog reads fail.
#[derive(Clone, Default)]
struct FailingReads(MemoryStorage);

impl Storage for FailingReads {
    async fn snapshot(&self, now: UnixMillis) -> Result<Snapshot, StoreError> {
        self.0.snapshot(now).await
    }
    async fn directory(&self) -> Result<Snapshot, StoreError> {
        self.0.directory().await
    }
    async fn apply(&self, persists: &[Vec<Write>]) -> Result<Vec<Committed>, StoreError> {
        self.0.apply(persists).await
    }
    async fn backlog(
        &self,
        _: UserId,
        _: DeviceId,
        _: MessageId,
        _: usize,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        Err(StoreError::Damaged("page 7: btree cell overflows".into()))
    }
    async fn history(
        &self,
        conv: ConvId,
        before: Option<MessageId>,
        limit: usize,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        self.0.history(conv, before, limit).await
    }
    async fn password_hash(&self, user: UserId) -> Result<Option<String>, StoreError> {
        self.0.password_hash(user).await
    }
    async fn find_token(&self, hash: [u8; 32]) -> Result<Option<TokenRecord>, StoreError> {
        self.0.find_token(hash).await
    }
    async fn message(&self, id: MessageId) -> Result<Option<StoredMessage>, StoreError> {
        self.0.message(id).await
    }
    async fn committed(
        &self,
        after: MessageId,
        up_to: Option<MessageId>,
        limit: usize,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        self.0.committed(after, up_to, limit).await
    }
    async fn audit_log(
        &self,
        conv: ConvId,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<(u64, chat_core::AuditRecord)>, StoreError> {
        self.0.audit_log(conv, before, limit).await
    }
    async fn unread(
        &self,
        user: UserId,
        convs: &[(ConvId, MessageId)],
        up_to: Option<MessageId>,
        cap: u32,
    ) -> Result<Vec<chat_core::UnreadTally>, StoreError> {
        self.0.unread(user, convs, up_to, cap).await
    }
    async fn search(
        &self,
        user: UserId,
        words: &[String],
        before: Option<MessageId>,
        limit: usize,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        self.0.search(user, words, before, limit).await
    }
    async fn close(&self) {}
}

#[tokio::test]
async fn a_failed_read_tells_the_client_before_closing() {
    let engine = Engine::start(FailingReads::default(), config())
        .await
        .expect("starts");
    let mut alice = Session::embedded(&engine, "test").await.expect("connects");
    let result = alice.register("alice", "correct horse", "d").await;
    assert!(result.is_err(), "the backlog cannot be read");
    let error = alice.events().iter().find_map(|e| match e {
        ServerMessage::Error(error) => Some(error.code.clone()),
        _ => None,
    });
    assert_eq!(error, Some(ErrorCode::Internal), "{:?}", alice.events());
    engine.shut_down().await.expect("stops");
}

#[tokio::test]
async fn a_deleted_database_file_stops_writes_not_the_server() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("chat.db");
    let store = Store::open(&path).await.expect("opens");
    let engine = Engine::start(store, config()).await.expect("starts");
    let mut alice = logged_in_embedded(&engine, "alice", true).await;
    alice
        .send_text(room("general"), 1, "before")
        .await
        .expect("stored");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    until_unavailable(&mut alice).await;
    // Reads still work.
    assert!(matches!(
        alice.request(Request::ListRooms).await,
        Ok(Reply::Rooms(_))
    ));
    drop(alice);
    engine.shut_down().await.expect("stops in time");
}

/// Mounts a tmpfs of `size` at `dir`; `false` (with the reason printed) where mounting is not
/// permitted.
fn mount_tmpfs(dir: &Path, size: &str) -> bool {
    let status = Command::new("mount")
        .args([
            "-t",
            "tmpfs",
            "-o",
            &format!("size={size},mode=0700"),
            "tmpfs",
        ])
        .arg(dir)
        .status();
    match status {
        Ok(status) if status.success() => true,
        other => {
            eprintln!(
                "skipped: cannot mount a tmpfs here ({other:?}); the full-disk test needs root"
            );
            false
        }
    }
}

struct Unmount<'a>(&'a Path);

impl Drop for Unmount<'_> {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.0).status();
    }
}

#[tokio::test]
async fn a_full_disk_refuses_writes_keeps_reads_and_recovers_by_itself() {
    let dir = tempfile::tempdir().expect("temp dir");
    if !mount_tmpfs(dir.path(), "4m") {
        return;
    }
    let _unmount = Unmount(dir.path());
    let path = dir.path().join("chat.db");
    let store = Store::open_with(&path, Durability::Process)
        .await
        .expect("opens");
    let engine = Engine::start(store, config()).await.expect("starts");
    let mut alice = logged_in_embedded(&engine, "alice", true).await;
    let mut acknowledged = Vec::new();
    for i in 0..5 {
        let id = alice
            .send_text(room("general"), i, &format!("before {i}"))
            .await
            .expect("stored");
        acknowledged.push(id);
    }
    // Fill the disk.
    let filler = dir.path().join("filler");
    {
        use std::io::Write as _;
        let mut file = std::fs::File::create(&filler).expect("creates");
        let chunk = vec![0u8; 64 * 1024];
        while file.write_all(&chunk).is_ok() {}
    }
    // Big messages until a write fails: the one in flight waits, the next are refused.
    let mut pending = Vec::new();
    let text = "y".repeat(4000);
    'fill: for i in 100..2000u64 {
        let request = Request::Send {
            target: room("general"),
            client_msg_id: ClientMsgId(i),
            text: text.clone(),
        };
        let id = alice.send_request(request).await.expect("sends");
        match timeout(Duration::from_millis(500), alice.reply(id)).await {
            Ok(Ok(Reply::Sent { id, .. })) => acknowledged.push(id),
            Ok(result) if unavailable(&result) => break 'fill,
            Ok(other) => panic!("{other:?}"),
            Err(_) => pending.push(id),
        }
    }
    until_unavailable(&mut alice).await;
    // Reads and listings go on.
    assert!(matches!(
        alice.request(Request::ListRooms).await,
        Ok(Reply::Rooms(_))
    ));
    let history = alice
        .request(Request::History {
            target: room("general"),
            before: None,
            limit: 3,
        })
        .await;
    assert!(
        matches!(history, Ok(Reply::History { .. } | Reply::Page { .. })),
        "{history:?}"
    );
    // Space returns: what was in flight is stored and acknowledged, and writes work again.
    std::fs::remove_file(&filler).expect("removes");
    for id in pending {
        match alice.reply(id).await {
            Ok(Reply::Sent { id, .. }) => acknowledged.push(id),
            other => panic!("in-flight send after recovery: {other:?}"),
        }
    }
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match alice.send_text(room("general"), 5000, "after").await {
            Ok(id) => {
                acknowledged.push(id);
                break;
            }
            Err(Error::Refused(e)) if matches!(e.code, ErrorCode::Unavailable { .. }) => {
                assert!(tokio::time::Instant::now() < deadline, "never recovered");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(other) => panic!("{other}"),
        }
    }
    drop(alice);
    engine.shut_down().await.expect("stops");
    // Everything acknowledged is there after a restart.
    let store = Store::open(&path).await.expect("reopens");
    let stored: Vec<MessageId> = store
        .history(ConvId(1), None, 10_000)
        .await
        .expect("reads")
        .iter()
        .map(|m| m.id)
        .collect();
    for id in &acknowledged {
        assert!(stored.contains(id), "acknowledged {id:?} lost");
    }
    store.close().await;
}

#[tokio::test]
async fn a_server_started_on_a_full_disk_runs_and_refuses_writes() {
    let dir = tempfile::tempdir().expect("temp dir");
    if !mount_tmpfs(dir.path(), "2m") {
        return;
    }
    let _unmount = Unmount(dir.path());
    let path = dir.path().join("chat.db");
    {
        let store = Store::open(&path).await.expect("opens");
        let engine = Engine::start(store, config()).await.expect("starts");
        let mut alice = logged_in_embedded(&engine, "alice", true).await;
        alice
            .send_text(room("general"), 1, "stored before the disk filled")
            .await
            .expect("stored");
        drop(alice);
        engine.shut_down().await.expect("stops");
    }
    let filler = dir.path().join("filler");
    {
        use std::io::Write as _;
        let mut file = std::fs::File::create(&filler).expect("creates");
        let chunk = vec![0u8; 64 * 1024];
        while file.write_all(&chunk).is_ok() {}
        // Room for SQLite's shared-memory index (a WAL database cannot open without it), not
        // for much more.
        let len = file.metadata().expect("metadata").len();
        file.set_len(len.saturating_sub(128 * 1024))
            .expect("truncates");
    }
    // It starts (it used to die at the first write)...
    let store = Store::open(&path).await.expect("opens on a full disk");
    let engine = Engine::start(store, config())
        .await
        .expect("starts on a full disk");
    // ...serves a login (small writes fit), and refuses writes in words once they do not.
    let mut alice = Session::embedded(&engine, "test").await.expect("connects");
    alice
        .login("alice", chat_testkit::PASSWORD, "d2")
        .await
        .expect("logs in");
    let text = "z".repeat(4000);
    for i in 10..200u64 {
        let request = Request::Send {
            target: room("general"),
            client_msg_id: ClientMsgId(i),
            text: text.clone(),
        };
        let id = alice.send_request(request).await.expect("sends");
        if timeout(Duration::from_millis(500), alice.reply(id))
            .await
            .is_err()
        {
            break;
        }
    }
    until_unavailable(&mut alice).await;
    std::fs::remove_file(&filler).expect("removes");
    drop(alice);
    engine.shut_down().await.expect("stops");
}
