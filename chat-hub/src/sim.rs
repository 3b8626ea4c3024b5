//! A simulated world for tests and fuzzing: a [`Hub`] driven with a virtual clock, its I/O
//! answered at once by an in-memory model of storage, and every frame decoded into a per-session
//! inbox.
//!
//! Passwords are "hashed" as plain text and tokens are counters: the simulation checks chat
//! behaviour, not cryptography. [`World::restart`] rebuilds the hub from the model storage, as
//! a server restart would.

use std::collections::VecDeque;

use rustc_hash::{FxHashMap, FxHashSet};

use chat_proto::{
    decode_frame, ClientMessage, ClientMsgId, ErrorReply, Hello, Reply, Request, RequestId,
    ServerMessage, Target,
};

use crate::types::*;
use crate::{Completion, Config, Hub, IoRequest, MemoryStore, Output, PasswordParams, Ticket};

/// The password [`World::register`] uses.
pub const PASSWORD: &str = "correct horse battery";

/// A hub, a clock, model storage and the clients' inboxes.
#[derive(Debug)]
pub struct World {
    /// The state machine under test.
    pub hub: Hub,
    /// The virtual clocks: both advance together; [`step_wall_clock`](Self::step_wall_clock)
    /// moves the wall clock alone.
    pub now: Now,
    /// Durable state, as the writes left it.
    pub store: MemoryStore,
    config: Config,
    next_session: u64,
    next_request: u32,
    next_token: u64,
    inboxes: FxHashMap<SessionId, VecDeque<ServerMessage>>,
    closed: FxHashSet<SessionId>,
    /// When set, backlog loads run at once but their completions wait for
    /// [`release_backlogs`](Self::release_backlogs).
    pub hold_backlogs: bool,
    held: VecDeque<Completion>,
    /// When set, persists wait for [`release_persists`](Self::release_persists).
    pub hold_persists: bool,
    /// *(cluster)* What the hub told the other nodes, oldest first.
    pub shared: Vec<NodeMessage>,
    held_persists: VecDeque<(Ticket, Vec<Write>)>,
}

impl Default for World {
    fn default() -> Self {
        Self::new(Self::config())
    }
}

impl World {
    /// The test configuration: production limits with cheap password hashing.
    pub fn config() -> Config {
        Config {
            password: PasswordParams::INSECURE_FAST,
            ..Config::default()
        }
    }

    /// An empty world at time 1,000,000.
    ///
    /// # Panics
    /// If `config` is invalid.
    pub fn new(config: Config) -> Self {
        let now = Now {
            mono: Mono(1_000_000),
            wall: 1_700_000_000_000,
        };
        let hub = Hub::new(config.clone(), Snapshot::default(), now).expect("valid config");
        let mut world = Self {
            hub,
            now,
            store: MemoryStore::default(),
            config,
            next_session: 0,
            next_request: 0,
            next_token: 0,
            inboxes: FxHashMap::default(),
            closed: FxHashSet::default(),
            hold_backlogs: false,
            held: VecDeque::new(),
            hold_persists: false,
            held_persists: VecDeque::new(),
            shared: Vec::new(),
        };
        world.run();
        world
    }

    /// Simulates a graceful restart: the hub shuts down (telling every session and flushing
    /// acknowledged positions), then a new hub starts from the model storage.
    ///
    /// # Panics
    /// If the configuration is invalid.
    pub fn restart(&mut self) {
        self.hub.shut_down(self.now);
        self.run();
        self.crash();
    }

    /// Simulates a crash and restart: every session is gone and a new hub starts from the
    /// model storage. Held persists and unflushed positions are lost, as they would be.
    ///
    /// # Panics
    /// If the configuration is invalid.
    pub fn crash(&mut self) {
        self.hub = Hub::new(
            self.config.clone(),
            self.store.snapshot(self.now.wall),
            self.now,
        )
        .expect("valid config");
        self.inboxes.clear();
        self.held.clear();
        self.held_persists.clear();
        self.run();
    }

    /// A new in-process connection, not yet greeted.
    pub fn open(&mut self) -> SessionId {
        self.open_from(None)
    }

    /// A new connection from `peer`, not yet greeted.
    pub fn open_from(&mut self, peer: Option<std::net::IpAddr>) -> SessionId {
        self.next_session += 1;
        let session = SessionId(self.next_session);
        self.inboxes.insert(session, VecDeque::new());
        self.hub.handle_connect(session, peer, self.now);
        self.run();
        session
    }

    /// A new connection from `peer` after a successful hello (the welcome is consumed).
    ///
    /// # Panics
    /// If no welcome arrives.
    pub fn connect_from(&mut self, peer: std::net::IpAddr) -> SessionId {
        let session = self.open_from(Some(peer));
        self.greet(session, chat_proto::PROTOCOL_VERSION)
    }

    /// A new connection after a successful hello (the welcome is consumed).
    ///
    /// # Panics
    /// If no welcome arrives.
    pub fn connect(&mut self) -> SessionId {
        self.connect_version(chat_proto::PROTOCOL_VERSION)
    }

    /// A new connection, welcomed speaking exactly protocol `version`.
    ///
    /// # Panics
    /// If the hub does not welcome it.
    pub fn connect_version(&mut self, version: u16) -> SessionId {
        let session = self.open();
        self.greet(session, version)
    }

    fn greet(&mut self, session: SessionId, version: u16) -> SessionId {
        self.send(
            session,
            ClientMessage::Hello(Hello::version(version, "sim")),
        );
        match self.drain(session).as_slice() {
            [ServerMessage::Welcome(_)] => session,
            other => panic!("expected a welcome, got {other:?}"),
        }
    }

    /// Registers `name` with [`PASSWORD`] on device `<name>-1`; returns the logged-in session
    /// with its inbox empty.
    ///
    /// # Panics
    /// If registration fails.
    pub fn register(&mut self, name: &str) -> SessionId {
        self.register_version(name, chat_proto::PROTOCOL_VERSION)
    }

    /// As [`register`](Self::register), on a connection speaking protocol `version`.
    ///
    /// # Panics
    /// If registration fails.
    pub fn register_version(&mut self, name: &str, version: u16) -> SessionId {
        let session = self.connect_version(version);
        let result = self.request(
            session,
            Request::Register {
                username: name.into(),
                password: PASSWORD.into(),
                device: format!("{name}-1"),
            },
        );
        assert!(
            matches!(result, Ok(Reply::Session(_))),
            "register {name}: {result:?}"
        );
        self.expect_caught_up(session);
        session
    }

    /// Logs `name` in with [`PASSWORD`] on `device`; returns the session and the backlog
    /// replayed before `CaughtUp`.
    ///
    /// # Panics
    /// If the login fails.
    pub fn login(&mut self, name: &str, device: &str) -> (SessionId, Vec<ServerMessage>) {
        let session = self.connect();
        let request = Request::Login {
            username: name.into(),
            password: PASSWORD.into(),
            device: device.into(),
        };
        let result = self.request(session, request);
        assert!(
            matches!(result, Ok(Reply::Session(_))),
            "login {name}: {result:?}"
        );
        let backlog = self.expect_caught_up(session);
        (session, backlog)
    }

    /// Drains `session` up to and including `CaughtUp`, returning what came before it.
    ///
    /// # Panics
    /// If no `CaughtUp` is queued.
    pub fn expect_caught_up(&mut self, session: SessionId) -> Vec<ServerMessage> {
        let inbox = self.inboxes.entry(session).or_default();
        let Some(at) = inbox.iter().position(|m| *m == ServerMessage::CaughtUp) else {
            panic!("no CaughtUp for {session:?}: {inbox:?}");
        };
        let before: Vec<ServerMessage> = inbox.drain(..=at).collect();
        before[..at].to_vec()
    }

    /// Sends a client message and runs the world until idle.
    pub fn send(&mut self, session: SessionId, msg: ClientMessage) {
        self.hub.handle_message(session, msg, self.now);
        self.run();
    }

    /// Hands the hub several client messages before any of their I/O completes, as a client
    /// that writes them in one go (pipelining) would; then runs the world until idle.
    pub fn send_all(&mut self, session: SessionId, msgs: impl IntoIterator<Item = ClientMessage>) {
        for msg in msgs {
            self.hub.handle_message(session, msg, self.now);
        }
        self.run();
    }

    /// A request with the next request id, for [`send_all`](Self::send_all).
    pub fn numbered(&mut self, request: Request) -> (RequestId, ClientMessage) {
        self.next_request += 1;
        let id = RequestId(self.next_request);
        (id, ClientMessage::Request { id, request })
    }

    /// Sends a request and returns its reply, taken out of the inbox (other messages stay).
    ///
    /// # Panics
    /// If no reply arrives (e.g. persists are held: use [`send`](Self::send) then).
    pub fn request(&mut self, session: SessionId, request: Request) -> Result<Reply, ErrorReply> {
        let id = self.send_request(session, request);
        self.take_reply(session, id)
            .unwrap_or_else(|| panic!("no reply to request {id:?}"))
    }

    /// Sends a request without waiting for its reply; returns its id.
    pub fn send_request(&mut self, session: SessionId, request: Request) -> RequestId {
        let (id, msg) = self.numbered(request);
        self.send(session, msg);
        id
    }

    /// Removes and returns the reply to `id` from the inbox, if it arrived.
    pub fn take_reply(
        &mut self,
        session: SessionId,
        id: RequestId,
    ) -> Option<Result<Reply, ErrorReply>> {
        let inbox = self.inboxes.get_mut(&session)?;
        let at = inbox.iter().position(|m| match m {
            ServerMessage::Ok { id: i, .. } | ServerMessage::Err { id: i, .. } => *i == id,
            _ => false,
        })?;
        match inbox.remove(at)? {
            ServerMessage::Ok { reply, .. } => Some(Ok(reply)),
            ServerMessage::Err { error, .. } => Some(Err(error)),
            _ => None,
        }
    }

    /// Sends a message to a room or user and returns its id.
    ///
    /// # Panics
    /// If the send fails.
    pub fn say(&mut self, session: SessionId, target: Target, text: &str) -> MessageId {
        self.next_token += 1;
        let request = Request::Send {
            target,
            client_msg_id: ClientMsgId(self.next_token),
            text: text.into(),
        };
        match self.request(session, request) {
            Ok(Reply::Sent { id, .. }) => id,
            other => panic!("send failed: {other:?}"),
        }
    }

    /// Closes a connection from the client side.
    pub fn disconnect(&mut self, session: SessionId) {
        self.hub.handle_disconnect(session, self.now);
        self.inboxes.remove(&session);
        self.run();
    }

    /// Moves the clock forward by `ms`, running every timer that comes due on the way.
    pub fn advance(&mut self, ms: u64) {
        let end = self.now.mono.plus(ms);
        while let Some(due) = self.hub.poll_timeout().filter(|&due| due <= end) {
            self.set_mono(due.max(self.now.mono));
            self.hub.handle_timeout(self.now);
            self.run();
        }
        self.set_mono(end);
    }

    /// Moves the monotonic clock to `to`, and the wall clock by as much.
    fn set_mono(&mut self, to: Mono) {
        self.now.wall += to.since(self.now.mono);
        self.now.mono = to;
    }

    /// Steps the wall clock alone by `ms` (backwards if negative), as an NTP correction or an
    /// operator would; no deadline moves with it.
    pub fn step_wall_clock(&mut self, ms: i64) {
        self.now.wall = self.now.wall.saturating_add_signed(ms);
    }

    /// Takes everything `session` received.
    pub fn drain(&mut self, session: SessionId) -> Vec<ServerMessage> {
        self.inboxes
            .get_mut(&session)
            .map(|inbox| inbox.drain(..).collect())
            .unwrap_or_default()
    }

    /// Whether the hub closed `session`.
    pub fn is_closed(&self, session: SessionId) -> bool {
        self.closed.contains(&session)
    }

    /// Completes the backlog loads held by [`hold_backlogs`](Self::hold_backlogs).
    pub fn release_backlogs(&mut self) {
        while let Some(completion) = self.held.pop_front() {
            self.hub.handle_completion(completion, self.now);
            self.run();
        }
    }

    /// Commits the persists held by [`hold_persists`](Self::hold_persists).
    pub fn release_persists(&mut self) {
        while let Some((ticket, writes)) = self.held_persists.pop_front() {
            let committed = self.store.apply(writes);
            self.hub
                .handle_completion(Completion::Persisted { ticket, committed }, self.now);
            self.run();
        }
    }

    /// Carries out every output of the hub until it is idle.
    pub fn run(&mut self) {
        while let Some(output) = self.hub.poll_output() {
            self.handle_output(output);
        }
    }

    /// Carries out one output of the hub, feeding its completion (if any) back at once.
    pub fn handle_output(&mut self, output: Output) {
        let completion = match output {
            Output::Send { session, frame, .. } | Output::Deliver { session, frame, .. } => {
                let decoded = decode_frame::<ServerMessage>(frame.as_bytes(), usize::MAX >> 1);
                match decoded {
                    Ok(Some((msg, _))) => self.inboxes.entry(session).or_default().push_back(msg),
                    other => panic!("the hub sent an undecodable frame: {other:?}"),
                }
                return;
            }
            Output::Close { session } => {
                self.closed.insert(session);
                return;
            }
            Output::Share(message) => {
                self.shared.push(message);
                return;
            }
            Output::ReadDirectory => {
                Completion::Directory(Some(Box::new(self.store.snapshot(self.now.wall))))
            }
            Output::Persist { ticket, writes } if self.hold_persists => {
                self.held_persists.push_back((ticket, writes));
                return;
            }
            Output::Persist { ticket, writes } => {
                let committed = self.store.apply(writes);
                Completion::Persisted { ticket, committed }
            }
            Output::ReadCommitted {
                after,
                up_to,
                limit,
            } => Completion::Committed {
                after,
                up_to,
                limit,
                messages: Some(self.store.committed(after, up_to, limit)),
            },
            Output::Io(IoRequest::VerifyPassword {
                session,
                user,
                password,
            }) => {
                let stored = user.and_then(|u| self.store.password_hash(u));
                Completion::PasswordVerified {
                    session,
                    ok: stored == Some(format!("plain:{password}")),
                    token: self.token(),
                }
            }
            Output::Io(IoRequest::HashPassword { session, password }) => {
                Completion::PasswordHashed {
                    session,
                    hash: format!("plain:{password}"),
                    token: self.token(),
                }
            }
            Output::Io(IoRequest::FindToken { session, hash }) => Completion::TokenFound {
                session,
                record: self.store.find_token(&hash),
            },
            Output::Io(IoRequest::LoadBacklog {
                session,
                user,
                device,
                after,
                limit,
            }) => {
                let messages = self.store.backlog(user, device, after, limit);
                let completion = Completion::Backlog { session, messages };
                if self.hold_backlogs {
                    self.held.push_back(completion);
                    return;
                }
                completion
            }
            Output::Io(IoRequest::LoadMessage { session, change }) => Completion::MessageLoaded {
                session,
                message: self.store.message(change.target),
                change,
            },
            Output::Io(IoRequest::CountUnread {
                session,
                user,
                convs,
                up_to,
                cap,
                purpose,
            }) => Completion::Unread {
                session,
                user,
                purpose,
                counts: self.store.unread(user, &convs, up_to, cap),
            },
            Output::Io(IoRequest::Search {
                session,
                request,
                user,
                words,
                before,
                limit,
            }) => Completion::Found {
                session,
                request,
                user,
                limit,
                messages: self.store.search(user, &words, before, limit),
            },
            Output::Io(IoRequest::LoadHistory {
                session,
                request,
                conv,
                before,
                limit,
            }) => Completion::History {
                session,
                request,
                limit,
                messages: self.store.history(conv, before, limit),
            },
            Output::Io(IoRequest::LoadAudit {
                session,
                request,
                conv,
                before,
                limit,
            }) => Completion::AuditLoaded {
                session,
                request,
                limit,
                records: self.store.audit_log(conv, before, limit),
            },
        };
        self.hub.handle_completion(completion, self.now);
    }

    fn token(&mut self) -> String {
        self.next_token += 1;
        format!("token-{}", self.next_token)
    }
}
