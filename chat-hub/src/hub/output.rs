//! What the hub asks of its driver ([`Output`], [`IoRequest`]), what comes back
//! ([`Completion`]), and [`Outputs`]: the queue of outputs and the persists still in flight.
//!
//! Only `Send` needs no I/O from the driver beyond a queue push; `Close` ends a connection;
//! `Persist` goes to storage and comes back as [`Completion::Persisted`]; every [`IoRequest`]
//! comes back as the completion its variant names.

use std::collections::VecDeque;

use chat_proto::{
    encode, CodecError, EncodedFrame, ErrorCode, ErrorReply, MemberEvent, Reply, RequestId,
    ServerMessage,
};
use rustc_hash::FxHashMap;

use crate::types::*;

/// A number tying an [`Output::Persist`] to its [`Completion::Persisted`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ticket(pub u64);

/// Work the hub asks its driver to do. Drain with [`Hub::poll_output`](crate::Hub::poll_output)
/// after every input.
#[derive(Debug)]
#[must_use]
pub enum Output {
    /// Queue a frame on a session's connection. `droppable` frames (typing, presence) may be
    /// dropped when the connection is backed up; the others may not.
    Send {
        /// The recipient.
        session: SessionId,
        /// The encoded frame (shared by every recipient of a fan-out).
        frame: EncodedFrame,
        /// Whether it may be dropped under back-pressure.
        droppable: bool,
    },
    /// Queue a live chat message on a session's connection. If the connection is too far
    /// behind to take it (its queue past the soft bound), do not queue it, nor any later
    /// `Deliver` to that session until its next [`IoRequest::LoadBacklog`], and report
    /// [`Hub::handle_lagging`](crate::Hub::handle_lagging): the session then catches up from
    /// storage, paced by its reader, instead of being cut off.
    Deliver {
        /// The recipient.
        session: SessionId,
        /// The encoded `Message` frame (shared by every recipient).
        frame: EncodedFrame,
        /// The message's id.
        message: MessageId,
    },
    /// Close the connection once the frames already queued are written. The hub has forgotten
    /// the session already.
    Close {
        /// The session.
        session: SessionId,
    },
    /// Make these writes durable, in order, then report [`Completion::Persisted`]. Persists
    /// must complete in the order they were issued.
    Persist {
        /// Reported back on completion.
        ticket: Ticket,
        /// The writes (possibly none: a barrier behind earlier persists).
        writes: Vec<Write>,
    },
    /// Read storage or hash a password, then report the matching [`Completion`].
    Io(IoRequest),
    /// *(cluster)* Read the directory (users, rooms, memberships, devices, …) as storage holds
    /// it, then report [`Completion::Directory`] (with `None` if the read failed).
    ReadDirectory,
    /// *(cluster)* Tell the other nodes (over the bus); only with
    /// [`Config::cluster`](crate::Config::cluster).
    Share(NodeMessage),
    /// *(cluster)* Read every message committed with an id in `(after, up_to]` (above `after`
    /// if `up_to` is `None`), in id order, at most `limit`, then report
    /// [`Completion::Committed`] (with `None` if the read failed).
    ReadCommitted {
        /// Exclusive lower bound.
        after: MessageId,
        /// Inclusive upper bound, if any.
        up_to: Option<MessageId>,
        /// Most messages to read.
        limit: usize,
    },
}

/// *(v2)* An edit, deletion or redaction waiting for the message it changes to be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingChange {
    /// The request asking for it.
    pub request: RequestId,
    /// The message to change.
    pub target: MessageId,
    /// What to do.
    pub what: ChangeWhat,
    /// How many changes had completed when the read was issued (a read older than a change
    /// is read again).
    pub seen: u64,
}

/// *(v2)* What a [`PendingChange`] does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChangeWhat {
    /// The author replaces the text.
    Edit(String),
    /// The author deletes it.
    Delete,
    /// A moderator redacts it, for a reason.
    Redact(String),
}

/// *(v2)* What unread counts are read for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnreadFor {
    /// A login: the counts are sent as `Unread`, then the backlog replay starts.
    Login,
    /// A `RoomList` request: the counts go into its reply.
    RoomList(RequestId),
}

/// Work that needs storage reads or password hashing; answered by a [`Completion`].
#[derive(Debug)]
pub enum IoRequest {
    /// Verify `password` against the user's stored hash (against a dummy hash of the same cost
    /// if `user` is `None`), then report [`Completion::PasswordVerified`].
    VerifyPassword {
        /// The session logging in.
        session: SessionId,
        /// The user, if the name exists.
        user: Option<UserId>,
        /// The password given.
        password: String,
    },
    /// Hash a new password, then report [`Completion::PasswordHashed`].
    HashPassword {
        /// The session registering.
        session: SessionId,
        /// The password.
        password: String,
    },
    /// Look up a token by its hash, then report [`Completion::TokenFound`].
    FindToken {
        /// The session resuming.
        session: SessionId,
        /// SHA-256 of the token.
        hash: [u8; 32],
    },
    /// Load up to `limit` messages for `user` with ids above `after` (from the user's
    /// conversations, each since the user joined it), in id order, leaving out those sent from
    /// `device`; then report [`Completion::Backlog`].
    LoadBacklog {
        /// The session catching up.
        session: SessionId,
        /// Its user.
        user: UserId,
        /// Its device.
        device: DeviceId,
        /// Exclusive lower bound.
        after: MessageId,
        /// Most messages to load.
        limit: usize,
    },
    /// Load up to `limit` messages of `conv` with ids below `before`, newest first; then report
    /// [`Completion::History`].
    LoadHistory {
        /// The session asking.
        session: SessionId,
        /// Its request.
        request: RequestId,
        /// The conversation.
        conv: ConvId,
        /// Exclusive upper bound.
        before: Option<MessageId>,
        /// Most messages to load.
        limit: usize,
    },
    /// *(v2)* Read the message a change is for, then report [`Completion::MessageLoaded`].
    LoadMessage {
        /// The session asking.
        session: SessionId,
        /// The change, handed back.
        change: PendingChange,
    },
    /// *(v2)* Read a page of the audit log of `conv` ([`AUDIT_SERVER`] for account actions),
    /// then report [`Completion::AuditLoaded`].
    LoadAudit {
        /// The session asking.
        session: SessionId,
        /// The request to answer.
        request: RequestId,
        /// The room, or [`AUDIT_SERVER`].
        conv: ConvId,
        /// Only records with a position below this.
        before: Option<u64>,
        /// Most records to load.
        limit: usize,
    },
    /// *(v2)* Count `user`'s unread messages in each of `convs` (the messages of others
    /// above the position given with each conversation, and at most `up_to` if set; not
    /// changes, not deleted ones), up to `cap` each; then report [`Completion::Unread`] with
    /// one tally per conversation, in order.
    CountUnread {
        /// The session asking.
        session: SessionId,
        /// Its user.
        user: UserId,
        /// Each conversation, with the position after which messages are unread.
        convs: Vec<(ConvId, MessageId)>,
        /// Inclusive upper bound, if any.
        up_to: Option<MessageId>,
        /// Most messages counted per conversation.
        cap: u32,
        /// Handed back.
        purpose: UnreadFor,
    },
    /// *(v2)* Find up to `limit` messages below `before`, newest first, whose latest text
    /// holds every one of `words`, in the conversations `user` is a member of (all of each,
    /// as history); then report [`Completion::Found`].
    Search {
        /// The session asking.
        session: SessionId,
        /// Its request.
        request: RequestId,
        /// Its user.
        user: UserId,
        /// The words, lower case (see [`names::words`](crate::names::words)).
        words: Vec<String>,
        /// Exclusive upper bound.
        before: Option<MessageId>,
        /// Most messages to load.
        limit: usize,
    },
}

/// Cuts a read of `limit` rows (a page and one more, asked for to learn whether more exist)
/// to the page; true if more exist.
pub(super) fn one_page<T>(rows: &mut Vec<T>, limit: usize) -> bool {
    let page = limit.saturating_sub(1);
    let more = rows.len() > page;
    rows.truncate(page);
    more
}

/// The conversation id under which account actions (disable, enable) are audited: no room
/// has it.
pub const AUDIT_SERVER: ConvId = ConvId(0);

impl IoRequest {
    /// Whether this read answers a client with what storage holds (history, search, unread
    /// counts, the audit log), and so must see every write issued before it: a client that
    /// sends and then asks for history, without waiting for `Sent`, finds its message.
    /// Passwords, tokens, backlogs and a change's message are read for what the hub already
    /// knows is stored.
    pub fn sees_earlier_writes(&self) -> bool {
        matches!(
            self,
            Self::LoadHistory { .. }
                | Self::Search { .. }
                | Self::CountUnread { .. }
                | Self::LoadAudit { .. }
        )
    }

    /// The session the work is for (a failure closes it).
    pub fn session(&self) -> SessionId {
        match *self {
            Self::VerifyPassword { session, .. }
            | Self::HashPassword { session, .. }
            | Self::FindToken { session, .. }
            | Self::LoadBacklog { session, .. }
            | Self::LoadHistory { session, .. }
            | Self::LoadMessage { session, .. }
            | Self::LoadAudit { session, .. }
            | Self::CountUnread { session, .. }
            | Self::Search { session, .. } => session,
        }
    }
}

/// The result of an [`Output`] that needed I/O, handed back with
/// [`Hub::handle_completion`](crate::Hub::handle_completion).
#[derive(Debug)]
pub enum Completion {
    /// An [`Output::Persist`] is durable: its position (how storage numbered it, see
    /// [`Numbering`]), and the original `(id, sent_at)` if its message was not stored because
    /// the sender had stored the same client message id before.
    Persisted {
        /// The persist's ticket.
        ticket: Ticket,
        /// What storage reports of it.
        committed: Committed,
    },
    /// Answer to [`IoRequest::VerifyPassword`], with a fresh random token for the session.
    PasswordVerified {
        /// The session.
        session: SessionId,
        /// Whether the password matched.
        ok: bool,
        /// A new random token (used only if `ok`).
        token: String,
    },
    /// Answer to [`IoRequest::HashPassword`], with a fresh random token for the session.
    PasswordHashed {
        /// The session.
        session: SessionId,
        /// The PHC string.
        hash: String,
        /// A new random token.
        token: String,
    },
    /// Answer to [`IoRequest::FindToken`].
    TokenFound {
        /// The session.
        session: SessionId,
        /// The token's record, if it exists.
        record: Option<TokenRecord>,
    },
    /// Answer to [`IoRequest::LoadBacklog`].
    Backlog {
        /// The session.
        session: SessionId,
        /// The messages, in id order.
        messages: Vec<StoredMessage>,
    },
    /// Answer to [`IoRequest::LoadHistory`].
    History {
        /// The session.
        session: SessionId,
        /// The request.
        request: RequestId,
        /// The `limit` of the load.
        limit: usize,
        /// The messages, newest first.
        messages: Vec<StoredMessage>,
    },
    /// Answer to [`IoRequest::LoadAudit`].
    AuditLoaded {
        /// The session.
        session: SessionId,
        /// The request.
        request: RequestId,
        /// The `limit` of the load.
        limit: usize,
        /// The records, newest first, each with its position.
        records: Vec<(u64, AuditRecord)>,
    },
    /// Answer to [`IoRequest::LoadMessage`].
    MessageLoaded {
        /// The session.
        session: SessionId,
        /// The change, as asked.
        change: PendingChange,
        /// The message (`change.target`), if stored.
        message: Option<StoredMessage>,
    },
    /// Answer to [`IoRequest::CountUnread`].
    Unread {
        /// The session.
        session: SessionId,
        /// The user counted for.
        user: UserId,
        /// As asked.
        purpose: UnreadFor,
        /// One tally per conversation asked, in order.
        counts: Vec<UnreadTally>,
    },
    /// *(cluster)* Answer to [`Output::ReadDirectory`].
    Directory(Option<Box<Snapshot>>),
    /// *(cluster)* Answer to [`Output::ReadCommitted`], with what it asked.
    Committed {
        /// As asked.
        after: MessageId,
        /// As asked.
        up_to: Option<MessageId>,
        /// As asked.
        limit: usize,
        /// The messages in id order, or `None` if the read failed (it is tried again).
        messages: Option<Vec<StoredMessage>>,
    },
    /// Answer to [`IoRequest::Search`].
    Found {
        /// The session.
        session: SessionId,
        /// The request.
        request: RequestId,
        /// The user searched for.
        user: UserId,
        /// The `limit` of the search.
        limit: usize,
        /// The messages, newest first.
        messages: Vec<StoredMessage>,
    },
}

/// What follows a persist's completion.
#[derive(Debug)]
pub(super) enum After {
    Nothing,
    Reply(SessionId, RequestId, Reply),
    /// Reply (if any), then tell the room (and `also`) about a membership change.
    Member {
        reply: Option<(SessionId, RequestId, Reply)>,
        conv: ConvId,
        user: UserId,
        event: MemberEvent,
        also: Option<UserId>,
    },
    /// Reply `Session`, then start the backlog replay.
    LoggedIn(SessionId, RequestId, chat_proto::Session),
    /// Reply `Sent`, then deliver (unless it was a duplicate).
    Message(SessionId, RequestId, StoredMessage),
    /// Reply `Sent`, then deliver the change (counted as completed).
    Changed(SessionId, RequestId, StoredMessage),
    /// Reply `Done`, then tell the room its new topic.
    Topic {
        reply: (SessionId, RequestId),
        conv: ConvId,
        by: UserId,
    },
    /// Reply `Done`, then tell the user's other sessions the new read marker.
    MarkedRead {
        reply: (SessionId, RequestId),
        user: UserId,
        conv: ConvId,
        up_to: MessageId,
    },
    /// Reply `Done`, then tell those who share a conversation with `user` its new name.
    DisplayName {
        reply: (SessionId, RequestId),
        user: UserId,
    },
    /// Reply `Done`, then tell the room about a moderation action.
    Moderated {
        reply: (SessionId, RequestId),
        conv: ConvId,
        actor: UserId,
        target: UserId,
        action: ModAction,
        reason: String,
    },
    /// Reply `Done`, then close every session of `user` if the account was disabled.
    Disabled {
        reply: (SessionId, RequestId),
        user: UserId,
        disabled: bool,
    },
}

/// What a persist in flight waits for: what follows it, the memberships whose `since`
/// storage numbers at commit (the persist's position), and how many ids its messages take.
#[derive(Debug)]
pub(super) struct Pending {
    pub(super) after: After,
    pub(super) members: Vec<(ConvId, UserId)>,
    pub(super) messages: u64,
}

/// The outputs waiting for the driver, what to do when each persist in flight completes, and
/// the reads waiting for them.
/// Frames are encoded here, once per event however many recipients it has.
#[derive(Debug)]
pub(super) struct Outputs {
    queue: VecDeque<Output>,
    /// What follows each persist in flight that has a follow-up, in ticket order (persists
    /// complete in the order they were issued: the first is the one to take).
    pending: VecDeque<(Ticket, Pending)>,
    /// Memberships being stored, by how many persists in flight add them: one left and
    /// joined again is numbered by its last join, not by an earlier one.
    joining: FxHashMap<(ConvId, UserId), u32>,
    last_ticket: u64,
    /// Every persist up to this ticket has completed (they complete in issue order).
    completed_upto: u64,
    /// Reads a client asked for, each held until the persists issued before it complete
    /// ([`IoRequest::sees_earlier_writes`]), with the last of those persists' tickets.
    held_reads: VecDeque<(u64, IoRequest)>,
    /// Whether storage takes writes. While it does not, the hub refuses requests that write,
    /// and reads are not held (the persists in flight may take long to complete, and reads go
    /// on meanwhile).
    storage_available: bool,
    max_frame_len: usize,
}

impl Outputs {
    pub(super) fn new(max_frame_len: usize) -> Self {
        Self {
            queue: VecDeque::new(),
            pending: VecDeque::new(),
            joining: FxHashMap::default(),
            last_ticket: 0,
            completed_upto: 0,
            held_reads: VecDeque::new(),
            storage_available: true,
            max_frame_len,
        }
    }

    pub(super) fn pop(&mut self) -> Option<Output> {
        self.queue.pop_front()
    }

    /// Encodes an event, logging (not sending) one that cannot fit a frame.
    pub(super) fn encode(&self, msg: &ServerMessage) -> Option<EncodedFrame> {
        match encode(msg, self.max_frame_len) {
            Ok(frame) => Some(frame),
            Err(e) => {
                tracing::error!(error = %e, "cannot encode an event");
                None
            }
        }
    }

    pub(super) fn send_frame(&mut self, session: SessionId, frame: EncodedFrame, droppable: bool) {
        self.queue.push_back(Output::Send {
            session,
            frame,
            droppable,
        });
    }

    /// Queues a live message for `session` (see [`Output::Deliver`]).
    pub(super) fn deliver(&mut self, session: SessionId, frame: EncodedFrame, message: MessageId) {
        self.queue.push_back(Output::Deliver {
            session,
            frame,
            message,
        });
    }

    pub(super) fn send(&mut self, session: SessionId, msg: &ServerMessage, droppable: bool) {
        if let Some(frame) = self.encode(msg) {
            self.send_frame(session, frame, droppable);
        }
    }

    /// Sends one frame to each of `sessions`.
    pub(super) fn send_to(
        &mut self,
        sessions: impl IntoIterator<Item = SessionId>,
        frame: &EncodedFrame,
        droppable: bool,
    ) {
        for session in sessions {
            self.send_frame(session, frame.clone(), droppable);
        }
    }

    pub(super) fn reply(&mut self, session: SessionId, request: RequestId, reply: Reply) {
        let msg = ServerMessage::Ok { id: request, reply };
        match encode(&msg, self.max_frame_len) {
            Ok(frame) => self.send_frame(session, frame, false),
            Err(_) => self.fail(
                session,
                request,
                ErrorReply::new(ErrorCode::TooLarge, "the reply does not fit a frame"),
            ),
        }
    }

    /// Sends an event made of a list, dropping items from its end until it fits a frame.
    pub(super) fn send_fitting<T: Clone>(
        &mut self,
        session: SessionId,
        mut items: Vec<T>,
        make: impl Fn(Vec<T>) -> ServerMessage,
    ) {
        loop {
            match encode(&make(items.clone()), self.max_frame_len) {
                Ok(frame) => return self.send_frame(session, frame, false),
                Err(CodecError::FrameTooLarge { len, max }) if !items.is_empty() => {
                    let keep = (items.len() * max / len.max(1)).saturating_sub(1);
                    items.truncate(keep.min(items.len() - 1));
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot encode an event");
                    return;
                }
            }
        }
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
            match encode(&msg, self.max_frame_len) {
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

    pub(super) fn fail(&mut self, session: SessionId, request: RequestId, error: ErrorReply) {
        self.send(session, &ServerMessage::Err { id: request, error }, false);
    }

    /// Sends `error` (if any), then closes the connection.
    pub(super) fn close(&mut self, session: SessionId, error: Option<ErrorReply>) {
        if let Some(error) = error {
            self.send(session, &ServerMessage::Error(error), false);
        }
        self.queue.push_back(Output::Close { session });
    }

    pub(super) fn persist(&mut self, writes: Vec<Write>, after: After) {
        self.last_ticket += 1;
        let ticket = Ticket(self.last_ticket);
        let members: Vec<(ConvId, UserId)> = writes
            .iter()
            .filter_map(|w| match *w {
                Write::AddMember { conv, user, since } if since == UNNUMBERED => Some((conv, user)),
                _ => None,
            })
            .collect();
        for &member in &members {
            *self.joining.entry(member).or_default() += 1;
        }
        let messages = writes
            .iter()
            .filter(|w| matches!(w, Write::InsertMessage(_)))
            .count() as u64;
        if !matches!(after, After::Nothing) || !members.is_empty() || messages > 0 {
            let pending = Pending {
                after,
                members,
                messages,
            };
            self.pending.push_back((ticket, pending));
        }
        self.queue.push_back(Output::Persist { ticket, writes });
    }

    pub(super) fn read_directory(&mut self) {
        self.queue.push_back(Output::ReadDirectory);
    }

    pub(super) fn share(&mut self, message: NodeMessage) {
        self.queue.push_back(Output::Share(message));
    }

    pub(super) fn read_committed(
        &mut self,
        after: MessageId,
        up_to: Option<MessageId>,
        limit: usize,
    ) {
        self.queue.push_back(Output::ReadCommitted {
            after,
            up_to,
            limit,
        });
    }

    /// Queues `request`; a read a client asked for waits for the persists issued before it.
    pub(super) fn io(&mut self, request: IoRequest) {
        if self.storage_available
            && request.sees_earlier_writes()
            && self.last_ticket > self.completed_upto
        {
            self.held_reads.push_back((self.last_ticket, request));
        } else {
            self.queue.push_back(Output::Io(request));
        }
    }

    pub(super) fn storage_available(&self) -> bool {
        self.storage_available
    }

    /// Storage stopped or resumed taking writes; when it stops, the held reads go at once.
    pub(super) fn set_storage_available(&mut self, available: bool) {
        self.storage_available = available;
        if !available {
            self.release_reads(u64::MAX);
        }
    }

    /// Queues the held reads whose persists have all completed by `upto`.
    fn release_reads(&mut self, upto: u64) {
        while self
            .held_reads
            .front()
            .is_some_and(|&(after, _)| after <= upto)
        {
            if let Some((_, request)) = self.held_reads.pop_front() {
                self.queue.push_back(Output::Io(request));
            }
        }
    }

    /// What was to follow the persist `ticket`, now that it completed; its memberships only
    /// where no later persist in flight adds them again.
    pub(super) fn completed(&mut self, ticket: Ticket) -> Option<Pending> {
        self.completed_upto = self.completed_upto.max(ticket.0);
        self.release_reads(self.completed_upto);
        // Completions come in ticket order: the first in the queue, or one with nothing to
        // follow it (below the first). Out of order, it is looked for.
        let at = match self.pending.front() {
            Some(&(first, _)) if first == ticket => 0,
            Some(&(first, _)) if first > ticket => return None,
            _ => self
                .pending
                .binary_search_by_key(&ticket, |&(ticket, _)| ticket)
                .ok()?,
        };
        let (_, mut pending) = self.pending.remove(at)?;
        pending.members.retain(|member| {
            let Some(count) = self.joining.get_mut(member) else {
                return false;
            };
            *count -= 1;
            if *count > 0 {
                return false;
            }
            self.joining.remove(member);
            true
        });
        Some(pending)
    }
}
