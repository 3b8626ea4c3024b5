//! The `session` fuzz target's body: arbitrary operations from a few users and devices applied
//! to the hub in a [`World`], with the delivery invariants checked after every step. Shared by
//! the cargo-fuzz binary and the test that replays its corpus.
//!
//! Messages and edits carry one of four common words (`w0`..`w3`), so searches find things.

use std::sync::OnceLock;

use arbitrary::{Arbitrary, Unstructured};
use chat_proto::{
    ClientMessage, ClientMsgId, MessageId, ModAction, Reply, Request, RequestId, Role,
    ServerMessage, Target, PROTOCOL_VERSION,
};
use rustc_hash::FxHashMap as HashMap;

use crate::sim::{World, PASSWORD};
use crate::{Config, ConvId, MemoryStore, MessageKind, SessionId, StoredMessage, UserId};

const USERS: [&str; 4] = ["ann", "bob", "cyd", "dee"];
const ROOMS: [&str; 3] = ["general", "rust", "ops"];

/// Where an operation is aimed.
#[derive(Debug, Clone, Copy)]
pub enum To {
    /// One of a few rooms.
    Room(u8),
    /// One of the users.
    User(u8),
}

/// One step of a fuzz case. Indices wrap around what exists.
///
/// `Arbitrary` is written by hand so that each step costs a few input bytes and the common
/// steps (connecting, sending) are the likely ones.
#[derive(Debug)]
pub enum Op {
    /// A user connects on one of their devices (registering the first time).
    Connect {
        /// Which user.
        user: u8,
        /// Which of their devices.
        device: u8,
    },
    /// A connection goes away.
    Disconnect {
        /// Which open session.
        session: u8,
    },
    /// A chat message (a small client id space makes resends common).
    Send {
        /// Which open session.
        session: u8,
        /// Where to.
        to: To,
        /// The client message id.
        client_id: u8,
    },
    /// Join a room.
    Join {
        /// Which open session.
        session: u8,
        /// Which room.
        room: u8,
    },
    /// Leave a room.
    Leave {
        /// Which open session.
        session: u8,
        /// Which room.
        room: u8,
    },
    /// Create a room.
    Create {
        /// Which open session.
        session: u8,
        /// Which room.
        room: u8,
        /// Invite-only or not.
        invite_only: bool,
    },
    /// Add a user to a room.
    Invite {
        /// Which open session.
        session: u8,
        /// Which room.
        room: u8,
        /// Whom.
        user: u8,
    },
    /// Acknowledge up to `back` messages before the last received.
    Ack {
        /// Which open session.
        session: u8,
        /// How far behind the last received.
        back: u8,
    },
    /// Typing start or stop.
    Typing {
        /// Which open session.
        session: u8,
        /// Where to.
        to: To,
        /// Start or stop.
        active: bool,
    },
    /// Fetch history.
    History {
        /// Which open session.
        session: u8,
        /// Where.
        to: To,
    },
    /// *(v2)* A moderation request: kick, ban, unban, mute, unmute, op or deop.
    Moderate {
        /// Which open session.
        session: u8,
        /// Which room.
        room: u8,
        /// Whom.
        user: u8,
        /// Which action (wraps around the seven).
        action: u8,
    },
    /// *(v2)* Edit, delete or redact one of the last messages stored.
    Change {
        /// Which open session.
        session: u8,
        /// How far back from the newest stored message.
        back: u8,
        /// 0 edit, 1 delete, 2 redact (wrapping).
        what: u8,
    },
    /// *(v2)* Mark a conversation read, some messages back from the newest stored (or past
    /// the newest, at 255).
    MarkRead {
        /// Which open session.
        session: u8,
        /// Which conversation.
        to: To,
        /// How far back from the newest stored message.
        back: u8,
    },
    /// *(v2)* Search for one of the common words, from the newest or below a recent message.
    Search {
        /// Which open session.
        session: u8,
        /// Which word (bits 0-1), whether to page (bit 2), how far back to page from (bits
        /// 3-7).
        word: u8,
    },
    /// Any client message at all.
    Raw {
        /// Which open session.
        session: u8,
        /// The message.
        msg: ClientMessage,
    },
    /// Time passes.
    Advance {
        /// Milliseconds.
        ms: u16,
    },
    /// The server restarts gracefully.
    Restart,
}

impl<'a> Arbitrary<'a> for To {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let byte = u8::arbitrary(u)?;
        Ok(if byte & 1 == 0 {
            Self::Room(byte >> 1)
        } else {
            Self::User(byte >> 1)
        })
    }
}

impl<'a> Arbitrary<'a> for Op {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let session = u8::arbitrary(u)?;
        Ok(match u8::arbitrary(u)? % 39 {
            0..=4 => Self::Connect {
                user: session,
                device: u8::arbitrary(u)?,
            },
            5 | 6 => Self::Disconnect { session },
            7..=14 => Self::Send {
                session,
                to: To::arbitrary(u)?,
                client_id: u8::arbitrary(u)?,
            },
            15 | 16 => Self::Join {
                session,
                room: u8::arbitrary(u)?,
            },
            17 => Self::Leave {
                session,
                room: u8::arbitrary(u)?,
            },
            18 => Self::Create {
                session,
                room: u8::arbitrary(u)?,
                invite_only: bool::arbitrary(u)?,
            },
            19 => Self::Invite {
                session,
                room: u8::arbitrary(u)?,
                user: u8::arbitrary(u)?,
            },
            20..=22 => Self::Ack {
                session,
                back: u8::arbitrary(u)? % 4,
            },
            23 | 24 => Self::Typing {
                session,
                to: To::arbitrary(u)?,
                active: bool::arbitrary(u)?,
            },
            25 => Self::History {
                session,
                to: To::arbitrary(u)?,
            },
            26..=28 => Self::Advance {
                ms: u16::arbitrary(u)?,
            },
            29 => Self::Restart,
            30 | 31 => Self::Moderate {
                session,
                room: u8::arbitrary(u)?,
                user: u8::arbitrary(u)?,
                action: u8::arbitrary(u)?,
            },
            32 | 33 => Self::Change {
                session,
                back: u8::arbitrary(u)? % 8,
                what: u8::arbitrary(u)?,
            },
            34 | 35 => Self::MarkRead {
                session,
                to: To::arbitrary(u)?,
                back: u8::arbitrary(u)?,
            },
            36 => Self::Search {
                session,
                word: u8::arbitrary(u)?,
            },
            _ => {
                let len = usize::from(u8::arbitrary(u)? % 48);
                let mut bytes = Unstructured::new(u.bytes(len.min(u.len()))?);
                Self::Raw {
                    session,
                    msg: ClientMessage::arbitrary(&mut bytes)?,
                }
            }
        })
    }
}

/// What the checker knows about one open session.
#[derive(Debug)]
struct Tracked {
    id: SessionId,
    user: UserId,
    device: String,
    /// Which of the user's devices (`device` is `<user>-<slot>`), for [`Checker::acked`].
    /// Slot 2 speaks protocol version 1.
    slot: u8,
    /// Whether `CaughtUp` arrived, and the last stored message id at that moment.
    live_from: Option<MessageId>,
    /// Every message id received, in order (strictly increasing: `collect` asserts it), so
    /// "was X received" is a binary search.
    received: Vec<MessageId>,
    /// Once live: every stored message up to here has been checked against `received`.
    checked: MessageId,
    /// *(v2)* The last read marker told to this session, per conversation.
    markers: HashMap<Target, MessageId>,
}

impl Tracked {
    fn has_received(&self, id: MessageId) -> bool {
        self.received.binary_search(&id).is_ok()
    }
}

/// The configuration of every case: built once, since `Config::default()` asks the OS for the
/// available parallelism (reading cgroup files), which cost more than a short case.
fn config() -> Config {
    static CONFIG: OnceLock<Config> = OnceLock::new();
    CONFIG
        .get_or_init(|| Config {
            backlog_batch: 3,
            presence_coalesce_ms: 100,
            ..World::config()
        })
        .clone()
}

/// Runs one fuzz case.
///
/// # Panics
/// When an invariant breaks (that is the point).
pub fn session(data: &[u8]) {
    let mut checker = Checker {
        world: World::new(config()),
        sessions: Vec::new(),
        acked: HashMap::default(),
        next_request: 0,
        stored: 0,
        stored_last: MessageId::default(),
        members: HashMap::default(),
        changed_membership: Vec::new(),
        audited: 0,
        read_markers: HashMap::default(),
    };
    // Every op consumes a few bytes, until the input runs out. (`arbitrary_take_rest_iter`
    // would stop with probability 1/2 after each op: far too short.)
    let mut input = Unstructured::new(data);
    // `CHAT_FUZZ_TRACE=1` prints each step, to read a finding.
    let trace = std::env::var_os("CHAT_FUZZ_TRACE").is_some();
    for _ in 0..MAX_OPS {
        let Ok(op) = Op::arbitrary(&mut input) else {
            break;
        };
        if input.is_empty() {
            break;
        }
        if trace {
            eprintln!("{op:?}");
        }
        checker.apply(op);
        checker.check();
    }
}

/// Most operations in one case: short cases keep the target fast, since every step runs the
/// hub, encodes and decodes its frames and is checked. Per-case cost grows with the steps
/// (under `cargo fuzz run`: ~100 cases/s at 300 steps, ~920/s at 32, ~1,170/s at 24); deep
/// histories come from cases that get there early rather than from long ones.
const MAX_OPS: usize = 24;

struct Checker {
    world: World,
    sessions: Vec<Tracked>,
    /// The highest acknowledged position per `(user, device slot)`, as the client sent it.
    acked: HashMap<(UserId, u8), MessageId>,
    next_request: u32,
    /// How many messages the store held at the last check (messages are never removed)...
    stored: usize,
    /// ... and the last of them.
    stored_last: MessageId,
    /// The membership start (`member_since`) seen at the last check of every `(conversation,
    /// user)` pair a live session has checked a message of: a change can make older messages
    /// visible.
    members: HashMap<(ConvId, UserId), Option<MessageId>>,
    /// Scratch: memberships that became able to see older messages at this step.
    changed_membership: Vec<(ConvId, UserId)>,
    /// How many audit records have been checked.
    audited: usize,
    /// *(v2)* Every stored read marker at the last check.
    read_markers: HashMap<(UserId, ConvId), MessageId>,
}

impl Checker {
    fn pick(&self, index: u8) -> Option<usize> {
        (!self.sessions.is_empty()).then(|| usize::from(index) % self.sessions.len())
    }
    fn target(to: To) -> Target {
        match to {
            To::Room(r) => Target::Room(ROOMS[usize::from(r) % ROOMS.len()].into()),
            To::User(u) => Target::User(USERS[usize::from(u) % USERS.len()].into()),
        }
    }

    fn request(&mut self, at: usize, request: Request) {
        self.next_request += 1;
        let msg = ClientMessage::Request {
            id: RequestId(self.next_request),
            request,
        };
        let id = self.sessions[at].id;
        self.world.send(id, msg);
    }

    fn apply(&mut self, op: Op) {
        match op {
            Op::Connect { user, device } => self.connect(user, device),
            Op::Disconnect { session } => {
                if let Some(at) = self.pick(session) {
                    let gone = self.sessions.remove(at);
                    self.collect();
                    self.world.disconnect(gone.id);
                }
            }
            Op::Send {
                session,
                to,
                client_id,
            } => {
                if let Some(at) = self.pick(session) {
                    let request = Request::Send {
                        target: Self::target(to),
                        client_msg_id: ClientMsgId(u64::from(client_id)),
                        text: format!("m{client_id} w{}", client_id % 4),
                    };
                    self.request(at, request);
                }
            }
            Op::Join { session, room } => {
                if let Some(at) = self.pick(session) {
                    let room = ROOMS[usize::from(room) % ROOMS.len()].into();
                    self.request(at, Request::Join { room });
                }
            }
            Op::Leave { session, room } => {
                if let Some(at) = self.pick(session) {
                    let room = ROOMS[usize::from(room) % ROOMS.len()].into();
                    self.request(at, Request::Leave { room });
                }
            }
            Op::Create {
                session,
                room,
                invite_only,
            } => {
                if let Some(at) = self.pick(session) {
                    let room = ROOMS[usize::from(room) % ROOMS.len()].into();
                    self.request(at, Request::CreateRoom { room, invite_only });
                }
            }
            Op::Invite {
                session,
                room,
                user,
            } => {
                if let Some(at) = self.pick(session) {
                    let room = ROOMS[usize::from(room) % ROOMS.len()].into();
                    let user = USERS[usize::from(user) % USERS.len()].into();
                    self.request(at, Request::Invite { room, user });
                }
            }
            Op::Ack { session, back } => {
                if let Some(at) = self.pick(session) {
                    self.collect();
                    let s = &self.sessions[at];
                    let Some(&last) = s
                        .received
                        .iter()
                        .rev()
                        .nth(usize::from(back))
                        .or(s.received.first())
                    else {
                        return;
                    };
                    let key = (s.user, s.slot);
                    let id = s.id;
                    let position = self.acked.entry(key).or_default();
                    *position = (*position).max(last);
                    self.world.send(id, ClientMessage::Ack { up_to: last });
                }
            }
            Op::Typing {
                session,
                to,
                active,
            } => {
                if let Some(at) = self.pick(session) {
                    let id = self.sessions[at].id;
                    self.world.send(
                        id,
                        ClientMessage::Typing {
                            target: Self::target(to),
                            active,
                        },
                    );
                }
            }
            Op::History { session, to } => {
                if let Some(at) = self.pick(session) {
                    let request = Request::History {
                        target: Self::target(to),
                        before: None,
                        limit: 5,
                    };
                    self.request(at, request);
                }
            }
            Op::Raw { session, msg } => {
                // Acks are checked against what the client acknowledged: keep them honest.
                if let (Some(at), false) =
                    (self.pick(session), matches!(msg, ClientMessage::Ack { .. }))
                {
                    let id = self.sessions[at].id;
                    let logout = matches!(
                        msg,
                        ClientMessage::Request {
                            request: Request::Logout,
                            ..
                        }
                    );
                    self.world.send(id, msg);
                    if logout {
                        // Logged out: no longer a recipient; stop tracking it.
                        self.collect();
                        self.sessions.remove(at);
                        self.world.disconnect(id);
                    }
                }
            }
            Op::Moderate {
                session,
                room,
                user,
                action,
            } => {
                if let Some(at) = self.pick(session) {
                    let room: String = ROOMS[usize::from(room) % ROOMS.len()].into();
                    let user: String = USERS[usize::from(user) % USERS.len()].into();
                    let request = match action % 8 {
                        0 => Request::Kick {
                            room,
                            user,
                            reason: "r".into(),
                        },
                        1 => Request::Ban {
                            room,
                            user,
                            reason: String::new(),
                        },
                        2 => Request::Unban { room, user },
                        3 | 4 => Request::Mute {
                            room,
                            user,
                            muted: action % 8 == 3,
                        },
                        5 => Request::SetRole {
                            room,
                            user,
                            role: Role::Moderator,
                        },
                        6 => Request::SetRole {
                            room,
                            user,
                            role: Role::Member,
                        },
                        _ => Request::SetTopic {
                            room,
                            topic: format!("t{user}"),
                        },
                    };
                    self.request(at, request);
                }
            }
            Op::Change {
                session,
                back,
                what,
            } => {
                if let Some(at) = self.pick(session) {
                    let Some(&message) = self
                        .world
                        .store
                        .messages
                        .keys()
                        .rev()
                        .nth(usize::from(back))
                    else {
                        return;
                    };
                    let request = match what % 3 {
                        0 => Request::Edit {
                            message,
                            text: format!("edit{what} w{}", what % 4),
                        },
                        1 => Request::Delete { message },
                        _ => Request::Redact {
                            message,
                            reason: String::new(),
                        },
                    };
                    self.request(at, request);
                }
            }
            Op::MarkRead { session, to, back } => {
                if let Some(at) = self.pick(session) {
                    let last = self.world.store.last_message().0;
                    let up_to = if back == u8::MAX {
                        MessageId(u64::MAX)
                    } else {
                        MessageId(last.saturating_sub(u64::from(back % 8)))
                    };
                    let request = Request::MarkRead {
                        target: Self::target(to),
                        up_to,
                    };
                    self.request(at, request);
                }
            }
            Op::Search { session, word } => {
                if let Some(at) = self.pick(session) {
                    let before = (word & 4 != 0).then(|| {
                        let last = self.world.store.last_message().0;
                        MessageId(last.saturating_sub(u64::from(word >> 3)))
                    });
                    let request = Request::Search {
                        text: format!("W{}", word % 4),
                        before,
                        limit: 5,
                    };
                    self.request(at, request);
                }
            }
            Op::Advance { ms } => self.world.advance(u64::from(ms)),
            Op::Restart => {
                self.collect();
                self.sessions.clear();
                self.world.restart();
            }
        }
    }

    fn connect(&mut self, user: u8, device: u8) {
        let name = USERS[usize::from(user) % USERS.len()];
        let slot = device % 3;
        let device = format!("{name}-{slot}");
        let id = self
            .world
            .connect_version(if slot == 2 { 1 } else { PROTOCOL_VERSION });
        let register = self.world.store.user_id(name).is_none();
        let request = if register {
            Request::Register {
                username: name.into(),
                password: PASSWORD.into(),
                device: device.clone(),
            }
        } else {
            Request::Login {
                username: name.into(),
                password: PASSWORD.into(),
                device: device.clone(),
            }
        };
        if !matches!(self.world.request(id, request), Ok(Reply::Session(_))) {
            return self.world.disconnect(id);
        }
        let Some(user) = self.world.store.user_id(name) else {
            return;
        };
        self.sessions.push(Tracked {
            id,
            user,
            device,
            slot,
            live_from: None,
            received: Vec::new(),
            checked: MessageId::default(),
            markers: HashMap::default(),
        });
    }

    /// Moves every session's new messages into its record, checking each one.
    fn collect(&mut self) {
        let drained: Vec<Vec<ServerMessage>> = self
            .sessions
            .iter()
            .map(|s| self.world.drain(s.id))
            .collect();
        let store = &self.world.store;
        for (s, events) in self.sessions.iter_mut().zip(drained) {
            for event in events {
                match event {
                    ServerMessage::Message(m) => {
                        let stored = store
                            .messages
                            .get(&m.id)
                            .expect("only stored messages are delivered");
                        assert!(
                            stored.kind != MessageKind::Deleted,
                            "a deleted message was delivered: {m:?}"
                        );
                        let since = store.member_since(stored.conv, s.user);
                        assert!(
                            since.is_some_and(|since| since < m.id),
                            "{:?} got message {:?} of a conversation it is not in",
                            s.user,
                            m.id
                        );
                        assert!(
                            s.received.last().is_none_or(|&last| last < m.id),
                            "out of order or twice: {:?}",
                            m.id
                        );
                        let acked = self
                            .acked
                            .get(&(s.user, s.slot))
                            .copied()
                            .unwrap_or_default();
                        assert!(
                            m.id > acked,
                            "acknowledged message {:?} delivered again",
                            m.id
                        );
                        s.received.push(m.id);
                    }
                    ServerMessage::Moderated { .. }
                    | ServerMessage::Topic { .. }
                    | ServerMessage::DisplayName { .. }
                    | ServerMessage::Unread(_) => {
                        assert!(s.slot != 2, "a version-1 session got a version-2 event");
                    }
                    ServerMessage::ReadMarker { target, up_to } => {
                        assert!(s.slot != 2, "a version-1 session got a version-2 event");
                        let last = s.markers.entry(target).or_default();
                        assert!(up_to > *last, "a read marker moved back: {up_to:?}");
                        *last = up_to;
                    }
                    ServerMessage::Ok {
                        reply: Reply::SearchResults { messages, .. },
                        ..
                    } => {
                        for m in messages {
                            let stored = store.messages.get(&m.id).expect("found messages exist");
                            assert!(
                                matches!(stored.kind, MessageKind::Message | MessageKind::Edited),
                                "a deleted message or a change was found: {stored:?}"
                            );
                            assert_eq!(m.text, stored.text, "found by other than its latest text");
                            assert!(
                                store.member_since(stored.conv, s.user).is_some(),
                                "{:?} found message {:?} of a conversation it is not in",
                                s.user,
                                m.id
                            );
                        }
                    }
                    ServerMessage::Edited { id, .. } | ServerMessage::Deleted { id, .. } => {
                        assert!(s.slot != 2, "a version-1 session got a version-2 event");
                        assert!(store.messages.contains_key(&id), "an unstored change");
                        assert!(
                            s.received.last().is_none_or(|&last| last < id),
                            "out of order or twice: {id:?}"
                        );
                        s.received.push(id);
                    }
                    ServerMessage::Ok {
                        reply: Reply::History { messages, .. },
                        ..
                    } => {
                        for m in messages {
                            let kind = store.messages.get(&m.id).map(|m| m.kind);
                            assert!(
                                kind != Some(MessageKind::Deleted),
                                "a deleted message in a history: {m:?}"
                            );
                        }
                    }
                    ServerMessage::Ok {
                        reply: Reply::Page { messages, .. },
                        ..
                    } => {
                        for e in messages {
                            let kind = store.messages.get(&e.message.id).map(|m| m.kind);
                            if kind == Some(MessageKind::Deleted) {
                                assert!(
                                    e.deleted && e.message.text.is_empty(),
                                    "a deleted message's text in a history: {e:?}"
                                );
                            }
                        }
                    }
                    ServerMessage::CaughtUp => {
                        let last = store.last_message();
                        s.live_from = Some(last);
                        s.checked = last;
                    }
                    ServerMessage::Ok {
                        reply: Reply::Sent { id, .. },
                        ..
                    } => {
                        assert!(
                            store.messages.contains_key(&id),
                            "acknowledged before stored"
                        );
                    }
                    _ => {}
                }
            }
        }
    }

    /// After a step: every live session has every message it should have.
    ///
    /// Incremental: each live session keeps how far into the store it has been checked, so a
    /// step checks only the messages stored since the last one. Older messages are checked
    /// again only for a membership that now sees messages it did not see before (a start
    /// moved back, or a new membership starting below what was checked); the hub never does
    /// that, so in practice this never rescans.
    fn check(&mut self) {
        self.collect();
        // Sessions the hub closed (a second hello, a login deadline, ...) expect nothing more.
        let world = &self.world;
        self.sessions.retain(|s| !world.is_closed(s.id));
        let store = &self.world.store;
        let last = store.last_message();
        // Stored messages are never removed and get increasing ids; if one ever appeared
        // below a session's cursor, the cursors would skip it: check that they cannot.
        let new = store.messages.range(MessageId(self.stored_last.0 + 1)..);
        assert_eq!(
            self.stored + new.count(),
            store.messages.len(),
            "a message was stored below an id already stored"
        );
        for m in store
            .messages
            .range(MessageId(self.stored_last.0 + 1)..)
            .map(|(_, m)| m)
        {
            match m.kind {
                // A muted member's sends are refused: no message stored at this step is theirs.
                MessageKind::Message => assert!(
                    !store.standing(m.conv, m.sender).muted,
                    "a muted member's message was stored: {m:?}"
                ),
                // Only the author edits; a deletion erases the message and its edits.
                MessageKind::Edit { target } => {
                    let original = store.messages.get(&target).expect("edits a stored message");
                    assert_eq!(original.sender, m.sender, "an edit by another user");
                }
                MessageKind::Delete { target, redacted } => {
                    let original = store
                        .messages
                        .get(&target)
                        .expect("deletes a stored message");
                    assert!(
                        original.kind == MessageKind::Deleted && original.text.is_empty(),
                        "a deleted message kept its text"
                    );
                    if redacted {
                        let rank = if store.is_operator(m.sender) {
                            3
                        } else {
                            store.standing(m.conv, m.sender).role as u8
                        };
                        assert!(
                            rank >= Role::Moderator as u8,
                            "a redaction by a non-moderator"
                        );
                    } else {
                        assert_eq!(original.sender, m.sender, "a deletion by another user");
                    }
                    for later in store.messages.range(target..).map(|(_, m)| m) {
                        if later.kind == (MessageKind::Edit { target }) {
                            assert!(
                                later.text.is_empty(),
                                "an edit of a deleted message kept its text"
                            );
                        }
                    }
                }
                _ => {}
            }
        }
        // Only moderators (owners for roles) act, on lower ranks; a banned user is no member.
        for record in &store.audit()[self.audited..] {
            let rank = |user| {
                if store.is_operator(user) {
                    3
                } else {
                    store.standing(record.conv, user).role as u8
                }
            };
            let needed = match record.action {
                ModAction::Opped | ModAction::Deopped => Role::Owner as u8,
                _ => Role::Moderator as u8,
            };
            // A redaction acts on a message (possibly the moderator's own), not on a user.
            let outranks =
                record.action == ModAction::Redacted || rank(record.actor) > rank(record.target);
            assert!(
                rank(record.actor) >= needed && outranks,
                "moderation by a user without the rank: {record:?}"
            );
        }
        self.audited = store.audit().len();
        // A stored read marker never moves back.
        for (user, conv, up_to) in store.read_markers() {
            let before = self.read_markers.entry((user, conv)).or_default();
            assert!(up_to >= *before, "a stored read marker moved back");
            *before = up_to;
        }
        for (conv, user, standing) in store.standings() {
            assert!(
                !standing.banned || store.member_since(conv, user).is_none(),
                "a banned user is a member"
            );
        }
        self.stored = store.messages.len();
        self.stored_last = last;
        // Memberships that now see older messages than they did.
        self.changed_membership.clear();
        for (&(conv, user), before) in &mut self.members {
            let now = store.member_since(conv, user);
            if now != *before {
                // Messages in `now + 1..=before` (or above `now`) became visible: any stored?
                if now.is_some_and(|now| now < last && before.is_none_or(|before| now < before)) {
                    self.changed_membership.push((conv, user));
                }
                *before = now;
            }
        }
        for s in &mut self.sessions {
            let Some(live_from) = s.live_from else {
                continue;
            };
            for &(conv, user) in &self.changed_membership {
                if user != s.user || s.checked <= live_from {
                    continue;
                }
                for (id, m) in store.messages.range(MessageId(live_from.0 + 1)..=s.checked) {
                    if m.conv == conv {
                        Self::expect_received(store, s, live_from, *id, m);
                    }
                }
            }
            for (id, m) in store.messages.range(MessageId(s.checked.0 + 1)..) {
                Self::expect_received(store, s, live_from, *id, m);
                self.members
                    .entry((m.conv, s.user))
                    .or_insert_with(|| store.member_since(m.conv, s.user));
            }
            s.checked = s.checked.max(last);
        }
    }

    /// Checks that live session `s` received stored message `m` if it should have: it can see
    /// the conversation and the message is not from its own device.
    fn expect_received(
        store: &MemoryStore,
        s: &Tracked,
        live_from: MessageId,
        id: MessageId,
        m: &StoredMessage,
    ) {
        let visible = store
            .member_since(m.conv, s.user)
            .is_some_and(|since| since < id);
        if !visible || s.has_received(id) {
            return;
        }
        // A tombstone is never sent; a change is nothing to a version-1 session; an edit of a
        // message deleted since is erased.
        let change = !m.kind.is_message();
        let erased = matches!(m.kind, MessageKind::Edit { .. }) && m.text.is_empty();
        if m.kind == MessageKind::Deleted || (change && s.slot == 2) || erased {
            return;
        }
        let own_device = m.sender == s.user
            && store
                .device_name(m.device)
                .is_some_and(|name| name == s.device);
        assert!(
            own_device,
            "{:?} on {} (live from {live_from:?}, received {:?}) missed {m:?}",
            s.user, s.device, s.received
        );
    }
}
