//! [`EngineStats`]: what the engine has done, for metrics. The engine task and the writer
//! publish into shared atomics; [`Engine::stats`](super::Engine::stats) reads a snapshot.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

/// A snapshot of the engine's counters (totals since it started, except the gauges noted).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EngineStats {
    /// Whether storage takes writes now (false while the writer retries a failed commit).
    pub storage_available: bool,
    /// Users with at least one logged-in session now (a gauge).
    pub online: u64,
    /// Messages accepted for storage (resends not counted).
    pub messages_accepted: u64,
    /// Requests refused by the per-connection rate limit.
    pub rate_limited: u64,
    /// Logins (password or token) that failed.
    pub failed_logins: u64,
    /// Droppable frames (typing, presence) dropped because a connection's outbox was full.
    pub outbox_drops: u64,
    /// Times a live connection fell behind and was switched to catching up from storage.
    pub readers_behind: u64,
    /// Connections closed because their outbox overflowed, or they took nothing while
    /// catching up for the stall timeout.
    pub slow_consumers: u64,
    /// Transactions committed by the writer.
    pub commits: u64,
    /// Persists committed, over all transactions (`/ commits` is the mean batch size).
    pub committed_persists: u64,
    /// Time spent committing, in microseconds, over all transactions.
    pub commit_micros: u64,
    /// The largest batch committed in one transaction.
    pub max_commit_batch: u64,
    /// *(cluster)* Batches of other nodes applied.
    pub remote_batches: u64,
    /// *(cluster)* Reads from the database of what other nodes committed (a hole that did
    /// not fill in time, a gap on the bus).
    pub recoveries: u64,
}

/// The shared counters behind [`EngineStats`]: each field has one writer.
#[derive(Debug)]
pub(super) struct Counters {
    /// Storage takes writes (the engine task sets it from the writer's reports).
    pub(super) storage_available: AtomicBool,
    online: AtomicU64,
    messages_accepted: AtomicU64,
    rate_limited: AtomicU64,
    failed_logins: AtomicU64,
    pub(super) outbox_drops: AtomicU64,
    pub(super) readers_behind: AtomicU64,
    pub(super) slow_consumers: AtomicU64,
    commits: AtomicU64,
    committed_persists: AtomicU64,
    commit_micros: AtomicU64,
    max_commit_batch: AtomicU64,
    remote_batches: AtomicU64,
    recoveries: AtomicU64,
}

impl Default for Counters {
    fn default() -> Self {
        Self {
            storage_available: AtomicBool::new(true),
            online: AtomicU64::default(),
            messages_accepted: AtomicU64::default(),
            rate_limited: AtomicU64::default(),
            failed_logins: AtomicU64::default(),
            outbox_drops: AtomicU64::default(),
            readers_behind: AtomicU64::default(),
            slow_consumers: AtomicU64::default(),
            commits: AtomicU64::default(),
            committed_persists: AtomicU64::default(),
            commit_micros: AtomicU64::default(),
            max_commit_batch: AtomicU64::default(),
            remote_batches: AtomicU64::default(),
            recoveries: AtomicU64::default(),
        }
    }
}

impl Counters {
    /// Publishes the hub's counts (by the engine task, after each batch of work).
    pub(super) fn publish_hub(&self, stats: chat_hub::Stats, online: usize) {
        self.online.store(online as u64, Relaxed);
        self.messages_accepted
            .store(stats.messages_accepted, Relaxed);
        self.rate_limited.store(stats.rate_limited, Relaxed);
        self.failed_logins.store(stats.failed_logins, Relaxed);
        self.remote_batches.store(stats.remote_batches, Relaxed);
        self.recoveries.store(stats.recoveries, Relaxed);
    }

    /// Records one commit (by the writer).
    pub(super) fn record_commit(&self, persists: usize, took: std::time::Duration) {
        self.commits.fetch_add(1, Relaxed);
        self.committed_persists.fetch_add(persists as u64, Relaxed);
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.commit_micros.fetch_add(micros, Relaxed);
        self.max_commit_batch.fetch_max(persists as u64, Relaxed);
    }

    pub(super) fn snapshot(&self) -> EngineStats {
        EngineStats {
            storage_available: self.storage_available.load(Relaxed),
            online: self.online.load(Relaxed),
            messages_accepted: self.messages_accepted.load(Relaxed),
            rate_limited: self.rate_limited.load(Relaxed),
            failed_logins: self.failed_logins.load(Relaxed),
            outbox_drops: self.outbox_drops.load(Relaxed),
            readers_behind: self.readers_behind.load(Relaxed),
            slow_consumers: self.slow_consumers.load(Relaxed),
            commits: self.commits.load(Relaxed),
            committed_persists: self.committed_persists.load(Relaxed),
            commit_micros: self.commit_micros.load(Relaxed),
            max_commit_batch: self.max_commit_batch.load(Relaxed),
            remote_batches: self.remote_batches.load(Relaxed),
            recoveries: self.recoveries.load(Relaxed),
        }
    }
}
