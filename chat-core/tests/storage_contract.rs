//! The storage contract: the same writes and queries, asserted on every [`Storage`]
//! implementation — the in-memory reference model, SQLite (a real file) and PostgreSQL (a fresh
//! database on the server named by `CHAT_TEST_POSTGRES`; skipped without it, except under
//! `CI=true`). A new backend adds one module to the `contract!` macro.

use chat_core::{
    token_hash, AuditRecord, ConvId, ConvKind, DeviceId, IdBlock, Location, MemoryStorage,
    MessageId, MessageKind, ModAction, PgStore, ReadMarkerRow, Role, Snapshot, Standing,
    StandingRow, Storage, Store, StoredMessage, TokenRecord, UnreadTally, UserId, Write,
    UNNUMBERED,
};
use chat_proto::ClientMsgId;
use chat_testkit::TestDb;

/// A backend under test, with whatever keeps it alive (a temporary directory, a database).
struct Backend<S> {
    storage: S,
    _dir: Option<tempfile::TempDir>,
    _db: Option<TestDb>,
}

async fn memory() -> Backend<MemoryStorage> {
    Backend {
        storage: MemoryStorage::new(),
        _dir: None,
        _db: None,
    }
}

async fn sqlite() -> Backend<Store> {
    let dir = tempfile::tempdir().expect("temporary directory");
    let storage = Store::open(dir.path().join("chat.db"))
        .await
        .expect("opens");
    Backend {
        storage,
        _dir: Some(dir),
        _db: None,
    }
}

async fn postgres() -> Option<Backend<PgStore>> {
    let db = TestDb::postgres().await?;
    let Location::Postgres(url) = db.location() else {
        unreachable!("a PostgreSQL test database has a URL");
    };
    let storage = PgStore::connect(url).await.expect("connects");
    Some(Backend {
        storage,
        _dir: None,
        _db: Some(db),
    })
}

/// Runs each check against every backend.
macro_rules! contract {
    ($($check:ident),* $(,)?) => {
        mod memory_backend {
            $(
                #[tokio::test]
                async fn $check() {
                    super::$check(super::memory().await.storage).await;
                }
            )*
        }
        mod sqlite_backend {
            $(
                #[tokio::test]
                async fn $check() {
                    super::$check(super::sqlite().await.storage).await;
                }
            )*
        }
        mod postgres_backend {
            $(
                #[tokio::test]
                async fn $check() {
                    if let Some(backend) = super::postgres().await {
                        super::$check(backend.storage.clone()).await;
                    }
                }
            )*
        }
    };
}

contract!(
    snapshot_holds_what_was_written,
    snapshots_give_blocks_of_ids_no_stored_id_is_in,
    resends_are_stored_once_and_report_the_original,
    empty_persists_are_barriers,
    messages_and_memberships_are_numbered_at_commit,
    the_directory_is_what_a_snapshot_holds,
    only_messages_are_numbered_in_one_statement_too,
    backlog_is_since_joining_and_leaves_out_the_own_device,
    backlog_pages_in_id_order,
    history_is_newest_first_and_paged,
    tokens_are_found_revoked_and_expire,
    device_positions_are_kept_and_forgotten,
    client_ids_keep_all_64_bits,
    standings_are_set_and_cleared,
    operators_are_set_and_cleared,
    accounts_are_disabled_and_enabled,
    the_audit_log_is_newest_first_and_paged_per_room,
    edits_replace_the_text_and_come_in_the_backlog,
    deletions_erase_the_text_everywhere,
    topics_are_set_and_cleared,
    read_markers_never_move_back,
    unread_counts_only_messages_of_others_after_a_position,
    search_finds_every_word_of_the_latest_text_in_the_users_conversations,
    search_finds_thousands_of_messages_stored_at_once_or_one_by_one,
    conversation_reads_span_messages_stored_at_once_and_one_by_one,
);

const ALICE: UserId = UserId(1);
const BOB: UserId = UserId(2);
const ROOM: ConvId = ConvId(1);
const DM: ConvId = ConvId(2);
const PHONE: DeviceId = DeviceId(1);
const LAPTOP: DeviceId = DeviceId(2);

fn user(id: UserId, name: &str) -> Write {
    Write::CreateUser {
        id,
        name: name.into(),
        password_hash: format!("hash-of-{name}"),
        created_at: 1,
    }
}

fn message(id: u64, conv: ConvId, sender: UserId, device: DeviceId, client: u64) -> StoredMessage {
    StoredMessage {
        id: MessageId(id),
        conv,
        sender,
        device,
        client_msg_id: ClientMsgId(client),
        sent_at: 1000 + id,
        text: format!("message {id}"),
        kind: MessageKind::Message,
    }
}

fn insert(m: &StoredMessage) -> Vec<Write> {
    vec![Write::InsertMessage(m.clone())]
}

/// Applies `persists`; returns each one's duplicate report.
async fn duplicates(
    s: &impl Storage,
    persists: &[Vec<Write>],
) -> Vec<Option<(MessageId, chat_core::UnixMillis)>> {
    let committed = s.apply(persists).await.expect("applies");
    committed.into_iter().map(|c| c.duplicate).collect()
}

/// Alice and Bob, a room with Alice since the start and Bob since message 2, their direct
/// conversation, and Alice's two devices.
async fn populated(s: &impl Storage) {
    let setup = vec![
        user(ALICE, "Alice"),
        user(BOB, "bob"),
        Write::CreateConv {
            id: ROOM,
            kind: ConvKind::Room {
                name: "general".into(),
                invite_only: false,
            },
            created_at: 1,
        },
        Write::CreateConv {
            id: DM,
            kind: ConvKind::Direct { a: ALICE, b: BOB },
            created_at: 1,
        },
        Write::AddMember {
            conv: ROOM,
            user: ALICE,
            since: MessageId(0),
        },
        Write::AddMember {
            conv: ROOM,
            user: BOB,
            since: MessageId(2),
        },
        Write::AddMember {
            conv: DM,
            user: ALICE,
            since: MessageId(0),
        },
        Write::AddMember {
            conv: DM,
            user: BOB,
            since: MessageId(0),
        },
        Write::SetDevice {
            id: PHONE,
            user: ALICE,
            name: "phone".into(),
            cursor: MessageId(0),
            last_seen: 5,
        },
        Write::SetDevice {
            id: LAPTOP,
            user: ALICE,
            name: "laptop".into(),
            cursor: MessageId(0),
            last_seen: 6,
        },
    ];
    s.apply(&[setup]).await.expect("set-up applies");
}

/// Either one block of every id, above everything stored, for one node (SQLite, memory), or
/// a new block at every snapshot, holding no stored id and no id of an earlier block, for a
/// database several nodes share (PostgreSQL).
async fn snapshots_give_blocks_of_ids_no_stored_id_is_in(s: impl Storage) {
    populated(&s).await;
    let first = s.snapshot(0).await.expect("snapshot");
    let second = s.snapshot(0).await.expect("snapshot");
    if first.ids == IdBlock::ALL {
        assert_eq!(second.ids, IdBlock::ALL);
        return;
    }
    assert!(
        first.ids.last < second.ids.first || second.ids.last < first.ids.first,
        "{:?} and {:?} overlap",
        first.ids,
        second.ids
    );
    let stored = (first.users.iter().map(|u| u.id.0))
        .chain(first.convs.iter().map(|c| c.id.0))
        .chain(first.devices.iter().map(|d| d.id.0));
    for id in stored {
        for block in [first.ids, second.ids] {
            assert!(block.last <= IdBlock::MAX_ID);
            assert!(!block.contains(id), "stored id {id} is in {block:?}");
        }
    }
}

fn ids(messages: &[StoredMessage]) -> Vec<u64> {
    messages.iter().map(|m| m.id.0).collect()
}

async fn snapshot_holds_what_was_written(s: impl Storage) {
    let empty = s.snapshot(0).await.expect("snapshot");
    // The id block is the backend's (see `snapshots_give_blocks_of_ids_no_stored_id_is_in`).
    assert_eq!(
        Snapshot {
            ids: IdBlock::ALL,
            ..empty
        },
        Snapshot::default()
    );
    populated(&s).await;
    let m = message(7, ROOM, ALICE, PHONE, 1);
    s.apply(&[insert(&m)]).await.expect("insert");
    s.apply(&[vec![Write::SetDisplayName {
        user: BOB,
        display_name: "Bobby".into(),
    }]])
    .await
    .expect("rename");
    let snapshot = s.snapshot(0).await.expect("snapshot");
    let users: Vec<_> = snapshot
        .users
        .iter()
        .map(|u| (u.id, u.name.as_str(), u.display_name.as_str()))
        .collect();
    assert_eq!(users, [(ALICE, "Alice", "Alice"), (BOB, "bob", "Bobby")]);
    let convs: Vec<_> = snapshot
        .convs
        .iter()
        .map(|c| (c.id, c.kind.clone()))
        .collect();
    assert_eq!(convs[1], (DM, ConvKind::Direct { a: ALICE, b: BOB }));
    assert!(
        matches!(&convs[0].1, ConvKind::Room { name, invite_only: false } if name == "general")
    );
    let mut members: Vec<_> = snapshot
        .members
        .iter()
        .map(|m| (m.conv, m.user, m.since))
        .collect();
    members.sort();
    assert_eq!(
        members,
        [
            (ROOM, ALICE, MessageId(0)),
            (ROOM, BOB, MessageId(2)),
            (DM, ALICE, MessageId(0)),
            (DM, BOB, MessageId(0)),
        ]
    );
    assert_eq!(snapshot.devices.len(), 2);
    assert_eq!(snapshot.last_message, MessageId(7));
    assert_eq!(
        s.password_hash(BOB).await.expect("hash"),
        Some("hash-of-bob".into())
    );
    assert_eq!(s.password_hash(UserId(9)).await.expect("hash"), None);
    s.apply(&[vec![Write::RemoveMember {
        conv: ROOM,
        user: BOB,
    }]])
    .await
    .expect("leave");
    let snapshot = s.snapshot(0).await.expect("snapshot");
    assert!(!snapshot
        .members
        .iter()
        .any(|m| m.conv == ROOM && m.user == BOB));
}

async fn resends_are_stored_once_and_report_the_original(s: impl Storage) {
    populated(&s).await;
    let first = message(10, ROOM, ALICE, PHONE, 42);
    let resend = message(11, ROOM, ALICE, LAPTOP, 42);
    let other_sender = message(12, DM, BOB, DeviceId(3), 42);
    // The original and its resend in one batch, and a resend in a later batch.
    let reported = duplicates(
        &s,
        &[insert(&first), insert(&resend), insert(&other_sender)],
    )
    .await;
    assert_eq!(
        reported,
        [None, Some((MessageId(10), first.sent_at)), None],
        "the same client id from another sender is a different message"
    );
    let again = duplicates(&s, &[insert(&message(13, ROOM, ALICE, PHONE, 42))]).await;
    assert_eq!(again, [Some((MessageId(10), first.sent_at))]);
    let stored = s.history(ROOM, None, 10).await.expect("history");
    assert_eq!(ids(&stored), [10]);
    assert_eq!(stored[0], first);
}

async fn empty_persists_are_barriers(s: impl Storage) {
    populated(&s).await;
    // A persist with no writes (a barrier) and one that inserts, in one transaction.
    let m = message(20, ROOM, ALICE, PHONE, 1);
    let result = duplicates(&s, &[Vec::new(), insert(&m)]).await;
    assert_eq!(result, [None, None]);
    assert_eq!(
        s.snapshot(0).await.expect("snapshot").last_message,
        MessageId(20)
    );
}

/// The hub's messages and memberships come unnumbered: storage numbers them as it commits, in
/// order, above everything it holds (`chat_hub::Numbering`), and reports each persist's
/// position. A resend found to be a duplicate takes an id that stays unused.
async fn messages_and_memberships_are_numbered_at_commit(s: impl Storage) {
    populated(&s).await; // Bob's membership is at 2: numbering goes on above it.
    let carol = UserId(3);
    let unnumbered = |client| StoredMessage {
        id: UNNUMBERED,
        ..message(client, ROOM, ALICE, PHONE, client)
    };
    let batch = [
        insert(&unnumbered(1)),
        vec![
            user(carol, "carol"),
            Write::AddMember {
                conv: ROOM,
                user: carol,
                since: UNNUMBERED,
            },
        ],
        insert(&unnumbered(1)),
        insert(&unnumbered(2)),
    ];
    let committed = s.apply(&batch).await.expect("applies");
    let positions: Vec<u64> = committed.iter().map(|c| c.position.0).collect();
    assert_eq!(positions, [2, 3, 3, 4]);
    let sent_at = unnumbered(1).sent_at;
    let reported: Vec<_> = committed.iter().map(|c| c.duplicate).collect();
    assert_eq!(reported, [None, None, Some((MessageId(3), sent_at)), None]);
    assert_eq!(
        ids(&s.history(ROOM, None, 10).await.expect("history")),
        [5, 3]
    );
    let snapshot = s.snapshot(0).await.expect("snapshot");
    let since = snapshot
        .members
        .iter()
        .find(|m| m.user == carol)
        .map(|m| m.since);
    assert_eq!(
        since,
        Some(MessageId(3)),
        "carol sees what follows her join"
    );
    let next = s.apply(&[insert(&unnumbered(3))]).await.expect("applies");
    assert_eq!(next[0].position, MessageId(5));
    assert_eq!(ids(&s.history(ROOM, None, 1).await.expect("history")), [6]);
}

/// *(cluster)* `directory` reads what `snapshot` does (but for the block of ids), so a node
/// that lost batches learns what they made.
async fn the_directory_is_what_a_snapshot_holds(s: impl Storage) {
    populated(&s).await;
    let snapshot = s.snapshot(0).await.expect("snapshot");
    let directory = s.directory().await.expect("directory");
    assert_eq!(
        Snapshot {
            ids: snapshot.ids,
            ..directory
        },
        snapshot
    );
}

/// A batch of nothing but unnumbered messages (the usual one) is numbered the same way.
async fn only_messages_are_numbered_in_one_statement_too(s: impl Storage) {
    populated(&s).await;
    let unnumbered = |sender, client| StoredMessage {
        id: UNNUMBERED,
        ..message(client, ROOM, sender, PHONE, client)
    };
    let batch = [
        insert(&unnumbered(ALICE, 1)),
        insert(&unnumbered(BOB, 1)),
        insert(&unnumbered(ALICE, 1)),
        insert(&unnumbered(ALICE, 2)),
    ];
    let committed = s.apply(&batch).await.expect("applies");
    let positions: Vec<u64> = committed.iter().map(|c| c.position.0).collect();
    assert_eq!(positions, [2, 3, 4, 5]);
    let reported: Vec<_> = committed.iter().map(|c| c.duplicate.map(|d| d.0)).collect();
    assert_eq!(reported, [None, None, Some(MessageId(3)), None]);
    assert_eq!(
        ids(&s.history(ROOM, None, 10).await.expect("history")),
        [6, 4, 3]
    );
}

async fn backlog_is_since_joining_and_leaves_out_the_own_device(s: impl Storage) {
    populated(&s).await;
    let batch: Vec<Vec<Write>> = [
        message(1, ROOM, ALICE, PHONE, 1),
        message(2, ROOM, ALICE, LAPTOP, 2),
        message(3, ROOM, ALICE, PHONE, 3),
        message(4, DM, BOB, DeviceId(3), 1),
        message(5, ROOM, BOB, DeviceId(3), 2),
    ]
    .iter()
    .map(insert)
    .collect();
    s.apply(&batch).await.expect("applies");
    // Bob joined the room after message 2; his own device's messages are left out.
    let bob = s
        .backlog(BOB, DeviceId(3), MessageId(0), 100)
        .await
        .expect("backlog");
    assert_eq!(ids(&bob), [3]);
    // From another device of Bob's, his own messages are included.
    let bob_other = s
        .backlog(BOB, DeviceId(9), MessageId(0), 100)
        .await
        .expect("backlog");
    assert_eq!(ids(&bob_other), [3, 4, 5]);
    // Alice's phone: everything not sent from the phone.
    let phone = s
        .backlog(ALICE, PHONE, MessageId(0), 100)
        .await
        .expect("backlog");
    assert_eq!(ids(&phone), [2, 4, 5]);
    // Above a position.
    let later = s
        .backlog(ALICE, LAPTOP, MessageId(3), 100)
        .await
        .expect("backlog");
    assert_eq!(ids(&later), [4, 5]);
    // Not a member: nothing.
    let stranger = s
        .backlog(UserId(7), DeviceId(7), MessageId(0), 100)
        .await
        .expect("backlog");
    assert!(stranger.is_empty());
}

async fn backlog_pages_in_id_order(s: impl Storage) {
    populated(&s).await;
    let batch: Vec<Vec<Write>> = (1..=25)
        .map(|i| {
            insert(&message(
                i,
                if i % 2 == 0 { ROOM } else { DM },
                BOB,
                DeviceId(3),
                i,
            ))
        })
        .collect();
    s.apply(&batch).await.expect("applies");
    let mut after = MessageId(0);
    let mut seen = Vec::new();
    loop {
        let page = s.backlog(ALICE, PHONE, after, 4).await.expect("backlog");
        assert!(page.len() <= 4);
        let Some(last) = page.last() else { break };
        after = last.id;
        seen.extend(ids(&page));
    }
    assert_eq!(seen, (1..=25).collect::<Vec<_>>());
}

async fn history_is_newest_first_and_paged(s: impl Storage) {
    populated(&s).await;
    let batch: Vec<Vec<Write>> = (1..=9)
        .map(|i| insert(&message(i, if i <= 6 { ROOM } else { DM }, ALICE, PHONE, i)))
        .collect();
    s.apply(&batch).await.expect("applies");
    assert_eq!(
        ids(&s.history(ROOM, None, 4).await.expect("history")),
        [6, 5, 4, 3]
    );
    assert_eq!(
        ids(&s
            .history(ROOM, Some(MessageId(3)), 4)
            .await
            .expect("history")),
        [2, 1]
    );
    assert_eq!(
        ids(&s.history(DM, None, 10).await.expect("history")),
        [9, 8, 7]
    );
    assert!(s
        .history(ConvId(99), None, 10)
        .await
        .expect("history")
        .is_empty());
}

async fn tokens_are_found_revoked_and_expire(s: impl Storage) {
    populated(&s).await;
    let (live, old) = (token_hash("live"), token_hash("old"));
    s.apply(&[vec![
        Write::CreateToken {
            hash: live,
            user: ALICE,
            device: PHONE,
            expires_at: 10_000,
        },
        Write::CreateToken {
            hash: old,
            user: ALICE,
            device: LAPTOP,
            expires_at: 500,
        },
    ]])
    .await
    .expect("applies");
    let record = TokenRecord {
        user: ALICE,
        device: PHONE,
        expires_at: 10_000,
    };
    assert_eq!(s.find_token(live).await.expect("find"), Some(record));
    assert_eq!(s.find_token(token_hash("never")).await.expect("find"), None);
    // A snapshot drops what expired by then.
    s.snapshot(1000).await.expect("snapshot");
    assert_eq!(s.find_token(old).await.expect("find"), None);
    s.apply(&[vec![Write::RevokeToken { hash: live }]])
        .await
        .expect("applies");
    assert_eq!(s.find_token(live).await.expect("find"), None);
}

async fn device_positions_are_kept_and_forgotten(s: impl Storage) {
    populated(&s).await;
    s.apply(&[vec![
        Write::SetDevice {
            id: PHONE,
            user: ALICE,
            name: "phone".into(),
            cursor: MessageId(40),
            last_seen: 9,
        },
        Write::CreateToken {
            hash: token_hash("laptop"),
            user: ALICE,
            device: LAPTOP,
            expires_at: u64::MAX >> 2,
        },
    ]])
    .await
    .expect("applies");
    s.apply(&[vec![Write::DeleteDevice { id: LAPTOP }]])
        .await
        .expect("applies");
    let snapshot = s.snapshot(0).await.expect("snapshot");
    let devices: Vec<_> = snapshot
        .devices
        .iter()
        .map(|d| (d.id, d.user, d.name.as_str(), d.cursor, d.last_seen))
        .collect();
    assert_eq!(devices, [(PHONE, ALICE, "phone", MessageId(40), 9)]);
    assert_eq!(
        s.find_token(token_hash("laptop")).await.expect("find"),
        None,
        "a forgotten device's tokens go with it"
    );
}

async fn client_ids_keep_all_64_bits(s: impl Storage) {
    populated(&s).await;
    let high = message(30, ROOM, ALICE, PHONE, u64::MAX);
    s.apply(&[insert(&high)]).await.expect("applies");
    let resend = message(31, ROOM, ALICE, PHONE, u64::MAX);
    assert_eq!(
        duplicates(&s, &[insert(&resend)]).await,
        [Some((MessageId(30), high.sent_at))]
    );
    let stored = s.history(ROOM, None, 1).await.expect("history");
    assert_eq!(stored[0].client_msg_id, ClientMsgId(u64::MAX));
}

async fn standings_are_set_and_cleared(s: impl Storage) {
    populated(&s).await;
    let owner = Standing {
        role: Role::Owner,
        ..Standing::default()
    };
    let banned = Standing {
        banned: true,
        muted: true,
        ..Standing::default()
    };
    s.apply(&[vec![
        Write::SetStanding {
            conv: ROOM,
            user: ALICE,
            standing: owner,
        },
        Write::SetStanding {
            conv: ROOM,
            user: BOB,
            standing: Standing {
                role: Role::Moderator,
                ..Standing::default()
            },
        },
    ]])
    .await
    .expect("set");
    // An update replaces the whole standing.
    s.apply(&[vec![Write::SetStanding {
        conv: ROOM,
        user: BOB,
        standing: banned,
    }]])
    .await
    .expect("update");
    let snapshot = s.snapshot(0).await.expect("snapshot");
    assert_eq!(
        snapshot.standings,
        [
            StandingRow {
                conv: ROOM,
                user: ALICE,
                standing: owner,
            },
            StandingRow {
                conv: ROOM,
                user: BOB,
                standing: banned,
            },
        ]
    );
    // The default standing is not kept.
    s.apply(&[vec![Write::SetStanding {
        conv: ROOM,
        user: BOB,
        standing: Standing::default(),
    }]])
    .await
    .expect("clear");
    assert_eq!(s.snapshot(0).await.expect("snapshot").standings.len(), 1);
}

async fn operators_are_set_and_cleared(s: impl Storage) {
    populated(&s).await;
    let set = |user, operator| vec![Write::SetOperator { user, operator }];
    s.apply(&[set(BOB, true), set(ALICE, true), set(BOB, true)])
        .await
        .expect("set");
    assert_eq!(
        s.snapshot(0).await.expect("snapshot").operators,
        [ALICE, BOB]
    );
    s.apply(&[set(ALICE, false), set(ALICE, false)])
        .await
        .expect("clear");
    assert_eq!(s.snapshot(0).await.expect("snapshot").operators, [BOB]);
}

async fn accounts_are_disabled_and_enabled(s: impl Storage) {
    populated(&s).await;
    let set = |user, disabled| vec![Write::SetDisabled { user, disabled }];
    s.apply(&[set(BOB, true), set(ALICE, true), set(BOB, true)])
        .await
        .expect("disable");
    assert_eq!(
        s.snapshot(0).await.expect("snapshot").disabled,
        [ALICE, BOB]
    );
    s.apply(&[set(ALICE, false)]).await.expect("enable");
    let snapshot = s.snapshot(0).await.expect("snapshot");
    assert_eq!(snapshot.disabled, [BOB]);
    // The account itself, its password and its tokens are kept.
    assert_eq!(snapshot.users.len(), 2);
    assert!(s.password_hash(BOB).await.expect("reads").is_some());
}

async fn the_audit_log_is_newest_first_and_paged_per_room(s: impl Storage) {
    populated(&s).await;
    let record = |conv, action, reason: &str, at| {
        Write::Audit(AuditRecord {
            conv,
            actor: ALICE,
            target: BOB,
            action,
            reason: reason.into(),
            at,
        })
    };
    s.apply(&[
        vec![record(ROOM, ModAction::Muted, "", 10)],
        vec![record(DM, ModAction::Kicked, "elsewhere", 11)],
        vec![
            record(ROOM, ModAction::Kicked, "spam", 12),
            record(ROOM, ModAction::Banned, "again", 13),
        ],
    ])
    .await
    .expect("append");
    let log = s.audit_log(ROOM, None, 10).await.expect("reads");
    let seen: Vec<_> = log
        .iter()
        .map(|(at, r)| (*at, r.action, r.reason.as_str(), r.at))
        .collect();
    assert_eq!(
        seen,
        [
            (4, ModAction::Banned, "again", 13),
            (3, ModAction::Kicked, "spam", 12),
            (1, ModAction::Muted, "", 10),
        ]
    );
    let page = s.audit_log(ROOM, Some(3), 1).await.expect("reads");
    assert_eq!(page.len(), 1);
    assert_eq!(page[0].0, 1);
    assert!(s
        .audit_log(ROOM, Some(1), 10)
        .await
        .expect("reads")
        .is_empty());
    assert_eq!(s.audit_log(DM, None, 10).await.expect("reads").len(), 1);
}

/// A change row of `kind` by `sender` with id `id`.
fn change(id: u64, sender: UserId, kind: MessageKind, text: &str) -> StoredMessage {
    StoredMessage {
        text: text.into(),
        kind,
        ..message(id, ROOM, sender, PHONE, 0)
    }
}

async fn edits_replace_the_text_and_come_in_the_backlog(s: impl Storage) {
    populated(&s).await;
    let m = message(3, ROOM, ALICE, PHONE, 1);
    s.apply(&[insert(&m)]).await.expect("insert");
    // Changes carry client message id 0: never taken for a resend of a message.
    let zero = message(4, ROOM, ALICE, PHONE, 0);
    let edit = change(5, ALICE, MessageKind::Edit { target: m.id }, "edited");
    let reported = duplicates(
        &s,
        &[
            insert(&zero),
            vec![
                Write::InsertMessage(edit.clone()),
                Write::ChangeMessage {
                    target: m.id,
                    text: Some("edited".into()),
                },
            ],
        ],
    )
    .await;
    assert_eq!(reported, [None, None]);
    let stored = s.message(m.id).await.expect("reads").expect("there");
    assert_eq!(stored.text, "edited");
    assert_eq!(stored.kind, MessageKind::Edited);
    assert_eq!(s.message(edit.id).await.expect("reads"), Some(edit.clone()));
    assert_eq!(s.message(MessageId(99)).await.expect("reads"), None);
    // History holds messages only, with their latest text.
    let history = s.history(ROOM, None, 10).await.expect("reads");
    assert_eq!(ids(&history), [4, 3]);
    // The backlog carries the change to devices that had the original.
    let backlog = s
        .backlog(BOB, LAPTOP, MessageId(3), 10)
        .await
        .expect("reads");
    assert_eq!(ids(&backlog), [4, 5]);
    assert_eq!(backlog[1].kind, MessageKind::Edit { target: m.id });
}

async fn deletions_erase_the_text_everywhere(s: impl Storage) {
    populated(&s).await;
    let m = message(3, ROOM, ALICE, PHONE, 1);
    let edit = change(
        4,
        ALICE,
        MessageKind::Edit { target: m.id },
        "edited secret",
    );
    let delete = change(
        5,
        BOB,
        MessageKind::Delete {
            target: m.id,
            redacted: true,
        },
        "spam",
    );
    s.apply(&[
        insert(&m),
        vec![
            Write::InsertMessage(edit),
            Write::ChangeMessage {
                target: m.id,
                text: Some("edited secret".into()),
            },
        ],
        vec![
            Write::InsertMessage(delete.clone()),
            Write::ChangeMessage {
                target: m.id,
                text: None,
            },
        ],
    ])
    .await
    .expect("writes");
    let stored = s.message(m.id).await.expect("reads").expect("kept");
    assert_eq!(
        (stored.kind, stored.text.as_str()),
        (MessageKind::Deleted, "")
    );
    let erased = s.message(MessageId(4)).await.expect("reads").expect("kept");
    assert_eq!(erased.text, "");
    // An edit after the deletion changes nothing.
    s.apply(&[vec![Write::ChangeMessage {
        target: m.id,
        text: Some("back".into()),
    }]])
    .await
    .expect("writes");
    assert_eq!(
        s.message(m.id).await.expect("reads").expect("kept").text,
        ""
    );
    // History keeps the tombstone; the backlog has neither it nor the erased edit.
    let history = s.history(ROOM, None, 10).await.expect("reads");
    assert_eq!(history[0].kind, MessageKind::Deleted);
    let backlog = s
        .backlog(BOB, LAPTOP, MessageId(2), 10)
        .await
        .expect("reads");
    assert_eq!(ids(&backlog), [5]);
    assert_eq!(backlog[0], delete);
}

async fn topics_are_set_and_cleared(s: impl Storage) {
    populated(&s).await;
    let set = |topic: &str| {
        vec![Write::SetTopic {
            conv: ROOM,
            topic: topic.into(),
        }]
    };
    s.apply(&[set("first"), set("second")]).await.expect("set");
    assert_eq!(
        s.snapshot(0).await.expect("snapshot").topics,
        [(ROOM, "second".to_string())]
    );
    s.apply(&[set("")]).await.expect("clear");
    assert!(s.snapshot(0).await.expect("snapshot").topics.is_empty());
}

async fn read_markers_never_move_back(s: impl Storage) {
    populated(&s).await;
    let mark = |user, conv, up_to| {
        vec![Write::SetReadMarker {
            user,
            conv,
            up_to: MessageId(up_to),
        }]
    };
    s.apply(&[mark(ALICE, ROOM, 5), mark(BOB, DM, 2)])
        .await
        .expect("marks");
    // A lower marker, even in the same batch as a higher one, changes nothing.
    s.apply(&[mark(ALICE, ROOM, 3), mark(ALICE, DM, 4), mark(ALICE, DM, 1)])
        .await
        .expect("marks");
    assert_eq!(
        s.snapshot(0).await.expect("snapshot").read_markers,
        [
            ReadMarkerRow {
                user: ALICE,
                conv: ROOM,
                up_to: MessageId(5),
            },
            ReadMarkerRow {
                user: ALICE,
                conv: DM,
                up_to: MessageId(4),
            },
            ReadMarkerRow {
                user: BOB,
                conv: DM,
                up_to: MessageId(2),
            },
        ]
    );
    s.apply(&[mark(ALICE, ROOM, 7)]).await.expect("marks");
    let markers = s.snapshot(0).await.expect("snapshot").read_markers;
    assert_eq!(markers[0].up_to, MessageId(7));
}

/// Messages, a deletion and an edit: 1 is Alice's; 2, 3, 5, 6 Bob's in the room (5 deleted,
/// 6 edited); 4 Bob's to Alice; 7 and 8 are changes.
async fn with_changes(s: &impl Storage) {
    populated(s).await;
    let text = |id, conv, sender, text: &str| StoredMessage {
        text: text.into(),
        ..message(id, conv, sender, PHONE, id)
    };
    s.apply(&[
        insert(&text(1, ROOM, ALICE, "Deploy the release")),
        insert(&text(2, ROOM, ALICE, "deploy before bob joined")),
        insert(&text(3, DM, BOB, "can you deploy, please?")),
        insert(&text(4, ROOM, BOB, "Déploiement naïve café")),
        insert(&text(5, ROOM, ALICE, "secret deploy key")),
        insert(&text(6, ROOM, BOB, "teh release")),
        insert(&text(9, ConvId(3), BOB, "deploy elsewhere")),
        vec![
            Write::InsertMessage(change(
                10,
                BOB,
                MessageKind::Edit {
                    target: MessageId(6),
                },
                "the final release",
            )),
            Write::ChangeMessage {
                target: MessageId(6),
                text: Some("the final release".into()),
            },
        ],
        vec![
            Write::InsertMessage(change(
                11,
                ALICE,
                MessageKind::Delete {
                    target: MessageId(5),
                    redacted: false,
                },
                "",
            )),
            Write::ChangeMessage {
                target: MessageId(5),
                text: None,
            },
        ],
    ])
    .await
    .expect("writes");
}

async fn unread_counts_only_messages_of_others_after_a_position(s: impl Storage) {
    with_changes(&s).await;
    let tally = |conv, count, latest| UnreadTally {
        conv,
        count,
        latest: MessageId(latest),
    };
    let convs = [
        (ROOM, MessageId(1)),
        (DM, MessageId(0)),
        (ConvId(99), MessageId(0)),
    ];
    // Alice: Bob's 4 and 6 in the room (not her own 2 and 5, not the changes), his 3.
    assert_eq!(
        s.unread(ALICE, &convs, None, 100).await.expect("counts"),
        [tally(ROOM, 2, 6), tally(DM, 1, 3), tally(ConvId(99), 0, 0)]
    );
    // Up to a position.
    assert_eq!(
        s.unread(ALICE, &convs, Some(MessageId(4)), 100)
            .await
            .expect("counts"),
        [tally(ROOM, 1, 4), tally(DM, 1, 3), tally(ConvId(99), 0, 0)]
    );
    // At most the cap, the newest still found.
    assert_eq!(
        s.unread(ALICE, &convs[..1], None, 1).await.expect("counts"),
        [tally(ROOM, 1, 6)]
    );
    // Bob: Alice's 1 and 2 (5 is deleted), after his position.
    assert_eq!(
        s.unread(BOB, &[(ROOM, MessageId(0))], None, 100)
            .await
            .expect("counts"),
        [tally(ROOM, 2, 2)]
    );
    assert_eq!(s.unread(BOB, &[], None, 100).await.expect("counts"), []);
}

async fn search_finds_every_word_of_the_latest_text_in_the_users_conversations(s: impl Storage) {
    with_changes(&s).await;
    let find = |user, words: &[&str], before: Option<u64>, limit| {
        let words: Vec<String> = words.iter().map(|w| (*w).to_owned()).collect();
        let s = s.clone();
        async move {
            let found = s
                .search(user, &words, before.map(MessageId), limit)
                .await
                .expect("searches");
            ids(&found)
        }
    };
    // Newest first, words in any case and between punctuation; not the deleted 5, not 9 of
    // a conversation Alice is not in.
    assert_eq!(find(ALICE, &["deploy"], None, 10).await, [3, 2, 1]);
    // Bob joined the room after message 2: he finds what history shows him, all of it.
    assert_eq!(find(BOB, &["deploy"], None, 10).await, [3, 2, 1]);
    // Paged.
    assert_eq!(find(ALICE, &["deploy"], None, 2).await, [3, 2]);
    assert_eq!(find(ALICE, &["deploy"], Some(2), 2).await, [1]);
    // Every word.
    assert_eq!(find(ALICE, &["deploy", "release"], None, 10).await, [1]);
    assert_eq!(
        find(ALICE, &["deploy", "nowhere"], None, 10).await,
        [0u64; 0]
    );
    // An edited message by its new text only; never a change row.
    assert_eq!(find(ALICE, &["release"], None, 10).await, [6, 1]);
    assert_eq!(find(ALICE, &["final"], None, 10).await, [6]);
    assert_eq!(find(ALICE, &["teh"], None, 10).await, [0u64; 0]);
    let edited = s
        .search(ALICE, &["final".to_owned()], None, 10)
        .await
        .expect("searches");
    assert_eq!(
        (edited[0].kind, edited[0].text.as_str()),
        (MessageKind::Edited, "the final release")
    );
    // A deleted message, by none of its words.
    for word in ["secret", "key"] {
        assert_eq!(find(ALICE, &[word], None, 10).await, [0u64; 0], "{word}");
    }
    // Letters beyond ASCII, compared as written (no accent folding).
    assert_eq!(find(ALICE, &["café"], None, 10).await, [4]);
    assert_eq!(find(ALICE, &["déploiement", "naïve"], None, 10).await, [4]);
    assert_eq!(find(ALICE, &["cafe"], None, 10).await, [0u64; 0]);
}

/// Search over thousands of messages, stored in one batch and then a few at a time (SQLite
/// indexes new messages in batches and reads the newest directly: the two must agree), with
/// edits and deletions on both sides.
async fn search_finds_thousands_of_messages_stored_at_once_or_one_by_one(s: impl Storage) {
    populated(&s).await;
    let text = |id: u64| StoredMessage {
        text: format!(
            "note {id} {}",
            if id % 100 == 0 { "Century" } else { "plain" }
        ),
        ..message(id, ROOM, ALICE, PHONE, id)
    };
    let stored: Vec<Vec<Write>> = (1..=2000).map(|id| insert(&text(id))).collect();
    s.apply(&stored).await.expect("writes");
    for id in 2001..=2500 {
        s.apply(&[insert(&text(id))]).await.expect("writes");
    }
    let mut next = 2500;
    for (target, new_text) in [
        (100, Some("millennium")),
        (2400, Some("millennium")),
        (200, None),
        (2300, None),
    ] {
        next += 1;
        let kind = match new_text {
            Some(_) => MessageKind::Edit {
                target: MessageId(target),
            },
            None => MessageKind::Delete {
                target: MessageId(target),
                redacted: false,
            },
        };
        s.apply(&[vec![
            Write::InsertMessage(change(next, ALICE, kind, new_text.unwrap_or(""))),
            Write::ChangeMessage {
                target: MessageId(target),
                text: new_text.map(str::to_owned),
            },
        ]])
        .await
        .expect("writes");
    }
    let find = |words: &[&str], before: Option<u64>, limit| {
        let words: Vec<String> = words.iter().map(|w| (*w).to_owned()).collect();
        let s = s.clone();
        async move {
            let found = s
                .search(ALICE, &words, before.map(MessageId), limit)
                .await
                .expect("searches");
            ids(&found)
        }
    };
    let centuries: Vec<u64> = (3..=25)
        .rev()
        .map(|c| c * 100)
        .filter(|&id| id != 2300 && id != 2400)
        .collect();
    assert_eq!(find(&["century"], None, 100).await, centuries);
    assert_eq!(find(&["century"], None, 3).await, [2500, 2200, 2100]);
    assert_eq!(find(&["century"], Some(2100), 3).await, [2000, 1900, 1800]);
    assert_eq!(find(&["century"], Some(2600), 1).await, [2500]);
    assert_eq!(find(&["millennium"], None, 10).await, [2400, 100]);
    assert_eq!(find(&["note", "2450"], None, 10).await, [2450]);
    assert_eq!(find(&["note", "1450"], None, 10).await, [1450]);
    assert_eq!(find(&["2300"], None, 10).await, [0u64; 0]);
    assert_eq!(find(&["200"], None, 10).await, [0u64; 0]);
    assert_eq!(find(&["plain"], None, 2000).await.len(), 2000);
}

/// History, backlog and unread counts over thousands of messages in two conversations, stored
/// in one batch and then one at a time, checked against the messages as written: pages that
/// cross the two, limits and caps that end inside them, a member who joined late.
async fn conversation_reads_span_messages_stored_at_once_and_one_by_one(s: impl Storage) {
    populated(&s).await;
    let bobs_device = DeviceId(9);
    let written = |id: u64| {
        let conv = if id % 3 == 0 { DM } else { ROOM };
        let (sender, device) = match (id % 2, id % 5) {
            (0, _) => (BOB, bobs_device),
            (_, 0) => (ALICE, LAPTOP),
            _ => (ALICE, PHONE),
        };
        message(id, conv, sender, device, id)
    };
    let all: Vec<StoredMessage> = (1..=2500).map(written).collect();
    let at_once: Vec<Vec<Write>> = all[..2000].iter().map(insert).collect();
    s.apply(&at_once).await.expect("writes");
    for m in &all[2000..] {
        s.apply(&[insert(m)]).await.expect("writes");
    }

    let expected = |keep: &dyn Fn(&StoredMessage) -> bool, newest_first: bool, limit: usize| {
        let mut kept: Vec<u64> = all.iter().filter(|m| keep(m)).map(|m| m.id.0).collect();
        if newest_first {
            kept.reverse();
        }
        kept.truncate(limit);
        kept
    };
    for (before, limit) in [
        (None, 20),
        (Some(2010), 30),
        (Some(100), 500),
        (Some(2600), 900),
    ] {
        let got = s
            .history(ROOM, before.map(MessageId), limit)
            .await
            .expect("reads");
        let below = before.unwrap_or(u64::MAX);
        let want = expected(&|m| m.conv == ROOM && m.id.0 < below, true, limit);
        assert_eq!(ids(&got), want, "history before {before:?}, {limit}");
    }
    for (user, device, after, limit) in [
        (ALICE, PHONE, 1980, 50),
        (ALICE, PHONE, 0, 3000),
        (ALICE, LAPTOP, 2100, 7),
        (BOB, bobs_device, 0, 10),
        (BOB, bobs_device, 1990, 400),
    ] {
        let got = s
            .backlog(user, device, MessageId(after), limit)
            .await
            .expect("reads");
        // Bob joined the room after message 2; everyone else is in from the start.
        let since = |m: &StoredMessage| if user == BOB && m.conv == ROOM { 2 } else { 0 };
        let want = expected(
            &|m| m.id.0 > after.max(since(m)) && m.device != device,
            false,
            limit,
        );
        assert_eq!(
            ids(&got),
            want,
            "backlog of {user:?} on {device:?} after {after}"
        );
    }
    for (up_to, cap) in [
        (None, 50),
        (None, 10_000),
        (Some(2200), 10_000),
        (Some(1999), 3),
    ] {
        let positions = [(ROOM, MessageId(1500)), (DM, MessageId(2450))];
        let got = s
            .unread(ALICE, &positions, up_to.map(MessageId), cap)
            .await
            .expect("reads");
        let limit = up_to.unwrap_or(u64::MAX);
        for (tally, (conv, after)) in got.iter().zip(positions) {
            let counted = |m: &StoredMessage| {
                m.conv == conv && m.id > after && m.id.0 <= limit && m.sender != ALICE
            };
            let unread = expected(&counted, true, cap as usize);
            assert_eq!(tally.conv, conv);
            assert_eq!(
                tally.count as usize,
                unread.len(),
                "{conv:?} up to {up_to:?}, cap {cap}"
            );
            assert_eq!(
                tally.latest,
                MessageId(unread.first().copied().unwrap_or(0))
            );
        }
    }
}
