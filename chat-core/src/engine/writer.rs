//! The group-commit writer: commits everything queued in one transaction, then reports each
//! persist back in order.

use std::sync::Arc;

use tokio::sync::mpsc;

use super::{Control, Counters};
use crate::storage::Storage;
use crate::{Completion, Ticket, Write};

/// Most persists committed in one transaction.
const MAX_GROUP_COMMIT: usize = 4096;

pub(super) async fn run(
    storage: impl Storage,
    mut queue: mpsc::Receiver<(Ticket, Vec<Write>)>,
    control: mpsc::UnboundedSender<Control>,
    counters: Arc<Counters>,
) {
    let mut tickets = Vec::new();
    let mut batch = Vec::new();
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
        let started = tokio::time::Instant::now();
        let applied = storage.apply(&batch).await;
        counters.record_commit(batch.len(), started.elapsed());
        match applied {
            Ok(duplicates) => {
                for (ticket, duplicate) in tickets.drain(..).zip(duplicates) {
                    let _ = control.send(Control::Completion(Completion::Persisted {
                        ticket,
                        duplicate,
                    }));
                }
                batch.clear();
            }
            Err(error) => {
                let _ = control.send(Control::WriterFailed(error));
                return;
            }
        }
    }
}
