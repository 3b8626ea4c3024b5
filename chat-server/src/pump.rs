//! The shared pump: one task per connection, whatever the transport, moving frames between a
//! [`FrameReader`]/[`FrameWriter`] pair and a [`Connection`] to the engine.
//!
//! The transport-neutral policy lives here and only here. Each pass polls, in order: shutdown,
//! writing, frames the engine queued for this peer (handed to the writer, so many frames leave
//! together), messages decoded from the peer (handed to the engine), and the keepalive
//! deadline. Everything is polled, not awaited through per-pass futures: the transport and the
//! outbox keep the task's waker, and only the keepalive timer and the cancellation are futures,
//! registered once per connection. Hearing from the peer only moves `last_heard`, and the
//! timer, when it fires early, is set again to the deadline that moved. So a pass costs no
//! registrations, and an idle connection's task holds its state and nothing more. It takes
//! frames from the engine only while the writer holds less than
//! [`WRITE_HIGH_WATER`] bytes: beyond that they wait in the engine's bounded outbox, whose
//! overflow closes the connection (the slow-consumer policy).
//!
//! Bad input gets one typed error frame and a close; only this connection is affected. A
//! closing connection flushes its last frames for at most [`FLUSH_TIMEOUT`].

use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use chat_core::{Connection, EngineClosed, TrySendError};
use chat_proto::{
    encode, ClientMessage, CodecError, EncodedFrame, ErrorCode, ErrorReply, ServerMessage,
};
use tokio::time::{sleep_until, timeout, Instant, Sleep};
use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};

use crate::metrics::OpenConnection;
use crate::transport::{FrameReader, FrameWriter, Read, ReadError};

/// When a silent connection is pinged, and when an unanswered ping closes it (the engine's
/// configuration, announced to clients in the welcome). In milliseconds, up to 49 days: every
/// connection's task holds a copy.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Keepalive {
    interval_ms: u32,
    timeout_ms: u32,
}

impl Keepalive {
    pub(crate) fn of(config: &chat_core::Config) -> Self {
        let millis = |ms: u64| u32::try_from(ms).unwrap_or(u32::MAX);
        Self {
            interval_ms: millis(config.keepalive_interval_ms),
            timeout_ms: millis(config.keepalive_timeout_ms),
        }
    }

    fn interval(self) -> Duration {
        Duration::from_millis(self.interval_ms.into())
    }

    fn timeout(self) -> Duration {
        Duration::from_millis(self.timeout_ms.into())
    }
}

/// When the peer was last heard from, or when the ping it has not answered went.
#[derive(Clone, Copy)]
enum Heard {
    At(Instant),
    Pinged(Instant),
}

/// Bytes held by the writer before the task stops taking frames from the engine.
const WRITE_HIGH_WATER: usize = 64 * 1024;

/// How long a closing connection may take to flush its last frames.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// What one poll over the connection's sources found.
enum Event {
    Cancelled,
    Wrote(std::io::Result<()>),
    Frames { open: bool },
    Read(Result<Read, ReadError>),
    Keepalive,
}

/// Why a connection ended.
#[derive(Debug)]
enum End {
    /// The client closed it.
    ClientClosed,
    /// The engine closed it (logout timeout, slow consumer, shutdown, ...).
    EngineClosed,
    /// The client sent something undecodable.
    BadInput(CodecError),
    /// No answer to a keepalive ping.
    Timeout,
    /// Server shutdown cancelled the task.
    Cancelled,
    /// The connection failed.
    Io(std::io::Error),
}

/// The peer's side of a connection: its transport and what passes through it between polls.
struct Peer<R, W> {
    reader: R,
    writer: W,
    /// Messages decoded and not yet handed to the engine.
    inbound: Vec<ClientMessage>,
    /// Frames taken from the engine and not yet handed to the writer.
    frames: Vec<EncodedFrame>,
    /// Whether the cancellation future has been polled (registered) once.
    cancel_registered: bool,
}

impl<R: FrameReader, W: FrameWriter> Peer<R, W> {
    /// One poll of every source, in priority order.
    fn poll_event(
        &mut self,
        cx: &mut Context<'_>,
        conn: &mut Connection,
        cancel: &CancellationToken,
        mut cancelled: Pin<&mut WaitForCancellationFuture<'_>>,
        mut keepalive_timer: Pin<&mut Sleep>,
    ) -> Poll<Event> {
        // The token is shared by every connection and polling its future takes its lock: it is
        // polled once to register this task, then again only once it is cancelled.
        if !self.cancel_registered || cancel.is_cancelled() {
            self.cancel_registered = true;
            if cancelled.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Event::Cancelled);
            }
        }
        if self.writer.pending() > 0 {
            if let Poll::Ready(result) = self.writer.poll_write(cx) {
                return Poll::Ready(Event::Wrote(result));
            }
        }
        if self.writer.pending() < WRITE_HIGH_WATER {
            if let Poll::Ready(open) = conn.poll_recv_frames(cx, &mut self.frames) {
                return Poll::Ready(Event::Frames { open });
            }
        }
        if let Poll::Ready(read) = self.reader.poll_read(cx, &mut self.inbound) {
            return Poll::Ready(Event::Read(read));
        }
        if keepalive_timer.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Event::Keepalive);
        }
        Poll::Pending
    }
}

/// Serves one connection until it ends.
#[allow(clippy::manual_async_fn)] // deliberately not `async fn`: see the comment inside
pub(crate) fn serve(
    reader: impl FrameReader,
    writer: impl FrameWriter,
    mut conn: Connection,
    keepalive: Keepalive,
    cancel: CancellationToken,
    metrics: OpenConnection,
) -> impl Future<Output = ()> + Send {
    let mut peer = Peer {
        reader,
        writer,
        inbound: Vec::new(),
        frames: Vec::new(),
        cancel_registered: false,
    };
    // An `async` block, not an `async fn`: an `async fn` moves its arguments into locals,
    // and the task would hold both copies (rust-lang/rust#62958). For the same reason nothing
    // captured is moved inside it, and what lives across its waits is kept to what a waiting
    // connection needs: the task's size is memory per idle connection.
    async move {
        // In a block of their own, the timer and the cancellation are gone before the closing
        // flush's wait, and take no room beside it.
        let end = {
            let started = Instant::now();
            let mut heard = Heard::At(started);
            let mut nonce = 0u64;
            let keepalive_timer = sleep_until(started + keepalive.interval());
            let cancelled = cancel.cancelled();
            tokio::pin!(keepalive_timer, cancelled);
            loop {
                // One poll of every source, with nothing stored between polls but the two
                // futures registered once above: a waiting connection's task is its fields.
                let event = poll_fn(|cx| {
                    peer.poll_event(
                        cx,
                        &mut conn,
                        &cancel,
                        cancelled.as_mut(),
                        keepalive_timer.as_mut(),
                    )
                })
                .await;
                let wait = match event {
                    Event::Cancelled => break End::Cancelled,
                    Event::Wrote(Err(error)) => break End::Io(error),
                    Event::Wrote(Ok(())) => None,
                    Event::Frames { open } => {
                        let mut messages = 0;
                        // Taken, not drained: an idle connection keeps no vector of its last
                        // burst.
                        for frame in std::mem::take(&mut peer.frames) {
                            messages += u64::from(is_chat_message(&frame));
                            peer.writer.push(frame);
                        }
                        metrics.delivered(messages);
                        if !open {
                            break End::EngineClosed;
                        }
                        None
                    }
                    Event::Read(read) => {
                        heard = Heard::At(Instant::now());
                        let eof = match read {
                            Ok(read) => read == Read::Eof,
                            Err(ReadError::BadInput(error)) => break End::BadInput(error),
                            Err(ReadError::Io(error)) => break End::Io(error),
                        };
                        match hand_over(&conn, &mut peer.inbound) {
                            HandOver::Done if eof => break End::ClientClosed,
                            HandOver::Done => None,
                            HandOver::Wait(wait) => Some((wait, eof)),
                            HandOver::Closed => break End::EngineClosed,
                        }
                    }
                    Event::Keepalive => {
                        let now = Instant::now();
                        let deadline = match heard {
                            Heard::Pinged(sent) => sent + keepalive.timeout(),
                            Heard::At(at) => at + keepalive.interval(),
                        };
                        if now < deadline {
                            // Heard from since it was set.
                            keepalive_timer.as_mut().reset(deadline);
                            continue;
                        }
                        if let Heard::Pinged(_) = heard {
                            break End::Timeout;
                        }
                        nonce += 1;
                        let ping = ServerMessage::Ping { nonce };
                        push(&mut peer.writer, &ping, conn.max_frame_len());
                        heard = Heard::Pinged(now);
                        keepalive_timer.as_mut().reset(now + keepalive.timeout());
                        None
                    }
                };
                // The engine had no room: wait for it, with nothing of the event kept.
                if let Some((wait, eof)) = wait {
                    if wait.await.is_err() {
                        break End::EngineClosed;
                    }
                    if eof {
                        break End::ClientClosed;
                    }
                }
            }
        };

        let error = match &end {
            End::BadInput(CodecError::FrameTooLarge { len, max }) => Some(ErrorReply::new(
                ErrorCode::TooLarge,
                format!("frame of {len} bytes is over the limit of {max}"),
            )),
            End::BadInput(error) => Some(ErrorReply::new(ErrorCode::BadRequest, error.to_string())),
            End::Timeout => Some(ErrorReply::new(
                ErrorCode::Timeout,
                "no answer to keepalive",
            )),
            _ => None,
        };
        let (session, via) = (conn.id().0, metrics.transport().name());
        match &end {
            End::BadInput(error) => tracing::warn!(session, via, %error, "rejected input; closing"),
            End::Io(error) => tracing::info!(session, via, %error, "disconnected"),
            other => tracing::info!(session, via, reason = ?other, "disconnected"),
        }
        let max_frame_len = conn.max_frame_len();
        // Dropping the connection tells the engine this session is gone.
        drop(conn);
        if matches!(end, End::Cancelled | End::Io(_)) {
            return;
        }
        if let Some(error) = error {
            push(
                &mut peer.writer,
                &ServerMessage::Error(error),
                max_frame_len,
            );
        }
        // Boxed for the same reason as the wait for the engine: only a closing connection pays.
        let _ = Box::pin(timeout(FLUSH_TIMEOUT, peer.writer.close())).await;
    }
}

/// What became of the messages read from the peer.
enum HandOver<'a> {
    /// All went to the engine.
    Done,
    /// The engine's queue was full: this waits for room for the rest, in order.
    Wait(Pin<Box<dyn Future<Output = Result<(), EngineClosed>> + Send + 'a>>),
    /// The engine is gone.
    Closed,
}

/// Hands the messages read to the engine at once while it keeps up. The wait when it does not
/// is boxed, with the messages still to go: every connection's task would otherwise carry room
/// for that wait's state (the message, the iterator, the engine's send), idle or not.
fn hand_over<'a>(conn: &'a Connection, inbound: &mut Vec<ClientMessage>) -> HandOver<'a> {
    let mut messages = std::mem::take(inbound).into_iter();
    while let Some(msg) = messages.next() {
        match conn.try_send(msg) {
            Ok(()) => {}
            Err(TrySendError::Closed) => return HandOver::Closed,
            Err(TrySendError::Full(msg)) => {
                return HandOver::Wait(Box::pin(async move {
                    conn.send(msg).await?;
                    for msg in messages {
                        conn.send(msg).await?;
                    }
                    Ok(())
                }))
            }
        }
    }
    HandOver::Done
}

/// Whether a frame is a `ServerMessage::Message` (variant 3: the byte after the length).
fn is_chat_message(frame: &EncodedFrame) -> bool {
    frame.as_bytes().get(chat_proto::HEADER_LEN) == Some(&3)
}

fn push(writer: &mut impl FrameWriter, msg: &ServerMessage, max_frame_len: usize) {
    if let Ok(frame) = encode(msg, max_frame_len) {
        writer.push(frame);
    }
}
