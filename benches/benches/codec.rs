//! Codec throughput: encoding and decoding a delivered chat message, by text size.
// `criterion_main!` generates an undocumented `main`.
#![allow(missing_docs)]

use bytes::BytesMut;
use chat_proto::{
    encode, ChatMessage, ClientCodec, ClientMsgId, MessageId, ServerMessage, Target,
    DEFAULT_MAX_FRAME_LEN,
};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use tokio_util::codec::Decoder;

/// Frames decoded per iteration of the decode benchmark.
const BATCH: usize = 64;

fn message(text_len: usize) -> ServerMessage {
    ServerMessage::Message(ChatMessage {
        id: MessageId(1_234_567),
        from: "alice".into(),
        target: Target::Room("general".into()),
        sent_at: 1_763_700_000_000,
        client_msg_id: ClientMsgId(0x9e37_79b9_7f4a_7c15),
        text: "x".repeat(text_len),
    })
}

fn codec(c: &mut Criterion) {
    for text_len in [32, 256, 4096] {
        let msg = message(text_len);
        let frame = encode(&msg, DEFAULT_MAX_FRAME_LEN).expect("fits");

        let mut group = c.benchmark_group("encode");
        group.throughput(Throughput::Bytes(frame.len() as u64));
        group.bench_with_input(BenchmarkId::from_parameter(text_len), &msg, |b, msg| {
            b.iter(|| encode(msg, DEFAULT_MAX_FRAME_LEN).expect("fits"))
        });
        group.finish();

        let stream: Vec<u8> = frame.as_bytes().repeat(BATCH);
        let mut group = c.benchmark_group("decode");
        group.throughput(Throughput::Bytes(stream.len() as u64));
        group.bench_with_input(
            BenchmarkId::from_parameter(text_len),
            &stream,
            |b, stream| {
                let mut codec = ClientCodec::new();
                b.iter(|| {
                    let mut buf = BytesMut::from(&stream[..]);
                    let mut frames = 0;
                    while let Some(msg) = codec.decode(&mut buf).expect("valid") {
                        std::hint::black_box(msg);
                        frames += 1;
                    }
                    assert_eq!(frames, BATCH);
                })
            },
        );
        group.finish();
    }
}

criterion_group!(benches, codec);
criterion_main!(benches);
