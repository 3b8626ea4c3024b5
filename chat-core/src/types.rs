//! Identifiers and the records the engine stores: the vocabulary shared by the state machine
//! ([`Hub`](crate::Hub)) and storage ([`Store`](crate::Store)).

pub use chat_proto::{ClientMsgId, MessageId, UnixMillis};

/// A registered user (a storage row id).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserId(pub u64);

/// A conversation: a room or a direct conversation between two users.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConvId(pub u64);

/// A user's device (each has its own delivery position).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeviceId(pub u64);

/// One connection to the engine, from connect to disconnect.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(pub u64);

/// What a conversation is.
#[derive(Clone, Debug, PartialEq, Eq)]
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
    /// The text.
    pub text: String,
}

/// One change to durable state. The hub decides; storage applies these in order.
#[derive(Clone, Debug, PartialEq, Eq)]
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
        /// The last message id before the user joined.
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
    /// original is reported instead.
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
}

/// Everything the hub keeps in memory, as loaded from storage at start.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// `(id, name, display name)` of every user.
    pub users: Vec<(UserId, String, String)>,
    /// Every conversation.
    pub convs: Vec<(ConvId, ConvKind)>,
    /// `(conversation, user, since)` of every membership.
    pub members: Vec<(ConvId, UserId, MessageId)>,
    /// `(id, user, name, cursor, last seen)` of every device.
    pub devices: Vec<(DeviceId, UserId, String, MessageId, UnixMillis)>,
    /// The highest message id stored.
    pub last_message: MessageId,
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
