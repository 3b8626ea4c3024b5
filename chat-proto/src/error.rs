//! [`CodecError`]: every way a byte stream can fail to be a sequence of valid frames.

use std::io;

/// Why a frame could not be encoded or decoded.
///
/// Any decode error means the stream is corrupt: the connection should be closed (after an
/// error frame, where possible). "Not enough bytes yet" is never an error: decoders return
/// `Ok(None)` for it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// A length prefix (or an outgoing message) is over the frame limit; detected before any
    /// buffer is reserved for it.
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    FrameTooLarge {
        /// The announced (or encoded) payload length.
        len: usize,
        /// The limit in force.
        max: usize,
    },
    /// A length prefix of zero: no message is empty.
    #[error("empty frame")]
    EmptyFrame,
    /// The payload is not a valid message (unknown variant, invalid UTF-8, truncated, ...).
    #[error("malformed payload: {0}")]
    Malformed(String),
    /// The payload holds a valid message followed by extra bytes.
    #[error("{0} trailing bytes after the message")]
    TrailingBytes(usize),
    /// The stream ended in the middle of a frame.
    #[error("stream ended inside a frame ({0} bytes buffered)")]
    Truncated(usize),
    /// The transport failed.
    #[error(transparent)]
    Io(#[from] io::Error),
}
