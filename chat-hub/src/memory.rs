//! [`MemoryStore`]: durable state as plain data structures — the reference model of storage.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::types::*;

/// Storage as a model in memory: what the writes made durable, with the same semantics as a
/// database (idempotent message inserts, backlog and history queries, token expiry). The
/// simulated world runs on it, chat-core's `MemoryStorage` wraps it, and the storage contract
/// test holds every database to it.
#[derive(Debug, Default, Clone)]
pub struct MemoryStore {
    users: BTreeMap<UserId, (String, String, String)>,
    convs: BTreeMap<ConvId, ConvKind>,
    members: BTreeMap<(ConvId, UserId), MessageId>,
    devices: BTreeMap<DeviceId, (UserId, String, MessageId, UnixMillis)>,
    tokens: HashMap<[u8; 32], TokenRecord>,
    /// Every stored message.
    pub messages: BTreeMap<MessageId, StoredMessage>,
    dedup: HashMap<(UserId, ClientMsgId), MessageId>,
    standings: BTreeMap<(ConvId, UserId), Standing>,
    operators: BTreeSet<UserId>,
    disabled: BTreeSet<UserId>,
    /// The moderation audit log, oldest first.
    audit: Vec<AuditRecord>,
    topics: BTreeMap<ConvId, String>,
    read_markers: BTreeMap<(UserId, ConvId), MessageId>,
    /// Numbers messages and memberships as they are applied.
    numbering: Numbering,
    /// The id block every snapshot hands out ([`IdBlock::ALL`] by default: one node, which
    /// assigns above every stored id). Set it to model a node of a shared database, whose
    /// block is its own and whose rows include other nodes' ids.
    pub ids: IdBlock,
}

impl MemoryStore {
    /// Applies one persist's writes, numbered as every backend numbers them ([`Numbering`]);
    /// reports its position, and the original `(id, sent_at)` if its message duplicates an
    /// earlier send of the same client message id.
    pub fn apply(&mut self, mut writes: Vec<Write>) -> Committed {
        let position = self.numbering.number(&mut writes);
        let mut duplicate = None;
        for write in writes {
            match write {
                Write::CreateUser {
                    id,
                    name,
                    password_hash,
                    ..
                } => {
                    self.users.insert(id, (name.clone(), name, password_hash));
                }
                Write::SetDisplayName { user, display_name } => {
                    if let Some(u) = self.users.get_mut(&user) {
                        u.1 = display_name;
                    }
                }
                Write::CreateConv { id, kind, .. } => {
                    self.convs.insert(id, kind);
                }
                Write::AddMember { conv, user, since } => {
                    self.members.insert((conv, user), since);
                }
                Write::RemoveMember { conv, user } => {
                    self.members.remove(&(conv, user));
                }
                Write::InsertMessage(m) if !m.kind.is_message() => {
                    self.messages.insert(m.id, m);
                }
                Write::ChangeMessage { target, text } => self.change(target, text),
                Write::InsertMessage(m) => match self.dedup.get(&(m.sender, m.client_msg_id)) {
                    Some(original) => {
                        let sent_at = self.messages.get(original).map_or(0, |o| o.sent_at);
                        duplicate = Some((*original, sent_at));
                    }
                    None => {
                        self.dedup.insert((m.sender, m.client_msg_id), m.id);
                        self.messages.insert(m.id, m);
                    }
                },
                Write::SetDevice {
                    id,
                    user,
                    name,
                    cursor,
                    last_seen,
                } => {
                    self.devices.insert(id, (user, name, cursor, last_seen));
                }
                Write::DeleteDevice { id } => {
                    self.devices.remove(&id);
                    self.tokens.retain(|_, t| t.device != id);
                }
                Write::CreateToken {
                    hash,
                    user,
                    device,
                    expires_at,
                } => {
                    self.tokens.insert(
                        hash,
                        TokenRecord {
                            user,
                            device,
                            expires_at,
                        },
                    );
                }
                Write::RevokeToken { hash } => {
                    self.tokens.remove(&hash);
                }
                Write::SetStanding {
                    conv,
                    user,
                    standing,
                } => {
                    if standing == Standing::default() {
                        self.standings.remove(&(conv, user));
                    } else {
                        self.standings.insert((conv, user), standing);
                    }
                }
                Write::Audit(record) => self.audit.push(record),
                Write::SetTopic { conv, topic } => {
                    if topic.is_empty() {
                        self.topics.remove(&conv);
                    } else {
                        self.topics.insert(conv, topic);
                    }
                }
                Write::SetOperator { user, operator } => {
                    if operator {
                        self.operators.insert(user);
                    } else {
                        self.operators.remove(&user);
                    }
                }
                Write::SetDisabled { user, disabled } => {
                    if disabled {
                        self.disabled.insert(user);
                    } else {
                        self.disabled.remove(&user);
                    }
                }
                Write::SetReadMarker { user, conv, up_to } => {
                    let marker = self.read_markers.entry((user, conv)).or_default();
                    *marker = (*marker).max(up_to);
                }
            }
        }
        Committed {
            position,
            duplicate,
            adopted: None,
            taken: None,
        }
    }

    /// Edits (`Some`) or deletes (`None`) a stored message; a deletion also erases the text of
    /// every edit of it.
    fn change(&mut self, target: MessageId, text: Option<String>) {
        let Some(m) = self.messages.get_mut(&target) else {
            return;
        };
        if !m.kind.is_message() || m.kind == MessageKind::Deleted {
            return;
        }
        match text {
            Some(text) => {
                m.text = text;
                m.kind = MessageKind::Edited;
            }
            None => {
                m.text.clear();
                m.kind = MessageKind::Deleted;
                for m in self.messages.range_mut(target..).map(|(_, m)| m) {
                    if matches!(m.kind, MessageKind::Edit { target: t } if t == target) {
                        m.text.clear();
                    }
                }
            }
        }
    }

    /// The stored message or change `id`.
    pub fn message(&self, id: MessageId) -> Option<StoredMessage> {
        self.messages.get(&id).cloned()
    }

    /// Everything a hub loads at start. Drops expired tokens, as storage does.
    pub fn snapshot(&mut self, now: UnixMillis) -> Snapshot {
        self.tokens.retain(|_, t| t.expires_at > now);
        Snapshot {
            ids: self.ids,
            users: self
                .users
                .iter()
                .map(|(&id, (name, display_name, _))| UserRow {
                    id,
                    name: name.clone(),
                    display_name: display_name.clone(),
                })
                .collect(),
            convs: self
                .convs
                .iter()
                .map(|(&id, kind)| ConvRow {
                    id,
                    kind: kind.clone(),
                })
                .collect(),
            members: self
                .members
                .iter()
                .map(|(&(conv, user), &since)| MemberRow { conv, user, since })
                .collect(),
            devices: self
                .devices
                .iter()
                .map(|(&id, (user, name, cursor, last_seen))| DeviceRow {
                    id,
                    user: *user,
                    name: name.clone(),
                    cursor: *cursor,
                    last_seen: *last_seen,
                })
                .collect(),
            last_message: self
                .messages
                .keys()
                .next_back()
                .copied()
                .unwrap_or_default(),
            standings: self
                .standings
                .iter()
                .map(|(&(conv, user), &standing)| StandingRow {
                    conv,
                    user,
                    standing,
                })
                .collect(),
            operators: self.operators.iter().copied().collect(),
            disabled: self.disabled.iter().copied().collect(),
            topics: self
                .topics
                .iter()
                .map(|(&conv, topic)| (conv, topic.clone()))
                .collect(),
            read_markers: self
                .read_markers
                .iter()
                .map(|(&(user, conv), &up_to)| ReadMarkerRow { user, conv, up_to })
                .collect(),
        }
    }

    /// Up to `limit` audit records of `conv`, newest first, with positions (1-based, in the
    /// whole log) below `before` if given; each with its position.
    pub fn audit_log(
        &self,
        conv: ConvId,
        before: Option<u64>,
        limit: usize,
    ) -> Vec<(u64, AuditRecord)> {
        let end = before.map_or(self.audit.len(), |b| {
            usize::try_from(b.saturating_sub(1))
                .unwrap_or(usize::MAX)
                .min(self.audit.len())
        });
        self.audit[..end]
            .iter()
            .enumerate()
            .rev()
            .filter(|(_, r)| r.conv == conv)
            .take(limit)
            .map(|(i, r)| (i as u64 + 1, r.clone()))
            .collect()
    }

    /// Up to `limit` messages for `user` above `after`, from each of the user's conversations
    /// since joining it, leaving out those sent from `device`; in id order.
    pub fn backlog(
        &self,
        user: UserId,
        device: DeviceId,
        after: MessageId,
        limit: usize,
    ) -> Vec<StoredMessage> {
        self.messages
            .range(MessageId(after.0 + 1)..)
            .map(|(_, m)| m)
            .filter(|m| {
                m.kind != MessageKind::Deleted
                    && !(matches!(m.kind, MessageKind::Edit { .. }) && m.text.is_empty())
                    && m.device != device
                    && self
                        .members
                        .get(&(m.conv, user))
                        .is_some_and(|since| m.id > *since)
            })
            .take(limit)
            .cloned()
            .collect()
    }

    /// Up to `limit` messages of `conv` below `before`, newest first.
    pub fn history(
        &self,
        conv: ConvId,
        before: Option<MessageId>,
        limit: usize,
    ) -> Vec<StoredMessage> {
        let before = before.unwrap_or(MessageId(u64::MAX));
        self.messages
            .range(..before)
            .rev()
            .map(|(_, m)| m)
            .filter(|m| m.conv == conv && m.kind.is_message())
            .take(limit)
            .cloned()
            .collect()
    }

    /// *(v2)* For each `(conv, after)`: the messages of `conv` with ids above `after` (and at
    /// most `up_to`, if given) not sent by `user` — messages only, not changes or deleted
    /// ones — counted up to `cap`, with the newest of them.
    pub fn unread(
        &self,
        user: UserId,
        convs: &[(ConvId, MessageId)],
        up_to: Option<MessageId>,
        cap: u32,
    ) -> Vec<UnreadTally> {
        let end = up_to.unwrap_or(MessageId(u64::MAX));
        convs
            .iter()
            .map(|&(conv, after)| {
                let mut tally = UnreadTally {
                    conv,
                    count: 0,
                    latest: MessageId(0),
                };
                if after >= end {
                    return tally;
                }
                let counted = self
                    .messages
                    .range(MessageId(after.0.saturating_add(1))..=end)
                    .rev()
                    .map(|(_, m)| m)
                    .filter(|m| {
                        m.conv == conv
                            && m.sender != user
                            && matches!(m.kind, MessageKind::Message | MessageKind::Edited)
                    })
                    .take(cap as usize);
                for m in counted {
                    tally.latest = tally.latest.max(m.id);
                    tally.count += 1;
                }
                tally
            })
            .collect()
    }

    /// *(v2)* Up to `limit` messages (not changes, not deleted ones) with ids below `before`
    /// whose latest text holds every one of `words` (as [`names::words`](crate::names::words)
    /// splits it), from the conversations `user` is a member of (all of each, as history);
    /// newest first.
    pub fn search(
        &self,
        user: UserId,
        words: &[String],
        before: Option<MessageId>,
        limit: usize,
    ) -> Vec<StoredMessage> {
        let before = before.unwrap_or(MessageId(u64::MAX));
        self.messages
            .range(..before)
            .rev()
            .map(|(_, m)| m)
            .filter(|m| {
                matches!(m.kind, MessageKind::Message | MessageKind::Edited)
                    && self.members.contains_key(&(m.conv, user))
                    && {
                        let found: Vec<String> = crate::names::words(&m.text).collect();
                        words.iter().all(|w| found.contains(w))
                    }
            })
            .take(limit)
            .cloned()
            .collect()
    }

    /// *(v2)* Every stored read marker: `(user, conversation, up_to)`.
    pub fn read_markers(&self) -> impl Iterator<Item = (UserId, ConvId, MessageId)> + '_ {
        self.read_markers.iter().map(|(&(u, c), &m)| (u, c, m))
    }

    /// *(v2)* How far `user` has read `conv`, if a marker was stored.
    pub fn read_marker(&self, user: UserId, conv: ConvId) -> Option<MessageId> {
        self.read_markers.get(&(user, conv)).copied()
    }

    /// The last message id before `user` joined `conv`, if a member.
    pub fn member_since(&self, conv: ConvId, user: UserId) -> Option<MessageId> {
        self.members.get(&(conv, user)).copied()
    }

    /// The id of the user registered as `name` (any case).
    pub fn user_id(&self, name: &str) -> Option<UserId> {
        self.users
            .iter()
            .find(|(_, (n, _, _))| n.eq_ignore_ascii_case(name))
            .map(|(id, _)| *id)
    }

    /// The name of a stored device.
    pub fn device_name(&self, device: DeviceId) -> Option<&str> {
        self.devices.get(&device).map(|d| d.1.as_str())
    }

    /// The stored password hash of `user`.
    pub fn password_hash(&self, user: UserId) -> Option<String> {
        self.users.get(&user).map(|u| u.2.clone())
    }

    /// The token whose SHA-256 is `hash`.
    pub fn find_token(&self, hash: &[u8; 32]) -> Option<TokenRecord> {
        self.tokens.get(hash).cloned()
    }

    /// The standing of `user` in `conv`.
    pub fn standing(&self, conv: ConvId, user: UserId) -> Standing {
        self.standings
            .get(&(conv, user))
            .copied()
            .unwrap_or_default()
    }

    /// Every standing other than a plain member's.
    pub fn standings(&self) -> impl Iterator<Item = (ConvId, UserId, Standing)> + '_ {
        self.standings.iter().map(|(&(c, u), &s)| (c, u, s))
    }

    /// The whole moderation audit log, oldest first.
    pub fn audit(&self) -> &[AuditRecord] {
        &self.audit
    }

    /// Whether `user` is a server operator.
    pub fn is_operator(&self, user: UserId) -> bool {
        self.operators.contains(&user)
    }

    /// *(cluster)* The messages (and changes) with ids in `(after, up_to]` (above `after` if
    /// `up_to` is `None`), in id order, at most `limit`.
    pub fn committed(
        &self,
        after: MessageId,
        up_to: Option<MessageId>,
        limit: usize,
    ) -> Vec<StoredMessage> {
        let end = up_to.unwrap_or(MessageId(u64::MAX));
        if end <= after {
            return Vec::new();
        }
        self.messages
            .range(MessageId(after.0 + 1)..=end)
            .take(limit)
            .map(|(_, m)| m.clone())
            .collect()
    }

    /// The highest message id taken (stored, or taken by a resend found to be a duplicate).
    pub fn last_message(&self) -> MessageId {
        self.numbering.last()
    }
}
