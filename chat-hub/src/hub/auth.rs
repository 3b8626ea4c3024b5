//! Accounts and logins: registration, password login, token resume, logout.
//!
//! Password work (hashing, verifying) and token lookups go out as [`IoRequest`]s; the session
//! stays `Authenticating` until the completion comes back, and what it pipelined meanwhile
//! waits (see [`Hub::handle_message`]).

use chat_proto::{ErrorCode, ErrorReply, MemberEvent, Reply, RequestId};
use sha2::{Digest, Sha256};

use super::output::{After, IoRequest};
use super::sessions::{AuthAttempt, Online, Phase};
use super::throttle::Source;
use super::Hub;
use crate::names;
use crate::types::*;

/// SHA-256 of a session token: what storage keeps instead of the token.
pub fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

fn bad_credentials() -> ErrorReply {
    ErrorReply::new(
        ErrorCode::BadCredentials,
        "wrong username, password or token",
    )
}

fn in_progress() -> ErrorReply {
    ErrorReply::new(ErrorCode::BadRequest, "a login is already in progress")
}

fn busy(retry_after_ms: u32) -> ErrorReply {
    ErrorReply::new(
        ErrorCode::RateLimited { retry_after_ms },
        "too many logins at once: try again shortly",
    )
}

pub(super) fn taken(name: &str) -> ErrorReply {
    ErrorReply::new(
        ErrorCode::UsernameTaken,
        format!("{name} is taken, or looks too much like a name that is"),
    )
}

impl Hub {
    pub(super) fn register(
        &mut self,
        session: SessionId,
        request: RequestId,
        name: String,
        password: String,
        device: String,
        now: Now,
    ) -> Result<(), ErrorReply> {
        let key = names::username(&name)?;
        names::password(&password)?;
        names::device(&device)?;
        if !self.directory.reserve(&key) {
            return Err(taken(&name));
        }
        let source = self.sessions.source(session);
        let clean = self.throttle.is_clean(source);
        if let Err(retry_after_ms) = self.throttle.hash_room(source, clean, &self.config) {
            self.directory.release(&key);
            return Err(busy(retry_after_ms));
        }
        let attempt = AuthAttempt::Register {
            name,
            key: key.clone(),
            device,
        };
        if let Err(error) = self.sessions.begin_auth(session, request, attempt) {
            self.directory.release(&key);
            return Err(error);
        }
        let work = IoRequest::HashPassword { session, password };
        self.queue_hash(session, source, clean, work, now);
        Ok(())
    }

    pub(super) fn login(
        &mut self,
        session: SessionId,
        request: RequestId,
        name: String,
        password: String,
        device: String,
        now: Now,
    ) -> Result<(), ErrorReply> {
        names::device(&device)?;
        let key = name.to_ascii_lowercase();
        if !matches!(self.sessions.phase(session), Some(Phase::Greeted)) {
            return Err(in_progress());
        }
        let source = self.sessions.source(session);
        // Judged before this attempt counts against the source.
        let clean = self.throttle.is_clean(source);
        self.throttle
            .hash_room(source, clean, &self.config)
            .map_err(busy)?;
        if let Err(retry_after_ms) = self
            .throttle
            .begin_login(source, &key, &self.config, now.mono)
        {
            let code = ErrorCode::RateLimited { retry_after_ms };
            return Err(ErrorReply::new(
                code,
                "too many failed logins from here: wait before trying again",
            ));
        }
        let user = self.directory.user_by_key(&key);
        let attempt = AuthAttempt::Login { key, user, device };
        self.sessions.begin_auth(session, request, attempt)?;
        let work = IoRequest::VerifyPassword {
            session,
            user,
            password,
        };
        self.queue_hash(session, source, clean, work, now);
        Ok(())
    }

    pub(super) fn resume(
        &mut self,
        session: SessionId,
        request: RequestId,
        token: String,
        device: String,
    ) -> Result<(), ErrorReply> {
        names::device(&device)?;
        let hash = token_hash(&token);
        let attempt = AuthAttempt::Resume { token, device };
        self.sessions.begin_auth(session, request, attempt)?;
        self.out.io(IoRequest::FindToken { session, hash });
        Ok(())
    }

    pub(super) fn logout(&mut self, session: SessionId, request: RequestId, now: Now) {
        let Some((online, last)) = self.sessions.log_out(session) else {
            return;
        };
        self.went_offline(session, online.user, last, now);
        let write = Write::RevokeToken {
            hash: online.token_hash,
        };
        self.out
            .persist(vec![write], After::Reply(session, request, Reply::Done));
    }

    pub(super) fn password_verified(
        &mut self,
        session: SessionId,
        ok: bool,
        token: String,
        now: Now,
    ) {
        let Some((request, attempt)) = self.sessions.take_attempt(session) else {
            return;
        };
        let AuthAttempt::Login { key, user, device } = attempt else {
            return self.abandon(attempt);
        };
        match user {
            Some(user) if ok && self.directory.user(user).is_some() => {
                let source = self.sessions.source(session);
                self.throttle.succeeded(source, &key);
                let expires_at = now.wall + self.config.token_ttl_ms;
                self.start_session(session, request, user, device, token, expires_at, true, now);
            }
            _ => {
                // Counted against the source when the attempt started.
                self.stats.failed_logins += 1;
                self.fail(session, request, bad_credentials());
            }
        }
    }

    pub(super) fn password_hashed(
        &mut self,
        session: SessionId,
        hash: String,
        token: String,
        now: Now,
    ) {
        let Some((request, attempt)) = self.sessions.take_attempt(session) else {
            return;
        };
        let AuthAttempt::Register { name, key, device } = attempt else {
            return self.abandon(attempt);
        };
        let (user, write) = match self.directory.create_user(key, name, hash, now.wall) {
            Ok(created) => created,
            Err(refused) => return self.fail(session, request, refused),
        };
        let mut writes = vec![write];
        let default_room = self
            .directory
            .room_id(&self.config.default_room.to_ascii_lowercase());
        let join = default_room
            .and_then(|conv| Some((conv, self.directory.add_member(conv, user, UNNUMBERED)?)));
        match join {
            Some((conv, join)) => {
                writes.push(join);
                let after = After::Member {
                    reply: None,
                    conv,
                    user,
                    event: MemberEvent::Joined,
                    also: None,
                };
                self.out.persist(writes, after);
            }
            None => self.out.persist(writes, After::Nothing),
        }
        let expires_at = now.wall + self.config.token_ttl_ms;
        self.start_session(session, request, user, device, token, expires_at, true, now);
    }

    pub(super) fn token_found(
        &mut self,
        session: SessionId,
        record: Option<TokenRecord>,
        now: Now,
    ) {
        let Some((request, attempt)) = self.sessions.take_attempt(session) else {
            return;
        };
        let AuthAttempt::Resume { token, device } = attempt else {
            return self.abandon(attempt);
        };
        let valid = record.filter(|r| {
            r.expires_at > now.wall
                && self.directory.user(r.user).is_some()
                && self.delivery.has_device(r.user, r.device, &device)
        });
        match valid {
            Some(record) => {
                let (user, expires_at) = (record.user, record.expires_at);
                self.start_session(
                    session, request, user, device, token, expires_at, false, now,
                );
            }
            None => {
                self.stats.failed_logins += 1;
                self.fail(session, request, bad_credentials());
            }
        }
    }

    /// Queues password work (after `hash_room`), pushing out waiting work of a source with
    /// failures if the queue is full, and starts what threads are free for.
    fn queue_hash(
        &mut self,
        session: SessionId,
        source: Source,
        clean: bool,
        work: IoRequest,
        now: Now,
    ) {
        if let Some(pushed_out) = self.throttle.push_out(&self.config) {
            if let Some((request, attempt)) = self.sessions.take_attempt(pushed_out) {
                self.abandon(attempt);
                self.fail(pushed_out, request, busy(250));
                self.release_held(pushed_out, now);
            }
        }
        self.throttle.queue_hash(session, source, clean, work);
        self.start_hashes();
    }

    /// Hands the driver the queued password work that hashing threads are free for.
    pub(super) fn start_hashes(&mut self) {
        while let Some(work) = self.throttle.next_hash(&self.config) {
            self.out.io(work);
        }
    }

    /// Password work of `session` ended (`completed`), or its session went away: frees its
    /// place and starts what waits.
    pub(super) fn end_hash(&mut self, session: SessionId, completed: bool) {
        self.throttle.end_hash(session, completed);
        self.start_hashes();
    }

    /// A login attempt's session went away: release what it held.
    pub(super) fn abandon(&mut self, attempt: AuthAttempt) {
        if let AuthAttempt::Register { key, .. } = attempt {
            self.directory.release(&key);
        }
    }

    /// Logs `session` in as `user` on `device_name` with `token`, which is stored here if
    /// `new_token` (a login) and exists already otherwise (a resume).
    #[allow(clippy::too_many_arguments)]
    fn start_session(
        &mut self,
        session: SessionId,
        request: RequestId,
        user: UserId,
        device_name: String,
        token: String,
        expires_at: UnixMillis,
        new_token: bool,
        now: Now,
    ) {
        let Some(account) = self.directory.user(user) else {
            return;
        };
        if !self.sessions.contains(session) {
            return;
        }
        // Checked only once the password or token proved who this is: a disabled account
        // looks like any other to someone without its credentials.
        if self.moderation.is_disabled(user) {
            let error = ErrorReply::new(
                ErrorCode::Forbidden,
                "this account is disabled: ask a server operator",
            );
            return self.fail(session, request, error);
        }
        let reply = chat_proto::Session {
            user: account.name.to_string(),
            display_name: account.display_name.to_string(),
            token,
            token_expires_at: expires_at,
        };
        let mut writes = Vec::new();
        let device = match self.delivery.device_for_login(
            user,
            &device_name,
            &self.config,
            now.wall,
            &mut writes,
        ) {
            Ok(device) => device,
            Err(refused) => return self.fail(session, request, refused),
        };
        let token_hash = token_hash(&reply.token);
        if new_token {
            writes.push(Write::CreateToken {
                hash: token_hash,
                user,
                device: device.id,
                expires_at,
            });
        }
        let online = Online {
            user,
            device: device.id,
            token_hash,
        };
        let first = self.sessions.go_online(session, online);
        self.delivery.open(session, device.cursor);
        if first {
            self.presence.changed(user, &self.config, now.mono);
        }
        self.out
            .persist(writes, After::LoggedIn(session, request, reply));
    }

    /// Replies to a completed login and starts the replay (unread counts, then the backlog).
    pub(super) fn logged_in(
        &mut self,
        session: SessionId,
        request: RequestId,
        reply: chat_proto::Session,
    ) {
        tracing::info!(session = session.0, user = %reply.user, "logged in");
        self.reply(session, request, Reply::Session(reply));
        self.start_replay(session);
    }

    /// `session` of `user` stops being online (logout or disconnect); `last` if it was the
    /// user's last online session.
    pub(super) fn went_offline(&mut self, session: SessionId, user: UserId, last: bool, now: Now) {
        self.delivery.close(session);
        if last {
            self.presence.changed(user, &self.config, now.mono);
        }
    }
}
