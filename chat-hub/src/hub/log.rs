//! [`Log`] *(cluster)*: the order in which commits are applied when several nodes write to
//! one database.
//!
//! Storage numbers every commit under one lock ([`Numbering`]), so the commits of all nodes
//! form one sequence of id ranges. A node must apply them in that order — its own
//! completions and the other nodes' batches alike — or it could send a session id 11 before
//! id 10 arrives from another node, and the session's acknowledgement of 11 would skip 10.
//! So a commit whose range starts above what has been applied waits here until the commits
//! below it arrive; if they do not within `cluster_wait_ms` (a batch lost on the bus), their
//! messages are read from storage, where they are already visible: the waiting commit was
//! made after them.

use std::collections::BTreeMap;

use super::output::Pending;
use crate::types::*;

/// A commit waiting for those below it.
#[derive(Debug)]
pub(super) enum Held {
    /// One of this node's persists (boxed: what follows a persist is large).
    Local(Box<(Option<Pending>, Committed)>),
    /// Another node's batch.
    Remote(CommittedBatch),
}

#[derive(Debug, Default)]
pub(super) struct Log {
    /// Every commit whose range ends at or below this has been applied.
    applied: MessageId,
    /// By where their range starts, then by arrival.
    held: BTreeMap<(MessageId, u64), (Held, MessageId)>,
    arrivals: u64,
    /// When the first commit held will have waited long enough.
    wait_until: Option<Mono>,
    /// A read of the missing messages from storage is under way.
    reading: bool,
    /// A read of the directory is under way (after batches were lost).
    reading_directory: bool,
    /// The bus lost batches: once the directory is read, read their messages.
    gap: bool,
}

impl Log {
    /// A log whose every commit up to `applied` is in the state the hub loaded.
    pub(super) fn new(applied: MessageId) -> Self {
        Self {
            applied,
            ..Self::default()
        }
    }

    pub(super) fn applied(&self) -> MessageId {
        self.applied
    }

    /// Queues a commit of the range `(from, to]`.
    pub(super) fn hold(&mut self, from: MessageId, to: MessageId, held: Held) {
        self.arrivals += 1;
        self.held.insert((from, self.arrivals), (held, to));
    }

    /// The next commit that may be applied (its range starts at or below what is applied),
    /// counted as applied, with what was applied before it (its messages at or below that
    /// were applied already, read from storage); `None` while the first one held waits for a
    /// hole to be filled.
    pub(super) fn next(&mut self) -> Option<(Held, MessageId)> {
        let (&(from, _), _) = self.held.first_key_value()?;
        if from > self.applied {
            return None;
        }
        let (_, (held, to)) = self.held.pop_first()?;
        let before = self.applied;
        self.applied = self.applied.max(to);
        Some((held, before))
    }

    /// After applying what could be: the deadline of the hole, if one remains.
    pub(super) fn settle(&mut self, now: Mono, wait_ms: u64) {
        if self.held.is_empty() {
            self.wait_until = None;
        } else if self.wait_until.is_none() {
            self.wait_until = Some(now.plus(wait_ms));
        }
    }

    pub(super) fn next_deadline(&self) -> Option<Mono> {
        self.wait_until.filter(|_| !self.reading)
    }

    /// The hole to read from storage, `(after, up_to]`, if its wait is over (once: until the
    /// read completes).
    pub(super) fn overdue(&mut self, now: Mono) -> Option<(MessageId, MessageId)> {
        if self.reading || self.wait_until.is_none_or(|due| due > now) {
            return None;
        }
        let (&(up_to, _), _) = self.held.first_key_value()?;
        self.reading = true;
        Some((self.applied, up_to))
    }

    /// A read of everything committed above what is applied is to start (the bus may have
    /// lost batches); false if one is under way.
    pub(super) fn start_read(&mut self) -> bool {
        !std::mem::replace(&mut self.reading, true)
    }

    /// A read from storage ended: everything up to `up_to` is applied (if it succeeded).
    pub(super) fn read(&mut self, up_to: Option<MessageId>) {
        self.reading = false;
        self.wait_until = None;
        if let Some(up_to) = up_to {
            self.applied = self.applied.max(up_to);
        }
    }

    /// A read of the directory is to start (what lost batches made); false if one is under
    /// way.
    pub(super) fn start_directory_read(&mut self) -> bool {
        !std::mem::replace(&mut self.reading_directory, true)
    }

    /// The read of the directory ended; whether a gap's messages are to be read now.
    pub(super) fn directory_read(&mut self) -> bool {
        self.reading_directory = false;
        std::mem::take(&mut self.gap)
    }

    /// The bus lost batches: their messages are read once the directory is (so that who
    /// sent them is known).
    pub(super) fn gap(&mut self) {
        self.gap = true;
    }

    /// This node's own commit of `(from, to]` applied at once (a single node: nothing can be
    /// below it that is not applied already).
    pub(super) fn applied_locally(&mut self, to: MessageId) {
        self.applied = self.applied.max(to);
    }
}
