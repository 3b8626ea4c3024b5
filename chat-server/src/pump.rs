//! The shared pump: one task per connection, whatever the transport, moving frames between a
//! [`Transport`] and a [`Connection`] to the engine.
//!
//! The transport-neutral policy lives here and only here. Each pass polls, in order: writing,
//! frames the engine queued for this peer (handed to the writer, so many frames leave
//! together), and messages decoded from the peer (handed to the engine). Everything is polled,
//! not awaited through per-pass futures: the transport and the outbox keep the task's waker,
//! so a pass costs no registrations and a waiting connection's task is its fields and nothing
//! more — no keepalive timer: the keepalive is the engine's (one sweep over every session,
//! which pings through the outbox and closes the silent), and so is shutdown (the engine
//! closes every outbox). It takes frames from the engine only while the writer holds less than
//! [`WRITE_HIGH_WATER`] bytes: beyond that they wait in the engine's bounded outbox, whose
//! overflow closes the connection (the slow-consumer policy); a closed outbox is noticed
//! even then.
//!
//! Bad input gets one typed error frame and a close; only this connection is affected. A
//! closing connection flushes its last frames for at most [`FLUSH_TIMEOUT`], or until the
//! server's cancellation (the end of the shutdown grace period).
//!
//! A connection that may be parked ([`serve_parkable`]) also has a timer while it is served: a
//! whole period without traffic (keepalive pings and pongs do not count), with nothing
//! buffered, ends the pump with the connection handed back ([`Served::Idle`]) for the
//! [`park`](crate::park) lot to keep without a task.

use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use chat_core::{Connection, EngineClosed, TrySendError};
use chat_proto::{
    encode, ClientMessage, CodecError, EncodedFrame, ErrorCode, ErrorReply, ServerMessage,
};
use futures_util::FutureExt;
use tokio::time::{sleep, timeout, Instant, Sleep};
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
    /// Frames went from the engine to the writer (`messages` of them chat messages; `other`
    /// if any was more than a keepalive).
    Frames {
        open: bool,
        messages: u64,
        other: bool,
    },
    /// What the peer sent, decoded.
    Read(Result<Read, ReadError>, Vec<ClientMessage>),
    /// A whole idle period passed without any of the above.
    Idle,
}

/// What the pump does after an event.
enum Step<'a> {
    Go,
    End(End),
    /// The engine had no room for what was read: wait for it (the wait's output says whether
    /// the peer had also closed its side).
    Wait(Pin<Box<dyn Future<Output = Result<bool, EngineClosed>> + Send + 'a>>),
}

/// What became of a connection when its pump returned.
pub(crate) enum Served<T> {
    /// It ended, and was closed.
    Ended,
    /// It was idle a whole period with nothing buffered either way: the caller parks it (or
    /// serves it again).
    Idle(T, Connection, OpenConnection),
}

pin_project_lite::pin_project! {
    /// A served connection's idle timer: it fires every period, and a period in which the
    /// pump had no event but keepalive traffic is an idle one. Boxed (the timer is over 100 bytes): only connections
    /// being served pay for it, and the pump's cost per event is one flag.
    struct Quiet {
        #[pin]
        sleep: Sleep,
        period: Duration,
        busy: bool,
        // Polled since it was last reset: the timer holds the task's waker until it fires.
        armed: bool,
    }
}

impl Quiet {
    fn new(period: Duration) -> Pin<Box<Self>> {
        Box::pin(Self {
            sleep: sleep(period),
            period,
            busy: false,
            armed: false,
        })
    }

    /// `Ready` at the end of a period without events; the timer is re-armed either way.
    fn poll_idle(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut this = self.project();
        // An armed timer that has not fired will wake the task: looking costs one load, not
        // a poll (which re-registers the waker) on every pass of a busy connection.
        if *this.armed && !this.sleep.is_elapsed() {
            return Poll::Pending;
        }
        loop {
            // A poll refused for the task's spent budget registers nothing (and has the task
            // polled again): the timer is armed only by a poll that ran.
            let budget = tokio::task::coop::has_budget_remaining();
            if this.sleep.as_mut().poll(cx).is_pending() {
                *this.armed = budget;
                return Poll::Pending;
            }
            this.sleep.as_mut().reset(Instant::now() + *this.period);
            *this.armed = false;
            if !std::mem::take(this.busy) {
                return Poll::Ready(());
            }
        }
    }
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

/// One poll of every source, then of the idle timer if there is one.
fn poll_event<T: Transport>(
    io: &mut T,
    conn: &mut Connection,
    quiet: Option<Pin<&mut Quiet>>,
    cx: &mut Context<'_>,
) -> Poll<Event> {
    let event = poll_io(io, conn, cx);
    match quiet {
        Some(quiet) => match event {
            Poll::Pending => quiet.poll_idle(cx).map(|()| Event::Idle),
            Poll::Ready(event) => {
                let busy = quiet.project().busy;
                *busy = *busy || event.keeps_busy();
                Poll::Ready(event)
            }
        },
        None => event,
    }
}

impl Event {
    /// Whether the event makes its period a busy one: anything but keepalive traffic (pings
    /// and pongs either way, and the writes that carry what was already counted), so a
    /// keepalive exchange does not keep an idle connection from being parked.
    fn keeps_busy(&self) -> bool {
        match self {
            Self::Wrote(_) | Self::Idle => false,
            Self::Frames { open, other, .. } => *other || !open,
            Self::Read(Ok(_), inbound) => !inbound
                .iter()
                .all(|msg| matches!(msg, ClientMessage::Ping { .. } | ClientMessage::Pong { .. })),
            Self::Read(Err(_), _) => true,
        }
    }
}

/// One poll of every source, in priority order. Nothing is kept between polls but what the
/// transport and the outbox hold: frames go from the outbox straight into the writer, and
/// messages read are handed over in the event.
fn poll_io<T: Transport>(io: &mut T, conn: &mut Connection, cx: &mut Context<'_>) -> Poll<Event> {
    if io.pending() > 0 {
        if let Poll::Ready(result) = io.poll_write(cx) {
            return Poll::Ready(Event::Wrote(result));
        }
    }
    // Past the high-water mark only a closed outbox's last frames are taken: the end of a
    // session (a keepalive timeout, shutdown) reaches a slow peer too.
    if io.pending() < WRITE_HIGH_WATER || conn.poll_closed(cx).is_ready() {
        let mut writer = Writer {
            io,
            messages: 0,
            other: false,
        };
        if let Poll::Ready(open) = conn.poll_recv_frames(cx, &mut writer) {
            let (messages, other) = (writer.messages, writer.other);
            return Poll::Ready(Event::Frames {
                open,
                messages,
                other,
            });
        }
    }
    let mut inbound = Vec::new();
    if let Poll::Ready(read) = io.poll_read(cx, &mut inbound) {
        return Poll::Ready(Event::Read(read, inbound));
    }
    Poll::Pending
}

/// The transport's writer as the place the engine's frames go, counting chat messages.
struct Writer<'a, T> {
    io: &'a mut T,
    messages: u64,
    /// Whether any frame was more than a keepalive.
    other: bool,
}

impl<T: Transport> Extend<EncodedFrame> for Writer<'_, T> {
    fn extend<I: IntoIterator<Item = EncodedFrame>>(&mut self, frames: I) {
        for frame in frames {
            let variant = frame.as_bytes().get(chat_proto::HEADER_LEN).copied();
            self.messages += u64::from(variant == Some(MESSAGE));
            self.other |= !matches!(variant, Some(PING | PONG));
            self.io.push(frame);
        }
    }
}

/// What an event leads to. A plain function, not part of the task's `async` block: the event
/// is consumed here, so nothing of it is kept across the task's waits.
fn step<'a>(conn: &'a Connection, metrics: &OpenConnection, event: Event) -> Step<'a> {
    match event {
        Event::Wrote(Err(error)) => Step::End(End::Io(error)),
        Event::Wrote(Ok(())) => Step::Go,
        Event::Frames { open, messages, .. } => {
            metrics.delivered(messages);
            if open {
                Step::Go
            } else {
                Step::End(End::EngineClosed)
            }
        }
        Event::Read(Err(ReadError::BadInput(error)), _) => Step::End(End::BadInput(error)),
        Event::Read(Err(ReadError::Io(error)), _) => Step::End(End::Io(error)),
        Event::Read(Ok(read), inbound) => hand_over(conn, inbound, read == Read::Eof),
        // Handled by the task before the event gets here (the connection may leave it).
        Event::Idle => Step::Go,
    }
}

/// Serves one connection until it ends.
pub(crate) fn serve(
    io: impl Transport,
    conn: Connection,
    cancel: CancellationToken,
    metrics: OpenConnection,
) -> impl Future<Output = ()> + Send {
    run(io, conn, cancel, metrics, None).map(drop)
}

/// Serves one connection until it ends, or, given an idle `period`, until it has been idle for
/// a whole period with nothing buffered ([`Served::Idle`]).
pub(crate) fn serve_parkable<T: Transport>(
    io: T,
    conn: Connection,
    cancel: CancellationToken,
    metrics: OpenConnection,
    period: Option<Duration>,
) -> impl Future<Output = Served<T>> + Send {
    run(io, conn, cancel, metrics, period.map(Quiet::new))
}

#[allow(clippy::manual_async_fn)] // deliberately not `async fn`: see the comment inside
fn run<T: Transport>(
    mut io: T,
    mut conn: Connection,
    cancel: CancellationToken,
    metrics: OpenConnection,
    mut quiet: Option<Pin<Box<Quiet>>>,
) -> impl Future<Output = Served<T>> + Send {
    // An `async` block, not an `async fn`: an `async fn` moves its arguments into locals,
    // and the task would hold both copies (rust-lang/rust#62958). For the same reason nothing
    // captured is moved inside it, and what lives across its waits is kept to what a waiting
    // connection needs (events are consumed by plain functions): the task's size is memory
    // per idle connection.
    async move {
        let end = loop {
            let event =
                poll_fn(|cx| poll_event(&mut io, &mut conn, quiet.as_mut().map(Pin::as_mut), cx))
                    .await;
            if let Event::Idle = event {
                if io.is_idle() {
                    return Served::Idle(io, conn, metrics);
                }
                continue;
            }
            let wait = match step(&conn, &metrics, event) {
                Step::Go => continue,
                Step::End(end) => break end,
                Step::Wait(wait) => wait,
            };
            match wait.await {
                Ok(false) => {}
                Ok(true) => break End::ClientClosed,
                Err(EngineClosed) => break End::EngineClosed,
            }
        };
        let last = end.report(conn.id().0, metrics.transport().name());
        let max_frame_len = conn.max_frame_len();
        // Dropping the connection tells the engine this session is gone.
        drop(conn);
        if !last_words(&mut io, last, max_frame_len) {
            return Served::Ended;
        }
        // Boxed for the same reason as the wait for the engine: only a closing connection
        // pays for the flush's state.
        let _ = Box::pin(async {
            tokio::select! {
                () = cancel.cancelled() => {}
                _ = timeout(FLUSH_TIMEOUT, io.close()) => {}
            }
        })
        .await;
        Served::Ended
    }
}

/// Queues what the peer is told last; false if the connection failed and nothing is flushed.
fn last_words(io: &mut impl Transport, last: Last, max_frame_len: usize) -> bool {
    match last {
        Last::Nothing => false,
        Last::Flush => true,
        Last::Error(error) => {
            push(io, &ServerMessage::Error(error), max_frame_len);
            true
        }
    }
}

/// Hands the messages read (the last before the peer's end if `eof`) to the engine at once
/// while it keeps up. The wait when it does not is boxed, with the messages still to go: every
/// connection's task would otherwise carry room for that wait's state (the message, the
/// iterator, the engine's send), idle or not.
fn hand_over(conn: &Connection, inbound: Vec<ClientMessage>, eof: bool) -> Step<'_> {
    let mut messages = inbound.into_iter();
    while let Some(msg) = messages.next() {
        match conn.try_send(msg) {
            Ok(()) => {}
            Err(TrySendError::Closed) => return Step::End(End::EngineClosed),
            Err(TrySendError::Full(msg)) => {
                return Step::Wait(Box::pin(async move {
                    conn.send(msg).await?;
                    for msg in messages {
                        conn.send(msg).await?;
                    }
                    Ok(eof)
                }))
            }
        }
    }
    if eof {
        Step::End(End::ClientClosed)
    } else {
        Step::Go
    }
}

// Variants of `ServerMessage`: the byte after a frame's length (bincode writes a variant
// index under 251 as one byte). Checked by a test.
const MESSAGE: u8 = 3;
const PING: u8 = 10;
const PONG: u8 = 11;

fn push(io: &mut impl Transport, msg: &ServerMessage, max_frame_len: usize) {
    if let Ok(frame) = encode(msg, max_frame_len) {
        io.push(frame);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_variants_read_from_frames_are_those_encoded() {
        let variant = |msg: &ServerMessage| {
            encode(msg, chat_proto::DEFAULT_MAX_FRAME_LEN)
                .expect("encodes")
                .as_bytes()[chat_proto::HEADER_LEN]
        };
        assert_eq!(variant(&ServerMessage::Ping { nonce: 7 }), PING);
        assert_eq!(variant(&ServerMessage::Pong { nonce: 7 }), PONG);
        let message = chat_proto::ChatMessage {
            id: chat_proto::MessageId(1),
            from: "alice".into(),
            target: chat_proto::Target::Room("general".into()),
            text: "hi".into(),
            sent_at: 0,
            client_msg_id: chat_proto::ClientMsgId(1),
        };
        assert_eq!(variant(&ServerMessage::Message(message)), MESSAGE);
    }

    /// A period with an event is busy; the next without one is idle.
    #[tokio::test(start_paused = true)]
    async fn the_idle_timer_fires_after_a_quiet_period() {
        let mut quiet = Quiet::new(Duration::from_secs(5));
        *quiet.as_mut().project().busy = true;
        let started = Instant::now();
        poll_fn(|cx| quiet.as_mut().poll_idle(cx)).await;
        assert_eq!(
            started.elapsed(),
            Duration::from_secs(10),
            "one busy period, one idle"
        );
    }

    /// A pass that ends because the task spent its budget polls the timer in vain (it
    /// registers nothing): the timer must not count as armed, or it would never be looked at
    /// again and the connection never parked.
    #[tokio::test(start_paused = true)]
    async fn the_idle_timer_is_armed_only_by_a_poll_that_ran() {
        let mut quiet = Quiet::new(Duration::from_secs(5));
        poll_fn(|cx| {
            while tokio::task::coop::has_budget_remaining() {
                let _ = std::pin::pin!(sleep(Duration::ZERO)).poll(cx);
            }
            assert!(quiet.as_mut().poll_idle(cx).is_pending());
            Poll::Ready(())
        })
        .await;
        let idle = timeout(
            Duration::from_secs(60),
            poll_fn(|cx| quiet.as_mut().poll_idle(cx)),
        );
        assert!(idle.await.is_ok(), "the timer fired and was looked at");
    }
}
