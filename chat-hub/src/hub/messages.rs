//! Messages: accepting a send, fanning a stored message out, replaying the backlog at login,
//! and history.
//!
//! A message is delivered only after it is durable ([`After::Message`]); a session replaying
//! its backlog gets it from the replay instead (see `delivery`).

use chat_proto::{
    ChatMessage, ClientMsgId, ErrorCode, ErrorReply, PageEntry, Reply, RequestId, ServerMessage,
    Target,
};

use super::output::{After, IoRequest};
use super::presence::TypingKey;
use super::Hub;
use crate::names;
use crate::types::*;

impl Hub {
    /// A message's text as stored, for a message and for an edit alike: normalised so control
    /// characters never reach another client (line breaks become `\n`, other controls U+FFFD;
    /// see `names::text`), not empty, at most `max_text_len` bytes.
    pub(super) fn message_text(&self, text: String) -> Result<String, ErrorReply> {
        let text = names::into_text(text);
        if text.is_empty() {
            return Err(ErrorReply::new(ErrorCode::BadRequest, "empty message"));
        }
        if text.len() > self.config.max_text_len {
            let max = self.config.max_text_len;
            return Err(ErrorReply::new(
                ErrorCode::TooLarge,
                format!("a message is at most {max} bytes"),
            ));
        }
        Ok(text)
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn send_message(
        &mut self,
        session: SessionId,
        request: RequestId,
        user: UserId,
        target: Target,
        client_msg_id: ClientMsgId,
        text: String,
        now: Now,
    ) -> Result<(), ErrorReply> {
        let text = self.message_text(text)?;
        let Some(device) = self.sessions.online(session).map(|o| o.device) else {
            return Ok(());
        };
        let mut writes = Vec::new();
        let (conv, key) = match &target {
            Target::Room(room) => {
                let conv = self.directory.member_room(room, user)?;
                if self.moderation.is_muted(conv, user) {
                    return Err(ErrorReply::new(
                        ErrorCode::Forbidden,
                        format!("you are muted in #{}", room.trim_start_matches('#')),
                    ));
                }
                (conv, TypingKey::Room(user, conv))
            }
            Target::User(name) => {
                let other = self.directory.find_user(name)?;
                let conv = self
                    .directory
                    .direct_conv(user, other, now.wall, &mut writes)?;
                (conv, TypingKey::User(user, other))
            }
        };
        self.stop_typing(key, false);
        if let Some((id, sent_at)) = self.delivery.recent(user, client_msg_id) {
            // A resend: answer once the original is durable (persists complete in order).
            let reply = Reply::Sent { id, sent_at };
            self.out
                .persist(writes, After::Reply(session, request, reply));
            return Ok(());
        }
        let message = StoredMessage {
            id: UNNUMBERED,
            conv,
            sender: user,
            device,
            client_msg_id,
            sent_at: now.wall,
            text,
            kind: MessageKind::Message,
        };
        writes.push(Write::InsertMessage(message.clone()));
        self.out
            .persist(writes, After::Message(session, request, message));
        Ok(())
    }

    /// A message is durable (numbered by storage): confirm it to its sender and deliver it.
    /// A resend that storage found to be one (`duplicate`, the original's id and time) is
    /// confirmed with the original's.
    pub(super) fn message_stored(
        &mut self,
        session: SessionId,
        request: RequestId,
        message: StoredMessage,
        duplicate: Option<(MessageId, UnixMillis)>,
    ) {
        self.delivery.committed(message.id);
        let stored = duplicate.unwrap_or((message.id, message.sent_at));
        self.delivery
            .remember(message.sender, message.client_msg_id, stored);
        if let Some((id, sent_at)) = duplicate {
            return self.reply(session, request, Reply::Sent { id, sent_at });
        }
        self.stats.messages_accepted += 1;
        let reply = Reply::Sent {
            id: message.id,
            sent_at: message.sent_at,
        };
        self.reply(session, request, reply);
        self.deliver(&message, session);
    }

    /// Sends a stored message (or change) to every live session of every member who can see
    /// it, except the sending session. Encoded once.
    pub(super) fn deliver(&mut self, message: &StoredMessage, sender: SessionId) {
        let new = self.event_of(message, 2).and_then(|m| self.out.encode(&m));
        // A message is the same event, and the same bytes, to every version; a change is
        // nothing to a version-1 session.
        let old = if message.kind.is_message() {
            new.clone()
        } else {
            None
        };
        let Some(conv) = self.directory.conv(message.conv) else {
            return;
        };
        for (&member, &since) in conv.members() {
            if message.id <= since {
                continue;
            }
            for &session in self.sessions.of_user(member) {
                if session == sender {
                    continue;
                }
                let frame = if self.sessions.version(session) >= 2 {
                    &new
                } else {
                    &old
                };
                let Some(stream) = self.delivery.stream_mut(session) else {
                    continue;
                };
                if !stream.live {
                    stream.missed = true;
                } else if message.id > stream.sent_upto {
                    stream.sent_upto = message.id;
                    if let Some(frame) = frame {
                        self.out.deliver(session, frame.clone(), message.id);
                    }
                }
            }
        }
    }

    /// The event a stored row is to a session of protocol `version` (a change is nothing to
    /// a version-1 session; a tombstone is nothing to anyone).
    fn event_of(&self, m: &StoredMessage, version: u16) -> Option<ServerMessage> {
        match m.kind {
            MessageKind::Message | MessageKind::Edited => {
                Some(ServerMessage::Message(self.chat_message(m)))
            }
            MessageKind::Deleted => None,
            _ if version < 2 => None,
            MessageKind::Edit { target } => {
                let chat = self.chat_message(m);
                Some(ServerMessage::Edited {
                    id: m.id,
                    message: target,
                    from: chat.from,
                    target: chat.target,
                    text: chat.text,
                })
            }
            MessageKind::Delete { target, redacted } => {
                let chat = self.chat_message(m);
                Some(ServerMessage::Deleted {
                    id: m.id,
                    message: target,
                    target: chat.target,
                    by: chat.from,
                    redacted,
                    reason: chat.text,
                })
            }
        }
    }

    /// A message as the wire shows it.
    pub(super) fn chat_message(&self, message: &StoredMessage) -> ChatMessage {
        let target = match self.directory.conv(message.conv).map(|c| &c.kind) {
            Some(ConvKind::Room { name, .. }) => Target::Room(name.clone()),
            Some(&ConvKind::Direct { a, b }) => {
                Target::User(self.directory.name(if message.sender == a { b } else { a }))
            }
            None => Target::Room(String::new()),
        };
        ChatMessage {
            id: message.id,
            from: self.directory.name(message.sender),
            target,
            sent_at: message.sent_at,
            client_msg_id: message.client_msg_id,
            text: message.text.clone(),
        }
    }

    /// Asks for the next backlog batch of `session`, after what it was sent.
    pub(super) fn load_backlog(&mut self, session: SessionId) {
        let (Some(online), Some(stream)) =
            (self.sessions.online(session), self.delivery.stream(session))
        else {
            return;
        };
        self.out.io(IoRequest::LoadBacklog {
            session,
            user: online.user,
            device: online.device,
            after: stream.sent_upto,
            limit: self.config.backlog_batch,
        });
    }

    /// A batch of the backlog arrived: send it, then load more or declare the session live.
    ///
    /// A batch is cut at half the connection's soft queue bound (at least one message), so a
    /// replay never overflows the queue; the driver loads the next batch once the connection
    /// has taken it.
    pub(super) fn backlog(&mut self, session: SessionId, messages: Vec<StoredMessage>) {
        let budget = self.config.backlog_bytes();
        let mut full = messages.len() >= self.config.backlog_batch;
        let mut frames = Vec::new();
        let mut bytes = 0;
        let version = self.sessions.version(session);
        for m in &messages {
            let Some(frame) = self.event_of(m, version).and_then(|e| self.out.encode(&e)) else {
                // Nothing for this session, but it moves past it.
                frames.push((m.id, None));
                continue;
            };
            bytes += frame.len();
            if bytes > budget && !frames.is_empty() {
                full = true;
                break;
            }
            frames.push((m.id, Some(frame)));
        }
        let Some(stream) = self.delivery.stream_mut(session) else {
            return;
        };
        if stream.live {
            return;
        }
        let mut sends = Vec::new();
        for (id, frame) in frames {
            if id > stream.sent_upto {
                stream.sent_upto = id;
                sends.extend(frame);
            }
        }
        let more = full || stream.missed;
        stream.missed = false;
        stream.live = !more;
        // A login's replay ends in `CaughtUp`; a lagging reader's catch-up ends silently.
        let caught_up = !more && !std::mem::take(&mut stream.lagging);
        for frame in sends {
            self.out.send_frame(session, frame, false);
        }
        if more {
            self.load_backlog(session);
        } else if caught_up {
            self.out.send(session, &ServerMessage::CaughtUp, false);
        }
    }

    /// `session` could not take the live message `first_missed` (nor, therefore, any after
    /// it): it catches up from storage from there, paced by its reader, then goes live again.
    pub(super) fn lagging(&mut self, session: SessionId, first_missed: MessageId) {
        let Some(stream) = self.delivery.stream_mut(session) else {
            return;
        };
        if !stream.live {
            return;
        }
        stream.live = false;
        stream.missed = false;
        stream.lagging = true;
        stream.sent_upto = stream
            .sent_upto
            .min(MessageId(first_missed.0.saturating_sub(1)));
        self.load_backlog(session);
    }

    pub(super) fn history(
        &mut self,
        session: SessionId,
        request: RequestId,
        user: UserId,
        target: &Target,
        before: Option<MessageId>,
        limit: u16,
    ) -> Result<(), ErrorReply> {
        let conv = match target {
            Target::Room(room) => self.directory.member_room(room, user)?,
            Target::User(name) => {
                let other = self.directory.find_user(name)?;
                let Some(conv) = self.directory.direct(user, other) else {
                    let reply = Reply::History {
                        messages: Vec::new(),
                        more: false,
                    };
                    self.reply(session, request, reply);
                    return Ok(());
                };
                conv
            }
        };
        let page = usize::from(limit.clamp(1, self.config.max_history_page));
        self.out.io(IoRequest::LoadHistory {
            session,
            request,
            conv,
            before,
            limit: page + 1,
        });
        Ok(())
    }

    /// A history page arrived (`limit` is the load's limit: one more than the page, to learn
    /// whether older messages exist).
    pub(super) fn history_loaded(
        &mut self,
        session: SessionId,
        request: RequestId,
        mut messages: Vec<StoredMessage>,
        limit: usize,
    ) {
        if !self.sessions.contains(session) {
            return;
        }
        let more = super::output::one_page(&mut messages, limit);
        if self.sessions.version(session) >= 2 {
            let entries: Vec<PageEntry> = messages
                .iter()
                .map(|m| PageEntry {
                    message: self.chat_message(m),
                    edited: m.kind == MessageKind::Edited,
                    deleted: m.kind == MessageKind::Deleted,
                })
                .collect();
            self.out
                .reply_fitting(session, request, entries, |messages, truncated| {
                    Reply::Page {
                        messages,
                        more: more || truncated,
                    }
                });
            return;
        }
        // A version-1 page leaves tombstones out.
        let messages: Vec<ChatMessage> = messages
            .iter()
            .filter(|m| m.kind != MessageKind::Deleted)
            .map(|m| self.chat_message(m))
            .collect();
        self.out
            .reply_fitting(session, request, messages, |messages, truncated| {
                Reply::History {
                    messages,
                    more: more || truncated,
                }
            });
    }
}
