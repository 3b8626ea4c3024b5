//! `chat-server admin`: the real binary makes a server operator in the database (on every
//! backend); after a restart the operator disables an account live, its connection is closed,
//! it cannot log in, the server log shows who did it, and `admin enable` lets it back in.

use std::process::Output;

use chat_client::Error;
use chat_proto::*;
use chat_server::ServerConfig;
use chat_testkit::*;
use tokio::process::Command;
use tokio::time::timeout;

/// Runs `chat-server admin ARGS… --db DB` to completion.
async fn admin(db: &TestDb, args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_chat-server"));
    command
        .arg("admin")
        .args(args)
        .arg("--db")
        .arg(db.arg())
        .kill_on_drop(true);
    timeout(WAIT, command.output())
        .await
        .expect("admin finishes in time")
        .expect("admin runs")
}

fn refused(result: Result<Reply, Error>) -> ErrorCode {
    match result {
        Err(Error::Refused(e)) => e.code,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

on_every_backend!(an_operator_made_by_the_admin_command_disables_an_account);

async fn an_operator_made_by_the_admin_command_disables_an_account(db: TestDb) {
    let server = TestServer::on(&db, config(), ServerConfig::default()).await;
    drop(logged_in(server.addr, "dave", true).await);
    drop(logged_in(server.addr, "mallory", true).await);
    server.stop().await;

    let unknown = admin(&db, &["op", "nobody"]).await;
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no user nobody"));
    let op = admin(&db, &["op", "dave"]).await;
    assert!(op.status.success(), "{op:?}");
    assert!(String::from_utf8_lossy(&op.stdout).contains("dave is now a server operator"));

    let server = TestServer::on(&db, config(), ServerConfig::default()).await;
    let mut dave = logged_in(server.addr, "dave", false).await;
    let mut mallory = logged_in(server.addr, "mallory", false).await;
    // Only an operator disables, and not another operator.
    assert_eq!(
        refused(
            mallory
                .request(Request::SetDisabled {
                    user: "dave".into(),
                    disabled: true,
                })
                .await
        ),
        ErrorCode::Forbidden
    );
    dave.request(Request::SetDisabled {
        user: "mallory".into(),
        disabled: true,
    })
    .await
    .expect("disabled");
    mallory
        .until(|m| matches!(m, ServerMessage::Error(e) if e.code == ErrorCode::Forbidden))
        .await
        .expect("told why before the connection closes");
    let mut again = chat_client::Session::connect(server.addr)
        .await
        .expect("connects");
    let login = again
        .request(Request::Login {
            username: "mallory".into(),
            password: PASSWORD.into(),
            device: "mallory-dev".into(),
        })
        .await;
    assert_eq!(refused(login), ErrorCode::Forbidden);
    let Ok(Reply::AuditLog { entries, .. }) = dave
        .request(Request::AuditLog {
            room: None,
            before: None,
            limit: 10,
        })
        .await
    else {
        panic!("the operator reads the server log");
    };
    assert_eq!(
        (
            entries[0].by.as_str(),
            entries[0].user.as_str(),
            entries[0].action
        ),
        ("dave", "mallory", ModAction::Disabled)
    );
    drop((dave, again));
    server.stop().await;

    let enable = admin(&db, &["enable", "mallory"]).await;
    assert!(enable.status.success(), "{enable:?}");
    let server = TestServer::on(&db, config(), ServerConfig::default()).await;
    drop(logged_in(server.addr, "mallory", false).await);
    server.stop().await;
}

#[tokio::test]
async fn a_missing_sqlite_file_is_not_created() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("typo.db");
    let output = timeout(
        WAIT,
        Command::new(env!("CARGO_BIN_EXE_chat-server"))
            .args(["admin", "op", "dave", "--db"])
            .arg(&path)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("finishes")
    .expect("runs");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("no database at"));
    assert!(!path.exists());
}
