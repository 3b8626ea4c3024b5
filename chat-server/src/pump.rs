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
use std::task::Poll;
use std::time::Duration;

use chat_core::{Connection, EngineClosed, TrySendError};
use chat_proto::{
    encode, ClientMessage, CodecError, EncodedFrame, ErrorCode, ErrorReply, ServerMessage,
};
use tokio::time::{sleep_until, timeout, Instant};
use tokio_util::sync::CancellationToken;

use crate::metrics::OpenConnection;
use crate::transport::{FrameReader, FrameWriter, Read, ReadError};

/// When a silent connection is pinged, and when an unanswered ping closes it (the engine's
/// configuration, announced to clients in the welcome).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Keepalive {
    pub(crate) interval: Duration,
    pub(crate) timeout: Duration,
}

impl Keepalive {
    pub(crate) fn of(config: &chat_core::Config) -> Self {
        Self {
            interval: Duration::from_millis(config.keepalive_interval_ms),
            timeout: Duration::from_millis(config.keepalive_timeout_ms),
        }
    }
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

/// Serves one connection until it ends.
#[allow(clippy::manual_async_fn)] // deliberately not `async fn`: see the comment inside
pub(crate) fn serve(
    mut reader: impl FrameReader,
    mut writer: impl FrameWriter,
    mut conn: Connection,
    keepalive: Keepalive,
    cancel: CancellationToken,
    metrics: OpenConnection,
) -> impl Future<Output = ()> + Send {
    // An `async` block, not an `async fn`: an `async fn` moves its arguments into locals,
    // and the task would hold both copies (rust-lang/rust#62958).
    async move {
        let session = conn.id().0;
        let max_frame_len = conn.max_frame_len();
        let mut inbound: Vec<ClientMessage> = Vec::new();
        let mut frames: Vec<EncodedFrame> = Vec::new();
        let mut last_heard = Instant::now();
        let mut ping_sent: Option<Instant> = None;
        let mut nonce = 0u64;
        let keepalive_timer = sleep_until(last_heard + keepalive.interval);
        let cancelled = cancel.cancelled();
        tokio::pin!(keepalive_timer, cancelled);
        // The token is shared by every connection and polling its future takes its lock: it is
        // polled once to register this task, then again only once it is cancelled.
        let mut cancel_registered = false;

        let end = 'serve: loop {
            // One poll of every source, in priority order, with nothing stored between polls but
            // the two futures registered once above: a waiting connection's task is its fields.
            let event = poll_fn(|cx| {
                if !cancel_registered || cancel.is_cancelled() {
                    cancel_registered = true;
                    if cancelled.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(Event::Cancelled);
                    }
                }
                if writer.pending() > 0 {
                    if let Poll::Ready(result) = writer.poll_write(cx) {
                        return Poll::Ready(Event::Wrote(result));
                    }
                }
                if writer.pending() < WRITE_HIGH_WATER {
                    if let Poll::Ready(open) = conn.poll_recv_frames(cx, &mut frames) {
                        return Poll::Ready(Event::Frames { open });
                    }
                }
                if let Poll::Ready(read) = reader.poll_read(cx, &mut inbound) {
                    return Poll::Ready(Event::Read(read));
                }
                if keepalive_timer.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Event::Keepalive);
                }
                Poll::Pending
            })
            .await;
            match event {
                Event::Cancelled => break End::Cancelled,
                Event::Wrote(result) => {
                    if let Err(error) = result {
                        break End::Io(error);
                    }
                }
                Event::Frames { open } => {
                    let mut messages = 0;
                    // Taken, not drained: an idle connection keeps no vector of its last burst.
                    for frame in std::mem::take(&mut frames) {
                        messages += u64::from(is_chat_message(&frame));
                        writer.push(frame);
                    }
                    metrics.delivered(messages);
                    if !open {
                        break End::EngineClosed;
                    }
                }
                Event::Read(read) => {
                    last_heard = Instant::now();
                    ping_sent = None;
                    let read = match read {
                        Ok(read) => read,
                        Err(ReadError::BadInput(error)) => break End::BadInput(error),
                        Err(ReadError::Io(error)) => break End::Io(error),
                    };
                    for msg in std::mem::take(&mut inbound) {
                        // Handed over at once while the engine keeps up. The wait when it does
                        // not is boxed: every connection's task would otherwise carry room for
                        // that future's state, idle or not.
                        let sent = match conn.try_send(msg) {
                            Ok(()) => Ok(()),
                            Err(TrySendError::Full(msg)) => Box::pin(conn.send(msg)).await,
                            Err(TrySendError::Closed) => Err(EngineClosed),
                        };
                        if sent.is_err() {
                            break 'serve End::EngineClosed;
                        }
                    }
                    if read == Read::Eof {
                        break End::ClientClosed;
                    }
                }
                Event::Keepalive => {
                    let now = Instant::now();
                    let deadline = match ping_sent {
                        Some(sent) => sent + keepalive.timeout,
                        None => last_heard + keepalive.interval,
                    };
                    if now < deadline {
                        // Heard from since it was set.
                        keepalive_timer.as_mut().reset(deadline);
                        continue;
                    }
                    if ping_sent.is_some() {
                        break End::Timeout;
                    }
                    nonce += 1;
                    push(&mut writer, &ServerMessage::Ping { nonce }, max_frame_len);
                    ping_sent = Some(now);
                    keepalive_timer.as_mut().reset(now + keepalive.timeout);
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
        let via = metrics.transport().name();
        match &end {
            End::BadInput(error) => tracing::warn!(session, via, %error, "rejected input; closing"),
            End::Io(error) => tracing::info!(session, via, %error, "disconnected"),
            other => tracing::info!(session, via, reason = ?other, "disconnected"),
        }
        // Dropping the connection tells the engine this session is gone.
        drop(conn);
        if matches!(end, End::Cancelled | End::Io(_)) {
            return;
        }
        if let Some(error) = error {
            push(&mut writer, &ServerMessage::Error(error), max_frame_len);
        }
        // Boxed for the same reason as the wait for the engine: only a closing connection pays.
        let _ = Box::pin(timeout(FLUSH_TIMEOUT, writer.close())).await;
    }
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
