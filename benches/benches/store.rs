//! The SQLite write path alone: direct messages stored through [`Store::apply`] on a real file
//! (`Durability::Process`: no fsync per commit), in commits of one message (a quiet server)
//! and of 64 (a busy one's group commit). Per message: the writer thread's statements, the
//! search index, the WAL, and the hand-offs to and from the writer.
// `criterion_main!` generates an undocumented `main`.
#![allow(missing_docs)]

use chat_core::{
    ClientMsgId, ConvId, ConvKind, DeviceId, Durability, MessageId, MessageKind, Storage, Store,
    StoredMessage, UserId, Write, UNNUMBERED,
};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use tokio::runtime::Runtime;

/// Two users in a direct conversation.
fn setup() -> Vec<Write> {
    let user = |id, name: &str| Write::CreateUser {
        id: UserId(id),
        name: name.into(),
        password_hash: "$argon2id$bench".into(),
        created_at: 1,
    };
    let member = |user| Write::AddMember {
        conv: ConvId(1),
        user: UserId(user),
        since: MessageId(0),
    };
    vec![
        user(1, "alice"),
        user(2, "bob"),
        Write::CreateConv {
            id: ConvId(1),
            kind: ConvKind::Direct {
                a: UserId(1),
                b: UserId(2),
            },
            created_at: 1,
        },
        member(1),
        member(2),
    ]
}

fn store(c: &mut Criterion) {
    let runtime = Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let store = runtime.block_on(async {
        let store = Store::open_with(dir.path().join("bench.db"), Durability::Process)
            .await
            .expect("opens");
        store.apply(&[setup()]).await.expect("set up");
        store
    });
    let mut client_id = 0u64;
    let mut group = c.benchmark_group("store_dm");
    for per_commit in [1u64, 64] {
        group.throughput(Throughput::Elements(per_commit));
        group.bench_function(BenchmarkId::new("messages_per_commit", per_commit), |b| {
            b.iter(|| {
                let persists: Vec<Vec<Write>> = (0..per_commit)
                    .map(|_| {
                        client_id += 1;
                        vec![Write::InsertMessage(StoredMessage {
                            id: UNNUMBERED,
                            conv: ConvId(1),
                            sender: UserId(1 + client_id % 2),
                            device: DeviceId(1),
                            client_msg_id: ClientMsgId(client_id),
                            sent_at: client_id,
                            text: format!("message {client_id}: hello there, 64 bytes or so"),
                            kind: MessageKind::Message,
                        })]
                    })
                    .collect();
                runtime.block_on(store.apply(&persists)).expect("stored")
            })
        });
    }
    group.finish();
    runtime.block_on(store.close());
}

criterion_group!(benches, store);
criterion_main!(benches);
