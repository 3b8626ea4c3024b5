//! [`Engine`]: the async driver around the [`Hub`], and [`Connection`], a client's link to it.
//!
//! One task owns the hub and does nothing but feed it inputs and carry out its outputs:
//! - frames to a connection go into that connection's [`Outbox`];
//! - persists go to the **writer** task, which commits everything waiting in one transaction
//!   (group commit) and reports each persist back in order; replies and deliveries wait for
//!   it, so nothing is acknowledged before it is stored;
//! - password hashing runs on blocking threads, at most `max_concurrent_hashes` at once;
//! - reads (backlog, history, tokens) run as tasks on the store's connection pool.
//!
//! A storage write failure is fatal: the engine closes every connection and stops with the
//! error (restarting reloads a consistent state from storage). A failed read closes only the
//! connection it was for.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chat_proto::{decode_frame, ClientMessage, EncodedFrame, ServerMessage};
use rustc_hash::{FxHashMap, FxHashSet};
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::outbox::{Outbox, Pushed};
use crate::password::{new_token, Passwords};
use crate::store::{Store, StoreError};
use crate::types::*;
use crate::{Completion, Config, Hub, Output, Ticket};

/// Why the engine could not start or had to stop.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The configuration is inconsistent.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// Storage failed.
    #[error("storage failed: {0}")]
    Store(#[from] StoreError),
    /// The engine's task ended abnormally.
    #[error("the engine task failed: {0}")]
    Task(String),
}

/// The engine has stopped; the connection is closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the chat engine has stopped")]
pub struct EngineClosed;

/// Connections' input (connects and client messages) in flight to the engine.
const INPUT_QUEUE: usize = 4096;
/// Persists waiting for the writer before the engine waits for it.
const WRITE_QUEUE: usize = 8192;
/// Most persists committed in one transaction.
const MAX_GROUP_COMMIT: usize = 4096;
/// Client messages handled per wake-up before outputs are carried out.
const INPUT_BATCH: usize = 256;

/// What connections send the engine, in one FIFO so that a connection is always known before
/// its first message.
enum Input {
    Connect(SessionId, Arc<Outbox>),
    Message(SessionId, ClientMessage),
}

/// Events for the engine task other than connections' input; never dropped.
enum Control {
    Disconnect(SessionId),
    Completion(Completion),
    /// A read for this session failed: close it.
    Failed(SessionId),
    /// The writer failed: stop.
    WriterFailed(StoreError),
    Shutdown(oneshot::Sender<()>),
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
    task: Mutex<Option<JoinHandle<Result<(), EngineError>>>>,
}

impl std::fmt::Debug for Control {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Control")
    }
}

impl Engine {
    /// Loads the state from `store` and starts the engine's tasks on the current tokio
    /// runtime.
    ///
    /// # Errors
    /// If `config` is inconsistent or the store cannot be read.
    pub async fn start(store: Store, config: Config) -> Result<Self, EngineError> {
        config.validate().map_err(EngineError::Config)?;
        let passwords = Arc::new(Passwords::new(config.password).map_err(EngineError::Config)?);
        let snapshot = store.snapshot(now_ms()).await?;
        let hub = Hub::new(config.clone(), snapshot, now_ms()).map_err(EngineError::Config)?;
        let (inputs, input_rx) = mpsc::channel(INPUT_QUEUE);
        let (control, control_rx) = mpsc::unbounded_channel();
        let (writes, write_rx) = mpsc::channel(WRITE_QUEUE);
        let writer = tokio::spawn(writer(store.clone(), write_rx, control.clone()));
        let driver = Driver {
            hashing: Arc::new(Semaphore::new(config.max_concurrent_hashes)),
            hub,
            store,
            passwords,
            outboxes: FxHashMap::default(),
            gone_early: FxHashSet::default(),
            writes,
            control: control.clone(),
        };
        let task = tokio::spawn(driver.run(input_rx, control_rx, writer));
        Ok(Self {
            inner: Arc::new(Inner {
                inputs,
                control,
                next_session: AtomicU64::new(0),
                config,
                task: Mutex::new(Some(task)),
            }),
        })
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// Opens a new connection (waiting if the engine is backed up). Its first message must be
    /// a `Hello`. If the engine has stopped, the connection is closed from the start.
    pub async fn connect(&self) -> Connection {
        let id = SessionId(self.inner.next_session.fetch_add(1, Ordering::Relaxed) + 1);
        let config = &self.inner.config;
        let outbox = Arc::new(Outbox::new(
            config.outbox_soft_bytes,
            config.outbox_hard_bytes,
        ));
        if self
            .inner
            .inputs
            .send(Input::Connect(id, outbox.clone()))
            .await
            .is_err()
        {
            outbox.close();
        }
        Connection {
            id,
            outbox,
            inputs: self.inner.inputs.clone(),
            control: self.inner.control.clone(),
            max_frame_len: config.max_frame_len,
            received: Vec::new(),
        }
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
            Some(task) => task.await.map_err(|e| EngineError::Task(e.to_string()))?,
            None => Ok(()),
        }
    }
}

/// One client's connection to the engine: send it client messages, receive encoded frames.
///
/// Dropping it disconnects the session.
#[derive(Debug)]
pub struct Connection {
    id: SessionId,
    outbox: Arc<Outbox>,
    inputs: mpsc::Sender<Input>,
    control: mpsc::UnboundedSender<Control>,
    max_frame_len: usize,
    /// Frames taken from the outbox and not yet returned by `recv`.
    received: Vec<EncodedFrame>,
}

impl Connection {
    /// The session's id (for logs).
    pub fn id(&self) -> SessionId {
        self.id
    }

    /// The frame limit in force (for the transport's codec).
    pub fn max_frame_len(&self) -> usize {
        self.max_frame_len
    }

    /// Hands a client message to the engine, waiting if the engine is backed up.
    ///
    /// # Errors
    /// [`EngineClosed`] if the engine has stopped.
    pub async fn send(&self, msg: ClientMessage) -> Result<(), EngineClosed> {
        self.inputs
            .send(Input::Message(self.id, msg))
            .await
            .map_err(|_| EngineClosed)
    }

    /// Waits for outbound frames and appends every queued one to `out`, in order. Returns
    /// false once the engine has closed this connection and every frame has been taken: the
    /// transport should then close.
    pub async fn recv_frames(&mut self, out: &mut Vec<EncodedFrame>) -> bool {
        if !self.received.is_empty() {
            out.append(&mut self.received);
            return true;
        }
        self.outbox.take_all(out).await
    }

    /// The next server message, decoded (for in-process clients); `None` once closed.
    pub async fn recv(&mut self) -> Option<ServerMessage> {
        loop {
            if !self.received.is_empty() {
                let frame = self.received.remove(0);
                match decode_frame::<ServerMessage>(frame.as_bytes(), self.max_frame_len) {
                    Ok(Some((msg, _))) => return Some(msg),
                    other => {
                        tracing::error!(?other, "the engine queued an undecodable frame");
                        continue;
                    }
                }
            }
            let mut frames = Vec::new();
            if !self.outbox.take_all(&mut frames).await {
                return None;
            }
            self.received = frames;
        }
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        let _ = self.control.send(Control::Disconnect(self.id));
    }
}

/// The current time in Unix milliseconds.
pub(crate) fn now_ms() -> UnixMillis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Why the engine task stops.
enum Stop {
    Failed(StoreError),
    Shutdown(oneshot::Sender<()>),
}

struct Driver {
    hub: Hub,
    store: Store,
    passwords: Arc<Passwords>,
    hashing: Arc<Semaphore>,
    outboxes: FxHashMap<SessionId, Arc<Outbox>>,
    /// Sessions dropped before the engine handled their `Connect`. Every connection sends one
    /// `Connect` and one `Disconnect`, so each entry is removed when its `Connect` arrives.
    gone_early: FxHashSet<SessionId>,
    writes: mpsc::Sender<(Ticket, Vec<Write>)>,
    control: mpsc::UnboundedSender<Control>,
}

impl Driver {
    async fn run(
        mut self,
        mut inputs: mpsc::Receiver<Input>,
        mut control: mpsc::UnboundedReceiver<Control>,
        writer: JoinHandle<()>,
    ) -> Result<(), EngineError> {
        let stop = 'run: loop {
            let deadline = self
                .hub
                .poll_timeout()
                .map(|at| Instant::now() + Duration::from_millis(at.saturating_sub(now_ms())));
            tokio::select! {
                biased;
                Some(event) = control.recv() => {
                    if let Some(stop) = self.on_control(event) {
                        break 'run stop;
                    }
                }
                Some(first) = inputs.recv() => {
                    self.on_input(first);
                    for _ in 1..INPUT_BATCH {
                        match inputs.try_recv() {
                            Ok(input) => self.on_input(input),
                            Err(_) => break,
                        }
                    }
                }
                () = sleep_until(deadline) => self.hub.handle_timeout(now_ms()),
            }
            self.carry_out().await;
        };
        let (failure, shutdown) = match stop {
            Stop::Failed(error) => (Some(error), None),
            Stop::Shutdown(done) => (None, Some(done)),
        };
        self.hub.shut_down(now_ms());
        self.carry_out().await;
        for (_, outbox) in self.outboxes.drain() {
            outbox.close();
        }
        // Let the writer commit everything queued, then stop.
        drop(self.writes);
        let _ = writer.await;
        self.store.close().await;
        if let Some(done) = shutdown {
            let _ = done.send(());
        }
        match failure {
            Some(error) => Err(error.into()),
            None => Ok(()),
        }
    }

    /// Handles a connection's input, in the order the connection sent it.
    fn on_input(&mut self, input: Input) {
        match input {
            Input::Connect(session, outbox) => {
                if self.gone_early.remove(&session) {
                    // Dropped before the engine saw it: it never was.
                    return outbox.close();
                }
                self.outboxes.insert(session, outbox);
                self.hub.handle_connect(session, now_ms());
            }
            Input::Message(session, msg) => self.hub.handle_message(session, msg, now_ms()),
        }
    }

    /// Handles a control event; returns why to stop, if it says to.
    fn on_control(&mut self, event: Control) -> Option<Stop> {
        match event {
            Control::Disconnect(session) => match self.outboxes.remove(&session) {
                Some(outbox) => {
                    outbox.close();
                    self.hub.handle_disconnect(session, now_ms());
                }
                // Its `Connect` is still queued behind other input: remember to discard it.
                None => {
                    self.gone_early.insert(session);
                }
            },
            Control::Completion(completion) => self.hub.handle_completion(completion, now_ms()),
            Control::Failed(session) => self.close(session),
            Control::WriterFailed(error) => {
                tracing::error!(%error, "storage write failed; stopping the engine");
                return Some(Stop::Failed(error));
            }
            Control::Shutdown(done) => return Some(Stop::Shutdown(done)),
        }
        None
    }

    /// Closes a session from the engine's side (the hub's decision, a slow consumer, a failed
    /// read). The outbox stays in the map, closed, until the connection's own `Disconnect`:
    /// a session missing from the map is one whose `Connect` has not arrived yet.
    fn close(&mut self, session: SessionId) {
        if let Some(outbox) = self.outboxes.get(&session) {
            outbox.close();
        }
        self.hub.handle_disconnect(session, now_ms());
    }

    /// Carries out every output of the hub.
    async fn carry_out(&mut self) {
        while let Some(output) = self.hub.poll_output() {
            match output {
                Output::Send {
                    session,
                    frame,
                    droppable,
                } => {
                    let Some(outbox) = self.outboxes.get(&session) else {
                        continue;
                    };
                    if outbox.push(frame, droppable) == Pushed::Overflow {
                        tracing::warn!(
                            session = session.0,
                            "slow consumer: outbound queue full, closing"
                        );
                        self.close(session);
                    }
                }
                Output::Close { session } => self.close(session),
                Output::Persist { ticket, writes } => {
                    if self.writes.send((ticket, writes)).await.is_err() {
                        tracing::error!("the writer has stopped");
                    }
                }
                other => {
                    let outbox = match &other {
                        Output::LoadBacklog { session, .. } => self.outboxes.get(session).cloned(),
                        _ => None,
                    };
                    self.spawn_io(other, outbox);
                }
            }
        }
    }

    /// Runs an output that needs storage or the password hasher as its own task. A backlog
    /// load first waits for the connection to take what it was sent (`outbox`).
    fn spawn_io(&self, output: Output, outbox: Option<Arc<Outbox>>) {
        let room = self.hub.config().backlog_bytes();
        let store = self.store.clone();
        let control = self.control.clone();
        let passwords = self.passwords.clone();
        let hashing = self.hashing.clone();
        tokio::spawn(async move {
            let (session, result) = match output {
                Output::VerifyPassword {
                    session,
                    user,
                    password,
                } => {
                    let stored = match user {
                        Some(user) => store.password_hash(user).await,
                        None => Ok(None),
                    };
                    let result = match stored {
                        Ok(stored) => blocking(&hashing, move || {
                            passwords.verify(stored.as_deref(), &password)
                        })
                        .await
                        .map(|ok| Completion::PasswordVerified {
                            session,
                            ok,
                            token: new_token(),
                        }),
                        Err(e) => Err(e.to_string()),
                    };
                    (session, result)
                }
                Output::HashPassword { session, password } => {
                    let hashed = blocking(&hashing, move || {
                        passwords.hash(&password).map_err(|e| e.to_string())
                    })
                    .await;
                    let result = hashed
                        .and_then(|r| r)
                        .map(|hash| Completion::PasswordHashed {
                            session,
                            hash,
                            token: new_token(),
                        });
                    (session, result)
                }
                Output::FindToken { session, hash } => {
                    let result = store.find_token(hash).await;
                    (
                        session,
                        result
                            .map(|record| Completion::TokenFound { session, record })
                            .map_err(|e| e.to_string()),
                    )
                }
                Output::LoadBacklog {
                    session,
                    user,
                    device,
                    after,
                    limit,
                } => {
                    if let Some(outbox) = outbox {
                        outbox.wait_for_room(room).await;
                    }
                    let result = store.backlog(user, device, after, limit).await;
                    (
                        session,
                        result
                            .map(|messages| Completion::Backlog { session, messages })
                            .map_err(|e| e.to_string()),
                    )
                }
                Output::LoadHistory {
                    session,
                    request,
                    conv,
                    before,
                    limit,
                } => {
                    let result = store.history(conv, before, limit).await;
                    let result = result.map(|messages| Completion::History {
                        session,
                        request,
                        limit,
                        messages,
                    });
                    (session, result.map_err(|e| e.to_string()))
                }
                Output::Send { .. } | Output::Close { .. } | Output::Persist { .. } => return,
            };
            let event = match result {
                Ok(completion) => Control::Completion(completion),
                Err(error) => {
                    tracing::error!(session = session.0, %error, "storage read failed; closing the connection");
                    Control::Failed(session)
                }
            };
            let _ = control.send(event);
        });
    }
}

/// Runs CPU-heavy `work` on a blocking thread, at most as many at once as `limit` allows.
async fn blocking<T: Send + 'static>(
    limit: &Semaphore,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, String> {
    let _permit = limit.acquire().await.map_err(|e| e.to_string())?;
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| e.to_string())
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// The group-commit writer: commits everything queued in one transaction, then reports each
/// persist in order.
async fn writer(
    store: Store,
    mut queue: mpsc::Receiver<(Ticket, Vec<Write>)>,
    control: mpsc::UnboundedSender<Control>,
) {
    let mut tickets = Vec::new();
    let mut batch = Vec::new();
    while let Some((ticket, writes)) = queue.recv().await {
        tickets.push(ticket);
        batch.push(writes);
        while tickets.len() < MAX_GROUP_COMMIT {
            match queue.try_recv() {
                Ok((ticket, writes)) => {
                    tickets.push(ticket);
                    batch.push(writes);
                }
                Err(_) => break,
            }
        }
        match store.apply(&batch).await {
            Ok(duplicates) => {
                for (ticket, duplicate) in tickets.drain(..).zip(duplicates) {
                    let _ = control.send(Control::Completion(Completion::Persisted {
                        ticket,
                        duplicate,
                    }));
                }
                batch.clear();
            }
            Err(error) => {
                let _ = control.send(Control::WriterFailed(error));
                return;
            }
        }
    }
}
