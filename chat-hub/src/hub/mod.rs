//! The [`Hub`]: every chat decision, as a deterministic state machine without I/O.
//!
//! The hub holds the directory of users, conversations and memberships in memory and is the
//! authority over them; storage is its durable log and message archive. It never awaits, never
//! reads a clock and never touches a socket: time comes in as an argument, work that needs I/O
//! goes out as an [`Output`] and comes back as a [`Completion`].
//!
//! State has owners, each the only writer of its part (quinn-proto style):
//! - `directory` — users, conversations, memberships, names;
//! - `sessions` — connections' phases, request budgets, login deadlines, failed logins;
//! - `presence` — typing states and presence coalescing;
//! - `delivery` — the highest committed id, recent sends, device positions, replay state;
//! - `moderation` *(v2)* — roles, bans, mutes, operators;
//! - `markers` *(v2)* — read markers;
//! - `log` *(cluster)* — commits applied in id order, this node's and other nodes';
//! - `output` — the output queue and the persists in flight.
//!
//! The request handlers that combine them live by concern: `auth` (register, login, resume,
//! logout), `rooms` (membership and listings), `messages` (send, fan-out, backlog, acks,
//! history), `status` (presence and typing broadcasts), *(v2)* `moderate`, `edits`, `reading`
//! (read markers, unread counts, the room list) and `search`. This file is the hub and its
//! dispatch.

mod auth;
mod cluster;
mod delivery;
mod directory;
mod edits;
mod ids;
mod log;
mod markers;
mod messages;
pub(crate) mod moderate;
mod moderation;
mod output;
mod presence;
mod reading;
mod rooms;
mod search;
mod sessions;
mod status;
mod throttle;

use std::net::IpAddr;

use chat_proto::{
    encode, ClientMessage, EncodedFrame, ErrorCode, ErrorReply, MemberEvent, Reply, Request,
    RequestId, ServerMessage, Welcome, MIN_PROTOCOL_VERSION, PROTOCOL_VERSION,
};

use crate::types::*;
use crate::{Config, ConfigError};

pub use self::auth::token_hash;
use self::delivery::Delivery;
use self::directory::Directory;
use self::log::Log;
use self::markers::Markers;
pub use self::moderate::MAX_REASON_LEN;
use self::moderation::Moderation;
use self::output::{After, Outputs};
pub use self::output::{
    ChangeWhat, Completion, IoRequest, Output, PendingChange, Ticket, UnreadFor, AUDIT_SERVER,
};
use self::presence::Presence;
pub use self::rooms::MAX_TOPIC_LEN;
use self::sessions::{Phase, Sessions, MAX_HELD};
use self::throttle::Throttle;

/// What `Unavailable` tells clients to wait before retrying a write.
const STORAGE_RETRY_MS: u32 = 1000;

/// The chat state machine.
///
/// # Driving contract
/// 1. Build it with [`Hub::new`] from the [`Snapshot`] storage holds.
/// 2. Feed inputs as they happen, each with the time ([`Now`]: a monotonic clock for
///    deadlines, the wall clock for timestamps): [`handle_connect`](Self::handle_connect),
///    [`handle_message`](Self::handle_message), [`handle_disconnect`](Self::handle_disconnect),
///    [`handle_completion`](Self::handle_completion), and
///    [`handle_timeout`](Self::handle_timeout) once the monotonic time from
///    [`poll_timeout`](Self::poll_timeout) has come.
/// 3. After each input, drain [`poll_output`](Self::poll_output) until `None` and carry every
///    [`Output`] out; those needing I/O come back as [`Completion`]s. Persists must complete
///    in issue order.
/// 4. *(cluster, [`Config::cluster`])* Also feed what other nodes say:
///    [`handle_node_message`](Self::handle_node_message),
///    [`handle_remote_presence`](Self::handle_remote_presence), and
///    [`handle_gap`](Self::handle_gap) when the bus lost something; carry
///    [`Output::Share`] to them.
///
/// The hub never fails: bad input becomes an error reply or an [`Output::Close`].
#[derive(Debug)]
pub struct Hub {
    config: Config,
    /// The welcome frame of each version from [`MIN_PROTOCOL_VERSION`], encoded once.
    welcome: Vec<EncodedFrame>,
    directory: Directory,
    moderation: Moderation,
    markers: Markers,
    sessions: Sessions,
    presence: Presence,
    delivery: Delivery,
    /// *(cluster)* Commits applied in id order, this node's and the others'.
    log: Log,
    throttle: Throttle,
    out: Outputs,
    stats: Stats,
}

/// Counters of the hub's decisions since it started, for metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Requests refused by the per-connection rate limit.
    pub rate_limited: u64,
    /// Logins (password or token) that failed.
    pub failed_logins: u64,
    /// Messages accepted for storage (resends not counted).
    pub messages_accepted: u64,
    /// *(cluster)* Batches of other nodes applied.
    pub remote_batches: u64,
    /// *(cluster)* Reads from storage of what other nodes committed, after a hole that did
    /// not fill in time or a gap the bus reported.
    pub recoveries: u64,
}

impl Hub {
    /// A hub over the state storage holds.
    ///
    /// Creates the configured default room if it does not exist yet (as a persist).
    ///
    /// # Errors
    /// If `config` is inconsistent ([`Config::validate`]).
    pub fn new(config: Config, snapshot: Snapshot, now: Now) -> Result<Self, ConfigError> {
        config.validate()?;
        let welcome = (MIN_PROTOCOL_VERSION..=PROTOCOL_VERSION)
            .map(|version| {
                encode(
                    &ServerMessage::Welcome(Welcome {
                        version,
                        server: config.server_name.clone(),
                        limits: config.limits(),
                        default_room: config.default_room.to_ascii_lowercase(),
                    }),
                    config.max_frame_len,
                )
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| ConfigError("the welcome must fit a frame: shorten server_name"))?;
        let Snapshot {
            ids,
            users,
            convs,
            members,
            devices,
            last_message,
            standings,
            operators,
            topics,
            disabled,
            read_markers,
        } = snapshot;
        let delivery = Delivery::load(ids, devices, &members, last_message);
        let mut hub = Self {
            directory: Directory::load(ids, users, convs, &members),
            log: Log::new(delivery.last_message()),
            delivery,
            moderation: Moderation::load(standings, operators, disabled),
            markers: Markers::load(read_markers),
            sessions: Sessions::default(),
            presence: Presence::default(),
            throttle: Throttle::default(),
            out: Outputs::new(config.max_frame_len),
            stats: Stats::default(),
            config,
            welcome,
        };
        hub.directory.load_topics(topics);
        hub.ensure_default_room(now);
        Ok(hub)
    }

    fn ensure_default_room(&mut self, now: Now) {
        let name = self.config.default_room.to_ascii_lowercase();
        if self.directory.room_id(&name).is_some() {
            return;
        }
        // Without a conversation id left, registrations join no default room.
        if let Ok((_, write)) = self.directory.create_room(name, false, now.wall) {
            self.out.persist(vec![write], After::Nothing);
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

    /// Number of logged-in sessions.
    pub fn online_count(&self) -> usize {
        self.sessions.online_count()
    }

    /// Counters of decisions since the hub started.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// A new connection from `peer` (`None` for an in-process connection). Call before any
    /// other input for `session`. Login throttling and hashing budgets are per peer address.
    pub fn handle_connect(&mut self, session: SessionId, peer: Option<IpAddr>, now: Now) {
        self.sessions.connect(session, peer, &self.config, now.mono);
    }

    /// An [`IoRequest`] of `session` failed (a storage read): the session is closed with
    /// `Error { Internal }`, so the client knows to retry later rather than loop.
    pub fn handle_io_failed(&mut self, session: SessionId, now: Now) {
        self.end_hash(session, true);
        let error = ErrorReply::new(ErrorCode::Internal, "storage failed; try again later");
        self.close(session, Some(error), now);
    }

    /// The connection of `session` could not take the live message `first_missed` (see
    /// [`Output::Deliver`]): the session catches up from storage from there instead of
    /// being cut off, and goes live again when it has.
    pub fn handle_lagging(&mut self, session: SessionId, first_missed: MessageId) {
        self.lagging(session, first_missed);
    }

    /// Storage stopped (`false`) or resumed (`true`) taking writes. While it does not, every
    /// request that needs a write is refused with `Unavailable`; reads and live sessions go
    /// on (without waiting for the persists in flight, see [`IoRequest::sees_earlier_writes`]),
    /// and persists already issued complete once storage is back.
    pub fn handle_storage_available(&mut self, available: bool) {
        self.out.set_storage_available(available);
    }

    /// The connection of `session` is gone (closed by either side). Idempotent.
    pub fn handle_disconnect(&mut self, session: SessionId, now: Now) {
        let Some((phase, last)) = self.sessions.remove(session) else {
            return;
        };
        match phase {
            Phase::Online(online) => self.went_offline(session, online.user, last, now),
            Phase::Authenticating(_, attempt) => {
                self.abandon(*attempt);
                self.end_hash(session, false);
            }
            Phase::New | Phase::Greeted => {}
        }
    }

    /// A message from the client of `session`.
    ///
    /// Messages are handled in the order they arrive: what arrives while a login is in flight
    /// (up to 64 messages) waits for its outcome; only pings are answered at once.
    pub fn handle_message(&mut self, session: SessionId, msg: ClientMessage, now: Now) {
        let Some(phase) = self.sessions.hear(session, now.mono) else {
            return;
        };
        match (msg, phase) {
            (ClientMessage::Ping { nonce }, _) => {
                self.out
                    .send(session, &ServerMessage::Pong { nonce }, false);
            }
            (ClientMessage::Pong { .. }, _) => {}
            (msg, Phase::Authenticating(..)) => self.hold(session, msg),
            (ClientMessage::Hello(hello), Phase::New) => {
                let version = hello.max_version.min(PROTOCOL_VERSION);
                if version >= hello.min_version && version >= MIN_PROTOCOL_VERSION {
                    self.sessions.greet(session, version);
                    let index = usize::from(version - MIN_PROTOCOL_VERSION);
                    if let Some(frame) = self.welcome.get(index).cloned() {
                        self.out.send_frame(session, frame, false);
                    }
                } else {
                    let code = ErrorCode::UnsupportedVersion {
                        min: MIN_PROTOCOL_VERSION,
                        max: PROTOCOL_VERSION,
                    };
                    let error = ErrorReply::new(code, "no common protocol version");
                    self.close(session, Some(error), now);
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
                if let Err(retry_after_ms) =
                    self.sessions.take_token(session, &self.config, now.mono)
                {
                    self.stats.rate_limited += 1;
                    let code = ErrorCode::RateLimited { retry_after_ms };
                    self.fail(session, id, ErrorReply::new(code, "too many requests"));
                } else {
                    self.handle_request(session, id, request, now);
                }
            }
            (ClientMessage::Ack { up_to }, &Phase::Online(online)) => {
                let (user, device) = (online.user, online.device);
                self.delivery
                    .ack(session, user, device, up_to, &self.config, now.mono);
            }
            (ClientMessage::Typing { target, active }, &Phase::Online(online)) => {
                self.typing(online.user, target, active, now);
            }
            // Acks and typing before login carry nothing to act on.
            (ClientMessage::Ack { .. } | ClientMessage::Typing { .. }, _) => {}
        }
    }

    /// Keeps a message that arrived during a login for when the login ends. Past the bound,
    /// a request is refused at once; anything else is dropped.
    fn hold(&mut self, session: SessionId, msg: ClientMessage) {
        let request = match &msg {
            ClientMessage::Request { id, .. } => Some(*id),
            _ => None,
        };
        if !self.sessions.hold(session, msg) {
            if let Some(id) = request {
                let text = format!("at most {MAX_HELD} messages may wait behind a login");
                self.fail(session, id, ErrorReply::new(ErrorCode::BadRequest, text));
            }
        }
    }

    /// Handles what `session` pipelined behind its login, now that the login has ended; stops
    /// if one of them starts another login.
    fn release_held(&mut self, session: SessionId, now: Now) {
        while let Some(msg) = self.sessions.next_held(session) {
            self.handle_message(session, msg, now);
        }
    }

    fn handle_request(&mut self, session: SessionId, id: RequestId, request: Request, now: Now) {
        let reads_only = matches!(
            request,
            Request::ListRooms
                | Request::RoomList
                | Request::ListUsers
                | Request::Who { .. }
                | Request::History { .. }
                | Request::Search { .. }
        );
        if !self.out.storage_available() && !reads_only {
            let code = ErrorCode::Unavailable {
                retry_after_ms: STORAGE_RETRY_MS,
            };
            let error = ErrorReply::new(code, "storage cannot take writes right now");
            return self.fail(session, id, error);
        }
        if request.version() > self.sessions.version(session) {
            let error = ErrorReply::new(
                ErrorCode::BadRequest,
                "this request needs a newer protocol version",
            );
            return self.fail(session, id, error);
        }
        let user = self.sessions.online(session).map(|online| online.user);
        let result = match (request, user) {
            (
                Request::Register {
                    username,
                    password,
                    device,
                },
                None,
            ) => self.register(session, id, username, password, device, now),
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
            (Request::Logout, Some(_)) => {
                self.logout(session, id, now);
                Ok(())
            }
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
            (Request::ListRooms, Some(user)) => {
                self.list_rooms(session, id, user);
                Ok(())
            }
            (Request::RoomList, Some(user)) => {
                self.room_list(session, id, user);
                Ok(())
            }
            (Request::Who { room }, Some(user)) => self.who(session, id, user, &room),
            (Request::ListUsers, Some(_)) => {
                self.list_users(session, id);
                Ok(())
            }
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
            (
                Request::SetRole {
                    room,
                    user: name,
                    role,
                },
                Some(user),
            ) => {
                let action = if role == Role::Member {
                    ModAction::Deopped
                } else {
                    ModAction::Opped
                };
                if role == Role::Owner {
                    Err(ErrorReply::new(
                        ErrorCode::Forbidden,
                        "a room has one owner: its creator",
                    ))
                } else {
                    self.moderate(session, id, user, &room, &name, action, "", now)
                }
            }
            (
                Request::Kick {
                    room,
                    user: name,
                    reason,
                },
                Some(user),
            ) => self.moderate(
                session,
                id,
                user,
                &room,
                &name,
                ModAction::Kicked,
                &reason,
                now,
            ),
            (
                Request::Ban {
                    room,
                    user: name,
                    reason,
                },
                Some(user),
            ) => self.moderate(
                session,
                id,
                user,
                &room,
                &name,
                ModAction::Banned,
                &reason,
                now,
            ),
            (Request::Unban { room, user: name }, Some(user)) => self.moderate(
                session,
                id,
                user,
                &room,
                &name,
                ModAction::Unbanned,
                "",
                now,
            ),
            (
                Request::Mute {
                    room,
                    user: name,
                    muted,
                },
                Some(user),
            ) => {
                let action = if muted {
                    ModAction::Muted
                } else {
                    ModAction::Unmuted
                };
                self.moderate(session, id, user, &room, &name, action, "", now)
            }
            (Request::Edit { message, text }, Some(_)) => {
                self.change_message(session, id, message, ChangeWhat::Edit(text))
            }
            (Request::Delete { message }, Some(_)) => {
                self.change_message(session, id, message, ChangeWhat::Delete)
            }
            (Request::Redact { message, reason }, Some(_)) => {
                self.change_message(session, id, message, ChangeWhat::Redact(reason))
            }
            (Request::SetTopic { room, topic }, Some(user)) => {
                self.set_topic(session, id, user, &room, &topic)
            }
            (
                Request::SetDisabled {
                    user: name,
                    disabled,
                },
                Some(user),
            ) => self.set_disabled(session, id, user, &name, disabled, now),
            (
                Request::AuditLog {
                    room,
                    before,
                    limit,
                },
                Some(user),
            ) => self.audit_log(session, id, user, room.as_deref(), before, limit),
            (Request::MarkRead { target, up_to }, Some(user)) => {
                self.mark_read(session, id, user, &target, up_to)
            }
            (
                Request::Search {
                    text,
                    before,
                    limit,
                },
                Some(user),
            ) => self.search(session, id, user, &text, before, limit),
        };
        if let Err(error) = result {
            self.fail(session, id, error);
        }
    }

    /// The result of earlier I/O.
    pub fn handle_completion(&mut self, completion: Completion, now: Now) {
        match completion {
            Completion::Persisted { ticket, committed } => self.persisted(ticket, committed, now),
            Completion::Committed {
                after,
                up_to,
                limit,
                messages,
            } => self.committed_read(after, up_to, limit, messages, now),
            Completion::Directory(snapshot) => self.directory_loaded(snapshot, now),
            Completion::PasswordVerified { session, ok, token } => {
                self.end_hash(session, true);
                self.password_verified(session, ok, token, now);
                self.release_held(session, now);
            }
            Completion::PasswordHashed {
                session,
                hash,
                token,
            } => {
                self.end_hash(session, true);
                self.password_hashed(session, hash, token, now);
                self.release_held(session, now);
            }
            Completion::TokenFound { session, record } => {
                self.token_found(session, record, now);
                self.release_held(session, now);
            }
            Completion::Backlog { session, messages } => self.backlog(session, messages),
            Completion::History {
                session,
                request,
                limit,
                messages,
            } => self.history_loaded(session, request, messages, limit),
            Completion::MessageLoaded {
                session,
                change,
                message,
            } => self.message_loaded(session, change, message, now),
            Completion::AuditLoaded {
                session,
                request,
                limit,
                records,
            } => self.audit_loaded(session, request, records, limit),
            Completion::Unread {
                session,
                user,
                purpose,
                counts,
            } => self.unread_counted(session, user, purpose, counts),
            Completion::Found {
                session,
                request,
                user,
                limit,
                messages,
            } => self.found(session, request, user, messages, limit),
        }
    }

    fn after_persist(&mut self, after: After, committed: Committed, now: Now) {
        // The persist's one message, if any, was numbered right after its position.
        let id = MessageId(committed.position.0 + 1);
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
                let joined = matches!(event, MemberEvent::Joined | MemberEvent::Invited { .. });
                self.announce_member(conv, user, event, also);
                if joined {
                    self.tell_topic(conv, user);
                }
            }
            After::LoggedIn(session, request, reply) => self.logged_in(session, request, reply),
            After::Message(session, request, message) => {
                let message = StoredMessage { id, ..message };
                self.message_stored(session, request, message, committed.duplicate);
            }
            After::Changed(session, request, row) => {
                self.change_stored(session, request, StoredMessage { id, ..row });
            }
            After::Topic {
                reply: (session, request),
                conv,
                by,
            } => {
                self.reply(session, request, Reply::Done);
                self.announce_topic(conv, by);
            }
            After::MarkedRead {
                reply,
                user,
                conv,
                up_to,
            } => self.marker_stored(reply, user, conv, up_to),
            After::DisplayName {
                reply: (session, request),
                user,
            } => {
                self.reply(session, request, Reply::Done);
                self.announce_display_name(user);
            }
            After::Moderated {
                reply,
                conv,
                actor,
                target,
                action,
                reason,
            } => self.moderated(reply, conv, actor, target, action, reason),
            After::Disabled {
                reply,
                user,
                disabled,
            } => self.disabled(reply, user, disabled, now),
        }
    }

    /// The monotonic time at which [`handle_timeout`](Self::handle_timeout) should next be
    /// called, if any.
    pub fn poll_timeout(&self) -> Option<Mono> {
        [
            self.sessions.next_deadline(),
            self.presence.next_deadline(),
            self.delivery.next_deadline(),
            self.log.next_deadline(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Runs every deadline that has come: login timeouts, the keepalive (pings, and closing
    /// connections silent since theirs), typing expiry, coalesced presence, acknowledgement
    /// flushes.
    pub fn handle_timeout(&mut self, now: Now) {
        for session in self.sessions.overdue(now.mono) {
            let error = ErrorReply::new(ErrorCode::Timeout, "no login in time");
            self.close(session, Some(error), now);
        }
        let silent = self.sessions.sweep(&self.config, now.mono);
        if !silent.ping.is_empty() {
            // One frame for every ping of the sweep; the nonce is the sweep's time.
            if let Some(frame) = self.out.encode(&ServerMessage::Ping { nonce: now.mono.0 }) {
                self.out.send_to(silent.ping, &frame, false);
            }
        }
        for session in silent.close {
            let error = ErrorReply::new(ErrorCode::Timeout, "no answer to keepalive");
            self.close(session, Some(error), now);
        }
        self.expire_typing(now);
        self.broadcast_presence(now);
        if self.delivery.flush_due(now.mono) {
            self.flush_positions();
        }
        self.read_overdue_hole(now.mono);
    }

    /// Starts a graceful shutdown: every connection gets `ShuttingDown` and is closed, and
    /// acknowledged positions are persisted. Feed completions until the persists are done.
    pub fn shut_down(&mut self, now: Now) {
        let sessions = self.sessions.ids();
        if let Some(frame) = self.out.encode(&ServerMessage::ShuttingDown) {
            self.out.send_to(sessions.iter().copied(), &frame, false);
        }
        for session in sessions {
            self.close(session, None, now);
        }
        self.flush_positions();
    }

    /// The next piece of work for the driver, if any.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop()
    }

    // ===== outputs to sessions that still exist =====

    fn reply(&mut self, session: SessionId, request: RequestId, reply: Reply) {
        if self.sessions.contains(session) {
            self.out.reply(session, request, reply);
        }
    }

    fn fail(&mut self, session: SessionId, request: RequestId, error: ErrorReply) {
        if self.sessions.contains(session) {
            self.out.fail(session, request, error);
        }
    }

    /// Sends `error` (if any), closes the connection and forgets the session.
    fn close(&mut self, session: SessionId, error: Option<ErrorReply>, now: Now) {
        if self.sessions.contains(session) {
            self.handle_disconnect(session, now);
            self.out.close(session, error);
        }
    }

    /// Writes every acknowledged position not yet written.
    fn flush_positions(&mut self) {
        let writes = self.delivery.flush();
        if !writes.is_empty() {
            self.out.persist(writes, After::Nothing);
        }
    }
}

/// Makes room for one more element in a per-user vector: exactly one while it is small (most
/// users have one device, one session, a handful of conversations, and a vector's first push
/// would make room for four), the vector's own growth after that.
fn make_room_for_one<T>(items: &mut Vec<T>) {
    if items.len() < 8 {
        items.reserve_exact(1);
    }
}
