//! The [`Hub`]: every chat decision, as a deterministic state machine without I/O.
//!
//! The hub holds the directory of users, conversations and memberships in memory and is the
//! authority over them; storage is its durable log and message archive. It never awaits, never
//! reads a clock and never touches a socket: time comes in as an argument, work that needs I/O
//! goes out as an [`Output`] and comes back as a [`Completion`].
//!
//! Concerns live in submodules: `auth` (accounts, logins, devices), `rooms` (membership),
//! `delivery` (messages, backlog, acknowledgements, history), `presence` (presence, typing).

mod auth;
mod delivery;
mod presence;
mod rooms;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap, HashSet, VecDeque};

use chat_proto::{
    encode, ClientMessage, EncodedFrame, ErrorCode, ErrorReply, MemberEvent, Reply, Request,
    RequestId, ServerMessage, Welcome, PROTOCOL_VERSION,
};

use crate::rate::{LoginFailures, TokenBucket};
// Maps keyed by server-assigned ids use FxHash (fast; the keys are not attacker-chosen). Maps
// keyed by client-chosen strings keep std's keyed SipHash against hash flooding.
use crate::types::*;
use crate::Config;
use rustc_hash::{FxHashMap, FxHashSet};

use self::auth::AuthAttempt;
use self::presence::{Typing, TypingKey};

/// A number tying an [`Output::Persist`] to its [`Completion::Persisted`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ticket(pub u64);

/// Work the hub asks its driver to do. Drain with [`Hub::poll_output`] after every input.
#[derive(Debug)]
#[must_use]
pub enum Output {
    /// Queue a frame on a session's connection. `droppable` frames (typing, presence) may be
    /// dropped when the connection is backed up; the others may not.
    Send {
        /// The recipient.
        session: SessionId,
        /// The encoded frame (shared by every recipient of a fan-out).
        frame: EncodedFrame,
        /// Whether it may be dropped under back-pressure.
        droppable: bool,
    },
    /// Close the connection once the frames already queued are written. The hub has forgotten
    /// the session already.
    Close {
        /// The session.
        session: SessionId,
    },
    /// Make these writes durable, in order, then report [`Completion::Persisted`]. Persists
    /// must complete in the order they were issued.
    Persist {
        /// Reported back on completion.
        ticket: Ticket,
        /// The writes (possibly none: a barrier behind earlier persists).
        writes: Vec<Write>,
    },
    /// Verify `password` against the user's stored hash (against a dummy hash of the same cost
    /// if `user` is `None`), then report [`Completion::PasswordVerified`].
    VerifyPassword {
        /// The session logging in.
        session: SessionId,
        /// The user, if the name exists.
        user: Option<UserId>,
        /// The password given.
        password: String,
    },
    /// Hash a new password, then report [`Completion::PasswordHashed`].
    HashPassword {
        /// The session registering.
        session: SessionId,
        /// The password.
        password: String,
    },
    /// Look up a token by its hash, then report [`Completion::TokenFound`].
    FindToken {
        /// The session resuming.
        session: SessionId,
        /// SHA-256 of the token.
        hash: [u8; 32],
    },
    /// Load up to `limit` messages for `user` with ids above `after` (from the user's
    /// conversations, each since the user joined it), in id order, leaving out those sent from
    /// `device`; then report [`Completion::Backlog`].
    LoadBacklog {
        /// The session catching up.
        session: SessionId,
        /// Its user.
        user: UserId,
        /// Its device.
        device: DeviceId,
        /// Exclusive lower bound.
        after: MessageId,
        /// Most messages to load.
        limit: usize,
    },
    /// Load up to `limit` messages of `conv` with ids below `before`, newest first; then report
    /// [`Completion::History`].
    LoadHistory {
        /// The session asking.
        session: SessionId,
        /// Its request.
        request: RequestId,
        /// The conversation.
        conv: ConvId,
        /// Exclusive upper bound.
        before: Option<MessageId>,
        /// Most messages to load.
        limit: usize,
    },
}

/// The result of an [`Output`] that needed I/O, handed back with [`Hub::handle_completion`].
#[derive(Debug)]
pub enum Completion {
    /// An [`Output::Persist`] is durable. `duplicate` is set when its message was not stored
    /// because the sender had stored the same client message id before (`(id, sent_at)` of the
    /// original).
    Persisted {
        /// The persist's ticket.
        ticket: Ticket,
        /// The original of a duplicate message.
        duplicate: Option<(MessageId, UnixMillis)>,
    },
    /// Answer to [`Output::VerifyPassword`], with a fresh random token for the session.
    PasswordVerified {
        /// The session.
        session: SessionId,
        /// Whether the password matched.
        ok: bool,
        /// A new random token (used only if `ok`).
        token: String,
    },
    /// Answer to [`Output::HashPassword`], with a fresh random token for the session.
    PasswordHashed {
        /// The session.
        session: SessionId,
        /// The PHC string.
        hash: String,
        /// A new random token.
        token: String,
    },
    /// Answer to [`Output::FindToken`].
    TokenFound {
        /// The session.
        session: SessionId,
        /// The token's record, if it exists.
        record: Option<TokenRecord>,
    },
    /// Answer to [`Output::LoadBacklog`].
    Backlog {
        /// The session.
        session: SessionId,
        /// The messages, in id order.
        messages: Vec<StoredMessage>,
    },
    /// Answer to [`Output::LoadHistory`].
    History {
        /// The session.
        session: SessionId,
        /// The request.
        request: RequestId,
        /// The `limit` of the load.
        limit: usize,
        /// The messages, newest first.
        messages: Vec<StoredMessage>,
    },
}

/// The chat state machine.
///
/// # Driving contract
/// 1. Build it with [`Hub::new`] from the [`Snapshot`] storage holds.
/// 2. Feed inputs as they happen, each with the current time in Unix milliseconds:
///    [`handle_connect`](Self::handle_connect), [`handle_message`](Self::handle_message),
///    [`handle_disconnect`](Self::handle_disconnect),
///    [`handle_completion`](Self::handle_completion), and
///    [`handle_timeout`](Self::handle_timeout) once the time from
///    [`poll_timeout`](Self::poll_timeout) has come.
/// 3. After each input, drain [`poll_output`](Self::poll_output) until `None` and carry every
///    [`Output`] out; those needing I/O come back as [`Completion`]s. Persists must complete
///    in issue order.
///
/// The hub never fails: bad input becomes an error reply or a [`Output::Close`].
#[derive(Debug)]
pub struct Hub {
    config: Config,
    /// The welcome frame, encoded once.
    welcome: EncodedFrame,
    users: FxHashMap<UserId, User>,
    /// Case-folded username to user.
    user_keys: HashMap<String, UserId>,
    /// Case-folded usernames whose registration is in progress.
    reserved: HashSet<String>,
    convs: FxHashMap<ConvId, Conv>,
    /// Normalised room name to room.
    rooms: HashMap<String, ConvId>,
    /// `(a, b)` with `a <= b` to their direct conversation.
    directs: FxHashMap<(UserId, UserId), ConvId>,
    sessions: FxHashMap<SessionId, Session>,
    next: NextIds,
    /// What to do when each outstanding persist completes.
    pending: FxHashMap<Ticket, After>,
    outputs: VecDeque<Output>,
    timers: Timers,
    typing: FxHashMap<TypingKey, Typing>,
    /// Users whose presence changed and is waiting to be broadcast.
    presence_pending: FxHashSet<UserId>,
    failures: LoginFailures,
    /// Device positions acknowledged but not yet written.
    dirty_cursors: BTreeSet<(UserId, DeviceId)>,
}

#[derive(Debug)]
struct User {
    name: String,
    display_name: String,
    convs: BTreeSet<ConvId>,
    rooms: usize,
    sessions: Vec<SessionId>,
    devices: Vec<Device>,
    /// The presence last broadcast for this user.
    announced_online: bool,
    recent: RecentSends,
    typing: usize,
}

#[derive(Debug, Clone)]
struct Device {
    id: DeviceId,
    name: String,
    cursor: MessageId,
    last_seen: UnixMillis,
}

#[derive(Debug)]
struct Conv {
    kind: ConvKind,
    /// Member to the last message id before they joined.
    members: BTreeMap<UserId, MessageId>,
}

#[derive(Debug)]
struct Session {
    phase: Phase,
    bucket: TokenBucket,
}

#[derive(Debug)]
enum Phase {
    /// Connected; waiting for `Hello`.
    New,
    /// Welcomed; not logged in.
    Greeted,
    /// A login, registration or resume is in progress.
    Authenticating(RequestId, AuthAttempt),
    /// Logged in.
    Online(Online),
}

#[derive(Debug)]
struct Online {
    user: UserId,
    device: DeviceId,
    token_hash: [u8; 32],
    /// False while the backlog is being replayed.
    live: bool,
    /// A live message was held back during replay: load the backlog once more.
    missed: bool,
    /// The highest message id sent on this connection.
    sent_upto: MessageId,
}

/// The last client message ids a user sent, so an in-flight resend is recognised without
/// storage. Older resends are caught by storage's uniqueness check.
#[derive(Debug, Default)]
struct RecentSends {
    order: VecDeque<ClientMsgId>,
    ids: HashMap<ClientMsgId, (MessageId, UnixMillis)>,
}

const RECENT_SENDS: usize = 64;

impl RecentSends {
    fn get(&self, id: ClientMsgId) -> Option<(MessageId, UnixMillis)> {
        self.ids.get(&id).copied()
    }

    fn insert(&mut self, id: ClientMsgId, stored: (MessageId, UnixMillis)) {
        if self.ids.insert(id, stored).is_none() {
            self.order.push_back(id);
        }
        if self.order.len() > RECENT_SENDS {
            if let Some(old) = self.order.pop_front() {
                self.ids.remove(&old);
            }
        }
    }
}

#[derive(Debug, Default)]
struct NextIds {
    user: u64,
    conv: u64,
    device: u64,
    message: u64,
    ticket: u64,
}

/// Deadlines. The queues are in increasing time order (each entry is `now + constant`);
/// typing deadlines move when refreshed, so they live in a min-heap.
#[derive(Debug, Default)]
struct Timers {
    logins: VecDeque<(UnixMillis, SessionId)>,
    typing: BinaryHeap<Reverse<(UnixMillis, TypingKey)>>,
    presence: VecDeque<(UnixMillis, UserId)>,
    cursor_flush: Option<UnixMillis>,
}

/// What follows a persist's completion.
#[derive(Debug)]
enum After {
    Nothing,
    Reply(SessionId, RequestId, Reply),
    /// Reply (if any), then tell the room (and `also`) about a membership change.
    Member {
        reply: Option<(SessionId, RequestId, Reply)>,
        conv: ConvId,
        user: UserId,
        event: MemberEvent,
        also: Option<UserId>,
    },
    /// Reply `Session`, then start the backlog replay.
    LoggedIn(SessionId, RequestId, chat_proto::Session),
    /// Reply `Sent`, then deliver (unless it was a duplicate).
    Message(SessionId, RequestId, StoredMessage),
}

impl Hub {
    /// A hub over the state storage holds.
    ///
    /// Creates the configured default room if it does not exist yet (as a persist).
    ///
    /// # Errors
    /// If `config` is inconsistent ([`Config::validate`]).
    pub fn new(config: Config, snapshot: Snapshot, now: UnixMillis) -> Result<Self, String> {
        config.validate()?;
        let welcome = encode(
            &ServerMessage::Welcome(Welcome {
                version: PROTOCOL_VERSION,
                server: config.server_name.clone(),
                limits: config.limits(),
                default_room: config.default_room.to_ascii_lowercase(),
            }),
            config.max_frame_len,
        )
        .map_err(|e| format!("welcome does not fit a frame: {e}"))?;
        let mut hub = Self {
            config,
            welcome,
            users: FxHashMap::default(),
            user_keys: HashMap::new(),
            reserved: HashSet::new(),
            convs: FxHashMap::default(),
            rooms: HashMap::new(),
            directs: FxHashMap::default(),
            sessions: FxHashMap::default(),
            next: NextIds::default(),
            pending: FxHashMap::default(),
            outputs: VecDeque::new(),
            timers: Timers::default(),
            typing: FxHashMap::default(),
            presence_pending: FxHashSet::default(),
            failures: LoginFailures::default(),
            dirty_cursors: BTreeSet::new(),
        };
        hub.load(snapshot);
        hub.ensure_default_room(now);
        Ok(hub)
    }

    fn load(&mut self, snapshot: Snapshot) {
        // Ids allocated to resends found to be duplicates are never stored, yet positions
        // derived from them (a device's cursor, a membership's `since`) may be. New ids must
        // exceed every durable position, not only the highest stored message.
        let positions = snapshot
            .members
            .iter()
            .map(|m| m.2)
            .chain(snapshot.devices.iter().map(|d| d.3));
        self.next.message = positions.fold(snapshot.last_message, MessageId::max).0;
        for (id, name, display_name) in snapshot.users {
            self.next.user = self.next.user.max(id.0);
            self.user_keys.insert(name.to_ascii_lowercase(), id);
            self.users.insert(id, User::new(name, display_name));
        }
        for (id, kind) in snapshot.convs {
            self.next.conv = self.next.conv.max(id.0);
            match &kind {
                ConvKind::Room { name, .. } => self.rooms.insert(name.clone(), id),
                ConvKind::Direct { a, b } => self.directs.insert((*a, *b), id),
            };
            self.convs.insert(
                id,
                Conv {
                    kind,
                    members: BTreeMap::new(),
                },
            );
        }
        for (conv, user, since) in snapshot.members {
            let (Some(c), Some(u)) = (self.convs.get_mut(&conv), self.users.get_mut(&user)) else {
                continue;
            };
            c.members.insert(user, since);
            u.convs.insert(conv);
            if matches!(c.kind, ConvKind::Room { .. }) {
                u.rooms += 1;
            }
        }
        for (id, user, name, cursor, last_seen) in snapshot.devices {
            self.next.device = self.next.device.max(id.0);
            if let Some(u) = self.users.get_mut(&user) {
                u.devices.push(Device {
                    id,
                    name,
                    cursor,
                    last_seen,
                });
            }
        }
    }

    fn ensure_default_room(&mut self, now: UnixMillis) {
        let name = self.config.default_room.to_ascii_lowercase();
        if !self.rooms.contains_key(&name) {
            let (_, write) = self.create_room(name, false, now);
            self.persist(vec![write], After::Nothing);
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Number of open sessions (connections).
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// A new connection. Call before any other input for `session`.
    pub fn handle_connect(&mut self, session: SessionId, now: UnixMillis) {
        let bucket = TokenBucket::new(
            self.config.request_rate_per_sec,
            self.config.request_burst,
            now,
        );
        self.sessions.insert(
            session,
            Session {
                phase: Phase::New,
                bucket,
            },
        );
        self.timers
            .logins
            .push_back((now + self.config.login_timeout_ms, session));
    }

    /// The connection of `session` is gone (closed by either side). Idempotent.
    pub fn handle_disconnect(&mut self, session: SessionId, now: UnixMillis) {
        let Some(s) = self.sessions.remove(&session) else {
            return;
        };
        match s.phase {
            Phase::Online(online) => self.leave_online(session, online.user, now),
            Phase::Authenticating(_, attempt) => self.abandon(attempt),
            Phase::New | Phase::Greeted => {}
        }
    }

    /// A message from the client of `session`.
    pub fn handle_message(&mut self, session: SessionId, msg: ClientMessage, now: UnixMillis) {
        let Some(s) = self.sessions.get_mut(&session) else {
            return;
        };
        match (msg, &s.phase) {
            (ClientMessage::Ping { nonce }, _) => {
                self.send(session, &ServerMessage::Pong { nonce }, false);
            }
            (ClientMessage::Pong { .. }, _) => {}
            (ClientMessage::Hello(hello), Phase::New) => {
                if (hello.min_version..=hello.max_version).contains(&PROTOCOL_VERSION) {
                    s.phase = Phase::Greeted;
                    let frame = self.welcome.clone();
                    self.send_frame(session, frame, false);
                } else {
                    let code = ErrorCode::UnsupportedVersion {
                        min: PROTOCOL_VERSION,
                        max: PROTOCOL_VERSION,
                    };
                    self.close(
                        session,
                        Some(ErrorReply::new(code, "no common protocol version")),
                        now,
                    );
                }
            }
            (_, Phase::New) => {
                let error =
                    ErrorReply::new(ErrorCode::BadRequest, "the first message must be a hello");
                self.close(session, Some(error), now);
            }
            (ClientMessage::Hello(_), _) => {
                let error = ErrorReply::new(ErrorCode::BadRequest, "hello was already received");
                self.close(session, Some(error), now);
            }
            (ClientMessage::Request { id, request }, _) => {
                if let Err(retry_after_ms) = s.bucket.take(now) {
                    let code = ErrorCode::RateLimited { retry_after_ms };
                    self.fail(session, id, ErrorReply::new(code, "too many requests"));
                } else {
                    self.handle_request(session, id, request, now);
                }
            }
            (ClientMessage::Ack { up_to }, Phase::Online(_)) => self.ack(session, up_to, now),
            (ClientMessage::Typing { target, active }, Phase::Online(online)) => {
                let user = online.user;
                self.typing(user, target, active, now);
            }
            // Acks and typing before login carry nothing to act on.
            (ClientMessage::Ack { .. } | ClientMessage::Typing { .. }, _) => {}
        }
    }

    fn handle_request(
        &mut self,
        session: SessionId,
        id: RequestId,
        request: Request,
        now: UnixMillis,
    ) {
        let Some(phase) = self.sessions.get(&session).map(|s| &s.phase) else {
            return;
        };
        let user = match phase {
            Phase::Online(online) => Some(online.user),
            _ => None,
        };
        let result = match (request, user) {
            (
                Request::Register {
                    username,
                    password,
                    device,
                },
                None,
            ) => self.register(session, id, username, password, device),
            (
                Request::Login {
                    username,
                    password,
                    device,
                },
                None,
            ) => self.login(session, id, username, password, device, now),
            (Request::Resume { token, device }, None) => self.resume(session, id, token, device),
            (
                Request::Register { .. } | Request::Login { .. } | Request::Resume { .. },
                Some(_),
            ) => Err(ErrorReply::new(
                ErrorCode::AlreadyAuthenticated,
                "already logged in",
            )),
            (_, None) => Err(ErrorReply::new(ErrorCode::NotAuthenticated, "log in first")),
            (Request::Logout, Some(user)) => self.logout(session, id, user, now),
            (Request::CreateRoom { room, invite_only }, Some(user)) => {
                self.create(session, id, user, &room, invite_only, now)
            }
            (Request::Join { room }, Some(user)) => self.join(session, id, user, &room, now),
            (Request::Leave { room }, Some(user)) => self.leave(session, id, user, &room),
            (
                Request::Invite {
                    room,
                    user: invitee,
                },
                Some(user),
            ) => self.invite(session, id, user, &room, &invitee),
            (Request::ListRooms, Some(user)) => self.list_rooms(session, id, user),
            (Request::Who { room }, Some(user)) => self.who(session, id, user, &room),
            (Request::ListUsers, Some(_)) => self.list_users(session, id),
            (Request::SetDisplayName { display_name }, Some(user)) => {
                self.set_display_name(session, id, user, display_name)
            }
            (
                Request::Send {
                    target,
                    client_msg_id,
                    text,
                },
                Some(user),
            ) => self.send_message(session, id, user, target, client_msg_id, text, now),
            (
                Request::History {
                    target,
                    before,
                    limit,
                },
                Some(user),
            ) => self.history(session, id, user, &target, before, limit),
        };
        if let Err(error) = result {
            self.fail(session, id, error);
        }
    }

    /// The result of earlier I/O.
    pub fn handle_completion(&mut self, completion: Completion, now: UnixMillis) {
        match completion {
            Completion::Persisted { ticket, duplicate } => {
                if let Some(after) = self.pending.remove(&ticket) {
                    self.after_persist(after, duplicate);
                }
            }
            Completion::PasswordVerified { session, ok, token } => {
                self.password_verified(session, ok, token, now);
            }
            Completion::PasswordHashed {
                session,
                hash,
                token,
            } => {
                self.password_hashed(session, hash, token, now);
            }
            Completion::TokenFound { session, record } => self.token_found(session, record, now),
            Completion::Backlog { session, messages } => self.backlog(session, messages),
            Completion::History {
                session,
                request,
                limit,
                messages,
            } => self.history_loaded(session, request, messages, limit),
        }
    }

    fn after_persist(&mut self, after: After, duplicate: Option<(MessageId, UnixMillis)>) {
        match after {
            After::Nothing => {}
            After::Reply(session, request, reply) => self.reply(session, request, reply),
            After::Member {
                reply,
                conv,
                user,
                event,
                also,
            } => {
                if let Some((session, request, reply)) = reply {
                    self.reply(session, request, reply);
                }
                self.announce_member(conv, user, event, also);
            }
            After::LoggedIn(session, request, reply) => self.logged_in(session, request, reply),
            After::Message(session, request, message) => {
                self.message_stored(session, request, message, duplicate);
            }
        }
    }

    /// The time (Unix milliseconds) at which [`handle_timeout`](Self::handle_timeout) should
    /// next be called, if any.
    pub fn poll_timeout(&self) -> Option<UnixMillis> {
        [
            self.timers.logins.front().map(|t| t.0),
            self.timers.typing.peek().map(|t| t.0 .0),
            self.timers.presence.front().map(|t| t.0),
            self.timers.cursor_flush,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Runs every deadline that has come: login timeouts, typing expiry, coalesced presence,
    /// acknowledgement flushes.
    pub fn handle_timeout(&mut self, now: UnixMillis) {
        while let Some(&(due, session)) = self.timers.logins.front() {
            if due > now {
                break;
            }
            self.timers.logins.pop_front();
            let logged_in = self
                .sessions
                .get(&session)
                .is_none_or(|s| matches!(s.phase, Phase::Online(_)));
            if !logged_in {
                let error = ErrorReply::new(ErrorCode::Timeout, "no login in time");
                self.close(session, Some(error), now);
            }
        }
        self.expire_typing(now);
        self.broadcast_presence(now);
        if self.timers.cursor_flush.is_some_and(|due| due <= now) {
            self.flush_cursors();
        }
    }

    /// Starts a graceful shutdown: every connection gets `ShuttingDown` and is closed, and
    /// acknowledged positions are persisted. Feed completions until the persists are done.
    pub fn shut_down(&mut self, now: UnixMillis) {
        let sessions: Vec<SessionId> = self.sessions.keys().copied().collect();
        if let Ok(frame) = encode(&ServerMessage::ShuttingDown, self.config.max_frame_len) {
            for &session in &sessions {
                self.send_frame(session, frame.clone(), false);
            }
        }
        for session in sessions {
            self.handle_disconnect(session, now);
            self.outputs.push_back(Output::Close { session });
        }
        self.flush_cursors();
    }

    /// The next piece of work for the driver, if any.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    // ===== output helpers =====

    fn send_frame(&mut self, session: SessionId, frame: EncodedFrame, droppable: bool) {
        self.outputs.push_back(Output::Send {
            session,
            frame,
            droppable,
        });
    }

    fn encode(&self, msg: &ServerMessage) -> Option<EncodedFrame> {
        match encode(msg, self.config.max_frame_len) {
            Ok(frame) => Some(frame),
            Err(e) => {
                tracing::error!(error = %e, "cannot encode an event");
                None
            }
        }
    }

    fn send(&mut self, session: SessionId, msg: &ServerMessage, droppable: bool) {
        if let Some(frame) = self.encode(msg) {
            self.send_frame(session, frame, droppable);
        }
    }

    /// Sends one event to every live session of `users` (encoded once), except `skip`.
    fn send_to_users(
        &mut self,
        users: impl IntoIterator<Item = UserId>,
        msg: &ServerMessage,
        droppable: bool,
        skip: Option<SessionId>,
    ) {
        let Some(frame) = self.encode(msg) else {
            return;
        };
        for user in users {
            let Some(u) = self.users.get(&user) else {
                continue;
            };
            for &session in &u.sessions {
                if Some(session) != skip {
                    self.outputs.push_back(Output::Send {
                        session,
                        frame: frame.clone(),
                        droppable,
                    });
                }
            }
        }
    }

    fn reply(&mut self, session: SessionId, request: RequestId, reply: Reply) {
        if !self.sessions.contains_key(&session) {
            return;
        }
        let msg = ServerMessage::Ok { id: request, reply };
        match encode(&msg, self.config.max_frame_len) {
            Ok(frame) => self.send_frame(session, frame, false),
            Err(_) => self.fail(
                session,
                request,
                ErrorReply::new(ErrorCode::TooLarge, "the reply does not fit a frame"),
            ),
        }
    }

    fn fail(&mut self, session: SessionId, request: RequestId, error: ErrorReply) {
        if self.sessions.contains_key(&session) {
            self.send(session, &ServerMessage::Err { id: request, error }, false);
        }
    }

    /// Sends `error` (if any), closes the connection and forgets the session.
    fn close(&mut self, session: SessionId, error: Option<ErrorReply>, now: UnixMillis) {
        if !self.sessions.contains_key(&session) {
            return;
        }
        if let Some(error) = error {
            self.send(session, &ServerMessage::Error(error), false);
        }
        self.handle_disconnect(session, now);
        self.outputs.push_back(Output::Close { session });
    }

    fn persist(&mut self, writes: Vec<Write>, after: After) {
        self.next.ticket += 1;
        let ticket = Ticket(self.next.ticket);
        if !matches!(after, After::Nothing) {
            self.pending.insert(ticket, after);
        }
        self.outputs.push_back(Output::Persist { ticket, writes });
    }

    // ===== shared lookups =====

    fn user_name(&self, user: UserId) -> String {
        self.users
            .get(&user)
            .map(|u| u.name.clone())
            .unwrap_or_default()
    }

    /// The user named `name` (any case).
    fn find_user(&self, name: &str) -> Result<UserId, ErrorReply> {
        self.user_keys
            .get(&name.to_ascii_lowercase())
            .copied()
            .ok_or_else(|| ErrorReply::new(ErrorCode::NoSuchUser, format!("no user {name}")))
    }

    fn is_online(&self, user: UserId) -> bool {
        self.users
            .get(&user)
            .is_some_and(|u| !u.sessions.is_empty())
    }

    fn online_of(&self, session: SessionId) -> Option<&Online> {
        match self.sessions.get(&session).map(|s| &s.phase) {
            Some(Phase::Online(online)) => Some(online),
            _ => None,
        }
    }

    fn online_mut(&mut self, session: SessionId) -> Option<&mut Online> {
        match self.sessions.get_mut(&session).map(|s| &mut s.phase) {
            Some(Phase::Online(online)) => Some(online),
            _ => None,
        }
    }
}

impl User {
    fn new(name: String, display_name: String) -> Self {
        Self {
            name,
            display_name,
            convs: BTreeSet::new(),
            rooms: 0,
            sessions: Vec::new(),
            devices: Vec::new(),
            announced_online: false,
            recent: RecentSends::default(),
            typing: 0,
        }
    }
}
