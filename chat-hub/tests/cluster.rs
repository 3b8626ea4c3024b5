//! *(cluster)* A hub that shares its database with other nodes applies every commit in id
//! order, its own and the others' alike: a commit above a hole waits for the batch below it,
//! or reads the hole from storage once `cluster_wait_ms` has passed; another node's users,
//! rooms and memberships become known here. "Another node" writes straight into the world's
//! store, as its writer would, and hands the batch it would publish to `handle_committed`.

use chat_hub::sim::World;
use chat_hub::{
    CommittedBatch, Config, ConvId, ConvKind, DeviceId, MessageKind, NodeMessage, SessionId,
    StoredMessage, TypingTo, UserId, Write, UNNUMBERED,
};
use chat_proto::*;

const WAIT_MS: u64 = 50;

fn world() -> World {
    World::new(Config {
        cluster: true,
        cluster_wait_ms: WAIT_MS,
        ..World::config()
    })
}

fn room(name: &str) -> Target {
    Target::Room(name.into())
}

fn join(w: &mut World, session: SessionId, name: &str) {
    w.request(session, Request::Join { room: name.into() })
        .expect("joins");
}

/// The texts of the chat messages among `events`, in order.
fn texts(events: &[ServerMessage]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            ServerMessage::Message(m) => Some(m.text.clone()),
            _ => None,
        })
        .collect()
}

fn user_id(w: &mut World, name: &str) -> UserId {
    let now = w.now.wall;
    let snapshot = w.store.snapshot(now);
    snapshot
        .users
        .iter()
        .find(|u| u.name == name)
        .map(|u| u.id)
        .expect("the user exists")
}

fn room_id(w: &mut World, name: &str) -> ConvId {
    let now = w.now.wall;
    let snapshot = w.store.snapshot(now);
    snapshot
        .convs
        .iter()
        .find(|c| matches!(&c.kind, ConvKind::Room { name: n, .. } if n == name))
        .map(|c| c.id)
        .expect("the room exists")
}

/// Another node commits `persist` into the shared store; returns the batch it publishes.
fn other_node_commits(w: &mut World, persist: Vec<Write>) -> CommittedBatch {
    let committed = w.store.apply(persist.clone());
    CommittedBatch::new(&[persist], &[committed])
}

/// A user registering on another node (with a password hash, which must not leave it) and
/// joining `conv` there.
fn registers_and_joins(user: UserId, name: &str, conv: ConvId) -> Vec<Write> {
    vec![
        Write::CreateUser {
            id: user,
            name: name.into(),
            password_hash: "argon2id-hash".into(),
            created_at: 1,
        },
        Write::AddMember {
            conv,
            user,
            since: UNNUMBERED,
        },
    ]
}

fn message(sender: UserId, conv: ConvId, client: u64, text: &str) -> Write {
    Write::InsertMessage(StoredMessage {
        id: UNNUMBERED,
        conv,
        sender,
        device: DeviceId(1 << 40),
        client_msg_id: ClientMsgId(client),
        sent_at: 1,
        text: text.into(),
        kind: MessageKind::Message,
    })
}

/// Alice and Bob registered on this node and in #rust, with nothing left to read.
fn alice_and_bob_in_rust(w: &mut World) -> (SessionId, SessionId) {
    let alice = w.register("alice");
    let bob = w.register("bob");
    join(w, alice, "rust");
    join(w, bob, "rust");
    w.drain(alice);
    w.drain(bob);
    (alice, bob)
}

/// Alice and Bob in #rust on this node; the other node's batch of a message from Alice's
/// other device, committed before Bob's message from here.
fn bob_writes_above_a_hole(w: &mut World) -> (SessionId, SessionId, RequestId, CommittedBatch) {
    let (alice, bob) = alice_and_bob_in_rust(w);
    let (a, rust) = (user_id(w, "alice"), room_id(w, "rust"));
    let batch = other_node_commits(w, vec![message(a, rust, 1, "from the other node")]);
    let send = Request::Send {
        target: room("rust"),
        client_msg_id: ClientMsgId(1),
        text: "from here".into(),
    };
    let request = w.send_request(bob, send);
    (alice, bob, request, batch)
}

#[test]
fn a_commit_above_a_hole_waits_for_the_batch_below_it() {
    let mut w = world();
    let (alice, bob, request, batch) = bob_writes_above_a_hole(&mut w);
    // Bob's message is stored above the other node's, which has not arrived: nothing yet.
    assert_eq!(w.take_reply(bob, request), None);
    assert_eq!(texts(&w.drain(alice)), Vec::<String>::new());

    w.hub.handle_committed(batch.clone(), w.now);
    w.run();
    assert!(matches!(
        w.take_reply(bob, request),
        Some(Ok(Reply::Sent { .. }))
    ));
    assert_eq!(
        texts(&w.drain(alice)),
        ["from the other node", "from here"],
        "in id order"
    );
    assert_eq!(texts(&w.drain(bob)), ["from the other node"]);
    // The same batch again (a redelivery) changes nothing.
    w.hub.handle_committed(batch, w.now);
    w.run();
    assert_eq!(texts(&w.drain(alice)), Vec::<String>::new());
}

#[test]
fn a_lost_batch_is_read_from_storage_once_the_wait_is_over() {
    let mut w = world();
    let (alice, bob, request, batch) = bob_writes_above_a_hole(&mut w);
    w.advance(WAIT_MS - 1);
    assert_eq!(w.take_reply(bob, request), None, "still waiting");
    w.advance(1);
    assert!(matches!(
        w.take_reply(bob, request),
        Some(Ok(Reply::Sent { .. }))
    ));
    assert_eq!(texts(&w.drain(alice)), ["from the other node", "from here"]);
    assert_eq!(texts(&w.drain(bob)), ["from the other node"]);
    // The batch arrives late: nothing twice.
    w.hub.handle_committed(batch, w.now);
    w.run();
    assert_eq!(texts(&w.drain(alice)), Vec::<String>::new());
    assert_eq!(texts(&w.drain(bob)), Vec::<String>::new());
}

#[test]
fn a_gap_reads_what_the_bus_lost() {
    let mut w = world();
    let (_, bob) = alice_and_bob_in_rust(&mut w);
    let (a, rust) = (user_id(&mut w, "alice"), room_id(&mut w, "rust"));
    let _lost = other_node_commits(&mut w, vec![message(a, rust, 1, "lost on the bus")]);
    w.hub.handle_gap();
    w.run();
    assert_eq!(texts(&w.drain(bob)), ["lost on the bus"]);
}

#[test]
fn another_nodes_users_rooms_and_members_become_known() {
    let mut w = world();
    let alice = w.register("alice");
    join(&mut w, alice, "rust");
    w.drain(alice);
    let rust = room_id(&mut w, "rust");
    // Carol registers on the other node and joins #rust there.
    let carol = UserId(1 << 32);
    let batch = other_node_commits(&mut w, registers_and_joins(carol, "carol", rust));
    assert!(
        batch.writes.iter().all(
            |w| !matches!(w, Write::CreateUser { password_hash, .. } if !password_hash.is_empty())
        ),
        "no password hash leaves the node that stored it"
    );
    w.hub.handle_committed(batch, w.now);
    w.run();
    let joined = w.drain(alice).into_iter().any(|e| {
        matches!(e, ServerMessage::Member { user, event: MemberEvent::Joined, .. } if user == "carol")
    });
    assert!(joined, "alice is told carol joined");
    let who = w.request(
        alice,
        Request::Who {
            room: "rust".into(),
        },
    );
    assert!(format!("{who:?}").contains("carol"), "{who:?}");
    // Carol writes from the other node: alice gets it; alice can write to carol from here.
    let batch = other_node_commits(&mut w, vec![message(carol, rust, 1, "hi from carol")]);
    w.hub.handle_committed(batch, w.now);
    w.run();
    assert_eq!(texts(&w.drain(alice)), ["hi from carol"]);
    let sent = w.request(
        alice,
        Request::Send {
            target: Target::User("carol".into()),
            client_msg_id: ClientMsgId(9),
            text: "hello carol".into(),
        },
    );
    assert!(matches!(sent, Ok(Reply::Sent { .. })), "{sent:?}");
}

#[test]
fn presence_counts_every_nodes_sessions() {
    let mut w = world();
    let alice = w.register("alice");
    let _bob = w.register("bob");
    let bob_id = user_id(&mut w, "bob");
    w.disconnect(_bob);
    w.advance(5_000);
    w.drain(alice);
    // Bob is online on node b: alice, who shares #general with him, is told.
    w.hub.handle_remote_presence("b", vec![bob_id], w.now);
    w.advance(5_000);
    let online = |events: &[ServerMessage], state: bool| {
        events.iter().any(
            |e| matches!(e, ServerMessage::Presence { user, online } if user == "bob" && *online == state),
        )
    };
    assert!(online(&w.drain(alice), true), "bob is online elsewhere");
    // Node b went down (or bob left it): offline.
    w.hub.handle_remote_presence("b", Vec::new(), w.now);
    w.advance(5_000);
    assert!(online(&w.drain(alice), false), "bob went with his node");
}

#[test]
fn typing_crosses_nodes() {
    let mut w = world();
    let (alice, bob) = alice_and_bob_in_rust(&mut w);
    let rust = room_id(&mut w, "rust");
    // Alice types here: the other nodes are told, and so is bob here.
    w.send(
        alice,
        ClientMessage::Typing {
            target: room("rust"),
            active: true,
        },
    );
    let a = user_id(&mut w, "alice");
    let shared = NodeMessage::Typing {
        user: a,
        to: TypingTo::Room(rust),
        active: true,
    };
    assert!(w.shared.contains(&shared), "{:?}", w.shared);
    w.drain(bob);
    // Someone on another node types in #rust: alice and bob are told here.
    let carol = UserId(1 << 32);
    let batch = other_node_commits(&mut w, registers_and_joins(carol, "carol", rust));
    w.hub.handle_committed(batch, w.now);
    w.hub.handle_node_message(
        NodeMessage::Typing {
            user: carol,
            to: TypingTo::Room(rust),
            active: true,
        },
        w.now,
    );
    w.run();
    let typing = w
        .drain(bob)
        .into_iter()
        .any(|e| matches!(e, ServerMessage::Typing { user, active: true, .. } if user == "carol"));
    assert!(typing, "bob sees carol typing on her node");
}

#[test]
fn what_a_lost_batch_made_is_learnt_from_storage() {
    let mut w = world();
    let (alice, _bob) = alice_and_bob_in_rust(&mut w);
    let rust = room_id(&mut w, "rust");
    // Dave registers on another node, joins #rust and writes there; the bus loses it all.
    let dave = UserId(1 << 32);
    let _lost = other_node_commits(&mut w, registers_and_joins(dave, "dave", rust));
    let _lost = other_node_commits(&mut w, vec![message(dave, rust, 1, "hi, dave here")]);
    w.hub.handle_gap();
    w.run();
    let from_dave = w.drain(alice).into_iter().any(
        |e| matches!(e, ServerMessage::Message(m) if m.from == "dave" && m.text == "hi, dave here"),
    );
    assert!(from_dave, "his message arrives, under his name");
    let who = w.request(
        alice,
        Request::Who {
            room: "rust".into(),
        },
    );
    assert!(format!("{who:?}").contains("dave"), "{who:?}");
    let sent = w.request(
        alice,
        Request::Send {
            target: Target::User("dave".into()),
            client_msg_id: ClientMsgId(5),
            text: "welcome".into(),
        },
    );
    assert!(matches!(sent, Ok(Reply::Sent { .. })), "{sent:?}");
}
