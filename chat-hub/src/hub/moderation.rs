//! [`Moderation`]: each room's roles, bans and mutes, and the server operators. The only
//! writer of who may moderate where and who is kept out of a room or silenced in it; every
//! change returns the [`Write`] that makes it durable.
//!
//! A standing that is all default (a plain member, neither banned nor muted) is not kept.

use std::collections::{BTreeMap, BTreeSet};

use chat_proto::Role;

use crate::types::*;

/// How much a user may do in a room, for comparing actor and target: a server operator
/// outranks every owner.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Rank {
    Member,
    Moderator,
    Owner,
    Operator,
}

#[derive(Debug, Default)]
pub(super) struct Moderation {
    standings: BTreeMap<(ConvId, UserId), Standing>,
    operators: BTreeSet<UserId>,
    disabled: BTreeSet<UserId>,
}

impl Moderation {
    pub(super) fn load(
        rows: Vec<StandingRow>,
        operators: Vec<UserId>,
        disabled: Vec<UserId>,
    ) -> Self {
        let mut moderation = Self {
            operators: operators.into_iter().collect(),
            disabled: disabled.into_iter().collect(),
            ..Self::default()
        };
        for row in rows {
            if row.standing != Standing::default() {
                moderation
                    .standings
                    .insert((row.conv, row.user), row.standing);
            }
        }
        moderation
    }

    pub(super) fn standing(&self, conv: ConvId, user: UserId) -> Standing {
        self.standings
            .get(&(conv, user))
            .copied()
            .unwrap_or_default()
    }

    pub(super) fn is_operator(&self, user: UserId) -> bool {
        self.operators.contains(&user)
    }

    /// What `user` may do in `conv`.
    pub(super) fn rank(&self, conv: ConvId, user: UserId) -> Rank {
        if self.is_operator(user) {
            return Rank::Operator;
        }
        match self.standing(conv, user).role {
            Role::Member => Rank::Member,
            Role::Moderator => Rank::Moderator,
            Role::Owner => Rank::Owner,
        }
    }

    /// *(cluster)* Another node made `user` a server operator, or no longer one.
    pub(super) fn set_operator(&mut self, user: UserId, operator: bool) {
        if operator {
            self.operators.insert(user);
        } else {
            self.operators.remove(&user);
        }
    }

    /// *(cluster)* A room this node created was adopted into another node's: the roles it had
    /// here (its creator's ownership) go with it.
    pub(super) fn forget_room(&mut self, conv: ConvId) {
        self.standings.retain(|&(c, _), _| c != conv);
    }

    pub(super) fn is_disabled(&self, user: UserId) -> bool {
        self.disabled.contains(&user)
    }

    /// Disables or enables the account of `user`; `None` if nothing changes.
    pub(super) fn set_disabled(&mut self, user: UserId, disabled: bool) -> Option<Write> {
        let changed = if disabled {
            self.disabled.insert(user)
        } else {
            self.disabled.remove(&user)
        };
        changed.then_some(Write::SetDisabled { user, disabled })
    }

    pub(super) fn is_banned(&self, conv: ConvId, user: UserId) -> bool {
        self.standing(conv, user).banned
    }

    pub(super) fn is_muted(&self, conv: ConvId, user: UserId) -> bool {
        self.standing(conv, user).muted
    }

    /// Changes the standing of `user` in `conv`; `None` if nothing changes.
    pub(super) fn update(
        &mut self,
        conv: ConvId,
        user: UserId,
        change: impl FnOnce(&mut Standing),
    ) -> Option<Write> {
        let old = self.standing(conv, user);
        let mut new = old;
        change(&mut new);
        if new == old {
            return None;
        }
        if new == Standing::default() {
            self.standings.remove(&(conv, user));
        } else {
            self.standings.insert((conv, user), new);
        }
        Some(Write::SetStanding {
            conv,
            user,
            standing: new,
        })
    }
}
