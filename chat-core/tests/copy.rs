//! [`copy_to_postgres`] on a database larger than one page of every table (needs
//! `CHAT_TEST_POSTGRES`; skipped without it, except under `CI=true`): every row arrives, a
//! non-empty target is refused unchanged, and replacing it gives the same rows.

use chat_core::{
    copy_to_postgres, token_hash, ConvId, ConvKind, CopyError, DeviceId, IfNotEmpty, Location,
    MessageId, PgStore, RowCounts, Storage, Store, StoredMessage, UserId, Write,
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
            })]
        })
        .collect();
    store.apply(&messages).await.expect("messages apply");
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
    assert_eq!(
        copied,
        RowCounts {
            users: USERS,
            convs: 2,
            members: USERS,
            devices: USERS,
            tokens: USERS,
            messages: MESSAGES,
        }
    );
    let snapshot = sqlite.snapshot(0).await.expect("reads");
    assert_eq!(pg.snapshot(0).await.expect("reads"), snapshot);
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
        matches!(refused, Err(CopyError::NotEmpty(counts)) if counts == copied),
        "{refused:?}"
    );
    let replaced = copy_to_postgres(&sqlite, &pg, IfNotEmpty::Replace)
        .await
        .expect("copies");
    assert_eq!(replaced, copied);
    assert_eq!(pg.snapshot(0).await.expect("reads"), snapshot);
    pg.close().await;
}
