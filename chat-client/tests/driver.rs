//! The tokio driver with a real engine in process: a script runs in order and exits with its
//! status; no sockets.

use std::time::Duration;

use chat_client::{run, Client, Event, Input, Settings};
use chat_core::{Config, Engine, Store};
use chat_testkit::{config, PASSWORD, WAIT};
use tokio::sync::mpsc;
use tokio::time::timeout;

fn settings() -> Settings {
    Settings {
        servers: vec!["in-process".into()],
        device: "test-device".into(),
        password: Some(PASSWORD.into()),
        client_name: "driver-test".into(),
        linger: Duration::from_millis(50),
        interactive: false,
    }
}

/// Runs `lines` as a script against `engine`; returns the exit status and the events shown.
async fn script(engine: &Engine, lines: &[&str]) -> (i32, Vec<Event>) {
    let (tx, rx) = mpsc::unbounded_channel();
    for line in lines {
        tx.send(Input::Line((*line).into())).expect("open");
    }
    tx.send(Input::End).expect("open");
    let mut events = Vec::new();
    let code = timeout(
        WAIT,
        run(Client::new(settings()), engine.clone(), rx, |e| {
            events.push(e)
        }),
    )
    .await
    .expect("the script ends in time");
    (code, events)
}

#[tokio::test]
async fn a_script_runs_in_order_in_the_servers_default_room() {
    let config = Config {
        default_room: "lobby".into(),
        ..config()
    };
    let engine = Engine::start(Store::open_in_memory().await.expect("store"), config)
        .await
        .expect("engine");
    let (code, events) = script(
        &engine,
        &[
            "/register alice",
            "hello lobby",
            "/join #rust",
            "hello rust",
            "/history 5",
        ],
    )
    .await;
    assert_eq!(code, 0, "{events:?}");
    assert!(events.contains(&Event::LoggedIn {
        user: "alice".into(),
        room: "lobby".into()
    }));
    let history = events
        .iter()
        .find_map(|e| match e {
            Event::History { messages, .. } => Some(messages),
            _ => None,
        })
        .expect("a history page");
    let texts: Vec<&str> = history.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(texts, ["hello rust"], "the text after /join went to #rust");

    let (code, events) = script(&engine, &["/login alice wrong-password"]).await;
    assert_eq!(code, 1);
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::Failed(text) if text.contains("wrong"))),
        "{events:?}"
    );
    engine.shut_down().await.expect("clean shutdown");
}
