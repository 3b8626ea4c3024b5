//! What differs per transport, behind two small traits driven by the shared [`pump`](crate::pump):
//! a [`FrameReader`] that turns bytes (or messages) from the peer into client messages, and a
//! [`FrameWriter`] that queues encoded frames and writes them out.
//!
//! - [`tcp`]: the binary protocol over a byte stream: plain TCP (bufferless idle reads) or any
//!   `AsyncRead + AsyncWrite` (TLS).
//! - [`ws`]: WebSocket, one chat-proto frame per binary message; its own ping is answered by
//!   the WebSocket library and counts as a sign of life.
//!
//! A third front end is one more file here implementing both traits.

pub(crate) mod tcp;
pub(crate) mod ws;

use std::future::Future;
use std::io;

use chat_proto::{ClientMessage, CodecError, EncodedFrame};

/// Why a transport stopped reading.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// The peer sent something that is not a valid frame.
    BadInput(CodecError),
    /// The connection failed.
    Io(io::Error),
}

/// What a read produced.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Read {
    /// Bytes arrived (possibly no whole message yet, or only a transport-level ping).
    Data,
    /// The peer closed its side cleanly.
    Eof,
}

/// The inbound half of a transport.
pub(crate) trait FrameReader: Send {
    /// Waits for input from the peer and appends every whole message decoded to `out`.
    ///
    /// Cancel-safe: no byte is lost when the future is dropped unfinished.
    fn read(
        &mut self,
        out: &mut Vec<ClientMessage>,
    ) -> impl Future<Output = Result<Read, ReadError>> + Send;
}

/// The outbound half of a transport.
pub(crate) trait FrameWriter: Send {
    /// Queues a frame (the same bytes for every transport: length prefix and payload).
    fn push(&mut self, frame: EncodedFrame);

    /// Bytes queued and not yet written.
    fn pending(&self) -> usize;

    /// Writes some of what is queued. Cancel-safe: a frame is never half-lost.
    fn write(&mut self) -> impl Future<Output = io::Result<()>> + Send;

    /// Writes everything queued and closes the outbound side.
    fn close(&mut self) -> impl Future<Output = ()> + Send;
}
