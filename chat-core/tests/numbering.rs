//! Several writers on one PostgreSQL database (several nodes): message ids are numbered at
//! commit under one lock, so the ids a reader sees are always every id up to the highest — no
//! message is ever committed later below one already visible (and perhaps acknowledged). With
//! ids taken before commit, a slower writer would commit a lower id after a faster one's
//! higher id was seen. Needs `CHAT_TEST_POSTGRES` (skipped with a note otherwise; a failure
//! under `CI=true`).

use std::time::Duration;

use chat_core::{
    ClientMsgId, ConvId, ConvKind, DeviceId, Location, MessageKind, PgStore, Storage,
    StoredMessage, UserId, Write, UNNUMBERED,
};
use chat_testkit::TestDb;

const ROOM: ConvId = ConvId(1);
/// Writers, and batches each commits.
const WRITERS: u64 = 3;
const BATCHES: u64 = 60;
/// Persists per batch (a group commit), each one message.
const PER_BATCH: u64 = 20;

async fn store(url: &str) -> PgStore {
    PgStore::connect(url).await.expect("connects")
}

fn message(writer: u64, n: u64) -> Vec<Write> {
    vec![Write::InsertMessage(StoredMessage {
        id: UNNUMBERED,
        conv: ROOM,
        sender: UserId(writer),
        device: DeviceId(writer),
        client_msg_id: ClientMsgId(n),
        sent_at: n,
        text: format!("from writer {writer}: {n}"),
        kind: MessageKind::Message,
    })]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_of_several_writers_are_visible_in_commit_order() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let Location::Postgres(url) = db.location() else {
        unreachable!("a PostgreSQL test database has a URL");
    };
    let url = url.clone();
    let setup = store(&url).await;
    let mut writes: Vec<Write> = (1..=WRITERS)
        .map(|w| Write::CreateUser {
            id: UserId(w),
            name: format!("writer{w}"),
            password_hash: String::new(),
            created_at: 0,
        })
        .collect();
    writes.push(Write::CreateConv {
        id: ROOM,
        kind: ConvKind::Room {
            name: "general".into(),
            invite_only: false,
        },
        created_at: 0,
    });
    setup.apply(&[writes]).await.expect("set-up applies");

    let writers: Vec<_> = (1..=WRITERS)
        .map(|w| {
            let url = url.clone();
            tokio::spawn(async move {
                // A store (pool) of its own: another node.
                let s = store(&url).await;
                let mut positions = Vec::new();
                for b in 0..BATCHES {
                    let batch: Vec<Vec<Write>> = (0..PER_BATCH)
                        .map(|i| message(w, b * PER_BATCH + i + 1))
                        .collect();
                    let committed = s.apply(&batch).await.expect("applies");
                    // Within a batch, each persist's message is numbered after the last.
                    for pair in committed.windows(2) {
                        assert_eq!(pair[1].position.0, pair[0].position.0 + 1);
                    }
                    positions.extend(committed.iter().map(|c| c.position.0 + 1));
                }
                positions
            })
        })
        .collect();

    // Meanwhile a reader: whatever it sees is every id from 1 to the highest, never a hole
    // that a slower writer fills later.
    let reader = tokio::spawn({
        let url = url.clone();
        async move {
            let pool = sqlx::PgPool::connect(&url).await.expect("reader connects");
            let mut looks = 0u32;
            loop {
                let (max, count): (Option<i64>, i64) =
                    sqlx::query_as("SELECT max(id), count(*) FROM messages")
                        .fetch_one(&pool)
                        .await
                        .expect("reads");
                let max = max.unwrap_or(0);
                assert_eq!(count, max, "ids visible with a hole below the highest");
                looks += 1;
                let expected = i64::try_from(WRITERS * BATCHES * PER_BATCH).expect("fits");
                if max == expected {
                    return looks;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    });

    let mut ids: Vec<u64> = Vec::new();
    for writer in writers {
        ids.extend(writer.await.expect("writer ends"));
    }
    let looks = tokio::time::timeout(Duration::from_secs(60), reader)
        .await
        .expect("the reader sees every message")
        .expect("reader ends");
    assert!(looks > 1, "the reader looked while writers wrote");
    ids.sort_unstable();
    let every: Vec<u64> = (1..=WRITERS * BATCHES * PER_BATCH).collect();
    assert_eq!(ids, every, "each id given once, none skipped");
}
