//! [`Failover`] with the tokio driver against a real server on 127.0.0.1: a client given a dead
//! address first connects to the live one, over TCP and over WebSocket. (Failing over between
//! two nodes on one PostgreSQL database, one killed mid-stream: `chat-server/tests/failover.rs`.)

use std::net::SocketAddr;
use std::time::Duration;

use chat_client::{
    run, Client, Connector, Event, Failover, Input, Settings, TcpConnector, WsConnector, WsOptions,
};
use chat_testkit::{start_server, PASSWORD, WAIT};
use tokio::sync::mpsc::unbounded_channel;
use tokio::time::timeout;

/// An address nothing listens on (a port just bound and released).
fn dead_addr() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binds");
    listener.local_addr().expect("has an address")
}

/// Runs an interactive client over `connector` (one connector per name in `servers`) until it
/// is connected, registers alice, and returns the events shown until then.
async fn connect_and_register<C>(servers: Vec<String>, connector: Failover<C>) -> Vec<Event>
where
    C: Connector + Clone + 'static,
{
    let settings = Settings {
        servers,
        device: "alice-dev".into(),
        password: Some(PASSWORD.into()),
        client_name: "failover-test".into(),
        linger: Duration::from_millis(50),
        interactive: true,
    };
    let (input, lines) = unbounded_channel();
    let (shown, mut events) = unbounded_channel();
    let driver = tokio::spawn(run(Client::new(settings), connector, lines, move |e| {
        let _ = shown.send(e);
    }));
    let mut seen = Vec::new();
    let mut registered = false;
    while !registered {
        let event = timeout(WAIT, events.recv())
            .await
            .unwrap_or_else(|_| panic!("stalled; saw {seen:?}"))
            .expect("the client runs");
        match &event {
            Event::Connected { .. } => {
                input
                    .send(Input::Line("/register alice".into()))
                    .expect("open");
            }
            Event::LoggedIn { .. } => registered = true,
            Event::Failed(error) => panic!("{error}; saw {seen:?}"),
            _ => {}
        }
        seen.push(event);
    }
    input.send(Input::Quit).expect("open");
    let code = timeout(WAIT, driver)
        .await
        .expect("stops")
        .expect("no panic");
    assert_eq!(code, 0);
    seen
}

/// The dead address is reported, then the live one connected.
fn assert_passed_over(events: &[Event], dead: &str, live: &str) {
    let unreachable = events
        .iter()
        .position(|e| matches!(e, Event::Unreachable { server, .. } if server == dead))
        .unwrap_or_else(|| panic!("the dead address is reported: {events:?}"));
    let connected = events
        .iter()
        .position(|e| matches!(e, Event::Connected { server } if server == live))
        .unwrap_or_else(|| panic!("connected to the live address: {events:?}"));
    assert!(unreachable < connected, "{events:?}");
}

#[tokio::test]
async fn a_dead_address_is_passed_over_for_a_live_one_over_tcp() {
    let server = start_server().await;
    let (dead, live) = (dead_addr().to_string(), server.addr.to_string());
    let servers = vec![dead.clone(), live.clone()];
    let connector =
        Failover::new(servers.iter().cloned().map(TcpConnector).collect()).expect("two servers");
    let events = connect_and_register(servers, connector).await;
    assert_passed_over(&events, &dead, &live);
    server.stop().await;
}

#[tokio::test]
async fn a_dead_address_is_passed_over_for_a_live_one_over_websocket() {
    let server = start_server().await;
    let dead = dead_addr();
    let nodes = [dead, server.web];
    let servers: Vec<String> = nodes.iter().map(|a| format!("ws://{a}/ws")).collect();
    let connectors = nodes
        .iter()
        .map(|&addr| {
            WsConnector(WsOptions {
                addr,
                tls: None,
                origin: None,
            })
        })
        .collect();
    let connector = Failover::new(connectors).expect("two servers");
    let events = connect_and_register(servers.clone(), connector).await;
    assert_passed_over(&events, &servers[0], &servers[1]);
    server.stop().await;
}
