//! Framing and encoding: plain functions over byte slices, and [`ChatCodec`] for tokio-util's
//! `Framed`.
//!
//! ```text
//! +----------------------+--------------------------------------------+
//! | length N: u32 BE (4) | payload: one message, bincode standard (N) |
//! +----------------------+--------------------------------------------+
//! ```
//!
//! A length of zero or over the frame limit is an error, detected from the 4-byte head alone:
//! no buffer is reserved for a frame that will be rejected. Payload decoding runs under a
//! bincode decode limit proportional to the payload (32 bytes of memory per payload byte, the
//! most any valid message needs), so a hostile length inside the payload (a string or vector
//! claiming far more than the frame holds) fails instead of allocating.

use std::marker::PhantomData;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio_util::codec::{Decoder, Encoder};

use crate::{ClientMessage, CodecError, ServerMessage};

/// Bytes of the length prefix.
pub const HEADER_LEN: usize = 4;

/// The default limit on a frame's payload: 64 KiB.
pub const DEFAULT_MAX_FRAME_LEN: usize = 64 * 1024;

/// The highest frame limit that can be configured: 16 MiB.
pub const MAX_FRAME_LEN_CAP: usize = 16 * 1024 * 1024;

/// A message type that travels on the wire: [`ClientMessage`] or [`ServerMessage`].
///
/// Sealed: the two enums are the whole protocol.
pub trait WireMessage: Serialize + DeserializeOwned + sealed::Sealed {}

impl WireMessage for ClientMessage {}
impl WireMessage for ServerMessage {}

mod sealed {
    pub trait Sealed {}
    impl Sealed for crate::ClientMessage {}
    impl Sealed for crate::ServerMessage {}
}

/// A complete frame (length prefix and payload), encoded once and cheap to clone, so a message
/// fanned out to many connections is encoded a single time and the same bytes written to each.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncodedFrame(Bytes);

impl EncodedFrame {
    /// The frame's bytes, length prefix included.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The frame's bytes, length prefix included.
    pub fn into_bytes(self) -> Bytes {
        self.0
    }

    /// The frame's length in bytes, length prefix included.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Always false: no frame is empty. Present for symmetry with [`len`](Self::len).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Encodes `msg` as one complete frame, in a buffer of exactly its size.
///
/// # Errors
/// [`CodecError::FrameTooLarge`] if the payload exceeds `max_frame_len`.
pub fn encode<M: WireMessage>(msg: &M, max_frame_len: usize) -> Result<EncodedFrame, CodecError> {
    let mut buf = BytesMut::new();
    encode_into(msg, &mut buf, max_frame_len)?;
    Ok(EncodedFrame(buf.freeze()))
}

/// Appends `msg` as one complete frame to `dst`. On error `dst` is left as it was.
///
/// The payload is measured first (bincode's size-only pass, no memory touched) and `dst`
/// grown once to fit it: written as it came, a frame grew its buffer a few times over (4, 8,
/// 16 … bytes), a reallocation and copy each, for every message encoded.
///
/// # Errors
/// [`CodecError::FrameTooLarge`] if the payload exceeds `max_frame_len`.
pub fn encode_into<M: WireMessage>(
    msg: &M,
    dst: &mut BytesMut,
    max_frame_len: usize,
) -> Result<(), CodecError> {
    let mut size = bincode::enc::write::SizeWriter::default();
    bincode::serde::encode_into_writer(msg, &mut size, config())
        .map_err(|e| CodecError::Malformed(e.to_string()))?;
    let too_large = |len| CodecError::FrameTooLarge {
        len,
        max: max_frame_len,
    };
    if size.bytes_written > max_frame_len {
        return Err(too_large(size.bytes_written));
    }
    dst.reserve(HEADER_LEN + size.bytes_written);
    let start = dst.len();
    dst.put_u32(0);
    let written = bincode::serde::encode_into_writer(msg, Appender(dst), config());
    // The length is what was written, not what was measured: the frame is right even if the
    // two passes disagreed.
    let len = dst.len() - start - HEADER_LEN;
    let result = match written {
        Err(e) => Err(CodecError::Malformed(e.to_string())),
        Ok(()) if len > max_frame_len => Err(too_large(len)),
        Ok(()) => {
            // `len <= max_frame_len <= MAX_FRAME_LEN_CAP < u32::MAX`.
            dst[start..start + HEADER_LEN].copy_from_slice(&(len as u32).to_be_bytes());
            return Ok(());
        }
    };
    dst.truncate(start);
    result
}

/// bincode's writer into a `BytesMut` that already has room.
struct Appender<'a>(&'a mut BytesMut);

impl bincode::enc::write::Writer for Appender<'_> {
    fn write(&mut self, bytes: &[u8]) -> Result<(), bincode::error::EncodeError> {
        self.0.extend_from_slice(bytes);
        Ok(())
    }
}

/// Decodes the frame at the start of `buf`.
///
/// # Returns
/// `Ok(None)` if `buf` does not yet hold a whole frame; otherwise the message and the number of
/// bytes the frame took (prefix included).
///
/// # Errors
/// Any [`CodecError`] but `Io` and `Truncated`: the stream is corrupt.
pub fn decode_frame<M: WireMessage>(
    buf: &[u8],
    max_frame_len: usize,
) -> Result<Option<(M, usize)>, CodecError> {
    let Some(head) = buf.first_chunk::<HEADER_LEN>() else {
        return Ok(None);
    };
    let len = payload_len(*head, max_frame_len)?;
    let Some(payload) = buf.get(HEADER_LEN..HEADER_LEN + len) else {
        return Ok(None);
    };
    Ok(Some((decode_payload(payload)?, HEADER_LEN + len)))
}

/// Decodes one message from a frame's payload (the bytes after the length prefix), which must
/// hold exactly one message.
///
/// # Errors
/// [`CodecError::Malformed`], [`CodecError::TrailingBytes`], or [`CodecError::FrameTooLarge`]
/// for a payload over [`MAX_FRAME_LEN_CAP`].
pub fn decode_payload<M: WireMessage>(payload: &[u8]) -> Result<M, CodecError> {
    decode_value(payload)
}

/// Encodes any serde value as this protocol encodes a message's payload (bincode's standard
/// configuration, no length prefix): for what the nodes of one cluster send each other
/// (`chat_hub::CommittedBatch`), so that only this crate names bincode.
///
/// # Errors
/// [`CodecError::Malformed`] if serde refuses the value.
pub fn encode_value<T: Serialize>(value: &T) -> Result<Vec<u8>, CodecError> {
    bincode::serde::encode_to_vec(value, config()).map_err(|e| CodecError::Malformed(e.to_string()))
}

/// Decodes a value [`encode_value`] made, under the same memory bound as
/// [`decode_payload`]: never claims more than 32 bytes of memory per byte of input.
///
/// # Errors
/// As [`decode_payload`].
pub fn decode_value<T: DeserializeOwned>(payload: &[u8]) -> Result<T, CodecError> {
    // bincode's limit is a const generic, so pick the smallest step that fits this payload.
    // It bounds what the decoder may claim *in memory* (a vector claims `len * size_of::<T>()`
    // up front), which for these types is at most ~20 times the bytes on the wire.
    macro_rules! decode_within {
        ($($limit:expr),*) => {
            $(
                if payload.len().saturating_mul(DECODE_EXPANSION) <= $limit {
                    let decoded = bincode::serde::decode_from_slice(
                        payload,
                        config().with_limit::<{ $limit }>(),
                    );
                    return finish(decoded, payload.len());
                }
            )*
        };
    }
    decode_within!(
        1 << 13,
        1 << 15,
        1 << 17,
        1 << 19,
        1 << 21,
        1 << 23,
        1 << 25,
        1 << 27,
        1 << 29
    );
    Err(CodecError::FrameTooLarge {
        len: payload.len(),
        max: MAX_FRAME_LEN_CAP,
    })
}

/// How many bytes of memory decoding may claim per payload byte: enough for any valid message
/// (the widest ratio, a `Vec<UserStatus>`, is 56 bytes in memory per 3 on the wire).
const DECODE_EXPANSION: usize = 32;

fn finish<M>(
    decoded: Result<(M, usize), bincode::error::DecodeError>,
    len: usize,
) -> Result<M, CodecError> {
    match decoded {
        Ok((msg, used)) if used == len => Ok(msg),
        Ok((_, used)) => Err(CodecError::TrailingBytes(len - used)),
        Err(e) => Err(CodecError::Malformed(e.to_string())),
    }
}

/// bincode's standard configuration: little-endian, variable-length integers.
fn config() -> bincode::config::Configuration {
    bincode::config::standard()
}

/// Validates a length prefix.
fn payload_len(head: [u8; HEADER_LEN], max_frame_len: usize) -> Result<usize, CodecError> {
    let len = u32::from_be_bytes(head) as usize;
    match len {
        0 => Err(CodecError::EmptyFrame),
        len if len > max_frame_len => Err(CodecError::FrameTooLarge {
            len,
            max: max_frame_len,
        }),
        len => Ok(len),
    }
}

/// A tokio-util codec that decodes `In` messages and encodes `Out` messages (and pre-encoded
/// [`EncodedFrame`]s, written verbatim).
///
/// Use [`ServerCodec`] on the server side of a connection and [`ClientCodec`] on the client side.
#[derive(Debug)]
pub struct ChatCodec<In, Out> {
    /// At most [`MAX_FRAME_LEN_CAP`]; both fields are `u32`, as the length prefix is (every
    /// server connection holds a codec).
    max_frame_len: u32,
    /// The payload length of the frame being received, once its head has been read.
    pending: Option<u32>,
    _messages: PhantomData<fn(Out) -> In>,
}

/// The server's codec: decodes [`ClientMessage`]s, encodes [`ServerMessage`]s.
pub type ServerCodec = ChatCodec<ClientMessage, ServerMessage>;

/// The client's codec: decodes [`ServerMessage`]s, encodes [`ClientMessage`]s.
pub type ClientCodec = ChatCodec<ServerMessage, ClientMessage>;

impl<In, Out> ChatCodec<In, Out> {
    /// A codec with the [`DEFAULT_MAX_FRAME_LEN`].
    pub fn new() -> Self {
        Self::with_max_frame_len(DEFAULT_MAX_FRAME_LEN)
    }

    /// A codec with the given frame limit, in both directions.
    ///
    /// # Panics
    /// If `max_frame_len` is zero or over [`MAX_FRAME_LEN_CAP`] (a configuration error).
    pub fn with_max_frame_len(max_frame_len: usize) -> Self {
        assert!(
            (1..=MAX_FRAME_LEN_CAP).contains(&max_frame_len),
            "frame limit must be within 1..={MAX_FRAME_LEN_CAP}"
        );
        Self {
            max_frame_len: max_frame_len as u32,
            pending: None,
            _messages: PhantomData,
        }
    }

    /// The frame limit in force.
    pub fn max_frame_len(&self) -> usize {
        self.max_frame_len as usize
    }

    /// Whether a frame's head has been decoded and its payload not yet: the codec is in the
    /// middle of a frame even if its buffer is empty.
    pub fn is_mid_frame(&self) -> bool {
        self.pending.is_some()
    }
}

impl<In, Out> Default for ChatCodec<In, Out> {
    fn default() -> Self {
        Self::new()
    }
}

impl<In: WireMessage, Out> Decoder for ChatCodec<In, Out> {
    type Item = In;
    type Error = CodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<In>, CodecError> {
        let len = match self.pending {
            Some(len) => len as usize,
            None => {
                let Some(head) = src.first_chunk::<HEADER_LEN>() else {
                    return Ok(None);
                };
                let len = payload_len(*head, self.max_frame_len())?;
                src.advance(HEADER_LEN);
                // A four-byte prefix's value.
                self.pending = Some(len as u32);
                len
            }
        };
        if src.len() < len {
            src.reserve(len - src.len());
            return Ok(None);
        }
        self.pending = None;
        let payload = src.split_to(len);
        decode_payload(&payload).map(Some)
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<In>, CodecError> {
        match self.decode(src)? {
            Some(msg) => Ok(Some(msg)),
            None if src.is_empty() && self.pending.is_none() => Ok(None),
            None => Err(CodecError::Truncated(
                src.len() + self.pending.map_or(0, |_| HEADER_LEN),
            )),
        }
    }
}

impl<In, Out: WireMessage> Encoder<Out> for ChatCodec<In, Out> {
    type Error = CodecError;

    fn encode(&mut self, msg: Out, dst: &mut BytesMut) -> Result<(), CodecError> {
        encode_into(&msg, dst, self.max_frame_len())
    }
}

impl<In, Out> Encoder<EncodedFrame> for ChatCodec<In, Out> {
    type Error = CodecError;

    fn encode(&mut self, frame: EncodedFrame, dst: &mut BytesMut) -> Result<(), CodecError> {
        dst.extend_from_slice(frame.as_bytes());
        Ok(())
    }
}
