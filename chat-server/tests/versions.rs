//! Version negotiation over real TCP: a version-1 client keeps working against the
//! version-2 server, and is never sent a frame it cannot decode.

use chat_client::Session;
use chat_proto::*;
use chat_testkit::*;

#[tokio::test]
async fn the_server_agrees_the_highest_common_version() {
    let server = start_server().await;
    for (min, max, agreed) in [(1, 1, 1), (1, 2, 2), (2, 2, 2), (1, 9, 2)] {
        let transport = chat_client::tcp(server.addr).await.expect("connects");
        let hello = Hello {
            min_version: min,
            max_version: max,
            client: "probe".into(),
        };
        let session = Session::handshake_with(transport, hello)
            .await
            .expect("welcomed");
        assert_eq!(session.welcome().version, agreed, "{min}..={max}");
    }
    let transport = chat_client::tcp(server.addr).await.expect("connects");
    let refused = Session::handshake_with(transport, Hello::version(3, "future")).await;
    assert!(
        matches!(
            refused,
            Err(chat_client::Error::Refused(ErrorReply {
                code: ErrorCode::UnsupportedVersion { min: 1, max: 2 },
                ..
            }))
        ),
        "{refused:?}"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_version_1_client_chats_with_version_2_clients() {
    let server = start_server().await;
    let mut old = logged_in_version(server.addr, "old", true, 1).await;
    let mut new = logged_in(server.addr, "new", true).await;
    new.send_text(room("general"), 1, "hello old")
        .await
        .expect("stored");
    old.until(text_is("hello old")).await.expect("arrives");
    old.send_text(room("general"), 1, "hello new")
        .await
        .expect("stored");
    new.until(text_is("hello new")).await.expect("arrives");
    let history = old
        .request(Request::History {
            target: room("general"),
            before: None,
            limit: 10,
        })
        .await
        .expect("history");
    assert!(matches!(history, Reply::History { messages, .. } if messages.len() == 2));
    server.stop().await;
}
