//! [`copy_to_postgres`] on a database larger than one page of every table (needs
//! `CHAT_TEST_POSTGRES`; skipped without it, except under `CI=true`): every row arrives, a
//! non-empty target is refused unchanged, and replacing it gives the same rows.

use chat_core::{
    copy_to_postgres, token_hash, AuditRecord, ConvId, ConvKind, CopyError, DeviceId, IdBlock,
    IfNotEmpty, Location, MessageId, MessageKind, ModAction, PgStore, Role, Snapshot, Standing,
    Storage, Store, StoredMessage, UserId, Write,
};
use chat_proto::ClientMsgId;
use chat_testkit::TestDb;

const USERS: u64 = 5_200;
const MESSAGES: u64 = 12_000;

/// A SQLite database with more than 5,000 rows in every table (the copy's page size).
async fn populated(store: &Store) {
    let mut setup = vec![
        Write::CreateConv {
            id: ConvId(1),
            kind: ConvKind::Room {
                name: "general".into(),
                invite_only: false,
            },
            created_at: 1,
        },
        Write::CreateConv {
            id: ConvId(2),
            kind: ConvKind::Direct {
                a: UserId(1),
                b: UserId(2),
            },
            created_at: 2,
        },
    ];
    for i in 1..=USERS {
        let (user, device) = (UserId(i), DeviceId(i));
        setup.extend([
            Write::CreateUser {
                id: user,
                name: format!("user{i}"),
                password_hash: format!("hash{i}"),
                created_at: i,
            },
            Write::AddMember {
                conv: ConvId(1),
                user,
                since: MessageId(i % 7),
            },
            Write::SetDevice {
                id: device,
                user,
                name: format!("device{i}"),
                cursor: MessageId(i % 11),
                last_seen: i,
            },
            Write::CreateToken {
                hash: token_hash(&format!("token{i}")),
                user,
                device,
                expires_at: u64::MAX >> 1,
            },
        ]);
    }
    store.apply(&[setup]).await.expect("set-up applies");
    let messages: Vec<Vec<Write>> = (1..=MESSAGES)
        .map(|i| {
            vec![Write::InsertMessage(StoredMessage {
                id: MessageId(i),
                conv: ConvId(1 + i % 2),
                sender: UserId(1 + i % 2),
                device: DeviceId(1 + i % 2),
                // All 64 bits, as clients choose them.
                client_msg_id: ClientMsgId(u64::MAX - i),
                sent_at: 1_000 + i,
                text: format!("message {i}"),
                kind: MessageKind::Message,
            })]
        })
        .collect();
    store.apply(&messages).await.expect("messages apply");
    // Version 2: standings, an operator, the audit log, a topic, an edit and a deletion.
    let change = |id: u64, kind: MessageKind, text: &str| {
        Write::InsertMessage(StoredMessage {
            id: MessageId(id),
            conv: ConvId(1),
            sender: UserId(1),
            device: DeviceId(1),
            client_msg_id: ClientMsgId(0),
            sent_at: 50_000 + id,
            text: text.into(),
            kind,
        })
    };
    let v2 = vec![
        Write::SetStanding {
            conv: ConvId(1),
            user: UserId(1),
            standing: Standing {
                role: Role::Owner,
                banned: false,
                muted: false,
            },
        },
        Write::SetStanding {
            conv: ConvId(1),
            user: UserId(3),
            standing: Standing {
                role: Role::Member,
                banned: true,
                muted: true,
            },
        },
        Write::SetOperator {
            user: UserId(2),
            operator: true,
        },
        Write::Audit(AuditRecord {
            conv: ConvId(1),
            actor: UserId(1),
            target: UserId(3),
            action: ModAction::Banned,
            reason: "spam".into(),
            at: 60_000,
        }),
        Write::SetTopic {
            conv: ConvId(1),
            topic: "the topic".into(),
        },
        change(
            MESSAGES + 1,
            MessageKind::Edit {
                target: MessageId(2),
            },
            "edited",
        ),
        Write::ChangeMessage {
            target: MessageId(2),
            text: Some("edited".into()),
        },
        change(
            MESSAGES + 2,
            MessageKind::Delete {
                target: MessageId(4),
                redacted: false,
            },
            "",
        ),
        Write::ChangeMessage {
            target: MessageId(4),
            text: None,
        },
        Write::SetReadMarker {
            user: UserId(1),
            conv: ConvId(1),
            up_to: MessageId(9),
        },
        Write::SetReadMarker {
            user: UserId(2),
            conv: ConvId(2),
            up_to: MessageId(10),
        },
    ];
    store.apply(&[v2]).await.expect("version-2 rows apply");
}

#[tokio::test]
async fn every_row_arrives_page_after_page() {
    let Some(target) = TestDb::postgres().await else {
        return;
    };
    let Location::Postgres(url) = target.location() else {
        unreachable!("a PostgreSQL test database has a URL");
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let sqlite = Store::open(dir.path().join("chat.db"))
        .await
        .expect("opens");
    populated(&sqlite).await;
    let pg = PgStore::connect(url).await.expect("connects");

    let copied = copy_to_postgres(&sqlite, &pg, IfNotEmpty::Refuse)
        .await
        .expect("copies");
    let expected = [
        ("users", USERS),
        ("convs", 2),
        ("members", USERS),
        ("devices", USERS),
        ("tokens", USERS),
        ("messages", MESSAGES + 2),
        ("standings", 2),
        ("operators", 1),
        ("audit_log", 1),
        ("read_markers", 2),
    ];
    for (table, rows) in expected {
        assert_eq!(copied.get(table), rows, "{table}");
    }
    let snapshot = sqlite.snapshot(0).await.expect("reads");
    let copy = pg.snapshot(0).await.expect("reads");
    // A node on the copy takes a block above every copied user, conversation and device.
    let stored = (snapshot.users.iter().map(|u| u.id.0))
        .chain(snapshot.convs.iter().map(|c| c.id.0))
        .chain(snapshot.devices.iter().map(|d| d.id.0));
    for id in stored {
        assert!(
            IdBlock::number_of(id) < IdBlock::number_of(copy.ids.first),
            "{id}, {:?}",
            copy.ids
        );
    }
    let copy_ids = copy.ids;
    assert_eq!(
        Snapshot {
            ids: snapshot.ids,
            ..copy
        },
        snapshot
    );
    assert_eq!(
        pg.audit_log(ConvId(1), None, 10).await.expect("reads"),
        sqlite.audit_log(ConvId(1), None, 10).await.expect("reads"),
    );
    assert_eq!(
        pg.message(MessageId(MESSAGES + 2)).await.expect("reads"),
        sqlite
            .message(MessageId(MESSAGES + 2))
            .await
            .expect("reads"),
    );
    // Copied messages are found by their latest text, deleted ones not.
    for words in [&["message", "2"][..], &["edited"], &["message"], &["4"]] {
        let words: Vec<String> = words.iter().map(|w| (*w).to_owned()).collect();
        let found = pg.search(UserId(1), &words, None, 50).await.expect("reads");
        assert_eq!(
            found,
            sqlite
                .search(UserId(1), &words, None, 50)
                .await
                .expect("reads"),
            "{words:?}"
        );
    }
    for conv in [ConvId(1), ConvId(2)] {
        assert_eq!(
            pg.history(conv, None, 10_000).await.expect("reads"),
            sqlite.history(conv, None, 10_000).await.expect("reads"),
        );
    }
    for i in [1, 4_999, 5_000, 5_001, USERS] {
        let hash = token_hash(&format!("token{i}"));
        assert_eq!(
            pg.find_token(hash).await.expect("reads"),
            sqlite.find_token(hash).await.expect("reads"),
        );
        assert_eq!(
            pg.password_hash(UserId(i)).await.expect("reads"),
            Some(format!("hash{i}"))
        );
        let (user, device, after) = (UserId(i), DeviceId(i), MessageId(i % 13));
        assert_eq!(
            pg.backlog(user, device, after, 500).await.expect("reads"),
            sqlite
                .backlog(user, device, after, 500)
                .await
                .expect("reads"),
        );
    }

    // A second copy is refused and changes nothing; replacing gives the same rows.
    let refused = copy_to_postgres(&sqlite, &pg, IfNotEmpty::Refuse).await;
    assert!(
        matches!(&refused, Err(CopyError::NotEmpty(counts)) if *counts == copied),
        "{refused:?}"
    );
    let replaced = copy_to_postgres(&sqlite, &pg, IfNotEmpty::Replace)
        .await
        .expect("copies");
    assert_eq!(replaced, copied);
    let again = pg.snapshot(0).await.expect("reads");
    // A replacing copy never hands out a block again.
    assert!(again.ids.first > copy_ids.last, "{:?}", again.ids);
    assert_eq!(
        Snapshot {
            ids: snapshot.ids,
            ..again
        },
        snapshot
    );
    // The audit log's sequence continues after the copied ids.
    pg.apply(&[vec![Write::Audit(AuditRecord {
        conv: ConvId(1),
        actor: UserId(1),
        target: UserId(3),
        action: ModAction::Unbanned,
        reason: String::new(),
        at: 70_000,
    })]])
    .await
    .expect("audits after a copy");
    let log = pg.audit_log(ConvId(1), None, 10).await.expect("reads");
    assert_eq!(log.iter().map(|(n, _)| *n).collect::<Vec<_>>(), [2, 1]);
    pg.close().await;
}

#[tokio::test]
async fn nodes_on_a_copy_take_blocks_above_every_copied_id() {
    let Some(target) = TestDb::postgres().await else {
        return;
    };
    let Location::Postgres(url) = target.location() else {
        unreachable!("a PostgreSQL test database has a URL");
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let sqlite = Store::open(dir.path().join("chat.db"))
        .await
        .expect("opens");
    let in_block = |n: u64, i: u64| IdBlock::numbered(n).expect("below 2^53").first + i;
    let (user, conv, device) = (
        UserId(in_block(5, 1)),
        ConvId(in_block(2, 9)),
        DeviceId(in_block(7, 3)),
    );
    sqlite
        .apply(&[vec![
            Write::CreateUser {
                id: user,
                name: "far".into(),
                password_hash: "hash".into(),
                created_at: 1,
            },
            Write::CreateConv {
                id: conv,
                kind: ConvKind::Room {
                    name: "far".into(),
                    invite_only: false,
                },
                created_at: 1,
            },
            Write::SetDevice {
                id: device,
                user,
                name: "phone".into(),
                cursor: MessageId(0),
                last_seen: 1,
            },
        ]])
        .await
        .expect("stored");
    let pg = PgStore::connect(url).await.expect("connects");
    copy_to_postgres(&sqlite, &pg, IfNotEmpty::Refuse)
        .await
        .expect("copies");
    let ids = pg.snapshot(0).await.expect("reads").ids;
    assert_eq!(ids, IdBlock::numbered(8).expect("below 2^53"));
    pg.close().await;
}
