//! Read markers and unread counts (protocol version 2).
//!
//! A marker is set explicitly (`MarkRead`), stored before it is confirmed, and told to the
//! user's other sessions (`ReadMarker`). Unread messages are counted by storage over an index,
//! at most `unread_cap` per conversation ([`IoRequest::CountUnread`]): at a version-2 login
//! (sent as `Unread` before the backlog, counting up to the device's position, so that every
//! message the session receives afterwards is new to it) and for `RoomList`.

use chat_proto::{
    ErrorCode, ErrorReply, Reply, RequestId, RoomEntry, ServerMessage, Target, UnreadCount,
};
use rustc_hash::FxHashMap;

use super::output::{After, IoRequest, UnreadFor};
use super::Hub;
use crate::types::*;

impl Hub {
    /// The conversation `target` names for `user`, if `user` is a member of it.
    fn conversation(&self, user: UserId, target: &Target) -> Result<ConvId, ErrorReply> {
        match target {
            Target::Room(room) => self.directory.member_room(room, user),
            Target::User(name) => {
                let other = self.directory.find_user(name)?;
                self.directory
                    .direct(user, other)
                    .filter(|&conv| self.directory.is_member(conv, user))
                    .ok_or_else(|| {
                        ErrorReply::new(
                            ErrorCode::NotAMember,
                            format!("no conversation with {name}"),
                        )
                    })
            }
        }
    }

    /// Where `user`'s unread messages of `conv` start: after the marker, or after joining.
    pub(super) fn read_from(&self, user: UserId, conv: ConvId) -> MessageId {
        let since = self
            .directory
            .conv(conv)
            .and_then(|c| c.members().get(&user).copied())
            .unwrap_or_default();
        self.markers.get(user, conv).max(since)
    }

    /// How `user` names `conv`: the room, or the other user of a direct conversation.
    pub(super) fn target_for(&self, conv: ConvId, user: UserId) -> Option<Target> {
        match &self.directory.conv(conv)?.kind {
            ConvKind::Room { name, .. } => Some(Target::Room(name.clone())),
            &ConvKind::Direct { a, b } => Some(Target::User(self.directory.name(if user == a {
                b
            } else {
                a
            }))),
        }
    }

    /// `MarkRead`: moves the marker forward (a position past the newest message stops at
    /// it); a position not forward is answered `Done` and changes nothing.
    pub(super) fn mark_read(
        &mut self,
        session: SessionId,
        request: RequestId,
        user: UserId,
        target: &Target,
        up_to: MessageId,
    ) -> Result<(), ErrorReply> {
        let conv = self.conversation(user, target)?;
        let up_to = up_to.min(self.delivery.last_message());
        let write = if up_to > self.read_from(user, conv) {
            self.markers.advance(user, conv, up_to)
        } else {
            None
        };
        let Some(write) = write else {
            // Nothing moves; still answered in order behind the writes before it.
            self.out
                .persist(Vec::new(), After::Reply(session, request, Reply::Done));
            return Ok(());
        };
        self.out.persist(
            vec![write],
            After::MarkedRead {
                reply: (session, request),
                user,
                conv,
                up_to,
            },
        );
        Ok(())
    }

    /// A marker is stored: confirm it, and tell the user's other version-2 sessions.
    pub(super) fn marker_stored(
        &mut self,
        (session, request): (SessionId, RequestId),
        user: UserId,
        conv: ConvId,
        up_to: MessageId,
    ) {
        self.reply(session, request, Reply::Done);
        self.tell_read_marker(user, conv, up_to, session);
    }

    /// The conversations whose unread messages a login counts, each with where its unread
    /// messages start: the rooms, then the newest direct conversations, at most
    /// `max_unread_convs` in all.
    fn unread_convs(&self, user: UserId) -> Vec<(ConvId, MessageId)> {
        let (mut rooms, mut directs): (Vec<_>, Vec<_>) = self
            .directory
            .convs_of(user)
            .map(|(id, c)| (id, c.is_room()))
            .partition(|&(_, room)| room);
        directs.reverse();
        rooms.append(&mut directs);
        rooms
            .into_iter()
            .take(self.config.max_unread_convs)
            .map(|(conv, _)| (conv, self.read_from(user, conv)))
            .collect()
    }

    /// A login's reply went out: a version-2 session gets its unread counts first, then the
    /// backlog replay starts.
    pub(super) fn start_replay(&mut self, session: SessionId) {
        let (Some(online), true) = (
            self.sessions.online(session).copied(),
            self.sessions.version(session) >= 2,
        ) else {
            return self.load_backlog(session);
        };
        let convs = self.unread_convs(online.user);
        if convs.is_empty() {
            // Nothing to count: no read needed.
            self.out
                .send(session, &ServerMessage::Unread(Vec::new()), false);
            return self.load_backlog(session);
        }
        let Some(stream) = self.delivery.stream_mut(session) else {
            return;
        };
        stream.counting = true;
        let up_to = stream.sent_upto;
        self.out.io(IoRequest::CountUnread {
            session,
            user: online.user,
            convs,
            up_to: Some(up_to),
            cap: self.config.unread_cap,
            purpose: UnreadFor::Login,
        });
    }

    /// Unread counts arrived.
    pub(super) fn unread_counted(
        &mut self,
        session: SessionId,
        user: UserId,
        purpose: UnreadFor,
        counts: Vec<UnreadTally>,
    ) {
        match purpose {
            UnreadFor::Login => {
                if self.sessions.online(session).map(|o| o.user) != Some(user) {
                    return;
                }
                let Some(stream) = self.delivery.stream_mut(session) else {
                    return;
                };
                if !std::mem::take(&mut stream.counting) {
                    return;
                }
                let mut entries: Vec<UnreadCount> = counts
                    .iter()
                    .filter_map(|tally| {
                        Some(UnreadCount {
                            target: self.target_for(tally.conv, user)?,
                            read_up_to: self.read_from(user, tally.conv),
                            unread: tally.count,
                            latest: tally.latest,
                        })
                    })
                    .collect();
                // What has unread messages first: if the list must be cut to fit a frame,
                // the quiet conversations go.
                entries.sort_by_key(|e| e.unread == 0);
                self.out
                    .send_fitting(session, entries, ServerMessage::Unread);
                self.load_backlog(session);
            }
            // Answered while the connection lives, as every request is.
            UnreadFor::RoomList(request) if self.sessions.contains(session) => {
                let unread: FxHashMap<ConvId, u32> =
                    counts.iter().map(|t| (t.conv, t.count)).collect();
                self.reply_room_list(session, request, user, &unread);
            }
            UnreadFor::RoomList(_) => {}
        }
    }

    /// `RoomList`: the rooms with their topics and, for those the user is in, the unread
    /// counts (read from storage first).
    pub(super) fn room_list(&mut self, session: SessionId, request: RequestId, user: UserId) {
        let convs: Vec<(ConvId, MessageId)> = self
            .directory
            .convs_of(user)
            .filter(|(_, c)| c.is_room())
            .map(|(conv, _)| (conv, self.read_from(user, conv)))
            .collect();
        if convs.is_empty() {
            return self.reply_room_list(session, request, user, &FxHashMap::default());
        }
        self.out.io(IoRequest::CountUnread {
            session,
            user,
            convs,
            up_to: None,
            cap: self.config.unread_cap,
            purpose: UnreadFor::RoomList(request),
        });
    }

    fn reply_room_list(
        &mut self,
        session: SessionId,
        request: RequestId,
        user: UserId,
        unread: &FxHashMap<ConvId, u32>,
    ) {
        let mut rooms: Vec<RoomEntry> = self
            .directory
            .room_ids()
            .filter_map(|conv| {
                let info = self.directory.room_info(conv, user)?;
                let topic = self.directory.conv(conv)?.topic.clone();
                let unread = if info.joined {
                    unread.get(&conv).copied().unwrap_or(0)
                } else {
                    0
                };
                Some(RoomEntry {
                    info,
                    topic,
                    unread,
                })
            })
            .collect();
        rooms.sort_by(|a, b| a.info.name.cmp(&b.info.name));
        self.out
            .reply_fitting(session, request, rooms, |rooms, _| Reply::RoomList(rooms));
    }
}
