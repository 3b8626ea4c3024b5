//! [`Bus`]: numbered publications and heartbeats between chat-server nodes over NATS, such
//! that a subscriber never *silently* misses a publication.
//!
//! NATS is only a notification path (PostgreSQL is the truth): a publication may be lost — a
//! full queue, NATS down, a slow subscriber — but then the subscriber is told, by a
//! [`BusEvent::Gap`] or [`BusEvent::Reconnected`], and recovers from the database. The bus
//! knows nothing of what its payloads mean.
//!
//! # How a loss is seen
//! Every envelope carries the publisher's node name, an epoch (random at each start) and a
//! number: batches count 1, 2, 3… per epoch; each heartbeat (every
//! [`BusConfig::heartbeat`]) and the goodbye at close carry the last number published, so a
//! lost *last* publication is revealed by the next heartbeat. A subscriber reports a gap when
//! a batch is not the last one plus one, a heartbeat or goodbye announces more than it
//! received, a node restarts (new epoch) without having said goodbye, a node goes silent (its
//! last publications may be lost), or the NATS client drops messages for a slow consumer. See
//! `bus/peers.rs` for the rules, `bus/envelope.rs` for the bytes, docs/CLUSTERING.md for both.
//!
//! # Tasks
//! Two tasks on the caller's tokio runtime: one publishes (the queue, heartbeats, the goodbye),
//! one receives (the subscription, NATS connection events, liveness). Both stop when the
//! [`Bus`] is dropped or [`Bus::close`] is called.

mod envelope;
mod peers;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_nats::{Client, ConnectOptions, Event, Subscriber};
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{interval, timeout, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use envelope::{check_node, Envelope, Kind};
use peers::Peers;

/// How long closing may take to send what is queued and the goodbye.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// Where the bus connects and how it paces itself.
#[derive(Clone, Debug)]
pub struct BusConfig {
    /// The NATS server, e.g. `nats://127.0.0.1:4222`.
    pub url: String,
    /// This node's name (1 to 255 bytes of UTF-8), unique in the cluster.
    pub node: String,
    /// The NATS subject every node publishes and subscribes on (default `chat.cluster`).
    pub subject: String,
    /// How often this node sends a heartbeat (default 2 s).
    pub heartbeat: Duration,
    /// Heartbeat intervals of silence after which a node is down (default 3).
    pub dead_after: u32,
    /// Publications queued for sending before [`Bus::publish`] drops them; also the number of
    /// events held for the receiver of [`BusEvent`]s (default 4,096).
    pub queue: usize,
}

impl BusConfig {
    /// The defaults for node `node` on the NATS server at `url`.
    pub fn new(url: impl Into<String>, node: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            node: node.into(),
            subject: "chat.cluster".to_owned(),
            heartbeat: Duration::from_secs(2),
            dead_after: 3,
            queue: 4096,
        }
    }
}

/// What the bus tells its subscriber, in the order it learned it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BusEvent {
    /// A publication of another node (never one of this node's own).
    Batch {
        /// The publisher.
        node: String,
        /// What it published.
        payload: Bytes,
    },
    /// Something `node` published may have been missed: recover from the database. Spurious
    /// gaps are possible (cheap); a missed publication without one is a bug.
    Gap {
        /// The publisher.
        node: String,
    },
    /// The connection to NATS was lost and is back: anything may have been missed meanwhile,
    /// from any node.
    Reconnected,
    /// `node`'s presence, as set by its [`Bus::set_presence`]: reported from its first
    /// heartbeat after [`BusEvent::NodeUp`], then whenever it changes.
    Presence {
        /// The node.
        node: String,
        /// Its presence payload.
        payload: Bytes,
    },
    /// `node` is heard from: for the first time, or again after [`BusEvent::NodeDown`]. Its
    /// presence follows with its next heartbeat.
    NodeUp {
        /// The node.
        node: String,
    },
    /// `node` said goodbye, or sent nothing for [`BusConfig::dead_after`] heartbeat intervals
    /// (not counted while this node is disconnected from NATS): its users are offline.
    NodeDown {
        /// The node.
        node: String,
    },
}

/// Why the bus could not start.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// The configuration cannot work.
    #[error("bus configuration: {0}")]
    Config(&'static str),
    /// NATS could not be reached (or refused the connection) at start.
    #[error("cannot connect to NATS at {url}: {source}")]
    Connect {
        /// The configured URL.
        url: String,
        /// What the NATS client said.
        source: async_nats::ConnectError,
    },
    /// NATS refused the subscription.
    #[error("cannot subscribe to {subject} on NATS at {url}: {source}")]
    Subscribe {
        /// The configured URL.
        url: String,
        /// The configured subject.
        subject: String,
        /// What the NATS client said.
        source: async_nats::SubscribeError,
    },
    /// NATS did not confirm the subscription.
    #[error("NATS at {url} did not confirm the subscription: {source}")]
    Flush {
        /// The configured URL.
        url: String,
        /// What the NATS client said.
        source: async_nats::client::FlushError,
    },
}

/// The bus's counters since it connected, as [`Bus::stats`] reads them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BusStats {
    /// Publications handed to NATS.
    pub published: u64,
    /// Publications dropped: the queue was full, NATS refused them, or the bus closed first.
    pub dropped: u64,
    /// Heartbeats handed to NATS.
    pub heartbeats_sent: u64,
    /// Publications of other nodes received and passed on as [`BusEvent::Batch`].
    pub received: u64,
    /// Heartbeats of other nodes received.
    pub heartbeats_received: u64,
    /// [`BusEvent::Gap`]s reported.
    pub gaps: u64,
    /// Reconnections to NATS ([`BusEvent::Reconnected`]).
    pub reconnects: u64,
    /// Slow-consumer reports of the NATS client (messages dropped before they were read).
    pub slow_consumers: u64,
    /// Messages on the subject that were not envelopes, skipped.
    pub malformed: u64,
    /// Over every batch received: microseconds from its sending to its reading, by the two
    /// nodes' wall clocks (a negative difference counts as 0).
    pub lag_micros_total: u64,
    /// The largest of those.
    pub lag_micros_max: u64,
}

/// The bus of one node: publish with [`Bus::publish`], read [`BusEvent`]s from the receiver
/// [`Bus::connect`] returns.
///
/// ```no_run
/// # async fn demo() -> Result<(), chat_server::bus::BusError> {
/// use chat_server::bus::{Bus, BusConfig, BusEvent};
/// let (bus, mut events) = Bus::connect(BusConfig::new("nats://127.0.0.1:4222", "node-1")).await?;
/// bus.publish(bytes::Bytes::from_static(b"batch"));
/// while let Some(event) = events.recv().await {
///     if let BusEvent::Gap { .. } | BusEvent::Reconnected = event {
///         // reload from the database
///     }
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Bus {
    shared: Arc<Shared>,
    /// Publications waiting for the publish task, each with its number.
    queue: mpsc::Sender<(u64, Bytes)>,
    /// Cancelled by [`Bus::close`] or drop: both tasks end.
    cancel: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

/// What [`Bus`] and its two tasks share.
#[derive(Debug)]
struct Shared {
    node: String,
    epoch: u64,
    /// The last number given to a publication. Locked while a publication is numbered and
    /// queued, so the queue is in number order, and while the publish task decides what a
    /// heartbeat announces.
    seq: Mutex<u64>,
    /// Carried on every heartbeat.
    presence: Mutex<Bytes>,
    counters: Counters,
}

#[derive(Debug, Default)]
struct Counters {
    published: AtomicU64,
    dropped: AtomicU64,
    heartbeats_sent: AtomicU64,
    received: AtomicU64,
    heartbeats_received: AtomicU64,
    gaps: AtomicU64,
    reconnects: AtomicU64,
    slow_consumers: AtomicU64,
    malformed: AtomicU64,
    lag_micros_total: AtomicU64,
    lag_micros_max: AtomicU64,
}

impl Bus {
    /// Connects to NATS, subscribes to the subject and starts the publish and receive tasks.
    /// When it returns the subscription is in place: every later publication of another node
    /// is received or reported missing.
    ///
    /// # Errors
    /// [`BusError::Config`] for an empty or over-long node name, a zero heartbeat,
    /// `dead_after` or queue; [`BusError::Connect`] when NATS cannot be reached now (later
    /// losses are retried forever and reported as [`BusEvent::Reconnected`]);
    /// [`BusError::Subscribe`] or [`BusError::Flush`] if the subscription is refused or not
    /// confirmed.
    pub async fn connect(config: BusConfig) -> Result<(Self, mpsc::Receiver<BusEvent>), BusError> {
        if !check_node(&config.node) {
            return Err(BusError::Config("the node name must be 1 to 255 bytes"));
        }
        if config.heartbeat.is_zero() || config.dead_after == 0 || config.queue == 0 {
            return Err(BusError::Config(
                "heartbeat, dead_after and queue must be above zero",
            ));
        }
        let dead_after = config.heartbeat.saturating_mul(config.dead_after);
        let (nats_tx, nats_rx) = mpsc::unbounded_channel();
        let slow = Arc::new(AtomicU64::new(0));
        let options = ConnectOptions::new()
            .name(&config.node)
            .no_echo()
            // A connection that stopped answering is noticed before its nodes would be down.
            .ping_interval(dead_after.max(Duration::from_secs(1)))
            .event_callback({
                let slow = slow.clone();
                move |event| {
                    let forward = match event {
                        Event::Connected => Some(NatsEvent::Connected),
                        Event::Disconnected => Some(NatsEvent::Disconnected),
                        // One wake-up per burst: the receive task takes the whole count.
                        Event::SlowConsumer(_) => {
                            (slow.fetch_add(1, Ordering::Relaxed) == 0).then_some(NatsEvent::Slow)
                        }
                        other => {
                            tracing::info!(event = %other, "NATS");
                            None
                        }
                    };
                    if let Some(forward) = forward {
                        let _ = nats_tx.send(forward);
                    }
                    async {}
                }
            });
        let client = options
            .connect(config.url.as_str())
            .await
            .map_err(|source| BusError::Connect {
                url: config.url.clone(),
                source,
            })?;
        let subscriber = client
            .subscribe(config.subject.clone())
            .await
            .map_err(|source| BusError::Subscribe {
                url: config.url.clone(),
                subject: config.subject.clone(),
                source,
            })?;
        // The server has the subscription once it answers a ping: from here on, nothing
        // published by another node is missed without a gap.
        client.flush().await.map_err(|error| BusError::Flush {
            url: config.url.clone(),
            source: error,
        })?;
        let shared = Arc::new(Shared {
            node: config.node.clone(),
            epoch: rand::random(),
            seq: Mutex::new(0),
            presence: Mutex::new(Bytes::new()),
            counters: Counters::default(),
        });
        let cancel = CancellationToken::new();
        let (queue_tx, queue_rx) = mpsc::channel(config.queue);
        let (events_tx, events_rx) = mpsc::channel(config.queue);
        let publisher = Publisher {
            shared: shared.clone(),
            client: client.clone(),
            subject: config.subject.clone(),
            queue: queue_rx,
            last_done: 0,
            cancel: cancel.clone(),
        };
        let receiver = Receiver {
            shared: shared.clone(),
            peers: Peers::new(config.node.clone(), dead_after),
            connects: client.statistics().connects.load(Ordering::Relaxed),
            client,
            subscriber,
            nats: nats_rx,
            slow,
            events: events_tx,
            cancel: cancel.clone(),
        };
        let tasks = vec![
            tokio::spawn(publisher.run(config.heartbeat)),
            tokio::spawn(receiver.run(config.heartbeat / 2)),
        ];
        tracing::info!(
            url = %config.url,
            node = %config.node,
            epoch = shared.epoch,
            subject = %config.subject,
            "bus connected"
        );
        let bus = Self {
            shared,
            queue: queue_tx,
            cancel,
            tasks,
        };
        Ok((bus, events_rx))
    }

    /// Queues `payload` for every other node, numbered next. Never waits: if the queue is
    /// full the publication is dropped (and counted), which subscribers see as a gap.
    pub fn publish(&self, payload: Bytes) {
        let mut seq = self
            .shared
            .seq
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *seq += 1;
        if self.queue.try_send((*seq, payload)).is_err() {
            self.shared.counters.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Sets the opaque payload carried by every heartbeat from now on (the engine's online
    /// users).
    pub fn set_presence(&self, payload: Bytes) {
        *self
            .shared
            .presence
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = payload;
    }

    /// This node's name.
    pub fn node(&self) -> &str {
        &self.shared.node
    }

    /// This process's epoch: random, chosen at connect.
    pub fn epoch(&self) -> u64 {
        self.shared.epoch
    }

    /// The counters now.
    pub fn stats(&self) -> BusStats {
        self.stats_reader().stats()
    }

    /// A reader of the counters that can be kept apart from the bus (by the metrics
    /// endpoint, [`ServerConfig::bus`](crate::ServerConfig::bus)); it reads the last counts
    /// once the bus is gone.
    pub fn stats_reader(&self) -> BusStatsReader {
        BusStatsReader {
            shared: self.shared.clone(),
        }
    }

    /// Sends what is queued and a goodbye (so other nodes see this one down at once), within
    /// 2 s, then stops both tasks and waits for them. Dropping the bus does the same without
    /// waiting.
    pub async fn close(mut self) {
        self.cancel.cancel();
        for task in self.tasks.drain(..) {
            let _ = task.await;
        }
    }
}

impl Drop for Bus {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// Reads a [`Bus`]'s counters ([`Bus::stats_reader`]).
#[derive(Clone, Debug)]
pub struct BusStatsReader {
    shared: Arc<Shared>,
}

impl BusStatsReader {
    /// The counters now.
    pub fn stats(&self) -> BusStats {
        let c = &self.shared.counters;
        let read = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        BusStats {
            published: read(&c.published),
            dropped: read(&c.dropped),
            heartbeats_sent: read(&c.heartbeats_sent),
            received: read(&c.received),
            heartbeats_received: read(&c.heartbeats_received),
            gaps: read(&c.gaps),
            reconnects: read(&c.reconnects),
            slow_consumers: read(&c.slow_consumers),
            malformed: read(&c.malformed),
            lag_micros_total: read(&c.lag_micros_total),
            lag_micros_max: read(&c.lag_micros_max),
        }
    }
}

/// What the receive task hears from the NATS client's event callback.
#[derive(Debug)]
enum NatsEvent {
    Connected,
    Disconnected,
    /// Messages were dropped for a slow consumer (how many: `Receiver::slow`).
    Slow,
}

/// The publish task: sends queued publications in number order, a heartbeat every interval,
/// and a goodbye at the end.
struct Publisher {
    shared: Arc<Shared>,
    client: Client,
    subject: String,
    queue: mpsc::Receiver<(u64, Bytes)>,
    /// The last number sent or given up on.
    last_done: u64,
    cancel: CancellationToken,
}

impl Publisher {
    async fn run(mut self, every: Duration) {
        let mut heartbeat = interval(every);
        heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let cancel = self.cancel.clone();
        loop {
            let (kind, envelope) = tokio::select! {
                biased;
                () = cancel.cancelled() => break,
                // Before the queue, so a busy queue does not starve the heartbeats.
                _ = heartbeat.tick() => (Kind::Heartbeat, self.heartbeat(Kind::Heartbeat)),
                item = self.queue.recv() => match item {
                    Some((seq, payload)) => (Kind::Batch, self.batch(seq, payload)),
                    None => break,
                },
            };
            tokio::select! {
                () = cancel.cancelled() => break,
                () = self.send(kind, envelope) => {}
            }
        }
        // Closing: what is queued, then the goodbye, within the time allowed.
        let drained = timeout(CLOSE_TIMEOUT, async {
            while let Ok((seq, payload)) = self.queue.try_recv() {
                let envelope = self.batch(seq, payload);
                self.send(Kind::Batch, envelope).await;
            }
            let bye = self.heartbeat(Kind::Bye);
            self.send(Kind::Bye, bye).await;
            let _ = self.client.flush().await;
        })
        .await;
        if drained.is_err() {
            tracing::warn!("bus: NATS did not take the last publications before close");
        }
        let left = self.queue.len() as u64;
        let counters = &self.shared.counters;
        counters.dropped.fetch_add(left, Ordering::Relaxed);
    }

    /// The envelope of publication `seq`.
    fn batch(&mut self, seq: u64, payload: Bytes) -> Bytes {
        self.last_done = seq;
        self.envelope(Kind::Batch, seq, payload)
    }

    /// The envelope of a heartbeat (or the goodbye) announcing the last number published:
    /// every number given out if nothing is queued (a dropped last publication is then
    /// announced), else the last one sent (those queued show any hole themselves).
    fn heartbeat(&self, kind: Kind) -> Bytes {
        let announced = {
            let seq = self
                .shared
                .seq
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if self.queue.is_empty() {
                *seq
            } else {
                self.last_done
            }
        };
        let presence = match kind {
            Kind::Heartbeat => self
                .shared
                .presence
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
            Kind::Batch | Kind::Bye => Bytes::new(),
        };
        self.envelope(kind, announced, presence)
    }

    fn envelope(&self, kind: Kind, seq: u64, payload: Bytes) -> Bytes {
        Envelope {
            kind,
            node: self.shared.node.clone(),
            epoch: self.shared.epoch,
            seq,
            sent_micros: unix_micros(),
            payload,
        }
        .encode()
    }

    /// Hands `envelope` to the NATS client (which waits while its own buffer is full) and
    /// counts it.
    async fn send(&self, kind: Kind, envelope: Bytes) {
        let counters = &self.shared.counters;
        let result = self.client.publish(self.subject.clone(), envelope).await;
        let counter = match (kind, result) {
            (Kind::Batch, Ok(())) => &counters.published,
            (Kind::Heartbeat | Kind::Bye, Ok(())) => &counters.heartbeats_sent,
            (Kind::Batch, Err(error)) => {
                tracing::warn!(%error, "bus: publication dropped");
                &counters.dropped
            }
            (Kind::Heartbeat | Kind::Bye, Err(error)) => {
                tracing::warn!(%error, "bus: heartbeat not sent");
                return;
            }
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// The receive task: envelopes from the subscription and events of the NATS client through
/// [`Peers`], out as [`BusEvent`]s; liveness checked every half heartbeat.
struct Receiver {
    shared: Arc<Shared>,
    peers: Peers,
    client: Client,
    /// Connections made so far, by the client's statistics: one more is a reconnection (also
    /// when its event was lost).
    connects: u64,
    subscriber: Subscriber,
    nats: mpsc::UnboundedReceiver<NatsEvent>,
    /// Slow-consumer reports not handled yet.
    slow: Arc<AtomicU64>,
    events: mpsc::Sender<BusEvent>,
    cancel: CancellationToken,
}

impl Receiver {
    async fn run(mut self, every: Duration) {
        let mut tick = interval(every);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut out = Vec::new();
        loop {
            tokio::select! {
                biased;
                () = self.cancel.cancelled() => break,
                event = self.nats.recv() => match event {
                    Some(NatsEvent::Connected) => self.check_reconnected(&mut out),
                    Some(NatsEvent::Disconnected) => {
                        tracing::warn!("bus: disconnected from NATS");
                        self.peers.disconnected();
                    }
                    Some(NatsEvent::Slow) => {
                        let dropped = self.slow.swap(0, Ordering::Relaxed);
                        tracing::warn!(dropped, "bus: slow consumer, NATS messages dropped");
                        self.count(|c| &c.slow_consumers, dropped);
                        self.peers.slow_consumer(&mut out);
                    }
                    None => {}
                },
                message = self.subscriber.next() => match message {
                    Some(message) => self.message(&message.payload, &mut out),
                    None => break,
                },
                _ = tick.tick() => {
                    self.check_reconnected(&mut out);
                    self.peers.tick(Instant::now(), &mut out);
                }
            }
            for event in out.drain(..) {
                match &event {
                    BusEvent::Batch { .. } => self.count(|c| &c.received, 1),
                    BusEvent::Gap { node } => {
                        tracing::debug!(%node, "bus: gap");
                        self.count(|c| &c.gaps, 1);
                    }
                    _ => {}
                }
                tokio::select! {
                    () = self.cancel.cancelled() => return,
                    sent = self.events.send(event) => if sent.is_err() {
                        // Nobody listens any more; keep reading so NATS sees no slow consumer.
                    },
                }
            }
        }
    }

    fn message(&mut self, bytes: &Bytes, out: &mut Vec<BusEvent>) {
        let envelope = match Envelope::decode(bytes) {
            Ok(envelope) => envelope,
            Err(error) => {
                tracing::warn!(%error, "bus: malformed envelope skipped");
                self.count(|c| &c.malformed, 1);
                return;
            }
        };
        match envelope.kind {
            Kind::Batch => {
                let lag = unix_micros().saturating_sub(envelope.sent_micros);
                self.count(|c| &c.lag_micros_total, lag);
                self.shared
                    .counters
                    .lag_micros_max
                    .fetch_max(lag, Ordering::Relaxed);
            }
            Kind::Heartbeat | Kind::Bye => self.count(|c| &c.heartbeats_received, 1),
        }
        self.peers.handle(envelope, Instant::now(), out);
    }

    /// Reports a reconnection if the client connected again since last looked.
    fn check_reconnected(&mut self, out: &mut Vec<BusEvent>) {
        let connects = self.client.statistics().connects.load(Ordering::Relaxed);
        if connects > self.connects {
            self.connects = connects;
            tracing::info!("bus: reconnected to NATS");
            self.count(|c| &c.reconnects, 1);
            self.peers.reconnected(Instant::now());
            out.push(BusEvent::Reconnected);
        }
    }

    fn count(&self, counter: impl Fn(&Counters) -> &AtomicU64, by: u64) {
        counter(&self.shared.counters).fetch_add(by, Ordering::Relaxed);
    }
}

/// Microseconds since the Unix epoch by the wall clock (0 before it).
fn unix_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}
