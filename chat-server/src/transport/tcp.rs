//! The binary protocol over a byte stream: length-prefixed frames, many written per syscall.
//!
//! Plain TCP reads without a buffer while idle ([`TcpReader`]: wait until readable, then
//! reserve); other streams (TLS) read through a buffer kept only while a frame is incomplete
//! ([`StreamReader`]).

use std::io::{self, Read as _};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Buf, BytesMut};
use chat_proto::{ClientMessage, EncodedFrame, ServerCodec};
use socket2::SockRef;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, Interest};
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::TcpStream;
use tokio_util::codec::Decoder;
use tokio_util::io::poll_read_buf;

use super::{FrameReader, FrameWriter, Read, ReadError};

/// Bytes reserved for each read from the socket.
const READ_CHUNK: usize = 4096;

/// Reads frames from a plain TCP socket, holding no buffer while idle.
pub(crate) struct TcpReader {
    half: OwnedReadHalf,
    codec: ServerCodec,
    buf: BytesMut,
}

impl TcpReader {
    pub(crate) fn new(half: OwnedReadHalf, max_frame_len: usize) -> Self {
        Self {
            half,
            codec: ServerCodec::with_max_frame_len(max_frame_len),
            buf: BytesMut::new(),
        }
    }
}

impl FrameReader for TcpReader {
    fn poll_read(
        &mut self,
        cx: &mut Context<'_>,
        out: &mut Vec<ClientMessage>,
    ) -> Poll<Result<Read, ReadError>> {
        let Self { half, codec, buf } = self;
        let stream: &TcpStream = half.as_ref();
        loop {
            ready!(stream.poll_read_ready(cx)).map_err(ReadError::Io)?;
            // The buffer exists only while bytes are being read or a frame is incomplete.
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
            let eof = match result {
                Ok(()) => read == 0,
                Err(error) if error.kind() == io::ErrorKind::WouldBlock && read > 0 => false,
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                    // Readiness was stale: wait again without holding the buffer (an idle
                    // connection would otherwise keep READ_CHUNK bytes for nothing).
                    if buf.is_empty() {
                        *buf = BytesMut::new();
                    }
                    continue;
                }
                Err(error) => return Poll::Ready(Err(ReadError::Io(error))),
            };
            return Poll::Ready(decode_all(codec, buf, eof, out));
        }
    }
}

/// Reads frames from any byte stream (TLS) through a buffer.
pub(crate) struct StreamReader<R> {
    half: R,
    codec: ServerCodec,
    buf: BytesMut,
}

impl<R> StreamReader<R> {
    pub(crate) fn new(half: R, max_frame_len: usize) -> Self {
        Self {
            half,
            codec: ServerCodec::with_max_frame_len(max_frame_len),
            buf: BytesMut::new(),
        }
    }
}

impl<R: AsyncRead + Unpin + Send> FrameReader for StreamReader<R> {
    fn poll_read(
        &mut self,
        cx: &mut Context<'_>,
        out: &mut Vec<ClientMessage>,
    ) -> Poll<Result<Read, ReadError>> {
        if self.buf.capacity() - self.buf.len() < READ_CHUNK / 2 {
            self.buf.reserve(READ_CHUNK);
        }
        match poll_read_buf(Pin::new(&mut self.half), cx, &mut self.buf) {
            Poll::Pending => {
                // Nothing to read: an idle connection holds no buffer.
                if self.buf.is_empty() {
                    self.buf = BytesMut::new();
                }
                Poll::Pending
            }
            Poll::Ready(Err(error)) => Poll::Ready(Err(ReadError::Io(error))),
            Poll::Ready(Ok(read)) => {
                Poll::Ready(decode_all(&mut self.codec, &mut self.buf, read == 0, out))
            }
        }
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

/// Writes frames to a byte stream: everything queued leaves in one buffer.
pub(crate) struct StreamWriter<W> {
    half: W,
    out: BytesMut,
    /// Bytes written and not yet flushed (TLS buffers plaintext until flushed).
    unflushed: bool,
}

impl<W> StreamWriter<W> {
    pub(crate) fn new(half: W) -> Self {
        Self {
            half,
            out: BytesMut::new(),
            unflushed: false,
        }
    }
}

impl<W: AsyncWrite + Unpin + Send> FrameWriter for StreamWriter<W> {
    fn push(&mut self, frame: EncodedFrame) {
        self.out.extend_from_slice(frame.as_bytes());
    }

    fn pending(&self) -> usize {
        self.out.len() + usize::from(self.unflushed)
    }

    fn poll_write(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.out.is_empty() {
            let written = ready!(Pin::new(&mut self.half).poll_write(cx, &self.out))?;
            if written == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.out.advance(written);
            self.unflushed = true;
        }
        if self.unflushed {
            ready!(Pin::new(&mut self.half).poll_flush(cx))?;
            self.unflushed = false;
            // Idle connections hold no buffers.
            self.out = BytesMut::new();
        }
        Poll::Ready(Ok(()))
    }

    async fn close(&mut self) {
        while self.out.has_remaining() {
            if self.half.write_buf(&mut self.out).await.is_err() {
                return;
            }
        }
        let _ = self.half.shutdown().await;
    }
}
