//! Moderation requests (version 2): roles, kick, ban, unban, mute; and the `Moderated`
//! notices they cause, each also written to the audit log.
//!
//! An actor must outrank the user acted on (operator > owner > moderator > member): a
//! moderator cannot kick another moderator or the owner, and nobody acts on themselves.

use std::collections::BTreeSet;

use chat_proto::{
    ErrorCode, ErrorReply, MemberEvent, ModAction, Reply, RequestId, Role, ServerMessage,
};

use super::moderation::Rank;
use super::output::After;
use super::Hub;
use crate::names;
use crate::types::*;

/// Longest moderation reason, in bytes.
pub const MAX_REASON_LEN: usize = 256;

fn forbidden(text: impl Into<String>) -> ErrorReply {
    ErrorReply::new(ErrorCode::Forbidden, text)
}

impl Hub {
    /// Carries out `action` by `actor` on `target_name` in `room`, after checking ranks.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn moderate(
        &mut self,
        session: SessionId,
        request: RequestId,
        actor: UserId,
        room: &str,
        target_name: &str,
        action: ModAction,
        reason: &str,
        now: Now,
    ) -> Result<(), ErrorReply> {
        let reason = names::text(reason).trim().to_owned();
        if reason.len() > MAX_REASON_LEN {
            return Err(ErrorReply::new(
                ErrorCode::TooLarge,
                format!("a reason is at most {MAX_REASON_LEN} bytes"),
            ));
        }
        let name = names::room(room)?;
        let Some(conv) = self.directory.room_id(&name) else {
            return Err(ErrorReply::new(
                ErrorCode::NoSuchRoom,
                format!("no room #{name}"),
            ));
        };
        let rank = self.moderation.rank(conv, actor);
        if rank < Rank::Operator && !self.directory.is_member(conv, actor) {
            return Err(forbidden(format!("you are not in #{name}")));
        }
        let needed = match action {
            ModAction::Opped | ModAction::Deopped => Rank::Owner,
            _ => Rank::Moderator,
        };
        if rank < needed {
            let who = if needed == Rank::Owner {
                "the owner"
            } else {
                "a moderator"
            };
            return Err(forbidden(format!("only {who} of #{name} may do that")));
        }
        let target = self.directory.find_user(target_name)?;
        if self.moderation.rank(conv, target) >= rank {
            return Err(forbidden(
                "you may not act on a user of equal or higher rank",
            ));
        }
        let member = self.directory.is_member(conv, target);
        let needs_member = matches!(
            action,
            ModAction::Kicked | ModAction::Muted | ModAction::Opped | ModAction::Deopped
        );
        if needs_member && !member {
            return Err(ErrorReply::new(
                ErrorCode::NotAMember,
                format!("{target_name} is not in #{name}"),
            ));
        }
        let mut writes = Vec::new();
        writes.extend(self.moderation.update(conv, target, |s| match action {
            ModAction::Banned => {
                s.banned = true;
                s.role = Role::Member;
            }
            ModAction::Unbanned => s.banned = false,
            ModAction::Muted => s.muted = true,
            ModAction::Unmuted => s.muted = false,
            ModAction::Opped => s.role = Role::Moderator,
            ModAction::Deopped => s.role = Role::Member,
            ModAction::Kicked | ModAction::Redacted => {}
        }));
        if matches!(action, ModAction::Kicked | ModAction::Banned) && member {
            writes.extend(self.directory.remove_member(conv, target));
        }
        writes.push(Write::Audit(AuditRecord {
            conv,
            actor,
            target,
            action,
            reason: reason.clone(),
            at: now.wall,
        }));
        self.out.persist(
            writes,
            After::Moderated {
                reply: (session, request),
                conv,
                actor,
                target,
                action,
                reason,
            },
        );
        Ok(())
    }

    /// A moderation action is stored: reply, then tell the room's members and the user acted
    /// on. Version-1 sessions get `Member { Left }` for a kick or a ban, nothing otherwise.
    pub(super) fn moderated(
        &mut self,
        (session, request): (SessionId, RequestId),
        conv: ConvId,
        actor: UserId,
        target: UserId,
        action: ModAction,
        reason: String,
    ) {
        self.reply(session, request, Reply::Done);
        let Some(c) = self.directory.conv(conv) else {
            return;
        };
        let ConvKind::Room { name, .. } = &c.kind else {
            return;
        };
        let user = self.directory.name(target);
        let v1 = matches!(action, ModAction::Kicked | ModAction::Banned).then(|| {
            ServerMessage::Member {
                room: name.clone(),
                user: user.clone(),
                event: MemberEvent::Left,
            }
        });
        let msg = ServerMessage::Moderated {
            room: name.clone(),
            by: self.directory.name(actor),
            user,
            action,
            reason,
        };
        let recipients: BTreeSet<UserId> = c
            .members()
            .keys()
            .copied()
            .chain(std::iter::once(target))
            .collect();
        self.send_to_users_versioned(recipients, &msg, v1.as_ref(), false);
    }
}
