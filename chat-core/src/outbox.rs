//! [`Outbox`]: a connection's bounded queue of outbound frames, and the slow-consumer policy.
//!
//! The engine pushes everything one pass over the hub's outputs has for a connection at once
//! (one lock, at most one wake-up: a committed group of N messages costs each recipient one
//! push, not N); the connection's writer takes everything queued at once (so a transport can
//! write many frames with one syscall). Past `soft` queued bytes, droppable frames (typing,
//! presence) are dropped and live messages are refused — the session then catches up from
//! storage, paced by its reader; past `hard` (replies and events only), the push fails and the
//! engine closes the connection. Memory per connection is bounded and a slow reader never
//! holds up anyone else. A session catching up waits for its reader to take what it was
//! sent ([`Outbox::wait_for_room`]); one that takes nothing for the stall timeout is closed.

use std::collections::VecDeque;
use std::ops::Deref;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use chat_proto::EncodedFrame;
use futures_util::task::AtomicWaker;
use tokio::sync::Notify;

use crate::MessageId;

/// How a frame may be treated under pressure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Typing, presence: dropped past the soft bound.
    Droppable,
    /// A live chat message: refused past the soft bound (it is in storage; the session
    /// catches up from there).
    Message,
    /// Replies and everything else: queued up to the hard bound.
    Reliable,
}

/// A frame waiting to be pushed.
#[derive(Debug)]
pub(crate) struct Queued {
    pub(crate) frame: EncodedFrame,
    pub(crate) kind: Kind,
    /// The message it delivers ([`Kind::Message`] only).
    pub(crate) message: MessageId,
}

/// What became of the frames of one [`Outbox::push_all`].
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Pushed {
    /// Droppable frames dropped under pressure (or frames pushed to a closed outbox).
    pub(crate) dropped: u64,
    /// The first live message refused because the reader is too far behind; every later
    /// live message of the push was refused too (they must not overtake it).
    pub(crate) behind: Option<MessageId>,
    /// The queue is full: the connection must be closed.
    pub(crate) overflow: bool,
}

/// How many bytes an outbox takes: past `soft`, droppable frames are dropped and live messages
/// refused; past `hard`, the connection is closed. The engine's, for every outbox (not a copy
/// in each: memory per connection).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Bounds {
    pub(crate) soft: usize,
    pub(crate) hard: usize,
}

#[derive(Debug, Default)]
pub(crate) struct Outbox {
    queue: Mutex<Queue>,
    /// The connection's writer, woken when frames are queued (or the outbox closes). One
    /// waker, not a list of waiters: the outbox has one reader, and a connection waiting on it
    /// holds no future for it.
    ready: AtomicWaker,
    /// Signalled when the reader takes frames (or the outbox closes).
    taken: Notify,
}

/// The engine's hold on a connection's outbox. Dropping it closes the outbox, however the
/// engine lets go of it (the connection's disconnect, a shutdown, a failure, a `Connect` never
/// handled), so a waiting connection always learns that nothing more will come.
#[derive(Debug)]
pub(crate) struct EngineSide(Arc<Outbox>);

impl EngineSide {
    pub(crate) fn new(outbox: Arc<Outbox>) -> Self {
        Self(outbox)
    }
}

impl Deref for EngineSide {
    type Target = Arc<Outbox>;

    fn deref(&self) -> &Arc<Outbox> {
        &self.0
    }
}

impl Drop for EngineSide {
    fn drop(&mut self) {
        self.0.close();
    }
}

#[derive(Debug, Default)]
struct Queue {
    frames: VecDeque<EncodedFrame>,
    bytes: usize,
    closed: bool,
}

impl Outbox {
    /// Queues `frames` (emptying the vector, which keeps its allocation), in order, under one
    /// lock, waking the reader once.
    pub(crate) fn push_all(&self, frames: &mut Vec<Queued>, bounds: Bounds) -> Pushed {
        let mut pushed = Pushed::default();
        let mut queue = self.lock();
        let was_empty = queue.frames.is_empty();
        for Queued {
            frame,
            kind,
            message,
        } in frames.drain(..)
        {
            let bytes = queue.bytes + frame.len();
            if queue.closed || (kind == Kind::Droppable && bytes > bounds.soft) {
                pushed.dropped += 1;
            } else if kind == Kind::Message && (pushed.behind.is_some() || bytes > bounds.soft) {
                pushed.behind.get_or_insert(message);
            } else if pushed.overflow || bytes > bounds.hard {
                pushed.overflow = true;
            } else {
                queue.bytes = bytes;
                queue.frames.push_back(frame);
            }
        }
        let wake = was_empty && !queue.frames.is_empty();
        drop(queue);
        if wake {
            self.ready.wake();
        }
        pushed
    }

    /// No more frames will be queued; the reader gets what is queued, then the end.
    pub(crate) fn close(&self) {
        self.lock().closed = true;
        self.ready.wake();
        self.taken.notify_one();
    }

    /// Waits until at most `bytes` are queued (or the outbox is closed). False if the reader
    /// took nothing at all for `stall` meanwhile.
    pub(crate) async fn wait_for_room(&self, bytes: usize, stall: Duration) -> bool {
        loop {
            let taken = self.taken.notified();
            {
                let queue = self.lock();
                if queue.bytes <= bytes || queue.closed {
                    return true;
                }
            }
            if tokio::time::timeout(stall, taken).await.is_err() {
                return false;
            }
        }
    }

    /// Moves all queued frames into `out` (`Ready(true)`), or `Ready(false)` once the outbox is
    /// closed and empty; `Pending` (with `cx` woken by the next push) while it is empty.
    pub(crate) fn poll_take_all(
        &self,
        cx: &mut Context<'_>,
        out: &mut impl Extend<EncodedFrame>,
    ) -> Poll<bool> {
        // Registered before looking, so a push in between wakes it.
        self.ready.register(cx.waker());
        let mut queue = self.lock();
        if !queue.frames.is_empty() {
            // Taking the queue (not draining it) leaves an idle outbox with no allocation,
            // and moves the frames into `out` outside the lock.
            let taken = std::mem::take(&mut queue.frames);
            queue.bytes = 0;
            drop(queue);
            self.taken.notify_one();
            out.extend(taken);
            return Poll::Ready(true);
        }
        if queue.closed {
            return Poll::Ready(false);
        }
        Poll::Pending
    }

    /// Takes the first queued frame (`Ready(Some)`), or `Ready(None)` once the outbox is closed
    /// and empty; `Pending` (with `cx` woken by the next push) while it is empty.
    pub(crate) fn poll_take_one(&self, cx: &mut Context<'_>) -> Poll<Option<EncodedFrame>> {
        self.ready.register(cx.waker());
        let mut queue = self.lock();
        if let Some(frame) = queue.frames.pop_front() {
            queue.bytes = queue.bytes.saturating_sub(frame.len());
            drop(queue);
            self.taken.notify_one();
            return Poll::Ready(Some(frame));
        }
        if queue.closed {
            return Poll::Ready(None);
        }
        Poll::Pending
    }

    /// `Ready` once the outbox is closed (frames may still be queued); `Pending`, with `cx`
    /// woken by the close (or the next push), until then.
    pub(crate) fn poll_closed(&self, cx: &mut Context<'_>) -> Poll<()> {
        self.ready.register(cx.waker());
        if self.lock().closed {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }

    /// `Ready` once frames are queued or the outbox is closed, taking nothing; `Pending`, with
    /// `cx` woken by the next push or the close, until then.
    pub(crate) fn poll_ready(&self, cx: &mut Context<'_>) -> Poll<()> {
        self.ready.register(cx.waker());
        let queue = self.lock();
        if queue.frames.is_empty() && !queue.closed {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        // A panic while holding this lock cannot leave the queue inconsistent: every critical
        // section is a few field updates.
        self.queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_proto::{encode, ServerMessage};
    use std::future::poll_fn;

    const BOUNDS: Bounds = Bounds {
        soft: 1000,
        hard: 2000,
    };

    impl Outbox {
        async fn take_all(&self, out: &mut Vec<EncodedFrame>) -> bool {
            poll_fn(|cx| self.poll_take_all(cx, out)).await
        }
    }

    fn frame() -> EncodedFrame {
        encode(&ServerMessage::CaughtUp, 1024).expect("fits")
    }

    fn queued(kind: Kind, message: u64) -> Queued {
        Queued {
            frame: frame(),
            kind,
            message: MessageId(message),
        }
    }

    #[tokio::test]
    async fn droppable_frames_go_first_then_overflow() {
        let (outbox, bounds) = (Outbox::default(), Bounds { soft: 10, hard: 20 });
        let len = frame().len();
        let fit_soft = 10 / len;
        let mut frames: Vec<Queued> = (0..fit_soft).map(|_| queued(Kind::Droppable, 0)).collect();
        assert_eq!(outbox.push_all(&mut frames, bounds), Pushed::default());
        assert!(frames.is_empty());
        frames.extend([
            queued(Kind::Droppable, 0),
            queued(Kind::Message, 7),
            queued(Kind::Reliable, 0),
            queued(Kind::Message, 8),
        ]);
        let pushed = outbox.push_all(&mut frames, bounds);
        assert_eq!(pushed.dropped, 1);
        assert_eq!(
            pushed.behind,
            Some(MessageId(7)),
            "the first refused message"
        );
        assert!(!pushed.overflow);
        frames.extend((0..20).map(|_| queued(Kind::Reliable, 0)));
        assert!(outbox.push_all(&mut frames, bounds).overflow);
        let mut out = Vec::new();
        assert!(outbox.take_all(&mut out).await);
        assert_eq!(out.len() * len, 20 / len * len);
        outbox.close();
        assert!(!outbox.take_all(&mut out).await);
        frames.push(queued(Kind::Reliable, 0));
        assert_eq!(outbox.push_all(&mut frames, bounds).dropped, 1, "closed");
    }

    #[tokio::test]
    async fn a_later_message_never_overtakes_a_refused_one() {
        let len = frame().len();
        let outbox = Outbox::default();
        let bounds = Bounds {
            soft: len,
            hard: 100 * len,
        };
        let mut frames = vec![
            queued(Kind::Message, 1),
            queued(Kind::Message, 2),
            queued(Kind::Reliable, 0),
        ];
        let pushed = outbox.push_all(&mut frames, bounds);
        assert_eq!(pushed.behind, Some(MessageId(2)));
        let mut out = Vec::new();
        assert!(outbox.take_all(&mut out).await);
        assert_eq!(out.len(), 2, "message 1 and the reply");
        // Room again, but within one push nothing passes a refused message.
        frames.extend([queued(Kind::Message, 3), queued(Kind::Message, 4)]);
        assert_eq!(
            outbox.push_all(&mut frames, bounds).behind,
            Some(MessageId(4))
        );
    }

    #[tokio::test]
    async fn dropping_the_engine_side_closes_the_outbox_and_wakes_its_reader() {
        let outbox = Arc::new(Outbox::default());
        let engine_side = EngineSide::new(outbox.clone());
        assert_eq!(
            engine_side.push_all(&mut vec![queued(Kind::Reliable, 0)], BOUNDS),
            Pushed::default()
        );
        let waker = futures_util::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        assert!(outbox.poll_closed(&mut cx).is_pending());
        let reader = tokio::spawn({
            let outbox = outbox.clone();
            async move { poll_fn(|cx| outbox.poll_closed(cx)).await }
        });
        tokio::task::yield_now().await;
        drop(engine_side);
        reader.await.expect("woken by the close");
        // What was queued before the close is still taken, then the end.
        let mut out = Vec::new();
        assert!(outbox.take_all(&mut out).await);
        assert_eq!(out.len(), 1);
        assert!(!outbox.take_all(&mut out).await);
    }

    #[tokio::test]
    async fn ready_is_told_without_taking_and_woken_by_a_push_or_the_close() {
        let outbox = Arc::new(Outbox::default());
        let engine_side = EngineSide::new(outbox.clone());
        let waker = futures_util::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        assert!(outbox.poll_ready(&mut cx).is_pending(), "nothing queued");
        let watcher = tokio::spawn({
            let outbox = outbox.clone();
            async move { poll_fn(|cx| outbox.poll_ready(cx)).await }
        });
        tokio::task::yield_now().await;
        engine_side.push_all(&mut vec![queued(Kind::Reliable, 0)], BOUNDS);
        watcher.await.expect("woken by the push");
        assert!(outbox.poll_ready(&mut cx).is_ready(), "still queued");
        let mut out = Vec::new();
        assert!(outbox.take_all(&mut out).await);
        assert_eq!(out.len(), 1, "readiness took nothing");
        assert!(outbox.poll_ready(&mut cx).is_pending(), "taken");
        let watcher = tokio::spawn({
            let outbox = outbox.clone();
            async move { poll_fn(|cx| outbox.poll_ready(cx)).await }
        });
        tokio::task::yield_now().await;
        drop(engine_side);
        watcher.await.expect("woken by the close");
        assert!(outbox.poll_ready(&mut cx).is_ready(), "closed");
    }

    #[tokio::test(start_paused = true)]
    async fn waiting_for_room_gives_up_on_a_reader_that_takes_nothing() {
        let outbox = Outbox::default();
        assert_eq!(
            outbox.push_all(&mut vec![queued(Kind::Reliable, 0)], BOUNDS),
            Pushed::default()
        );
        assert!(!outbox.wait_for_room(0, Duration::from_secs(1)).await);
        let mut out = Vec::new();
        assert!(outbox.take_all(&mut out).await);
        assert!(outbox.wait_for_room(0, Duration::from_secs(1)).await);
    }
}
