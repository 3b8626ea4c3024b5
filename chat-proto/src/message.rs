//! The message catalogue: every request a client can make and every event a server can send.
//!
//! Both directions are closed enums ([`ClientMessage`], [`ServerMessage`]); their serde encoding
//! under bincode's standard configuration *is* the wire format, specified in `docs/PROTOCOL.md`.
//! Variants may only ever be appended (never reordered or removed) within a protocol version,
//! because the variant index is what goes on the wire.

use serde::{Deserialize, Serialize};

/// The newest protocol version this crate speaks (what [`Hello::current`] asks for).
pub const PROTOCOL_VERSION: u16 = 2;

/// The oldest protocol version a server built on this crate still speaks. Version 1 is
/// version 2 without the variants marked "version 2" (appended at the end of each enum), so a
/// version-1 peer decodes every frame a server sends it.
pub const MIN_PROTOCOL_VERSION: u16 = 1;

/// A client-chosen number that correlates a [`Request`] with its [`ServerMessage::Ok`] or
/// [`ServerMessage::Err`] reply. The server echoes it and never interprets it.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct RequestId(pub u32);

/// A server-assigned message identifier. Ids increase in the order messages were stored, so
/// "every message up to id N" is a well-defined position (see [`ClientMessage::Ack`]).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct MessageId(pub u64);

/// A client-chosen message identifier, unique per sending user. A resend with an id the server
/// already stored is answered with the original [`MessageId`] and is neither stored nor
/// delivered again.
///
/// Any number the user has not used before works; the recommended ones, made by
/// [`ClientMsgIds`], grow with time, so that a server's index of them (the one that finds a
/// resend's original) takes each new id at its end instead of at a random place.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct ClientMsgId(pub u64);

/// Makes one device's [`ClientMsgId`]s the recommended way: milliseconds since the Unix epoch
/// in the high 42 bits (enough until the year 2109), then the low 22 bits of a random number,
/// and never an id at or below the last one it made (a clock that steps back, or two ids in one
/// millisecond, take the last id plus one instead).
///
/// Two devices of one user collide only if they send in the same millisecond and draw the
/// same 22 random bits: one chance in four million for such a pair.
///
/// ```
/// use chat_proto::ClientMsgIds;
///
/// let mut ids = ClientMsgIds::default();
/// let first = ids.next(1_765_000_000_000, 0x2a);
/// let second = ids.next(1_765_000_000_000, 0x2a); // the same millisecond and draw
/// assert_eq!(first.0 >> 22, 1_765_000_000_000);
/// assert!(second > first);
/// ```
#[derive(Clone, Debug, Default)]
pub struct ClientMsgIds {
    last: u64,
}

impl ClientMsgIds {
    /// Bits of randomness below the milliseconds.
    const RANDOM_BITS: u32 = 22;

    /// The next id, at this machine's clock (0 if it is set before 1970) with `random`'s low
    /// bits.
    pub fn next_now(&mut self, random: u64) -> ClientMsgId {
        let unix_millis = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| {
                u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
            });
        self.next(unix_millis, random)
    }

    /// The next id, at `unix_millis` (the device's clock) with `random`'s low bits.
    pub fn next(&mut self, unix_millis: u64, random: u64) -> ClientMsgId {
        let random = random & ((1 << Self::RANDOM_BITS) - 1);
        let id = (unix_millis << Self::RANDOM_BITS | random).max(self.last.wrapping_add(1));
        self.last = id;
        ClientMsgId(id)
    }
}

/// Milliseconds since the Unix epoch (UTC), as stamped by the server.
pub type UnixMillis = u64;

/// Where a message or a typing notice goes: a room, or one user (a direct message).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum Target {
    /// A room, by name (without the `#` that clients display).
    Room(String),
    /// A user, by username: a direct message conversation.
    User(String),
}

// ===== client to server =====

/// Everything a client sends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum ClientMessage {
    /// The first message on a connection: the versions this client speaks.
    Hello(Hello),
    /// A request expecting exactly one reply carrying the same `id`.
    Request {
        /// Echoed in the reply.
        id: RequestId,
        /// What is asked.
        request: Request,
    },
    /// Cumulative acknowledgement: this device has durably received every message addressed to
    /// it with an id up to and including `up_to`. No reply.
    Ack {
        /// The highest message id received.
        up_to: MessageId,
    },
    /// The user started (`active = true`) or stopped typing toward `target`. No reply.
    Typing {
        /// The room or user the user is typing to.
        target: Target,
        /// Whether typing is in progress.
        active: bool,
    },
    /// Keepalive probe; the server answers [`ServerMessage::Pong`] with the same nonce.
    Ping {
        /// Echoed in the pong.
        nonce: u64,
    },
    /// Answer to a [`ServerMessage::Ping`].
    Pong {
        /// The nonce of the ping being answered.
        nonce: u64,
    },
}

/// Version negotiation: the client speaks every version in `min_version..=max_version`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct Hello {
    /// Lowest protocol version the client speaks.
    pub min_version: u16,
    /// Highest protocol version the client speaks.
    pub max_version: u16,
    /// Free-form client name and version, for the server's logs (e.g. `chat-cli/0.1.0`).
    pub client: String,
}

impl Hello {
    /// A hello for exactly this crate's [`PROTOCOL_VERSION`].
    pub fn current(client: impl Into<String>) -> Self {
        Self::version(PROTOCOL_VERSION, client)
    }

    /// A hello for exactly `version` (e.g. 1, to speak as a version-1 client).
    pub fn version(version: u16, client: impl Into<String>) -> Self {
        Self {
            min_version: version,
            max_version: version,
            client: client.into(),
        }
    }
}

/// A request; the reply is [`ServerMessage::Ok`] with the [`Reply`] named on each variant, or
/// [`ServerMessage::Err`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum Request {
    /// Create an account and log this connection in as `device`. Reply: [`Reply::Session`].
    Register {
        /// The new username.
        username: String,
        /// The password (sent in clear over the transport: use TLS off loopback).
        password: String,
        /// A stable id this client keeps for its device (its delivery position is per device).
        device: String,
    },
    /// Log in with a password as `device`. Reply: [`Reply::Session`].
    Login {
        /// The username.
        username: String,
        /// The password.
        password: String,
        /// A stable id this client keeps for its device.
        device: String,
    },
    /// Log in again with the token of an earlier [`Reply::Session`] (after a reconnect).
    /// Reply: [`Reply::Session`] (with the same token).
    Resume {
        /// The session token.
        token: String,
        /// The device the token was issued to.
        device: String,
    },
    /// Revoke this session's token and return the connection to the logged-out state.
    /// Reply: [`Reply::Done`].
    Logout,
    /// Create a room and join it. Reply: [`Reply::Room`].
    CreateRoom {
        /// The room name.
        room: String,
        /// Whether only members may add new members.
        invite_only: bool,
    },
    /// Join a room, creating it as a public room if it does not exist. Reply: [`Reply::Room`].
    Join {
        /// The room name.
        room: String,
    },
    /// Leave a room. Reply: [`Reply::Done`].
    Leave {
        /// The room name.
        room: String,
    },
    /// Add `user` to `room` (the inviter must be a member). Reply: [`Reply::Done`].
    Invite {
        /// The room name.
        room: String,
        /// The username to add.
        user: String,
    },
    /// List the public rooms and the rooms this user is in. Reply: [`Reply::Rooms`].
    ListRooms,
    /// List the members of a room with their online status. Reply: [`Reply::Members`].
    Who {
        /// The room name.
        room: String,
    },
    /// List every user with their online status. Reply: [`Reply::Users`].
    ListUsers,
    /// Set the name shown for this user. Reply: [`Reply::Done`].
    SetDisplayName {
        /// The new display name.
        display_name: String,
    },
    /// Send a message to a room or a user. Reply: [`Reply::Sent`], only once it is stored.
    Send {
        /// Where the message goes.
        target: Target,
        /// The de-duplication id for resends.
        client_msg_id: ClientMsgId,
        /// The message text.
        text: String,
    },
    /// Fetch a page of a conversation's history, newest first. Reply: [`Reply::History`].
    History {
        /// The room or the other user of a direct conversation.
        target: Target,
        /// Only messages with an id below this one (`None`: from the newest).
        before: Option<MessageId>,
        /// At most this many messages (the server caps it to its page limit).
        limit: u16,
    },
    /// *(v2)* Make `user` a moderator of `room` or a plain member again (owners and server
    /// operators only). Reply: [`Reply::Done`].
    SetRole {
        /// The room name.
        room: String,
        /// The username.
        user: String,
        /// The new role ([`Role::Owner`] cannot be given).
        role: Role,
    },
    /// *(v2)* Remove `user` from `room`; they may join again (moderators only).
    /// Reply: [`Reply::Done`].
    Kick {
        /// The room name.
        room: String,
        /// The username.
        user: String,
        /// Why, shown to the room (at most 256 bytes; may be empty).
        reason: String,
    },
    /// *(v2)* Remove `user` from `room` and keep them out, even by invitation, until
    /// [`Request::Unban`] (moderators only). Reply: [`Reply::Done`].
    Ban {
        /// The room name.
        room: String,
        /// The username (need not be a member).
        user: String,
        /// Why, shown to the room (at most 256 bytes; may be empty).
        reason: String,
    },
    /// *(v2)* Lift a ban (moderators only). Reply: [`Reply::Done`].
    Unban {
        /// The room name.
        room: String,
        /// The username.
        user: String,
    },
    /// *(v2)* Mute (`muted = true`) or unmute a member: a muted member stays but may not post
    /// (moderators only). Reply: [`Reply::Done`].
    Mute {
        /// The room name.
        room: String,
        /// The username.
        user: String,
        /// Whether the user is muted from now on.
        muted: bool,
    },
    /// *(v2)* Replace the text of one of this user's messages. Reply: [`Reply::Sent`] with the
    /// id of the change (see [`ServerMessage::Edited`]).
    Edit {
        /// The message.
        message: MessageId,
        /// Its new text.
        text: String,
    },
    /// *(v2)* Delete one of this user's messages: its text is erased everywhere. Reply:
    /// [`Reply::Sent`] with the id of the change (see [`ServerMessage::Deleted`]).
    Delete {
        /// The message.
        message: MessageId,
    },
    /// *(v2)* Delete any message of a room (moderators only). Reply: [`Reply::Sent`] with the
    /// id of the change.
    Redact {
        /// The message.
        message: MessageId,
        /// Why (at most 256 bytes; may be empty).
        reason: String,
    },
    /// *(v2)* Set a room's topic (owner or moderators; empty clears it). Reply: [`Reply::Done`].
    SetTopic {
        /// The room name.
        room: String,
        /// The topic, at most 512 bytes.
        topic: String,
    },
    /// *(v2)* As [`Request::ListRooms`], with each room's topic and unread count. Reply:
    /// [`Reply::RoomList`].
    RoomList,
    /// *(v2)* Disable (`disabled = true`) or re-enable an account (server operators only; not
    /// another operator). A disabled account's connections are closed with
    /// [`ErrorCode::Forbidden`] and it cannot log in or resume until enabled again; its rooms,
    /// messages and tokens are kept. Reply: [`Reply::Done`].
    SetDisabled {
        /// The username.
        user: String,
        /// Whether the account is disabled from now on.
        disabled: bool,
    },
    /// *(v2)* A page of the moderation audit log, newest first: of `room` (its moderators and
    /// owner, and server operators), or with `room = None` the server-wide log of account
    /// actions (server operators only). Reply: [`Reply::AuditLog`].
    AuditLog {
        /// The room, or `None` for the server-wide log.
        room: Option<String>,
        /// Only entries with a position below this one (`None`: from the newest).
        before: Option<u64>,
        /// At most this many entries (the server caps it to its page limit).
        limit: u16,
    },
    /// *(v2)* This user has read a conversation up to and including message `up_to` (set by
    /// any of the user's devices; never moves back: a lower position is ignored). The user's
    /// other sessions get [`ServerMessage::ReadMarker`]. Reply: [`Reply::Done`].
    MarkRead {
        /// The room, or the other user of a direct conversation.
        target: Target,
        /// The newest message read (a position past the newest message marks everything so
        /// far).
        up_to: MessageId,
    },
    /// *(v2)* Find messages containing every word of `text` in the conversations this user is
    /// in (each since joining it), newest first. Reply: [`Reply::SearchResults`].
    Search {
        /// The words to find (case does not matter; at most 256 bytes and 8 words).
        text: String,
        /// Only messages with an id below this one (`None`: from the newest).
        before: Option<MessageId>,
        /// At most this many messages (the server caps it to its page limit).
        limit: u16,
    },
}

// ===== server to client =====

/// Everything a server sends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum ServerMessage {
    /// The answer to [`ClientMessage::Hello`]: the version chosen and the server's limits.
    Welcome(Welcome),
    /// A request succeeded.
    Ok {
        /// The request's id.
        id: RequestId,
        /// The result.
        reply: Reply,
    },
    /// A request failed.
    Err {
        /// The request's id.
        id: RequestId,
        /// Why.
        error: ErrorReply,
    },
    /// A chat message addressed to this user (live, or replayed from the offline backlog).
    Message(ChatMessage),
    /// Every message this device had not acknowledged at login has now been sent; what follows
    /// is live.
    CaughtUp,
    /// A user who shares a room or a conversation with this user came online or went offline.
    Presence {
        /// The username.
        user: String,
        /// The new status.
        online: bool,
    },
    /// A user started or stopped typing toward a room this user is in, or toward this user.
    Typing {
        /// Who is typing.
        user: String,
        /// Where: the room, or [`Target::User`] naming the recipient for a direct conversation.
        target: Target,
        /// Whether typing is in progress.
        active: bool,
    },
    /// Membership of a room this user is in changed.
    Member {
        /// The room.
        room: String,
        /// The user whose membership changed.
        user: String,
        /// What happened.
        event: MemberEvent,
    },
    /// An error not tied to a request (e.g. an undecodable frame); usually followed by close.
    Error(ErrorReply),
    /// The server is shutting down and will close the connection; reconnect later.
    ShuttingDown,
    /// Keepalive probe; answer with [`ClientMessage::Pong`] carrying the same nonce.
    Ping {
        /// Echo this in the pong.
        nonce: u64,
    },
    /// Answer to a [`ClientMessage::Ping`].
    Pong {
        /// The nonce of the ping being answered.
        nonce: u64,
    },
    /// *(v2)* A moderator acted in a room this user is in (or on this user). A version-1
    /// connection gets [`ServerMessage::Member`] `Left` for a kick or a ban, nothing otherwise.
    Moderated {
        /// The room.
        room: String,
        /// The moderator (or owner, or server operator) who acted.
        by: String,
        /// The user acted on.
        user: String,
        /// What was done.
        action: ModAction,
        /// Why (possibly empty).
        reason: String,
    },
    /// *(v2)* A message was edited by its author. `id` is the change's own id, in the one id
    /// sequence (acknowledge it like a message's). Not sent to version-1 connections.
    Edited {
        /// The change's id.
        id: MessageId,
        /// The message edited.
        message: MessageId,
        /// Its author.
        from: String,
        /// Its conversation, as in [`ChatMessage::target`].
        target: Target,
        /// The new text.
        text: String,
    },
    /// *(v2)* A message was deleted by its author or redacted by a moderator: forget its
    /// text. `id` is the change's own id. Not sent to version-1 connections.
    Deleted {
        /// The change's id.
        id: MessageId,
        /// The message deleted.
        message: MessageId,
        /// Its conversation, as in [`ChatMessage::target`].
        target: Target,
        /// Who deleted it (the author, or the moderator who redacted it).
        by: String,
        /// Whether a moderator redacted it.
        redacted: bool,
        /// Why (a redaction's reason; else empty).
        reason: String,
    },
    /// *(v2)* A room's topic, when it changes (to its members) and when joining (to the joiner,
    /// if it has one). Not sent to version-1 connections.
    Topic {
        /// The room.
        room: String,
        /// The topic (empty: none).
        topic: String,
        /// Who set it (empty when told on joining).
        by: String,
    },
    /// *(v2)* A user who shares a conversation with this user (or this user, from another
    /// device) changed their display name. Not sent to version-1 connections.
    DisplayName {
        /// The username.
        user: String,
        /// The new display name.
        display_name: String,
    },
    /// *(v2)* Another session of this user marked a conversation read up to `up_to`
    /// ([`Request::MarkRead`]). Not sent to version-1 connections.
    ReadMarker {
        /// The room, or the other user of a direct conversation.
        target: Target,
        /// The newest message read.
        up_to: MessageId,
    },
    /// *(v2)* Right after a login's [`Reply::Session`], before the backlog: how far each of
    /// this user's conversations is read and how many messages in it are not. Counts cover
    /// messages up to this device's delivery position; every message that comes after this
    /// event (backlog or live) is new to the device and not counted here. Not sent to
    /// version-1 connections.
    Unread(Vec<UnreadCount>),
}

/// The server's answer to a successful [`Hello`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct Welcome {
    /// The protocol version used from now on.
    pub version: u16,
    /// Free-form server name and version.
    pub server: String,
    /// The limits this server enforces.
    pub limits: Limits,
    /// The room every newly registered user is made a member of (normalised, without `#`).
    pub default_room: String,
}

/// Limits a server enforces; a client that respects them is never rejected for size or rate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct Limits {
    /// Largest frame payload accepted, in bytes.
    pub max_frame_len: u32,
    /// Longest message text, in bytes of UTF-8.
    pub max_text_len: u32,
    /// Most rooms one user may be a member of.
    pub max_rooms_per_user: u32,
    /// Most messages in one history page.
    pub max_history_page: u16,
    /// Sustained requests per second per connection (every `Request` counts, not only sends;
    /// acks, typing and pings do not).
    pub request_rate_per_sec: u32,
    /// Requests allowed in a burst above the sustained rate.
    pub request_burst: u32,
    /// Time allowed from connect to a successful login, in milliseconds.
    pub login_timeout_ms: u32,
    /// A connection the server has heard nothing from for this long is sent a `Ping`, in
    /// milliseconds (possibly before `Hello`).
    pub keepalive_interval_ms: u32,
    /// A pinged connection that sends nothing for this long is closed with `Timeout`, in
    /// milliseconds.
    pub keepalive_timeout_ms: u32,
}

/// The successful result of a [`Request`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum Reply {
    /// Done; nothing to return.
    Done,
    /// Logged in (register, login, resume). The offline backlog follows, then
    /// [`ServerMessage::CaughtUp`].
    Session(Session),
    /// The message is stored under `id` (also the answer to a resend of a stored message).
    Sent {
        /// The server-assigned id.
        id: MessageId,
        /// The server's timestamp of the message.
        sent_at: UnixMillis,
    },
    /// The room created or joined.
    Room(RoomInfo),
    /// Rooms (see [`Request::ListRooms`]).
    Rooms(Vec<RoomInfo>),
    /// Members of a room.
    Members {
        /// The room.
        room: String,
        /// Its members.
        members: Vec<UserStatus>,
    },
    /// All users.
    Users(Vec<UserStatus>),
    /// A page of history, newest first; `more` says whether older messages exist.
    History {
        /// The messages.
        messages: Vec<ChatMessage>,
        /// Whether an older page exists.
        more: bool,
    },
    /// *(v2)* A page of history as a version-2 connection gets it (instead of
    /// [`Reply::History`]): newest first, each message with its latest text and state.
    Page {
        /// The messages.
        messages: Vec<PageEntry>,
        /// Whether an older page exists.
        more: bool,
    },
    /// *(v2)* The answer to [`Request::RoomList`]: the rooms, each with its topic.
    RoomList(Vec<RoomEntry>),
    /// *(v2)* The answer to [`Request::AuditLog`]: entries newest first.
    AuditLog {
        /// The entries.
        entries: Vec<AuditEntry>,
        /// Whether older entries exist.
        more: bool,
    },
    /// *(v2)* The answer to [`Request::Search`]: matching messages, newest first, each with
    /// its latest text; `more` says whether older matches may exist.
    SearchResults {
        /// The messages.
        messages: Vec<ChatMessage>,
        /// Whether to ask again with `before` = the last message's id.
        more: bool,
    },
    /// *(v2)* A version-2 connection's answer to [`Request::Who`] (instead of
    /// [`Reply::Members`]): each member with their role and whether they are muted.
    Roster {
        /// The room.
        room: String,
        /// Its members, sorted by username.
        members: Vec<RosterEntry>,
    },
}

/// *(v2)* A member of a room, as [`Reply::Roster`] lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct RosterEntry {
    /// The user, as [`Reply::Members`] lists them.
    pub status: UserStatus,
    /// Their role in the room.
    pub role: Role,
    /// Whether they may not post in it.
    pub muted: bool,
}

/// *(v2)* One moderation action, as the audit log returns it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct AuditEntry {
    /// Its position in the whole log (1, 2, …): pass it as `before` for the next page.
    pub position: u64,
    /// The room (empty for an account action).
    pub room: String,
    /// Who acted.
    pub by: String,
    /// Who was acted on.
    pub user: String,
    /// What was done.
    pub action: ModAction,
    /// Why (possibly empty).
    pub reason: String,
    /// When, in milliseconds since the Unix epoch.
    pub at: u64,
}

/// *(v2)* A room as listed to a version-2 connection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct RoomEntry {
    /// The room as version 1 lists it.
    pub info: RoomInfo,
    /// Its topic (empty: none).
    pub topic: String,
    /// Messages of others after the user's read marker in it (0 if the user is not a member;
    /// counted up to a server limit, 1,000 by default: a count at the limit means at least).
    pub unread: u32,
}

/// *(v2)* How far a conversation is read (see [`ServerMessage::Unread`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct UnreadCount {
    /// The room, or the other user of a direct conversation.
    pub target: Target,
    /// The read marker: the newest message read (what came before the user joined counts as
    /// read).
    pub read_up_to: MessageId,
    /// Messages of others after the marker (counted up to a server limit, 1,000 by default:
    /// a count at the limit means at least that many).
    pub unread: u32,
    /// The newest of those messages (0 if none): what to mark read to have read them all.
    pub latest: MessageId,
}

/// *(v2)* A message in a history page.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct PageEntry {
    /// The message, with its latest text (empty once deleted).
    pub message: ChatMessage,
    /// Whether its author edited it.
    pub edited: bool,
    /// Whether it was deleted or redacted: a tombstone, its text erased.
    pub deleted: bool,
}

/// A logged-in session.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct Session {
    /// The username, as registered.
    pub user: String,
    /// The user's display name.
    pub display_name: String,
    /// The token for [`Request::Resume`]; keep it secret.
    pub token: String,
    /// When the token expires.
    pub token_expires_at: UnixMillis,
}

/// A room as listed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct RoomInfo {
    /// The room name.
    pub name: String,
    /// Whether only members may add members.
    pub invite_only: bool,
    /// How many members it has.
    pub members: u32,
    /// Whether the requesting user is one of them.
    pub joined: bool,
}

/// A user and whether any of their devices is connected.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct UserStatus {
    /// The username.
    pub user: String,
    /// The display name.
    pub display_name: String,
    /// Whether the user is online.
    pub online: bool,
}

/// A stored chat message as delivered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct ChatMessage {
    /// The server-assigned id.
    pub id: MessageId,
    /// The sender's username (always the authenticated sender).
    pub from: String,
    /// The room, or for a direct message the recipient.
    pub target: Target,
    /// When the server stored it.
    pub sent_at: UnixMillis,
    /// The sender's de-duplication id.
    pub client_msg_id: ClientMsgId,
    /// The text.
    pub text: String,
}

/// *(v2)* A user's role in a room.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum Role {
    /// A member without powers.
    Member,
    /// May kick, ban, mute, redact and set the topic.
    Moderator,
    /// The room's creator: a moderator who also grants and revokes moderator.
    Owner,
}

/// *(v2)* What a moderator did (see [`ServerMessage::Moderated`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum ModAction {
    /// Removed from the room; may join again.
    Kicked,
    /// Removed from the room and kept out.
    Banned,
    /// Allowed back.
    Unbanned,
    /// May no longer post.
    Muted,
    /// May post again.
    Unmuted,
    /// Made a moderator.
    Opped,
    /// Made a plain member again.
    Deopped,
    /// One of their messages was redacted (audit log only: the room sees
    /// [`ServerMessage::Deleted`]).
    Redacted,
    /// Their account was disabled by a server operator (server-wide audit log only).
    Disabled,
    /// Their account was enabled again (server-wide audit log only).
    Enabled,
}

/// A change of room membership.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum MemberEvent {
    /// The user joined.
    Joined,
    /// The user left.
    Left,
    /// The user was added by another member.
    Invited {
        /// Who added them.
        by: String,
    },
}

/// An error as sent on the wire: a machine-readable code and a human-readable text.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
#[error("{code:?}: {message}")]
pub struct ErrorReply {
    /// What went wrong, for programs.
    pub code: ErrorCode,
    /// What went wrong, for people.
    pub message: String,
}

impl ErrorReply {
    /// An error with a code and a text.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

/// The closed set of error codes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum ErrorCode {
    /// The request is malformed or not allowed in this state (e.g. a second hello).
    BadRequest,
    /// No common protocol version; the server speaks `min..=max`.
    UnsupportedVersion {
        /// Lowest version the server speaks.
        min: u16,
        /// Highest version the server speaks.
        max: u16,
    },
    /// The request needs a logged-in session.
    NotAuthenticated,
    /// The connection is already logged in.
    AlreadyAuthenticated,
    /// The username is registered already (names are case-insensitive).
    UsernameTaken,
    /// A user, room, device or display name breaks the naming rules.
    InvalidName,
    /// The password is too short or too long.
    WeakPassword,
    /// Wrong username, password or token (the same answer for each).
    BadCredentials,
    /// No such user.
    NoSuchUser,
    /// No such room (or an invite-only room the user may not see).
    NoSuchRoom,
    /// The room exists already.
    RoomExists,
    /// The user is not a member of the room.
    NotAMember,
    /// The user may not do this (e.g. add members to an invite-only room).
    Forbidden,
    /// A text or frame is over the server's limit.
    TooLarge,
    /// The user is in the maximum number of rooms.
    TooManyRooms,
    /// Too many requests; retry after the given time.
    RateLimited {
        /// Milliseconds until a retry can succeed.
        retry_after_ms: u32,
    },
    /// The server has no room for another connection.
    ServerFull,
    /// The connection did not log in or answer in time.
    Timeout,
    /// The server failed; the request may be retried.
    Internal,
    /// Storage cannot take writes right now (for example a full disk); the request was not
    /// carried out and may be retried after `retry_after_ms`. Reads keep working.
    Unavailable {
        /// Milliseconds to wait before retrying.
        retry_after_ms: u32,
    },
}

impl Request {
    /// The first protocol version with this request.
    pub fn version(&self) -> u16 {
        match self {
            Self::SetRole { .. }
            | Self::Kick { .. }
            | Self::Ban { .. }
            | Self::Unban { .. }
            | Self::Mute { .. }
            | Self::Edit { .. }
            | Self::Delete { .. }
            | Self::Redact { .. }
            | Self::SetTopic { .. }
            | Self::RoomList
            | Self::SetDisabled { .. }
            | Self::AuditLog { .. }
            | Self::MarkRead { .. }
            | Self::Search { .. } => 2,
            _ => 1,
        }
    }
}
