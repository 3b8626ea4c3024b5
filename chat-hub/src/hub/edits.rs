//! Edits, deletions and redactions (protocol version 2).
//!
//! The message a change is for lives in storage, not in the hub: a change is checked once it
//! is read ([`IoRequest::LoadMessage`]). A change is itself stored as a row with the next
//! message id ([`MessageKind::Edit`] / [`MessageKind::Delete`]) and delivered like a message,
//! live and in the backlog, so a device that already has the original gets the change and
//! cumulative acknowledgements keep working. Two guards keep a check from acting on a stale
//! read: one change per message may be in flight (a second is refused with `RateLimited`),
//! and a read issued before some change completed is read again.

use chat_proto::{ErrorCode, ErrorReply, ModAction, Reply, RequestId};

use super::moderate::checked_reason;
use super::moderation::Rank;
use super::output::{After, ChangeWhat, IoRequest, PendingChange};
use super::Hub;
use crate::types::*;

/// How long a client should wait before retrying a change refused while another change to the
/// same message is in flight.
const CHANGE_RETRY_MS: u32 = 100;

fn no_such_message() -> ErrorReply {
    ErrorReply::new(ErrorCode::BadRequest, "no such message")
}

impl Hub {
    /// An edit, deletion or redaction: checks what needs no read, then reads the message.
    pub(super) fn change_message(
        &mut self,
        session: SessionId,
        request: RequestId,
        target: MessageId,
        what: ChangeWhat,
    ) -> Result<(), ErrorReply> {
        let what = match what {
            ChangeWhat::Edit(text) => ChangeWhat::Edit(self.message_text(text)?),
            ChangeWhat::Redact(reason) => ChangeWhat::Redact(checked_reason(&reason)?),
            ChangeWhat::Delete => ChangeWhat::Delete,
        };
        let change = PendingChange {
            request,
            target,
            what,
            seen: self.delivery.changes_completed(),
        };
        self.out.io(IoRequest::LoadMessage { session, change });
        Ok(())
    }

    /// The message a change is for was read: check the change and store it.
    pub(super) fn message_loaded(
        &mut self,
        session: SessionId,
        change: PendingChange,
        message: Option<StoredMessage>,
        now: Now,
    ) {
        let request = change.request;
        if let Err(error) = self.check_change(session, change, message, now) {
            self.fail(session, request, error);
        }
    }

    fn check_change(
        &mut self,
        session: SessionId,
        mut change: PendingChange,
        message: Option<StoredMessage>,
        now: Now,
    ) -> Result<(), ErrorReply> {
        let Some(online) = self.sessions.online(session).copied() else {
            return Ok(());
        };
        let user = online.user;
        if self.delivery.change_in_flight(change.target) {
            let code = ErrorCode::RateLimited {
                retry_after_ms: CHANGE_RETRY_MS,
            };
            return Err(ErrorReply::new(
                code,
                "this message is being changed; retry",
            ));
        }
        if change.seen != self.delivery.changes_completed() {
            // A change completed since the read was issued: read again.
            change.seen = self.delivery.changes_completed();
            self.out.io(IoRequest::LoadMessage { session, change });
            return Ok(());
        }
        // A message the user cannot see is answered as one that does not exist.
        // (A server operator sees every room's messages, to redact them.)
        let Some(message) = message.filter(|m| {
            let Some(c) = self.directory.conv(m.conv) else {
                return false;
            };
            let operator = c.is_room() && self.moderation.rank(m.conv, user) == Rank::Operator;
            m.kind.is_message()
                && (operator || c.members().get(&user).is_some_and(|&since| since < m.id))
        }) else {
            return Err(no_such_message());
        };
        if message.kind == MessageKind::Deleted {
            return Err(ErrorReply::new(
                ErrorCode::BadRequest,
                "that message was deleted",
            ));
        }
        let author = message.sender == user;
        let (kind, text, new_text) = match change.what {
            ChangeWhat::Edit(text) => {
                if !author {
                    return Err(ErrorReply::new(
                        ErrorCode::Forbidden,
                        "only its author edits a message",
                    ));
                }
                if self.moderation.is_muted(message.conv, user) {
                    return Err(ErrorReply::new(
                        ErrorCode::Forbidden,
                        "you are muted here: you may not edit your messages",
                    ));
                }
                let kind = MessageKind::Edit { target: message.id };
                (kind, text.clone(), Some(text))
            }
            ChangeWhat::Delete => {
                if !author {
                    return Err(ErrorReply::new(
                        ErrorCode::Forbidden,
                        "only its author deletes a message; moderators redact",
                    ));
                }
                let kind = MessageKind::Delete {
                    target: message.id,
                    redacted: false,
                };
                (kind, String::new(), None)
            }
            ChangeWhat::Redact(reason) => {
                let is_room = self
                    .directory
                    .conv(message.conv)
                    .is_some_and(|c| c.is_room());
                if !is_room || self.moderation.rank(message.conv, user) < Rank::Moderator {
                    return Err(ErrorReply::new(
                        ErrorCode::Forbidden,
                        "only a moderator of the room redacts a message",
                    ));
                }
                let kind = MessageKind::Delete {
                    target: message.id,
                    redacted: true,
                };
                (kind, reason, None)
            }
        };
        let row = StoredMessage {
            id: UNNUMBERED,
            conv: message.conv,
            sender: user,
            device: online.device,
            client_msg_id: ClientMsgId(0),
            sent_at: now.wall,
            text,
            kind,
        };
        let mut writes = vec![
            Write::InsertMessage(row.clone()),
            Write::ChangeMessage {
                target: message.id,
                text: new_text,
            },
        ];
        if let MessageKind::Delete { redacted: true, .. } = kind {
            writes.push(Write::Audit(AuditRecord {
                conv: message.conv,
                actor: user,
                target: message.sender,
                action: ModAction::Redacted,
                reason: row.text.clone(),
                at: now.wall,
            }));
        }
        self.delivery.change_started(message.id);
        self.out
            .persist(writes, After::Changed(session, change.request, row));
        Ok(())
    }

    /// A change is stored: confirm it and deliver it like a message.
    pub(super) fn change_stored(
        &mut self,
        session: SessionId,
        request: RequestId,
        row: StoredMessage,
    ) {
        self.delivery.committed(row.id);
        if let MessageKind::Edit { target } | MessageKind::Delete { target, .. } = row.kind {
            self.delivery.change_completed(target);
        }
        let reply = Reply::Sent {
            id: row.id,
            sent_at: row.sent_at,
        };
        self.reply(session, request, reply);
        self.deliver(&row, session);
    }
}
