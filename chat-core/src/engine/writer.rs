//! The group-commit writer: commits everything queued in one transaction, then reports each
//! persist back in order.
//!
//! A failed commit is not the end: storage that cannot take writes (a full disk, a database
//! that went away) usually comes back. The writer tells the engine storage is down — the hub
//! then refuses new writes with `Unavailable` while reads and live sessions go on — and
//! retries the same batch with back-off until it commits, then says storage is back. Nothing
//! in the batch was acknowledged, and its persists are reported only once durable, so nothing
//! acknowledged is lost and nothing is acknowledged early. At shutdown it retries for a
//! bounded time, then gives the batch up (still unacknowledged).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::{Control, Counters};
use crate::storage::Storage;
use crate::{CommittedBatch, Completion, ConvId, NodeMessage, Ticket, UserId, Write};

/// Most persists committed in one transaction.
const MAX_GROUP_COMMIT: usize = 4096;
/// The first wait before retrying a failed commit; it doubles up to [`MAX_RETRY_WAIT`].
const FIRST_RETRY_WAIT: Duration = Duration::from_millis(100);
const MAX_RETRY_WAIT: Duration = Duration::from_secs(5);
/// How long a shutting-down engine keeps retrying a failed commit.
const SHUTDOWN_RETRY: Duration = Duration::from_secs(5);

/// Runs the writer until the queue closes. With `commits` (a cluster), each committed batch
/// is also sent there as the other nodes apply it.
pub(super) async fn run(
    storage: impl Storage,
    mut queue: mpsc::Receiver<(Ticket, Vec<Write>)>,
    control: mpsc::UnboundedSender<Control>,
    counters: Arc<Counters>,
    commits: Option<mpsc::UnboundedSender<NodeMessage>>,
) {
    let mut tickets = Vec::new();
    let mut batch: Vec<Vec<Write>> = Vec::new();
    // Rooms storage adopted (see `Committed::adopted`): writes the hub issued before it
    // learnt of it still name its own room.
    let mut adopted: Vec<(ConvId, ConvId)> = Vec::new();
    // Registrations that lost their name to another node (see `Committed::taken`): writes
    // the hub issued before it learnt of it still name the user.
    let mut taken: Vec<UserId> = Vec::new();
    while let Some((ticket, writes)) = queue.recv().await {
        tickets.push(ticket);
        batch.push(writes);
        while tickets.len() < MAX_GROUP_COMMIT {
            match queue.try_recv() {
                Ok((ticket, writes)) => {
                    tickets.push(ticket);
                    batch.push(writes);
                }
                Err(_) => break,
            }
        }
        // Only after a conflict between nodes: not a pass over every write of every commit.
        if !taken.is_empty() || !adopted.is_empty() {
            for writes in &mut batch {
                writes.retain(|w| !taken.iter().any(|&user| w.names_user(user)));
                for write in writes {
                    for &(ours, theirs) in &adopted {
                        write.rename_conv(ours, theirs);
                    }
                }
            }
        }
        let started = tokio::time::Instant::now();
        let Some(committed) = commit(&storage, &batch, &queue, &control).await else {
            tracing::error!(
                persists = batch.len(),
                "shutting down with storage still failing: these writes were never acknowledged and are dropped"
            );
            return;
        };
        counters.record_commit(batch.len(), started.elapsed());
        adopted.extend(committed.iter().filter_map(|c| c.adopted));
        taken.extend(committed.iter().filter_map(|c| c.taken));
        if let Some(commits) = &commits {
            let batch = CommittedBatch::new(&batch, &committed);
            let _ = commits.send(NodeMessage::Committed(batch));
        }
        let completions = tickets
            .drain(..)
            .zip(committed)
            .map(|(ticket, committed)| Completion::Persisted { ticket, committed })
            .collect();
        let _ = control.send(Control::Committed(completions));
        batch.clear();
    }
}

/// Commits `batch`, retrying with back-off while storage fails; `None` if the engine shut
/// down (the queue closed) and storage still failed for [`SHUTDOWN_RETRY`].
async fn commit(
    storage: &impl Storage,
    batch: &[Vec<Write>],
    queue: &mpsc::Receiver<(Ticket, Vec<Write>)>,
    control: &mpsc::UnboundedSender<Control>,
) -> Option<Vec<crate::Committed>> {
    let mut wait = FIRST_RETRY_WAIT;
    let mut failing_since = None;
    loop {
        match storage.apply(batch).await {
            Ok(committed) => {
                if failing_since.is_some() {
                    tracing::warn!("storage takes writes again; writes are accepted");
                    let _ = control.send(Control::Storage { available: true });
                }
                return Some(committed);
            }
            Err(error) => {
                // One line per attempt: at most one every MAX_RETRY_WAIT once it persists.
                tracing::error!(
                    %error,
                    retry_in = ?wait,
                    "STORAGE WRITE FAILED: refusing writes until it recovers"
                );
                let since = match failing_since {
                    Some(since) => since,
                    None => {
                        let _ = control.send(Control::Storage { available: false });
                        *failing_since.insert(tokio::time::Instant::now())
                    }
                };
                if queue.is_closed() && since.elapsed() >= SHUTDOWN_RETRY {
                    return None;
                }
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(MAX_RETRY_WAIT);
            }
        }
    }
}
