//! [`Storage`]: what the engine needs from a database, and [`MemoryStorage`], the reference
//! model of it kept in memory.
//!
//! The engine's driver task is generic over `Storage`; [`Engine`](crate::Engine),
//! [`Connection`](crate::Connection) and every front end are not, so a new backend is one new
//! implementation of this trait, held to the same behaviour by `tests/storage_contract.rs`.

use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use chat_hub::MemoryStore;

use crate::store::StoreError;
use crate::{
    AuditRecord, Committed, ConvId, DeviceId, MessageId, Snapshot, StoredMessage, TokenRecord,
    UnixMillis, UnreadTally, UserId, Write,
};

/// Durable state: the hub's writes, the message archive, and the secrets the hub never holds
/// (password hashes, tokens).
///
/// # Contract
/// - [`apply`](Self::apply) makes a batch of persists durable in one transaction, in order:
///   when it returns `Ok`, every write survives a crash (to the backend's durability setting);
///   on `Err`, none of the batch is written. A message whose sender already stored its client
///   message id is not stored again; the original's `(id, sent_at)` is reported for its persist.
/// - [`backlog`](Self::backlog) returns, in id order, the messages of every conversation `user`
///   is a member of with ids above both `after` and the membership's `since`, except those sent
///   from `device`.
/// - [`history`](Self::history) returns a conversation's messages below `before`, newest first,
///   each with its latest text (changes are not messages: they come only in the backlog).
/// - *(v2)* A [`Write::ChangeMessage`] edits a message, or deletes it: its text and the text
///   of every edit of it are erased from storage, not hidden.
/// - *(v2)* A [`Write::SetReadMarker`] never lowers a stored marker.
/// - *(v2)* [`unread`](Self::unread) counts real messages of others (not changes, not deleted
///   ones) over the `(conv_id, id)` index, at most `cap` per conversation.
/// - *(v2)* [`search`](Self::search) matches the words of a message's latest text (runs of
///   letters and digits, compared in lower case, as `chat_hub::names::words` splits them);
///   a deleted message is never found, and its words leave the index.
/// - [`snapshot`](Self::snapshot) drops tokens expired at `now` and returns what the hub loads,
///   with the block of ids the hub assigns users, conversations and devices from
///   ([`Snapshot::ids`]): disjoint from every block an earlier snapshot of a database that
///   several nodes share handed out (PostgreSQL), or [`IdBlock::ALL`](crate::IdBlock::ALL)
///   where one node writes (SQLite, memory).
pub trait Storage: Clone + Send + Sync + 'static {
    /// Everything the hub keeps in memory, with the hub's id block. Also drops tokens expired
    /// at `now`.
    ///
    /// # Errors
    /// If the database fails; [`StoreError::IdBlocksUsedUp`] if no block of ids is left.
    fn snapshot(
        &self,
        now: UnixMillis,
    ) -> impl Future<Output = Result<Snapshot, StoreError>> + Send;

    /// *(cluster)* What [`snapshot`](Self::snapshot) returns, as a read only: no housekeeping,
    /// no block of ids taken (`ids` means nothing). A node reads it after batches of other
    /// nodes were lost on the way, to learn the users, rooms and memberships they made.
    fn directory(&self) -> impl Future<Output = Result<Snapshot, StoreError>> + Send;

    /// Applies several persists in one transaction, in order, numbering their messages and
    /// memberships as [`Numbering`](crate::Numbering) says, under a lock that makes ids one
    /// sequence in commit order (a writer on another node waits). For each persist, returns
    /// its position and the original `(id, sent_at)` if its message duplicated an earlier
    /// send.
    fn apply(
        &self,
        persists: &[Vec<Write>],
    ) -> impl Future<Output = Result<Vec<Committed>, StoreError>> + Send;

    /// Up to `limit` messages for `user` with ids above `after`, from each of the user's
    /// conversations since joining it, leaving out those sent from `device`; in id order.
    fn backlog(
        &self,
        user: UserId,
        device: DeviceId,
        after: MessageId,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<StoredMessage>, StoreError>> + Send;

    /// *(cluster)* Every message (and change) with an id in `(after, up_to]` (above `after` if
    /// `up_to` is `None`), in id order, at most `limit`: what another node committed, when
    /// its batch was lost on the way.
    fn committed(
        &self,
        after: MessageId,
        up_to: Option<MessageId>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<StoredMessage>, StoreError>> + Send;

    /// Up to `limit` messages of `conv` with ids below `before`, newest first.
    fn history(
        &self,
        conv: ConvId,
        before: Option<MessageId>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<StoredMessage>, StoreError>> + Send;

    /// The stored password hash (PHC string) of `user`.
    fn password_hash(
        &self,
        user: UserId,
    ) -> impl Future<Output = Result<Option<String>, StoreError>> + Send;

    /// The token whose SHA-256 is `hash`.
    fn find_token(
        &self,
        hash: [u8; 32],
    ) -> impl Future<Output = Result<Option<TokenRecord>, StoreError>> + Send;

    /// *(v2)* The stored message or change `id`.
    fn message(
        &self,
        id: MessageId,
    ) -> impl Future<Output = Result<Option<StoredMessage>, StoreError>> + Send;

    /// *(v2)* Up to `limit` moderation audit records of `conv`, newest first, each with its
    /// position in the whole log (1, 2, …), only those below `before` if given.
    fn audit_log(
        &self,
        conv: ConvId,
        before: Option<u64>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<(u64, AuditRecord)>, StoreError>> + Send;

    /// *(v2)* For each `(conv, after)` of `convs`: the messages of `conv` with ids above
    /// `after` (and at most `up_to`, if given) not sent by `user` — messages only, not changes
    /// or deleted ones — counted up to `cap`, with the newest of them. One tally per
    /// conversation, in the order asked.
    fn unread(
        &self,
        user: UserId,
        convs: &[(ConvId, MessageId)],
        up_to: Option<MessageId>,
        cap: u32,
    ) -> impl Future<Output = Result<Vec<UnreadTally>, StoreError>> + Send;

    /// *(v2)* Up to `limit` messages (not changes, not deleted ones) with ids below `before`
    /// whose latest text holds every one of `words` (lower case, letters and digits only),
    /// from the conversations `user` is a member of (all of each, as history); newest first.
    fn search(
        &self,
        user: UserId,
        words: &[String],
        before: Option<MessageId>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<StoredMessage>, StoreError>> + Send;

    /// Closes the backend, waiting for work in flight.
    fn close(&self) -> impl Future<Output = ()> + Send;
}

/// Storage in memory: nothing survives the process. For tests and for embedders that keep
/// their own persistence; every operation completes at once and never fails.
#[derive(Clone, Debug, Default)]
pub struct MemoryStorage {
    state: Arc<Mutex<MemoryStore>>,
}

impl MemoryStorage {
    /// Empty storage.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, MemoryStore> {
        // The model has no invariant a panic half-way could break beyond one write.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Storage for MemoryStorage {
    async fn snapshot(&self, now: UnixMillis) -> Result<Snapshot, StoreError> {
        Ok(self.lock().snapshot(now))
    }

    async fn directory(&self) -> Result<Snapshot, StoreError> {
        Ok(self.lock().snapshot(0))
    }

    async fn apply(&self, persists: &[Vec<Write>]) -> Result<Vec<Committed>, StoreError> {
        let mut state = self.lock();
        Ok(persists
            .iter()
            .map(|writes| state.apply(writes.clone()))
            .collect())
    }

    async fn backlog(
        &self,
        user: UserId,
        device: DeviceId,
        after: MessageId,
        limit: usize,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        Ok(self.lock().backlog(user, device, after, limit))
    }

    async fn committed(
        &self,
        after: MessageId,
        up_to: Option<MessageId>,
        limit: usize,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        Ok(self.lock().committed(after, up_to, limit))
    }

    async fn history(
        &self,
        conv: ConvId,
        before: Option<MessageId>,
        limit: usize,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        Ok(self.lock().history(conv, before, limit))
    }

    async fn password_hash(&self, user: UserId) -> Result<Option<String>, StoreError> {
        Ok(self.lock().password_hash(user))
    }

    async fn find_token(&self, hash: [u8; 32]) -> Result<Option<TokenRecord>, StoreError> {
        Ok(self.lock().find_token(&hash))
    }

    async fn message(&self, id: MessageId) -> Result<Option<StoredMessage>, StoreError> {
        Ok(self.lock().message(id))
    }

    async fn audit_log(
        &self,
        conv: ConvId,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<(u64, AuditRecord)>, StoreError> {
        Ok(self.lock().audit_log(conv, before, limit))
    }

    async fn unread(
        &self,
        user: UserId,
        convs: &[(ConvId, MessageId)],
        up_to: Option<MessageId>,
        cap: u32,
    ) -> Result<Vec<UnreadTally>, StoreError> {
        Ok(self.lock().unread(user, convs, up_to, cap))
    }

    async fn search(
        &self,
        user: UserId,
        words: &[String],
        before: Option<MessageId>,
        limit: usize,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        Ok(self.lock().search(user, words, before, limit))
    }

    async fn close(&self) {}
}
