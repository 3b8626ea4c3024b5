//! Rooms and the directory: create, join, leave, invite, listings, display names, and the
//! direct conversations between two users.

use std::collections::BTreeMap;

use chat_proto::{
    encode, CodecError, ErrorCode, ErrorReply, MemberEvent, Reply, RequestId, RoomInfo,
    ServerMessage, UserStatus,
};

use super::{After, Conv, Hub};
use crate::names;
use crate::types::*;

fn not_a_member(room: &str) -> ErrorReply {
    ErrorReply::new(ErrorCode::NotAMember, format!("you are not in #{room}"))
}

impl Hub {
    /// Creates a room in memory and returns it with its write.
    pub(super) fn create_room(
        &mut self,
        name: String,
        invite_only: bool,
        now: UnixMillis,
    ) -> (ConvId, Write) {
        self.next.conv += 1;
        let id = ConvId(self.next.conv);
        let kind = ConvKind::Room {
            name: name.clone(),
            invite_only,
        };
        self.rooms.insert(name, id);
        self.convs.insert(
            id,
            Conv {
                kind: kind.clone(),
                members: BTreeMap::new(),
            },
        );
        let write = Write::CreateConv {
            id,
            kind,
            created_at: now,
        };
        (id, write)
    }

    /// Adds `user` to `conv` in memory (seeing messages from now on) and returns the write.
    pub(super) fn add_member(&mut self, conv: ConvId, user: UserId) -> Write {
        let since = MessageId(self.next.message);
        if let Some(c) = self.convs.get_mut(&conv) {
            c.members.insert(user, since);
            if let Some(u) = self.users.get_mut(&user) {
                if u.convs.insert(conv) && matches!(c.kind, ConvKind::Room { .. }) {
                    u.rooms += 1;
                }
            }
        }
        Write::AddMember { conv, user, since }
    }

    /// The direct conversation of `a` and `b`, created (with its writes pushed) if new.
    pub(super) fn direct_conv(
        &mut self,
        a: UserId,
        b: UserId,
        now: UnixMillis,
        writes: &mut Vec<Write>,
    ) -> ConvId {
        let key = (a.min(b), a.max(b));
        if let Some(&conv) = self.directs.get(&key) {
            return conv;
        }
        self.next.conv += 1;
        let id = ConvId(self.next.conv);
        let kind = ConvKind::Direct { a: key.0, b: key.1 };
        self.directs.insert(key, id);
        self.convs.insert(
            id,
            Conv {
                kind: kind.clone(),
                members: BTreeMap::new(),
            },
        );
        writes.push(Write::CreateConv {
            id,
            kind,
            created_at: now,
        });
        writes.push(self.add_member(id, key.0));
        if key.1 != key.0 {
            writes.push(self.add_member(id, key.1));
        }
        id
    }

    /// The room named `room` as `user` may see it: invite-only rooms are hidden from
    /// non-members.
    pub(super) fn find_room(
        &self,
        room: &str,
        user: UserId,
    ) -> Result<(ConvId, String), ErrorReply> {
        let name = names::room(room)?;
        let no_such_room = || ErrorReply::new(ErrorCode::NoSuchRoom, format!("no room #{name}"));
        let conv = *self.rooms.get(&name).ok_or_else(no_such_room)?;
        let visible = self.convs.get(&conv).is_some_and(|c| {
            c.members.contains_key(&user)
                || matches!(
                    c.kind,
                    ConvKind::Room {
                        invite_only: false,
                        ..
                    }
                )
        });
        if visible {
            Ok((conv, name))
        } else {
            Err(no_such_room())
        }
    }

    /// The room named `room` if `user` is a member of it.
    pub(super) fn member_room(&self, room: &str, user: UserId) -> Result<ConvId, ErrorReply> {
        let (conv, name) = self.find_room(room, user)?;
        if self.is_member(conv, user) {
            Ok(conv)
        } else {
            Err(not_a_member(&name))
        }
    }

    fn is_member(&self, conv: ConvId, user: UserId) -> bool {
        self.convs
            .get(&conv)
            .is_some_and(|c| c.members.contains_key(&user))
    }

    fn check_room_quota(&self, user: UserId) -> Result<(), ErrorReply> {
        let max = self.config.max_rooms_per_user;
        if self.users.get(&user).is_some_and(|u| u.rooms >= max) {
            let text = format!("a user may be in at most {max} rooms");
            return Err(ErrorReply::new(ErrorCode::TooManyRooms, text));
        }
        Ok(())
    }

    fn room_info(&self, conv: ConvId, user: UserId) -> Option<RoomInfo> {
        let c = self.convs.get(&conv)?;
        let ConvKind::Room { name, invite_only } = &c.kind else {
            return None;
        };
        Some(RoomInfo {
            name: name.clone(),
            invite_only: *invite_only,
            members: u32::try_from(c.members.len()).unwrap_or(u32::MAX),
            joined: c.members.contains_key(&user),
        })
    }

    /// Adds `user` to `conv` and persists it; replies with the room and announces the join.
    fn join_and_announce(
        &mut self,
        session: SessionId,
        request: RequestId,
        user: UserId,
        conv: ConvId,
        mut writes: Vec<Write>,
    ) {
        writes.push(self.add_member(conv, user));
        let reply = self
            .room_info(conv, user)
            .map(Reply::Room)
            .unwrap_or(Reply::Done);
        self.persist(
            writes,
            After::Member {
                reply: Some((session, request, reply)),
                conv,
                user,
                event: MemberEvent::Joined,
                also: None,
            },
        );
    }

    pub(super) fn create(
        &mut self,
        session: SessionId,
        request: RequestId,
        user: UserId,
        room: &str,
        invite_only: bool,
        now: UnixMillis,
    ) -> Result<(), ErrorReply> {
        let name = names::room(room)?;
        if self.rooms.contains_key(&name) {
            return Err(ErrorReply::new(
                ErrorCode::RoomExists,
                format!("#{name} exists"),
            ));
        }
        self.check_room_quota(user)?;
        let (conv, write) = self.create_room(name, invite_only, now);
        self.join_and_announce(session, request, user, conv, vec![write]);
        Ok(())
    }

    pub(super) fn join(
        &mut self,
        session: SessionId,
        request: RequestId,
        user: UserId,
        room: &str,
        now: UnixMillis,
    ) -> Result<(), ErrorReply> {
        let name = names::room(room)?;
        let Some(&conv) = self.rooms.get(&name) else {
            self.check_room_quota(user)?;
            let (conv, write) = self.create_room(name, false, now);
            self.join_and_announce(session, request, user, conv, vec![write]);
            return Ok(());
        };
        if self.is_member(conv, user) {
            let reply = self
                .room_info(conv, user)
                .map(Reply::Room)
                .unwrap_or(Reply::Done);
            self.reply(session, request, reply);
            return Ok(());
        }
        if matches!(
            self.convs.get(&conv).map(|c| &c.kind),
            Some(ConvKind::Room {
                invite_only: true,
                ..
            })
        ) {
            return Err(ErrorReply::new(
                ErrorCode::Forbidden,
                format!("#{name} is invite-only: ask a member to invite you"),
            ));
        }
        self.check_room_quota(user)?;
        self.join_and_announce(session, request, user, conv, Vec::new());
        Ok(())
    }

    pub(super) fn leave(
        &mut self,
        session: SessionId,
        request: RequestId,
        user: UserId,
        room: &str,
    ) -> Result<(), ErrorReply> {
        let (conv, name) = self.find_room(room, user)?;
        let Some(c) = self.convs.get_mut(&conv) else {
            return Ok(());
        };
        if c.members.remove(&user).is_none() {
            return Err(not_a_member(&name));
        }
        if let Some(u) = self.users.get_mut(&user) {
            u.convs.remove(&conv);
            u.rooms = u.rooms.saturating_sub(1);
        }
        self.persist(
            vec![Write::RemoveMember { conv, user }],
            After::Member {
                reply: Some((session, request, Reply::Done)),
                conv,
                user,
                event: MemberEvent::Left,
                also: Some(user),
            },
        );
        Ok(())
    }

    pub(super) fn invite(
        &mut self,
        session: SessionId,
        request: RequestId,
        user: UserId,
        room: &str,
        invitee: &str,
    ) -> Result<(), ErrorReply> {
        let (conv, name) = self.find_room(room, user)?;
        let invite_only = matches!(
            self.convs.get(&conv).map(|c| &c.kind),
            Some(ConvKind::Room {
                invite_only: true,
                ..
            })
        );
        if invite_only && !self.is_member(conv, user) {
            return Err(ErrorReply::new(
                ErrorCode::Forbidden,
                format!("only members may add to #{name}"),
            ));
        }
        let invitee = self.find_user(invitee)?;
        if self.is_member(conv, invitee) {
            self.reply(session, request, Reply::Done);
            return Ok(());
        }
        self.check_room_quota(invitee)?;
        let write = self.add_member(conv, invitee);
        let by = self.user_name(user);
        self.persist(
            vec![write],
            After::Member {
                reply: Some((session, request, Reply::Done)),
                conv,
                user: invitee,
                event: MemberEvent::Invited { by },
                also: None,
            },
        );
        Ok(())
    }

    pub(super) fn list_rooms(
        &mut self,
        session: SessionId,
        request: RequestId,
        user: UserId,
    ) -> Result<(), ErrorReply> {
        let mut rooms: Vec<RoomInfo> = self
            .rooms
            .values()
            .filter_map(|&conv| self.room_info(conv, user))
            .filter(|info| info.joined || !info.invite_only)
            .collect();
        rooms.sort_by(|a, b| a.name.cmp(&b.name));
        self.reply_fitting(session, request, rooms, |rooms, _| Reply::Rooms(rooms));
        Ok(())
    }

    pub(super) fn who(
        &mut self,
        session: SessionId,
        request: RequestId,
        user: UserId,
        room: &str,
    ) -> Result<(), ErrorReply> {
        let (conv, name) = self.find_room(room, user)?;
        let members = self
            .convs
            .get(&conv)
            .map(|c| self.statuses(c.members.keys().copied()))
            .unwrap_or_default();
        self.reply_fitting(session, request, members, |members, _| Reply::Members {
            room: name.clone(),
            members,
        });
        Ok(())
    }

    pub(super) fn list_users(
        &mut self,
        session: SessionId,
        request: RequestId,
    ) -> Result<(), ErrorReply> {
        let users = self.statuses(self.users.keys().copied());
        self.reply_fitting(session, request, users, |users, _| Reply::Users(users));
        Ok(())
    }

    /// Statuses of `users`, sorted by username.
    fn statuses(&self, users: impl Iterator<Item = UserId>) -> Vec<UserStatus> {
        let mut statuses: Vec<UserStatus> = users
            .filter_map(|id| {
                let u = self.users.get(&id)?;
                Some(UserStatus {
                    user: u.name.clone(),
                    display_name: u.display_name.clone(),
                    online: self.is_online(id),
                })
            })
            .collect();
        statuses.sort_by(|a, b| a.user.cmp(&b.user));
        statuses
    }

    pub(super) fn set_display_name(
        &mut self,
        session: SessionId,
        request: RequestId,
        user: UserId,
        display_name: String,
    ) -> Result<(), ErrorReply> {
        names::display_name(&display_name)?;
        if let Some(u) = self.users.get_mut(&user) {
            u.display_name.clone_from(&display_name);
        }
        let write = Write::SetDisplayName { user, display_name };
        self.persist(vec![write], After::Reply(session, request, Reply::Done));
        Ok(())
    }

    /// Tells the members of `conv` (and `also`) that `user`'s membership changed; in a room
    /// above the presence size limit, only `user` (and `also`).
    pub(super) fn announce_member(
        &mut self,
        conv: ConvId,
        user: UserId,
        event: MemberEvent,
        also: Option<UserId>,
    ) {
        let Some(c) = self.convs.get(&conv) else {
            return;
        };
        let ConvKind::Room { name, .. } = &c.kind else {
            return;
        };
        let msg = ServerMessage::Member {
            room: name.clone(),
            user: self.user_name(user),
            event,
        };
        // Like presence, notices in a large room would cost every member a frame per change:
        // there only the user concerned is told.
        let recipients: std::collections::BTreeSet<UserId> =
            if c.members.len() > self.config.presence_room_limit {
                std::iter::once(user).chain(also).collect()
            } else {
                c.members.keys().copied().chain(also).collect()
            };
        self.send_to_users(recipients, &msg, false, None);
    }

    /// Replies with a list, dropping items from its end until it fits a frame. `make` gets
    /// the items and whether any were dropped.
    pub(super) fn reply_fitting<T: Clone>(
        &mut self,
        session: SessionId,
        request: RequestId,
        mut items: Vec<T>,
        make: impl Fn(Vec<T>, bool) -> Reply,
    ) {
        let mut truncated = false;
        loop {
            let msg = ServerMessage::Ok {
                id: request,
                reply: make(items.clone(), truncated),
            };
            match encode(&msg, self.config.max_frame_len) {
                Ok(frame) => return self.send_frame(session, frame, false),
                Err(CodecError::FrameTooLarge { len, max }) if !items.is_empty() => {
                    let keep = (items.len() * max / len.max(1)).saturating_sub(1);
                    items.truncate(keep.min(items.len() - 1));
                    truncated = true;
                }
                Err(_) => {
                    let error = ErrorReply::new(ErrorCode::Internal, "the reply cannot be encoded");
                    return self.fail(session, request, error);
                }
            }
        }
    }
}
