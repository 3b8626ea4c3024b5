//! Messages: accepting a send, fanning a stored message out, replaying the backlog at login,
//! acknowledgements and history.
//!
//! A message is delivered only after it is durable ([`After::Message`]). A session that is
//! replaying its backlog gets no live messages; if one arrived meanwhile (`missed`), the backlog
//! is loaded once more before `CaughtUp`, so nothing falls between the replay and live delivery.
//! `sent_upto` keeps a message from being sent twice on one connection.

use chat_proto::{
    ChatMessage, ClientMsgId, ErrorCode, ErrorReply, Reply, RequestId, ServerMessage, Target,
};

use super::presence::TypingKey;
use super::{After, Hub, Output, Phase};
use crate::types::*;

impl Hub {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn send_message(
        &mut self,
        session: SessionId,
        request: RequestId,
        user: UserId,
        target: Target,
        client_msg_id: ClientMsgId,
        text: String,
        now: UnixMillis,
    ) -> Result<(), ErrorReply> {
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
        let mut writes = Vec::new();
        let (conv, key) = match &target {
            Target::Room(room) => {
                let conv = self.member_room(room, user)?;
                (conv, TypingKey::Room(user, conv))
            }
            Target::User(name) => {
                let other = self.find_user(name)?;
                let conv = self.direct_conv(user, other, now, &mut writes);
                (conv, TypingKey::User(user, other))
            }
        };
        self.stop_typing(key, false);
        let Some(device) = self.online_of(session).map(|o| o.device) else {
            return Ok(());
        };
        let Some(u) = self.users.get_mut(&user) else {
            return Ok(());
        };
        if let Some((id, sent_at)) = u.recent.get(client_msg_id) {
            // A resend: answer once the original is durable (persists complete in order).
            self.persist(
                writes,
                After::Reply(session, request, Reply::Sent { id, sent_at }),
            );
            return Ok(());
        }
        self.next.message += 1;
        let message = StoredMessage {
            id: MessageId(self.next.message),
            conv,
            sender: user,
            device,
            client_msg_id,
            sent_at: now,
            text,
        };
        u.recent.insert(client_msg_id, (message.id, now));
        writes.push(Write::InsertMessage(message.clone()));
        self.persist(writes, After::Message(session, request, message));
        Ok(())
    }

    /// A message is durable: confirm it to its sender and deliver it.
    pub(super) fn message_stored(
        &mut self,
        session: SessionId,
        request: RequestId,
        message: StoredMessage,
        duplicate: Option<(MessageId, UnixMillis)>,
    ) {
        if let Some((id, sent_at)) = duplicate {
            if let Some(u) = self.users.get_mut(&message.sender) {
                u.recent.insert(message.client_msg_id, (id, sent_at));
            }
            return self.reply(session, request, Reply::Sent { id, sent_at });
        }
        let reply = Reply::Sent {
            id: message.id,
            sent_at: message.sent_at,
        };
        self.reply(session, request, reply);
        self.deliver(&message, session);
    }

    /// Sends a stored message to every live session of every member who can see it, except
    /// the sending session. Encoded once.
    fn deliver(&mut self, message: &StoredMessage, sender: SessionId) {
        let Some(frame) = self.encode(&ServerMessage::Message(self.chat_message(message))) else {
            return;
        };
        let Self {
            convs,
            users,
            sessions,
            outputs,
            ..
        } = self;
        let Some(conv) = convs.get(&message.conv) else {
            return;
        };
        for (member, since) in &conv.members {
            if message.id <= *since {
                continue;
            }
            let Some(u) = users.get(member) else {
                continue;
            };
            for &session in &u.sessions {
                if session == sender {
                    continue;
                }
                let Some(Phase::Online(online)) = sessions.get_mut(&session).map(|s| &mut s.phase)
                else {
                    continue;
                };
                if !online.live {
                    online.missed = true;
                } else if message.id > online.sent_upto {
                    online.sent_upto = message.id;
                    outputs.push_back(Output::Send {
                        session,
                        frame: frame.clone(),
                        droppable: false,
                    });
                }
            }
        }
    }

    /// A message as the wire shows it.
    pub(super) fn chat_message(&self, message: &StoredMessage) -> ChatMessage {
        let target = match self.convs.get(&message.conv).map(|c| &c.kind) {
            Some(ConvKind::Room { name, .. }) => Target::Room(name.clone()),
            Some(&ConvKind::Direct { a, b }) => {
                Target::User(self.user_name(if message.sender == a { b } else { a }))
            }
            None => Target::Room(String::new()),
        };
        ChatMessage {
            id: message.id,
            from: self.user_name(message.sender),
            target,
            sent_at: message.sent_at,
            client_msg_id: message.client_msg_id,
            text: message.text.clone(),
        }
    }

    /// A batch of the backlog arrived: send it, then load more or declare the session live.
    ///
    /// A batch is cut at half the connection's soft queue bound (at least one message), so a
    /// replay never overflows the queue; the engine loads the next batch once the connection
    /// has taken it.
    pub(super) fn backlog(&mut self, session: SessionId, messages: Vec<StoredMessage>) {
        let budget = self.config.backlog_bytes();
        let mut full = messages.len() >= self.config.backlog_batch;
        let mut frames = Vec::new();
        let mut bytes = 0;
        for m in &messages {
            let Some(frame) = self.encode(&ServerMessage::Message(self.chat_message(m))) else {
                continue;
            };
            bytes += frame.len();
            if bytes > budget && !frames.is_empty() {
                full = true;
                break;
            }
            frames.push((m.id, frame));
        }
        let limit = self.config.backlog_batch;
        let caught_up = self.encode(&ServerMessage::CaughtUp);
        let Some(online) = self.online_mut(session) else {
            return;
        };
        if online.live {
            return;
        }
        let mut sends = Vec::new();
        for (id, frame) in frames {
            if id > online.sent_upto {
                online.sent_upto = id;
                sends.push(frame);
            }
        }
        let more = if full || online.missed {
            online.missed = false;
            Some(Output::LoadBacklog {
                session,
                user: online.user,
                device: online.device,
                after: online.sent_upto,
                limit,
            })
        } else {
            online.live = true;
            None
        };
        for frame in sends {
            self.send_frame(session, frame, false);
        }
        match more {
            Some(load) => self.outputs.push_back(load),
            None => {
                if let Some(frame) = caught_up {
                    self.send_frame(session, frame, false);
                }
            }
        }
    }

    /// A cumulative acknowledgement: move the device's position (never past what this
    /// connection was sent, never back).
    pub(super) fn ack(&mut self, session: SessionId, up_to: MessageId, now: UnixMillis) {
        let Some(online) = self.online_of(session) else {
            return;
        };
        let (user, device, position) = (online.user, online.device, up_to.min(online.sent_upto));
        let Some(d) = self
            .users
            .get_mut(&user)
            .and_then(|u| u.devices.iter_mut().find(|d| d.id == device))
        else {
            return;
        };
        if position > d.cursor {
            d.cursor = position;
            self.dirty_cursors.insert((user, device));
            if self.timers.cursor_flush.is_none() {
                self.timers.cursor_flush = Some(now + self.config.cursor_flush_ms);
            }
        }
    }

    /// Persists every acknowledged position not yet written.
    pub(super) fn flush_cursors(&mut self) {
        self.timers.cursor_flush = None;
        let dirty = std::mem::take(&mut self.dirty_cursors);
        let writes: Vec<Write> = dirty
            .into_iter()
            .filter_map(|(user, device)| {
                let d = self
                    .users
                    .get(&user)?
                    .devices
                    .iter()
                    .find(|d| d.id == device)?;
                Some(Write::SetDevice {
                    id: d.id,
                    user,
                    name: d.name.clone(),
                    cursor: d.cursor,
                    last_seen: d.last_seen,
                })
            })
            .collect();
        if !writes.is_empty() {
            self.persist(writes, After::Nothing);
        }
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
            Target::Room(room) => self.member_room(room, user)?,
            Target::User(name) => {
                let other = self.find_user(name)?;
                let Some(&conv) = self.directs.get(&(user.min(other), user.max(other))) else {
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
        self.outputs.push_back(Output::LoadHistory {
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
        let page = limit.saturating_sub(1);
        let more = messages.len() > page;
        messages.truncate(page);
        let messages: Vec<ChatMessage> = messages.iter().map(|m| self.chat_message(m)).collect();
        self.reply_fitting(session, request, messages, |messages, truncated| {
            Reply::History {
                messages,
                more: more || truncated,
            }
        });
    }
}
