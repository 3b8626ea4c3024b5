//! Moderation requests (version 2): roles, kick, ban, unban, mute; and the `Moderated`
//! notices they cause, each also written to the audit log.
//!
//! An actor must outrank the user acted on (operator > owner > moderator > member): a
//! moderator cannot kick another moderator or the owner, and nobody acts on themselves.

use std::collections::BTreeSet;

use chat_proto::{
    AuditEntry, ErrorCode, ErrorReply, MemberEvent, ModAction, Reply, RequestId, Role,
    ServerMessage,
};

use super::moderation::Rank;
use super::output::{After, IoRequest, AUDIT_SERVER};
use super::Hub;
use crate::names;
use crate::types::*;

/// Longest moderation reason, in bytes.
pub const MAX_REASON_LEN: usize = 256;

fn forbidden(text: impl Into<String>) -> ErrorReply {
    ErrorReply::new(ErrorCode::Forbidden, text)
}

/// A moderation or redaction reason as stored: normalised like message text, trimmed, at most
/// [`MAX_REASON_LEN`] bytes.
pub(super) fn checked_reason(text: &str) -> Result<String, ErrorReply> {
    let reason = names::text(text).trim().to_owned();
    if reason.len() > MAX_REASON_LEN {
        return Err(ErrorReply::new(
            ErrorCode::TooLarge,
            format!("a reason is at most {MAX_REASON_LEN} bytes"),
        ));
    }
    Ok(reason)
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
        let reason = checked_reason(reason)?;
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
            ModAction::Kicked | ModAction::Redacted | ModAction::Disabled | ModAction::Enabled => {}
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

    /// A server operator disables or enables the account `name`.
    pub(super) fn set_disabled(
        &mut self,
        session: SessionId,
        request: RequestId,
        actor: UserId,
        name: &str,
        disabled: bool,
        now: Now,
    ) -> Result<(), ErrorReply> {
        if !self.moderation.is_operator(actor) {
            return Err(forbidden("only a server operator may do that"));
        }
        let target = self.directory.find_user(name)?;
        if self.moderation.is_operator(target) {
            return Err(forbidden(
                "server operators cannot be disabled: remove the operator flag first \
                 (chat-server admin deop)",
            ));
        }
        let Some(write) = self.moderation.set_disabled(target, disabled) else {
            // Already so: nothing to store or audit.
            self.reply(session, request, Reply::Done);
            return Ok(());
        };
        let action = if disabled {
            ModAction::Disabled
        } else {
            ModAction::Enabled
        };
        let audit = Write::Audit(AuditRecord {
            conv: AUDIT_SERVER,
            actor,
            target,
            action,
            reason: String::new(),
            at: now.wall,
        });
        let after = After::Disabled {
            reply: (session, request),
            user: target,
            disabled,
        };
        self.out.persist(vec![write, audit], after);
        Ok(())
    }

    /// An account change is stored: reply, and close the disabled user's connections.
    pub(super) fn disabled(
        &mut self,
        (session, request): (SessionId, RequestId),
        user: UserId,
        disabled: bool,
        now: Now,
    ) {
        self.reply(session, request, Reply::Done);
        if disabled {
            self.close_disabled(user, now);
        }
    }

    /// Closes every session of `user`, whose account was disabled.
    pub(super) fn close_disabled(&mut self, user: UserId, now: Now) {
        for session in self.sessions.of_user(user).to_vec() {
            let error = ErrorReply::new(
                ErrorCode::Forbidden,
                "this account was disabled by a server operator",
            );
            self.close(session, Some(error), now);
        }
    }

    /// Reads a page of the audit log of `room` (its moderators, owner and server operators)
    /// or, with `None`, the server-wide log (server operators).
    pub(super) fn audit_log(
        &mut self,
        session: SessionId,
        request: RequestId,
        user: UserId,
        room: Option<&str>,
        before: Option<u64>,
        limit: u16,
    ) -> Result<(), ErrorReply> {
        let conv = match room {
            None if self.moderation.is_operator(user) => AUDIT_SERVER,
            None => return Err(forbidden("only a server operator may read the server log")),
            Some(room) => {
                let name = names::room(room)?;
                let Some(conv) = self.directory.room_id(&name) else {
                    return Err(ErrorReply::new(
                        ErrorCode::NoSuchRoom,
                        format!("no room #{name}"),
                    ));
                };
                let rank = self.moderation.rank(conv, user);
                let member = self.directory.is_member(conv, user);
                if rank < Rank::Moderator || (rank < Rank::Operator && !member) {
                    return Err(forbidden(format!(
                        "only the moderators of #{name} may read its log"
                    )));
                }
                conv
            }
        };
        let page = usize::from(limit.clamp(1, self.config.max_history_page));
        self.out.io(IoRequest::LoadAudit {
            session,
            request,
            conv,
            before,
            limit: page + 1,
        });
        Ok(())
    }

    /// A page of the audit log was read: reply with names.
    pub(super) fn audit_loaded(
        &mut self,
        session: SessionId,
        request: RequestId,
        mut records: Vec<(u64, AuditRecord)>,
        limit: usize,
    ) {
        if !self.sessions.contains(session) {
            return;
        }
        let more = super::output::one_page(&mut records, limit);
        let entries: Vec<AuditEntry> = records
            .into_iter()
            .map(|(position, r)| AuditEntry {
                position,
                room: match self.directory.conv(r.conv).map(|c| &c.kind) {
                    Some(ConvKind::Room { name, .. }) => name.clone(),
                    _ => String::new(),
                },
                by: self.directory.name(r.actor),
                user: self.directory.name(r.target),
                action: r.action,
                reason: r.reason,
                at: r.at,
            })
            .collect();
        self.out
            .reply_fitting(session, request, entries, |entries, truncated| {
                Reply::AuditLog {
                    entries,
                    more: more || truncated,
                }
            });
    }
}
