//! Identifiers, time, and the records storage keeps: the vocabulary shared by the state machine
//! ([`Hub`](crate::Hub)) and whatever stores its writes.

pub use chat_proto::{ClientMsgId, MessageId, ModAction, Role, UnixMillis};

/// A point on a monotonic clock, in milliseconds since an arbitrary start (the driver's choice).
/// Every deadline runs on it, so a step of the wall clock moves no timer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Mono(pub u64);

impl Mono {
    /// `ms` milliseconds later.
    #[must_use]
    pub fn plus(self, ms: u64) -> Self {
        Self(self.0.saturating_add(ms))
    }

    /// Milliseconds from `earlier` to `self` (zero if `earlier` is later).
    pub fn since(self, earlier: Self) -> u64 {
        self.0.saturating_sub(earlier.0)
    }
}

/// The time of an input, read by the driver from both clocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Now {
    /// The monotonic clock: login deadlines, rate limits, typing, presence, flushes.
    pub mono: Mono,
    /// The wall clock, in Unix milliseconds: stamps messages, accounts, devices and tokens.
    pub wall: UnixMillis,
}

/// A registered user (a storage row id).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct UserId(pub u64);

/// A conversation: a room or a direct conversation between two users.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ConvId(pub u64);

/// A user's device (each has its own delivery position).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct DeviceId(pub u64);

/// One connection to the engine, from connect to disconnect.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(pub u64);

/// What a conversation is.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum ConvKind {
    /// A named room.
    Room {
        /// Its normalised (lower-case) name.
        name: String,
        /// Whether only members may add members.
        invite_only: bool,
    },
    /// The direct conversation of two users (`a <= b`; equal for notes to oneself).
    Direct {
        /// The user with the lower id.
        a: UserId,
        /// The user with the higher id.
        b: UserId,
    },
}

/// A chat message as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct StoredMessage {
    /// Server-assigned, increasing in storage order.
    pub id: MessageId,
    /// The conversation it belongs to.
    pub conv: ConvId,
    /// The sender.
    pub sender: UserId,
    /// The device it was sent from (not replayed to that device).
    pub device: DeviceId,
    /// The sender's de-duplication id.
    pub client_msg_id: ClientMsgId,
    /// When it was accepted.
    pub sent_at: UnixMillis,
    /// The text (the latest, for a message; empty once deleted).
    pub text: String,
    /// *(v2)* A message, or a change to an earlier one.
    pub kind: MessageKind,
}

/// *(v2)* What a stored message row is. Changes take ids from the same sequence as messages,
/// so the backlog carries them to devices that already have the original.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum MessageKind {
    /// A chat message.
    #[default]
    Message,
    /// A message whose author edited it (`text` is the latest).
    Edited,
    /// A deleted or redacted message: a tombstone, its text erased.
    Deleted,
    /// An edit of `target`; `text` is the new text (erased if `target` is deleted later).
    Edit {
        /// The message edited.
        target: MessageId,
    },
    /// The deletion of `target` by its author, or its redaction by a moderator (`redacted`);
    /// `text` is the reason.
    Delete {
        /// The message deleted.
        target: MessageId,
        /// Whether a moderator redacted it.
        redacted: bool,
    },
}

impl MessageKind {
    /// Whether a row of this kind is a message (not a change to one).
    pub fn is_message(self) -> bool {
        matches!(self, Self::Message | Self::Edited | Self::Deleted)
    }
}

/// One change to durable state. The hub decides; storage applies these in order.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Write {
    /// A new account.
    CreateUser {
        /// Its id.
        id: UserId,
        /// The username as registered.
        name: String,
        /// The argon2id PHC string.
        password_hash: String,
        /// Registration time.
        created_at: UnixMillis,
    },
    /// A new display name.
    SetDisplayName {
        /// The user.
        user: UserId,
        /// The name.
        display_name: String,
    },
    /// A new conversation.
    CreateConv {
        /// Its id.
        id: ConvId,
        /// What it is.
        kind: ConvKind,
        /// Creation time.
        created_at: UnixMillis,
    },
    /// A user joins a conversation and sees its messages with ids above `since`.
    AddMember {
        /// The conversation.
        conv: ConvId,
        /// The user.
        user: UserId,
        /// The last message id before the user joined: [`UNNUMBERED`] (the hub's) is the
        /// persist's position at commit (see [`Numbering`]).
        since: MessageId,
    },
    /// A user leaves a conversation.
    RemoveMember {
        /// The conversation.
        conv: ConvId,
        /// The user.
        user: UserId,
    },
    /// A message; if the sender already stored `client_msg_id`, nothing is written and the
    /// original is reported instead. An `id` of [`UNNUMBERED`] (the hub's) is given at commit
    /// (see [`Numbering`]).
    InsertMessage(StoredMessage),
    /// A device is known, with its delivery position (insert or update).
    SetDevice {
        /// Its id.
        id: DeviceId,
        /// Its user.
        user: UserId,
        /// The client's name for it.
        name: String,
        /// The highest message id it acknowledged.
        cursor: MessageId,
        /// Its last login.
        last_seen: UnixMillis,
    },
    /// A device is forgotten.
    DeleteDevice {
        /// Its id.
        id: DeviceId,
    },
    /// A session token is issued (only its hash is kept).
    CreateToken {
        /// SHA-256 of the token.
        hash: [u8; 32],
        /// Its user.
        user: UserId,
        /// The device it was issued to.
        device: DeviceId,
        /// When it stops working.
        expires_at: UnixMillis,
    },
    /// A session token is revoked.
    RevokeToken {
        /// SHA-256 of the token.
        hash: [u8; 32],
    },
    /// *(v2)* A user's standing in a room changes (insert or update; the default standing
    /// may be deleted).
    SetStanding {
        /// The room.
        conv: ConvId,
        /// The user.
        user: UserId,
        /// The new standing.
        standing: Standing,
    },
    /// *(v2)* A stored message is edited (`text` is `Some`: its new text) or deleted (`None`:
    /// its text and the text of every edit of it are erased).
    ChangeMessage {
        /// The message.
        target: MessageId,
        /// The new text, or `None` to delete.
        text: Option<String>,
    },
    /// *(v2)* A room's topic changes (empty: none).
    SetTopic {
        /// The room.
        conv: ConvId,
        /// The topic.
        topic: String,
    },
    /// *(v2)* A moderation action, appended to the audit log.
    Audit(AuditRecord),
    /// *(v2)* A user becomes (`true`) or stops being a server operator.
    SetOperator {
        /// The user.
        user: UserId,
        /// Whether they are an operator.
        operator: bool,
    },
    /// *(v2)* An account is disabled (`true`) or enabled again.
    SetDisabled {
        /// The user.
        user: UserId,
        /// Whether the account is disabled.
        disabled: bool,
    },
    /// *(v2)* A user has read a conversation up to message `up_to` (insert or update; a
    /// stored marker never moves back, even if this one is lower).
    SetReadMarker {
        /// The user.
        user: UserId,
        /// The conversation.
        conv: ConvId,
        /// The newest message read.
        up_to: MessageId,
    },
}

/// The `id` of a new message and the `since` of a new membership until storage numbers them
/// at commit (see [`Numbering`]). Never a real id: SQL stores ids as signed 64-bit integers.
pub const UNNUMBERED: MessageId = MessageId(u64::MAX);

/// How every storage backend numbers a batch of persists as it commits it, so that message ids
/// are one sequence in commit order, whoever issued them: no message is ever committed with an
/// id below one a device could already have acknowledged, even with several writers (nodes)
/// on one database, as long as each batch is numbered and committed under one lock.
///
/// Persists are numbered in order. A persist's *position* is the last id taken before it;
/// each [`Write::InsertMessage`] whose id is [`UNNUMBERED`] takes the next id (a resend found
/// to be a duplicate still takes one, left unused), and each [`Write::AddMember`] whose `since`
/// is [`UNNUMBERED`] gets the persist's position, so it sees the persist's own message and
/// everything committed after. A given id or `since` is kept, and numbering goes on above it
/// (copies and tests write given ones). [`Committed`] reports each persist's position back to
/// the hub.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Numbering {
    last: MessageId,
    position: MessageId,
}

impl Numbering {
    /// Numbering above `last`, the highest id (or position) storage holds.
    pub fn new(last: MessageId) -> Self {
        Self {
            last,
            position: last,
        }
    }

    /// Starts the next persist; returns its position.
    pub fn persist(&mut self) -> MessageId {
        self.position = self.last;
        self.position
    }

    /// The id of a message of the current persist, given or taken.
    pub fn message(&mut self, id: MessageId) -> MessageId {
        if id == UNNUMBERED {
            self.last.0 += 1;
            self.last
        } else {
            self.last = self.last.max(id);
            id
        }
    }

    /// The `since` of a membership of the current persist, given or its position.
    pub fn since(&mut self, since: MessageId) -> MessageId {
        if since == UNNUMBERED {
            self.position
        } else {
            self.last = self.last.max(since);
            since
        }
    }

    /// Numbers one persist's writes in place; returns its position.
    pub fn number(&mut self, writes: &mut [Write]) -> MessageId {
        let position = self.persist();
        for write in writes {
            match write {
                Write::InsertMessage(m) => m.id = self.message(m.id),
                Write::AddMember { since, .. } => *since = self.since(*since),
                _ => {}
            }
        }
        position
    }

    /// The last id taken.
    pub fn last(&self) -> MessageId {
        self.last
    }
}

/// What storage reports of each persist it committed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Committed {
    /// The persist's position ([`Numbering`]): its memberships see messages above it, and its
    /// message, if it had one, was numbered `position + 1`.
    pub position: MessageId,
    /// The original `(id, sent_at)`, if its message was a resend of one stored before.
    pub duplicate: Option<(MessageId, UnixMillis)>,
    /// *(cluster)* `(ours, theirs)`: the conversation this persist created had been created by
    /// another node first (a room of the same name, the same two users' direct
    /// conversation); storage kept theirs and wrote this persist (and every later write
    /// naming ours) to it. The hub adopts theirs.
    pub adopted: Option<(ConvId, ConvId)>,
    /// *(cluster)* The user this persist registered, under a name another node had just
    /// registered first: nothing of the persist was written, nor will be any later write
    /// naming that user. The hub forgets the user and closes their sessions.
    pub taken: Option<UserId>,
}

impl Write {
    /// Whether this write concerns `user` (creates, changes or names it), so that it is
    /// dropped with a registration that lost its name (see [`Committed::taken`]).
    pub fn names_user(&self, user: UserId) -> bool {
        match self {
            Self::CreateUser { id, .. } => *id == user,
            Self::SetDisplayName { user: u, .. }
            | Self::AddMember { user: u, .. }
            | Self::RemoveMember { user: u, .. }
            | Self::SetDevice { user: u, .. }
            | Self::CreateToken { user: u, .. }
            | Self::SetStanding { user: u, .. }
            | Self::SetOperator { user: u, .. }
            | Self::SetDisabled { user: u, .. }
            | Self::SetReadMarker { user: u, .. } => *u == user,
            Self::InsertMessage(m) => m.sender == user,
            Self::CreateConv {
                kind: ConvKind::Direct { a, b },
                ..
            } => *a == user || *b == user,
            _ => false,
        }
    }

    /// Makes a write that names conversation `from` name `to` instead (a room adopted, see
    /// [`Committed::adopted`]). A write creating `from` is left as it is.
    pub fn rename_conv(&mut self, from: ConvId, to: ConvId) {
        let conv = match self {
            Self::AddMember { conv, .. }
            | Self::RemoveMember { conv, .. }
            | Self::SetStanding { conv, .. }
            | Self::SetTopic { conv, .. }
            | Self::SetReadMarker { conv, .. } => conv,
            Self::InsertMessage(m) => &mut m.conv,
            Self::Audit(record) => &mut record.conv,
            _ => return,
        };
        if *conv == from {
            *conv = to;
        }
    }
}

/// *(cluster)* What one node committed in one transaction, as every other node applies it
/// ([`Hub::handle_committed`](crate::Hub::handle_committed)): the writes as storage numbered
/// them, its messages' ids in `(from, to]`. What no hub keeps is left out: password hashes
/// (blanked), tokens, audit records and text changes (storage serves them).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct CommittedBatch {
    /// The position of its first persist: everything at or below it was committed before.
    pub from: MessageId,
    /// The last id it took (`from` if it took none).
    pub to: MessageId,
    /// The writes, in commit order.
    pub writes: Vec<Write>,
}

impl CommittedBatch {
    /// The batch of `persists` as storage committed them (`committed`, one per persist): the
    /// same [`Numbering`] again from the first persist's position, conversations adopted and
    /// registrations dropped as storage adopted and dropped them.
    pub fn new(persists: &[Vec<Write>], committed: &[Committed]) -> Self {
        let from = committed.first().map(|c| c.position).unwrap_or_default();
        let mut numbering = Numbering::new(from);
        let mut adopted: Vec<(ConvId, ConvId)> = Vec::new();
        let mut taken: Vec<UserId> = Vec::new();
        let mut writes = Vec::new();
        for (persist, committed) in persists.iter().zip(committed) {
            let mut persist = persist.clone();
            numbering.number(&mut persist);
            if let Some((ours, theirs)) = committed.adopted {
                persist.retain(|w| !matches!(w, Write::CreateConv { id, .. } if *id == ours));
                adopted.push((ours, theirs));
            }
            if let Some(user) = committed.taken {
                taken.push(user);
            }
            persist.retain(|w| !taken.iter().any(|&user| w.names_user(user)));
            for write in &mut persist {
                for &(ours, theirs) in &adopted {
                    write.rename_conv(ours, theirs);
                }
            }
            writes.extend(persist.into_iter().filter_map(|write| match write {
                Write::CreateUser {
                    id,
                    name,
                    created_at,
                    ..
                } => Some(Write::CreateUser {
                    id,
                    name,
                    password_hash: String::new(),
                    created_at,
                }),
                Write::CreateToken { .. }
                | Write::RevokeToken { .. }
                | Write::Audit(_)
                | Write::ChangeMessage { .. } => None,
                write => Some(write),
            }));
        }
        Self {
            from,
            to: numbering.last(),
            writes,
        }
    }
}

/// *(cluster)* What one node tells the others over the bus.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum NodeMessage {
    /// A batch it committed.
    Committed(CommittedBatch),
    /// One of its users started or stopped typing (never stored).
    Typing {
        /// The typist.
        user: UserId,
        /// Where.
        to: TypingTo,
        /// Started (or refreshed) or stopped.
        active: bool,
    },
}

/// *(cluster)* Where a user types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum TypingTo {
    /// In a room.
    Room(ConvId),
    /// To a user.
    User(UserId),
}

/// The user, conversation and device ids a hub may assign: `first..=last`, one range shared by
/// the three kinds (each counts on its own within it).
///
/// Nodes sharing one database assign from disjoint blocks, so their new ids never collide:
/// PostgreSQL hands each start of a node block `n` of its `id_blocks` sequence
/// ([`numbered`](Self::numbered)). SQLite and memory serve one node, whose block is
/// [`ALL`](Self::ALL): it assigns above the highest id stored, as it always did.
///
/// A hub's counters start above the highest id *inside* its block that the snapshot holds, and
/// only such ids move them: ids in other blocks (another node's users, conversations and
/// devices) are known but never counted. When a block is used up, the hub refuses to create
/// rather than reuse an id.
///
/// Every id stays at or below [`MAX_ID`](Self::MAX_ID) = 2^53 - 1, so it is exact as a
/// JavaScript number (the web client reads ids as numbers).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdBlock {
    /// The lowest id of the block (at least 1: id 0 is never assigned).
    pub first: u64,
    /// The highest id of the block.
    pub last: u64,
}

impl IdBlock {
    /// The highest id ever assigned: 2^53 - 1, the largest integer a JavaScript number holds
    /// exactly with every integer below it.
    pub const MAX_ID: u64 = (1 << 53) - 1;
    /// How many ids a numbered block holds: 2^32, so 2^21 blocks fit below [`MAX_ID`](Self::MAX_ID).
    pub const SIZE: u64 = 1 << 32;
    /// Every id, for a database only one node writes (SQLite, memory).
    pub const ALL: Self = Self {
        first: 1,
        last: Self::MAX_ID,
    };

    /// Block `n`: ids `n * 2^32 ..= (n + 1) * 2^32 - 1` (block 0 starts at 1). `None` past the
    /// last block below [`MAX_ID`](Self::MAX_ID) (`n >= 2^21`).
    pub fn numbered(n: u64) -> Option<Self> {
        let first = n.checked_mul(Self::SIZE)?;
        let last = first.checked_add(Self::SIZE - 1)?;
        (last <= Self::MAX_ID).then_some(Self {
            first: first.max(1),
            last,
        })
    }

    /// The number of the block `id` falls in ([`numbered`](Self::numbered)).
    pub fn number_of(id: u64) -> u64 {
        id / Self::SIZE
    }

    /// Whether `id` is in this block.
    pub fn contains(&self, id: u64) -> bool {
        (self.first..=self.last).contains(&id)
    }
}

impl Default for IdBlock {
    fn default() -> Self {
        Self::ALL
    }
}

/// Everything the hub keeps in memory, as loaded from storage at start.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// The block this hub assigns new user, conversation and device ids from (see [`IdBlock`]);
    /// the rows below may hold ids of other blocks, assigned by other nodes.
    pub ids: IdBlock,
    /// Every user.
    pub users: Vec<UserRow>,
    /// Every conversation.
    pub convs: Vec<ConvRow>,
    /// Every membership.
    pub members: Vec<MemberRow>,
    /// Every device.
    pub devices: Vec<DeviceRow>,
    /// The highest message id stored (or membership position: see [`Numbering`]).
    pub last_message: MessageId,
    /// *(v2)* Every standing other than a plain member's.
    pub standings: Vec<StandingRow>,
    /// *(v2)* The server operators.
    pub operators: Vec<UserId>,
    /// *(v2)* Every room's topic that is not empty.
    pub topics: Vec<(ConvId, String)>,
    /// *(v2)* The disabled accounts.
    pub disabled: Vec<UserId>,
    /// *(v2)* Every read marker.
    pub read_markers: Vec<ReadMarkerRow>,
}

/// *(v2)* A read marker: `user` has read `conv` up to message `up_to`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadMarkerRow {
    /// The user.
    pub user: UserId,
    /// The conversation.
    pub conv: ConvId,
    /// The newest message read.
    pub up_to: MessageId,
}

/// *(v2)* What storage counted of one conversation for a user's unread messages: the
/// messages of others after a position (not changes, not deleted ones).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnreadTally {
    /// The conversation.
    pub conv: ConvId,
    /// How many (at most the cap asked for).
    pub count: u32,
    /// The newest of them (0 if none).
    pub latest: MessageId,
}

/// A user, as the hub keeps it (the password hash stays in storage).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserRow {
    /// Its id.
    pub id: UserId,
    /// The username as registered.
    pub name: String,
    /// The display name.
    pub display_name: String,
}

/// A conversation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConvRow {
    /// Its id.
    pub id: ConvId,
    /// What it is.
    pub kind: ConvKind,
}

/// A membership: `user` sees the messages of `conv` with ids above `since`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemberRow {
    /// The conversation.
    pub conv: ConvId,
    /// The member.
    pub user: UserId,
    /// The last message id before the user joined.
    pub since: MessageId,
}

/// A device and its delivery position.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceRow {
    /// Its id.
    pub id: DeviceId,
    /// Its user.
    pub user: UserId,
    /// The client's name for it.
    pub name: String,
    /// The highest message id it acknowledged.
    pub cursor: MessageId,
    /// Its last login (wall clock).
    pub last_seen: UnixMillis,
}

/// A stored token, as found by its hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenRecord {
    /// Its user.
    pub user: UserId,
    /// The device it was issued to.
    pub device: DeviceId,
    /// When it stops working.
    pub expires_at: UnixMillis,
}

/// A user's standing in a room: role and sanctions. The default is a plain member.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Standing {
    /// The user's role.
    pub role: Role,
    /// Kept out of the room (not a member, cannot join or be invited).
    pub banned: bool,
    /// A member who may not post.
    pub muted: bool,
}

impl Default for Standing {
    fn default() -> Self {
        Self {
            role: Role::Member,
            banned: false,
            muted: false,
        }
    }
}

/// A stored standing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StandingRow {
    /// The room.
    pub conv: ConvId,
    /// The user.
    pub user: UserId,
    /// Their standing.
    pub standing: Standing,
}

/// One moderation action, as the audit log keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct AuditRecord {
    /// The room.
    pub conv: ConvId,
    /// Who acted (a moderator, the owner or a server operator).
    pub actor: UserId,
    /// Who was acted on.
    pub target: UserId,
    /// What was done.
    pub action: ModAction,
    /// Why (possibly empty).
    pub reason: String,
    /// When.
    pub at: UnixMillis,
}
