//! What differs per transport, behind one small trait driven by the shared
//! [`pump`](crate::pump): a [`Transport`] turns bytes (or messages) from the peer into client
//! messages, and queues encoded frames and writes them out.
//!
//! - [`tcp`]: the binary protocol over a byte stream: plain TCP (bufferless idle reads) or TLS.
//! - [`ws`]: WebSocket, one chat-proto frame per binary message; its own ping is answered by
//!   the WebSocket library.
//!
//! One value does both directions (the pump polls them in turn from one task), so a
//! connection needs no split halves and no shared state between them.
//!
//! A third front end is one more file here implementing the trait.

pub(crate) mod tcp;
pub(crate) mod ws;

use std::future::Future;
use std::io;
use std::task::{Context, Poll};

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

/// A connection's transport. Poll-based, so a waiting connection holds no future of its own
/// beyond what the transport keeps anyway (its registration with the I/O driver).
pub(crate) trait Transport: Send {
    /// Reads what the peer sent and appends every whole message decoded to `out`; `Pending`
    /// (with `cx` woken on input) while there is nothing to read.
    fn poll_read(
        &mut self,
        cx: &mut Context<'_>,
        out: &mut Vec<ClientMessage>,
    ) -> Poll<Result<Read, ReadError>>;

    /// Queues a frame (the same bytes for every transport: length prefix and payload).
    fn push(&mut self, frame: EncodedFrame);

    /// Bytes queued and not yet written (at least 1 while written bytes wait for a flush).
    fn pending(&self) -> usize;

    /// Writes some of what is queued (and flushes once all is written); `Pending` while the
    /// peer's socket takes no more. A frame is never half-lost.
    fn poll_write(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;

    /// Writes everything queued and closes the outbound side.
    fn close(&mut self) -> impl Future<Output = ()> + Send;

    /// Whether nothing is buffered in either direction, so the connection could be set aside
    /// as its socket alone. Transports that are never parked keep the default.
    fn is_idle(&self) -> bool {
        false
    }
}
