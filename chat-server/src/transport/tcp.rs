//! The binary protocol over a byte stream: length-prefixed frames, many written per syscall.
//!
//! Plain TCP reads without a buffer while idle ([`TcpReader`]: wait until readable, then
//! reserve); other streams (TLS) read through a buffer kept only while a frame is incomplete
//! ([`StreamReader`]).

use std::io;

use bytes::{Buf, BytesMut};
use chat_proto::{ClientMessage, EncodedFrame, ServerCodec};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::tcp::OwnedReadHalf;
use tokio_util::codec::Decoder;

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
    async fn read(&mut self, out: &mut Vec<ClientMessage>) -> Result<Read, ReadError> {
        loop {
            self.half.readable().await.map_err(ReadError::Io)?;
            // The buffer exists only while bytes are being read or a frame is incomplete.
            if self.buf.capacity() - self.buf.len() < READ_CHUNK / 2 {
                self.buf.reserve(READ_CHUNK);
            }
            let eof = match self.half.try_read_buf(&mut self.buf) {
                Ok(0) => true,
                Ok(_) => false,
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                    // Readiness was stale: wait again without holding the buffer (an idle
                    // connection would otherwise keep READ_CHUNK bytes for nothing).
                    if self.buf.is_empty() {
                        self.buf = BytesMut::new();
                    }
                    continue;
                }
                Err(error) => return Err(ReadError::Io(error)),
            };
            return decode_all(&mut self.codec, &mut self.buf, eof, out);
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
    async fn read(&mut self, out: &mut Vec<ClientMessage>) -> Result<Read, ReadError> {
        if self.buf.capacity() - self.buf.len() < READ_CHUNK / 2 {
            self.buf.reserve(READ_CHUNK);
        }
        // `read_buf` is cancel-safe: bytes read are in the buffer.
        let eof = self
            .half
            .read_buf(&mut self.buf)
            .await
            .map_err(ReadError::Io)?
            == 0;
        decode_all(&mut self.codec, &mut self.buf, eof, out)
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
}

impl<W> StreamWriter<W> {
    pub(crate) fn new(half: W) -> Self {
        Self {
            half,
            out: BytesMut::new(),
        }
    }
}

impl<W: AsyncWrite + Unpin + Send> FrameWriter for StreamWriter<W> {
    fn push(&mut self, frame: EncodedFrame) {
        self.out.extend_from_slice(frame.as_bytes());
    }

    fn pending(&self) -> usize {
        self.out.len()
    }

    async fn write(&mut self) -> io::Result<()> {
        self.half.write_buf(&mut self.out).await?;
        if self.out.is_empty() {
            // TLS buffers plaintext until flushed.
            self.half.flush().await?;
            // Idle connections hold no buffers.
            self.out = BytesMut::new();
        }
        Ok(())
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
