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

/// Two nodes register one name, or create one room or direct conversation, at the same
/// moment: the unique index lets the first commit stand. The second node's registration is dropped whole (and
/// reported), its room adopted: neither stops its writer.
#[tokio::test]
async fn names_taken_on_two_nodes_at_once_go_to_the_first() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let Location::Postgres(url) = db.location() else {
        unreachable!("a PostgreSQL test database has a URL");
    };
    let (a, b) = (store(url).await, store(url).await);
    let (carol_a, carol_b) = (UserId(1), UserId(1 << 32));
    let (room_a, room_b) = (ConvId(1), ConvId(1 << 32));
    let register = |id: UserId, name: &str| Write::CreateUser {
        id,
        name: name.into(),
        password_hash: String::new(),
        created_at: 0,
    };
    let room = |id: ConvId| Write::CreateConv {
        id,
        kind: ConvKind::Room {
            name: "rust".into(),
            invite_only: false,
        },
        created_at: 0,
    };
    let join = |conv: ConvId, user: UserId| Write::AddMember {
        conv,
        user,
        since: UNNUMBERED,
    };
    a.apply(&[vec![
        register(carol_a, "carol"),
        room(room_a),
        join(room_a, carol_a),
    ]])
    .await
    .expect("node a commits first");
    let device = Write::SetDevice {
        id: DeviceId(1 << 32),
        user: carol_b,
        name: "phone".into(),
        cursor: chat_core::MessageId(0),
        last_seen: 0,
    };
    let dave = UserId((1 << 32) + 1);
    let committed = b
        .apply(&[
            vec![register(carol_b, "Carol")],
            vec![device],
            vec![register(dave, "dave"), room(room_b), join(room_b, dave)],
        ])
        .await
        .expect("node b's writer goes on");
    assert_eq!(committed[0].taken, Some(carol_b), "carol is node a's");
    assert_eq!(committed[2].taken, None);
    assert_eq!(
        committed[2].adopted,
        Some((room_b, room_a)),
        "#rust is node a's"
    );
    let snapshot = b.snapshot(0).await.expect("snapshot");
    let users: Vec<UserId> = snapshot.users.iter().map(|u| u.id).collect();
    assert_eq!(users, [carol_a, dave]);
    assert!(
        snapshot.devices.is_empty(),
        "nothing of the lost registration"
    );
    let convs: Vec<ConvId> = snapshot.convs.iter().map(|c| c.id).collect();
    assert_eq!(convs, [room_a]);
    let mut members: Vec<(ConvId, UserId)> =
        snapshot.members.iter().map(|m| (m.conv, m.user)).collect();
    members.sort();
    assert_eq!(members, [(room_a, carol_a), (room_a, dave)]);
    // Their direct conversation, opened from both nodes at once: one conversation.
    let direct = |id: ConvId| Write::CreateConv {
        id,
        kind: ConvKind::Direct {
            a: carol_a,
            b: dave,
        },
        created_at: 0,
    };
    let (dm_a, dm_b) = (ConvId(2), ConvId((1 << 32) + 1));
    a.apply(&[vec![direct(dm_a), join(dm_a, carol_a), join(dm_a, dave)]])
        .await
        .expect("node a opens it first");
    let committed = b
        .apply(&[vec![direct(dm_b), join(dm_b, carol_a), join(dm_b, dave)]])
        .await
        .expect("node b's writer goes on");
    assert_eq!(committed[0].adopted, Some((dm_b, dm_a)));
    let snapshot = b.snapshot(0).await.expect("snapshot");
    let convs: Vec<ConvId> = snapshot.convs.iter().map(|c| c.id).collect();
    assert_eq!(convs, [room_a, dm_a]);
}
