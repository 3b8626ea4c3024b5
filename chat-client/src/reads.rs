//! [`Reads`] *(v2)*: what the client knows of how far each conversation is read — the newest
//! message it has seen there and the read marker — so `/read` knows what to mark and skips
//! marks that would not move anything. Pure and bounded: a hostile server cannot grow it past
//! [`MAX_CONVERSATIONS`].

use std::collections::HashMap;

use chat_proto::{ChatMessage, MessageId, Target};

/// The most conversations tracked; past it, the one with the oldest news is forgotten.
pub(crate) const MAX_CONVERSATIONS: usize = 1024;

/// The conversation a message belongs to, as the user names it: its room, or the other user
/// of a direct conversation (`me` is the logged-in user).
pub(crate) fn conversation(m: &ChatMessage, me: Option<&str>) -> Target {
    match &m.target {
        Target::Room(_) => m.target.clone(),
        Target::User(to) if Some(m.from.as_str()) == me => Target::User(to.clone()),
        Target::User(_) => Target::User(m.from.clone()),
    }
}

#[derive(Clone, Copy, Debug, Default)]
struct Known {
    /// The newest message seen.
    newest: MessageId,
    /// The read marker, as last heard of.
    marker: MessageId,
}

/// Per conversation: the newest message seen and the read marker.
#[derive(Debug, Default)]
pub(crate) struct Reads {
    known: HashMap<Target, Known>,
}

impl Reads {
    /// A message `id` of `conv` was seen (received, sent, or in a history page).
    pub(crate) fn seen(&mut self, conv: Target, id: MessageId) {
        let known = self.entry(conv);
        known.newest = known.newest.max(id);
    }

    /// `conv` is read up to `up_to`.
    pub(crate) fn marked(&mut self, conv: Target, up_to: MessageId) {
        let known = self.entry(conv);
        known.marker = known.marker.max(up_to);
        known.newest = known.newest.max(up_to);
    }

    /// What marking `conv` read would mark: its newest message, if newer than the marker.
    pub(crate) fn to_mark(&self, conv: &Target) -> Option<MessageId> {
        let known = self.known.get(conv)?;
        (known.newest > known.marker).then_some(known.newest)
    }

    /// Forgets everything (a logout: the next user has other conversations).
    pub(crate) fn clear(&mut self) {
        self.known.clear();
    }

    fn entry(&mut self, conv: Target) -> &mut Known {
        if self.known.len() >= MAX_CONVERSATIONS && !self.known.contains_key(&conv) {
            let oldest = self
                .known
                .iter()
                .min_by_key(|(_, k)| k.newest)
                .map(|(t, _)| t.clone());
            if let Some(oldest) = oldest {
                self.known.remove(&oldest);
            }
        }
        self.known.entry(conv).or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_only_what_is_newer_than_the_marker() {
        let mut reads = Reads::default();
        let general = Target::Room("general".into());
        assert_eq!(reads.to_mark(&general), None);
        reads.seen(general.clone(), MessageId(5));
        reads.seen(general.clone(), MessageId(3));
        assert_eq!(reads.to_mark(&general), Some(MessageId(5)));
        reads.marked(general.clone(), MessageId(5));
        assert_eq!(reads.to_mark(&general), None);
        reads.marked(general.clone(), MessageId(2));
        reads.seen(general.clone(), MessageId(9));
        assert_eq!(reads.to_mark(&general), Some(MessageId(9)));
    }

    #[test]
    fn stays_bounded() {
        let mut reads = Reads::default();
        for i in 0..MAX_CONVERSATIONS as u64 + 10 {
            reads.seen(Target::User(format!("u{i}")), MessageId(i + 1));
        }
        assert_eq!(reads.known.len(), MAX_CONVERSATIONS);
        assert_eq!(
            reads.to_mark(&Target::User("u0".into())),
            None,
            "oldest forgotten"
        );
        let last = Target::User(format!("u{}", MAX_CONVERSATIONS + 9));
        assert!(reads.to_mark(&last).is_some());
    }

    #[test]
    fn a_direct_message_belongs_to_the_other_user() {
        let m = |from: &str, to: &str| ChatMessage {
            id: MessageId(1),
            from: from.into(),
            target: Target::User(to.into()),
            sent_at: 0,
            client_msg_id: chat_proto::ClientMsgId(0),
            text: String::new(),
        };
        assert_eq!(
            conversation(&m("bob", "alice"), Some("alice")),
            Target::User("bob".into())
        );
        assert_eq!(
            conversation(&m("alice", "bob"), Some("alice")),
            Target::User("bob".into())
        );
    }
}
