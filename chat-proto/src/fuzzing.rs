//! Fuzz target bodies, shared by the cargo-fuzz binaries in `fuzz/` and by the test that replays
//! the committed corpus, so CI exercises exactly what the fuzzer runs.
//!
//! Each function asserts properties, not just the absence of panics.

use arbitrary::{Arbitrary, Unstructured};
use bytes::BytesMut;
use tokio_util::codec::Decoder;

use crate::{
    decode_frame, encode, ChatCodec, ClientMessage, CodecError, ServerMessage, WireMessage,
    DEFAULT_MAX_FRAME_LEN, HEADER_LEN, MAX_FRAME_LEN_CAP,
};

/// Feeds arbitrary bytes to the decoder in chunks whose sizes the input chooses.
///
/// Input layout: byte 0 picks the direction and frame limit; byte 1 is the number `n` (0..16)
/// of chunk-size bytes that follow; the rest is the stream.
///
/// Properties: no panic; no decoded frame is over the limit; every decoded message re-encodes
/// and decodes to itself; and splitting the stream differently (chunks) never changes the
/// frames decoded nor whether the stream fails.
pub fn decode_frames(data: &[u8]) {
    let [control, n, rest @ ..] = data else {
        return;
    };
    let n = usize::from(n % 16).min(rest.len());
    let (sizes, stream) = rest.split_at(n);
    let max = [64, 1024, DEFAULT_MAX_FRAME_LEN][usize::from(control % 3)];
    if control & 0x80 == 0 {
        check_stream::<ClientMessage>(stream, sizes, max);
    } else {
        check_stream::<ServerMessage>(stream, sizes, max);
    }
}

/// Encodes an arbitrary message and decodes it again: it must come back equal.
pub fn roundtrip(data: &[u8]) {
    let mut input = Unstructured::new(data);
    if let Ok(msg) = ClientMessage::arbitrary(&mut input) {
        assert_roundtrip(&msg);
    }
    if let Ok(msg) = ServerMessage::arbitrary(&mut input) {
        assert_roundtrip(&msg);
    }
}

fn assert_roundtrip<M: WireMessage + PartialEq + std::fmt::Debug>(msg: &M) {
    let frame = encode(msg, MAX_FRAME_LEN_CAP).expect("an arbitrary message fits the cap");
    let (decoded, used) = decode_frame::<M>(frame.as_bytes(), MAX_FRAME_LEN_CAP)
        .expect("own encoding decodes")
        .expect("whole frame");
    assert_eq!(used, frame.len());
    assert_eq!(&decoded, msg);
}

/// What decoding a whole stream produced: the frames, then whether it ended in an error.
type Outcome<M> = (Vec<M>, bool);

fn check_stream<M: WireMessage + PartialEq + std::fmt::Debug>(
    stream: &[u8],
    sizes: &[u8],
    max: usize,
) {
    let whole = decode_in_chunks::<M>(stream, &[], max);
    let chunked = decode_in_chunks::<M>(stream, sizes, max);
    assert_eq!(whole, chunked, "chunking changed the outcome");
    for msg in &whole.0 {
        let frame = encode(msg, MAX_FRAME_LEN_CAP).expect("a decoded message re-encodes");
        assert!(
            frame.len() <= HEADER_LEN + max,
            "decoded a frame over the limit"
        );
        assert_roundtrip(msg);
    }
}

/// Decodes `stream` fed in chunks of the given sizes (cycled; the whole stream at once if
/// `sizes` is empty), until the end or the first error.
fn decode_in_chunks<M: WireMessage>(stream: &[u8], sizes: &[u8], max: usize) -> Outcome<M> {
    let mut codec = ChatCodec::<M, M>::with_max_frame_len(max);
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    let mut rest = stream;
    let mut size = sizes.iter().map(|&s| usize::from(s.max(1))).cycle();
    while !rest.is_empty() {
        let (chunk, tail) = rest.split_at(size.next().unwrap_or(rest.len()).min(rest.len()));
        rest = tail;
        buf.extend_from_slice(chunk);
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(msg)) => frames.push(msg),
                Ok(None) => break,
                Err(e) => return (frames, failed(e)),
            }
        }
    }
    match codec.decode_eof(&mut buf) {
        Ok(Some(msg)) => {
            frames.push(msg);
            (frames, false)
        }
        Ok(None) => (frames, false),
        Err(e) => (frames, failed(e)),
    }
}

fn failed(e: CodecError) -> bool {
    assert!(!matches!(e, CodecError::Io(_)), "no I/O happens here");
    true
}
