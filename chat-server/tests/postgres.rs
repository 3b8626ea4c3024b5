//! PostgreSQL under a running server (needs `CHAT_TEST_POSTGRES`; skipped without it, except
//! under `CI=true`): connections lost and the database unavailable for a while.

use chat_proto::{ErrorCode, ErrorReply, ServerMessage};
use chat_server::ServerConfig;
use chat_testkit::*;

/// Every connection the server holds is cut, as a database restart does: the pool notices
/// on the next acquire and connects again, so the next message is stored and delivered.
#[tokio::test]
async fn connections_cut_by_the_database_are_replaced() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let server = TestServer::on(&db, config(), ServerConfig::default()).await;
    let mut alice = logged_in(server.addr, "alice", true).await;
    let mut bob = logged_in(server.addr, "bob", true).await;
    alice
        .send_text(user("bob"), 1, "before")
        .await
        .expect("stored");
    bob.until(text_is("before")).await.expect("arrives");

    assert!(db.disconnect_all().await > 0, "the server was connected");
    let after = alice
        .send_text(user("bob"), 2, "after")
        .await
        .expect("stored on a new connection");
    let got = bob.until(text_is("after")).await.expect("arrives");
    assert!(matches!(got, ServerMessage::Message(m) if m.id == after));
    // A new login reads its backlog through the pool too.
    let carol = logged_in(server.addr, "carol", true).await;
    assert!(carol.texts().is_empty());
    server.stop().await;
}

/// The database refuses connections for a while (down, or restarting): the write that meets
/// it is retried (nothing is acknowledged meanwhile) while new writes are refused with a
/// retryable error, and a message resent with its id after the database is back is stored
/// and delivered exactly once.
#[tokio::test]
async fn messages_sent_while_the_database_is_down_are_stored_once_it_is_back() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let server = TestServer::on(&db, config(), ServerConfig::default()).await;
    let mut alice = logged_in(server.addr, "alice", true).await;
    let mut bob = logged_in(server.addr, "bob", true).await;

    assert_eq!(http_get(server.web, "/healthz").await.0, 200);
    db.allow_connections(false).await;
    let refused = alice.send_text(user("bob"), 1, "while down").await;
    assert!(
        refused.is_err(),
        "nothing is acknowledged that is not stored"
    );
    // Health says so while storage takes no writes (load balancers route elsewhere).
    let (status, _, body) = http_get(server.web, "/healthz").await;
    assert_eq!(
        (status, body.as_str()),
        (503, "storage cannot take writes\n")
    );
    db.allow_connections(true).await;
    // Resent with the same id, retrying while the server still says `Unavailable` (its
    // writer retries with back-off, up to 5 s apart).
    let deadline = tokio::time::Instant::now() + WAIT;
    let stored = loop {
        match alice.send_text(user("bob"), 1, "while down").await {
            Ok(id) => break id,
            Err(chat_client::Error::Refused(ErrorReply {
                code: ErrorCode::Unavailable { retry_after_ms },
                ..
            })) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(retry_after_ms.into())).await;
            }
            Err(other) => panic!("stored once the database is back: {other}"),
        }
    };
    alice
        .send_text(user("bob"), 2, "marker")
        .await
        .expect("stored");
    bob.until(text_is("marker")).await.expect("arrives");
    assert_eq!(
        http_get(server.web, "/healthz").await.0,
        200,
        "healthy again"
    );
    let copies: Vec<_> = bob
        .events()
        .iter()
        .filter(|e| matches!(e, ServerMessage::Message(m) if m.text == "while down"))
        .collect();
    assert!(
        matches!(copies[..], [ServerMessage::Message(m)] if m.id == stored),
        "delivered exactly once: {copies:?}"
    );
    server.stop().await;
}
