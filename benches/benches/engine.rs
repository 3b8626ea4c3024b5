//! The engine alone (in-memory connections, no sockets) with storage on a real SQLite file:
//! room fan-out and direct-message throughput, everything stored before it is acknowledged.
// `criterion_main!` generates an undocumented `main`.
#![allow(missing_docs)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chat_client::Session;
use chat_core::{Config, Connection, Engine, Store};
use chat_proto::*;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use tokio::runtime::Runtime;

fn config() -> Config {
    Config {
        request_rate_per_sec: 1_000_000,
        request_burst: 1_000_000,
        ..chat_testkit::config()
    }
}

/// A registered user's connection, caught up (and a member of `room`, if given).
async fn user(engine: &Engine, name: &str, room: Option<&str>) -> Connection {
    let mut session = Session::embedded(engine, "bench").await.expect("running");
    session
        .register(name, "bench-password", "bench")
        .await
        .expect("registers");
    if let Some(room) = room {
        session
            .request(Request::Join { room: room.into() })
            .await
            .expect("joins");
    }
    session.into_transport()
}

/// Counts every frame a connection receives into `total`.
fn count_frames(mut conn: Connection, total: Arc<AtomicU64>) {
    tokio::spawn(async move {
        let mut frames = Vec::new();
        while conn.recv_frames(&mut frames).await {
            total.fetch_add(frames.len() as u64, Ordering::Relaxed);
            frames.clear();
        }
    });
}

async fn wait_for(total: &AtomicU64, target: u64) {
    while total.load(Ordering::Relaxed) < target {
        tokio::time::sleep(Duration::from_micros(50)).await;
    }
}

/// Sends `count` messages from `conn` to `target`, at most `window` unanswered.
async fn send_many(conn: &mut Connection, target: &Target, count: u64, next_id: &mut u64) {
    let mut in_flight = 0;
    let mut sent = 0;
    while sent < count || in_flight > 0 {
        while sent < count && in_flight < 64 {
            *next_id += 1;
            let request = Request::Send {
                target: target.clone(),
                client_msg_id: ClientMsgId(*next_id),
                text: "x".repeat(32),
            };
            conn.send(ClientMessage::Request {
                id: RequestId(*next_id as u32),
                request,
            })
            .await
            .expect("running");
            sent += 1;
            in_flight += 1;
        }
        let mut frames = Vec::new();
        if conn.recv_frames(&mut frames).await {
            for frame in frames {
                if let Ok(Some((ServerMessage::Ok { .. }, _))) =
                    decode_frame::<ServerMessage>(frame.as_bytes(), usize::MAX >> 8)
                {
                    in_flight -= 1;
                }
            }
        }
    }
}

fn fanout(c: &mut Criterion) {
    let runtime = Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let mut group = c.benchmark_group("engine_fanout");
    for receivers in [10u64, 100] {
        let db = dir.path().join(format!("fanout{receivers}.db"));
        let (engine, mut sender, total) = runtime.block_on(async {
            let engine = Engine::start(Store::open(&db).await.expect("store"), config())
                .await
                .expect("engine");
            let room = format!("fan{receivers}");
            let total = Arc::new(AtomicU64::new(0));
            for i in 0..receivers {
                count_frames(
                    user(&engine, &format!("r{receivers}x{i}"), Some(&room)).await,
                    total.clone(),
                );
            }
            let sender = user(&engine, &format!("sender{receivers}"), Some(&room)).await;
            // Let the join notices settle before counting.
            tokio::time::sleep(Duration::from_millis(100)).await;
            (engine, sender, total)
        });
        let target = Target::Room(format!("fan{receivers}"));
        let mut next_id = 0;
        group.throughput(Throughput::Elements(receivers));
        group.bench_function(BenchmarkId::new("deliveries", receivers), |b| {
            b.iter_custom(|iters| {
                runtime.block_on(async {
                    let goal = total.load(Ordering::Relaxed) + iters * receivers;
                    let start = Instant::now();
                    send_many(&mut sender, &target, iters, &mut next_id).await;
                    wait_for(&total, goal).await;
                    start.elapsed()
                })
            })
        });
        runtime.block_on(async { engine.shut_down().await.expect("clean shutdown") });
    }
    group.finish();
}

fn direct(c: &mut Criterion) {
    let runtime = Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let pairs = 32u64;
    let (engine, senders, total) = runtime.block_on(async {
        let engine = Engine::start(
            Store::open(dir.path().join("dm.db")).await.expect("store"),
            config(),
        )
        .await
        .expect("engine");
        let total = Arc::new(AtomicU64::new(0));
        let mut senders = Vec::new();
        for i in 0..pairs {
            count_frames(user(&engine, &format!("to{i}"), None).await, total.clone());
            senders.push(user(&engine, &format!("from{i}"), None).await);
        }
        (engine, senders, total)
    });
    let senders = Arc::new(tokio::sync::Mutex::new(senders));
    let mut group = c.benchmark_group("engine_dm");
    group.throughput(Throughput::Elements(pairs));
    group.bench_function(BenchmarkId::new("messages", pairs), |b| {
        b.iter_custom(|iters| {
            runtime.block_on(async {
                let goal = total.load(Ordering::Relaxed) + iters * pairs;
                let start = Instant::now();
                let mut senders = senders.lock().await;
                let tasks: Vec<_> = senders
                    .drain(..)
                    .enumerate()
                    .map(|(i, mut conn)| {
                        tokio::spawn(async move {
                            let target = Target::User(format!("to{i}"));
                            let mut next_id = iters * 1_000_000 + start.elapsed().as_nanos() as u64;
                            send_many(&mut conn, &target, iters, &mut next_id).await;
                            conn
                        })
                    })
                    .collect();
                for task in tasks {
                    senders.push(task.await.expect("sender"));
                }
                wait_for(&total, goal).await;
                start.elapsed()
            })
        })
    });
    group.finish();
    runtime.block_on(async { engine.shut_down().await.expect("clean shutdown") });
}

criterion_group!(benches, fanout, direct);
criterion_main!(benches);
