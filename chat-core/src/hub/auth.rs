//! Accounts and logins: registration, password login, token resume, logout, devices.
//!
//! Password work (hashing, verifying) and token lookups go out as outputs; the hub holds the
//! session in `Phase::Authenticating` until the completion comes back.

use chat_proto::{ErrorCode, ErrorReply, MemberEvent, Reply, RequestId};
use sha2::{Digest, Sha256};

use super::{After, Device, Hub, Online, Output, Phase, User};
use crate::names;
use crate::types::*;

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

/// SHA-256 of a session token: what storage keeps instead of the token.
pub(crate) fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

fn bad_credentials() -> ErrorReply {
    ErrorReply::new(
        ErrorCode::BadCredentials,
        "wrong username, password or token",
    )
}

impl Hub {
    /// Moves a greeted session to `Authenticating`.
    fn begin_auth(
        &mut self,
        session: SessionId,
        request: RequestId,
        attempt: AuthAttempt,
    ) -> Result<(), ErrorReply> {
        let Some(s) = self.sessions.get_mut(&session) else {
            return Ok(());
        };
        if !matches!(s.phase, Phase::Greeted) {
            return Err(ErrorReply::new(
                ErrorCode::BadRequest,
                "a login is already in progress",
            ));
        }
        s.phase = Phase::Authenticating(request, attempt);
        Ok(())
    }

    /// Takes the attempt of a session in `Authenticating`, returning it to `Greeted`.
    fn take_attempt(&mut self, session: SessionId) -> Option<(RequestId, AuthAttempt)> {
        let s = self.sessions.get_mut(&session)?;
        match std::mem::replace(&mut s.phase, Phase::Greeted) {
            Phase::Authenticating(request, attempt) => Some((request, attempt)),
            other => {
                s.phase = other;
                None
            }
        }
    }

    pub(super) fn register(
        &mut self,
        session: SessionId,
        request: RequestId,
        name: String,
        password: String,
        device: String,
    ) -> Result<(), ErrorReply> {
        let key = names::username(&name)?;
        names::password(&password)?;
        names::device(&device)?;
        if self.user_keys.contains_key(&key) || self.reserved.contains(&key) {
            return Err(ErrorReply::new(
                ErrorCode::UsernameTaken,
                format!("{name} is taken"),
            ));
        }
        self.begin_auth(
            session,
            request,
            AuthAttempt::Register {
                name,
                key: key.clone(),
                device,
            },
        )?;
        self.reserved.insert(key);
        self.outputs
            .push_back(Output::HashPassword { session, password });
        Ok(())
    }

    pub(super) fn login(
        &mut self,
        session: SessionId,
        request: RequestId,
        name: String,
        password: String,
        device: String,
        now: UnixMillis,
    ) -> Result<(), ErrorReply> {
        names::device(&device)?;
        let key = name.to_ascii_lowercase();
        let config = &self.config;
        if let Err(retry_after_ms) = self.failures.check(
            &key,
            config.max_login_failures,
            config.login_failure_window_ms,
            now,
        ) {
            let code = ErrorCode::RateLimited { retry_after_ms };
            return Err(ErrorReply::new(
                code,
                "too many failed logins for this user",
            ));
        }
        let user = self.user_keys.get(&key).copied();
        self.begin_auth(session, request, AuthAttempt::Login { key, user, device })?;
        self.outputs.push_back(Output::VerifyPassword {
            session,
            user,
            password,
        });
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
        self.begin_auth(session, request, AuthAttempt::Resume { token, device })?;
        self.outputs.push_back(Output::FindToken { session, hash });
        Ok(())
    }

    pub(super) fn logout(
        &mut self,
        session: SessionId,
        request: RequestId,
        user: UserId,
        now: UnixMillis,
    ) -> Result<(), ErrorReply> {
        let Some(s) = self.sessions.get_mut(&session) else {
            return Ok(());
        };
        let Phase::Online(online) = std::mem::replace(&mut s.phase, Phase::Greeted) else {
            return Ok(());
        };
        self.leave_online(session, user, now);
        let write = Write::RevokeToken {
            hash: online.token_hash,
        };
        self.persist(vec![write], After::Reply(session, request, Reply::Done));
        Ok(())
    }

    pub(super) fn password_verified(
        &mut self,
        session: SessionId,
        ok: bool,
        token: String,
        now: UnixMillis,
    ) {
        let Some((request, attempt)) = self.take_attempt(session) else {
            return;
        };
        let AuthAttempt::Login { key, user, device } = attempt else {
            return self.abandon(attempt);
        };
        match user {
            Some(user) if ok && self.users.contains_key(&user) => {
                self.failures.clear(&key);
                let expires_at = now + self.config.token_ttl_ms;
                self.start_session(session, request, user, device, token, expires_at, true, now);
            }
            _ => {
                self.failures
                    .record_failure(&key, self.config.login_failure_window_ms, now);
                self.fail(session, request, bad_credentials());
            }
        }
    }

    pub(super) fn password_hashed(
        &mut self,
        session: SessionId,
        hash: String,
        token: String,
        now: UnixMillis,
    ) {
        let Some((request, attempt)) = self.take_attempt(session) else {
            return;
        };
        let AuthAttempt::Register { name, key, device } = attempt else {
            return self.abandon(attempt);
        };
        self.reserved.remove(&key);
        if self.user_keys.contains_key(&key) {
            let error = ErrorReply::new(ErrorCode::UsernameTaken, format!("{name} is taken"));
            return self.fail(session, request, error);
        }
        self.next.user += 1;
        let user = UserId(self.next.user);
        self.user_keys.insert(key, user);
        self.users
            .insert(user, User::new(name.clone(), name.clone()));
        let mut writes = vec![Write::CreateUser {
            id: user,
            name,
            password_hash: hash,
            created_at: now,
        }];
        let default_room = self.rooms.get(&self.config.default_room).copied();
        if let Some(conv) = default_room {
            writes.push(self.add_member(conv, user));
            self.persist(
                writes,
                After::Member {
                    reply: None,
                    conv,
                    user,
                    event: MemberEvent::Joined,
                    also: None,
                },
            );
        } else {
            self.persist(writes, After::Nothing);
        }
        let expires_at = now + self.config.token_ttl_ms;
        self.start_session(session, request, user, device, token, expires_at, true, now);
    }

    pub(super) fn token_found(
        &mut self,
        session: SessionId,
        record: Option<TokenRecord>,
        now: UnixMillis,
    ) {
        let Some((request, attempt)) = self.take_attempt(session) else {
            return;
        };
        let AuthAttempt::Resume { token, device } = attempt else {
            return self.abandon(attempt);
        };
        let valid = record.filter(|r| {
            r.expires_at > now
                && self.users.get(&r.user).is_some_and(|u| {
                    u.devices
                        .iter()
                        .any(|d| d.id == r.device && d.name == device)
                })
        });
        match valid {
            Some(record) => {
                let (user, expires_at) = (record.user, record.expires_at);
                self.start_session(
                    session, request, user, device, token, expires_at, false, now,
                );
            }
            None => self.fail(session, request, bad_credentials()),
        }
    }

    /// A login attempt's session went away: release what it held.
    pub(super) fn abandon(&mut self, attempt: AuthAttempt) {
        if let AuthAttempt::Register { key, .. } = attempt {
            self.reserved.remove(&key);
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
        now: UnixMillis,
    ) {
        let mut writes = Vec::new();
        let device = self.device_for_login(user, &device_name, now, &mut writes);
        let token_hash = token_hash(&token);
        if new_token {
            writes.push(Write::CreateToken {
                hash: token_hash,
                user,
                device: device.id,
                expires_at,
            });
        }
        let Some(s) = self.sessions.get_mut(&session) else {
            return;
        };
        s.phase = Phase::Online(Online {
            user,
            device: device.id,
            token_hash,
            live: false,
            missed: false,
            sent_upto: device.cursor,
        });
        let Some(u) = self.users.get_mut(&user) else {
            return;
        };
        u.sessions.push(session);
        let first = u.sessions.len() == 1;
        let reply = chat_proto::Session {
            user: u.name.clone(),
            display_name: u.display_name.clone(),
            token,
            token_expires_at: expires_at,
        };
        if first {
            self.presence_changed(user, now);
        }
        self.persist(writes, After::LoggedIn(session, request, reply));
    }

    /// The device `name` of `user`, created (and the least recently used one forgotten, past
    /// the limit) if new. A new device starts at the lowest position of the user's other
    /// devices, so it receives what none of them has acknowledged.
    fn device_for_login(
        &mut self,
        user: UserId,
        name: &str,
        now: UnixMillis,
        writes: &mut Vec<Write>,
    ) -> Device {
        let max_devices = self.config.max_devices_per_user;
        let last_message = MessageId(self.next.message);
        let Some(u) = self.users.get_mut(&user) else {
            return Device {
                id: DeviceId(0),
                name: name.into(),
                cursor: last_message,
                last_seen: now,
            };
        };
        let device = if let Some(d) = u.devices.iter_mut().find(|d| d.name == name) {
            d.last_seen = now;
            d.clone()
        } else {
            let cursor = u
                .devices
                .iter()
                .map(|d| d.cursor)
                .min()
                .unwrap_or(last_message);
            if u.devices.len() >= max_devices {
                if let Some(oldest) = u
                    .devices
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, d)| d.last_seen)
                {
                    let index = oldest.0;
                    let gone = u.devices.remove(index);
                    writes.push(Write::DeleteDevice { id: gone.id });
                }
            }
            self.next.device += 1;
            let d = Device {
                id: DeviceId(self.next.device),
                name: name.into(),
                cursor,
                last_seen: now,
            };
            u.devices.push(d.clone());
            d
        };
        writes.push(Write::SetDevice {
            id: device.id,
            user,
            name: device.name.clone(),
            cursor: device.cursor,
            last_seen: device.last_seen,
        });
        device
    }

    /// Replies to a completed login and starts the backlog replay.
    pub(super) fn logged_in(
        &mut self,
        session: SessionId,
        request: RequestId,
        reply: chat_proto::Session,
    ) {
        tracing::info!(session = session.0, user = %reply.user, "logged in");
        self.reply(session, request, Reply::Session(reply));
        let limit = self.config.backlog_batch;
        if let Some(online) = self.online_of(session) {
            let load = Output::LoadBacklog {
                session,
                user: online.user,
                device: online.device,
                after: online.sent_upto,
                limit,
            };
            self.outputs.push_back(load);
        }
    }

    /// `session` of `user` stops being online (logout or disconnect).
    pub(super) fn leave_online(&mut self, session: SessionId, user: UserId, now: UnixMillis) {
        let Some(u) = self.users.get_mut(&user) else {
            return;
        };
        u.sessions.retain(|&s| s != session);
        if u.sessions.is_empty() {
            self.presence_changed(user, now);
        }
    }
}
