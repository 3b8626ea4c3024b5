//! `chat-load`: a load generator speaking the real protocol over TCP to a chat-server.
//!
//! By default it starts `chat-server` (from the same target directory: build it first with
//! `cargo build --release -p chat-server`) on 127.0.0.1 with a temporary database, so it knows
//! the server's PID and can report its CPU time and memory from /proc. Every run is bounded in
//! count and time (`--max-secs`), talks only to loopback addresses, and stops by itself.
//!
//! Scenarios: `fanout` (one room, many receivers), `dm` (pairs of users), `idle` (many logged-in
//! connections doing nothing), `login-storm` (argon2id logins during a fixed-rate fan-out).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chat_proto::*;
use clap::{Parser, Subcommand};
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::{TcpSocket, TcpStream};
use tokio::process::{Child, Command};
use tokio::sync::Semaphore;
use tokio::time::timeout;
use tokio_util::codec::Framed;

/// Load generator for chat-server (loopback only).
#[derive(Debug, Parser)]
struct Args {
    #[command(subcommand)]
    scenario: Scenario,
    /// Use an already running server instead of starting one (must be a loopback address).
    #[arg(long, global = true)]
    server: Option<SocketAddr>,
    /// The PID of `--server`, to read its CPU time and memory.
    #[arg(long, global = true)]
    server_pid: Option<u32>,
    /// Stop after this many seconds whatever happens.
    #[arg(long, global = true, default_value_t = 120)]
    max_secs: u64,
    /// Print the results as JSON too.
    #[arg(long, global = true)]
    json: bool,
    /// The started server's `--durability` (`full` or `process`).
    #[arg(long, global = true, default_value = "full")]
    durability: String,
}

#[derive(Debug, Clone, Subcommand)]
enum Scenario {
    /// S senders send M messages each to one room of R receivers.
    Fanout {
        #[arg(long, default_value_t = 100)]
        receivers: usize,
        #[arg(long, default_value_t = 4)]
        senders: usize,
        /// Messages per sender.
        #[arg(long, default_value_t = 2000)]
        messages: usize,
        /// Text bytes per message (at least 24: the send time travels in the text).
        #[arg(long, default_value_t = 32)]
        size: usize,
        /// Unacknowledged sends per sender at full speed.
        #[arg(long, default_value_t = 64)]
        window: usize,
        /// Messages per second over all senders (default: full speed).
        #[arg(long)]
        rate: Option<u64>,
    },
    /// P pairs of users send M direct messages each to each other.
    Dm {
        #[arg(long, default_value_t = 100)]
        pairs: usize,
        #[arg(long, default_value_t = 500)]
        messages: usize,
        #[arg(long, default_value_t = 32)]
        size: usize,
        #[arg(long, default_value_t = 16)]
        window: usize,
    },
    /// C logged-in connections that do nothing: server memory per connection.
    Idle {
        #[arg(long, default_value_t = 5000)]
        connections: usize,
        /// Source addresses 127.0.0.1.. to spread connections over (ephemeral port range).
        #[arg(long, default_value_t = 1)]
        sources: u8,
    },
    /// N concurrent argon2id logins during a fixed-rate fan-out, against the same fan-out quiet.
    LoginStorm {
        #[arg(long, default_value_t = 100)]
        logins: usize,
        #[arg(long, default_value_t = 100)]
        receivers: usize,
        /// Messages per second into the room.
        #[arg(long, default_value_t = 1000)]
        rate: u64,
        /// Seconds of each phase (quiet, then storm).
        #[arg(long, default_value_t = 5)]
        secs: u64,
    },
}

type Conn = Framed<TcpStream, ClientCodec>;
const PASSWORD: &str = "load-test-password";

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    let deadline = Duration::from_secs(args.max_secs);
    match runtime.block_on(async { timeout(deadline, run(args)).await }) {
        Ok(Ok(())) => std::process::ExitCode::SUCCESS,
        Ok(Err(error)) => {
            eprintln!("chat-load: {error}");
            std::process::ExitCode::FAILURE
        }
        Err(_) => {
            eprintln!("chat-load: stopped after --max-secs");
            std::process::ExitCode::FAILURE
        }
    }
}

/// The server under test, and the means to measure it.
struct Target {
    addr: SocketAddr,
    pid: Option<u32>,
    child: Option<Child>,
    _dir: Option<tempfile::TempDir>,
}

async fn run(args: Args) -> Result<(), String> {
    let owasp = matches!(args.scenario, Scenario::LoginStorm { .. });
    let target = match args.server {
        Some(addr) if addr.ip().is_loopback() => Target {
            addr,
            pid: args.server_pid,
            child: None,
            _dir: None,
        },
        Some(addr) => return Err(format!("{addr} is not a loopback address: refusing")),
        None => spawn_server(owasp, &args.durability).await?,
    };
    let mut report = Report::default();
    match args.scenario.clone() {
        Scenario::Fanout {
            receivers,
            senders,
            messages,
            size,
            window,
            rate,
        } => {
            fanout(
                &target,
                &mut report,
                receivers,
                senders,
                messages,
                size,
                window,
                rate,
                "",
            )
            .await?
        }
        Scenario::Dm {
            pairs,
            messages,
            size,
            window,
        } => dm(&target, &mut report, pairs, messages, size, window).await?,
        Scenario::Idle {
            connections,
            sources,
        } => idle(&target, &mut report, connections, sources).await?,
        Scenario::LoginStorm {
            logins,
            receivers,
            rate,
            secs,
        } => login_storm(&target, &mut report, logins, receivers, rate, secs).await?,
    }
    report.print(&format!("{:?}", args.scenario), args.json);
    if let Some(mut child) = target.child {
        let _ = child.start_kill();
        let _ = child.wait().await;
    }
    Ok(())
}

/// Starts target/release/chat-server next to this binary, on a temporary database.
async fn spawn_server(owasp: bool, durability: &str) -> Result<Target, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let server: PathBuf = exe.with_file_name("chat-server");
    if !server.exists() {
        return Err(format!(
            "{} not found: run `cargo build --release -p chat-server` first",
            server.display()
        ));
    }
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let mut command = Command::new(&server);
    command
        .args(["--listen", "127.0.0.1:0", "--max-connections", "30000"])
        // Set-up can leave early clients unread for a while: no keepalive closes during a run.
        .args(["--keepalive", "3600"])
        .args(["--durability", durability])
        .args([
            "--rate",
            "1000000",
            "--burst",
            "1000000",
            "--login-timeout",
            "600",
        ])
        .arg("--db")
        .arg(dir.path().join("load.db"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    if !owasp {
        command.args(["--argon2-memory-kib", "8", "--argon2-iterations", "1"]);
    }
    let mut child = command
        .spawn()
        .map_err(|e| format!("{}: {e}", server.display()))?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let line = timeout(
        Duration::from_secs(30),
        BufReader::new(stdout).lines().next_line(),
    )
    .await
    .map_err(|_| "the server did not start in time")?
    .map_err(|e| e.to_string())?
    .ok_or("the server exited")?;
    let addr = line
        .split_whitespace()
        .nth(3)
        .and_then(|a| a.trim_end_matches(',').parse().ok())
        .ok_or_else(|| format!("no address in {line:?}"))?;
    Ok(Target {
        addr,
        pid: child.id(),
        child: Some(child),
        _dir: Some(dir),
    })
}

// ===== measurements =====

/// CPU seconds (user + system) of a process, from /proc (assumes USER_HZ = 100).
fn cpu_seconds(pid: Option<u32>) -> f64 {
    let path = pid.map_or("/proc/self/stat".to_string(), |p| format!("/proc/{p}/stat"));
    let Ok(stat) = std::fs::read_to_string(path) else {
        return f64::NAN;
    };
    // Fields after the parenthesised command name; utime and stime are the 14th and 15th.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(vec![], |(_, rest)| rest.split_whitespace().collect());
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// Resident memory of a process in bytes, from /proc.
fn rss_bytes(pid: Option<u32>) -> f64 {
    let path = pid.map_or("/proc/self/status".to_string(), |p| {
        format!("/proc/{p}/status")
    });
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kib| kib * 1024.0)
}

#[derive(Default)]
struct Report {
    rows: Vec<(String, f64, &'static str)>,
}

impl Report {
    fn add(&mut self, name: impl Into<String>, value: f64, unit: &'static str) {
        self.rows.push((name.into(), value, unit));
    }

    fn latency(&mut self, prefix: &str, h: &Histogram<u64>) {
        if h.is_empty() {
            return;
        }
        self.add(
            format!("{prefix}latency p50"),
            h.value_at_quantile(0.5) as f64 / 1000.0,
            "ms",
        );
        self.add(
            format!("{prefix}latency p99"),
            h.value_at_quantile(0.99) as f64 / 1000.0,
            "ms",
        );
        self.add(
            format!("{prefix}latency max"),
            h.max() as f64 / 1000.0,
            "ms",
        );
    }

    fn print(&self, scenario: &str, json: bool) {
        println!("{scenario}");
        for (name, value, unit) in &self.rows {
            println!("  {name:<38} {value:>14.3} {unit}");
        }
        if json {
            let rows: Vec<String> = self
                .rows
                .iter()
                .map(|(name, value, unit)| {
                    let value = if value.is_finite() {
                        value.to_string()
                    } else {
                        "null".into()
                    };
                    format!("{{\"metric\":\"{name}\",\"value\":{value},\"unit\":\"{unit}\"}}")
                })
                .collect();
            println!(
                "{{\"scenario\":{:?},\"results\":[{}]}}",
                scenario,
                rows.join(",")
            );
        }
    }
}

// ===== clients =====

/// Connects from `source` (a loopback address, or any), says hello, and registers `name` (or
/// logs in, if `login`).
async fn client(
    addr: SocketAddr,
    name: &str,
    source: Option<std::net::IpAddr>,
    login: bool,
) -> Result<Conn, String> {
    let socket = TcpSocket::new_v4().map_err(|e| e.to_string())?;
    if let Some(ip) = source {
        socket
            .bind(SocketAddr::new(ip, 0))
            .map_err(|e| format!("bind {ip}: {e}"))?;
    }
    let stream = socket
        .connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let _ = stream.set_nodelay(true);
    let mut conn = Framed::new(stream, ClientCodec::new());
    conn.send(ClientMessage::Hello(Hello::current("chat-load")))
        .await
        .map_err(|e| e.to_string())?;
    let (username, password, device) = (name.to_owned(), PASSWORD.to_owned(), "load".to_owned());
    let request = if login {
        Request::Login {
            username,
            password,
            device,
        }
    } else {
        Request::Register {
            username,
            password,
            device,
        }
    };
    conn.send(ClientMessage::Request {
        id: RequestId(0),
        request,
    })
    .await
    .map_err(|e| e.to_string())?;
    until_reply(&mut conn, RequestId(0)).await?;
    // The backlog (nothing, for a new user) ends with CaughtUp.
    loop {
        match next(&mut conn).await? {
            ServerMessage::CaughtUp => return Ok(conn),
            _ => continue,
        }
    }
}

async fn next(conn: &mut Conn) -> Result<ServerMessage, String> {
    match timeout(Duration::from_secs(60), conn.next()).await {
        Ok(Some(Ok(msg))) => Ok(msg),
        Ok(Some(Err(e))) => Err(e.to_string()),
        Ok(None) => Err("connection closed".into()),
        Err(_) => Err("no frame in 60 s".into()),
    }
}

async fn until_reply(conn: &mut Conn, id: RequestId) -> Result<Reply, String> {
    loop {
        match next(conn).await? {
            ServerMessage::Ok { id: got, reply } if got == id => return Ok(reply),
            ServerMessage::Err { id: got, error } if got == id => return Err(error.to_string()),
            _ => continue,
        }
    }
}

async fn request(conn: &mut Conn, id: u32, request: Request) -> Result<Reply, String> {
    conn.send(ClientMessage::Request {
        id: RequestId(id),
        request,
    })
    .await
    .map_err(|e| e.to_string())?;
    until_reply(conn, RequestId(id)).await
}

/// Registers `count` users named `{prefix}{i}` at most 64 at a time, joined to `room` if given.
async fn clients(
    addr: SocketAddr,
    prefix: &str,
    count: usize,
    room: Option<&str>,
    sources: u8,
) -> Result<Vec<Conn>, String> {
    connect_all(addr, prefix, count, room, sources, false).await
}

/// Connects `count` users named `{prefix}{i}` (registering them, or logging in if `login`).
async fn connect_all(
    addr: SocketAddr,
    prefix: &str,
    count: usize,
    room: Option<&str>,
    sources: u8,
    login: bool,
) -> Result<Vec<Conn>, String> {
    let limit = Arc::new(Semaphore::new(64));
    let mut tasks = Vec::new();
    for i in 0..count {
        let (limit, name, room) = (
            limit.clone(),
            format!("{prefix}{i}"),
            room.map(str::to_owned),
        );
        let source = (sources > 1)
            .then(|| std::net::IpAddr::from([127, 0, 0, 1 + (i % usize::from(sources)) as u8]));
        tasks.push(tokio::spawn(async move {
            let _permit = limit.acquire().await.map_err(|e| e.to_string())?;
            let mut conn = client(addr, &name, source, login).await?;
            if let Some(room) = room {
                request(&mut conn, 1, Request::Join { room }).await?;
            }
            Ok::<_, String>(conn)
        }));
    }
    let mut conns = Vec::with_capacity(count);
    for task in tasks {
        conns.push(task.await.map_err(|e| e.to_string())??);
    }
    Ok(conns)
}

/// Microseconds since `epoch`, written into the first 20 bytes of the text.
fn stamped_text(epoch: Instant, size: usize) -> String {
    let mut text = format!("{:020}", epoch.elapsed().as_micros());
    text.push_str(&"x".repeat(size.saturating_sub(20)));
    text
}

fn sent_micros(text: &str) -> Option<u64> {
    text.get(..20)?.parse().ok()
}

/// Reads until `expected` messages arrived (or `stop` is set), acknowledging as it goes.
async fn receive(
    mut conn: Conn,
    expected: u64,
    epoch: Instant,
    stop: Arc<AtomicU64>,
) -> (u64, Histogram<u64>) {
    let mut latencies = Histogram::<u64>::new(3).expect("a histogram");
    let mut received = 0;
    while received < expected && stop.load(Ordering::Relaxed) == 0 {
        let frame = match timeout(Duration::from_millis(200), conn.next()).await {
            Ok(Some(Ok(frame))) => frame,
            Ok(_) => break,
            Err(_) => continue,
        };
        match frame {
            ServerMessage::Message(m) => {
                received += 1;
                if let Some(sent) = sent_micros(&m.text) {
                    let now = epoch.elapsed().as_micros() as u64;
                    let _ = latencies.record(now.saturating_sub(sent).max(1));
                }
                if received % 256 == 0 || received == expected {
                    let _ = conn.send(ClientMessage::Ack { up_to: m.id }).await;
                }
            }
            ServerMessage::Ping { nonce } => {
                let _ = conn.send(ClientMessage::Pong { nonce }).await;
            }
            _ => {}
        }
    }
    (received, latencies)
}

/// What one sending connection measured.
struct Sent {
    /// Send → `Sent` reply (stored) latencies.
    acks: Histogram<u64>,
    /// Messages received meanwhile, and their delivery latencies.
    received: u64,
    latencies: Histogram<u64>,
}

/// Sends `count` messages to `target`: `window` unanswered at a time, or one every `period`;
/// meanwhile counts the messages it receives, until `expect` arrived.
#[allow(clippy::too_many_arguments)]
async fn send(
    mut conn: Conn,
    target: Target2,
    count: usize,
    size: usize,
    window: usize,
    period: Option<Duration>,
    epoch: Instant,
    expect: u64,
) -> Result<Sent, String> {
    let mut acks = Histogram::<u64>::new(3).expect("a histogram");
    let mut latencies = Histogram::<u64>::new(3).expect("a histogram");
    let mut received = 0u64;
    let mut sent_at = std::collections::HashMap::new();
    let (mut sent, mut done) = (0usize, 0usize);
    let start = Instant::now();
    while done < count || received < expect {
        let due = period.map_or(count, |p| {
            ((start.elapsed().as_nanos() / p.as_nanos().max(1)) as usize + 1).min(count)
        });
        let mut fed = false;
        while sent < due && sent - done < window {
            let request = Request::Send {
                target: target.to_target(),
                client_msg_id: ClientMsgId(sent as u64),
                text: stamped_text(epoch, size),
            };
            sent_at.insert(sent as u32, Instant::now());
            conn.feed(ClientMessage::Request {
                id: RequestId(sent as u32),
                request,
            })
            .await
            .map_err(|e| e.to_string())?;
            sent += 1;
            fed = true;
        }
        if fed {
            SinkExt::<ClientMessage>::flush(&mut conn)
                .await
                .map_err(|e| e.to_string())?;
        }
        let wait = match period {
            Some(p) if sent < count && sent - done < window => p.min(Duration::from_millis(5)),
            _ => Duration::from_secs(60),
        };
        match timeout(wait, conn.next()).await {
            Ok(Some(Ok(ServerMessage::Ok { id, .. }))) => {
                done += 1;
                if let Some(at) = sent_at.remove(&id.0) {
                    let _ = acks.record(at.elapsed().as_micros() as u64 + 1);
                }
            }
            Ok(Some(Ok(ServerMessage::Err { error, .. }))) => {
                return Err(format!("send failed: {error}"))
            }
            Ok(Some(Ok(ServerMessage::Ping { nonce }))) => {
                conn.send(ClientMessage::Pong { nonce })
                    .await
                    .map_err(|e| e.to_string())?;
            }
            Ok(Some(Ok(ServerMessage::Message(m)))) => {
                received += 1;
                if let Some(at) = sent_micros(&m.text) {
                    let now = epoch.elapsed().as_micros() as u64;
                    let _ = latencies.record(now.saturating_sub(at).max(1));
                }
                if received % 256 == 0 || received == expect {
                    conn.send(ClientMessage::Ack { up_to: m.id })
                        .await
                        .map_err(|e| e.to_string())?;
                }
            }
            Ok(Some(Ok(_))) => {}
            Err(_) if done >= count => {
                return Err(format!("received {received} of {expect} messages"))
            }
            Err(_) => {}
            Ok(Some(Err(e))) => return Err(e.to_string()),
            Ok(None) => return Err("sender connection closed".into()),
        }
    }
    Ok(Sent {
        acks,
        received,
        latencies,
    })
}

/// `Target` is not `Copy`; this is what each sender needs to build one.
#[derive(Clone)]
enum Target2 {
    Room(String),
    User(String),
}

impl Target2 {
    fn to_target(&self) -> chat_proto::Target {
        match self {
            Self::Room(r) => chat_proto::Target::Room(r.clone()),
            Self::User(u) => chat_proto::Target::User(u.clone()),
        }
    }
}

// ===== scenarios =====

#[allow(clippy::too_many_arguments)]
async fn fanout(
    target: &Target,
    report: &mut Report,
    receivers: usize,
    senders: usize,
    messages: usize,
    size: usize,
    window: usize,
    rate: Option<u64>,
    label: &str,
) -> Result<(), String> {
    // Names may not hold the label's spaces; each labelled phase gets its own room and users.
    let tag = label.trim();
    let room = format!("load{tag}");
    let readers = clients(target.addr, &format!("r{tag}"), receivers, Some(&room), 1).await?;
    let writers = clients(target.addr, &format!("s{tag}"), senders, Some(&room), 1).await?;
    let expected = (senders * messages) as u64;
    let period = rate.map(|r| Duration::from_secs_f64(senders as f64 / r.max(1) as f64));
    let epoch = Instant::now();
    let stop = Arc::new(AtomicU64::new(0));
    let (server_cpu, own_cpu) = (cpu_seconds(target.pid), cpu_seconds(None));
    let started = Instant::now();
    let receiving: Vec<_> = readers
        .into_iter()
        .map(|conn| tokio::spawn(receive(conn, expected, epoch, stop.clone())))
        .collect();
    let sending: Vec<_> = writers
        .into_iter()
        .map(|conn| {
            let others = ((senders - 1) * messages) as u64;
            tokio::spawn(send(
                conn,
                Target2::Room(room.clone()),
                messages,
                size,
                window,
                period,
                epoch,
                others,
            ))
        })
        .collect();
    let mut acks = Histogram::<u64>::new(3).expect("a histogram");
    for task in sending {
        acks.add(task.await.map_err(|e| e.to_string())??.acks)
            .map_err(|e| e.to_string())?;
    }
    // Every message is stored now; give receivers 10 s to get what is left, then count losses.
    let deadline = stop.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(10)).await;
        deadline.store(1, Ordering::Relaxed);
    });
    let mut delivered = 0;
    let mut latencies = Histogram::<u64>::new(3).expect("a histogram");
    for task in receiving {
        let (count, h) = task.await.map_err(|e| e.to_string())?;
        delivered += count;
        latencies.add(h).map_err(|e| e.to_string())?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let server_cpu = cpu_seconds(target.pid) - server_cpu;
    let own_cpu = cpu_seconds(None) - own_cpu;
    let total = expected * receivers as u64;
    report.add(format!("{label}messages sent"), expected as f64, "msgs");
    report.add(
        format!("{label}deliveries to receivers"),
        delivered as f64,
        "msgs",
    );
    report.add(
        format!("{label}lost"),
        total.saturating_sub(delivered) as f64,
        "msgs",
    );
    report.add(format!("{label}elapsed"), elapsed, "s");
    report.add(
        format!("{label}delivered rate"),
        delivered as f64 / elapsed,
        "msgs/s",
    );
    report.add(
        format!("{label}stored rate"),
        expected as f64 / elapsed,
        "msgs/s",
    );
    report.latency(&format!("{label}delivery "), &latencies);
    report.latency(&format!("{label}stored-ack "), &acks);
    // Every member gets each message: receivers and the other senders.
    let all_deliveries = (expected * (receivers + senders - 1) as u64) as f64;
    report.add(format!("{label}server CPU"), server_cpu, "s");
    report.add(
        format!("{label}server CPU per delivery"),
        server_cpu / all_deliveries * 1e9,
        "ns",
    );
    report.add(format!("{label}generator CPU"), own_cpu, "s");
    Ok(())
}

async fn dm(
    target: &Target,
    report: &mut Report,
    pairs: usize,
    messages: usize,
    size: usize,
    window: usize,
) -> Result<(), String> {
    let conns = clients(target.addr, "p", pairs * 2, None, 1).await?;
    let epoch = Instant::now();
    let (server_cpu, own_cpu) = (cpu_seconds(target.pid), cpu_seconds(None));
    let started = Instant::now();
    // Each user sends to its partner on the connection it receives the partner's messages on.
    let tasks: Vec<_> = conns
        .into_iter()
        .enumerate()
        .map(|(i, conn)| {
            let peer = Target2::User(format!("p{}", i ^ 1));
            tokio::spawn(send(
                conn,
                peer,
                messages,
                size,
                window,
                None,
                epoch,
                messages as u64,
            ))
        })
        .collect();
    let mut acks = Histogram::<u64>::new(3).expect("a histogram");
    let mut latencies = Histogram::<u64>::new(3).expect("a histogram");
    let mut delivered = 0;
    for task in tasks {
        let sent = task.await.map_err(|e| e.to_string())??;
        acks.add(sent.acks).map_err(|e| e.to_string())?;
        latencies.add(sent.latencies).map_err(|e| e.to_string())?;
        delivered += sent.received;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let sent = (pairs * 2 * messages) as f64;
    report.add("messages sent", sent, "msgs");
    report.add("delivered", delivered as f64, "msgs");
    report.add("lost", sent - delivered as f64, "msgs");
    report.add("elapsed", elapsed, "s");
    report.add("stored-before-acknowledged rate", sent / elapsed, "msgs/s");
    report.latency("stored-ack ", &acks);
    report.latency("delivery ", &latencies);
    report.add("server CPU", cpu_seconds(target.pid) - server_cpu, "s");
    report.add("generator CPU", cpu_seconds(None) - own_cpu, "s");
    Ok(())
}

async fn idle(
    target: &Target,
    report: &mut Report,
    connections: usize,
    sources: u8,
) -> Result<(), String> {
    // Accounts first, so what follows measures connections, not users.
    drop(clients(target.addr, "i", connections, None, sources).await?);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let before = rss_bytes(target.pid);
    let started = Instant::now();
    let conns = connect_all(target.addr, "i", connections, None, sources, true).await?;
    let setup = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = rss_bytes(target.pid);
    report.add("connections logged in", conns.len() as f64, "");
    report.add("setup time", setup, "s");
    report.add(
        "server RSS with the accounts, no connections",
        before / 1024.0 / 1024.0,
        "MiB",
    );
    report.add("server RSS after", after / 1024.0 / 1024.0, "MiB");
    let per = (after - before) / conns.len() as f64;
    report.add("server RSS per idle connection", per, "bytes");
    report.add(
        "projected RSS for 100k connections",
        (before + per * 100_000.0) / 1024.0 / 1024.0,
        "MiB",
    );
    drop(conns);
    Ok(())
}

async fn login_storm(
    target: &Target,
    report: &mut Report,
    logins: usize,
    receivers: usize,
    rate: u64,
    secs: u64,
) -> Result<(), String> {
    // Accounts for the storm, registered up front (argon2id at OWASP cost).
    let started = Instant::now();
    drop(clients(target.addr, "l", logins, None, 1).await?);
    report.add(
        "storm accounts registered in",
        started.elapsed().as_secs_f64(),
        "s",
    );
    let messages = (rate * secs) as usize;
    fanout(
        target,
        report,
        receivers,
        1,
        messages,
        32,
        1024,
        Some(rate),
        "quiet ",
    )
    .await?;

    let addr = target.addr;
    let storm = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let started = Instant::now();
        let tasks: Vec<_> = (0..logins)
            .map(|i| {
                tokio::spawn(async move {
                    let stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
                    let mut conn = Framed::new(stream, ClientCodec::new());
                    conn.send(ClientMessage::Hello(Hello::current("chat-load")))
                        .await
                        .map_err(|e| e.to_string())?;
                    let login = Request::Login {
                        username: format!("l{i}"),
                        password: PASSWORD.into(),
                        device: "storm".into(),
                    };
                    request(&mut conn, 0, login).await
                })
            })
            .collect();
        let mut ok = 0;
        for task in tasks {
            ok += usize::from(matches!(task.await, Ok(Ok(_))));
        }
        (ok, started.elapsed().as_secs_f64())
    });
    fanout(
        target,
        report,
        receivers,
        1,
        messages,
        32,
        1024,
        Some(rate),
        "storm ",
    )
    .await?;
    let (ok, took) = storm.await.map_err(|e| e.to_string())?;
    report.add("storm logins succeeded", ok as f64, "");
    report.add("storm logins/s", ok as f64 / took, "logins/s");
    Ok(())
}
