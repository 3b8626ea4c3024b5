//! The interactive client's state, sans I/O: lines in, frames and typed events out.
//!
//! Lines run in order. A line waits while the client is disconnected or a request other than a
//! message is unanswered, so a script's `/login`, `/join`, then text all do what they say. When
//! the connection drops, the client asks to reconnect with exponential back-off and jitter,
//! failing over between its servers' addresses (round robin from the one that last worked,
//! backing off only once every address failed: `rotation.rs`), resumes with its session token, and sends again every request still unanswered (a message
//! keeps its request id and client message id, so the server stores it once). Messages are
//! shown once each (by id) and acknowledged. Requests are paced to the server's rate limit
//! (from `Welcome`), and one refused as rate-limited is sent again after the wait it names.
//!
//! An interactive client (see [`Settings::interactive`]) also asks for a missing password
//! itself ([`Event::AskPassword`], answered with [`Client::handle_password`]), echoes the
//! user's own messages ([`Event::Own`]), refuses to post a line that is a password it was
//! given, and says at once when a command cannot reach the server.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use chat_proto::{
    AuditEntry, ChatMessage, ClientMessage, ClientMsgId, ClientMsgIds, ErrorCode, ErrorReply,
    Hello, Limits, MemberEvent, MessageId, ModAction, Reply, Request, Role, RoomEntry, RoomInfo,
    RosterEntry, ServerMessage, Target, UnreadCount, UserStatus, Welcome,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::command::{self, AuditOf, Command, HELP};
use crate::reads::{conversation, Reads};
use crate::requests::Requests;
use crate::rotation::Rotation;

/// Typing is announced again after this long while keys are pressed.
pub const TYPING_REFRESH: Duration = Duration::from_secs(3);
/// Typing ends after this much quiet.
pub const TYPING_PAUSE: Duration = Duration::from_secs(5);
/// How long finished input waits for outstanding replies before giving up.
pub const REPLY_WAIT: Duration = Duration::from_secs(30);
/// How long a connection may take from open to `Welcome`.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// The first reconnection delay (before jitter); it doubles each time every address failed.
pub const MIN_BACKOFF: Duration = Duration::from_millis(100);
/// The longest reconnection delay (before jitter).
pub const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How long someone counts as typing after the last notice that they are (the server relays
/// a refresh at most every 3 s and ends typing after 6 s of silence).
pub const TYPING_SHOWN: Duration = Duration::from_secs(7);
/// The shortest password the server accepts, in bytes.
pub const MIN_PASSWORD_LEN: usize = 8;
/// The longest password the server accepts, in bytes.
pub const MAX_PASSWORD_LEN: usize = 1024;
/// How a `/me` action is sent: this prefix, then the action (`/me waves`).
pub const ACTION_PREFIX: &str = "/me ";
/// How a new display name is announced where the user is: this, then the name (an action).
pub const NICK_ANNOUNCEMENT: &str = "/me is now known as ";
/// The most typing users the client keeps track of (a hostile server cannot grow it).
const MAX_TYPISTS: usize = 64;
/// Messages asked for per `/search`.
pub const SEARCH_PAGE: u16 = 20;

/// What the client is configured with.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The servers' addresses (nodes of one cluster, any of which will do), in the order to try
    /// them. [`Output::Connect`] names one by its index here; the client shows them in
    /// messages and the front end connects.
    pub servers: Vec<String>,
    /// This device's stable id.
    pub device: String,
    /// The password for `/login NAME` and `/register NAME` typed without one.
    pub password: Option<String>,
    /// The client's name and version, sent in `Hello`.
    pub client_name: String,
    /// After the input ends and every reply is in: how long to keep showing events.
    pub linger: Duration,
    /// A person at a terminal rather than a script: the client asks for passwords itself
    /// ([`Event::AskPassword`]), refuses a password on the `/register` line, echoes the user's
    /// own messages ([`Event::Own`]), fails commands at once while the server has never been
    /// reached, and `/quit` exits at once.
    pub interactive: bool,
}

/// An effect for the front end to carry out, drained with [`Client::poll_output`].
#[derive(Clone, Debug, PartialEq)]
pub enum Output {
    /// Send this message on the open connection (drop it if none is open: what matters is sent
    /// again after reconnecting).
    Send(ClientMessage),
    /// Show this to the user.
    Print(Event),
    /// Open a connection to one of the servers after this delay, then call
    /// [`Client::handle_connected`] or [`Client::handle_connect_failed`].
    Connect {
        /// How long to wait first.
        after: Duration,
        /// Which server: an index into [`Settings::servers`] (0 when there is one, or none).
        server: usize,
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
        /// Whose history.
        target: Target,
        /// The page ends below this id (`None`: the newest page).
        before: Option<MessageId>,
        /// The messages.
        messages: Vec<ChatMessage>,
        /// Whether older ones exist.
        more: bool,
        /// The logged-in user.
        me: Option<String>,
        /// *(v2)* Which of `messages` were edited by their authors.
        edited: Vec<MessageId>,
        /// *(v2)* Which of `messages` are tombstones (deleted or redacted; text erased).
        deleted: Vec<MessageId>,
    },
    /// *(v2)* A room's topic (when it changes, or on joining).
    Topic {
        /// The room.
        room: String,
        /// The topic (empty: none).
        topic: String,
        /// Who set it (empty when told on joining).
        by: String,
    },
    /// *(v2)* A user changed their display name.
    NameChanged {
        /// The username.
        user: String,
        /// The new display name.
        display_name: String,
    },
    /// *(v2)* The rooms, with their topics and unread counts.
    RoomList(Vec<RoomEntry>),
    /// *(v2)* Right after logging in: how far each conversation is read and how many messages
    /// in it are unread, up to what this device had before (every message shown after this
    /// is new to the device).
    Unread(Vec<UnreadCount>),
    /// *(v2)* This client marked a conversation read ([`Command::Read`], or
    /// [`Client::mark_read`]); stored.
    MarkedRead {
        /// The conversation.
        target: Target,
        /// The newest message read.
        up_to: MessageId,
        /// Whether the user asked (`/read`) rather than the front end.
        asked: bool,
    },
    /// *(v2)* Another of the user's devices marked a conversation read.
    ReadElsewhere {
        /// The conversation.
        target: Target,
        /// The newest message read.
        up_to: MessageId,
    },
    /// *(v2)* Messages found by `/search`, newest first.
    Found {
        /// The words searched for.
        text: String,
        /// The messages, with their latest text.
        messages: Vec<ChatMessage>,
        /// Whether older matches may exist (`/search --before ID` with the last id).
        more: bool,
        /// The logged-in user.
        me: Option<String>,
    },
    /// *(v2)* A message was edited by its author.
    Edited {
        /// The message.
        message: MessageId,
        /// Its author.
        from: String,
        /// Its conversation.
        target: Target,
        /// The new text.
        text: String,
    },
    /// *(v2)* A message was deleted by its author or redacted by a moderator.
    Deleted {
        /// The message.
        message: MessageId,
        /// Its conversation.
        target: Target,
        /// Who deleted it.
        by: String,
        /// Whether a moderator redacted it.
        redacted: bool,
        /// Why (a redaction's reason).
        reason: String,
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
    /// Connected to the server for the first time (interactive clients only).
    Connected {
        /// The server's address.
        server: String,
    },
    /// The connection dropped; reconnecting.
    Reconnecting,
    /// Connected (and logged in) again, possibly to another server.
    Reconnected {
        /// The address of the server now connected.
        server: String,
    },
    /// A connection attempt failed before any connection worked, in the first round over the
    /// servers (once per address); retrying.
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
        /// Its members, with their roles (version 1: every member a plain, unmuted member).
        members: Vec<RosterEntry>,
        /// Whether the user asked (`/who`) rather than the front end
        /// ([`Client::fetch_members`]).
        asked: bool,
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
    /// *(v2)* A moderator acted in a room the user is in (or on the user).
    Moderated {
        /// The room.
        room: String,
        /// The moderator.
        by: String,
        /// The user acted on.
        user: String,
        /// What was done.
        action: ModAction,
        /// Why (possibly empty).
        reason: String,
    },
    /// *(v2)* A page of the moderation audit log, newest first.
    AuditLog {
        /// The entries.
        entries: Vec<AuditEntry>,
        /// Whether older ones exist.
        more: bool,
    },
    /// An error from the server not tied to a request.
    ServerError(ErrorReply),
    /// Ask the user for a password without echo; answer with [`Client::handle_password`].
    AskPassword {
        /// What to show, e.g. `password for alice`.
        prompt: String,
        /// Whether a confirmation will be asked for after this one (registration).
        confirm_next: bool,
    },
    /// Something to tell the user that is neither a failure nor from the server.
    Notice(String),
    /// One of the user's own messages (interactive clients only): first `pending` when it is
    /// queued, then again once the server stored it or refused it (matched by
    /// `client_msg_id`).
    Own {
        /// The message; `id` and `sent_at` are 0 until stored.
        message: ChatMessage,
        /// Where it stands.
        status: Delivery,
    },
    /// A command failed (the exit status becomes 1).
    Failed(String),
    /// A reply of an unexpected kind, shown as it is.
    Unexpected(String),
}

/// Where one of the user's own messages stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// Queued or sent, not yet stored.
    Pending,
    /// Stored by the server (delivered to the others).
    Stored,
    /// Refused by the server (the reason comes as [`Event::Failed`]).
    Refused,
}

/// A password being asked for.
#[derive(Clone, Debug)]
enum Ask {
    Login { name: String },
    Register { name: String },
    Confirm { name: String, first: String },
}

/// A token bucket mirroring the server's request budget.
#[derive(Clone, Copy, Debug)]
struct Pace {
    /// Requests per second, sustained.
    rate: f64,
    /// Most requests at once.
    burst: f64,
    tokens: f64,
    at: Instant,
}

impl Pace {
    fn new(limits: &Limits, now: Instant) -> Self {
        // A little under the server's numbers, so clock differences never cost a refusal.
        let rate = (f64::from(limits.request_rate_per_sec) * 0.9).max(0.5);
        let burst = (f64::from(limits.request_burst) * 0.9).floor().max(1.0);
        Self {
            rate,
            burst,
            tokens: burst,
            at: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.at = now;
    }

    /// Whether one more request may go (with a tolerance for rounding).
    fn ready(&self) -> bool {
        self.tokens >= 1.0 - 1e-6
    }

    /// When one more request may go.
    fn next(&self) -> Instant {
        if self.ready() {
            return self.at;
        }
        self.at + Duration::from_secs_f64((1.0 - self.tokens) / self.rate)
    }
}

/// What a request was for, to show its reply.
#[derive(Clone, Debug)]
enum What {
    Login,
    Resume,
    Logout,
    Join {
        created: bool,
    },
    Invite {
        user: String,
        room: String,
    },
    Leave(String),
    Rooms,
    Who {
        room: String,
        asked: bool,
    },
    Users,
    Send,
    History {
        target: Target,
        before: Option<MessageId>,
    },
    Nick(String),
    /// A moderation request: its effect is shown by the `Moderated` event that follows.
    Moderate,
    Audit,
    /// *(v2)* A read marker.
    Read {
        target: Target,
        up_to: MessageId,
        asked: bool,
    },
    /// *(v2)* A search, for these words.
    Search(String),
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
    /// This client's message ids: time-ordered, never repeating.
    ids: ClientMsgIds,
    out: VecDeque<Output>,
    link: Link,
    /// Which server to connect to next, and the back-off.
    rotation: Rotation,
    /// Whether a connection was welcomed before (so the next one is a reconnection).
    was_connected: bool,
    /// The room new users are put in, from the last `Welcome`.
    default_room: String,
    /// The protocol version the server agreed in `Welcome`.
    version: u16,
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
    /// The latest time given with an input.
    now: Instant,
    /// Requests ready to go, paced by `pace`.
    paced: VecDeque<ClientMessage>,
    pace: Option<Pace>,
    /// No request goes before this (the server said it was rate-limited).
    paused_until: Option<Instant>,
    /// A password being asked for.
    asking: Option<Ask>,
    /// Passwords typed this run (at most 4), never to be posted as a message.
    secrets: Vec<String>,
    /// Who is typing where, until when (at most [`MAX_TYPISTS`], oldest first).
    typists: Vec<(String, Target, Instant)>,
    /// *(v2)* How far each conversation is read, and its newest message seen.
    reads: Reads,
}

impl Client {
    /// A client that has not connected yet, with a random seed.
    pub fn new(settings: Settings) -> Self {
        Self::with_rng(settings, StdRng::from_entropy())
    }

    /// A client whose jitter and the random bits of its client message ids come from `seed`
    /// (for tests).
    pub fn with_seed(settings: Settings, seed: u64) -> Self {
        Self::with_rng(settings, StdRng::seed_from_u64(seed))
    }

    fn with_rng(settings: Settings, rng: StdRng) -> Self {
        let rotation = Rotation::new(settings.servers.len());
        Self {
            settings,
            rng,
            ids: ClientMsgIds::default(),
            out: VecDeque::from([Output::Connect {
                after: Duration::ZERO,
                server: rotation.at(),
            }]),
            link: Link::Down,
            rotation,
            was_connected: false,
            default_room: String::new(),
            version: 1,
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
            now: Instant::now(),
            paced: VecDeque::new(),
            pace: None,
            paused_until: None,
            asking: None,
            secrets: Vec::new(),
            typists: Vec::new(),
            reads: Reads::default(),
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

    /// The logged-in user.
    pub fn user(&self) -> Option<&str> {
        self.session.as_ref().map(|(user, _)| user.as_str())
    }

    /// Whether the connection is up (welcomed).
    pub fn connected(&self) -> bool {
        self.link == Link::Up
    }

    /// The address of the server connected, or being tried (empty if there is none).
    pub fn server(&self) -> &str {
        self.settings
            .servers
            .get(self.rotation.at())
            .map_or("", String::as_str)
    }

    /// Whether a password is being asked for (lines go to
    /// [`handle_password`](Self::handle_password)).
    pub fn asking_password(&self) -> bool {
        self.asking.is_some()
    }

    /// Who is typing toward `target` now (a direct conversation is the other user's name).
    pub fn typists(&self, target: &Target) -> Vec<&str> {
        self.typists
            .iter()
            .filter(|(user, to, _)| match (to, target) {
                (Target::Room(_), _) => to == target,
                (Target::User(_), Target::User(other)) => user == other,
                (Target::User(_), Target::Room(_)) => false,
            })
            .map(|(user, _, _)| user.as_str())
            .collect()
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
        let typists = self.typists.iter().map(|(_, _, until)| *until).min();
        let paced = match (&self.pace, self.paced.is_empty(), self.link) {
            (Some(pace), false, Link::Up) => {
                Some(pace.next().max(self.paused_until.unwrap_or(pace.at)))
            }
            _ => None,
        };
        [greeting, typing, give_up, self.linger_until, typists, paced]
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
        self.now = now;
        if self.asking.is_some() {
            // A front end that missed the prompt: never let a password become a message.
            return self.handle_password(Some(line), now);
        }
        let command = command::parse(line).unwrap_or_else(Command::Invalid);
        if self.settings.interactive {
            if matches!(command, Command::Quit) {
                return self.exit();
            }
            if let Some(refusal) = self.refusal(&command) {
                self.print(Event::Failed(refusal));
                return self.settle(now);
            }
            if is_local(&command) && self.waiting.is_empty() {
                // Needs no server: runs even while disconnected.
                self.execute(command);
                return self.settle(now);
            }
        }
        match command {
            Command::Quit if self.waiting.is_empty() => return self.exit(),
            command => self.waiting.push_back(command),
        }
        self.settle(now);
    }

    /// The user answered [`Event::AskPassword`] (`None`: cancelled). A password that cannot be
    /// right (too short, too long, or not matching at the confirmation) is asked for again.
    pub fn handle_password(&mut self, password: Option<&str>, now: Instant) {
        if self.exited {
            return;
        }
        self.now = now;
        let Some(ask) = self.asking.take() else {
            // Typed hidden before the prompt came, and not asked for after all: whatever it
            // was, it is not shown, sent or kept.
            if password.is_some() {
                self.print(Event::Notice(
                    "a hidden line was not asked for: ignored".into(),
                ));
            }
            return;
        };
        let Some(password) = password else {
            self.print(Event::Notice("cancelled: no password given".into()));
            return self.settle(now);
        };
        if !(MIN_PASSWORD_LEN..=MAX_PASSWORD_LEN).contains(&password.len()) {
            self.print(Event::Notice(format!(
                "a password has {MIN_PASSWORD_LEN} to {MAX_PASSWORD_LEN} characters; \
                 try again (Esc cancels)"
            )));
            let again = match ask {
                Ask::Confirm { name, .. } => Ask::Register { name },
                other => other,
            };
            return self.ask(again);
        }
        let password = password.to_owned();
        let device = self.settings.device.clone();
        self.remember_secret(&password);
        match ask {
            Ask::Login { name } => {
                let request = Request::Login {
                    username: name,
                    password,
                    device,
                };
                self.request(What::Login, request);
            }
            Ask::Register { name } => self.ask(Ask::Confirm {
                name,
                first: password,
            }),
            Ask::Confirm { name, first } if first == password => {
                let request = Request::Register {
                    username: name,
                    password,
                    device,
                };
                self.request(What::Login, request);
            }
            Ask::Confirm { name, .. } => {
                self.print(Event::Notice(
                    "the passwords differ; try again (Esc cancels)".into(),
                ));
                self.ask(Ask::Register { name });
            }
        }
        self.settle(now);
    }

    /// The user wants out now (Ctrl-D, or Ctrl-C on an empty line): exit without waiting for
    /// anything.
    pub fn handle_quit(&mut self, now: Instant) {
        if self.exited {
            return;
        }
        self.now = now;
        self.exit();
    }

    /// Asks for a page of `target`'s history before `before` (`None`: the newest), e.g. for
    /// scrollback that reached the top; answered with [`Event::History`].
    pub fn fetch_history(
        &mut self,
        target: Target,
        before: Option<MessageId>,
        limit: u16,
        now: Instant,
    ) {
        if self.exited || self.session.is_none() {
            return;
        }
        self.now = now;
        let request = Request::History {
            target: target.clone(),
            before,
            limit,
        };
        self.request(What::History { target, before }, request);
        self.settle(now);
    }

    /// *(v2)* Marks `target` read up to the newest message of it this client has seen, as a
    /// front end does when the user looks at a conversation; answered with
    /// [`Event::MarkedRead`] whose `asked` is false. Does nothing if that would not move the
    /// marker, or if the server speaks version 1.
    pub fn mark_read(&mut self, target: Target, now: Instant) {
        if self.exited || self.session.is_none() || self.version < 2 {
            return;
        }
        self.now = now;
        if let Some(up_to) = self.reads.to_mark(&target) {
            // Counted as marked at once: a second look before the reply asks nothing more.
            self.reads.marked(target.clone(), up_to);
            let what = What::Read {
                target: target.clone(),
                up_to,
                asked: false,
            };
            self.request(what, Request::MarkRead { target, up_to });
        }
        self.settle(now);
    }

    /// Asks for a room's members without it being a command the user typed; answered with
    /// [`Event::Members`] whose `asked` is false.
    pub fn fetch_members(&mut self, room: String, now: Instant) {
        if self.exited || self.session.is_none() {
            return;
        }
        self.now = now;
        let request = Request::Who { room: room.clone() };
        self.request(What::Who { room, asked: false }, request);
        self.settle(now);
    }

    /// The line being edited is now `line`. Drives the typing indicator: typing is announced
    /// (and refreshed every [`TYPING_REFRESH`]) while the line holds text for the current
    /// target, and ended as soon as it holds nothing, or a command.
    pub fn handle_keys(&mut self, line: &str, now: Instant) {
        if self.exited {
            return;
        }
        self.now = now;
        let composing = !line.trim().is_empty() && !line.trim_start().starts_with('/');
        if self.asking.is_some() {
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
        self.now = now;
        self.input_ended = Some(now);
        self.settle(now);
    }

    /// The connection asked for by [`Output::Connect`] is open: the client says hello.
    pub fn handle_connected(&mut self, now: Instant) {
        if self.exited {
            return;
        }
        self.now = now;
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
        self.now = now;
        self.connect_failed(error);
        self.settle(now);
    }

    /// The open connection ended.
    pub fn handle_disconnect(&mut self, now: Instant) {
        if self.exited {
            return;
        }
        self.now = now;
        // What was paced but not sent is still pending: it goes again after reconnecting.
        self.paced.clear();
        self.paused_until = None;
        for (user, target, _) in std::mem::take(&mut self.typists) {
            self.print(Event::Typing {
                user,
                target,
                active: false,
            });
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
                let wait = self.rotation.lost();
                self.connect_after(wait);
            }
        }
        self.settle(now);
    }

    /// A message from the server.
    pub fn handle_message(&mut self, msg: ServerMessage, now: Instant) {
        if self.exited {
            return;
        }
        self.now = now;
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
        self.now = now;
        let (expired, live) = std::mem::take(&mut self.typists)
            .into_iter()
            .partition(|(_, _, until)| *until <= now);
        self.typists = live;
        for (user, target, _) in expired {
            self.print(Event::Typing {
                user,
                target,
                active: false,
            });
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
        self.flush(now);
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

    /// Sends the paced requests the budget allows now.
    fn flush(&mut self, now: Instant) {
        if self.link != Link::Up || self.paused_until.is_some_and(|at| at > now) {
            return;
        }
        self.paused_until = None;
        while !self.paced.is_empty() {
            if let Some(pace) = &mut self.pace {
                pace.refill(now);
                if !pace.ready() {
                    return;
                }
                pace.tokens = (pace.tokens - 1.0).max(0.0);
            }
            if let Some(msg) = self.paced.pop_front() {
                self.send_now(msg);
            }
        }
    }

    /// Why `command` cannot run now for a person at a terminal, if it cannot.
    fn refusal(&self, command: &Command) -> Option<String> {
        if !is_local(command) && !self.was_connected && self.link != Link::Up {
            return Some(format!(
                "not connected: {} cannot be reached yet (still trying); try again once connected",
                self.settings.servers.join(", ")
            ));
        }
        match command {
            Command::Register {
                password: Some(_), ..
            } => Some(
                "usage: /register NAME (a name has no spaces; the password is asked for next, \
                 twice, without echo)"
                    .into(),
            ),
            Command::Register { name, .. } | Command::Login { name, .. } => {
                command::check_username(name).err()
            }
            Command::Say(text) | Command::Msg { text, .. } | Command::Me(text)
                if self
                    .secrets
                    .iter()
                    .chain(&self.settings.password)
                    .any(|s| text.contains(s.as_str())) =>
            {
                Some("not sent: that line contains a password you typed".into())
            }
            _ => None,
        }
    }

    fn ask(&mut self, ask: Ask) {
        let prompt = match &ask {
            Ask::Login { name } => format!("password for {name}"),
            Ask::Register { name } => format!("new password for {name}"),
            Ask::Confirm { name, .. } => format!("the password for {name} again"),
        };
        let confirm_next = matches!(ask, Ask::Register { .. });
        self.asking = Some(ask);
        self.print(Event::AskPassword {
            prompt,
            confirm_next,
        });
    }

    fn remember_secret(&mut self, password: &str) {
        if !self.secrets.iter().any(|s| s == password) {
            if self.secrets.len() == 4 {
                self.secrets.remove(0);
            }
            self.secrets.push(password.to_owned());
        }
    }

    /// Asks for a connection to the rotation's server after `wait` scaled by a random factor
    /// in 0.5..1.5 (none within a round).
    fn connect_after(&mut self, wait: Duration) {
        let after = wait.mul_f64(self.rng.gen_range(0.5..1.5));
        let server = self.rotation.at();
        self.out.push_back(Output::Connect { after, server });
    }

    fn connect_failed(&mut self, error: &str) {
        self.link = Link::Down;
        if !self.was_connected && self.rotation.first_round() {
            self.print(Event::Unreachable {
                server: self.server().to_owned(),
                error: error.to_owned(),
            });
        }
        let wait = self.rotation.failed();
        self.connect_after(wait);
    }

    fn welcomed(&mut self, welcome: Welcome) {
        self.link = Link::Up;
        self.pace = Some(Pace::new(&welcome.limits, self.now));
        self.paused_until = None;
        self.rotation.connected();
        self.default_room = welcome.default_room;
        self.version = welcome.version;
        let reconnected = std::mem::replace(&mut self.was_connected, true);
        match self.session.clone() {
            Some((_, token)) => {
                let device = self.settings.device.clone();
                self.request(What::Resume, Request::Resume { token, device });
            }
            None if reconnected => {
                let server = self.server().to_owned();
                self.print(Event::Reconnected { server });
                self.resend();
            }
            None if self.settings.interactive => {
                let server = self.server().to_owned();
                self.print(Event::Connected { server });
            }
            None => {}
        }
    }

    /// Whether lines must wait: while disconnected, or while any request but a message is
    /// unanswered (a line may depend on it: `/join` changes where the next line goes).
    /// Messages follow each other without waiting.
    fn blocked(&self) -> bool {
        self.link != Link::Up
            || self.asking.is_some()
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
                // Sending ends typing on the server's side by itself.
                self.typing = None;
                (What::Send, self.message(target, text))
            }
            Command::Me(action) => {
                let Some(target) = self.current.clone() else {
                    return self.error("nowhere to send: /join #room or /switch USER first");
                };
                self.typing = None;
                let text = format!("{ACTION_PREFIX}{action}");
                (What::Send, self.message(target, text))
            }
            Command::Msg { user, text } => (What::Send, self.message(Target::User(user), text)),
            Command::Register { name, password } => {
                let Some(password) = password.or_else(|| self.settings.password.clone()) else {
                    if self.settings.interactive {
                        return self.ask(Ask::Register { name });
                    }
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
                    if self.settings.interactive {
                        return self.ask(Ask::Login { name });
                    }
                    return self.no_password();
                };
                self.remember_secret(&password);
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
            Command::Rooms if self.version >= 2 => (What::Rooms, Request::RoomList),
            Command::Rooms => (What::Rooms, Request::ListRooms),
            Command::Who(room) => {
                let Some(room) = room.or_else(|| self.current_room()) else {
                    return self.error("not in a room: /who #room");
                };
                let what = What::Who {
                    room: room.clone(),
                    asked: true,
                };
                (what, Request::Who { room })
            }
            Command::Users => (What::Users, Request::ListUsers),
            Command::History(limit) => {
                let Some(target) = self.current.clone() else {
                    return self
                        .error("no current room or user: /join #room or /switch USER first");
                };
                let request = Request::History {
                    target: target.clone(),
                    before: None,
                    limit,
                };
                (
                    What::History {
                        target,
                        before: None,
                    },
                    request,
                )
            }
            Command::Nick(name) => {
                let request = Request::SetDisplayName {
                    display_name: name.clone(),
                };
                (What::Nick(name), request)
            }
            Command::Moderate {
                action,
                user,
                reason,
            } => {
                let Some(room) = self.current_room() else {
                    return self.error("not in a room: /switch #room first");
                };
                let request = match action {
                    ModAction::Opped | ModAction::Deopped => Request::SetRole {
                        room,
                        user,
                        role: if action == ModAction::Opped {
                            Role::Moderator
                        } else {
                            Role::Member
                        },
                    },
                    ModAction::Kicked => Request::Kick { room, user, reason },
                    ModAction::Banned => Request::Ban { room, user, reason },
                    ModAction::Unbanned => Request::Unban { room, user },
                    ModAction::Muted | ModAction::Unmuted => Request::Mute {
                        room,
                        user,
                        muted: action == ModAction::Muted,
                    },
                    ModAction::Redacted => return self.error("usage: /redact ID [REASON]"),
                    ModAction::Disabled | ModAction::Enabled => {
                        return self.error("usage: /disable NAME, /enable NAME")
                    }
                };
                (What::Moderate, request)
            }
            Command::Topic(topic) => {
                let Some(room) = self.current_room() else {
                    return self.error("not in a room: /switch #room first");
                };
                (What::Moderate, Request::SetTopic { room, topic })
            }
            Command::Disable { user, disabled } => {
                (What::Moderate, Request::SetDisabled { user, disabled })
            }
            Command::Audit(of) => {
                let room = match of {
                    AuditOf::Current => match self.current_room() {
                        Some(room) => Some(room),
                        None => return self.error("not in a room: /audit #room, or /audit *"),
                    },
                    AuditOf::Room(room) => Some(room),
                    AuditOf::Server => None,
                };
                let request = Request::AuditLog {
                    room,
                    before: None,
                    limit: 20,
                };
                (What::Audit, request)
            }
            Command::Edit { message, text } => (What::Send, Request::Edit { message, text }),
            Command::Delete(message) => (What::Send, Request::Delete { message }),
            Command::Redact { message, reason } => {
                (What::Send, Request::Redact { message, reason })
            }
            Command::Read | Command::Search { .. } if self.version < 2 => {
                return self.error("this server does not speak protocol version 2");
            }
            Command::Read => {
                let Some(target) = self.current.clone() else {
                    return self.error("no current room or user: /join #room or /switch USER");
                };
                let Some(up_to) = self.reads.to_mark(&target) else {
                    let label = command::target_label(&target);
                    return self.print(Event::Notice(format!(
                        "nothing new to mark read in {label}"
                    )));
                };
                self.reads.marked(target.clone(), up_to);
                let what = What::Read {
                    target: target.clone(),
                    up_to,
                    asked: true,
                };
                (what, Request::MarkRead { target, up_to })
            }
            Command::Search { text, before } => {
                let request = Request::Search {
                    text: text.clone(),
                    before,
                    limit: SEARCH_PAGE,
                };
                (What::Search(text), request)
            }
        };
        self.request(what, request);
    }

    fn no_password(&mut self) {
        self.error("a password is needed: add it to the command or set CHAT_PASSWORD");
    }

    /// A message to send; an interactive client shows it as pending.
    fn message(&mut self, target: Target, text: String) -> Request {
        // The wall clock, read here only: ids need milliseconds since the epoch, which the
        // monotonic `now` every input carries cannot give.
        let client_msg_id = self.ids.next_now(self.rng.gen());
        if self.settings.interactive {
            let message = self.own(&target, client_msg_id, &text);
            self.print(Event::Own {
                message,
                status: Delivery::Pending,
            });
        }
        Request::Send {
            target,
            client_msg_id,
            text,
        }
    }

    /// One of the user's own messages as shown.
    fn own(&self, target: &Target, client_msg_id: ClientMsgId, text: &str) -> ChatMessage {
        ChatMessage {
            id: MessageId(0),
            from: self.me().unwrap_or_default(),
            target: target.clone(),
            sent_at: 0,
            client_msg_id,
            text: text.to_owned(),
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
        self.send_paced(msg);
    }

    /// Queues a request behind the rate budget (if the connection is up: otherwise it goes
    /// again after reconnecting, being pending).
    fn send_paced(&mut self, msg: ClientMessage) {
        if self.link == Link::Up {
            self.paced.push_back(msg);
        }
    }

    /// Sends again everything unanswered, with the same ids (a message keeps its client
    /// message id, so the server stores it once).
    fn resend(&mut self) {
        let again: Vec<ClientMessage> = self
            .requests
            .iter()
            // A login pending here was never sent (those in flight are dropped with their
            // connection): it goes now. A resume is sent by `welcomed` itself.
            .filter(|(_, p)| !matches!(p.what, What::Resume))
            .map(|(id, p)| ClientMessage::Request {
                id,
                request: p.request.clone(),
            })
            .collect();
        for msg in again {
            self.send_paced(msg);
        }
    }

    fn me(&self) -> Option<String> {
        self.session.as_ref().map(|(user, _)| user.clone())
    }

    fn handle(&mut self, msg: ServerMessage) {
        let msg = match self.requests.finish(msg) {
            Ok(answer) => {
                return match answer.result {
                    Ok(reply) => self.replied(answer.tag, reply),
                    Err(ErrorReply {
                        code: ErrorCode::RateLimited { retry_after_ms },
                        ..
                    }) => self.retry(answer.tag, retry_after_ms),
                    Err(error) => self.refused(&answer.tag, &error),
                }
            }
            Err(msg) => msg,
        };
        match msg {
            ServerMessage::Message(m) => {
                let id = m.id;
                let me = self.me();
                self.reads.seen(conversation(&m, me.as_deref()), id);
                let place = match &m.target {
                    Target::Room(_) => m.target.clone(),
                    Target::User(_) => Target::User(self.me().unwrap_or_default()),
                };
                self.typing_ended(m.from.clone(), place);
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
                active: true,
            } => {
                let until = self.now + TYPING_SHOWN;
                if let Some(known) = self
                    .typists
                    .iter_mut()
                    .find(|(u, t, _)| *u == user && *t == target)
                {
                    known.2 = until;
                } else {
                    if self.typists.len() == MAX_TYPISTS {
                        let (user, target, _) = self.typists.remove(0);
                        self.print(Event::Typing {
                            user,
                            target,
                            active: false,
                        });
                    }
                    self.typists.push((user.clone(), target.clone(), until));
                    self.print(Event::Typing {
                        user,
                        target,
                        active: true,
                    });
                }
            }
            ServerMessage::Typing {
                user,
                target,
                active: false,
            } => self.typing_ended(user, target),
            ServerMessage::Presence { user, online } => {
                self.print(Event::Presence { user, online });
            }
            ServerMessage::Member { room, user, event } => {
                self.print(Event::Member { room, user, event });
            }
            ServerMessage::Edited {
                id,
                message,
                from,
                target,
                text,
            } => {
                if id > self.max_seen {
                    self.max_seen = id;
                    self.print(Event::Edited {
                        message,
                        from,
                        target,
                        text,
                    });
                }
                if !self.replaying {
                    self.send(ClientMessage::Ack { up_to: id });
                }
            }
            ServerMessage::Deleted {
                id,
                message,
                target,
                by,
                redacted,
                reason,
            } => {
                if id > self.max_seen {
                    self.max_seen = id;
                    self.print(Event::Deleted {
                        message,
                        target,
                        by,
                        redacted,
                        reason,
                    });
                }
                if !self.replaying {
                    self.send(ClientMessage::Ack { up_to: id });
                }
            }
            ServerMessage::Topic { room, topic, by } => {
                self.print(Event::Topic { room, topic, by });
            }
            ServerMessage::DisplayName { user, display_name } => {
                self.print(Event::NameChanged { user, display_name });
            }
            ServerMessage::ReadMarker { target, up_to } => {
                self.reads.marked(target.clone(), up_to);
                self.print(Event::ReadElsewhere { target, up_to });
            }
            ServerMessage::Unread(counts) => {
                for count in &counts {
                    self.reads.marked(count.target.clone(), count.read_up_to);
                    self.reads.seen(count.target.clone(), count.latest);
                }
                self.print(Event::Unread(counts));
            }
            ServerMessage::Moderated {
                room,
                by,
                user,
                action,
                reason,
            } => {
                if matches!(action, ModAction::Kicked | ModAction::Banned)
                    && self.me().as_deref() == Some(user.as_str())
                    && self.current.as_ref() == Some(&Target::Room(room.clone()))
                {
                    self.current = None;
                }
                self.print(Event::Moderated {
                    room,
                    by,
                    user,
                    action,
                    reason,
                });
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

    /// A request the server refused as rate-limited: the same request goes again first, after
    /// the wait (a message keeps its client message id).
    fn retry(&mut self, tag: Pending, retry_after_ms: u32) {
        let wait = Duration::from_millis(u64::from(retry_after_ms.clamp(10, 60_000)));
        let request = tag.request.clone();
        let msg = self.requests.start(tag, request);
        if self.link == Link::Up {
            self.paced.push_front(msg);
        }
        let until = self.now + wait;
        self.paused_until = Some(self.paused_until.map_or(until, |at| at.max(until)));
    }

    fn typing_ended(&mut self, user: String, target: Target) {
        let before = self.typists.len();
        self.typists.retain(|(u, t, _)| *u != user || *t != target);
        if self.typists.len() < before {
            self.print(Event::Typing {
                user,
                target,
                active: false,
            });
        }
    }

    fn refused(&mut self, tag: &Pending, error: &ErrorReply) {
        let what = &tag.what;
        if let (
            What::Send,
            Request::Send {
                target,
                client_msg_id,
                text,
            },
        ) = (what, &tag.request)
        {
            if self.settings.interactive {
                let message = self.own(target, *client_msg_id, text);
                self.print(Event::Own {
                    message,
                    status: Delivery::Refused,
                });
            }
        }
        if matches!(what, What::Resume) {
            self.session = None;
            return self.error(&format!(
                "could not resume the session ({}): /login again",
                error.message
            ));
        }
        self.error(&error.message);
    }

    fn replied(&mut self, tag: Pending, reply: Reply) {
        match (tag.what, reply) {
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
                let server = self.server().to_owned();
                self.print(Event::Reconnected { server });
                self.replaying = true;
                self.resend();
            }
            (What::Logout, _) => {
                self.session = None;
                self.reads.clear();
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
            (What::Rooms, Reply::RoomList(rooms)) => self.print(Event::RoomList(rooms)),
            (What::Who { room, asked }, Reply::Members { members, .. }) => {
                let members = members
                    .into_iter()
                    .map(|status| RosterEntry {
                        status,
                        role: Role::Member,
                        muted: false,
                    })
                    .collect();
                self.print(Event::Members {
                    room,
                    members,
                    asked,
                });
            }
            (What::Who { room, asked }, Reply::Roster { members, .. }) => {
                self.print(Event::Members {
                    room,
                    members,
                    asked,
                });
            }
            (What::Users, Reply::Users(users)) => self.print(Event::Users(users)),
            (What::History { target, before }, Reply::History { messages, more }) => {
                if let Some(newest) = messages.iter().map(|m| m.id).max() {
                    self.reads.seen(target.clone(), newest);
                }
                let me = self.me();
                self.print(Event::History {
                    target,
                    before,
                    messages,
                    more,
                    me,
                    edited: Vec::new(),
                    deleted: Vec::new(),
                });
            }
            (What::History { target, before }, Reply::Page { messages, more }) => {
                if let Some(newest) = messages.iter().map(|e| e.message.id).max() {
                    self.reads.seen(target.clone(), newest);
                }
                let me = self.me();
                let edited = messages
                    .iter()
                    .filter(|e| e.edited)
                    .map(|e| e.message.id)
                    .collect();
                let deleted = messages
                    .iter()
                    .filter(|e| e.deleted)
                    .map(|e| e.message.id)
                    .collect();
                self.print(Event::History {
                    target,
                    before,
                    messages: messages.into_iter().map(|e| e.message).collect(),
                    more,
                    me,
                    edited,
                    deleted,
                });
            }
            (What::Nick(name), _) => {
                self.print(Event::DisplayName(name.clone()));
                // Others see a change of name in the conversation it was made in.
                if let (true, Some(target)) = (self.settings.interactive, self.current.clone()) {
                    let text = format!("{NICK_ANNOUNCEMENT}{name}");
                    let request = self.message(target, text);
                    self.request(What::Send, request);
                }
            }
            (What::Send, Reply::Sent { id, sent_at }) => {
                if let Request::Send { target, .. } = &tag.request {
                    self.reads.seen(target.clone(), id);
                }
                if let (
                    true,
                    Request::Send {
                        target,
                        client_msg_id,
                        text,
                    },
                ) = (self.settings.interactive, &tag.request)
                {
                    let mut message = self.own(target, *client_msg_id, text);
                    message.id = id;
                    message.sent_at = sent_at;
                    self.print(Event::Own {
                        message,
                        status: Delivery::Stored,
                    });
                }
            }
            (What::Audit, Reply::AuditLog { entries, more }) => {
                self.print(Event::AuditLog { entries, more });
            }
            (
                What::Read {
                    target,
                    up_to,
                    asked,
                },
                _,
            ) => self.print(Event::MarkedRead {
                target,
                up_to,
                asked,
            }),
            (What::Search(text), Reply::SearchResults { messages, more }) => {
                let me = self.me();
                self.print(Event::Found {
                    text,
                    messages,
                    more,
                    me,
                });
            }
            (What::Send | What::Moderate, _) => {}
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

/// Whether a command runs without the server.
fn is_local(command: &Command) -> bool {
    matches!(
        command,
        Command::Help | Command::Switch(_) | Command::Nothing | Command::Invalid(_)
    )
}

#[cfg(test)]
mod tests;
