//! The engine task: owns the hub, feeds it connections' input, completions and timeouts, and
//! carries out its outputs. It makes no chat decision of its own.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use rustc_hash::{FxHashMap, FxHashSet};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::{io, Clock, Control, Counters, EngineError, Input};
use crate::outbox::{Kind, Outbox, Pushed};
use crate::password::Passwords;
use crate::storage::Storage;
use crate::{Hub, IoRequest, Output, SessionId, Ticket, Write};

/// Client messages handled per wake-up before outputs are carried out.
const INPUT_BATCH: usize = 256;

pub(super) struct Driver<S> {
    hub: Hub,
    clock: Clock,
    io: io::Io<S>,
    outboxes: FxHashMap<SessionId, Arc<Outbox>>,
    /// Sessions dropped before the engine handled their `Connect`. Every connection sends one
    /// `Connect` and one `Disconnect`, so each entry is removed when its `Connect` arrives.
    gone_early: FxHashSet<SessionId>,
    /// Sessions that could not take a live message: their live messages are dropped until
    /// the hub's catch-up load for them (it replays them from storage).
    behind: FxHashSet<SessionId>,
    writes: mpsc::Sender<(Ticket, Vec<Write>)>,
    /// Where the engine's counts are published for metrics.
    counters: Arc<Counters>,
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
            gone_early: FxHashSet::default(),
            behind: FxHashSet::default(),
            writes,
            counters,
        }
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
                Some(event) = control.recv() => {
                    if let Some(done) = self.on_control(event) {
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
        for (_, outbox) in self.outboxes.drain() {
            outbox.close();
        }
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
                    // Dropped before the engine saw it: it never was.
                    return outbox.close();
                }
                self.outboxes.insert(session, outbox);
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
                Some(outbox) => {
                    self.behind.remove(&session);
                    outbox.close();
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
            Control::Shutdown(done) => return Some(done),
        }
        None
    }

    /// Closes a session from the engine's side (the hub's decision, a slow consumer, a failed
    /// read). The outbox stays in the map, closed, until the connection's own `Disconnect`:
    /// a session missing from the map is one whose `Connect` has not arrived yet.
    fn close(&mut self, session: SessionId) {
        self.behind.remove(&session);
        if let Some(outbox) = self.outboxes.get(&session) {
            outbox.close();
        }
        self.hub.handle_disconnect(session, self.clock.now());
    }

    /// Queues a frame on `session`'s connection; one whose queue overflows is closed.
    fn push(
        &mut self,
        session: SessionId,
        frame: chat_proto::EncodedFrame,
        kind: Kind,
    ) -> Option<Pushed> {
        let pushed = self.outboxes.get(&session)?.push(frame, kind);
        match pushed {
            Pushed::Queued => {}
            Pushed::Dropped => {
                self.counters.outbox_drops.fetch_add(1, Relaxed);
            }
            Pushed::Behind => {
                self.counters.readers_behind.fetch_add(1, Relaxed);
            }
            Pushed::Overflow => {
                tracing::warn!(
                    session = session.0,
                    "slow consumer: outbound queue full, closing"
                );
                self.counters.slow_consumers.fetch_add(1, Relaxed);
                self.close(session);
            }
        }
        Some(pushed)
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
                    let kind = if droppable {
                        Kind::Droppable
                    } else {
                        Kind::Reliable
                    };
                    self.push(session, frame, kind);
                }
                Output::Deliver {
                    session,
                    frame,
                    message,
                } => {
                    if self.behind.contains(&session) {
                        continue;
                    }
                    if self.push(session, frame, Kind::Message) == Some(Pushed::Behind) {
                        self.behind.insert(session);
                        self.hub.handle_lagging(session, message);
                    }
                }
                Output::Close { session } => self.close(session),
                Output::Persist { ticket, writes } => {
                    if self.writes.send((ticket, writes)).await.is_err() {
                        tracing::error!("the writer has stopped");
                    }
                }
                Output::Io(request) => {
                    if let IoRequest::LoadBacklog { session, .. } = request {
                        // What the hub asks for from here on is current again.
                        self.behind.remove(&session);
                    }
                    let outbox = self.outboxes.get(&request.session()).cloned();
                    self.io.spawn(request, outbox);
                }
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
