//! The shared pump: one task per connection, whatever the transport, moving frames between a
//! [`Transport`] and a [`Connection`] to the engine.
//!
//! The transport-neutral policy lives here and only here. Each pass polls, in order: writing,
//! frames the engine queued for this peer (handed to the writer, so many frames leave
//! together), and messages decoded from the peer (handed to the engine). Everything is polled,
//! not awaited through per-pass futures: the transport and the outbox keep the task's waker,
//! so a pass costs no registrations and a waiting connection's task is its fields and nothing
//! more — no timer either: the keepalive is the engine's (one sweep over every session, which
//! pings through the outbox and closes the silent), and so is shutdown (the engine closes
//! every outbox). It takes frames from the engine only while the writer holds less than
//! [`WRITE_HIGH_WATER`] bytes: beyond that they wait in the engine's bounded outbox, whose
//! overflow closes the connection (the slow-consumer policy); a closed outbox is noticed
//! even then.
//!
//! Bad input gets one typed error frame and a close; only this connection is affected. A
//! closing connection flushes its last frames for at most [`FLUSH_TIMEOUT`], or until the
//! server's cancellation (the end of the shutdown grace period).

use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use chat_core::{Connection, EngineClosed, TrySendError};
use chat_proto::{
    encode, ClientMessage, CodecError, EncodedFrame, ErrorCode, ErrorReply, ServerMessage,
};
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;

use crate::metrics::OpenConnection;
use crate::transport::{Read, ReadError, Transport};

/// Bytes held by the writer before the task stops taking frames from the engine.
const WRITE_HIGH_WATER: usize = 64 * 1024;

/// How long a closing connection may take to flush its last frames.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// What one poll over the connection's sources found.
enum Event {
    Wrote(std::io::Result<()>),
    Frames { open: bool },
    Read(Result<Read, ReadError>),
}

/// Why a connection ended.
#[derive(Debug)]
enum End {
    /// The client closed it.
    ClientClosed,
    /// The engine closed it (a login or keepalive timeout, a slow consumer, shutdown, ...).
    EngineClosed,
    /// The client sent something undecodable.
    BadInput(CodecError),
    /// The connection failed.
    Io(std::io::Error),
}

/// What a connection does last.
enum Last {
    /// Nothing: the connection failed.
    Nothing,
    /// Flush what is queued.
    Flush,
    /// Send the peer this error, then flush.
    Error(ErrorReply),
}

impl End {
    /// Logs the end, and says what is left to do (taking what it needs: nothing of the end
    /// stays in the task beside the closing flush).
    fn report(self, session: u64, via: &'static str) -> Last {
        match self {
            Self::BadInput(error) => {
                tracing::warn!(session, via, %error, "rejected input; closing");
                Last::Error(match error {
                    CodecError::FrameTooLarge { len, max } => ErrorReply::new(
                        ErrorCode::TooLarge,
                        format!("frame of {len} bytes is over the limit of {max}"),
                    ),
                    error => ErrorReply::new(ErrorCode::BadRequest, error.to_string()),
                })
            }
            Self::Io(error) => {
                tracing::info!(session, via, %error, "disconnected");
                Last::Nothing
            }
            other => {
                tracing::info!(session, via, reason = ?other, "disconnected");
                Last::Flush
            }
        }
    }
}

/// The peer's side of a connection: its transport and what passes through it between polls.
struct Peer<T> {
    io: T,
    /// Messages decoded and not yet handed to the engine.
    inbound: Vec<ClientMessage>,
    /// Frames taken from the engine and not yet handed to the writer.
    frames: Vec<EncodedFrame>,
}

impl<T: Transport> Peer<T> {
    /// One poll of every source, in priority order.
    fn poll_event(&mut self, cx: &mut Context<'_>, conn: &mut Connection) -> Poll<Event> {
        if self.io.pending() > 0 {
            if let Poll::Ready(result) = self.io.poll_write(cx) {
                return Poll::Ready(Event::Wrote(result));
            }
        }
        // Past the high-water mark only a closed outbox's last frames are taken: the end
        // of a session (a keepalive timeout, shutdown) reaches a slow peer too.
        if self.io.pending() < WRITE_HIGH_WATER || conn.poll_closed(cx).is_ready() {
            if let Poll::Ready(open) = conn.poll_recv_frames(cx, &mut self.frames) {
                return Poll::Ready(Event::Frames { open });
            }
        }
        if let Poll::Ready(read) = self.io.poll_read(cx, &mut self.inbound) {
            return Poll::Ready(Event::Read(read));
        }
        Poll::Pending
    }
}

/// Serves one connection until it ends.
#[allow(clippy::manual_async_fn)] // deliberately not `async fn`: see the comment inside
pub(crate) fn serve(
    io: impl Transport,
    mut conn: Connection,
    cancel: CancellationToken,
    metrics: OpenConnection,
) -> impl Future<Output = ()> + Send {
    let mut peer = Peer {
        io,
        inbound: Vec::new(),
        frames: Vec::new(),
    };
    // An `async` block, not an `async fn`: an `async fn` moves its arguments into locals,
    // and the task would hold both copies (rust-lang/rust#62958). For the same reason nothing
    // captured is moved inside it, and what lives across its waits is kept to what a waiting
    // connection needs: the task's size is memory per idle connection.
    async move {
        let end = loop {
            // One poll of every source, with nothing stored between polls: a waiting
            // connection's task is its fields.
            let event = poll_fn(|cx| peer.poll_event(cx, &mut conn)).await;
            let wait = match event {
                Event::Wrote(Err(error)) => break End::Io(error),
                Event::Wrote(Ok(())) => None,
                Event::Frames { open } => {
                    let mut messages = 0;
                    // Taken, not drained: an idle connection keeps no vector of its last
                    // burst.
                    for frame in std::mem::take(&mut peer.frames) {
                        messages += u64::from(is_chat_message(&frame));
                        peer.io.push(frame);
                    }
                    metrics.delivered(messages);
                    if !open {
                        break End::EngineClosed;
                    }
                    None
                }
                Event::Read(read) => {
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
        };

        let last = end.report(conn.id().0, metrics.transport().name());
        let max_frame_len = conn.max_frame_len();
        // Dropping the connection tells the engine this session is gone.
        drop(conn);
        match last {
            Last::Nothing => return,
            Last::Flush => {}
            Last::Error(error) => push(&mut peer.io, &ServerMessage::Error(error), max_frame_len),
        }
        // Boxed for the same reason as the wait for the engine: only a closing connection
        // pays for the flush's state.
        let _ = Box::pin(async {
            tokio::select! {
                () = cancel.cancelled() => {}
                _ = timeout(FLUSH_TIMEOUT, peer.io.close()) => {}
            }
        })
        .await;
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

fn push(io: &mut impl Transport, msg: &ServerMessage, max_frame_len: usize) {
    if let Ok(frame) = encode(msg, max_frame_len) {
        io.push(frame);
    }
}
