//! The shared pump: one task per connection, whatever the transport, moving frames between a
//! [`FrameReader`]/[`FrameWriter`] pair and a [`Connection`] to the engine.
//!
//! The transport-neutral policy lives here and only here. The task `select!`s between four
//! things: messages decoded from the peer (handed to the engine), frames the engine queued for
//! this peer (handed to the writer, so many frames leave together), writing, and the keepalive
//! deadline. The keepalive timer and the cancellation are registered once per connection, not
//! once per pass: hearing from the peer only moves `last_heard`, and the timer, when it fires
//! early, is set again to the deadline that moved. It takes frames from the engine only while the writer holds less than
//! [`WRITE_HIGH_WATER`] bytes: beyond that they wait in the engine's bounded outbox, whose
//! overflow closes the connection (the slow-consumer policy).
//!
//! Bad input gets one typed error frame and a close; only this connection is affected. A
//! closing connection flushes its last frames for at most [`FLUSH_TIMEOUT`].

use std::time::Duration;

use chat_core::Connection;
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
pub(crate) async fn serve(
    mut reader: impl FrameReader,
    mut writer: impl FrameWriter,
    mut conn: Connection,
    keepalive: Keepalive,
    cancel: CancellationToken,
    metrics: OpenConnection,
) {
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

    let end = 'serve: loop {
        tokio::select! {
            biased;
            () = &mut cancelled => break End::Cancelled,
            result = writer.write(), if writer.pending() > 0 => {
                if let Err(error) = result {
                    break End::Io(error);
                }
            }
            open = conn.recv_frames(&mut frames), if writer.pending() < WRITE_HIGH_WATER => {
                let mut messages = 0;
                for frame in frames.drain(..) {
                    messages += u64::from(is_chat_message(&frame));
                    writer.push(frame);
                }
                metrics.delivered(messages);
                if !open {
                    break End::EngineClosed;
                }
            }
            read = reader.read(&mut inbound) => {
                last_heard = Instant::now();
                ping_sent = None;
                let read = match read {
                    Ok(read) => read,
                    Err(ReadError::BadInput(error)) => break End::BadInput(error),
                    Err(ReadError::Io(error)) => break End::Io(error),
                };
                for msg in inbound.drain(..) {
                    if conn.send(msg).await.is_err() {
                        break 'serve End::EngineClosed;
                    }
                }
                if read == Read::Eof {
                    break End::ClientClosed;
                }
            }
            () = &mut keepalive_timer => {
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
    let _ = timeout(FLUSH_TIMEOUT, writer.close()).await;
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
