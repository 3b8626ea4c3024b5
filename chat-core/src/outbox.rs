//! [`Outbox`]: a connection's bounded queue of outbound frames, and the slow-consumer policy.
//!
//! The engine pushes; the connection's writer takes everything queued at once (so a transport
//! can write many frames with one syscall). Past `soft` queued bytes, droppable frames (typing,
//! presence) are dropped and live messages are refused — the session then catches up from
//! storage, paced by its reader; past `hard` (replies and events only), the push fails and the
//! engine closes the connection. Memory per connection is bounded and a slow reader never
//! holds up anyone else. A session catching up waits for its reader to take what it was
//! sent ([`Outbox::wait_for_room`]); one that takes nothing for the stall timeout is closed.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use chat_proto::EncodedFrame;
use tokio::sync::Notify;

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

/// What became of a pushed frame.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Pushed {
    Queued,
    /// A droppable frame was dropped under pressure (or the outbox is closed).
    Dropped,
    /// A live message was refused: the reader is too far behind.
    Behind,
    /// The queue is full: the connection must be closed.
    Overflow,
}

#[derive(Debug)]
pub(crate) struct Outbox {
    queue: Mutex<Queue>,
    /// Signalled when frames are queued (or the outbox closes).
    ready: Notify,
    /// Signalled when the reader takes frames (or the outbox closes).
    taken: Notify,
    soft: usize,
    hard: usize,
}

#[derive(Debug, Default)]
struct Queue {
    frames: VecDeque<EncodedFrame>,
    bytes: usize,
    closed: bool,
}

impl Outbox {
    pub(crate) fn new(soft: usize, hard: usize) -> Self {
        Self {
            queue: Mutex::new(Queue::default()),
            ready: Notify::new(),
            taken: Notify::new(),
            soft,
            hard,
        }
    }

    pub(crate) fn push(&self, frame: EncodedFrame, kind: Kind) -> Pushed {
        let mut queue = self.lock();
        let bytes = queue.bytes + frame.len();
        if queue.closed || (kind == Kind::Droppable && bytes > self.soft) {
            return Pushed::Dropped;
        }
        if kind == Kind::Message && bytes > self.soft {
            return Pushed::Behind;
        }
        if bytes > self.hard {
            return Pushed::Overflow;
        }
        queue.bytes = bytes;
        queue.frames.push_back(frame);
        let was_empty = queue.frames.len() == 1;
        drop(queue);
        if was_empty {
            self.ready.notify_one();
        }
        Pushed::Queued
    }

    /// No more frames will be queued; the reader gets what is queued, then the end.
    pub(crate) fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_one();
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

    /// Waits for frames and moves all queued ones into `out`. Returns false once the outbox is
    /// closed and empty.
    pub(crate) async fn take_all(&self, out: &mut Vec<EncodedFrame>) -> bool {
        loop {
            {
                let mut queue = self.lock();
                if !queue.frames.is_empty() {
                    // Taking the queue (not draining it) leaves an idle outbox with no allocation.
                    out.extend(std::mem::take(&mut queue.frames));
                    queue.bytes = 0;
                    drop(queue);
                    self.taken.notify_one();
                    return true;
                }
                if queue.closed {
                    return false;
                }
            }
            self.ready.notified().await;
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

    fn frame() -> EncodedFrame {
        encode(&ServerMessage::CaughtUp, 1024).expect("fits")
    }

    #[tokio::test]
    async fn droppable_frames_go_first_then_overflow() {
        let outbox = Outbox::new(10, 20);
        let len = frame().len();
        let fit_soft = 10 / len;
        for _ in 0..fit_soft {
            assert_eq!(outbox.push(frame(), Kind::Droppable), Pushed::Queued);
        }
        assert_eq!(outbox.push(frame(), Kind::Droppable), Pushed::Dropped);
        assert_eq!(outbox.push(frame(), Kind::Message), Pushed::Behind);
        while outbox.push(frame(), Kind::Reliable) == Pushed::Queued {}
        assert_eq!(outbox.push(frame(), Kind::Reliable), Pushed::Overflow);
        let mut out = Vec::new();
        assert!(outbox.take_all(&mut out).await);
        assert_eq!(out.len() * len, 20 / len * len);
        outbox.close();
        assert!(!outbox.take_all(&mut out).await);
    }

    #[tokio::test(start_paused = true)]
    async fn waiting_for_room_gives_up_on_a_reader_that_takes_nothing() {
        let outbox = Outbox::new(1000, 2000);
        assert_eq!(outbox.push(frame(), Kind::Reliable), Pushed::Queued);
        assert!(!outbox.wait_for_room(0, Duration::from_secs(1)).await);
        let mut out = Vec::new();
        assert!(outbox.take_all(&mut out).await);
        assert!(outbox.wait_for_room(0, Duration::from_secs(1)).await);
    }
}
