//! *(cluster)* Commits applied in id order, this node's and the other nodes' alike (see
//! `log`): a completed persist, a batch from another node, a hole read from storage.
//!
//! Another node's batch changes the directory, devices, roles and markers as its writes say,
//! tells this node's sessions what they would have been told had it happened here (joins,
//! departures, display names, read markers; a disabled account's sessions are closed), and
//! delivers its messages like this node's own.

use chat_proto::{ErrorCode, ErrorReply, MemberEvent, ServerMessage};

use super::delivery::Device;
use super::log::Held;
use super::output::{Pending, Ticket};
use super::Hub;
use crate::types::*;

/// The sender session of a message delivered from another node: none here.
const NO_SESSION: SessionId = SessionId(u64::MAX);

/// Most messages one read of a hole loads.
const READ_LIMIT: usize = 1024;

impl Hub {
    /// *(cluster)* A batch another node committed (as its bus delivered it). Applied once
    /// every commit below it is, in id order with this node's own; a batch already applied
    /// (its messages read from storage after a hole) changes nothing twice.
    pub fn handle_committed(&mut self, batch: CommittedBatch, now: Now) {
        let (from, to) = (batch.from, batch.to);
        self.log.hold(from, to, Held::Remote(batch));
        self.apply_log(now);
    }

    /// *(cluster)* A message from another node.
    pub fn handle_node_message(&mut self, message: NodeMessage, now: Now) {
        match message {
            NodeMessage::Committed(batch) => self.handle_committed(batch, now),
            NodeMessage::Typing { user, to, active } => self.remote_typing(user, to, active),
        }
    }

    /// *(cluster)* The users online on another node, as its heartbeat said (none once it is
    /// down): their presence as this node's users see it is the union over every node.
    pub fn handle_remote_presence(&mut self, node: &str, users: Vec<UserId>, now: Now) {
        let users = users.into_iter().collect();
        for user in self.presence.set_remote(node, users) {
            self.presence.changed(user, &self.config, now.mono);
        }
    }

    /// *(cluster)* The users with a session on this node, for the other nodes.
    pub fn online_users(&self) -> Vec<UserId> {
        self.sessions.online_users()
    }

    /// *(cluster)* Batches of other nodes may have been lost (the bus reported a gap or a
    /// reconnection): the directory is read from storage, then the messages committed above
    /// what is applied.
    pub fn handle_gap(&mut self) {
        self.log.gap();
        self.reload_directory();
    }

    /// A persist of this node completed: applied now on a single node, in id order in a
    /// cluster.
    pub(super) fn persisted(&mut self, ticket: Ticket, committed: Committed, now: Now) {
        let pending = self.out.completed(ticket);
        let taken = pending.as_ref().map_or(0, |p| p.messages);
        let to = MessageId(committed.position.0 + taken);
        if !self.config.cluster {
            self.log.applied_locally(to);
            return self.apply_persist(pending, committed, now);
        }
        let held = Held::Local(Box::new((pending, committed)));
        self.log.hold(committed.position, to, held);
        self.apply_log(now);
    }

    /// Applies every commit held that nothing missing is below.
    fn apply_log(&mut self, now: Now) {
        while let Some((held, before)) = self.log.next() {
            match held {
                Held::Local(local) => {
                    let (pending, committed) = *local;
                    self.apply_persist(pending, committed, now);
                }
                Held::Remote(batch) => self.apply_remote(batch, before, now),
            }
        }
        self.log.settle(now.mono, self.config.cluster_wait_ms);
    }

    fn apply_persist(&mut self, pending: Option<Pending>, committed: Committed, now: Now) {
        let (after, members) = match pending {
            Some(pending) => (Some(pending.after), pending.members),
            None => (None, Vec::new()),
        };
        if let Some(user) = committed.taken {
            return self.lost_registration(user, now);
        }
        for (conv, user) in members {
            self.directory.numbered(conv, user, committed.position);
        }
        if let Some((ours, theirs)) = committed.adopted {
            tracing::info!(
                ours = ours.0,
                theirs = theirs.0,
                "a conversation created here and on another node at once: adopting theirs"
            );
            self.directory.adopt(ours, theirs);
            self.moderation.forget_room(ours);
        }
        if let Some(after) = after {
            self.after_persist(after, committed, now);
        }
    }

    /// *(cluster)* `user` registered here under a name another node registered first: storage
    /// wrote nothing of it. Its sessions are told and closed, and the user forgotten.
    fn lost_registration(&mut self, user: UserId, now: Now) {
        let name = self.directory.name(user);
        tracing::info!(%name, "a name registered on two nodes at once: the other node's stands");
        for session in self.sessions.of_user(user).to_vec() {
            let error = ErrorReply::new(
                ErrorCode::UsernameTaken,
                format!("{name} was registered elsewhere at the same moment; choose another name"),
            );
            self.close(session, Some(error), now);
        }
        self.directory.forget_user(user);
        self.delivery.forget_user(user);
    }

    /// A hole waited long enough: its messages are read from storage.
    pub(super) fn read_overdue_hole(&mut self, now: Mono) {
        if let Some((after, up_to)) = self.log.overdue(now) {
            self.stats.recoveries += 1;
            self.out.read_committed(after, Some(up_to), READ_LIMIT);
            self.reload_directory();
        }
    }

    /// Batches may have been lost with their directory writes: the directory is read again.
    fn reload_directory(&mut self) {
        if self.log.start_directory_read() {
            self.out.read_directory();
        }
    }

    /// The directory as storage holds it, after batches were lost: what they made (users,
    /// rooms, memberships, devices, names, roles, topics, markers, disabled accounts) becomes
    /// known here. Only additions: what they undid (a departure, a role taken back) waits
    /// for the next batch naming it, or a restart.
    pub(super) fn directory_loaded(&mut self, snapshot: Option<Box<Snapshot>>, now: Now) {
        // A failed read: the next gap or hole tries again.
        if let Some(snapshot) = snapshot {
            self.learn_directory(*snapshot, now);
        }
        if self.log.directory_read() && self.log.start_read() {
            self.stats.recoveries += 1;
            self.out
                .read_committed(self.log.applied(), None, READ_LIMIT);
        }
    }

    fn learn_directory(&mut self, snapshot: Snapshot, now: Now) {
        let Snapshot {
            users,
            convs,
            members,
            devices,
            standings,
            operators,
            topics,
            disabled,
            read_markers,
            ..
        } = snapshot;
        for user in users {
            self.directory.learn_user(user.id, user.name);
            if self
                .directory
                .user(user.id)
                .is_some_and(|u| *u.display_name != *user.display_name)
            {
                let _ = self.directory.set_display_name(user.id, user.display_name);
            }
        }
        for conv in convs {
            self.directory.learn_conv(conv.id, conv.kind);
        }
        for m in members {
            if !self.directory.is_member(m.conv, m.user) {
                let _ = self.directory.add_member(m.conv, m.user, m.since);
            }
        }
        for d in devices {
            let device = Device {
                id: d.id,
                name: d.name,
                cursor: d.cursor,
                last_seen: d.last_seen,
            };
            self.delivery.learn_device(d.user, device);
        }
        for row in standings {
            let _ = self
                .moderation
                .update(row.conv, row.user, |s| *s = row.standing);
        }
        for user in operators {
            self.moderation.set_operator(user, true);
        }
        for (conv, topic) in topics {
            let _ = self.directory.set_topic(conv, topic);
        }
        for user in disabled {
            if self.moderation.set_disabled(user, true).is_some() {
                self.close_disabled(user, now);
            }
        }
        for row in read_markers {
            let _ = self.markers.advance(row.user, row.conv, row.up_to);
        }
    }

    /// The messages of a hole (or of everything above `after`) read from storage.
    pub(super) fn committed_read(
        &mut self,
        after: MessageId,
        up_to: Option<MessageId>,
        limit: usize,
        messages: Option<Vec<StoredMessage>>,
        now: Now,
    ) {
        let Some(messages) = messages else {
            // Tried again once the hole's wait runs out again.
            self.log.read(None);
            return self.log.settle(now.mono, self.config.cluster_wait_ms);
        };
        let more = messages.len() >= limit;
        let mut last = after;
        for message in &messages {
            last = last.max(message.id);
            if message.id > self.log.applied() {
                self.delivery.committed(message.id);
                self.deliver(message, NO_SESSION);
            }
        }
        if more {
            self.log.read(Some(last));
            self.log.start_read();
            return self.out.read_committed(last, up_to, limit);
        }
        self.log.read(Some(up_to.unwrap_or(last)));
        self.apply_log(now);
    }

    /// Another node's batch; its messages at or below `before` were applied already.
    fn apply_remote(&mut self, batch: CommittedBatch, before: MessageId, now: Now) {
        self.stats.remote_batches += 1;
        for write in batch.writes {
            match write {
                Write::CreateUser { id, name, .. } => self.directory.learn_user(id, name),
                Write::SetDisplayName { user, display_name } => {
                    let _ = self.directory.set_display_name(user, display_name);
                    self.announce_display_name(user);
                }
                Write::CreateConv { id, kind, .. } => self.directory.learn_conv(id, kind),
                Write::AddMember { conv, user, since } => {
                    let new = !self.directory.is_member(conv, user);
                    let _ = self.directory.add_member(conv, user, since);
                    if new {
                        self.announce_member(conv, user, MemberEvent::Joined, None);
                    }
                }
                Write::RemoveMember { conv, user } => {
                    if self.directory.is_member(conv, user) {
                        self.announce_member(conv, user, MemberEvent::Left, None);
                        let _ = self.directory.remove_member(conv, user);
                    }
                }
                Write::InsertMessage(message) => {
                    if message.id > before {
                        self.delivery.committed(message.id);
                        self.deliver(&message, NO_SESSION);
                    }
                }
                Write::SetDevice {
                    id,
                    user,
                    name,
                    cursor,
                    last_seen,
                } => {
                    let device = Device {
                        id,
                        name,
                        cursor,
                        last_seen,
                    };
                    self.delivery.learn_device(user, device);
                }
                Write::DeleteDevice { id } => self.delivery.forget_device(id),
                Write::SetStanding {
                    conv,
                    user,
                    standing,
                } => {
                    let _ = self.moderation.update(conv, user, |s| *s = standing);
                }
                Write::SetTopic { conv, topic } => {
                    let _ = self.directory.set_topic(conv, topic);
                }
                Write::SetOperator { user, operator } => {
                    self.moderation.set_operator(user, operator);
                }
                Write::SetDisabled { user, disabled } => {
                    let _ = self.moderation.set_disabled(user, disabled);
                    if disabled {
                        self.close_disabled(user, now);
                    }
                }
                Write::SetReadMarker { user, conv, up_to } => {
                    if self.markers.advance(user, conv, up_to).is_some() {
                        self.tell_read_marker(user, conv, up_to, NO_SESSION);
                    }
                }
                Write::CreateToken { .. }
                | Write::RevokeToken { .. }
                | Write::ChangeMessage { .. }
                | Write::Audit(_) => {}
            }
        }
    }
}

impl Hub {
    /// Tells `user`'s version-2 sessions but `except` that `conv` is read up to `up_to`.
    pub(super) fn tell_read_marker(
        &mut self,
        user: UserId,
        conv: ConvId,
        up_to: MessageId,
        except: SessionId,
    ) {
        let Some(target) = self.target_for(conv, user) else {
            return;
        };
        let Some(frame) = self
            .out
            .encode(&ServerMessage::ReadMarker { target, up_to })
        else {
            return;
        };
        let others: Vec<SessionId> = self
            .sessions
            .of_user(user)
            .iter()
            .copied()
            .filter(|&s| s != except && self.sessions.version(s) >= 2)
            .collect();
        self.out.send_to(others, &frame, false);
    }
}
