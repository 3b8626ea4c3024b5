//! One task per socket: frames in to the engine, frames out to the socket.
//!
//! The task `select!`s between four things: a decoded frame from the client (handed to the
//! engine), frames the engine queued for this client (appended to one write buffer, so many
//! frames leave in one syscall), writing that buffer, and the keepalive deadline. It takes
//! frames from the engine only while its write buffer is under [`WRITE_HIGH_WATER`]: beyond
//! that they wait in the engine's bounded outbox, whose overflow closes the connection.
//!
//! Bad input (an oversized length, garbage) gets one typed error frame and a close; only this
//! connection is affected.
//!
//! Memory: an idle connection holds no read or write buffer. The read buffer is reserved only
//! once the socket is readable and released as soon as every byte in it is decoded; the write
//! buffer is released once written.

use std::time::Duration;

use bytes::{Buf, BytesMut};
use chat_core::Connection;
use chat_proto::{
    encode, CodecError, EncodedFrame, ErrorCode, ErrorReply, ServerCodec, ServerMessage,
};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::{sleep_until, timeout, Instant};
use tokio_util::codec::Decoder;
use tokio_util::sync::CancellationToken;

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

/// Bytes buffered for writing before the task stops taking frames from the engine.
const WRITE_HIGH_WATER: usize = 64 * 1024;

/// Bytes reserved for each read from the socket.
const READ_CHUNK: usize = 4096;

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
    /// The socket failed.
    Io(std::io::Error),
}

pub(crate) async fn serve(
    stream: TcpStream,
    mut conn: Connection,
    keepalive: Keepalive,
    cancel: CancellationToken,
) {
    let session = conn.id().0;
    if let Err(error) = stream.set_nodelay(true) {
        tracing::debug!(session, %error, "cannot set TCP_NODELAY");
    }
    let (read_half, mut writer) = stream.into_split();
    let max_frame_len = conn.max_frame_len();
    let mut codec = ServerCodec::with_max_frame_len(max_frame_len);
    let mut inbuf = BytesMut::new();
    let mut out = BytesMut::new();
    let mut frames: Vec<EncodedFrame> = Vec::new();
    let mut last_heard = Instant::now();
    let mut ping_sent: Option<Instant> = None;
    let mut nonce = 0u64;

    let end = 'serve: loop {
        let deadline = match ping_sent {
            Some(sent) => sent + keepalive.timeout,
            None => last_heard + keepalive.interval,
        };
        tokio::select! {
            biased;
            () = cancel.cancelled() => break End::Cancelled,
            result = writer.write_buf(&mut out), if !out.is_empty() => {
                if let Err(error) = result {
                    break End::Io(error);
                }
                if out.is_empty() {
                    // Idle connections hold no buffers.
                    out = BytesMut::new();
                }
            }
            open = conn.recv_frames(&mut frames), if out.len() < WRITE_HIGH_WATER => {
                for frame in frames.drain(..) {
                    out.extend_from_slice(frame.as_bytes());
                }
                if !open {
                    break End::EngineClosed;
                }
            }
            ready = read_half.readable() => {
                if let Err(error) = ready {
                    break End::Io(error);
                }
                // The buffer exists only while bytes are being read or a frame is incomplete.
                if inbuf.capacity() - inbuf.len() < READ_CHUNK / 2 {
                    inbuf.reserve(READ_CHUNK);
                }
                let eof = match read_half.try_read_buf(&mut inbuf) {
                    Ok(0) => true,
                    Ok(_) => false,
                    Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => continue,
                    Err(error) => break End::Io(error),
                };
                last_heard = Instant::now();
                ping_sent = None;
                loop {
                    let decoded = if eof { codec.decode_eof(&mut inbuf) } else { codec.decode(&mut inbuf) };
                    match decoded {
                        Ok(Some(msg)) => {
                            if conn.send(msg).await.is_err() {
                                break 'serve End::EngineClosed;
                            }
                        }
                        Ok(None) if eof => break 'serve End::ClientClosed,
                        Ok(None) => break,
                        Err(error) => break 'serve End::BadInput(error),
                    }
                }
                if inbuf.is_empty() {
                    inbuf = BytesMut::new();
                }
            }
            () = sleep_until(deadline) => {
                if ping_sent.is_some() {
                    break End::Timeout;
                }
                nonce += 1;
                push(&mut out, &ServerMessage::Ping { nonce }, max_frame_len);
                ping_sent = Some(Instant::now());
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
    match &end {
        End::BadInput(error) => tracing::warn!(session, %error, "rejected input; closing"),
        End::Io(error) => tracing::info!(session, %error, "disconnected"),
        other => tracing::info!(session, reason = ?other, "disconnected"),
    }
    // Dropping the connection tells the engine this session is gone.
    drop(conn);
    if matches!(end, End::Cancelled | End::Io(_)) {
        return;
    }
    if let Some(error) = error {
        push(&mut out, &ServerMessage::Error(error), max_frame_len);
    }
    let flush = async {
        while out.has_remaining() {
            if writer.write_buf(&mut out).await.is_err() {
                return;
            }
        }
        let _ = writer.shutdown().await;
    };
    let _ = timeout(FLUSH_TIMEOUT, flush).await;
}

fn push(out: &mut BytesMut, msg: &ServerMessage, max_frame_len: usize) {
    if let Ok(frame) = encode(msg, max_frame_len) {
        out.extend_from_slice(frame.as_bytes());
    }
}
