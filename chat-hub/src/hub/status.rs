//! Presence and typing as the other users see them: relayed only to users who share a
//! conversation with the user concerned.
//!
//! Presence changes wait `presence_coalesce_ms` and are broadcast only if the status still
//! differs from the one last announced, so a quick reconnect costs nobody a frame. Rooms above
//! `presence_room_limit` members carry no presence at all. Typing is relayed at most once per
//! `typing_relay_interval_ms` per user and target and ends by itself after `typing_expiry_ms`
//! without a refresh.

use std::collections::BTreeSet;

use chat_proto::{ServerMessage, Target};

use super::presence::{TypingKey, TypingStart};
use super::Hub;
use crate::types::*;

impl Hub {
    /// Sends one event to every online session of `users`, encoded once.
    pub(super) fn send_to_users(
        &mut self,
        users: impl IntoIterator<Item = UserId>,
        msg: &ServerMessage,
        droppable: bool,
    ) {
        let Some(frame) = self.out.encode(msg) else {
            return;
        };
        for user in users {
            let sessions = self.sessions.of_user(user);
            self.out
                .send_to(sessions.iter().copied(), &frame, droppable);
        }
    }

    /// Sends a version-2 event to every online session of `users`: as is to sessions that
    /// speak version 2, as `v1` (its nearest version-1 equivalent; `None`: nothing) to
    /// version-1 sessions. Each form is encoded once.
    pub(super) fn send_to_users_versioned(
        &mut self,
        users: impl IntoIterator<Item = UserId>,
        msg: &ServerMessage,
        v1: Option<&ServerMessage>,
        droppable: bool,
    ) {
        let Some(frame) = self.out.encode(msg) else {
            return;
        };
        let old = v1.and_then(|m| self.out.encode(m));
        for user in users {
            for &session in self.sessions.of_user(user) {
                if self.sessions.version(session) >= 2 {
                    self.out.send_frame(session, frame.clone(), droppable);
                } else if let Some(old) = &old {
                    self.out.send_frame(session, old.clone(), droppable);
                }
            }
        }
    }

    /// Broadcasts the presence of every user whose coalescing delay has passed, if it differs
    /// from what was last announced.
    pub(super) fn broadcast_presence(&mut self, now: Now) {
        while let Some(user) = self.presence.next_due(now.mono) {
            let online = self.is_online(user);
            if self.directory.user(user).is_none() || !self.presence.announce(user, online) {
                continue;
            }
            let msg = ServerMessage::Presence {
                user: self.directory.name(user),
                online,
            };
            let watchers = self.presence_watchers(user);
            self.send_to_users(watchers, &msg, true);
        }
    }

    /// Whether `user` has a session here or, in a cluster, on another node.
    pub(super) fn is_online(&self, user: UserId) -> bool {
        self.sessions.is_online(user) || self.presence.online_elsewhere(user)
    }

    /// Users who see `user`'s presence: members of their rooms up to the presence size limit,
    /// and their direct-conversation partners.
    fn presence_watchers(&self, user: UserId) -> BTreeSet<UserId> {
        let mut watchers = BTreeSet::new();
        for (_, c) in self.directory.convs_of(user) {
            match c.kind {
                ConvKind::Room { .. } if c.members().len() <= self.config.presence_room_limit => {
                    watchers.extend(c.members().keys().copied());
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
    pub(super) fn typing(&mut self, user: UserId, target: Target, active: bool, now: Now) {
        let key = match &target {
            Target::Room(room) => match self.directory.member_room(room, user) {
                Ok(conv) => TypingKey::Room(user, conv),
                Err(_) => return,
            },
            Target::User(name) => match self.directory.find_user(name) {
                Ok(other) if other != user => TypingKey::User(user, other),
                _ => return,
            },
        };
        if !active {
            return self.stop_typing(key, true);
        }
        if self.presence.start_typing(key, &self.config, now.mono) == Some(TypingStart::Relay) {
            self.relay_typing(key, true);
        }
    }

    /// *(cluster)* Another node's user started or stopped typing: told to this node's
    /// sessions like a local one's (the other node times it out and says when it stops).
    pub(super) fn remote_typing(&mut self, user: UserId, to: TypingTo, active: bool) {
        let key = match to {
            TypingTo::Room(conv) => TypingKey::Room(user, conv),
            TypingTo::User(other) => TypingKey::User(user, other),
        };
        self.tell_typing(key, active);
    }

    /// Ends a typing state, telling the target if `relay`.
    pub(super) fn stop_typing(&mut self, key: TypingKey, relay: bool) {
        if self.presence.stop_typing(key) && relay {
            self.relay_typing(key, false);
        }
    }

    /// Ends the typing states not refreshed in time, telling their targets.
    pub(super) fn expire_typing(&mut self, now: Now) {
        while let Some(key) = self.presence.next_expired(now.mono) {
            self.relay_typing(key, false);
        }
    }

    /// Tells the target of a typing state of this node's, here and on the other nodes.
    fn relay_typing(&mut self, key: TypingKey, active: bool) {
        if self.config.cluster {
            let (user, to) = match key {
                TypingKey::Room(user, conv) => (user, TypingTo::Room(conv)),
                TypingKey::User(user, other) => (user, TypingTo::User(other)),
            };
            self.out.share(NodeMessage::Typing { user, to, active });
        }
        self.tell_typing(key, active);
    }

    /// Tells this node's sessions of the target about a typing state.
    fn tell_typing(&mut self, key: TypingKey, active: bool) {
        let user = self.directory.name(key.typist());
        match key {
            TypingKey::Room(typist, conv) => {
                let Some(c) = self.directory.conv(conv) else {
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
                let recipients: Vec<UserId> = c
                    .members()
                    .keys()
                    .copied()
                    .filter(|&m| m != typist)
                    .collect();
                self.send_to_users(recipients, &msg, true);
            }
            TypingKey::User(_, other) => {
                let msg = ServerMessage::Typing {
                    user,
                    target: Target::User(self.directory.name(other)),
                    active,
                };
                self.send_to_users([other], &msg, true);
            }
        }
    }
}
