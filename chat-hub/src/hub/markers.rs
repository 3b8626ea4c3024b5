//! [`Markers`] *(v2)*: how far each user has read each conversation — the only writer of read
//! markers. A marker only moves forward; each move returns the [`Write`] that makes it durable.
//! Markers outlive a membership (a user who leaves and comes back reads on from the later of
//! the marker and the new membership's start).

use rustc_hash::FxHashMap;

use crate::types::*;

#[derive(Debug, Default)]
pub(super) struct Markers {
    /// `(user, conversation)` to the newest message read.
    read: FxHashMap<(UserId, ConvId), MessageId>,
}

impl Markers {
    /// The markers storage holds.
    pub(super) fn load(rows: Vec<ReadMarkerRow>) -> Self {
        let mut markers = Self::default();
        for row in rows {
            let marker = markers.read.entry((row.user, row.conv)).or_default();
            *marker = (*marker).max(row.up_to);
        }
        markers
    }

    /// How far `user` has read `conv` (0: never marked).
    pub(super) fn get(&self, user: UserId, conv: ConvId) -> MessageId {
        self.read.get(&(user, conv)).copied().unwrap_or_default()
    }

    /// Moves `user`'s marker of `conv` to `up_to`; `None` (and no change) unless that is
    /// forward.
    pub(super) fn advance(
        &mut self,
        user: UserId,
        conv: ConvId,
        up_to: MessageId,
    ) -> Option<Write> {
        let marker = self.read.entry((user, conv)).or_default();
        if up_to <= *marker {
            return None;
        }
        *marker = up_to;
        Some(Write::SetReadMarker { user, conv, up_to })
    }
}
