//! The client: one connection to the server, the commands waiting to run, the requests awaiting
//! replies, and reconnection.
//!
//! Lines run in order. A line waits while the client is disconnected or a request other than a
//! message is unanswered, so a script's `/login`, `/join`, then text all do what they say. When the connection drops, the client
//! reconnects with exponential back-off and jitter, resumes with its session token, and sends
//! again every request still unanswered (a message keeps its client message id, so the server
//! stores it once). Messages are shown once each (by id) and acknowledged.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use chat_proto::*;
use futures_util::{SinkExt, StreamExt};
use rand::Rng;
use rustyline::ExternalPrinter;
use tokio::net::TcpStream;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::time::{sleep_until, timeout, Instant};
use tokio_util::codec::Framed;

use crate::command::{self, target_label, Command, HELP};
use crate::render;

/// What the input side reports.
#[derive(Debug)]
pub(crate) enum Input {
    /// A line was entered.
    Line(String),
    /// The line being edited changed; `composing` if it now holds text for the current target.
    Keys { composing: bool },
    /// No more input.
    Eof,
}

/// Where output lines go: above the line editor, or plainly to stdout.
pub(crate) enum Output {
    Printer(Mutex<Box<dyn ExternalPrinter + Send>>),
    Stdout,
}

impl Output {
    fn line(&self, line: String) {
        match self {
            Self::Printer(printer) => {
                let mut printer = printer
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if printer.print(line.clone()).is_err() {
                    println!("{line}");
                }
            }
            Self::Stdout => println!("{line}"),
        }
    }
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

/// The client's settings.
pub(crate) struct Settings {
    pub(crate) server: String,
    pub(crate) device: String,
    pub(crate) linger: Duration,
}

/// Typing is refreshed this often while keys are pressed, and ends after this much quiet.
const TYPING_REFRESH: Duration = Duration::from_secs(3);
const TYPING_PAUSE: Duration = Duration::from_secs(5);
/// How long a finished script waits for outstanding replies before giving up.
const REPLY_WAIT: Duration = Duration::from_secs(30);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

pub(crate) struct App {
    settings: Settings,
    out: Output,
    conn: Option<Framed<TcpStream, ClientCodec>>,
    /// When to try connecting again, while disconnected.
    retry_at: Option<Instant>,
    backoff: Duration,
    /// Whether a connection existed before (so the next one is a reconnection).
    was_connected: bool,
    /// `(user, token)` once logged in.
    session: Option<(String, String)>,
    current: Option<Target>,
    next_id: u32,
    /// Requests sent (or to be sent again after a reconnect) and not yet answered.
    pending: BTreeMap<RequestId, (What, Request)>,
    /// Lines not yet run.
    waiting: VecDeque<Command>,
    /// The highest message id shown.
    max_seen: MessageId,
    /// Messages until `CaughtUp` come from the offline queue.
    replaying: bool,
    failed: bool,
    /// The target typing was last announced to, and when.
    typing: Option<(Target, Instant)>,
    last_key: Instant,
}

impl App {
    pub(crate) fn new(settings: Settings, out: Output) -> Self {
        Self {
            settings,
            out,
            conn: None,
            retry_at: Some(Instant::now()),
            backoff: Duration::from_millis(100),
            was_connected: false,
            session: None,
            current: None,
            next_id: 0,
            pending: BTreeMap::new(),
            waiting: VecDeque::new(),
            max_seen: MessageId(0),
            replaying: false,
            failed: false,
            typing: None,
            last_key: Instant::now(),
        }
    }

    /// Runs until `/quit`, or until input ends, replies are in and the linger time is over.
    /// Returns whether every command succeeded.
    pub(crate) async fn run(mut self, mut input: UnboundedReceiver<Input>) -> bool {
        let mut eof_at: Option<Instant> = None;
        let mut linger_until: Option<Instant> = None;
        loop {
            self.pump().await;
            if let Some(eof) = eof_at {
                if linger_until.is_none() && self.waiting.is_empty() && self.pending.is_empty() {
                    linger_until = Some(Instant::now() + self.settings.linger);
                } else if linger_until.is_none() && eof.elapsed() > REPLY_WAIT {
                    self.error("gave up waiting for replies");
                    return false;
                }
            }
            let typing_pause = self.typing.as_ref().map(|_| self.last_key + TYPING_PAUSE);
            tokio::select! {
                line = input.recv(), if eof_at.is_none() => match line {
                    Some(Input::Line(line)) => match command::parse(&line) {
                        Ok(Command::Quit) if self.waiting.is_empty() => return !self.failed,
                        Ok(command) => self.waiting.push_back(command),
                        Err(usage) => self.waiting.push_back(Command::Invalid(usage)),
                    },
                    Some(Input::Keys { composing }) => self.keys(composing).await,
                    Some(Input::Eof) | None => eof_at = Some(Instant::now()),
                },
                frame = next_frame(&mut self.conn) => match frame {
                    Some(msg) => self.handle(msg).await,
                    None => self.disconnected(),
                },
                () = sleep_until_opt(self.retry_at) => self.connect().await,
                () = sleep_until_opt(typing_pause) => self.stop_typing().await,
                () = sleep_until_opt(linger_until) => return !self.failed,
                () = sleep_until_opt(eof_at.map(|at| at + REPLY_WAIT)), if linger_until.is_none() => {}
            }
        }
    }

    fn say(&self, line: impl Into<String>) {
        self.out.line(line.into());
    }

    fn error(&mut self, text: &str) {
        self.failed = true;
        self.say(format!("! {text}"));
    }

    /// Whether lines must wait: while disconnected, or while any request but a message is
    /// unanswered (a line may depend on it: `/join` changes where the next line goes). Messages
    /// follow each other without waiting.
    fn blocked(&self) -> bool {
        self.conn.is_none()
            || self
                .pending
                .values()
                .any(|(what, _)| !matches!(what, What::Send))
    }

    /// Runs waiting lines until one has to wait.
    async fn pump(&mut self) {
        while !self.blocked() {
            let Some(command) = self.waiting.pop_front() else {
                return;
            };
            self.execute(command).await;
        }
    }

    async fn execute(&mut self, command: Command) {
        let password =
            |given: Option<String>| given.or_else(|| std::env::var("CHAT_PASSWORD").ok());
        let device = self.settings.device.clone();
        let request = match command {
            Command::Nothing => return,
            Command::Quit => std::process::exit(i32::from(self.failed)),
            Command::Invalid(usage) => return self.error(&usage),
            Command::Help => {
                HELP.lines().for_each(|line| self.say(line));
                return;
            }
            Command::Switch(target) => {
                self.say(format!("* talking to {}", target_label(&target)));
                self.current = Some(target);
                return;
            }
            Command::Say(text) => {
                let Some(target) = self.current.clone() else {
                    return self.error("nowhere to send: /join #room or /switch USER first");
                };
                self.typing = None;
                send_request(target, text)
            }
            Command::Msg { user, text } => send_request(Target::User(user), text),
            Command::Register {
                password: given, ..
            }
            | Command::Login {
                password: given, ..
            } if password(given.clone()).is_none() => {
                return self
                    .error("a password is needed: add it to the command or set CHAT_PASSWORD");
            }
            Command::Register {
                name,
                password: given,
            } => {
                let request = Request::Register {
                    username: name,
                    password: password(given).unwrap_or_default(),
                    device,
                };
                return self.request(What::Login, request).await;
            }
            Command::Login {
                name,
                password: given,
            } => {
                let request = Request::Login {
                    username: name,
                    password: password(given).unwrap_or_default(),
                    device,
                };
                return self.request(What::Login, request).await;
            }
            Command::Logout => return self.request(What::Logout, Request::Logout).await,
            Command::Join(room) => {
                return self
                    .request(What::Join { created: false }, Request::Join { room })
                    .await;
            }
            Command::Create { room, invite_only } => {
                let request = Request::CreateRoom { room, invite_only };
                return self.request(What::Join { created: true }, request).await;
            }
            Command::Invite { user, room } => {
                let request = Request::Invite {
                    room: room.clone(),
                    user: user.clone(),
                };
                return self.request(What::Invite { user, room }, request).await;
            }
            Command::Leave(room) => {
                let Some(room) = room.or_else(|| self.current_room()) else {
                    return self.error("not in a room: /leave #room");
                };
                return self
                    .request(What::Leave(room.clone()), Request::Leave { room })
                    .await;
            }
            Command::Rooms => return self.request(What::Rooms, Request::ListRooms).await,
            Command::Who(room) => {
                let Some(room) = room.or_else(|| self.current_room()) else {
                    return self.error("not in a room: /who #room");
                };
                return self
                    .request(What::Who(room.clone()), Request::Who { room })
                    .await;
            }
            Command::Users => return self.request(What::Users, Request::ListUsers).await,
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
                return self.request(What::History, request).await;
            }
            Command::Nick(name) => {
                let request = Request::SetDisplayName {
                    display_name: name.clone(),
                };
                return self.request(What::Nick(name), request).await;
            }
        };
        self.request(What::Send, request).await;
    }

    fn current_room(&self) -> Option<String> {
        match &self.current {
            Some(Target::Room(room)) => Some(room.clone()),
            _ => None,
        }
    }

    /// Sends a request (now if connected, else after reconnecting) and remembers it.
    async fn request(&mut self, what: What, request: Request) {
        self.next_id += 1;
        let id = RequestId(self.next_id);
        self.pending.insert(id, (what, request.clone()));
        self.send(ClientMessage::Request { id, request }).await;
    }

    async fn send(&mut self, msg: ClientMessage) {
        let Some(conn) = self.conn.as_mut() else {
            return;
        };
        if conn.send(msg).await.is_err() {
            self.disconnected();
        }
    }

    async fn handle(&mut self, msg: ServerMessage) {
        match msg {
            ServerMessage::Ok { id, reply } => {
                if let Some((what, _)) = self.pending.remove(&id) {
                    self.replied(what, reply).await;
                }
            }
            ServerMessage::Err { id, error } => {
                if let Some((what, _)) = self.pending.remove(&id) {
                    if matches!(what, What::Resume) {
                        self.session = None;
                        return self.error(&format!(
                            "could not resume the session ({}): /login again",
                            error.message
                        ));
                    }
                    self.error(&error.message);
                }
            }
            ServerMessage::Message(m) => {
                if m.id > self.max_seen {
                    self.max_seen = m.id;
                    let me = self.session.as_ref().map(|(user, _)| user.as_str());
                    self.say(render::message(
                        &render::clock(m.sent_at),
                        &m,
                        me,
                        self.replaying,
                    ));
                }
                if !self.replaying {
                    self.send(ClientMessage::Ack { up_to: m.id }).await;
                }
            }
            ServerMessage::CaughtUp => {
                self.replaying = false;
                if self.max_seen > MessageId(0) {
                    self.send(ClientMessage::Ack {
                        up_to: self.max_seen,
                    })
                    .await;
                }
            }
            ServerMessage::Ping { nonce } => self.send(ClientMessage::Pong { nonce }).await,
            other => {
                if let Some(line) = render::event(&render::clock(now_ms()), &other) {
                    self.say(line);
                }
            }
        }
    }

    async fn replied(&mut self, what: What, reply: Reply) {
        match (what, reply) {
            (What::Login, Reply::Session(session)) => {
                self.say(format!(
                    "* logged in as {}; talking to #general",
                    session.user
                ));
                self.session = Some((session.user, session.token));
                self.current = Some(Target::Room("general".into()));
                self.replaying = true;
            }
            (What::Resume, Reply::Session(_)) => {
                self.say("* reconnected");
                self.replaying = true;
                self.resend().await;
            }
            (What::Logout, _) => {
                self.session = None;
                self.say("* logged out");
            }
            (What::Join { created }, Reply::Room(room)) => {
                let verb = if created { "created" } else { "joined" };
                let plural = if room.members == 1 { "" } else { "s" };
                self.say(format!(
                    "* {verb} #{} ({} member{plural}); talking there",
                    room.name, room.members
                ));
                self.current = Some(Target::Room(room.name));
            }
            (What::Invite { user, room }, _) => self.say(format!("* added {user} to #{room}")),
            (What::Leave(room), _) => {
                self.say(format!("* left #{room}"));
                if self.current == Some(Target::Room(room)) {
                    self.current = None;
                }
            }
            (What::Rooms, Reply::Rooms(rooms)) => {
                render::rooms(&rooms)
                    .into_iter()
                    .for_each(|line| self.say(line));
            }
            (What::Who(room), Reply::Members { members, .. }) => {
                self.say(render::users(&format!("#{room}"), &members));
            }
            (What::Users, Reply::Users(users)) => self.say(render::users("users", &users)),
            (What::History, Reply::History { messages, more }) => {
                let me = self.session.as_ref().map(|(user, _)| user.clone());
                if messages.is_empty() {
                    self.say("* no messages yet");
                }
                for m in messages.iter().rev() {
                    self.say(render::message(
                        &render::clock(m.sent_at),
                        m,
                        me.as_deref(),
                        false,
                    ));
                }
                if more {
                    self.say("* older messages exist: /history N shows more");
                }
            }
            (What::Nick(name), _) => self.say(format!("* display name set to {name}")),
            (What::Send, _) => {}
            (what, reply) => self.say(format!("* {what:?}: {reply:?}")),
        }
    }

    /// Sends again everything unanswered, with the same ids (a message keeps its client
    /// message id, so the server stores it once).
    async fn resend(&mut self) {
        let again: Vec<(RequestId, Request)> = self
            .pending
            .iter()
            .filter(|(_, (what, _))| !matches!(what, What::Resume | What::Login))
            .map(|(id, (_, request))| (*id, request.clone()))
            .collect();
        for (id, request) in again {
            self.send(ClientMessage::Request { id, request }).await;
        }
    }

    async fn keys(&mut self, composing: bool) {
        self.last_key = Instant::now();
        let Some(target) = self.current.clone() else {
            return;
        };
        let active = match &self.typing {
            Some((to, at)) if *to == target => composing && at.elapsed() >= TYPING_REFRESH,
            Some(_) | None => composing,
        };
        if active {
            self.typing = Some((target.clone(), Instant::now()));
            self.send(ClientMessage::Typing {
                target,
                active: true,
            })
            .await;
        } else if !composing {
            self.stop_typing().await;
        }
    }

    async fn stop_typing(&mut self) {
        if let Some((target, _)) = self.typing.take() {
            self.send(ClientMessage::Typing {
                target,
                active: false,
            })
            .await;
        }
    }

    fn disconnected(&mut self) {
        if self.conn.take().is_some() {
            self.say("* reconnecting…");
        }
        self.typing = None;
        // Logins in flight are lost with the connection; everything else is sent again.
        let lost: Vec<RequestId> = self
            .pending
            .iter()
            .filter(|(_, (what, _))| matches!(what, What::Login | What::Resume))
            .map(|(id, _)| *id)
            .collect();
        for id in lost {
            self.pending.remove(&id);
            self.error("the connection dropped during login: try again");
        }
        if self.retry_at.is_none() {
            self.retry_at = Some(Instant::now() + jitter(self.backoff));
        }
    }

    /// Tries to connect; on success resumes the session, else schedules the next try.
    async fn connect(&mut self) {
        self.retry_at = None;
        match open(&self.settings.server).await {
            Ok(conn) => {
                self.conn = Some(conn);
                self.backoff = Duration::from_millis(100);
                let reconnected = std::mem::replace(&mut self.was_connected, true);
                match self.session.clone() {
                    Some((_, token)) => {
                        let device = self.settings.device.clone();
                        self.request(What::Resume, Request::Resume { token, device })
                            .await;
                    }
                    None if reconnected => {
                        self.say("* reconnected");
                        self.resend().await;
                    }
                    None => {}
                }
            }
            Err(error) => {
                if !self.was_connected && self.backoff == Duration::from_millis(100) {
                    self.say(format!(
                        "* cannot reach {} ({error}); retrying…",
                        self.settings.server
                    ));
                }
                self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
                self.retry_at = Some(Instant::now() + jitter(self.backoff));
            }
        }
    }
}

fn send_request(target: Target, text: String) -> Request {
    Request::Send {
        target,
        client_msg_id: ClientMsgId(rand::thread_rng().gen()),
        text,
    }
}

/// Connects and completes the handshake.
async fn open(server: &str) -> Result<Framed<TcpStream, ClientCodec>, String> {
    let handshake = async {
        let stream = TcpStream::connect(server)
            .await
            .map_err(|e| e.to_string())?;
        let _ = stream.set_nodelay(true);
        let mut conn = Framed::new(stream, ClientCodec::new());
        let hello = Hello::current(concat!("chat-cli/", env!("CARGO_PKG_VERSION")));
        conn.send(ClientMessage::Hello(hello))
            .await
            .map_err(|e| e.to_string())?;
        match conn.next().await {
            Some(Ok(ServerMessage::Welcome(_))) => Ok(conn),
            Some(Ok(ServerMessage::Error(error))) => Err(error.message),
            Some(Ok(other)) => Err(format!("unexpected {other:?}")),
            Some(Err(e)) => Err(e.to_string()),
            None => Err("connection closed".into()),
        }
    };
    timeout(Duration::from_secs(5), handshake)
        .await
        .map_err(|_| "timed out".to_string())?
}

async fn next_frame(conn: &mut Option<Framed<TcpStream, ClientCodec>>) -> Option<ServerMessage> {
    match conn {
        Some(conn) => conn.next().await.and_then(Result::ok),
        None => std::future::pending().await,
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// `base` scaled by a random factor in 0.5..1.5.
fn jitter(base: Duration) -> Duration {
    base.mul_f64(rand::thread_rng().gen_range(0.5..1.5))
}

fn now_ms() -> UnixMillis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(0))
}
