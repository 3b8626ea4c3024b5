//! [`Sessions`]: every connection's phase (new, greeted, authenticating, online), its request
//! budget, what it pipelined behind a login, the login deadlines, the keepalive, and which users
//! are online on which sessions. Failed logins are counted here too.
//!
//! The keepalive is one sweep for every connection, not a timer per connection: each network
//! session's record keeps when the client was last heard from (or when its unanswered ping
//! went), and every quarter of the shorter keepalive period one pass finds whom to ping and
//! whom to close.

use std::collections::VecDeque;

use chat_proto::{ClientMessage, ErrorCode, ErrorReply, RequestId, MIN_PROTOCOL_VERSION};
use rustc_hash::FxHashMap;

use super::make_room_for_one;
use super::throttle::Source;
use crate::rate::TokenBucket;
use crate::types::*;
use crate::Config;

/// A login in progress.
#[derive(Debug)]
pub(super) enum AuthAttempt {
    Register {
        name: String,
        key: String,
        device: String,
    },
    Login {
        key: String,
        user: Option<UserId>,
        device: String,
    },
    Resume {
        token: String,
        device: String,
    },
}

#[derive(Debug)]
pub(super) enum Phase {
    /// Connected; waiting for `Hello`.
    New,
    /// Welcomed; not logged in.
    Greeted,
    /// A login, registration or resume is in progress (boxed: the phase of every idle
    /// session is no larger than `Online`).
    Authenticating(RequestId, Box<AuthAttempt>),
    /// Logged in.
    Online(Online),
}

/// A logged-in session.
#[derive(Clone, Copy, Debug)]
pub(super) struct Online {
    pub(super) user: UserId,
    pub(super) device: DeviceId,
    pub(super) token_hash: [u8; 32],
}

#[derive(Debug)]
struct Session {
    phase: Phase,
    /// Where the connection comes from (`None`: in-process, never pinged).
    source: Source,
    bucket: TokenBucket,
    /// When the client was last heard from, or when the ping it has not answered went.
    heard: Mono,
    /// Whether a ping went at `heard` and nothing came since.
    pinged: bool,
    /// The protocol version agreed by `Hello` (the oldest until then).
    version: u16,
}

/// Most messages a session may pipeline behind a login in flight.
pub(super) const MAX_HELD: usize = 64;

/// How often the keepalive sweep runs: a quarter of the shorter of the interval and the
/// timeout, so a ping goes at most a quarter late.
fn sweep_period(config: &Config) -> u64 {
    (config
        .keepalive_interval_ms
        .min(config.keepalive_timeout_ms)
        / 4)
    .max(1)
}

#[derive(Debug, Default)]
pub(super) struct Sessions {
    table: FxHashMap<SessionId, Session>,
    /// Each online user's sessions.
    online: FxHashMap<UserId, Vec<SessionId>>,
    /// Login deadlines, in time order (each is `connect + login_timeout`).
    logins: VecDeque<(Mono, SessionId)>,
    /// Messages that arrived while a session's login was in flight, handled in order once it
    /// ends (kept apart: most sessions never hold any).
    held: FxHashMap<SessionId, VecDeque<ClientMessage>>,
    /// When the next keepalive sweep is due (`None` while no network session is connected).
    next_sweep: Option<Mono>,
}

/// Whom a keepalive sweep found silent: to ping, and to close (pinged and silent since).
#[derive(Debug, Default)]
pub(super) struct Silent {
    pub(super) ping: Vec<SessionId>,
    pub(super) close: Vec<SessionId>,
}

impl Sessions {
    pub(super) fn len(&self) -> usize {
        self.table.len()
    }

    /// Logged-in sessions.
    pub(super) fn online_count(&self) -> usize {
        self.online.values().map(Vec::len).sum()
    }

    pub(super) fn contains(&self, session: SessionId) -> bool {
        self.table.contains_key(&session)
    }

    pub(super) fn ids(&self) -> Vec<SessionId> {
        self.table.keys().copied().collect()
    }

    /// Where `session` comes from.
    pub(super) fn source(&self, session: SessionId) -> Source {
        self.table.get(&session).and_then(|s| s.source)
    }

    pub(super) fn phase(&self, session: SessionId) -> Option<&Phase> {
        self.table.get(&session).map(|s| &s.phase)
    }

    /// A new connection from `source`, which must log in by `now + login_timeout`.
    pub(super) fn connect(
        &mut self,
        session: SessionId,
        source: Source,
        config: &Config,
        now: Mono,
    ) {
        self.table.insert(
            session,
            Session {
                phase: Phase::New,
                source,
                bucket: TokenBucket::new(&config.request_limit(), now),
                heard: now,
                pinged: false,
                version: MIN_PROTOCOL_VERSION,
            },
        );
        self.logins
            .push_back((now.plus(config.login_timeout_ms), session));
        if source.is_some() && self.next_sweep.is_none() {
            self.next_sweep = Some(now.plus(sweep_period(config)));
        }
    }

    /// The phase of `session`, which the client was just heard from (any message counts as
    /// a sign of life for the keepalive).
    pub(super) fn hear(&mut self, session: SessionId, now: Mono) -> Option<&Phase> {
        let s = self.table.get_mut(&session)?;
        s.heard = now;
        s.pinged = false;
        Some(&s.phase)
    }

    /// The keepalive sweep, if it is due: network sessions silent for the keepalive interval
    /// are to be pinged (and count as pinged from `now`), those pinged and silent for the
    /// keepalive timeout since are to be closed.
    pub(super) fn sweep(&mut self, config: &Config, now: Mono) -> Silent {
        let mut silent = Silent::default();
        if self.next_sweep.is_none_or(|due| due > now) {
            return silent;
        }
        let mut network = false;
        for (&session, s) in &mut self.table {
            if s.source.is_none() {
                continue;
            }
            if s.pinged {
                if now >= s.heard.plus(config.keepalive_timeout_ms) {
                    silent.close.push(session);
                    continue;
                }
            } else if now >= s.heard.plus(config.keepalive_interval_ms) {
                silent.ping.push(session);
                s.heard = now;
                s.pinged = true;
            }
            network = true;
        }
        self.next_sweep = network.then(|| now.plus(sweep_period(config)));
        silent
    }

    /// Forgets `session`; returns its phase, and whether it was its user's last online
    /// session.
    pub(super) fn remove(&mut self, session: SessionId) -> Option<(Phase, bool)> {
        let s = self.table.remove(&session)?;
        self.held.remove(&session);
        let last = match &s.phase {
            Phase::Online(online) => self.go_offline(online.user, session),
            _ => false,
        };
        Some((s.phase, last))
    }

    /// The protocol version `session` speaks (the oldest if it is unknown or not greeted).
    pub(super) fn version(&self, session: SessionId) -> u16 {
        self.table
            .get(&session)
            .map_or(MIN_PROTOCOL_VERSION, |s| s.version)
    }

    /// `Hello` accepted with `version`: `New` → `Greeted`. False if the session was not new.
    pub(super) fn greet(&mut self, session: SessionId, version: u16) -> bool {
        match self.table.get_mut(&session) {
            Some(s) if matches!(s.phase, Phase::New) => {
                s.phase = Phase::Greeted;
                s.version = version;
                true
            }
            _ => false,
        }
    }

    /// Takes a request token, or says how many milliseconds until one is available.
    pub(super) fn take_token(
        &mut self,
        session: SessionId,
        config: &Config,
        now: Mono,
    ) -> Result<(), u32> {
        match self.table.get_mut(&session) {
            Some(s) => s.bucket.take(&config.request_limit(), now),
            None => Ok(()),
        }
    }

    /// Moves a greeted session to `Authenticating`.
    pub(super) fn begin_auth(
        &mut self,
        session: SessionId,
        request: RequestId,
        attempt: AuthAttempt,
    ) -> Result<(), ErrorReply> {
        let Some(s) = self.table.get_mut(&session) else {
            return Ok(());
        };
        if !matches!(s.phase, Phase::Greeted) {
            return Err(ErrorReply::new(
                ErrorCode::BadRequest,
                "a login is already in progress",
            ));
        }
        s.phase = Phase::Authenticating(request, Box::new(attempt));
        Ok(())
    }

    /// Takes the attempt of a session in `Authenticating`, returning it to `Greeted`.
    pub(super) fn take_attempt(&mut self, session: SessionId) -> Option<(RequestId, AuthAttempt)> {
        let s = self.table.get_mut(&session)?;
        match std::mem::replace(&mut s.phase, Phase::Greeted) {
            Phase::Authenticating(request, attempt) => Some((request, *attempt)),
            other => {
                s.phase = other;
                None
            }
        }
    }

    /// Holds a message that arrived while the session's login is in flight. False if the
    /// session already holds [`MAX_HELD`].
    pub(super) fn hold(&mut self, session: SessionId, msg: ClientMessage) -> bool {
        if !self.table.contains_key(&session) {
            return false;
        }
        let held = self.held.entry(session).or_default();
        if held.len() >= MAX_HELD {
            return false;
        }
        held.push_back(msg);
        true
    }

    /// The next held message, once the session is no longer authenticating.
    pub(super) fn next_held(&mut self, session: SessionId) -> Option<ClientMessage> {
        if matches!(self.phase(session)?, Phase::Authenticating(..)) {
            return None;
        }
        let held = self.held.get_mut(&session)?;
        let next = held.pop_front();
        if held.is_empty() {
            self.held.remove(&session);
        }
        next
    }

    /// Logs the session in; returns whether it is the user's first online session.
    pub(super) fn go_online(&mut self, session: SessionId, online: Online) -> bool {
        let Some(s) = self.table.get_mut(&session) else {
            return false;
        };
        s.phase = Phase::Online(online);
        let sessions = self.online.entry(online.user).or_default();
        make_room_for_one(sessions);
        sessions.push(session);
        sessions.len() == 1
    }

    /// Logs the session out (back to `Greeted`); returns what it was, and whether it was its
    /// user's last online session.
    pub(super) fn log_out(&mut self, session: SessionId) -> Option<(Online, bool)> {
        let s = self.table.get_mut(&session)?;
        let Phase::Online(online) = s.phase else {
            return None;
        };
        s.phase = Phase::Greeted;
        let last = self.go_offline(online.user, session);
        Some((online, last))
    }

    fn go_offline(&mut self, user: UserId, session: SessionId) -> bool {
        let Some(sessions) = self.online.get_mut(&user) else {
            return false;
        };
        sessions.retain(|&s| s != session);
        if sessions.is_empty() {
            self.online.remove(&user);
            true
        } else {
            false
        }
    }

    pub(super) fn online(&self, session: SessionId) -> Option<&Online> {
        match self.phase(session) {
            Some(Phase::Online(online)) => Some(online),
            _ => None,
        }
    }

    /// The online sessions of `user`.
    pub(super) fn of_user(&self, user: UserId) -> &[SessionId] {
        self.online.get(&user).map_or(&[], Vec::as_slice)
    }

    /// Every user with an online session.
    pub(super) fn online_users(&self) -> Vec<UserId> {
        self.online.keys().copied().collect()
    }

    pub(super) fn is_online(&self, user: UserId) -> bool {
        self.online.contains_key(&user)
    }

    /// The next login deadline or keepalive sweep.
    pub(super) fn next_deadline(&self) -> Option<Mono> {
        let login = self.logins.front().map(|&(due, _)| due);
        login.into_iter().chain(self.next_sweep).min()
    }

    /// Sessions whose login deadline has come and that are not logged in.
    pub(super) fn overdue(&mut self, now: Mono) -> Vec<SessionId> {
        let mut overdue = Vec::new();
        while let Some(&(due, session)) = self.logins.front() {
            if due > now {
                break;
            }
            self.logins.pop_front();
            if self
                .phase(session)
                .is_some_and(|p| !matches!(p, Phase::Online(_)))
            {
                overdue.push(session);
            }
        }
        overdue
    }
}
