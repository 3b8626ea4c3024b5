//! [`Delivery`]: the highest committed message id, the recent sends that make resends
//! idempotent without storage, each device's acknowledged position, each online session's
//! replay state, and positions waiting to be written.
//!
//! A session starts not live: its backlog is replayed in batches; a live message that arrives
//! meanwhile is held back and marks the stream `missed`, so the backlog is loaded once more
//! before `CaughtUp` and nothing falls between the replay and live delivery. `sent_upto` keeps
//! a message from going twice down one connection. A live session whose connection falls too
//! far behind is switched back to replay (`lagging`) and catches up from storage.

use std::collections::{BTreeSet, VecDeque};

use chat_proto::ErrorReply;
use rustc_hash::FxHashMap;

use super::ids::Ids;
use super::make_room_for_one;
use crate::types::*;
use crate::Config;

/// A device of a user and its delivery position.
#[derive(Clone, Debug)]
pub(super) struct Device {
    pub(super) id: DeviceId,
    pub(super) name: String,
    /// The highest message id the device acknowledged.
    pub(super) cursor: MessageId,
    pub(super) last_seen: UnixMillis,
}

/// An online session's place in the stream of its user's messages.
#[derive(Debug)]
pub(super) struct Stream {
    /// False while the backlog is being replayed.
    pub(super) live: bool,
    /// A live message was held back during replay: load the backlog once more.
    pub(super) missed: bool,
    /// Catching up after falling behind live delivery (no `CaughtUp` at the end).
    pub(super) lagging: bool,
    /// The highest message id sent on this connection.
    pub(super) sent_upto: MessageId,
    /// *(v2)* The login's unread counts are being read: the replay starts when they arrive.
    pub(super) counting: bool,
}

/// The last client message ids a user sent (at most [`RECENT_SENDS`], oldest first) and where
/// each was stored, so an in-flight resend is recognised without storage. Older resends are
/// caught by storage's uniqueness check. A scan of so few is cheaper than a hash table's
/// hashing (and memory), and ids the client chooses cannot make it any slower; ids that grow
/// (time-ordered, as `ClientMsgIds` makes them) are told apart from every resend by the
/// highest alone, without a scan.
#[derive(Debug, Default)]
struct RecentSends {
    sends: VecDeque<(ClientMsgId, (MessageId, UnixMillis))>,
    /// The highest id ever remembered: none above it is here.
    highest: ClientMsgId,
}

const RECENT_SENDS: usize = 64;

#[derive(Debug, Default)]
pub(super) struct Delivery {
    /// The highest message id (or position) known to be committed.
    last_message: u64,
    /// New device ids, from the hub's block.
    device_ids: Ids,
    recent: FxHashMap<UserId, RecentSends>,
    devices: FxHashMap<UserId, Vec<Device>>,
    streams: FxHashMap<SessionId, Stream>,
    /// Positions acknowledged but not yet written.
    dirty: BTreeSet<(UserId, DeviceId)>,
    flush_at: Option<Mono>,
    /// *(v2)* Messages with an edit or deletion being stored (at most the persists in flight).
    changing: rustc_hash::FxHashSet<MessageId>,
    /// *(v2)* How many edits and deletions have been stored since the hub started.
    changes_completed: u64,
}

impl Delivery {
    /// Whether an edit or deletion of `target` is being stored.
    pub(super) fn change_in_flight(&self, target: MessageId) -> bool {
        self.changing.contains(&target)
    }

    /// How many edits and deletions have been stored since the hub started.
    pub(super) fn changes_completed(&self) -> u64 {
        self.changes_completed
    }

    /// An edit or deletion of `target` was issued.
    pub(super) fn change_started(&mut self, target: MessageId) {
        self.changing.insert(target);
    }

    /// An edit or deletion of `target` is stored.
    pub(super) fn change_completed(&mut self, target: MessageId) {
        self.changing.remove(&target);
        self.changes_completed += 1;
    }

    /// The positions storage holds. The highest committed position is the highest of the
    /// stored messages, memberships and device positions (an id taken by a resend found to
    /// be a duplicate is never stored, yet a membership's `since` may be it). New devices take
    /// ids from `ids`, above the loaded ones inside it.
    pub(super) fn load(
        ids: IdBlock,
        snapshot_devices: Vec<DeviceRow>,
        members: &[MemberRow],
        last: MessageId,
    ) -> Self {
        let positions = members
            .iter()
            .map(|m| m.since)
            .chain(snapshot_devices.iter().map(|d| d.cursor));
        let mut delivery = Self {
            last_message: positions.fold(last, MessageId::max).0,
            device_ids: Ids::new(ids),
            ..Self::default()
        };
        for row in snapshot_devices {
            delivery.device_ids.saw(row.id.0);
            let device = Device {
                id: row.id,
                name: row.name,
                cursor: row.cursor,
                last_seen: row.last_seen,
            };
            let devices = delivery.devices.entry(row.user).or_default();
            make_room_for_one(devices);
            devices.push(device);
        }
        delivery
    }

    /// The highest message id known to be committed: a new device starts there, a read
    /// marker stops there.
    pub(super) fn last_message(&self) -> MessageId {
        MessageId(self.last_message)
    }

    /// `id` is committed.
    pub(super) fn committed(&mut self, id: MessageId) {
        self.last_message = self.last_message.max(id.0);
    }

    /// The stored `(id, sent_at)` of a recent send by `user` with this client message id.
    pub(super) fn recent(&self, user: UserId, id: ClientMsgId) -> Option<(MessageId, UnixMillis)> {
        let recent = self.recent.get(&user)?;
        if id > recent.highest {
            return None;
        }
        // Newest first: a resend is most likely of the last message.
        recent
            .sends
            .iter()
            .rev()
            .find(|(sent, _)| *sent == id)
            .map(|&(_, stored)| stored)
    }

    pub(super) fn remember(
        &mut self,
        user: UserId,
        id: ClientMsgId,
        stored: (MessageId, UnixMillis),
    ) {
        // An id already here is shadowed by this newer entry: `recent` scans newest first.
        let recent = self.recent.entry(user).or_default();
        if recent.sends.len() == RECENT_SENDS {
            recent.sends.pop_front();
        }
        recent.sends.push_back((id, stored));
        recent.highest = recent.highest.max(id);
    }

    /// Whether `user` has the device `id` named `name` (a token is bound to its device).
    pub(super) fn has_device(&self, user: UserId, id: DeviceId, name: &str) -> bool {
        self.devices
            .get(&user)
            .is_some_and(|ds| ds.iter().any(|d| d.id == id && d.name == name))
    }

    /// The device `name` of `user`, created (and the least recently used one forgotten, past
    /// the limit) if new, its last login set to `now`. A new device starts at the lowest
    /// position of the user's other devices, so it receives what none of them has
    /// acknowledged.
    ///
    /// # Errors
    /// `Internal` if the device is new and the hub's block has no device id left (nothing
    /// changed then).
    pub(super) fn device_for_login(
        &mut self,
        user: UserId,
        name: &str,
        config: &Config,
        now: UnixMillis,
        writes: &mut Vec<Write>,
    ) -> Result<Device, ErrorReply> {
        let last_message = self.last_message();
        let devices = self.devices.entry(user).or_default();
        let device = if let Some(d) = devices.iter_mut().find(|d| d.name == name) {
            d.last_seen = now;
            d.clone()
        } else {
            let cursor = devices
                .iter()
                .map(|d| d.cursor)
                .min()
                .unwrap_or(last_message);
            // Taken before the oldest device is forgotten: a refusal changes nothing.
            let id = DeviceId(self.device_ids.take("device")?);
            if devices.len() >= config.max_devices_per_user {
                if let Some((oldest, _)) =
                    devices.iter().enumerate().min_by_key(|(_, d)| d.last_seen)
                {
                    let gone = devices.remove(oldest);
                    self.dirty.remove(&(user, gone.id));
                    writes.push(Write::DeleteDevice { id: gone.id });
                }
            }
            let d = Device {
                id,
                name: name.into(),
                cursor,
                last_seen: now,
            };
            make_room_for_one(devices);
            devices.push(d.clone());
            d
        };
        writes.push(Write::SetDevice {
            id: device.id,
            user,
            name: device.name.clone(),
            cursor: device.cursor,
            last_seen: device.last_seen,
        });
        Ok(device)
    }

    /// *(cluster)* A device as another node stored it: added if new, its position moved
    /// forward (never back) and its last login updated if known.
    pub(super) fn learn_device(&mut self, user: UserId, row: Device) {
        self.device_ids.saw(row.id.0);
        let devices = self.devices.entry(user).or_default();
        match devices.iter_mut().find(|d| d.id == row.id) {
            Some(d) => {
                d.cursor = d.cursor.max(row.cursor);
                d.last_seen = d.last_seen.max(row.last_seen);
            }
            None => devices.push(row),
        }
    }

    /// *(cluster)* `user` never existed (a registration that lost its name): its devices go.
    pub(super) fn forget_user(&mut self, user: UserId) {
        self.devices.remove(&user);
        self.recent.remove(&user);
        self.dirty.retain(|&(u, _)| u != user);
    }

    /// *(cluster)* Another node forgot the device `id`.
    pub(super) fn forget_device(&mut self, id: DeviceId) {
        for devices in self.devices.values_mut() {
            devices.retain(|d| d.id != id);
        }
        self.dirty.retain(|&(_, d)| d != id);
    }

    /// Starts the stream of a session that logged in, at its device's position.
    pub(super) fn open(&mut self, session: SessionId, from: MessageId) {
        self.streams.insert(
            session,
            Stream {
                live: false,
                missed: false,
                lagging: false,
                sent_upto: from,
                counting: false,
            },
        );
    }

    pub(super) fn close(&mut self, session: SessionId) {
        self.streams.remove(&session);
    }

    pub(super) fn stream(&self, session: SessionId) -> Option<&Stream> {
        self.streams.get(&session)
    }

    pub(super) fn stream_mut(&mut self, session: SessionId) -> Option<&mut Stream> {
        self.streams.get_mut(&session)
    }

    /// A cumulative acknowledgement from `session` (of `user` on `device`): moves the device's
    /// position, never past what this connection was sent, never back.
    pub(super) fn ack(
        &mut self,
        session: SessionId,
        user: UserId,
        device: DeviceId,
        up_to: MessageId,
        config: &Config,
        now: Mono,
    ) {
        let Some(stream) = self.streams.get(&session) else {
            return;
        };
        let position = up_to.min(stream.sent_upto);
        let Some(d) = self
            .devices
            .get_mut(&user)
            .and_then(|ds| ds.iter_mut().find(|d| d.id == device))
        else {
            return;
        };
        if position > d.cursor {
            d.cursor = position;
            self.dirty.insert((user, device));
            self.flush_at
                .get_or_insert(now.plus(config.cursor_flush_ms));
        }
    }

    /// When acknowledged positions are next due to be written.
    pub(super) fn next_deadline(&self) -> Option<Mono> {
        self.flush_at
    }

    pub(super) fn flush_due(&self, now: Mono) -> bool {
        self.flush_at.is_some_and(|due| due <= now)
    }

    /// The writes of every acknowledged position not yet written.
    pub(super) fn flush(&mut self) -> Vec<Write> {
        self.flush_at = None;
        let dirty = std::mem::take(&mut self.dirty);
        dirty
            .into_iter()
            .filter_map(|(user, device)| {
                let d = self.devices.get(&user)?.iter().find(|d| d.id == device)?;
                Some(Write::SetDevice {
                    id: d.id,
                    user,
                    name: d.name.clone(),
                    cursor: d.cursor,
                    last_seen: d.last_seen,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recent_send_is_found_whatever_order_its_ids_came_in() {
        let mut delivery = Delivery::default();
        let alice = UserId(1);
        let stored = |n: u64| (MessageId(n), n * 1000);
        for (n, id) in [50, 10, 30].into_iter().enumerate() {
            delivery.remember(alice, ClientMsgId(id), stored(n as u64 + 1));
        }
        assert_eq!(delivery.recent(alice, ClientMsgId(10)), Some(stored(2)));
        assert_eq!(delivery.recent(alice, ClientMsgId(50)), Some(stored(1)));
        assert_eq!(delivery.recent(alice, ClientMsgId(51)), None);
        assert_eq!(delivery.recent(alice, ClientMsgId(20)), None);
        assert_eq!(delivery.recent(UserId(2), ClientMsgId(10)), None);
        // Only the last RECENT_SENDS are kept; the highest stays a bound on them.
        for id in 100..100 + RECENT_SENDS as u64 {
            delivery.remember(alice, ClientMsgId(id), stored(id));
        }
        assert_eq!(delivery.recent(alice, ClientMsgId(50)), None);
        assert_eq!(delivery.recent(alice, ClientMsgId(100)), Some(stored(100)));
        assert_eq!(delivery.recent(alice, ClientMsgId(99)), None);
    }
}
