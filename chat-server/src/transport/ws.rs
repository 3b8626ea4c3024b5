//! WebSocket: each binary message carries exactly one chat-proto frame, byte for byte as on TCP
//! (length prefix included), so a fan-out frame encoded once goes to every transport.
//!
//! A text message, a message holding anything but exactly one valid frame, or a message over
//! the frame limit is bad input, as garbage is on TCP. WebSocket pings are answered by the
//! library (on the next write); the keepalive counts only chat-proto messages, as on TCP.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use chat_proto::{decode_frame, ClientMessage, CodecError, EncodedFrame};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{Sink, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::tungstenite::error::{CapacityError, Error as WsError, ProtocolError};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::{Read, ReadError, Transport};

/// The WebSocket library's read buffer, per connection (see [`config`]).
const READ_BUFFER: usize = 1024;

/// Bytes the WebSocket library gathers before writing on its own (the flush writes the rest).
const WRITE_BATCH: usize = 64 * 1024;

/// The WebSocket library's limits for a connection whose frames are at most `max_frame_len`
/// bytes of payload: one message is one frame, so nothing larger is ever buffered. Reads go
/// through a 1 KiB buffer: the library zero-fills its whole read buffer before each read and
/// keeps it for the connection's life, so its size is resident per idle connection (4 KiB cost
/// 3.1 KB more per idle user; a larger frame grows it as needed, and at 1 KiB the load tests'
/// CPU did not move). Writes are gathered (up to the pump's high-water mark) and leave in one
/// syscall at the flush.
pub(crate) fn config(max_frame_len: usize) -> WebSocketConfig {
    let max_message = max_frame_len + chat_proto::HEADER_LEN;
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BATCH)
        .max_message_size(Some(max_message))
        .max_frame_size(Some(max_message))
}

/// A WebSocket as the pump's transport: one frame per binary message each way. The socket is
/// split (the library's lock) so that the socket's state lives on the heap, not in every
/// connection's task.
pub(crate) struct WsStream<S> {
    stream: SplitStream<WebSocketStream<S>>,
    sink: SplitSink<WebSocketStream<S>, Message>,
    /// Frames not yet handed to the library.
    queue: VecDeque<EncodedFrame>,
    /// Their bytes.
    pending: usize,
    /// Frames handed to the library and not yet flushed.
    unflushed: bool,
    max_frame_len: usize,
}

impl<S: AsyncRead + AsyncWrite + Unpin> WsStream<S> {
    pub(crate) fn new(ws: WebSocketStream<S>, max_frame_len: usize) -> Self {
        let (sink, stream) = ws.split();
        Self {
            stream,
            sink,
            queue: VecDeque::new(),
            pending: 0,
            unflushed: false,
            max_frame_len,
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Transport for WsStream<S> {
    fn poll_read(
        &mut self,
        cx: &mut Context<'_>,
        out: &mut Vec<ClientMessage>,
    ) -> Poll<Result<Read, ReadError>> {
        // The stream keeps partial messages between polls.
        let next = ready!(self.stream.poll_next_unpin(cx));
        Poll::Ready(self.decode(next, out))
    }

    fn push(&mut self, frame: EncodedFrame) {
        self.pending += frame.len();
        self.queue.push_back(frame);
    }

    fn pending(&self) -> usize {
        self.pending + usize::from(self.unflushed)
    }

    fn poll_write(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // A frame leaves the queue only once the sink has taken it, so none is half-lost.
        while !self.queue.is_empty() {
            ready!(Pin::new(&mut self.sink).poll_ready(cx)).map_err(ws_io)?;
            if let Some(frame) = self.queue.pop_front() {
                self.pending -= frame.len();
                Pin::new(&mut self.sink)
                    .start_send(Message::Binary(frame.into_bytes()))
                    .map_err(ws_io)?;
                self.unflushed = true;
            }
        }
        ready!(Pin::new(&mut self.sink).poll_flush(cx)).map_err(ws_io)?;
        self.unflushed = false;
        Poll::Ready(Ok(()))
    }

    async fn close(&mut self) {
        if poll_fn(|cx| self.poll_write(cx)).await.is_ok() {
            let _ = poll_fn(|cx| Pin::new(&mut self.sink).poll_close(cx)).await;
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> WsStream<S> {
    /// What one WebSocket message (or the stream's end or error) means for the pump.
    fn decode(
        &self,
        next: Option<Result<Message, WsError>>,
        out: &mut Vec<ClientMessage>,
    ) -> Result<Read, ReadError> {
        let msg = match next {
            None
            | Some(Err(
                WsError::ConnectionClosed
                | WsError::AlreadyClosed
                | WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake),
            )) => return Ok(Read::Eof),
            Some(Err(WsError::Capacity(CapacityError::MessageTooLong { size, .. }))) => {
                return Err(ReadError::BadInput(CodecError::FrameTooLarge {
                    len: size.saturating_sub(chat_proto::HEADER_LEN),
                    max: self.max_frame_len,
                }))
            }
            Some(Err(WsError::Io(error))) => return Err(ReadError::Io(error)),
            Some(Err(error)) => {
                return Err(ReadError::BadInput(CodecError::Malformed(
                    error.to_string(),
                )))
            }
            Some(Ok(msg)) => msg,
        };
        match msg {
            Message::Binary(bytes) => match decode_frame(&bytes, self.max_frame_len) {
                Ok(Some((msg, used))) if used == bytes.len() => {
                    out.push(msg);
                    Ok(Read::Data)
                }
                Ok(Some((_, used))) => Err(ReadError::BadInput(CodecError::TrailingBytes(
                    bytes.len() - used,
                ))),
                Ok(None) => Err(ReadError::BadInput(CodecError::Malformed(
                    "a WebSocket message must hold one whole frame".into(),
                ))),
                Err(error) => Err(ReadError::BadInput(error)),
            },
            Message::Text(_) => Err(ReadError::BadInput(CodecError::Malformed(
                "text WebSocket messages are not accepted; send binary frames".into(),
            ))),
            Message::Close(_) => Ok(Read::Eof),
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => Ok(Read::Data),
        }
    }
}

fn ws_io(error: WsError) -> io::Error {
    match error {
        WsError::Io(error) => error,
        other => io::Error::other(other),
    }
}
