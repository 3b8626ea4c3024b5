//! [`Presence`]: ephemeral state, never stored — who is typing to what (with expiry and relay
//! throttling), presence changes waiting out the coalescing delay, and the status last
//! announced for each user.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

use rustc_hash::{FxHashMap, FxHashSet};

use crate::types::*;
use crate::Config;

/// Who is typing to what.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) enum TypingKey {
    /// A user typing in a room.
    Room(UserId, ConvId),
    /// A user typing to another user.
    User(UserId, UserId),
}

impl TypingKey {
    pub(super) fn typist(self) -> UserId {
        match self {
            Self::Room(user, _) | Self::User(user, _) => user,
        }
    }
}

/// One typing state.
#[derive(Debug)]
struct Typing {
    expires_at: Mono,
    relayed_at: Mono,
}

/// What a typing start means for the target.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum TypingStart {
    /// Tell the target.
    Relay,
    /// Refreshed; relayed recently enough already.
    Quiet,
}

#[derive(Debug, Default)]
pub(super) struct Presence {
    typing: FxHashMap<TypingKey, Typing>,
    /// One entry per typing state; a refreshed state's entry is moved when it comes due.
    typing_deadlines: BinaryHeap<Reverse<(Mono, TypingKey)>>,
    /// Typing states per user (bounded by `max_typing_per_user`).
    typing_per_user: FxHashMap<UserId, usize>,
    /// Users whose presence changed and is waiting to be broadcast, with its due time.
    pending: FxHashSet<UserId>,
    pending_queue: VecDeque<(Mono, UserId)>,
    /// Users last announced as online.
    announced_online: FxHashSet<UserId>,
    /// *(cluster)* The users online on each other node, as its last heartbeat said.
    remote: FxHashMap<String, FxHashSet<UserId>>,
}

impl Presence {
    /// `user`'s online status may have changed: consider it after the coalescing delay.
    pub(super) fn changed(&mut self, user: UserId, config: &Config, now: Mono) {
        if self.pending.insert(user) {
            let due = now.plus(config.presence_coalesce_ms);
            self.pending_queue.push_back((due, user));
        }
    }

    /// *(cluster)* The users online on `node` now; returns those whose status there changed.
    pub(super) fn set_remote(&mut self, node: &str, users: FxHashSet<UserId>) -> Vec<UserId> {
        let before = if users.is_empty() {
            self.remote.remove(node).unwrap_or_default()
        } else {
            self.remote
                .insert(node.to_owned(), users.clone())
                .unwrap_or_default()
        };
        before.symmetric_difference(&users).copied().collect()
    }

    /// *(cluster)* Whether another node has a session of `user`.
    pub(super) fn online_elsewhere(&self, user: UserId) -> bool {
        self.remote.values().any(|users| users.contains(&user))
    }

    /// The next user whose coalescing delay has passed.
    pub(super) fn next_due(&mut self, now: Mono) -> Option<UserId> {
        let &(due, user) = self.pending_queue.front()?;
        if due > now {
            return None;
        }
        self.pending_queue.pop_front();
        self.pending.remove(&user);
        Some(user)
    }

    /// Records `online` as announced for `user`; false if that was announced already.
    pub(super) fn announce(&mut self, user: UserId, online: bool) -> bool {
        if online {
            self.announced_online.insert(user)
        } else {
            self.announced_online.remove(&user)
        }
    }

    /// A typing start: `None` if the user has too many typing states already.
    pub(super) fn start_typing(
        &mut self,
        key: TypingKey,
        config: &Config,
        now: Mono,
    ) -> Option<TypingStart> {
        let expires_at = now.plus(config.typing_expiry_ms);
        if let Some(t) = self.typing.get_mut(&key) {
            t.expires_at = expires_at;
            if now >= t.relayed_at.plus(config.typing_relay_interval_ms) {
                t.relayed_at = now;
                return Some(TypingStart::Relay);
            }
            return Some(TypingStart::Quiet);
        }
        let count = self.typing_per_user.entry(key.typist()).or_default();
        if *count >= config.max_typing_per_user {
            return None;
        }
        *count += 1;
        self.typing.insert(
            key,
            Typing {
                expires_at,
                relayed_at: now,
            },
        );
        self.typing_deadlines.push(Reverse((expires_at, key)));
        Some(TypingStart::Relay)
    }

    /// Ends a typing state; false if there was none.
    pub(super) fn stop_typing(&mut self, key: TypingKey) -> bool {
        if self.typing.remove(&key).is_none() {
            return false;
        }
        let typist = key.typist();
        if let Some(count) = self.typing_per_user.get_mut(&typist) {
            *count -= 1;
            if *count == 0 {
                self.typing_per_user.remove(&typist);
            }
        }
        true
    }

    /// The next typing state not refreshed in time, ended.
    pub(super) fn next_expired(&mut self, now: Mono) -> Option<TypingKey> {
        while let Some(&Reverse((due, key))) = self.typing_deadlines.peek() {
            if due > now {
                return None;
            }
            self.typing_deadlines.pop();
            match self.typing.get(&key) {
                Some(t) if t.expires_at <= now => {
                    self.stop_typing(key);
                    return Some(key);
                }
                Some(t) => self.typing_deadlines.push(Reverse((t.expires_at, key))),
                None => {}
            }
        }
        None
    }

    pub(super) fn next_deadline(&self) -> Option<Mono> {
        let typing = self.typing_deadlines.peek().map(|Reverse((due, _))| *due);
        let presence = self.pending_queue.front().map(|&(due, _)| due);
        typing.into_iter().chain(presence).min()
    }
}
