//! The bus between nodes on a real `nats-server` (skipped without one, failed under
//! `CI=true`): publications arrive in order exactly once, and every loss — a NATS restart, a
//! dropped publication, a node gone — is reported, never silent.

use std::time::{Duration, Instant};

use bytes::Bytes;
use chat_server::bus::{Bus, BusConfig, BusEvent};
use chat_server::ServerConfig;
use chat_testkit::{TestDb, TestNats, TestServer, WAIT};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc::Receiver;
use tokio::time::timeout;

/// Heartbeats in these tests: short, so they are quick.
const HEARTBEAT: Duration = Duration::from_millis(100);

fn config(nats: &TestNats, node: &str) -> BusConfig {
    BusConfig {
        heartbeat: HEARTBEAT,
        dead_after: 3,
        ..BusConfig::new(nats.url(), node)
    }
}

async fn connect(nats: &TestNats, node: &str) -> (Bus, Receiver<BusEvent>) {
    Bus::connect(config(nats, node))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

fn payload(n: u64) -> Bytes {
    Bytes::copy_from_slice(&n.to_be_bytes())
}

fn number(payload: &Bytes) -> u64 {
    u64::from_be_bytes(payload[..].try_into().expect("8 bytes"))
}

/// Every event up to and including the first that `done` accepts.
///
/// # Panics
/// After [`WAIT`] without it, or if the bus stops.
async fn until(events: &mut Receiver<BusEvent>, done: impl Fn(&BusEvent) -> bool) -> Vec<BusEvent> {
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(event)) => {
                let last = done(&event);
                seen.push(event);
                if last {
                    return seen;
                }
            }
            Ok(None) => panic!("the bus stopped; seen: {seen:?}"),
            Err(_) => panic!("timed out; seen: {seen:?}"),
        }
    }
}

fn is_up(node: &'static str) -> impl Fn(&BusEvent) -> bool {
    move |e| matches!(e, BusEvent::NodeUp { node: n } if n == node)
}

fn is_down(node: &'static str) -> impl Fn(&BusEvent) -> bool {
    move |e| matches!(e, BusEvent::NodeDown { node: n } if n == node)
}

fn is_gap(node: &'static str) -> impl Fn(&BusEvent) -> bool {
    move |e| matches!(e, BusEvent::Gap { node: n } if n == node)
}

fn is_presence(node: &'static str, payload: &'static [u8]) -> impl Fn(&BusEvent) -> bool {
    move |e| matches!(e, BusEvent::Presence { node: n, payload: p } if n == node && p == payload)
}

/// The numbers of `node`'s batches among `events`.
fn batches(events: &[BusEvent], node: &str) -> Vec<u64> {
    events
        .iter()
        .filter_map(|e| match e {
            BusEvent::Batch { node: n, payload } if n == node => Some(number(payload)),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn a_thousand_publications_arrive_in_order_exactly_once() {
    let Some(nats) = TestNats::start().await else {
        return;
    };
    let (a, mut a_events) = connect(&nats, "a").await;
    let (b, mut b_events) = connect(&nats, "b").await;
    until(&mut b_events, is_up("a")).await;

    for n in 1..=1000 {
        a.publish(payload(n));
    }
    // A heartbeat carrying this comes after every publication: by then any gap is known.
    a.set_presence(Bytes::from_static(b"done"));
    let seen = until(&mut b_events, is_presence("a", b"done")).await;

    assert_eq!(batches(&seen, "a"), (1..=1000).collect::<Vec<_>>());
    assert!(!seen.iter().any(is_gap("a")), "{seen:?}");
    let a_seen: Vec<BusEvent> = std::iter::from_fn(|| a_events.try_recv().ok()).collect();
    assert!(
        !a_seen.iter().any(|e| matches!(e, BusEvent::Batch { .. })),
        "a received a batch: {a_seen:?}"
    );
    let (a_stats, b_stats) = (a.stats(), b.stats());
    assert_eq!((a_stats.published, a_stats.dropped), (1000, 0));
    assert_eq!(
        (b_stats.received, b_stats.gaps, b_stats.malformed),
        (1000, 0, 0)
    );
    a.close().await;
    b.close().await;
}

#[tokio::test]
async fn a_restart_of_nats_is_never_a_silent_loss() {
    let Some(mut nats) = TestNats::start().await else {
        return;
    };
    let (a, _a_events) = connect(&nats, "a").await;
    let (b, mut b_events) = connect(&nats, "b").await;
    until(&mut b_events, is_up("a")).await;

    const TOTAL: u64 = 600;
    for n in 1..=200 {
        a.publish(payload(n));
    }
    nats.kill();
    for n in 201..=400 {
        a.publish(payload(n));
    }
    nats.restart().await;
    for n in 401..=TOTAL {
        a.publish(payload(n));
        if n % 50 == 0 {
            tokio::task::yield_now().await;
        }
    }
    a.set_presence(Bytes::from_static(b"done"));
    let seen = until(&mut b_events, is_presence("a", b"done")).await;

    let received = batches(&seen, "a");
    assert!(
        received.windows(2).all(|w| w[0] < w[1]),
        "out of order or twice: {received:?}"
    );
    let reconnected = seen.contains(&BusEvent::Reconnected);
    let gap = seen.iter().any(is_gap("a"));
    assert!(
        received.len() as u64 == TOTAL || reconnected || gap,
        "{} of {TOTAL} received without a Reconnected or a Gap",
        received.len()
    );
    eprintln!(
        "received {} of {TOTAL}; reconnected: {reconnected}; gap: {gap}; a: {:?}; b: {:?}",
        received.len(),
        a.stats(),
        b.stats()
    );
    a.close().await;
    b.close().await;
}

#[tokio::test]
async fn a_lost_last_publication_is_revealed_by_the_next_heartbeat() {
    let Some(nats) = TestNats::start().await else {
        return;
    };
    let a_config = BusConfig {
        queue: 4,
        ..config(&nats, "a")
    };
    let (a, _a_events) = Bus::connect(a_config)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let (b, mut b_events) = connect(&nats, "b").await;
    until(&mut b_events, is_up("a")).await;

    // Nothing awaits in between, so the publish task (on this same thread) takes none of
    // them before the fifth: four fill the queue, the last is dropped.
    for n in 1..=5 {
        a.publish(payload(n));
    }
    assert_eq!(a.stats().dropped, 1);
    let seen = until(&mut b_events, is_gap("a")).await;
    assert_eq!(batches(&seen, "a"), [1, 2, 3, 4]);

    // Numbering goes on: the next one is no new gap.
    a.publish(payload(6));
    a.set_presence(Bytes::from_static(b"done"));
    let seen = until(&mut b_events, is_presence("a", b"done")).await;
    assert_eq!(batches(&seen, "a"), [6]);
    assert!(!seen.iter().any(is_gap("a")), "{seen:?}");
    a.close().await;
    b.close().await;
}

#[tokio::test]
async fn a_closed_node_is_down_at_once_and_its_restart_is_no_gap() {
    let Some(nats) = TestNats::start().await else {
        return;
    };
    let (b, mut b_events) = connect(&nats, "b").await;
    let (a, _a_events) = connect(&nats, "a").await;
    a.publish(payload(1));
    let seen = until(&mut b_events, |e| matches!(e, BusEvent::Batch { .. })).await;
    assert!(!seen.iter().any(is_gap("a")), "{seen:?}");

    let closed = Instant::now();
    a.close().await;
    let seen = until(&mut b_events, is_down("a")).await;
    // The goodbye said so (a silence would have come with a gap), and at once.
    assert!(!seen.iter().any(is_gap("a")), "{seen:?}");
    assert!(closed.elapsed() < 10 * HEARTBEAT, "{:?}", closed.elapsed());

    // Started again: a new epoch, numbered from 1 again, which is no gap.
    let (a, _a_events) = connect(&nats, "a").await;
    a.publish(payload(1));
    let seen = until(&mut b_events, |e| matches!(e, BusEvent::Batch { .. })).await;
    assert!(seen.iter().any(is_up("a")), "{seen:?}");
    assert_eq!(batches(&seen, "a"), [1]);
    assert!(!seen.iter().any(is_gap("a")), "{seen:?}");
    a.close().await;
    b.close().await;
}

#[tokio::test]
async fn a_crashed_node_is_down_within_dead_after_with_a_gap() {
    let Some(nats) = TestNats::start().await else {
        return;
    };
    let (b, mut b_events) = connect(&nats, "b").await;

    // Node a in a runtime of its own, dropped with its tasks: no goodbye, as in a crash.
    let a_config = config(&nats, "a");
    let (crash, crashed) = tokio::sync::oneshot::channel::<()>();
    let a_thread = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let bus = runtime.block_on(async {
            let (bus, events) = Bus::connect(a_config).await.expect("connects");
            bus.publish(payload(1));
            let _ = crashed.await;
            (bus, events)
        });
        drop(runtime);
        drop(bus);
    });
    let seen = until(&mut b_events, |e| matches!(e, BusEvent::Batch { .. })).await;
    assert!(seen.iter().any(is_up("a")), "{seen:?}");

    let _ = crash.send(());
    let crashed_at = Instant::now();
    tokio::task::spawn_blocking(move || a_thread.join().expect("node a's thread"))
        .await
        .expect("joined");
    let seen = until(&mut b_events, is_down("a")).await;
    let elapsed = crashed_at.elapsed();
    // Three silent intervals, checked every half interval; a margin for a busy machine.
    assert!(elapsed < 20 * HEARTBEAT, "{elapsed:?}");
    // It may have published after its last heartbeat: that is a gap.
    let seen = [seen, until(&mut b_events, is_gap("a")).await].concat();
    assert!(batches(&seen, "a").is_empty(), "{seen:?}");

    // Started again: up, and numbered from 1 without a new gap.
    let (a, _a_events) = connect(&nats, "a").await;
    a.publish(payload(1));
    let seen = until(&mut b_events, |e| matches!(e, BusEvent::Batch { .. })).await;
    assert!(seen.iter().any(is_up("a")), "{seen:?}");
    assert!(!seen.iter().any(is_gap("a")), "{seen:?}");
    a.close().await;
    b.close().await;
}

#[tokio::test]
async fn malformed_envelopes_are_counted_and_skipped() {
    let Some(nats) = TestNats::start().await else {
        return;
    };
    let (b, mut b_events) = connect(&nats, "b").await;
    let (a, _a_events) = connect(&nats, "a").await;
    until(&mut b_events, is_up("a")).await;

    let raw = async_nats::connect(nats.url()).await.expect("connects");
    let mut header = vec![1u8, 1];
    header.extend_from_slice(&7u64.to_be_bytes()); // epoch
    header.extend_from_slice(&1u64.to_be_bytes()); // seq
    header.extend_from_slice(&0u64.to_be_bytes()); // sent at
    let with = |edit: &dyn Fn(&mut Vec<u8>)| {
        let mut bytes = header.clone();
        bytes.extend_from_slice(&[1, b'x']);
        edit(&mut bytes);
        Bytes::from(bytes)
    };
    let garbage = [
        Bytes::new(),
        Bytes::from_static(b"hello"),
        with(&|b| b[0] = 9),                           // version
        with(&|b| b[1] = 0),                           // kind
        with(&|b| b[26] = 200),                        // node past the end
        with(&|b| b[26] = 0),                          // empty node
        with(&|b| b[27] = 0xff),                       // node not UTF-8
        with(&|b| b[10..18].copy_from_slice(&[0; 8])), // batch numbered 0
        Bytes::from(header[..20].to_vec()),            // truncated header
    ];
    for bytes in &garbage {
        raw.publish("chat.cluster", bytes.clone())
            .await
            .expect("publishes");
    }
    raw.flush().await.expect("flushes");

    a.publish(payload(1));
    let seen = until(&mut b_events, |e| matches!(e, BusEvent::Batch { .. })).await;
    assert_eq!(batches(&seen, "a"), [1]);
    assert!(!seen.iter().any(is_up("x")), "{seen:?}");
    let counted = timeout(WAIT, async {
        while b.stats().malformed < garbage.len() as u64 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(counted.is_ok(), "{:?}", b.stats());
    assert_eq!(b.stats().malformed, garbage.len() as u64);

    // And it goes on working.
    a.publish(payload(2));
    let seen = until(&mut b_events, |e| matches!(e, BusEvent::Batch { .. })).await;
    assert_eq!(batches(&seen, "a"), [2]);
    a.close().await;
    b.close().await;
}

#[tokio::test]
async fn an_unreachable_nats_is_an_error_naming_its_url() {
    let url = "nats://127.0.0.1:1";
    let error = Bus::connect(BusConfig::new(url, "a"))
        .await
        .expect_err("no NATS there");
    assert!(error.to_string().contains(url), "{error}");
}

#[tokio::test]
async fn the_metrics_endpoint_shows_the_bus_counters() {
    let Some(nats) = TestNats::start().await else {
        return;
    };
    let (b, mut b_events) = connect(&nats, "b").await;
    let (a, _a_events) = connect(&nats, "a").await;
    a.publish(payload(1));
    until(&mut b_events, |e| matches!(e, BusEvent::Batch { .. })).await;

    let db = TestDb::sqlite();
    let server_config = ServerConfig {
        bus: Some(b.stats_reader()),
        ..ServerConfig::default()
    };
    let server = TestServer::on(&db, chat_testkit::config(), server_config).await;
    let mut http = tokio::net::TcpStream::connect(server.web)
        .await
        .expect("connects");
    http.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .expect("writes");
    let mut response = String::new();
    timeout(WAIT, http.read_to_string(&mut response))
        .await
        .expect("in time")
        .expect("reads");
    assert!(response.contains("chat_bus_received_total 1"), "{response}");
    assert!(response.contains("chat_bus_gaps_total 0"), "{response}");
    assert!(response.contains("chat_bus_lag_max_seconds"), "{response}");
    a.close().await;
    b.close().await;
}
