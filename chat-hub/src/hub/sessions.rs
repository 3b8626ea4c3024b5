//! [`Sessions`]: every connection's phase (new, greeted, authenticating, online), its request
//! budget, what it pipelined behind a login, the login deadlines, and which users are online
//! on which sessions. Failed logins are counted here too.

use std::collections::VecDeque;

use chat_proto::{ClientMessage, ErrorCode, ErrorReply, RequestId, MIN_PROTOCOL_VERSION};
use rustc_hash::FxHashMap;

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
    /// Where the connection comes from (`None`: in-process).
    source: Source,
    bucket: TokenBucket,
    /// Messages that arrived while a login was in flight, handled in order once it ends.
    held: VecDeque<ClientMessage>,
    /// The protocol version agreed by `Hello` (the oldest until then).
    version: u16,
}

/// Most messages a session may pipeline behind a login in flight.
pub(super) const MAX_HELD: usize = 64;

#[derive(Debug, Default)]
pub(super) struct Sessions {
    table: FxHashMap<SessionId, Session>,
    /// Each online user's sessions.
    online: FxHashMap<UserId, Vec<SessionId>>,
    /// Login deadlines, in time order (each is `connect + login_timeout`).
    logins: VecDeque<(Mono, SessionId)>,
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
        let bucket = TokenBucket::new(config.request_rate_per_sec, config.request_burst, now);
        self.table.insert(
            session,
            Session {
                phase: Phase::New,
                source,
                bucket,
                held: VecDeque::new(),
                version: MIN_PROTOCOL_VERSION,
            },
        );
        self.logins
            .push_back((now.plus(config.login_timeout_ms), session));
    }

    /// Forgets `session`; returns its phase, and whether it was its user's last online
    /// session.
    pub(super) fn remove(&mut self, session: SessionId) -> Option<(Phase, bool)> {
        let s = self.table.remove(&session)?;
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
    pub(super) fn take_token(&mut self, session: SessionId, now: Mono) -> Result<(), u32> {
        match self.table.get_mut(&session) {
            Some(s) => s.bucket.take(now),
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
        match self.table.get_mut(&session) {
            Some(s) if s.held.len() < MAX_HELD => {
                s.held.push_back(msg);
                true
            }
            _ => false,
        }
    }

    /// The next held message, once the session is no longer authenticating.
    pub(super) fn next_held(&mut self, session: SessionId) -> Option<ClientMessage> {
        let s = self.table.get_mut(&session)?;
        if matches!(s.phase, Phase::Authenticating(..)) {
            return None;
        }
        s.held.pop_front()
    }

    /// Logs the session in; returns whether it is the user's first online session.
    pub(super) fn go_online(&mut self, session: SessionId, online: Online) -> bool {
        let Some(s) = self.table.get_mut(&session) else {
            return false;
        };
        s.phase = Phase::Online(online);
        let sessions = self.online.entry(online.user).or_default();
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

    pub(super) fn next_deadline(&self) -> Option<Mono> {
        self.logins.front().map(|&(due, _)| due)
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
