//! The generator's users: connected in bulk over [`chat_client::Session`], then driven by the
//! sending and receiving loops that measure latencies.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chat_client::{Error, Session, Tcp, Transport, Ws};
use chat_proto::{ClientMessage, ClientMsgIds, Request, ServerMessage, Target};
use hdrhistogram::Histogram;
use tokio::sync::Semaphore;

use crate::stats::{histogram, Windows};

/// A logged-in load-test user.
pub(crate) type Conn = Session<Link>;

/// Which front end the generator's users connect through.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Via {
    /// The binary protocol over TCP.
    Tcp,
    /// WebSocket (one frame per binary message) to the web listener.
    Ws,
}

/// Where users connect: an address and the transport it speaks.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Endpoint {
    pub(crate) addr: SocketAddr,
    pub(crate) via: Via,
}

/// A connection over either transport.
#[derive(Debug)]
pub(crate) enum Link {
    Tcp(Tcp),
    Ws(Ws),
}

impl Transport for Link {
    async fn send(&mut self, msg: ClientMessage) -> Result<(), Error> {
        match self {
            Self::Tcp(t) => t.send(msg).await,
            Self::Ws(t) => t.send(msg).await,
        }
    }

    async fn feed(&mut self, msg: ClientMessage) -> Result<(), Error> {
        match self {
            Self::Tcp(t) => t.feed(msg).await,
            Self::Ws(t) => t.feed(msg).await,
        }
    }

    async fn flush(&mut self) -> Result<(), Error> {
        match self {
            Self::Tcp(t) => Transport::flush(t).await,
            Self::Ws(t) => Transport::flush(t).await,
        }
    }

    async fn recv(&mut self) -> Option<Result<ServerMessage, Error>> {
        match self {
            Self::Tcp(t) => t.recv().await,
            Self::Ws(t) => t.recv().await,
        }
    }
}

/// Opens a connection to `to` (from `source`, over TCP) and says hello.
async fn open(to: Endpoint, source: Option<IpAddr>) -> Result<Session<Link>, Error> {
    let link = match to.via {
        Via::Tcp => Link::Tcp(match source {
            Some(ip) => chat_client::tcp_from(to.addr, ip).await?,
            None => chat_client::tcp(to.addr).await?,
        }),
        Via::Ws => Link::Ws(chat_client::ws(to.addr).await?),
    };
    Session::handshake(link, "chat-load").await
}

/// Every load-test user's password.
pub(crate) const PASSWORD: &str = "load-test-password";
/// How long a connection may stay silent while a reply is due.
const WAIT: Duration = Duration::from_secs(60);

/// Connects from `source` (a loopback address, or any) and registers `name` (or logs in, if
/// `login`) on device `device`.
pub(crate) async fn client(
    addr: Endpoint,
    name: &str,
    source: Option<IpAddr>,
    login: bool,
    device: &str,
) -> Result<Conn, String> {
    let mut conn = open(addr, source)
        .await
        .map_err(|e| format!("connect: {e}"))?
        .with_wait(WAIT);
    // The server bounds password hashing per address: wait out its `RateLimited` answers.
    loop {
        let result = if login {
            conn.login(name, PASSWORD, device).await
        } else {
            conn.register(name, PASSWORD, device).await
        };
        match result {
            Ok(_) => return Ok(conn),
            Err(Error::Refused(chat_proto::ErrorReply {
                code: chat_proto::ErrorCode::RateLimited { retry_after_ms },
                ..
            })) if retry_after_ms <= 1000 => {
                tokio::time::sleep(Duration::from_millis(retry_after_ms.into())).await;
            }
            Err(e) => return Err(format!("{name}: {e}")),
        }
    }
}

/// Connects `count` users named `{prefix}{i}`, at most 64 at a time (registering them, or
/// logging in if `login`), spread over `sources` loopback addresses, joined to `room` if given.
pub(crate) async fn connect_all(
    addr: Endpoint,
    prefix: &str,
    count: usize,
    room: Option<&str>,
    sources: u8,
    login: bool,
) -> Result<Vec<Conn>, String> {
    in_bulk(count, sources, |i, source| {
        let (name, room) = (format!("{prefix}{i}"), room.map(str::to_owned));
        async move {
            let mut conn = client(addr, &name, source, login, "load").await?;
            if let Some(room) = room {
                conn.request(Request::Join { room })
                    .await
                    .map_err(|e| e.to_string())?;
            }
            Ok(conn)
        }
    })
    .await
}

/// Opens `count` connections that say hello and go no further (no account, no login), at most
/// 64 at a time, spread over `sources` loopback addresses.
pub(crate) async fn greet_all(
    addr: Endpoint,
    count: usize,
    sources: u8,
) -> Result<Vec<Conn>, String> {
    in_bulk(count, sources, |_, source| async move {
        open(addr, source)
            .await
            .map_err(|e| format!("connect: {e}"))
    })
    .await
}

/// Runs `connect(i, source)` for every `i` below `count`, at most 64 at a time, the sources
/// taken in turn from `sources` loopback addresses (any address if 1); the connections in
/// order.
async fn in_bulk<F, C>(count: usize, sources: u8, connect: F) -> Result<Vec<Conn>, String>
where
    F: Fn(usize, Option<IpAddr>) -> C,
    C: std::future::Future<Output = Result<Conn, String>> + Send + 'static,
{
    let limit = Arc::new(Semaphore::new(64));
    let mut tasks = Vec::new();
    for i in 0..count {
        let source =
            (sources > 1).then(|| IpAddr::from([127, 0, 0, 1 + (i % usize::from(sources)) as u8]));
        let (limit, connect) = (limit.clone(), connect(i, source));
        tasks.push(tokio::spawn(async move {
            let _permit = limit.acquire().await.map_err(|e| e.to_string())?;
            connect.await
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

/// When a message stamped by [`stamped_text`] was sent (µs after `epoch`), and how long ago.
fn latency(epoch: Instant, text: &str) -> Option<(u64, u64)> {
    let sent = text.get(..20).and_then(|t| t.parse::<u64>().ok())?;
    let now = epoch.elapsed().as_micros() as u64;
    Some((sent, now.saturating_sub(sent).max(1)))
}

/// Records the delivery latency of a message stamped by [`stamped_text`].
fn record_latency(latencies: &mut Histogram<u64>, epoch: Instant, text: &str) {
    if let Some((_, latency)) = latency(epoch, text) {
        let _ = latencies.record(latency);
    }
}

/// Reads until `expected` messages arrived (or `stop` is set), acknowledging as it goes;
/// keeps the latencies in windows of `width` of send time.
pub(crate) async fn receive(
    mut conn: Conn,
    expected: u64,
    epoch: Instant,
    stop: Arc<AtomicU64>,
    width: Option<Duration>,
) -> (u64, Windows) {
    let mut latencies = Windows::new(width);
    let mut received = 0;
    while received < expected && stop.load(Ordering::Relaxed) == 0 {
        let frame = match conn.next_event_within(Duration::from_millis(200)).await {
            Ok(Some(frame)) => frame,
            Ok(None) => break,
            Err(_) => continue,
        };
        if let ServerMessage::Message(m) = frame {
            received += 1;
            if let Some((sent, latency)) = latency(epoch, &m.text) {
                latencies.record(sent, latency);
            }
            if received % 256 == 0 || received == expected {
                let _ = conn.send(ClientMessage::Ack { up_to: m.id }).await;
            }
        }
    }
    (received, latencies)
}

/// How one connection sends.
#[derive(Clone, Debug)]
pub(crate) struct SendPlan {
    /// Where the messages go.
    pub(crate) target: Target,
    /// How many messages.
    pub(crate) count: usize,
    /// Text bytes per message.
    pub(crate) size: usize,
    /// Unanswered sends at most.
    pub(crate) window: usize,
    /// One message every `period`, or full speed if `None`.
    pub(crate) period: Option<Duration>,
    /// When the first message is due, from the start: connections sending at one rate are
    /// spread over the period ([`SendPlan::staggered`]), not all due at the same instants.
    pub(crate) phase: Duration,
    /// Messages this connection expects to receive meanwhile.
    pub(crate) expect: u64,
}

impl SendPlan {
    /// This plan for the `i`-th of `n` connections sending at the same rate: its messages are
    /// due `i/n` of a period after the first connection's. A fixed rate is then a steady
    /// stream: with every connection in phase, 200 users at 10k msgs/s sent bursts of 200
    /// every 20 ms, and the queueing within each burst was measured as latency.
    pub(crate) fn staggered(&self, i: usize, n: usize) -> Self {
        let phase = self
            .period
            .map_or(Duration::ZERO, |p| p.mul_f64(i as f64 / n.max(1) as f64));
        Self {
            phase,
            ..self.clone()
        }
    }

    /// When message `k` (from 0) is due, with a rate.
    fn due_at(&self, start: Instant, k: usize) -> Option<Instant> {
        let k = u32::try_from(k).unwrap_or(u32::MAX);
        self.period.map(|p| start + self.phase + p * k)
    }
}

/// What one sending connection measured.
pub(crate) struct Sent {
    /// Send → `Sent` reply (stored) latencies.
    pub(crate) acks: Histogram<u64>,
    /// Messages received meanwhile, and their delivery latencies.
    pub(crate) received: u64,
    pub(crate) latencies: Histogram<u64>,
}

/// Sends as `plan` says; meanwhile counts the messages it receives, until `plan.expect`
/// arrived.
pub(crate) async fn send(mut conn: Conn, plan: SendPlan, epoch: Instant) -> Result<Sent, String> {
    let (count, window, expect) = (plan.count, plan.window, plan.expect);
    let mut acks = histogram();
    let mut latencies = histogram();
    let mut received = 0u64;
    let mut sent_at = HashMap::new();
    let mut ids = ClientMsgIds::default();
    let (mut sent, mut done) = (0usize, 0usize);
    let start = Instant::now();
    let failed = |e: Error| e.to_string();
    while done < count || received < expect {
        let mut fed = false;
        while sent < count
            && sent - done < window
            && plan
                .due_at(start, sent)
                .is_none_or(|at| at <= Instant::now())
        {
            let request = Request::Send {
                target: plan.target.clone(),
                // As clients make them: the time, then (instead of random bits) a count.
                client_msg_id: ids.next_now(sent as u64),
                text: stamped_text(epoch, plan.size),
            };
            let id = conn.feed_request(request).await.map_err(failed)?;
            sent_at.insert(id, Instant::now());
            sent += 1;
            fed = true;
        }
        if fed {
            conn.flush().await.map_err(failed)?;
        }
        // Until the next message is due, if the window lets it go then.
        let wait = match plan.due_at(start, sent) {
            Some(at) if sent < count && sent - done < window => {
                at.saturating_duration_since(Instant::now())
            }
            _ => WAIT,
        };
        match conn.next_event_within(wait).await {
            Ok(Some(ServerMessage::Ok { id, .. })) => {
                done += 1;
                if let Some(at) = sent_at.remove(&id) {
                    let _ = acks.record(at.elapsed().as_micros() as u64 + 1);
                }
            }
            Ok(Some(ServerMessage::Err { error, .. })) => {
                return Err(format!("send failed: {error}"))
            }
            Ok(Some(ServerMessage::Message(m))) => {
                received += 1;
                record_latency(&mut latencies, epoch, &m.text);
                if received % 256 == 0 || received == expect {
                    conn.send(ClientMessage::Ack { up_to: m.id })
                        .await
                        .map_err(failed)?;
                }
            }
            Ok(Some(_)) => {}
            Err(Error::Timeout(_)) if done >= count => {
                return Err(format!("received {received} of {expect} messages"))
            }
            Err(Error::Timeout(_)) => {}
            Err(e) => return Err(e.to_string()),
            Ok(None) => {
                let why = conn
                    .close_reason()
                    .map_or(String::new(), |e| format!(": {e}"));
                return Err(format!("sender connection closed{why}"));
            }
        }
    }
    Ok(Sent {
        acks,
        received,
        latencies,
    })
}
