//! The interactive client's state, sans I/O: lines in, frames and typed events out.
//!
//! Lines run in order. A line waits while the client is disconnected or a request other than a
//! message is unanswered, so a script's `/login`, `/join`, then text all do what they say. When
//! the connection drops, the client asks to reconnect with exponential back-off and jitter,
//! resumes with its session token, and sends again every request still unanswered (a message
//! keeps its request id and client message id, so the server stores it once). Messages are
//! shown once each (by id) and acknowledged.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use chat_proto::{
    ChatMessage, ClientMessage, ClientMsgId, ErrorReply, Hello, MemberEvent, MessageId, Reply,
    Request, RoomInfo, ServerMessage, Target, UserStatus, Welcome,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::command::{self, Command, HELP};
use crate::requests::Requests;

/// Typing is announced again after this long while keys are pressed.
pub const TYPING_REFRESH: Duration = Duration::from_secs(3);
/// Typing ends after this much quiet.
pub const TYPING_PAUSE: Duration = Duration::from_secs(5);
/// How long finished input waits for outstanding replies before giving up.
pub const REPLY_WAIT: Duration = Duration::from_secs(30);
/// How long a connection may take from open to `Welcome`.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// The first reconnection delay (before jitter); it doubles on each failure.
pub const MIN_BACKOFF: Duration = Duration::from_millis(100);
/// The longest reconnection delay (before jitter).
pub const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// What the client is configured with.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The server's address, for messages only (the front end connects).
    pub server: String,
    /// This device's stable id.
    pub device: String,
    /// The password for `/login NAME` and `/register NAME` typed without one.
    pub password: Option<String>,
    /// The client's name and version, sent in `Hello`.
    pub client_name: String,
    /// After the input ends and every reply is in: how long to keep showing events.
    pub linger: Duration,
}

/// An effect for the front end to carry out, drained with [`Client::poll_output`].
#[derive(Clone, Debug, PartialEq)]
pub enum Output {
    /// Send this message on the open connection (drop it if none is open: what matters is sent
    /// again after reconnecting).
    Send(ClientMessage),
    /// Show this to the user.
    Print(Event),
    /// Open a connection after this delay, then call [`Client::handle_connected`] or
    /// [`Client::handle_connect_failed`].
    Connect {
        /// How long to wait first.
        after: Duration,
    },
    /// Close the open connection; the client already counts it as gone (do not call
    /// [`Client::handle_disconnect`] for it).
    Close,
    /// Stop, with this process exit status (0: every command succeeded).
    Exit(i32),
}

/// Something to show, typed; the front end chooses the words.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// A chat message, shown once per id.
    Message {
        /// The message.
        message: ChatMessage,
        /// The logged-in user, to tell own direct messages from others'.
        me: Option<String>,
        /// Replayed from the offline backlog.
        earlier: bool,
    },
    /// A page of history, newest first.
    History {
        /// The messages.
        messages: Vec<ChatMessage>,
        /// Whether older ones exist.
        more: bool,
        /// The logged-in user.
        me: Option<String>,
    },
    /// The help text.
    Help(&'static str),
    /// Plain lines now go to this target.
    Switched(Target),
    /// Logged in (or registered); plain lines go to `room`, the server's default room.
    LoggedIn {
        /// The username.
        user: String,
        /// The server's default room.
        room: String,
    },
    /// Logged out.
    LoggedOut,
    /// The connection dropped; reconnecting.
    Reconnecting,
    /// Connected (and logged in) again.
    Reconnected,
    /// The first connection attempt failed; retrying.
    Unreachable {
        /// The server's address.
        server: String,
        /// Why.
        error: String,
    },
    /// A room was joined or created; plain lines go there now.
    Joined {
        /// The room.
        room: RoomInfo,
        /// Created rather than joined.
        created: bool,
    },
    /// `user` was added to `room`.
    Added {
        /// The user.
        user: String,
        /// The room.
        room: String,
    },
    /// This user left the room.
    Left(String),
    /// A room listing.
    Rooms(Vec<RoomInfo>),
    /// A room's members.
    Members {
        /// The room.
        room: String,
        /// Its members.
        members: Vec<UserStatus>,
    },
    /// Every user.
    Users(Vec<UserStatus>),
    /// The display name was set.
    DisplayName(String),
    /// Someone started or stopped typing.
    Typing {
        /// Who.
        user: String,
        /// Where.
        target: Target,
        /// Started (`true`) or stopped.
        active: bool,
    },
    /// Someone came online or went offline.
    Presence {
        /// Who.
        user: String,
        /// The new status.
        online: bool,
    },
    /// A room's membership changed.
    Member {
        /// The room.
        room: String,
        /// Whose membership.
        user: String,
        /// What happened.
        event: MemberEvent,
    },
    /// The server is shutting down.
    ShuttingDown,
    /// An error from the server not tied to a request.
    ServerError(ErrorReply),
    /// A command failed (the exit status becomes 1).
    Failed(String),
    /// A reply of an unexpected kind, shown as it is.
    Unexpected(String),
}

/// What a request was for, to show its reply.
#[derive(Clone, Debug)]
enum What {
    Login,
    Resume,
    Logout,
    Join { created: bool },
    Invite { user: String, room: String },
    Leave(String),
    Rooms,
    Who(String),
    Users,
    Send,
    History,
    Nick(String),
}

/// A request sent and unanswered: kept whole to be sent again after a reconnect.
#[derive(Debug)]
struct Pending {
    what: What,
    request: Request,
}

/// The state of the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Link {
    /// No connection; a [`Output::Connect`] is out.
    Down,
    /// Open, `Hello` sent, waiting for `Welcome` until the deadline.
    Greeting { deadline: Instant },
    /// Welcomed: requests flow.
    Up,
}

/// An interactive chat client, without I/O: what a user types and what the server sends go in,
/// frames to send and events to show come out. Deterministic given its seed; it never reads the
/// clock (every input carries `now`).
///
/// # Driving contract
///
/// 1. Create it with [`Client::new`]; its first output is [`Output::Connect`].
/// 2. Feed inputs as they happen: [`handle_line`](Self::handle_line) for each line typed,
///    [`handle_keys`](Self::handle_keys) when the line being edited changes,
///    [`handle_input_end`](Self::handle_input_end) when input is over;
///    [`handle_connected`](Self::handle_connected) or
///    [`handle_connect_failed`](Self::handle_connect_failed) after each [`Output::Connect`];
///    [`handle_message`](Self::handle_message) for each frame received;
///    [`handle_disconnect`](Self::handle_disconnect) when the connection ends (unless the
///    client asked for it with [`Output::Close`]).
/// 3. After every input, drain [`poll_output`](Self::poll_output) until `None` and carry each
///    output out in order (a `Send` on the current connection).
/// 4. Then ask [`poll_timeout`](Self::poll_timeout) and call
///    [`handle_timeout`](Self::handle_timeout) when that instant passes (it may be earlier than
///    the last answer: ask again after every input).
/// 5. Stop after [`Output::Exit`]; the client ignores every later input.
#[derive(Debug)]
pub struct Client {
    settings: Settings,
    rng: StdRng,
    out: VecDeque<Output>,
    link: Link,
    /// The next reconnection delay before jitter.
    backoff: Duration,
    /// Whether a connection was welcomed before (so the next one is a reconnection).
    was_connected: bool,
    /// The room new users are put in, from the last `Welcome`.
    default_room: String,
    /// `(user, token)` once logged in.
    session: Option<(String, String)>,
    current: Option<Target>,
    /// Requests sent (or to be sent again after a reconnect) and not yet answered.
    requests: Requests<Pending>,
    /// Lines not yet run.
    waiting: VecDeque<Command>,
    /// The highest message id shown.
    max_seen: MessageId,
    /// Messages until `CaughtUp` come from the offline backlog.
    replaying: bool,
    failed: bool,
    /// The target typing was last announced to, and when.
    typing: Option<(Target, Instant)>,
    last_key: Option<Instant>,
    /// When the input ended, and when to stop once everything is answered.
    input_ended: Option<Instant>,
    linger_until: Option<Instant>,
    exited: bool,
}

impl Client {
    /// A client that has not connected yet, with a random seed.
    pub fn new(settings: Settings) -> Self {
        Self::with_rng(settings, StdRng::from_entropy())
    }

    /// A client whose jitter and client message ids come from `seed` (for tests).
    pub fn with_seed(settings: Settings, seed: u64) -> Self {
        Self::with_rng(settings, StdRng::seed_from_u64(seed))
    }

    fn with_rng(settings: Settings, rng: StdRng) -> Self {
        Self {
            settings,
            rng,
            out: VecDeque::from([Output::Connect {
                after: Duration::ZERO,
            }]),
            link: Link::Down,
            backoff: MIN_BACKOFF,
            was_connected: false,
            default_room: String::new(),
            session: None,
            current: None,
            requests: Requests::new(),
            waiting: VecDeque::new(),
            max_seen: MessageId(0),
            replaying: false,
            failed: false,
            typing: None,
            last_key: None,
            input_ended: None,
            linger_until: None,
            exited: false,
        }
    }

    /// Where plain lines go now.
    pub fn current(&self) -> Option<&Target> {
        self.current.as_ref()
    }

    /// Whether a command has failed so far.
    pub fn failed(&self) -> bool {
        self.failed
    }

    /// The next effect to carry out, in order; `None` when there is nothing more for now.
    #[must_use]
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) is due next, if ever.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.exited {
            return None;
        }
        let greeting = match self.link {
            Link::Greeting { deadline } => Some(deadline),
            Link::Down | Link::Up => None,
        };
        let typing = self
            .typing
            .as_ref()
            .and(self.last_key)
            .map(|at| at + TYPING_PAUSE);
        let give_up = match (self.input_ended, self.linger_until) {
            (Some(ended), None) => Some(ended + REPLY_WAIT),
            _ => None,
        };
        [greeting, typing, give_up, self.linger_until]
            .into_iter()
            .flatten()
            .min()
    }

    /// A line the user typed: a `/command`, or text for the current target. Runs now, or once
    /// the lines before it have run and the requests they wait on are answered.
    pub fn handle_line(&mut self, line: &str, now: Instant) {
        if self.exited {
            return;
        }
        match command::parse(line) {
            Ok(Command::Quit) if self.waiting.is_empty() => return self.exit(),
            Ok(command) => self.waiting.push_back(command),
            Err(usage) => self.waiting.push_back(Command::Invalid(usage)),
        }
        self.settle(now);
    }

    /// The line being edited changed; `composing` if it now holds text for the current target.
    /// Drives the typing indicator.
    pub fn handle_keys(&mut self, composing: bool, now: Instant) {
        if self.exited {
            return;
        }
        self.last_key = Some(now);
        if let Some(target) = self.current.clone() {
            let active = match &self.typing {
                Some((to, at)) if *to == target => {
                    composing && now.saturating_duration_since(*at) >= TYPING_REFRESH
                }
                Some(_) | None => composing,
            };
            if active {
                self.typing = Some((target.clone(), now));
                self.send(ClientMessage::Typing {
                    target,
                    active: true,
                });
            } else if !composing {
                self.stop_typing();
            }
        }
        self.settle(now);
    }

    /// No more lines will come: exit once every line ran and every reply arrived, after the
    /// linger time.
    pub fn handle_input_end(&mut self, now: Instant) {
        if self.exited || self.input_ended.is_some() {
            return;
        }
        self.input_ended = Some(now);
        self.settle(now);
    }

    /// The connection asked for by [`Output::Connect`] is open: the client says hello.
    pub fn handle_connected(&mut self, now: Instant) {
        if self.exited {
            return;
        }
        self.link = Link::Greeting {
            deadline: now + HANDSHAKE_TIMEOUT,
        };
        let hello = Hello::current(self.settings.client_name.clone());
        self.out
            .push_back(Output::Send(ClientMessage::Hello(hello)));
    }

    /// The connection asked for by [`Output::Connect`] could not be opened.
    pub fn handle_connect_failed(&mut self, error: &str, now: Instant) {
        if self.exited {
            return;
        }
        self.connect_failed(error);
        self.settle(now);
    }

    /// The open connection ended.
    pub fn handle_disconnect(&mut self, now: Instant) {
        if self.exited {
            return;
        }
        match self.link {
            Link::Down => return,
            Link::Greeting { .. } => self.connect_failed("connection closed"),
            Link::Up => {
                self.link = Link::Down;
                self.print(Event::Reconnecting);
                self.typing = None;
                // Logins in flight are lost with the connection; everything else is sent again.
                let lost: Vec<_> = self
                    .requests
                    .iter()
                    .filter(|(_, p)| matches!(p.what, What::Login | What::Resume))
                    .map(|(id, _)| id)
                    .collect();
                for id in lost {
                    self.requests.remove(id);
                    self.error("the connection dropped during login: try again");
                }
                let after = self.jitter();
                self.out.push_back(Output::Connect { after });
            }
        }
        self.settle(now);
    }

    /// A message from the server.
    pub fn handle_message(&mut self, msg: ServerMessage, now: Instant) {
        if self.exited {
            return;
        }
        match self.link {
            Link::Down => return,
            Link::Greeting { .. } => match msg {
                ServerMessage::Welcome(welcome) => self.welcomed(welcome),
                ServerMessage::Ping { nonce } => self.send_now(ClientMessage::Pong { nonce }),
                ServerMessage::Error(error) => {
                    self.out.push_back(Output::Close);
                    self.connect_failed(&error.message);
                }
                other => {
                    self.out.push_back(Output::Close);
                    self.connect_failed(&format!("unexpected {other:?}"));
                }
            },
            Link::Up => self.handle(msg),
        }
        self.settle(now);
    }

    /// Time passed: see [`poll_timeout`](Self::poll_timeout).
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.exited {
            return;
        }
        if matches!(self.link, Link::Greeting { deadline } if deadline <= now) {
            self.out.push_back(Output::Close);
            self.connect_failed("timed out");
        }
        if let (Some(_), Some(key)) = (&self.typing, self.last_key) {
            if key + TYPING_PAUSE <= now {
                self.stop_typing();
            }
        }
        if self.linger_until.is_some_and(|at| at <= now) {
            return self.exit();
        }
        if self.linger_until.is_none()
            && self
                .input_ended
                .is_some_and(|ended| ended + REPLY_WAIT <= now)
        {
            self.error("gave up waiting for replies");
            return self.exit();
        }
        self.settle(now);
    }

    // ===== helpers =====

    /// Runs the lines that may run, then checks whether finished input is done.
    fn settle(&mut self, now: Instant) {
        self.pump();
        if let Some(ended) = self.input_ended {
            if !self.exited
                && self.linger_until.is_none()
                && self.waiting.is_empty()
                && self.requests.is_empty()
                && ended + REPLY_WAIT > now
            {
                self.linger_until = Some(now + self.settings.linger);
            }
        }
    }

    fn print(&mut self, event: Event) {
        self.out.push_back(Output::Print(event));
    }

    fn error(&mut self, text: &str) {
        self.failed = true;
        self.print(Event::Failed(text.to_owned()));
    }

    fn exit(&mut self) {
        self.exited = true;
        self.out.push_back(Output::Exit(i32::from(self.failed)));
    }

    /// Sends `msg` if the connection is up (what must survive a drop is a pending request,
    /// sent again after reconnecting).
    fn send(&mut self, msg: ClientMessage) {
        if self.link == Link::Up {
            self.send_now(msg);
        }
    }

    fn send_now(&mut self, msg: ClientMessage) {
        self.out.push_back(Output::Send(msg));
    }

    /// `backoff` scaled by a random factor in 0.5..1.5.
    fn jitter(&mut self) -> Duration {
        self.backoff.mul_f64(self.rng.gen_range(0.5..1.5))
    }

    fn connect_failed(&mut self, error: &str) {
        self.link = Link::Down;
        if !self.was_connected && self.backoff == MIN_BACKOFF {
            self.print(Event::Unreachable {
                server: self.settings.server.clone(),
                error: error.to_owned(),
            });
        }
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
        let after = self.jitter();
        self.out.push_back(Output::Connect { after });
    }

    fn welcomed(&mut self, welcome: Welcome) {
        self.link = Link::Up;
        self.backoff = MIN_BACKOFF;
        self.default_room = welcome.default_room;
        let reconnected = std::mem::replace(&mut self.was_connected, true);
        match self.session.clone() {
            Some((_, token)) => {
                let device = self.settings.device.clone();
                self.request(What::Resume, Request::Resume { token, device });
            }
            None if reconnected => {
                self.print(Event::Reconnected);
                self.resend();
            }
            None => {}
        }
    }

    /// Whether lines must wait: while disconnected, or while any request but a message is
    /// unanswered (a line may depend on it: `/join` changes where the next line goes).
    /// Messages follow each other without waiting.
    fn blocked(&self) -> bool {
        self.link != Link::Up
            || self
                .requests
                .iter()
                .any(|(_, p)| !matches!(p.what, What::Send))
    }

    /// Runs waiting lines until one has to wait.
    fn pump(&mut self) {
        while !self.exited && !self.blocked() {
            let Some(command) = self.waiting.pop_front() else {
                return;
            };
            self.execute(command);
        }
    }

    fn execute(&mut self, command: Command) {
        let device = self.settings.device.clone();
        let (what, request) = match command {
            Command::Nothing => return,
            Command::Quit => return self.exit(),
            Command::Invalid(usage) => return self.error(&usage),
            Command::Help => return self.print(Event::Help(HELP)),
            Command::Switch(target) => {
                self.current = Some(target.clone());
                return self.print(Event::Switched(target));
            }
            Command::Say(text) => {
                let Some(target) = self.current.clone() else {
                    return self.error("nowhere to send: /join #room or /switch USER first");
                };
                self.typing = None;
                (What::Send, self.message(target, text))
            }
            Command::Msg { user, text } => (What::Send, self.message(Target::User(user), text)),
            Command::Register { name, password } => {
                let Some(password) = password.or_else(|| self.settings.password.clone()) else {
                    return self.no_password();
                };
                let request = Request::Register {
                    username: name,
                    password,
                    device,
                };
                (What::Login, request)
            }
            Command::Login { name, password } => {
                let Some(password) = password.or_else(|| self.settings.password.clone()) else {
                    return self.no_password();
                };
                let request = Request::Login {
                    username: name,
                    password,
                    device,
                };
                (What::Login, request)
            }
            Command::Logout => (What::Logout, Request::Logout),
            Command::Join(room) => (What::Join { created: false }, Request::Join { room }),
            Command::Create { room, invite_only } => (
                What::Join { created: true },
                Request::CreateRoom { room, invite_only },
            ),
            Command::Invite { user, room } => {
                let request = Request::Invite {
                    room: room.clone(),
                    user: user.clone(),
                };
                (What::Invite { user, room }, request)
            }
            Command::Leave(room) => {
                let Some(room) = room.or_else(|| self.current_room()) else {
                    return self.error("not in a room: /leave #room");
                };
                (What::Leave(room.clone()), Request::Leave { room })
            }
            Command::Rooms => (What::Rooms, Request::ListRooms),
            Command::Who(room) => {
                let Some(room) = room.or_else(|| self.current_room()) else {
                    return self.error("not in a room: /who #room");
                };
                (What::Who(room.clone()), Request::Who { room })
            }
            Command::Users => (What::Users, Request::ListUsers),
            Command::History(limit) => {
                let Some(target) = self.current.clone() else {
                    return self
                        .error("no current room or user: /join #room or /switch USER first");
                };
                let request = Request::History {
                    target,
                    before: None,
                    limit,
                };
                (What::History, request)
            }
            Command::Nick(name) => {
                let request = Request::SetDisplayName {
                    display_name: name.clone(),
                };
                (What::Nick(name), request)
            }
        };
        self.request(what, request);
    }

    fn no_password(&mut self) {
        self.error("a password is needed: add it to the command or set CHAT_PASSWORD");
    }

    fn message(&mut self, target: Target, text: String) -> Request {
        Request::Send {
            target,
            client_msg_id: ClientMsgId(self.rng.gen()),
            text,
        }
    }

    fn current_room(&self) -> Option<String> {
        match &self.current {
            Some(Target::Room(room)) => Some(room.clone()),
            _ => None,
        }
    }

    /// Sends a request (now if connected, else after reconnecting) and remembers it.
    fn request(&mut self, what: What, request: Request) {
        let msg = self.requests.start(
            Pending {
                what,
                request: request.clone(),
            },
            request,
        );
        self.send(msg);
    }

    /// Sends again everything unanswered, with the same ids (a message keeps its client
    /// message id, so the server stores it once).
    fn resend(&mut self) {
        let again: Vec<ClientMessage> = self
            .requests
            .iter()
            .filter(|(_, p)| !matches!(p.what, What::Resume | What::Login))
            .map(|(id, p)| ClientMessage::Request {
                id,
                request: p.request.clone(),
            })
            .collect();
        for msg in again {
            self.send(msg);
        }
    }

    fn me(&self) -> Option<String> {
        self.session.as_ref().map(|(user, _)| user.clone())
    }

    fn handle(&mut self, msg: ServerMessage) {
        let msg = match self.requests.finish(msg) {
            Ok(answer) => {
                return match answer.result {
                    Ok(reply) => self.replied(answer.tag.what, reply),
                    Err(error) => self.refused(&answer.tag.what, &error),
                }
            }
            Err(msg) => msg,
        };
        match msg {
            ServerMessage::Message(m) => {
                let id = m.id;
                if id > self.max_seen {
                    self.max_seen = id;
                    let me = self.me();
                    let earlier = self.replaying;
                    self.print(Event::Message {
                        message: m,
                        me,
                        earlier,
                    });
                }
                if !self.replaying {
                    self.send(ClientMessage::Ack { up_to: id });
                }
            }
            ServerMessage::CaughtUp => {
                self.replaying = false;
                if self.max_seen > MessageId(0) {
                    self.send(ClientMessage::Ack {
                        up_to: self.max_seen,
                    });
                }
            }
            ServerMessage::Ping { nonce } => self.send(ClientMessage::Pong { nonce }),
            ServerMessage::Typing {
                user,
                target,
                active,
            } => self.print(Event::Typing {
                user,
                target,
                active,
            }),
            ServerMessage::Presence { user, online } => {
                self.print(Event::Presence { user, online });
            }
            ServerMessage::Member { room, user, event } => {
                self.print(Event::Member { room, user, event });
            }
            ServerMessage::ShuttingDown => self.print(Event::ShuttingDown),
            ServerMessage::Error(error) => self.print(Event::ServerError(error)),
            // A reply nobody waits for, a second welcome, a pong: nothing to do.
            ServerMessage::Ok { .. }
            | ServerMessage::Err { .. }
            | ServerMessage::Welcome(_)
            | ServerMessage::Pong { .. } => {}
        }
    }

    fn refused(&mut self, what: &What, error: &ErrorReply) {
        if matches!(what, What::Resume) {
            self.session = None;
            return self.error(&format!(
                "could not resume the session ({}): /login again",
                error.message
            ));
        }
        self.error(&error.message);
    }

    fn replied(&mut self, what: What, reply: Reply) {
        match (what, reply) {
            (What::Login, Reply::Session(session)) => {
                let room = self.default_room.clone();
                self.print(Event::LoggedIn {
                    user: session.user.clone(),
                    room: room.clone(),
                });
                self.session = Some((session.user, session.token));
                self.current = Some(Target::Room(room));
                self.replaying = true;
            }
            (What::Resume, Reply::Session(_)) => {
                self.print(Event::Reconnected);
                self.replaying = true;
                self.resend();
            }
            (What::Logout, _) => {
                self.session = None;
                self.print(Event::LoggedOut);
            }
            (What::Join { created }, Reply::Room(room)) => {
                self.current = Some(Target::Room(room.name.clone()));
                self.print(Event::Joined { room, created });
            }
            (What::Invite { user, room }, _) => self.print(Event::Added { user, room }),
            (What::Leave(room), _) => {
                if self.current.as_ref() == Some(&Target::Room(room.clone())) {
                    self.current = None;
                }
                self.print(Event::Left(room));
            }
            (What::Rooms, Reply::Rooms(rooms)) => self.print(Event::Rooms(rooms)),
            (What::Who(room), Reply::Members { members, .. }) => {
                self.print(Event::Members { room, members });
            }
            (What::Users, Reply::Users(users)) => self.print(Event::Users(users)),
            (What::History, Reply::History { messages, more }) => {
                let me = self.me();
                self.print(Event::History { messages, more, me });
            }
            (What::Nick(name), _) => self.print(Event::DisplayName(name)),
            (What::Send, _) => {}
            (what, reply) => self.print(Event::Unexpected(format!("{what:?}: {reply:?}"))),
        }
    }

    fn stop_typing(&mut self) {
        if let Some((target, _)) = self.typing.take() {
            self.send(ClientMessage::Typing {
                target,
                active: false,
            });
        }
    }
}

#[cfg(test)]
mod tests;
