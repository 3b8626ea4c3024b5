//! Read markers, unread counts and search over real TCP, on each backend (SQLite; PostgreSQL
//! with `CHAT_TEST_POSTGRES`): two devices of one user see each other's markers live, a login
//! tells the unread counts, search finds only the user's own conversations, and a version-1
//! client in the same rooms is never sent any of it.

use chat_client::{Error, Session};
use chat_proto::*;
use chat_server::ServerConfig;
use chat_testkit::*;

on_every_backend!(
    two_devices_share_read_markers_and_a_login_tells_the_unread_counts,
    search_finds_only_the_users_own_conversations,
);

fn refused(result: Result<Reply, Error>) -> ErrorCode {
    match result {
        Err(Error::Refused(e)) => e.code,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn mark(target: Target, up_to: MessageId) -> Request {
    Request::MarkRead { target, up_to }
}

/// A second device of `name`, logged in.
async fn device(server: &TestServer, name: &str, device: &str) -> Session<chat_client::Tcp> {
    let mut session = Session::connect(server.addr).await.expect("connects");
    session
        .login(name, PASSWORD, device)
        .await
        .expect("logs in");
    session
}

fn is_v2_only(e: &ServerMessage) -> bool {
    matches!(
        e,
        ServerMessage::ReadMarker { .. } | ServerMessage::Unread(_)
    )
}

async fn two_devices_share_read_markers_and_a_login_tells_the_unread_counts(db: TestDb) {
    let server = TestServer::on(&db, config(), ServerConfig::default()).await;
    let mut laptop = logged_in(server.addr, "alice", true).await;
    let mut phone = device(&server, "alice", "alice-phone").await;
    let mut bob = logged_in(server.addr, "bob", true).await;
    let mut old = logged_in_version(server.addr, "old", true, 1).await;
    let mut ids = Vec::new();
    for (i, text) in ["one", "two", "three"].into_iter().enumerate() {
        let id = bob
            .send_text(room("general"), i as u64 + 1, text)
            .await
            .expect("stored");
        ids.push(id);
    }
    let [one, _, three] = ids[..] else {
        unreachable!("three messages");
    };
    for s in [&mut laptop, &mut phone, &mut old] {
        s.until(text_is("three")).await.expect("arrives");
    }
    // The laptop has everything and says so; then reads up to "one".
    laptop
        .send(ClientMessage::Ack { up_to: three })
        .await
        .expect("acknowledges");
    assert_eq!(
        laptop
            .request(mark(room("general"), one))
            .await
            .expect("marks"),
        Reply::Done
    );
    let told = phone
        .until(|e| matches!(e, ServerMessage::ReadMarker { .. }))
        .await
        .expect("the phone hears of it");
    assert_eq!(
        told,
        ServerMessage::ReadMarker {
            target: room("general"),
            up_to: one,
        }
    );
    // Back is ignored: still Done, nothing told.
    assert_eq!(
        phone
            .request(mark(room("general"), MessageId(0)))
            .await
            .expect("answers"),
        Reply::Done
    );
    // Only members mark: not in #nowhere.
    let refused_mark = phone.request(mark(room("nowhere"), three)).await;
    assert_eq!(refused(refused_mark), ErrorCode::NoSuchRoom);
    // The room list counts what is unread.
    match laptop.request(Request::RoomList).await.expect("lists") {
        Reply::RoomList(rooms) => {
            let general = rooms
                .iter()
                .find(|r| r.info.name == "general")
                .expect("listed");
            assert_eq!(general.unread, 2);
        }
        other => panic!("{other:?}"),
    }
    // A new login on the laptop: the counts come first, before CaughtUp.
    drop(laptop);
    let laptop = device(&server, "alice", "alice-dev").await;
    let counts = laptop
        .events()
        .iter()
        .find_map(|e| match e {
            ServerMessage::Unread(counts) => Some(counts.clone()),
            _ => None,
        })
        .expect("unread counts at login");
    assert_eq!(
        counts,
        [UnreadCount {
            target: room("general"),
            read_up_to: one,
            unread: 2,
            latest: three,
        }]
    );
    assert!(
        !laptop.texts().contains(&"three".to_string()),
        "acknowledged: not replayed, counted"
    );
    // The old client saw the messages and none of this.
    assert!(!old.events().iter().any(is_v2_only), "{:?}", old.events());
    let old_mark = old.request(mark(room("general"), three)).await;
    assert_eq!(refused(old_mark), ErrorCode::BadRequest);
    server.stop().await;
}

async fn search_finds_only_the_users_own_conversations(db: TestDb) {
    let server = TestServer::on(&db, config(), ServerConfig::default()).await;
    let mut alice = logged_in(server.addr, "alice", true).await;
    let mut bob = logged_in(server.addr, "bob", true).await;
    let mut carol = logged_in(server.addr, "carol", true).await;
    let mut old = logged_in_version(server.addr, "old", true, 1).await;
    carol
        .request(Request::CreateRoom {
            room: "secret".into(),
            invite_only: true,
        })
        .await
        .expect("created");
    carol
        .send_text(room("secret"), 1, "deploy the secret")
        .await
        .expect("stored");
    carol
        .send_text(user("bob"), 2, "deploy between us")
        .await
        .expect("stored");
    let public = bob
        .send_text(room("general"), 1, "Deploy on Friday?")
        .await
        .expect("stored");
    let direct = bob
        .send_text(user("alice"), 2, "deploy, or not")
        .await
        .expect("stored");
    let search = |text: &str| Request::Search {
        text: text.into(),
        before: None,
        limit: 10,
    };
    let found = |reply: Reply| match reply {
        Reply::SearchResults { messages, more } => {
            assert!(!more);
            messages
                .into_iter()
                .map(|m| (m.id, m.text))
                .collect::<Vec<_>>()
        }
        other => panic!("{other:?}"),
    };
    assert_eq!(
        found(alice.request(search("DEPLOY")).await.expect("searches")),
        [
            (direct, "deploy, or not".into()),
            (public, "Deploy on Friday?".into())
        ]
    );
    // Deleted: never found again.
    bob.request(Request::Delete { message: public })
        .await
        .expect("deleted");
    assert_eq!(
        found(alice.request(search("friday")).await.expect("searches")),
        []
    );
    assert_eq!(
        found(alice.request(search("deploy")).await.expect("searches")),
        [(direct, "deploy, or not".into())]
    );
    // The old client cannot ask.
    let old_search = old.request(search("deploy")).await;
    assert_eq!(refused(old_search), ErrorCode::BadRequest);
    server.stop().await;
}

/// What the database file and its WAL hold together (a file not there holds nothing).
fn on_disk(db: &std::path::Path) -> Vec<u8> {
    let wal = db.with_extension("db-wal");
    [db, wal.as_path()]
        .iter()
        .flat_map(|path| std::fs::read(path).unwrap_or_default())
        .collect()
}

fn holds(data: &[u8], word: &[u8]) -> bool {
    data.windows(word.len()).any(|w| w == word)
}

/// SQLite: a deleted message's words leave the disk, the search index and the WAL's earlier
/// frames included, while the server runs (the WAL is emptied soon after a deletion) and
/// after it stops.
#[tokio::test]
async fn a_deleted_message_leaves_no_word_in_the_sqlite_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("chat.db");
    let server = TestServer::start(&path, config(), ServerConfig::default()).await;
    let mut alice = logged_in(server.addr, "alice", true).await;
    let leak = alice
        .send_text(room("general"), 1, "the code is xylophonequartz")
        .await
        .expect("stored");
    alice
        .send_text(room("general"), 2, "an innocent line")
        .await
        .expect("stored");
    // Stored, so on disk: the search below is not vacuous.
    assert!(holds(&on_disk(&path), b"xylophonequartz"));
    alice
        .request(Request::Delete { message: leak })
        .await
        .expect("deleted");
    // Nothing to wait on but the files: the writer empties the WAL after answering.
    let deadline = tokio::time::Instant::now() + WAIT;
    while holds(&on_disk(&path), b"xylophonequartz") {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the deleted word is still on disk {WAIT:?} after its deletion"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // A later message is stored as usual after the WAL was emptied.
    alice
        .send_text(room("general"), 3, "a later line")
        .await
        .expect("stored");
    server.stop().await;
    let all = on_disk(&path);
    assert!(
        !holds(&all, b"xylophonequartz"),
        "the deleted word survives in the database"
    );
    assert!(
        holds(&all, b"innocent") && holds(&all, b"a later line"),
        "the other messages are still there"
    );
}
