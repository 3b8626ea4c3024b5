//! Ids of users, conversations and devices on one PostgreSQL database that several nodes
//! share: every snapshot (every start of a node) takes a block of its own from `id_blocks`,
//! and a hub assigns only inside its block, so two nodes never hand out the same id. Needs
//! `CHAT_TEST_POSTGRES` (skipped with a note otherwise; a failure under `CI=true`).

use std::collections::HashMap;

use chat_client::Session;
use chat_core::{
    ConvKind, Engine, IdBlock, Location, PgStore, Snapshot, Storage, StoreError, UserId,
};
use chat_proto::{Reply, Request, Target};
use chat_testkit::{config, logged_in_embedded, TestDb, PASSWORD};

fn url(db: &TestDb) -> String {
    let Location::Postgres(url) = db.location() else {
        unreachable!("a PostgreSQL test database has a URL");
    };
    url.clone()
}

async fn store(url: &str) -> PgStore {
    PgStore::connect(url).await.expect("connects")
}

#[tokio::test]
async fn every_snapshot_takes_a_block_of_its_own() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let url = url(&db);
    let (a, b) = (store(&url).await, store(&url).await);
    let mut blocks = Vec::new();
    // Two nodes, each started twice (a restart takes a new block too).
    for node in [&a, &b, &a, &b] {
        blocks.push(node.snapshot(0).await.expect("snapshot").ids);
    }
    for (i, block) in blocks.iter().enumerate() {
        assert_eq!(block.last - block.first + 1, IdBlock::SIZE, "{block:?}");
        assert!(block.first >= IdBlock::SIZE, "block 0 is never handed out");
        assert!(block.last <= IdBlock::MAX_ID);
        for other in &blocks[i + 1..] {
            assert!(
                block.last < other.first || other.last < block.first,
                "{block:?} and {other:?} overlap"
            );
        }
    }
}

#[tokio::test]
async fn no_block_is_handed_out_past_2_to_the_53() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let url = url(&db);
    let node = store(&url).await;
    let pool = sqlx::PgPool::connect(&url).await.expect("connects");
    let last = (1_i64 << 21) - 1;
    sqlx::query("SELECT setval('id_blocks', $1, false)")
        .bind(last)
        .execute(&pool)
        .await
        .expect("sets");
    let ids = node.snapshot(0).await.expect("the last block").ids;
    assert_eq!(ids.last, IdBlock::MAX_ID);
    match node.snapshot(0).await {
        Err(StoreError::IdBlocksUsedUp(n)) => assert_eq!(n, 1 << 21),
        other => panic!("expected IdBlocksUsedUp, got {other:?}"),
    }
    pool.close().await;
}

/// What the database holds, by name: users, rooms, direct conversations (by their users'
/// names) and devices (by user and device name).
struct Ids {
    users: HashMap<String, u64>,
    rooms: HashMap<String, u64>,
    directs: HashMap<(String, String), u64>,
    devices: HashMap<(String, String), u64>,
}

fn ids(snapshot: Snapshot) -> Ids {
    let names: HashMap<UserId, String> = snapshot
        .users
        .iter()
        .map(|u| (u.id, u.name.clone()))
        .collect();
    let mut ids = Ids {
        users: snapshot
            .users
            .iter()
            .map(|u| (u.name.clone(), u.id.0))
            .collect(),
        rooms: HashMap::new(),
        directs: HashMap::new(),
        devices: HashMap::new(),
    };
    for conv in snapshot.convs {
        match conv.kind {
            ConvKind::Room { name, .. } => ids.rooms.insert(name, conv.id.0),
            ConvKind::Direct { a, b } => ids
                .directs
                .insert((names[&a].clone(), names[&b].clone()), conv.id.0),
        };
    }
    for device in snapshot.devices {
        ids.devices
            .insert((names[&device.user].clone(), device.name), device.id.0);
    }
    ids
}

/// On `node`, with names starting `prefix`: two users registered, a room created, a direct
/// conversation opened, a second device logged in.
async fn create_everything(node: &Engine, prefix: &str) {
    let (one, two) = (format!("{prefix}1"), format!("{prefix}2"));
    let mut first = logged_in_embedded(node, &one, true).await;
    logged_in_embedded(node, &two, true).await;
    let joined = first
        .request(Request::Join {
            room: format!("{prefix}-room"),
        })
        .await
        .expect("joins");
    assert!(matches!(joined, Reply::Room(_)), "{joined:?}");
    first
        .send_text(Target::User(two.clone()), 1, "hi")
        .await
        .expect("stored");
    let mut phone = Session::embedded(node, "test").await.expect("connects");
    phone
        .login(&one, PASSWORD, &format!("{one}-phone"))
        .await
        .expect("logs in on a second device");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_one_database_assign_no_id_in_common() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    // Node a starts first and creates the default room; b starts once it is stored (two
    // nodes creating it at once is a conflict, another matter).
    let a = Engine::start(db.open().await, config())
        .await
        .expect("node a starts");
    create_everything(&a, "a").await;
    let b = Engine::start(db.open().await, config())
        .await
        .expect("node b starts");
    create_everything(&b, "b").await;
    // Both nodes again, interleaved: each assigns on from its own block.
    let (mut late_a, mut late_b) = (
        logged_in_embedded(&a, "a3", true).await,
        logged_in_embedded(&b, "b3", true).await,
    );
    for (session, room) in [(&mut late_a, "a-late"), (&mut late_b, "b-late")] {
        let joined = session
            .request(Request::Join { room: room.into() })
            .await
            .expect("joins");
        assert!(matches!(joined, Reply::Room(_)), "{joined:?}");
    }
    a.shut_down().await.expect("clean shutdown");
    b.shut_down().await.expect("clean shutdown");

    let ids = ids(store(&url(&db)).await.snapshot(0).await.expect("snapshot"));
    let block_of = |id: u64| IdBlock::numbered(IdBlock::number_of(id)).expect("below 2^53");
    let (block_a, block_b) = (block_of(ids.users["a1"]), block_of(ids.users["b1"]));
    assert_ne!(block_a, block_b);
    let node = |name: &str| {
        if name.starts_with('a') || name == "general" {
            block_a
        } else {
            block_b
        }
    };
    for (name, id) in &ids.users {
        assert!(node(name).contains(*id), "user {name}: {id}");
    }
    assert_eq!(ids.users.len(), 6);
    for (name, id) in &ids.rooms {
        assert!(node(name).contains(*id), "room {name}: {id}");
    }
    assert_eq!(ids.rooms.len(), 5, "{:?}", ids.rooms);
    for ((one, two), id) in &ids.directs {
        assert!(node(one).contains(*id), "direct {one} {two}: {id}");
    }
    assert_eq!(ids.directs.len(), 2);
    for ((user, device), id) in &ids.devices {
        assert!(node(user).contains(*id), "device {device} of {user}: {id}");
    }
    assert_eq!(ids.devices.len(), 8);
    // Each kind counts from the start of the node's block.
    assert_eq!(ids.users["a1"], block_a.first);
    assert_eq!(ids.users["b1"], block_b.first);
    assert_eq!(ids.rooms["general"], block_a.first);
    assert_eq!(ids.rooms["b-room"], block_b.first);
    assert_eq!(
        ids.devices[&("b1".to_owned(), "b1-dev".to_owned())],
        block_b.first
    );
}
