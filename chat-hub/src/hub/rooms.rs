//! Room requests: create, join, leave, invite, listings, display names, and the membership
//! notices they cause.

use std::collections::BTreeSet;

use chat_proto::{
    ErrorCode, ErrorReply, MemberEvent, Reply, RequestId, RosterEntry, ServerMessage, UserStatus,
};

/// Longest room topic, in bytes.
pub const MAX_TOPIC_LEN: usize = 512;

use super::directory::invite_only;
use super::output::After;
use super::Hub;
use crate::names;
use crate::types::*;

impl Hub {
    fn check_room_quota(&self, user: UserId) -> Result<(), ErrorReply> {
        let max = self.config.max_rooms_per_user;
        if self.directory.room_count(user) >= max {
            let text = format!("a user may be in at most {max} rooms");
            return Err(ErrorReply::new(ErrorCode::TooManyRooms, text));
        }
        Ok(())
    }

    fn room_reply(&self, conv: ConvId, user: UserId) -> Reply {
        self.directory
            .room_info(conv, user)
            .map_or(Reply::Done, Reply::Room)
    }

    /// Adds `user` to `conv` and persists it with `writes`; replies with the room and
    /// announces the join.
    fn join_and_announce(
        &mut self,
        session: SessionId,
        request: RequestId,
        user: UserId,
        conv: ConvId,
        mut writes: Vec<Write>,
    ) {
        writes.extend(self.directory.add_member(conv, user, UNNUMBERED));
        let reply = self.room_reply(conv, user);
        self.out.persist(
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
        now: Now,
    ) -> Result<(), ErrorReply> {
        let name = names::room(room)?;
        if self.directory.room_id(&name).is_some() {
            return Err(ErrorReply::new(
                ErrorCode::RoomExists,
                format!("#{name} exists"),
            ));
        }
        self.check_room_quota(user)?;
        let (conv, write) = self.directory.create_room(name, invite_only, now.wall)?;
        let mut writes = vec![write];
        writes.extend(self.moderation.update(conv, user, |s| s.role = Role::Owner));
        self.join_and_announce(session, request, user, conv, writes);
        Ok(())
    }

    pub(super) fn join(
        &mut self,
        session: SessionId,
        request: RequestId,
        user: UserId,
        room: &str,
        now: Now,
    ) -> Result<(), ErrorReply> {
        let name = names::room(room)?;
        let Some(conv) = self.directory.room_id(&name) else {
            self.check_room_quota(user)?;
            let (conv, write) = self.directory.create_room(name, false, now.wall)?;
            let mut writes = vec![write];
            writes.extend(self.moderation.update(conv, user, |s| s.role = Role::Owner));
            self.join_and_announce(session, request, user, conv, writes);
            return Ok(());
        };
        if self.directory.is_member(conv, user) {
            let reply = self.room_reply(conv, user);
            self.reply(session, request, reply);
            return Ok(());
        }
        if self.moderation.is_banned(conv, user) {
            return Err(ErrorReply::new(
                ErrorCode::Forbidden,
                format!("you are banned from #{name}"),
            ));
        }
        if self
            .directory
            .conv(conv)
            .is_some_and(|c| c.is_invite_only())
        {
            return Err(invite_only(&name));
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
        let conv = self.directory.member_room(room, user)?;
        let Some(write) = self.directory.remove_member(conv, user) else {
            return Ok(());
        };
        self.out.persist(
            vec![write],
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
        // A non-member of an invite-only room is refused by `find_room` already.
        let (conv, _) = self.directory.find_room(room, user)?;
        let invitee = self.directory.find_user(invitee)?;
        if self.directory.is_member(conv, invitee) {
            self.reply(session, request, Reply::Done);
            return Ok(());
        }
        if self.moderation.is_banned(conv, invitee) {
            return Err(ErrorReply::new(
                ErrorCode::Forbidden,
                "that user is banned from the room",
            ));
        }
        self.check_room_quota(invitee)?;
        let Some(write) = self.directory.add_member(conv, invitee, UNNUMBERED) else {
            return Ok(());
        };
        let by = self.directory.name(user);
        self.out.persist(
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

    /// `ListRooms` (version 1; `RoomList` is in `reading`).
    pub(super) fn list_rooms(&mut self, session: SessionId, request: RequestId, user: UserId) {
        let mut rooms: Vec<_> = self
            .directory
            .room_ids()
            .filter_map(|conv| self.directory.room_info(conv, user))
            .collect();
        rooms.sort_by(|a, b| a.name.cmp(&b.name));
        self.out
            .reply_fitting(session, request, rooms, |rooms, _| Reply::Rooms(rooms));
    }

    pub(super) fn who(
        &mut self,
        session: SessionId,
        request: RequestId,
        user: UserId,
        room: &str,
    ) -> Result<(), ErrorReply> {
        let (conv, name) = self.directory.find_room(room, user)?;
        let members = self
            .directory
            .conv(conv)
            .map(|c| self.statuses_of(c.members().keys().copied()))
            .unwrap_or_default();
        if self.sessions.version(session) >= 2 {
            let roster: Vec<RosterEntry> = members
                .into_iter()
                .map(|(id, status)| {
                    let standing = self.moderation.standing(conv, id);
                    RosterEntry {
                        status,
                        role: standing.role,
                        muted: standing.muted,
                    }
                })
                .collect();
            self.out
                .reply_fitting(session, request, roster, |members, _| Reply::Roster {
                    room: name.clone(),
                    members,
                });
            return Ok(());
        }
        let members = members.into_iter().map(|(_, status)| status).collect();
        self.out
            .reply_fitting(session, request, members, |members, _| Reply::Members {
                room: name.clone(),
                members,
            });
        Ok(())
    }

    pub(super) fn list_users(&mut self, session: SessionId, request: RequestId) {
        let users = self.statuses(self.directory.user_ids());
        self.out
            .reply_fitting(session, request, users, |users, _| Reply::Users(users));
    }

    /// Statuses of `users`, sorted by username.
    fn statuses(&self, users: impl Iterator<Item = UserId>) -> Vec<UserStatus> {
        self.statuses_of(users)
            .into_iter()
            .map(|(_, status)| status)
            .collect()
    }

    /// Statuses of `users` with their ids, sorted by username.
    fn statuses_of(&self, users: impl Iterator<Item = UserId>) -> Vec<(UserId, UserStatus)> {
        let mut statuses: Vec<(UserId, UserStatus)> = users
            .filter_map(|id| {
                let u = self.directory.user(id)?;
                let status = UserStatus {
                    user: u.name.to_string(),
                    display_name: u.display_name.to_string(),
                    online: self.is_online(id),
                };
                Some((id, status))
            })
            .collect();
        statuses.sort_by(|a, b| a.1.user.cmp(&b.1.user));
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
        if self
            .directory
            .look_alike(display_name.trim())
            .is_some_and(|other| other != user)
        {
            return Err(ErrorReply::new(
                ErrorCode::InvalidName,
                "a display name may not look like another user's name",
            ));
        }
        let write = self.directory.set_display_name(user, display_name);
        self.out.persist(
            vec![write],
            After::DisplayName {
                reply: (session, request),
                user,
            },
        );
        Ok(())
    }

    /// Tells every user who shares a conversation with `user` (and `user`'s own sessions)
    /// its display name; version-2 sessions only. In rooms above the presence size limit, as
    /// for presence, nobody is told.
    pub(super) fn announce_display_name(&mut self, user: UserId) {
        let Some(account) = self.directory.user(user) else {
            return;
        };
        let msg = ServerMessage::DisplayName {
            user: account.name.to_string(),
            display_name: account.display_name.to_string(),
        };
        let limit = self.config.presence_room_limit;
        let mut recipients = BTreeSet::from([user]);
        for (_, c) in self.directory.convs_of(user) {
            if !c.is_room() || c.members().len() <= limit {
                recipients.extend(c.members().keys().copied());
            }
        }
        self.send_to_users_versioned(recipients, &msg, None, true);
    }

    /// `/topic`: the owner or a moderator sets a room's topic.
    pub(super) fn set_topic(
        &mut self,
        session: SessionId,
        request: RequestId,
        user: UserId,
        room: &str,
        topic: &str,
    ) -> Result<(), ErrorReply> {
        let topic = names::text(topic).trim().to_owned();
        if topic.len() > MAX_TOPIC_LEN {
            return Err(ErrorReply::new(
                ErrorCode::TooLarge,
                format!("a topic is at most {MAX_TOPIC_LEN} bytes"),
            ));
        }
        let conv = self.directory.member_room(room, user)?;
        if self.moderation.rank(conv, user) < super::moderation::Rank::Moderator {
            return Err(ErrorReply::new(
                ErrorCode::Forbidden,
                "only the owner or a moderator sets the topic",
            ));
        }
        let write = self.directory.set_topic(conv, topic);
        self.out.persist(
            vec![write],
            After::Topic {
                reply: (session, request),
                conv,
                by: user,
            },
        );
        Ok(())
    }

    /// Tells a user who just joined a room its topic, if it has one (version-2 sessions).
    pub(super) fn tell_topic(&mut self, conv: ConvId, user: UserId) {
        let Some(c) = self.directory.conv(conv) else {
            return;
        };
        let ConvKind::Room { name, .. } = &c.kind else {
            return;
        };
        if c.topic.is_empty() {
            return;
        }
        let msg = ServerMessage::Topic {
            room: name.clone(),
            topic: c.topic.clone(),
            by: String::new(),
        };
        self.send_to_users_versioned([user], &msg, None, false);
    }

    /// Tells a room's members its topic (version-2 sessions).
    pub(super) fn announce_topic(&mut self, conv: ConvId, by: UserId) {
        let Some(c) = self.directory.conv(conv) else {
            return;
        };
        let ConvKind::Room { name, .. } = &c.kind else {
            return;
        };
        let msg = ServerMessage::Topic {
            room: name.clone(),
            topic: c.topic.clone(),
            by: self.directory.name(by),
        };
        let members: Vec<UserId> = c.members().keys().copied().collect();
        self.send_to_users_versioned(members, &msg, None, false);
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
        let Some(c) = self.directory.conv(conv) else {
            return;
        };
        let ConvKind::Room { name, .. } = &c.kind else {
            return;
        };
        let msg = ServerMessage::Member {
            room: name.clone(),
            user: self.directory.name(user),
            event,
        };
        // Like presence, notices in a large room would cost every member a frame per change:
        // there only the user concerned is told.
        let recipients: BTreeSet<UserId> = if c.members().len() > self.config.presence_room_limit {
            std::iter::once(user).chain(also).collect()
        } else {
            c.members().keys().copied().chain(also).collect()
        };
        self.send_to_users(recipients, &msg, false);
    }
}
