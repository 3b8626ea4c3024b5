//! The decoder against split, coalesced, oversize, empty and garbage input, on a bare `BytesMut`.

use bytes::BytesMut;
use chat_proto::*;
use futures_util::{SinkExt, StreamExt};
use tokio_util::codec::{Decoder, Framed};

fn sample_stream() -> (Vec<ClientMessage>, Vec<u8>) {
    let msgs = vec![
        ClientMessage::Hello(Hello::current("test")),
        ClientMessage::Request {
            id: RequestId(1),
            request: Request::Send {
                target: Target::Room("general".into()),
                client_msg_id: ClientMsgId(u64::MAX),
                text: "héllo ✓".repeat(40),
            },
        },
        ClientMessage::Ack {
            up_to: MessageId(70_000),
        },
        ClientMessage::Ping { nonce: 0 },
    ];
    let mut bytes = BytesMut::new();
    for msg in &msgs {
        encode_into(msg, &mut bytes, DEFAULT_MAX_FRAME_LEN).expect("encodes");
    }
    (msgs, bytes.to_vec())
}

/// Decodes everything `chunks` delivers, fed one chunk at a time.
fn decode_chunks<'a>(chunks: impl IntoIterator<Item = &'a [u8]>) -> Vec<ClientMessage> {
    let mut codec = ServerCodec::new();
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        while let Some(msg) = codec.decode(&mut buf).expect("valid stream") {
            out.push(msg);
        }
    }
    assert!(codec.decode_eof(&mut buf).expect("clean end").is_none());
    out
}

#[test]
fn many_frames_in_one_buffer() {
    let (msgs, bytes) = sample_stream();
    assert_eq!(decode_chunks([&bytes[..]]), msgs);
}

#[test]
fn split_at_every_byte_boundary() {
    let (msgs, bytes) = sample_stream();
    for at in 0..=bytes.len() {
        let (a, b) = bytes.split_at(at);
        assert_eq!(decode_chunks([a, b]), msgs, "split at {at}");
    }
}

#[test]
fn one_byte_at_a_time() {
    let (msgs, bytes) = sample_stream();
    assert_eq!(decode_chunks(bytes.chunks(1)), msgs);
}

#[test]
fn decode_frame_needs_the_whole_frame() {
    let (msgs, bytes) = sample_stream();
    let (first, used) = decode_frame::<ClientMessage>(&bytes, DEFAULT_MAX_FRAME_LEN)
        .expect("valid")
        .expect("whole");
    assert_eq!(first, msgs[0]);
    for cut in 0..used {
        assert!(
            decode_frame::<ClientMessage>(&bytes[..cut], DEFAULT_MAX_FRAME_LEN)
                .expect("valid prefix")
                .is_none()
        );
    }
}

#[test]
fn oversize_length_is_rejected_before_reserving() {
    let mut codec = ServerCodec::new();
    let mut buf = BytesMut::with_capacity(8);
    buf.extend_from_slice(&(DEFAULT_MAX_FRAME_LEN as u32 + 1).to_be_bytes());
    let capacity = buf.capacity();
    match codec.decode(&mut buf) {
        Err(CodecError::FrameTooLarge { len, max }) => {
            assert_eq!(
                (len, max),
                (DEFAULT_MAX_FRAME_LEN + 1, DEFAULT_MAX_FRAME_LEN)
            );
        }
        other => panic!("expected FrameTooLarge, got {other:?}"),
    }
    assert_eq!(
        buf.capacity(),
        capacity,
        "nothing reserved for a rejected frame"
    );

    let huge = u32::MAX.to_be_bytes();
    assert!(matches!(
        decode_frame::<ClientMessage>(&huge, DEFAULT_MAX_FRAME_LEN),
        Err(CodecError::FrameTooLarge { .. })
    ));
}

#[test]
fn configured_limit_applies() {
    let mut codec = ServerCodec::with_max_frame_len(16);
    let msg = ClientMessage::Hello(Hello::current("a client name that is too long"));
    let mut buf = BytesMut::new();
    encode_into(&msg, &mut buf, DEFAULT_MAX_FRAME_LEN).expect("encodes");
    assert!(matches!(
        codec.decode(&mut buf),
        Err(CodecError::FrameTooLarge { max: 16, .. })
    ));
}

#[test]
fn zero_length_is_an_error() {
    let mut buf = BytesMut::from(&[0u8, 0, 0, 0][..]);
    assert!(matches!(
        ServerCodec::new().decode(&mut buf),
        Err(CodecError::EmptyFrame)
    ));
}

/// Wraps `payload` in a length prefix and decodes it as a client message.
fn decode_payload_frame(payload: &[u8]) -> Result<Option<ClientMessage>, CodecError> {
    let mut buf = BytesMut::new();
    buf.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    buf.extend_from_slice(payload);
    ServerCodec::new().decode(&mut buf)
}

#[test]
fn unknown_variant_is_malformed() {
    assert!(matches!(
        decode_payload_frame(&[0x63]),
        Err(CodecError::Malformed(_))
    ));
}

#[test]
fn invalid_utf8_is_malformed() {
    // Hello { 1, 1, client: 2 bytes that are not UTF-8 }.
    assert!(matches!(
        decode_payload_frame(&[0, 1, 1, 2, 0xff, 0xfe]),
        Err(CodecError::Malformed(_))
    ));
}

#[test]
fn truncated_payload_is_malformed() {
    // Hello { 1, 1, client: claims 5 bytes, has 2 }.
    assert!(matches!(
        decode_payload_frame(&[0, 1, 1, 5, b'a', b'b']),
        Err(CodecError::Malformed(_))
    ));
}

#[test]
fn hostile_inner_length_fails_without_allocating_it() {
    // Hello { 1, 1, client: claims 2^62 bytes }.
    let mut payload = vec![0, 1, 1, 0xfd];
    payload.extend_from_slice(&(1u64 << 62).to_le_bytes());
    assert!(matches!(
        decode_payload_frame(&payload),
        Err(CodecError::Malformed(_))
    ));
}

#[test]
fn trailing_bytes_are_an_error() {
    // Ping { nonce: 7 } followed by one stray byte.
    assert!(matches!(
        decode_payload_frame(&[4, 7, 0]),
        Err(CodecError::TrailingBytes(1))
    ));
}

#[test]
fn eof_inside_a_frame_is_truncated() {
    let mut codec = ServerCodec::new();
    let mut buf = BytesMut::from(&[0u8, 0, 0, 9, 4][..]);
    assert!(codec.decode(&mut buf).expect("incomplete").is_none());
    assert!(matches!(
        codec.decode_eof(&mut buf),
        Err(CodecError::Truncated(5))
    ));

    let mut buf = BytesMut::from(&[0u8, 0][..]);
    assert!(matches!(
        ServerCodec::new().decode_eof(&mut buf),
        Err(CodecError::Truncated(2))
    ));
}

#[test]
fn encoding_over_the_limit_leaves_the_buffer_alone() {
    let mut buf = BytesMut::from(&b"kept"[..]);
    let msg = ClientMessage::Hello(Hello::current("x".repeat(100)));
    assert!(matches!(
        encode_into(&msg, &mut buf, 64),
        Err(CodecError::FrameTooLarge { max: 64, .. })
    ));
    assert_eq!(&buf[..], b"kept");
}

#[tokio::test]
async fn framed_carries_messages_and_pre_encoded_frames() {
    let (client_io, server_io) = tokio::io::duplex(1024);
    let mut client = Framed::new(client_io, ClientCodec::new());
    let mut server = Framed::new(server_io, ServerCodec::new());

    client
        .send(ClientMessage::Ping { nonce: 9 })
        .await
        .expect("send");
    assert_eq!(
        server.next().await.expect("frame").expect("valid"),
        ClientMessage::Ping { nonce: 9 }
    );

    let shared = encode(&ServerMessage::Pong { nonce: 9 }, DEFAULT_MAX_FRAME_LEN).expect("fits");
    server.feed(shared.clone()).await.expect("feed");
    server.feed(shared).await.expect("feed");
    SinkExt::<EncodedFrame>::flush(&mut server)
        .await
        .expect("flush");
    for _ in 0..2 {
        assert_eq!(
            client.next().await.expect("frame").expect("valid"),
            ServerMessage::Pong { nonce: 9 }
        );
    }
}
