//! The engine task: owns the hub, feeds it connections' input, completions and timeouts, and
//! carries out its outputs. It makes no chat decision of its own.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use rustc_hash::{FxHashMap, FxHashSet};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::{io, Clock, Control, Counters, EngineError, Input};
use crate::outbox::{Bounds, EngineSide, Kind, Queued};
use crate::password::Passwords;
use crate::storage::Storage;
use crate::{Hub, IoRequest, MessageId, NodeMessage, Output, SessionId, Ticket, Write};

/// Client messages handled per wake-up before outputs are carried out.
const INPUT_BATCH: usize = 256;
/// Control events (completions above all; a commit's persists are one event) handled per
/// wake-up before outputs are carried out.
const CONTROL_BATCH: usize = 4096;

/// A connection's outbox, and where the frames the current pass over the hub's outputs has
/// for it are gathered: an index into [`Driver::touched`] (16 bytes per connection, where a
/// vector of its own would be 32).
struct Slot {
    /// Closed when the slot is dropped.
    outbox: EngineSide,
    /// The connection's entry in `touched`, or [`NOT_TOUCHED`].
    pending: u32,
}

/// A slot without frames in this pass.
const NOT_TOUCHED: u32 = u32::MAX;

/// Most emptied `pending` vectors kept for the next pass, and the largest kept (in frames):
/// at most 256 × 1024 × 48 bytes stay allocated between passes.
const SPARE_VECS: usize = 256;
const SPARE_CAPACITY: usize = 1024;

pub(super) struct Driver<S> {
    hub: Hub,
    clock: Clock,
    io: io::Io<S>,
    outboxes: FxHashMap<SessionId, Slot>,
    /// Every outbox's bounds.
    bounds: Bounds,
    /// Sessions with pending frames, in the order they got their first, and the frames (in
    /// vectors lent from `spare`: an idle connection holds none).
    touched: Vec<(SessionId, Vec<Queued>)>,
    /// Emptied `pending` vectors, lent to the connections of the next pass.
    spare: Vec<Vec<Queued>>,
    /// Sessions dropped before the engine handled their `Connect`. Every connection sends one
    /// `Connect` and one `Disconnect`, so each entry is removed when its `Connect` arrives.
    gone_early: FxHashSet<SessionId>,
    /// Sessions that could not take a live message: their live messages are dropped until
    /// the hub's catch-up load for them (it replays them from storage).
    behind: FxHashSet<SessionId>,
    writes: mpsc::Sender<(Ticket, Vec<Write>)>,
    /// Where the engine's counts are published for metrics.
    counters: Arc<Counters>,
    /// *(cluster)* What the hub tells the other nodes.
    shares: Option<mpsc::UnboundedSender<NodeMessage>>,
}

impl<S: Storage> Driver<S> {
    pub(super) fn new(
        hub: Hub,
        clock: Clock,
        storage: S,
        passwords: Passwords,
        writes: mpsc::Sender<(Ticket, Vec<Write>)>,
        control: mpsc::UnboundedSender<Control>,
        counters: Arc<Counters>,
    ) -> Self {
        let backlog_bytes = hub.config().backlog_bytes();
        let stall = std::time::Duration::from_millis(hub.config().stall_timeout_ms);
        let bounds = Bounds {
            soft: hub.config().outbox_soft_bytes,
            hard: hub.config().outbox_hard_bytes,
        };
        Self {
            io: io::Io {
                storage,
                passwords,
                control,
                backlog_bytes,
                stall,
            },
            hub,
            clock,
            outboxes: FxHashMap::default(),
            bounds,
            touched: Vec::new(),
            spare: Vec::new(),
            gone_early: FxHashSet::default(),
            behind: FxHashSet::default(),
            writes,
            counters,
            shares: None,
        }
    }

    /// *(cluster)* Sends what the hub tells the other nodes to `shares`.
    pub(super) fn share_to(mut self, shares: Option<mpsc::UnboundedSender<NodeMessage>>) -> Self {
        self.shares = shares;
        self
    }

    pub(super) async fn run(
        mut self,
        mut inputs: mpsc::Receiver<Input>,
        mut control: mpsc::UnboundedReceiver<Control>,
        writer: JoinHandle<()>,
    ) -> Result<(), EngineError> {
        let done = 'run: loop {
            let deadline = self.hub.poll_timeout().map(|at| self.clock.instant(at));
            tokio::select! {
                biased;
                Some(first) = control.recv() => {
                    let mut stop = self.on_control(first);
                    for _ in 1..CONTROL_BATCH {
                        if stop.is_some() {
                            break;
                        }
                        match control.try_recv() {
                            Ok(event) => stop = self.on_control(event),
                            Err(_) => break,
                        }
                    }
                    if let Some(done) = stop {
                        break 'run done;
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
                () = sleep_until(deadline) => self.hub.handle_timeout(self.clock.now()),
            }
            self.carry_out().await;
            self.counters
                .publish_hub(self.hub.stats(), self.hub.online_count());
        };
        self.hub.shut_down(self.clock.now());
        self.carry_out().await;
        // Every connection's outbox closes (so does every one still in the map if this task
        // ends any other way: `EngineSide`).
        self.outboxes.clear();
        // Let the writer commit everything queued, then stop.
        drop(self.writes);
        let _ = writer.await;
        self.io.storage.close().await;
        let _ = done.send(());
        Ok(())
    }

    /// Handles a connection's input, in the order the connection sent it.
    fn on_input(&mut self, input: Input) {
        match input {
            Input::Connect(session, peer, outbox) => {
                if self.gone_early.remove(&session) {
                    // Dropped before the engine saw it: it never was (dropping `outbox`
                    // closes it).
                    return;
                }
                let pending = NOT_TOUCHED;
                self.outboxes.insert(session, Slot { outbox, pending });
                self.hub.handle_connect(session, peer, self.clock.now());
            }
            Input::Message(session, msg) => {
                self.hub.handle_message(session, msg, self.clock.now());
            }
        }
    }

    /// Handles a control event; returns whom to tell when stopped, if it says to shut down.
    fn on_control(&mut self, event: Control) -> Option<oneshot::Sender<()>> {
        match event {
            Control::Disconnect(session) => match self.outboxes.remove(&session) {
                // Dropping the slot closes the outbox.
                Some(_slot) => {
                    self.behind.remove(&session);
                    self.hub.handle_disconnect(session, self.clock.now());
                }
                // Its `Connect` is still queued behind other input: remember to discard it.
                None => {
                    self.gone_early.insert(session);
                }
            },
            Control::Completion(completion) => {
                self.hub.handle_completion(completion, self.clock.now());
            }
            Control::Committed(completions) => {
                let now = self.clock.now();
                for completion in completions {
                    self.hub.handle_completion(completion, now);
                }
            }
            Control::Failed(session) => {
                self.hub.handle_io_failed(session, self.clock.now());
            }
            Control::Stalled(session) => {
                tracing::warn!(
                    session = session.0,
                    "slow consumer: took nothing while catching up; closing"
                );
                self.counters.slow_consumers.fetch_add(1, Relaxed);
                self.close(session);
            }
            Control::Storage { available } => {
                self.counters.storage_available.store(available, Relaxed);
                self.hub.handle_storage_available(available);
            }
            Control::Node(message) => self.hub.handle_node_message(message, self.clock.now()),
            Control::Presence(node, users) => {
                self.hub
                    .handle_remote_presence(&node, users, self.clock.now());
            }
            Control::Online(reply) => {
                let _ = reply.send(self.hub.online_users());
            }
            Control::Gap => self.hub.handle_gap(),
            Control::Shutdown(done) => return Some(done),
        }
        None
    }

    /// Closes a session from the engine's side (the hub's decision, a slow consumer, a failed
    /// read). The outbox stays in the map, closed, until the connection's own `Disconnect`:
    /// a session missing from the map is one whose `Connect` has not arrived yet.
    fn close(&mut self, session: SessionId) {
        self.behind.remove(&session);
        if let Some(slot) = self.outboxes.get(&session) {
            slot.outbox.close();
        }
        self.hub.handle_disconnect(session, self.clock.now());
    }

    /// Adds a frame to what `session`'s connection gets at the end of this pass.
    fn queue(
        &mut self,
        session: SessionId,
        frame: chat_proto::EncodedFrame,
        kind: Kind,
        message: MessageId,
    ) {
        let Some(slot) = self.outboxes.get_mut(&session) else {
            return;
        };
        let at = match slot.pending {
            NOT_TOUCHED => {
                // First frame of the pass (or since a flush): a vector `flush` gave back.
                let at = self.touched.len();
                let Ok(index) = u32::try_from(at) else {
                    return;
                };
                slot.pending = index;
                self.touched
                    .push((session, self.spare.pop().unwrap_or_default()));
                at
            }
            index => index as usize,
        };
        // A slot's index is set here and cleared by `flush`, which every entry gets before
        // `touched` is cleared: it always names this session's entry.
        if let Some((owner, frames)) = self.touched.get_mut(at) {
            debug_assert_eq!(*owner, session);
            frames.push(Queued {
                frame,
                kind,
                message,
            });
        }
    }

    /// Pushes `session`'s pending frames: a reader too far behind for a live message is
    /// switched to catching up from storage; one whose queue overflows is closed.
    fn flush(&mut self, session: SessionId) {
        let Some(slot) = self.outboxes.get_mut(&session) else {
            return;
        };
        let at = std::mem::replace(&mut slot.pending, NOT_TOUCHED);
        let Some((owner, frames)) = self.touched.get_mut(at as usize) else {
            return;
        };
        debug_assert_eq!(*owner, session);
        // The entry stays, emptied: later frames of this pass start a new one.
        let mut frames = std::mem::take(frames);
        let pushed = slot.outbox.push_all(&mut frames, self.bounds);
        if self.spare.len() < SPARE_VECS && frames.capacity() <= SPARE_CAPACITY {
            self.spare.push(frames);
        }
        self.counters
            .outbox_drops
            .fetch_add(pushed.dropped, Relaxed);
        if let Some(message) = pushed.behind {
            self.counters.readers_behind.fetch_add(1, Relaxed);
            self.behind.insert(session);
            self.hub.handle_lagging(session, message);
        }
        if pushed.overflow {
            tracing::warn!(
                session = session.0,
                "slow consumer: outbound queue full, closing"
            );
            self.counters.slow_consumers.fetch_add(1, Relaxed);
            self.close(session);
        }
    }

    /// Carries out every output of the hub; each connection gets its frames in one push at
    /// the end (before that only where order demands: a close, a read that sends frames
    /// itself).
    async fn carry_out(&mut self) {
        loop {
            while let Some(output) = self.hub.poll_output() {
                self.carry_out_one(output).await;
            }
            if self.touched.is_empty() {
                return;
            }
            // Pushing can make more work (a reader behind, a connection closed), carried out
            // in the next round; it adds no entries meanwhile (only `queue` does).
            for at in 0..self.touched.len() {
                let session = self.touched[at].0;
                self.flush(session);
            }
            self.touched.clear();
        }
    }

    async fn carry_out_one(&mut self, output: Output) {
        match output {
            Output::Send {
                session,
                frame,
                droppable,
            } => {
                let kind = if droppable {
                    Kind::Droppable
                } else {
                    Kind::Reliable
                };
                self.queue(session, frame, kind, MessageId(0));
            }
            Output::Deliver {
                session,
                frame,
                message,
            } => {
                if !self.behind.contains(&session) {
                    self.queue(session, frame, Kind::Message, message);
                }
            }
            Output::Close { session } => {
                self.flush(session);
                self.close(session);
            }
            Output::Persist { ticket, writes } => {
                if self.writes.send((ticket, writes)).await.is_err() {
                    tracing::error!("the writer has stopped");
                }
            }
            Output::Share(message) => {
                if let Some(shares) = &self.shares {
                    let _ = shares.send(message);
                }
            }
            Output::ReadDirectory => self.io.read_directory(),
            Output::ReadCommitted {
                after,
                up_to,
                limit,
            } => self.io.read_committed(after, up_to, limit),
            Output::Io(request) => {
                let session = request.session();
                // The read may send frames itself (a backlog): what came before goes first.
                self.flush(session);
                if let IoRequest::LoadBacklog { .. } = request {
                    // What the hub asks for from here on is current again.
                    self.behind.remove(&session);
                }
                let outbox = self
                    .outboxes
                    .get(&session)
                    .map(|slot| Arc::clone(&slot.outbox));
                self.io.spawn(request, outbox);
            }
        }
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
