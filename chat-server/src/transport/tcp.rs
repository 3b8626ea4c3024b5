//! The binary protocol over a byte stream: length-prefixed frames, many written per syscall.
//!
//! [`FrameStream`] owns its stream whole: the pump reads and writes it in turn from one task,
//! so there are no split halves (no shared allocation, no lock). Plain TCP reads without a
//! buffer while idle (wait until readable, then reserve); TLS reads through a buffer kept only
//! while a frame is incomplete.

use std::io::{self, Read as _};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Buf, BytesMut};
use chat_proto::{ClientMessage, EncodedFrame, ServerCodec};
use socket2::SockRef;
use tokio::io::{AsyncWrite, AsyncWriteExt, Interest};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tokio_util::codec::Decoder;
use tokio_util::io::poll_read_buf;

use super::{Read, ReadError, Transport};

/// Bytes reserved for each read from the socket.
const READ_CHUNK: usize = 4096;

/// The binary protocol over a TCP socket or a TLS stream over one.
pub(crate) struct FrameStream<S> {
    io: S,
    codec: ServerCodec,
    /// Bytes read and not yet decoded (no allocation while idle).
    inbound: BytesMut,
    /// Frames queued and not yet written (no allocation while idle).
    out: BytesMut,
    /// Bytes written and not yet flushed (TLS buffers plaintext until flushed).
    unflushed: bool,
}

impl<S> FrameStream<S> {
    pub(crate) fn new(io: S, max_frame_len: usize) -> Self {
        Self {
            io,
            codec: ServerCodec::with_max_frame_len(max_frame_len),
            inbound: BytesMut::new(),
            out: BytesMut::new(),
            unflushed: false,
        }
    }

    /// The stream, and with it everything of an idle connection ([`Transport::is_idle`]: its
    /// buffers are empty and its codec between frames).
    pub(crate) fn into_stream(self) -> S {
        self.io
    }
}

/// How a byte stream reads into its connection's buffer.
pub(crate) trait ReadInto {
    /// Reads into `buf`, growing it; `Ready(Ok(0))` at the end of the stream. An idle
    /// connection is left no buffer.
    fn poll_read_into(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut BytesMut,
    ) -> Poll<io::Result<usize>>;
}

impl ReadInto for TcpStream {
    /// Waits until the socket is readable, and only then reserves the buffer.
    fn poll_read_into(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut BytesMut,
    ) -> Poll<io::Result<usize>> {
        let stream: &Self = self;
        loop {
            ready!(stream.poll_read_ready(cx))?;
            let start = buf.len();
            buf.resize(start + READ_CHUNK, 0);
            let mut read = 0;
            // A read that leaves space unfilled has emptied the socket: it clears the
            // readiness it was called on (new input brings a newer one), so the next poll
            // waits instead of spending a read to learn that nothing is left.
            let result = stream.try_io(Interest::READABLE, || {
                read = (&*SockRef::from(stream)).read(&mut buf[start..])?;
                if read > 0 && read < READ_CHUNK {
                    Err(io::ErrorKind::WouldBlock.into())
                } else {
                    Ok(())
                }
            });
            buf.truncate(start + read);
            match result {
                Ok(()) => return Poll::Ready(Ok(read)),
                Err(error) if error.kind() == io::ErrorKind::WouldBlock && read > 0 => {
                    return Poll::Ready(Ok(read))
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                    // Readiness was stale: wait again without holding the buffer (an idle
                    // connection would otherwise keep READ_CHUNK bytes for nothing).
                    if buf.is_empty() {
                        *buf = BytesMut::new();
                    }
                }
                Err(error) => return Poll::Ready(Err(error)),
            }
        }
    }
}

impl ReadInto for TlsStream<TcpStream> {
    /// Reads through the buffer (TLS records arrive whole or not at all), released when a
    /// read finds nothing and no frame is incomplete.
    fn poll_read_into(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut BytesMut,
    ) -> Poll<io::Result<usize>> {
        if buf.capacity() - buf.len() < READ_CHUNK / 2 {
            buf.reserve(READ_CHUNK);
        }
        let read = poll_read_buf(Pin::new(self), cx, buf);
        if read.is_pending() && buf.is_empty() {
            *buf = BytesMut::new();
        }
        read
    }
}

impl<S: ReadInto + AsyncWrite + Unpin + Send> Transport for FrameStream<S> {
    fn poll_read(
        &mut self,
        cx: &mut Context<'_>,
        out: &mut Vec<ClientMessage>,
    ) -> Poll<Result<Read, ReadError>> {
        let read = ready!(self.io.poll_read_into(cx, &mut self.inbound)).map_err(ReadError::Io)?;
        Poll::Ready(decode_all(
            &mut self.codec,
            &mut self.inbound,
            read == 0,
            out,
        ))
    }

    fn push(&mut self, frame: EncodedFrame) {
        self.out.extend_from_slice(frame.as_bytes());
    }

    fn pending(&self) -> usize {
        self.out.len() + usize::from(self.unflushed)
    }

    fn poll_write(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.out.is_empty() {
            let written = ready!(Pin::new(&mut self.io).poll_write(cx, &self.out))?;
            if written == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.out.advance(written);
            self.unflushed = true;
        }
        if self.unflushed {
            ready!(Pin::new(&mut self.io).poll_flush(cx))?;
            self.unflushed = false;
            // Idle connections hold no buffers.
            self.out = BytesMut::new();
        }
        Poll::Ready(Ok(()))
    }

    async fn close(&mut self) {
        while self.out.has_remaining() {
            if self.io.write_buf(&mut self.out).await.is_err() {
                return;
            }
        }
        let _ = self.io.shutdown().await;
    }

    fn is_idle(&self) -> bool {
        self.out.is_empty()
            && !self.unflushed
            && self.inbound.is_empty()
            && !self.codec.is_mid_frame()
    }
}

fn decode_all(
    codec: &mut ServerCodec,
    buf: &mut BytesMut,
    eof: bool,
    out: &mut Vec<ClientMessage>,
) -> Result<Read, ReadError> {
    loop {
        let decoded = if eof {
            codec.decode_eof(buf)
        } else {
            codec.decode(buf)
        };
        match decoded {
            Ok(Some(msg)) => out.push(msg),
            Ok(None) if eof => return Ok(Read::Eof),
            Ok(None) => break,
            Err(error) => return Err(ReadError::BadInput(error)),
        }
    }
    if buf.is_empty() {
        *buf = BytesMut::new();
    }
    Ok(Read::Data)
}
