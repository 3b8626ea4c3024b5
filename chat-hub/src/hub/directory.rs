//! [`Directory`]: users, conversations and memberships, and the names that find them.
//!
//! It is the only code that adds or removes a member, so a conversation's member map, each
//! user's conversation set and each user's room count always agree. Every change returns the
//! [`Write`] that makes it durable.

use std::collections::{BTreeMap, HashMap, HashSet};

use chat_proto::{ErrorCode, ErrorReply, RoomInfo};
use rustc_hash::FxHashMap;

use super::auth::taken;
use super::ids::Ids;
use super::make_room_for_one;
use crate::names;
use crate::types::*;

/// A registered user as the directory keeps it.
#[derive(Debug)]
pub(super) struct Account {
    /// The username as registered (boxed strings: an account is kept for every user).
    pub(super) name: Box<str>,
    pub(super) display_name: Box<str>,
    /// Every conversation the user is a member of.
    convs: ConvSet,
    /// How many of `convs` are rooms (bounded by `max_rooms_per_user`).
    rooms: u32,
}

/// A user's conversations, in id order: a sorted vector, since a user is in a handful (a
/// B-tree's first node alone is over 100 bytes, for every account).
#[derive(Debug, Default)]
struct ConvSet(Vec<ConvId>);

impl ConvSet {
    /// Adds `conv`; false if it was there.
    fn insert(&mut self, conv: ConvId) -> bool {
        match self.0.binary_search(&conv) {
            Ok(_) => false,
            Err(at) => {
                make_room_for_one(&mut self.0);
                self.0.insert(at, conv);
                true
            }
        }
    }

    /// Removes `conv`; false if it was not there.
    fn remove(&mut self, conv: &ConvId) -> bool {
        match self.0.binary_search(conv) {
            Ok(at) => {
                self.0.remove(at);
                true
            }
            Err(_) => false,
        }
    }

    fn iter(&self) -> std::slice::Iter<'_, ConvId> {
        self.0.iter()
    }
}

/// A room or a direct conversation.
#[derive(Debug)]
pub(super) struct Conv {
    pub(super) kind: ConvKind,
    /// Member to the last message id before they joined.
    members: BTreeMap<UserId, MessageId>,
    /// *(v2)* A room's topic (empty: none).
    pub(super) topic: String,
}

impl Conv {
    /// Members with the last message id before each joined.
    pub(super) fn members(&self) -> &BTreeMap<UserId, MessageId> {
        &self.members
    }

    pub(super) fn is_member(&self, user: UserId) -> bool {
        self.members.contains_key(&user)
    }

    pub(super) fn is_room(&self) -> bool {
        matches!(self.kind, ConvKind::Room { .. })
    }

    pub(super) fn is_invite_only(&self) -> bool {
        matches!(
            self.kind,
            ConvKind::Room {
                invite_only: true,
                ..
            }
        )
    }
}

#[derive(Debug, Default)]
pub(super) struct Directory {
    users: FxHashMap<UserId, Account>,
    /// Case-folded username to user (keys boxed: 8 bytes less than a `String` per user).
    user_keys: HashMap<Box<str>, UserId>,
    /// Look-alike skeletons ([`names::skeleton`]) of registered usernames.
    skeletons: HashMap<Box<str>, UserId>,
    /// Skeletons of usernames whose registration is in progress.
    reserved: HashSet<String>,
    convs: FxHashMap<ConvId, Conv>,
    /// Normalised room name to room.
    rooms: HashMap<String, ConvId>,
    /// `(a, b)` with `a <= b` to their direct conversation.
    directs: FxHashMap<(UserId, UserId), ConvId>,
    /// New user ids, from the hub's block.
    user_ids: Ids,
    /// New conversation ids, from the hub's block.
    conv_ids: Ids,
}

fn no_such_room(name: &str) -> ErrorReply {
    ErrorReply::new(ErrorCode::NoSuchRoom, format!("no room #{name}"))
}

/// What a non-member of an invite-only room is told, whatever the request.
pub(super) fn invite_only(room: &str) -> ErrorReply {
    ErrorReply::new(
        ErrorCode::Forbidden,
        format!("#{room} is invite-only: ask a member to invite you"),
    )
}

fn not_a_member(room: &str) -> ErrorReply {
    ErrorReply::new(ErrorCode::NotAMember, format!("you are not in #{room}"))
}

impl Directory {
    /// The directory storage holds; new users and conversations take ids from `ids`, above
    /// the loaded ones inside it. Rows naming users or conversations that do not exist are
    /// skipped.
    pub(super) fn load(
        ids: IdBlock,
        users: Vec<UserRow>,
        convs: Vec<ConvRow>,
        members: &[MemberRow],
    ) -> Self {
        let mut dir = Self {
            user_ids: Ids::new(ids),
            conv_ids: Ids::new(ids),
            ..Self::default()
        };
        for row in users {
            dir.index_user(row.id, row.name, row.display_name);
        }
        for row in convs {
            dir.index_conv(row.id, row.kind);
        }
        for m in members {
            dir.add_member(m.conv, m.user, m.since);
        }
        dir
    }

    // ===== users =====

    pub(super) fn user(&self, user: UserId) -> Option<&Account> {
        self.users.get(&user)
    }

    /// The username of `user` (empty if unknown).
    pub(super) fn name(&self, user: UserId) -> String {
        self.users
            .get(&user)
            .map(|u| u.name.to_string())
            .unwrap_or_default()
    }

    pub(super) fn user_ids(&self) -> impl Iterator<Item = UserId> + '_ {
        self.users.keys().copied()
    }

    /// The user named `name` (any case), if registered.
    pub(super) fn user_by_key(&self, key: &str) -> Option<UserId> {
        self.user_keys.get(key).copied()
    }

    /// The user named `name` (any case).
    pub(super) fn find_user(&self, name: &str) -> Result<UserId, ErrorReply> {
        self.user_by_key(&name.to_ascii_lowercase())
            .ok_or_else(|| ErrorReply::new(ErrorCode::NoSuchUser, format!("no user {name}")))
    }

    /// Holds the case-folded name `key` for a registration in progress; false if it, or a
    /// name that looks like it, is taken or held already.
    pub(super) fn reserve(&mut self, key: &str) -> bool {
        let skeleton = names::skeleton(key);
        !self.skeletons.contains_key(skeleton.as_str()) && self.reserved.insert(skeleton)
    }

    pub(super) fn release(&mut self, key: &str) {
        self.reserved.remove(&names::skeleton(key));
    }

    /// The user whose username looks like `name`, if any.
    pub(super) fn look_alike(&self, name: &str) -> Option<UserId> {
        self.skeletons.get(names::skeleton(name).as_str()).copied()
    }

    /// Registers `name` (whose reservation `key` this ends).
    ///
    /// # Errors
    /// `NameTaken` if the name was taken meanwhile; `Internal` if the hub's block has no user
    /// id left.
    pub(super) fn create_user(
        &mut self,
        key: String,
        name: String,
        password_hash: String,
        created_at: UnixMillis,
    ) -> Result<(UserId, Write), ErrorReply> {
        let skeleton = names::skeleton(&key);
        self.reserved.remove(&skeleton);
        if self.skeletons.contains_key(skeleton.as_str()) {
            return Err(taken(&name));
        }
        let id = UserId(self.user_ids.take("user")?);
        self.skeletons.insert(skeleton.into(), id);
        self.user_keys.insert(key.into(), id);
        self.users
            .insert(id, Account::new(name.clone(), name.clone()));
        let write = Write::CreateUser {
            id,
            name,
            password_hash,
            created_at,
        };
        Ok((id, write))
    }

    /// *(cluster)* A user another node registered (no-op if known). Never moves this hub's
    /// own counter.
    pub(super) fn learn_user(&mut self, id: UserId, name: String) {
        if !self.users.contains_key(&id) {
            self.index_user(id, name.clone(), name);
        }
    }

    /// Indexes a stored user (its id counted only if in this hub's block).
    fn index_user(&mut self, id: UserId, name: String, display_name: String) {
        self.user_ids.saw(id.0);
        self.user_keys.insert(name.to_ascii_lowercase().into(), id);
        self.skeletons
            .entry(names::skeleton(&name).into())
            .or_insert(id);
        self.users.insert(id, Account::new(name, display_name));
    }

    pub(super) fn set_display_name(&mut self, user: UserId, display_name: String) -> Write {
        if let Some(u) = self.users.get_mut(&user) {
            u.display_name = display_name.as_str().into();
        }
        Write::SetDisplayName { user, display_name }
    }

    // ===== conversations =====

    pub(super) fn conv(&self, conv: ConvId) -> Option<&Conv> {
        self.convs.get(&conv)
    }

    /// The conversations `user` is a member of.
    pub(super) fn convs_of(&self, user: UserId) -> impl Iterator<Item = (ConvId, &Conv)> + '_ {
        self.users
            .get(&user)
            .into_iter()
            .flat_map(|u| u.convs.iter())
            .filter_map(|id| Some((*id, self.convs.get(id)?)))
    }

    pub(super) fn room_id(&self, name: &str) -> Option<ConvId> {
        self.rooms.get(name).copied()
    }

    pub(super) fn room_ids(&self) -> impl Iterator<Item = ConvId> + '_ {
        self.rooms.values().copied()
    }

    pub(super) fn is_member(&self, conv: ConvId, user: UserId) -> bool {
        self.convs.get(&conv).is_some_and(|c| c.is_member(user))
    }

    /// The direct conversation of `a` and `b`, if it exists.
    pub(super) fn direct(&self, a: UserId, b: UserId) -> Option<ConvId> {
        self.directs.get(&(a.min(b), a.max(b))).copied()
    }

    fn index_conv(&mut self, id: ConvId, kind: ConvKind) {
        self.conv_ids.saw(id.0);
        match &kind {
            ConvKind::Room { name, .. } => self.rooms.insert(name.clone(), id),
            ConvKind::Direct { a, b } => self.directs.insert((*a, *b), id),
        };
        self.convs.insert(
            id,
            Conv {
                kind,
                members: BTreeMap::new(),
                topic: String::new(),
            },
        );
    }

    /// *(cluster)* A conversation another node created (no-op if known).
    pub(super) fn learn_conv(&mut self, id: ConvId, kind: ConvKind) {
        if !self.convs.contains_key(&id) {
            self.index_conv(id, kind);
        }
    }

    /// # Errors
    /// `Internal` if the hub's block has no conversation id left.
    fn create_conv(
        &mut self,
        kind: ConvKind,
        created_at: UnixMillis,
    ) -> Result<(ConvId, Write), ErrorReply> {
        let id = ConvId(self.conv_ids.take("conversation")?);
        self.index_conv(id, kind.clone());
        let write = Write::CreateConv {
            id,
            kind,
            created_at,
        };
        Ok((id, write))
    }

    /// Creates the room `name` (normalised) and returns it with its write.
    ///
    /// # Errors
    /// `Internal` if the hub's block has no conversation id left.
    pub(super) fn create_room(
        &mut self,
        name: String,
        invite_only: bool,
        now: UnixMillis,
    ) -> Result<(ConvId, Write), ErrorReply> {
        self.create_conv(ConvKind::Room { name, invite_only }, now)
    }

    /// The direct conversation of `a` and `b`, created with both as members (seeing messages
    /// from the persist that creates it on, see [`Numbering`]) if new; its writes are pushed.
    ///
    /// # Errors
    /// `Internal` if it is new and the hub's block has no conversation id left.
    pub(super) fn direct_conv(
        &mut self,
        a: UserId,
        b: UserId,
        now: UnixMillis,
        writes: &mut Vec<Write>,
    ) -> Result<ConvId, ErrorReply> {
        if let Some(conv) = self.direct(a, b) {
            return Ok(conv);
        }
        let (a, b) = (a.min(b), a.max(b));
        let (id, write) = self.create_conv(ConvKind::Direct { a, b }, now)?;
        writes.push(write);
        writes.extend(self.add_member(id, a, UNNUMBERED));
        if b != a {
            writes.extend(self.add_member(id, b, UNNUMBERED));
        }
        Ok(id)
    }

    /// Makes `user` a member of `conv`, seeing its messages above `since`. `None` if either
    /// does not exist.
    pub(super) fn add_member(
        &mut self,
        conv: ConvId,
        user: UserId,
        since: MessageId,
    ) -> Option<Write> {
        let c = self.convs.get_mut(&conv)?;
        let u = self.users.get_mut(&user)?;
        c.members.insert(user, since);
        if u.convs.insert(conv) && c.is_room() {
            u.rooms += 1;
        }
        Some(Write::AddMember { conv, user, since })
    }

    /// Storage numbered the membership of `user` in `conv` at commit: it sees messages above
    /// `since` (until then it sees none: [`UNNUMBERED`] is above every id).
    pub(super) fn numbered(&mut self, conv: ConvId, user: UserId, since: MessageId) {
        if let Some(s) = self
            .convs
            .get_mut(&conv)
            .and_then(|c| c.members.get_mut(&user))
        {
            if *s == UNNUMBERED {
                *s = since;
            }
        }
    }

    /// Ends `user`'s membership of `conv`; `None` if not a member.
    pub(super) fn remove_member(&mut self, conv: ConvId, user: UserId) -> Option<Write> {
        let c = self.convs.get_mut(&conv)?;
        c.members.remove(&user)?;
        if let Some(u) = self.users.get_mut(&user) {
            if u.convs.remove(&conv) && c.is_room() {
                u.rooms -= 1;
            }
        }
        Some(Write::RemoveMember { conv, user })
    }

    /// *(cluster)* A registration whose name another node took first: `user` never existed.
    /// Its memberships go (through [`remove_member`](Self::remove_member)), and so do its
    /// name's entries unless they are already the other node's user's.
    pub(super) fn forget_user(&mut self, user: UserId) {
        let Some(account) = self.users.get(&user) else {
            return;
        };
        let name = account.name.clone();
        for conv in account.convs.0.clone() {
            let _ = self.remove_member(conv, user);
        }
        self.users.remove(&user);
        let key = name.to_ascii_lowercase();
        if self.user_keys.get(key.as_str()) == Some(&user) {
            self.user_keys.remove(key.as_str());
        }
        let skeleton = names::skeleton(&name);
        if self.skeletons.get(skeleton.as_str()) == Some(&user) {
            self.skeletons.remove(skeleton.as_str());
        }
        self.directs.retain(|&(a, b), _| a != user && b != user);
    }

    /// *(cluster)* The conversation `ours` was created while another node created the same
    /// (a room of that name, the same two users' direct conversation) first: its members
    /// become members of `theirs` (keeping where they see messages from, unless already
    /// members there), and the name or the pair is `theirs`. Only this owner adds or removes
    /// members, so it goes through [`remove_member`](Self::remove_member) and
    /// [`add_member`](Self::add_member).
    pub(super) fn adopt(&mut self, ours: ConvId, theirs: ConvId) {
        let Some(conv) = self.convs.get(&ours) else {
            return;
        };
        let (kind, members) = (conv.kind.clone(), conv.members.clone());
        if !self.convs.contains_key(&theirs) {
            // Its creation has not reached this node yet (it will change nothing then).
            self.index_conv(theirs, kind.clone());
        }
        for (&user, &since) in &members {
            let _ = self.remove_member(ours, user);
            if !self.is_member(theirs, user) {
                let _ = self.add_member(theirs, user, since);
            }
        }
        self.convs.remove(&ours);
        match kind {
            ConvKind::Room { name, .. } => {
                if self.rooms.get(&name) == Some(&ours) {
                    self.rooms.insert(name, theirs);
                }
            }
            ConvKind::Direct { a, b } => {
                if self.directs.get(&(a, b)) == Some(&ours) {
                    self.directs.insert((a, b), theirs);
                }
            }
        }
    }

    /// Rooms `user` is a member of.
    pub(super) fn room_count(&self, user: UserId) -> usize {
        self.users.get(&user).map_or(0, |u| u.rooms as usize)
    }

    // ===== rooms as a user sees them =====

    /// The room named `room` if `user` may act in it: a non-member of an invite-only room gets
    /// `Forbidden` (room names are public, as on IRC: listed, and known to `Join` and
    /// `CreateRoom` alike). Returns it with its normalised name.
    pub(super) fn find_room(
        &self,
        room: &str,
        user: UserId,
    ) -> Result<(ConvId, String), ErrorReply> {
        let name = names::room(room)?;
        let conv = self.room_id(&name).ok_or_else(|| no_such_room(&name))?;
        let visible = self
            .convs
            .get(&conv)
            .is_some_and(|c| c.is_member(user) || !c.is_invite_only());
        if visible {
            Ok((conv, name))
        } else {
            Err(invite_only(&name))
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

    /// `conv` as listed to `user`, if it is a room.
    /// Sets a room's topic (empty: none).
    pub(super) fn set_topic(&mut self, conv: ConvId, topic: String) -> Write {
        if let Some(c) = self.convs.get_mut(&conv) {
            c.topic.clone_from(&topic);
        }
        Write::SetTopic { conv, topic }
    }

    /// Topics as stored (at load).
    pub(super) fn load_topics(&mut self, topics: Vec<(ConvId, String)>) {
        for (conv, topic) in topics {
            if let Some(c) = self.convs.get_mut(&conv) {
                c.topic = topic;
            }
        }
    }

    pub(super) fn room_info(&self, conv: ConvId, user: UserId) -> Option<RoomInfo> {
        let c = self.convs.get(&conv)?;
        let ConvKind::Room { name, invite_only } = &c.kind else {
            return None;
        };
        Some(RoomInfo {
            name: name.clone(),
            invite_only: *invite_only,
            members: u32::try_from(c.members.len()).unwrap_or(u32::MAX),
            joined: c.is_member(user),
        })
    }
}

impl Account {
    fn new(name: String, display_name: String) -> Self {
        Self {
            name: name.into(),
            display_name: display_name.into(),
            convs: ConvSet::default(),
            rooms: 0,
        }
    }
}
