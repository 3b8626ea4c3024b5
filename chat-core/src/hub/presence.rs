//! Presence and typing: ephemeral state, never stored, relayed only to users who share a
//! conversation with the user concerned.
//!
//! Presence changes wait `presence_coalesce_ms` and are broadcast only if the status still
//! differs from the one last announced, so a quick reconnect costs nobody a frame. Rooms above
//! `presence_room_limit` members carry no presence at all. Typing is relayed at most once per
//! `typing_relay_interval_ms` per user and target and ends by itself after
//! `typing_expiry_ms` without a refresh.

use std::cmp::Reverse;
use std::collections::BTreeSet;

use chat_proto::{ServerMessage, Target};

use super::Hub;
use crate::types::*;

/// Who is typing to what.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) enum TypingKey {
    /// A user typing in a room.
    Room(UserId, ConvId),
    /// A user typing to another user.
    User(UserId, UserId),
}

impl TypingKey {
    fn typist(self) -> UserId {
        match self {
            Self::Room(user, _) | Self::User(user, _) => user,
        }
    }
}

/// One typing state.
#[derive(Debug)]
pub(super) struct Typing {
    expires_at: UnixMillis,
    relayed_at: UnixMillis,
}

impl Hub {
    /// `user`'s online status may have changed: broadcast it after the coalescing delay.
    pub(super) fn presence_changed(&mut self, user: UserId, now: UnixMillis) {
        if self.presence_pending.insert(user) {
            let due = now + self.config.presence_coalesce_ms;
            self.timers.presence.push_back((due, user));
        }
    }

    pub(super) fn broadcast_presence(&mut self, now: UnixMillis) {
        while let Some(&(due, user)) = self.timers.presence.front() {
            if due > now {
                break;
            }
            self.timers.presence.pop_front();
            self.presence_pending.remove(&user);
            let online = self.is_online(user);
            let Some(u) = self.users.get_mut(&user) else {
                continue;
            };
            if u.announced_online == online {
                continue;
            }
            u.announced_online = online;
            let msg = ServerMessage::Presence {
                user: u.name.clone(),
                online,
            };
            let watchers = self.presence_watchers(user);
            self.send_to_users(watchers, &msg, true, None);
        }
    }

    /// Users who see `user`'s presence: members of their rooms up to the presence size limit,
    /// and their direct-conversation partners.
    fn presence_watchers(&self, user: UserId) -> BTreeSet<UserId> {
        let mut watchers = BTreeSet::new();
        let Some(u) = self.users.get(&user) else {
            return watchers;
        };
        for conv in &u.convs {
            let Some(c) = self.convs.get(conv) else {
                continue;
            };
            match c.kind {
                ConvKind::Room { .. } if c.members.len() <= self.config.presence_room_limit => {
                    watchers.extend(c.members.keys().copied());
                }
                ConvKind::Room { .. } => {}
                ConvKind::Direct { a, b } => {
                    watchers.insert(a);
                    watchers.insert(b);
                }
            }
        }
        watchers.remove(&user);
        watchers
    }

    /// A typing start or stop from `user`. Targets the user may not write to are ignored.
    pub(super) fn typing(&mut self, user: UserId, target: Target, active: bool, now: UnixMillis) {
        let key = match &target {
            Target::Room(room) => match self.member_room(room, user) {
                Ok(conv) => TypingKey::Room(user, conv),
                Err(_) => return,
            },
            Target::User(name) => match self.find_user(name) {
                Ok(other) if other != user => TypingKey::User(user, other),
                _ => return,
            },
        };
        if !active {
            return self.stop_typing(key, true);
        }
        let expires_at = now + self.config.typing_expiry_ms;
        if let Some(t) = self.typing.get_mut(&key) {
            t.expires_at = expires_at;
            if now >= t.relayed_at + self.config.typing_relay_interval_ms {
                t.relayed_at = now;
                self.relay_typing(key, true);
            }
            return;
        }
        let max = self.config.max_typing_per_user;
        let Some(u) = self.users.get_mut(&user).filter(|u| u.typing < max) else {
            return;
        };
        u.typing += 1;
        self.typing.insert(
            key,
            Typing {
                expires_at,
                relayed_at: now,
            },
        );
        self.timers.typing.push(Reverse((expires_at, key)));
        self.relay_typing(key, true);
    }

    /// Ends a typing state, telling the target if `relay`.
    pub(super) fn stop_typing(&mut self, key: TypingKey, relay: bool) {
        if self.typing.remove(&key).is_none() {
            return;
        }
        if let Some(u) = self.users.get_mut(&key.typist()) {
            u.typing = u.typing.saturating_sub(1);
        }
        if relay {
            self.relay_typing(key, false);
        }
    }

    /// Ends typing states not refreshed in time. Each state has one timer entry, moved later
    /// when the state was refreshed.
    pub(super) fn expire_typing(&mut self, now: UnixMillis) {
        while let Some(&Reverse((due, key))) = self.timers.typing.peek() {
            if due > now {
                break;
            }
            self.timers.typing.pop();
            match self.typing.get(&key) {
                Some(t) if t.expires_at <= now => self.stop_typing(key, true),
                Some(t) => self.timers.typing.push(Reverse((t.expires_at, key))),
                None => {}
            }
        }
    }

    fn relay_typing(&mut self, key: TypingKey, active: bool) {
        let user = self.user_name(key.typist());
        match key {
            TypingKey::Room(typist, conv) => {
                let Some(c) = self.convs.get(&conv) else {
                    return;
                };
                let ConvKind::Room { name, .. } = &c.kind else {
                    return;
                };
                let msg = ServerMessage::Typing {
                    user,
                    target: Target::Room(name.clone()),
                    active,
                };
                let recipients: Vec<UserId> =
                    c.members.keys().copied().filter(|&m| m != typist).collect();
                self.send_to_users(recipients, &msg, true, None);
            }
            TypingKey::User(_, other) => {
                let msg = ServerMessage::Typing {
                    user,
                    target: Target::User(self.user_name(other)),
                    active,
                };
                self.send_to_users([other], &msg, true, None);
            }
        }
    }
}
