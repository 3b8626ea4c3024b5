//! The chat wire protocol.
//!
//! Every frame is a 4-byte big-endian payload length followed by exactly one message encoded
//! with bincode 2 (serde, standard configuration):
//!
//! ```text
//! +----------------------+--------------------------------------------+
//! | length N: u32 BE (4) | payload: one message, bincode standard (N) |
//! +----------------------+--------------------------------------------+
//! ```
//!
//! Clients send [`ClientMessage`]s and servers send [`ServerMessage`]s. `docs/PROTOCOL.md` in the
//! repository specifies the encoding byte by byte, the handshake, request/reply correlation and
//! delivery semantics.
//!
//! # Layout
//! - [`message`]: the message catalogue (the only types of the system that derive `Serialize`).
//! - [`codec`]: [`encode`]/[`decode_frame`] over plain byte slices, and [`ChatCodec`] for
//!   `tokio_util::codec::Framed`.
//! - [`CodecError`]: every way bytes fail to be frames.
//! - `fuzzing` (feature `arbitrary`): the fuzz targets' bodies, shared with the corpus replay test.
//!
//! # Example
//! ```
//! use chat_proto::{decode_frame, encode, ClientMessage, DEFAULT_MAX_FRAME_LEN};
//!
//! let frame = encode(&ClientMessage::Ping { nonce: 7 }, DEFAULT_MAX_FRAME_LEN)?;
//! assert_eq!(frame.as_bytes(), [0, 0, 0, 2, 4, 7]);
//! let (msg, used) = decode_frame::<ClientMessage>(frame.as_bytes(), DEFAULT_MAX_FRAME_LEN)?
//!     .expect("a whole frame");
//! assert_eq!((msg, used), (ClientMessage::Ping { nonce: 7 }, 6));
//! # Ok::<(), chat_proto::CodecError>(())
//! ```

pub mod codec;
mod error;
#[cfg(feature = "arbitrary")]
pub mod fuzzing;
pub mod message;

pub use codec::{
    decode_frame, decode_payload, decode_value, encode, encode_into, encode_value, ChatCodec,
    ClientCodec, EncodedFrame, ServerCodec, WireMessage, DEFAULT_MAX_FRAME_LEN, HEADER_LEN,
    MAX_FRAME_LEN_CAP,
};
pub use error::CodecError;
pub use message::*;
