//! `chat-server migrate`: a SQLite database made by a running server is copied into a fresh
//! PostgreSQL database (needs `CHAT_TEST_POSTGRES`; skipped without it, except under
//! `CI=true`); every row arrives, re-running is refused, and a user logs in on PostgreSQL and
//! gets the messages sent while they were away.

use std::process::Output;

use chat_core::{ConvId, Location, MessageId, Snapshot, Storage, UserId};
use chat_proto::*;
use chat_server::ServerConfig;
use chat_testkit::*;
use tokio::process::Command;
use tokio::time::timeout;

/// Runs `chat-server migrate` to completion.
async fn migrate(from: &TestDb, to: &TestDb, force: bool) -> Output {
    let Location::Sqlite(path) = from.location() else {
        unreachable!("the source is SQLite");
    };
    let mut command = Command::new(env!("CARGO_BIN_EXE_chat-server"));
    command
        .arg("migrate")
        .arg("--from")
        .arg(format!("sqlite://{}", path.display()))
        .arg("--to")
        .arg(to.arg())
        .kill_on_drop(true);
    if force {
        command.arg("--force");
    }
    timeout(WAIT, command.output())
        .await
        .expect("migrate finishes in time")
        .expect("migrate runs")
}

#[tokio::test]
async fn a_sqlite_database_moves_to_postgres_and_users_log_in_there() {
    let Some(target) = TestDb::postgres().await else {
        return;
    };
    let source = TestDb::sqlite();
    let server = TestServer::on(&source, config(), ServerConfig::default()).await;
    let mut alice = logged_in(server.addr, "alice", true).await;
    let mut bob = logged_in(server.addr, "bob", true).await;
    for client in [&mut alice, &mut bob] {
        client
            .request(Request::Join {
                room: "rust".into(),
            })
            .await
            .expect("joins");
    }
    alice
        .send_text(room("rust"), 1, "seen live")
        .await
        .expect("stored");
    bob.until(text_is("seen live")).await.expect("arrives");
    drop(bob);
    let offline = ["while you were out", "and again", "in the room"];
    alice
        .send_text(user("bob"), 2, offline[0])
        .await
        .expect("stored");
    let second = alice
        .send_text(user("bob"), 3, offline[1])
        .await
        .expect("stored");
    alice
        .send_text(room("rust"), 4, offline[2])
        .await
        .expect("stored");
    drop(alice);
    server.stop().await;

    let output = migrate(&source, &target, false).await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("users 2,"), "{stdout}");
    assert!(stdout.contains("messages 4"), "{stdout}");

    // Every row arrived: the same snapshot, histories, hashes and backlogs on both.
    let (sqlite, pg) = (source.open().await, target.open().await);
    let snapshot = sqlite.snapshot(0).await.expect("reads");
    // Only the id block differs: PostgreSQL hands each snapshot a new one.
    let copy = pg.snapshot(0).await.expect("reads");
    assert_eq!(
        Snapshot {
            ids: snapshot.ids,
            ..copy
        },
        snapshot
    );
    assert_eq!(snapshot.users.len(), 2);
    for conv in &snapshot.convs {
        assert_eq!(
            pg.history(conv.id, None, 100).await.expect("reads"),
            sqlite.history(conv.id, None, 100).await.expect("reads"),
        );
    }
    for user in &snapshot.users {
        assert_eq!(
            pg.password_hash(user.id).await.expect("reads"),
            sqlite.password_hash(user.id).await.expect("reads"),
        );
    }
    for device in &snapshot.devices {
        assert_eq!(
            pg.backlog(device.user, device.id, device.cursor, 100)
                .await
                .expect("reads"),
            sqlite
                .backlog(device.user, device.id, device.cursor, 100)
                .await
                .expect("reads"),
        );
    }
    assert!(pg
        .history(ConvId(99), None, 1)
        .await
        .expect("reads")
        .is_empty());
    assert_eq!(pg.password_hash(UserId(99)).await.expect("reads"), None);
    assert_eq!(snapshot.last_message, MessageId(4));
    pg.close().await;

    // Running it again changes nothing; --force replaces the target with the same rows.
    let again = migrate(&source, &target, false).await;
    assert!(!again.status.success());
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(stderr.contains("not empty"), "{stderr}");
    let forced = migrate(&source, &target, true).await;
    assert!(
        forced.status.success(),
        "{}",
        String::from_utf8_lossy(&forced.stderr)
    );

    // On PostgreSQL, bob logs in and gets what was sent while he was away, in order.
    let server = TestServer::on(&target, config(), ServerConfig::default()).await;
    let bob = logged_in(server.addr, "bob", false).await;
    // (Bob never acknowledged "seen live": it may come again before them.)
    let texts = bob.texts();
    assert!(texts.ends_with(&offline.map(String::from)), "{texts:?}");
    let mut alice = logged_in(server.addr, "alice", false).await;
    let resend = alice
        .send_text(user("bob"), 3, offline[1])
        .await
        .expect("stored");
    assert_eq!(resend, second, "a resend is recognised after the move");
    drop(bob);
    server.stop().await;
}
