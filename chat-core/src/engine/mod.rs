//! [`Engine`]: the async driver around the [`Hub`](crate::Hub), and [`Connection`], a client's
//! link to it.
//!
//! One task (`driver`) owns the hub and does nothing but feed it inputs and carry out its
//! outputs:
//! - frames to a connection go into that connection's [`Outbox`](crate::outbox);
//! - persists go to the **writer** task (`writer`), which commits everything waiting in one
//!   transaction (group commit) and reports each persist back in order; replies and deliveries
//!   wait for it, so nothing is acknowledged before it is stored;
//! - reads and password hashing (`io`) run as tasks: reads on the storage's pool, hashing on
//!   `max_concurrent_hashes` hashing threads that each reuse one argon2 memory block.
//!
//! The engine is generic over [`Storage`] only inside: `Engine` and `Connection` are the same
//! types whatever the backend.
//!
//! A storage write failure is not fatal: the writer retries with back-off while the hub refuses
//! new writes with `Unavailable` (reads and live sessions go on), and everything resumes by
//! itself when storage does. A failed read closes only the connection it was for, with
//! `Error { Internal }`.

mod connection;
mod driver;
mod io;
mod stats;
mod writer;

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use chat_proto::ClientMessage;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

pub use self::connection::{Connection, EngineClosed, TrySendError};
use self::driver::Driver;
use self::stats::Counters;
pub use self::stats::EngineStats;
use crate::outbox::{EngineSide, Outbox};
use crate::password::{PasswordParamsError, Passwords};
use crate::storage::Storage;
use crate::store::StoreError;
use crate::{Completion, Config, ConfigError, Hub, NodeMessage, SessionId, UnixMillis, UserId};

/// Why the engine could not start or had to stop.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The configuration is inconsistent.
    #[error("invalid configuration: {0}")]
    Config(#[from] ConfigError),
    /// argon2 refused the password parameters.
    #[error(transparent)]
    Password(#[from] PasswordParamsError),
    /// Storage failed.
    #[error("storage failed: {0}")]
    Store(#[from] StoreError),
    /// The engine's task ended abnormally.
    #[error("the engine task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// Connections' input (connects and client messages) in flight to the engine.
const INPUT_QUEUE: usize = 4096;
/// Persists waiting for the writer before the engine waits for it.
const WRITE_QUEUE: usize = 8192;

/// What connections send the engine, in one FIFO so that a connection is always known before
/// its first message.
enum Input {
    Connect(SessionId, Option<IpAddr>, EngineSide),
    Message(SessionId, ClientMessage),
}

/// Events for the engine task other than connections' input; never dropped.
enum Control {
    Disconnect(SessionId),
    Completion(Completion),
    /// Every persist of one commit, in order: one message, so the engine handles them in one
    /// pass and each recipient gets the commit's messages in one push (and one write).
    Committed(Vec<Completion>),
    /// A read for this session failed: close it.
    Failed(SessionId),
    /// This session took nothing from its queue while catching up: close it.
    Stalled(SessionId),
    /// Storage stopped or resumed taking writes.
    Storage {
        available: bool,
    },
    /// *(cluster)* A message from another node.
    Node(NodeMessage),
    /// *(cluster)* The users online on another node (none: it is down).
    Presence(String, Vec<UserId>),
    /// *(cluster)* Who is online here, for the other nodes.
    Online(oneshot::Sender<Vec<UserId>>),
    /// *(cluster)* Other nodes' batches may have been lost.
    Gap,
    Shutdown(oneshot::Sender<()>),
}

impl std::fmt::Debug for Control {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Control")
    }
}

/// A running chat engine. Cheap to clone; every clone drives the same engine.
///
/// # Example
/// ```
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use chat_core::{Config, Engine, Store};
/// use chat_proto::{ClientMessage, Hello, ServerMessage};
///
/// let engine = Engine::start(Store::open_in_memory().await?, Config::default()).await?;
/// let mut conn = engine.connect().await;
/// conn.send(ClientMessage::Hello(Hello::current("example"))).await?;
/// assert!(matches!(conn.recv().await, Some(ServerMessage::Welcome(_))));
/// engine.shut_down().await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Engine {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    inputs: mpsc::Sender<Input>,
    control: mpsc::UnboundedSender<Control>,
    next_session: AtomicU64,
    config: Config,
    counters: Arc<Counters>,
    task: Mutex<Option<JoinHandle<Result<(), EngineError>>>>,
}

impl Engine {
    /// Loads the state from `storage` and starts the engine's tasks on the current tokio
    /// runtime.
    ///
    /// # Errors
    /// If `config` is inconsistent or storage cannot be read.
    pub async fn start(storage: impl Storage, config: Config) -> Result<Self, EngineError> {
        Self::start_with(storage, config, None).await
    }

    /// *(cluster)* Starts an engine that shares its database with other nodes
    /// ([`Config::cluster`] is set): besides the engine, what it tells the other nodes (the
    /// batches it commits, its users' typing), which hand theirs to
    /// [`handle_node_message`](Self::handle_node_message).
    ///
    /// # Errors
    /// As [`start`](Self::start).
    pub async fn start_clustered(
        storage: impl Storage,
        config: Config,
    ) -> Result<(Self, mpsc::UnboundedReceiver<NodeMessage>), EngineError> {
        let config = Config {
            cluster: true,
            ..config
        };
        let (commits, committed) = mpsc::unbounded_channel();
        let engine = Self::start_with(storage, config, Some(commits)).await?;
        Ok((engine, committed))
    }

    async fn start_with(
        storage: impl Storage,
        config: Config,
        commits: Option<mpsc::UnboundedSender<NodeMessage>>,
    ) -> Result<Self, EngineError> {
        config.validate()?;
        let passwords = Passwords::start(
            config.password,
            config.max_concurrent_hashes,
            config.max_pending_hashes,
        )?;
        let snapshot = storage.snapshot(wall_clock()).await?;
        let clock = Clock::start();
        let hub = Hub::new(config.clone(), snapshot, clock.now())?;
        let (inputs, input_rx) = mpsc::channel(INPUT_QUEUE);
        let (control, control_rx) = mpsc::unbounded_channel();
        let (writes, write_rx) = mpsc::channel(WRITE_QUEUE);
        let counters = Arc::new(Counters::default());
        let writer = tokio::spawn(writer::run(
            storage.clone(),
            write_rx,
            control.clone(),
            counters.clone(),
            commits.clone(),
        ));
        let driver = Driver::new(
            hub,
            clock,
            storage,
            passwords,
            writes,
            control.clone(),
            counters.clone(),
        )
        .share_to(commits);
        let task = tokio::spawn(driver.run(input_rx, control_rx, writer));
        Ok(Self {
            inner: Arc::new(Inner {
                inputs,
                control,
                next_session: AtomicU64::new(0),
                config,
                counters,
                task: Mutex::new(Some(task)),
            }),
        })
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// What the engine has done so far (for metrics).
    pub fn stats(&self) -> EngineStats {
        self.inner.counters.snapshot()
    }

    /// Opens a new in-process connection (waiting if the engine is backed up). Its first
    /// message must be a `Hello`. If the engine has stopped, the connection is closed from the
    /// start. In-process connections share one login-throttling budget; front ends use
    /// [`connect_from`](Self::connect_from).
    pub async fn connect(&self) -> Connection {
        self.open(None).await
    }

    /// Opens a new connection for a client at `peer`: failed logins and password-hashing work
    /// are budgeted per peer address.
    pub async fn connect_from(&self, peer: IpAddr) -> Connection {
        self.open(Some(peer)).await
    }

    async fn open(&self, peer: Option<IpAddr>) -> Connection {
        let id = SessionId(self.inner.next_session.fetch_add(1, Ordering::Relaxed) + 1);
        let config = &self.inner.config;
        let outbox = Arc::new(Outbox::default());
        // Not handed over (the engine has stopped), the engine's side is dropped: the
        // connection starts closed.
        let engine_side = EngineSide::new(outbox.clone());
        let _ = self
            .inner
            .inputs
            .send(Input::Connect(id, peer, engine_side))
            .await;
        Connection::new(
            id,
            outbox,
            self.inner.inputs.clone(),
            self.inner.control.clone(),
            config.max_frame_len,
        )
    }

    /// *(cluster)* A message from another node: a batch it committed (applied in id order
    /// with this node's own), one of its users typing.
    pub fn handle_node_message(&self, message: NodeMessage) {
        let _ = self.inner.control.send(Control::Node(message));
    }

    /// *(cluster)* The users online on another node (none once it is down).
    pub fn handle_remote_presence(&self, node: String, users: Vec<UserId>) {
        let _ = self.inner.control.send(Control::Presence(node, users));
    }

    /// *(cluster)* The users with a session on this node (empty once the engine stopped).
    pub async fn online_users(&self) -> Vec<UserId> {
        let (reply, users) = oneshot::channel();
        if self.inner.control.send(Control::Online(reply)).is_err() {
            return Vec::new();
        }
        users.await.unwrap_or_default()
    }

    /// *(cluster)* Other nodes' batches may have been lost (a gap or a reconnection on the
    /// bus): what was committed above what this node applied is read from storage.
    pub fn handle_gap(&self) {
        let _ = self.inner.control.send(Control::Gap);
    }

    /// Shuts down gracefully: every connection gets `ShuttingDown` and is closed, pending
    /// writes are committed, and the engine's tasks end.
    ///
    /// # Errors
    /// If the engine had failed (e.g. storage), its error.
    pub async fn shut_down(&self) -> Result<(), EngineError> {
        let (done, wait) = oneshot::channel();
        if self.inner.control.send(Control::Shutdown(done)).is_ok() {
            let _ = wait.await;
        }
        self.join().await
    }

    /// Waits until the engine stops (after [`shut_down`](Self::shut_down), or a fatal
    /// storage error).
    ///
    /// # Errors
    /// If the engine failed.
    pub async fn join(&self) -> Result<(), EngineError> {
        let task = self
            .inner
            .task
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        match task {
            Some(task) => task.await?,
            None => Ok(()),
        }
    }
}

/// The engine's two clocks: a monotonic one (from its start) for the hub's deadlines, and the
/// wall clock for timestamps.
#[derive(Clone, Copy, Debug)]
struct Clock {
    start: tokio::time::Instant,
}

impl Clock {
    fn start() -> Self {
        Self {
            start: tokio::time::Instant::now(),
        }
    }

    fn now(self) -> crate::Now {
        let mono = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        crate::Now {
            mono: crate::Mono(mono),
            wall: wall_clock(),
        }
    }

    /// The instant of a hub deadline.
    fn instant(self, at: crate::Mono) -> tokio::time::Instant {
        self.start + std::time::Duration::from_millis(at.0)
    }
}

/// The current time in Unix milliseconds.
fn wall_clock() -> UnixMillis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
