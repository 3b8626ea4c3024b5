//! The SQLite write path alone: `Store::apply` with batches shaped like the DM load's (400
//! messages from 200 senders in 100 direct conversations, texts like chat-load's, client message
//! ids made by `ClientMsgIds` as if 100k messages a second went by), and the
//! process's CPU time per message. No network, no hub: what storing a message costs.
//!
//! ```text
//! cargo run --release -p chat-core --example write_path [BATCHES] [--process]
//! ```

use std::time::Instant;

use chat_proto::ClientMsgIds;

use chat_core::{
    ConvId, DeviceId, Durability, MessageId, MessageKind, Storage, Store, StoredMessage, UserId,
    Write,
};

const SENDERS: u64 = 200;
const PER_BATCH: u64 = 400;

/// CPU time of this process so far (user + system), in milliseconds; `None` off Linux.
fn cpu_millis() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let fields: Vec<&str> = stat.rsplit_once(") ")?.1.split(' ').collect();
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // USER_HZ is 100 on every Linux this runs on.
    Some(ticks * 10)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut batches = 250u64;
    let mut durability = Durability::Full;
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--process" => durability = Durability::Process,
            n => batches = n.parse()?,
        }
    }
    let dir = tempfile::tempdir()?;
    let store = Store::open_with(dir.path().join("chat.db"), durability).await?;
    let mut id = 0;
    let mut client_ids = vec![ClientMsgIds::default(); SENDERS as usize];
    let cpu_before = cpu_millis();
    let started = Instant::now();
    for batch in 0..batches {
        let mut persists = Vec::with_capacity(PER_BATCH as usize);
        for i in 0..PER_BATCH {
            id += 1;
            let sender = (batch * 7 + i * 13) % SENDERS;
            // A message every 10 µs; the id itself stands in for the random bits.
            let client_msg_id = client_ids[sender as usize].next(1_700_000_000_000 + id / 100, id);
            persists.push(vec![Write::InsertMessage(StoredMessage {
                id: MessageId(id),
                conv: ConvId(1 + sender / 2),
                sender: UserId(1 + sender),
                device: DeviceId(1 + sender),
                client_msg_id,
                sent_at: 1_700_000_000_000 + id,
                // As chat-load's 32-byte texts: a 20-digit stamp, then filler.
                text: format!("{:020}xxxxxxxxxxxx", 1_700_000_000_000_000 + id * 9),
                kind: MessageKind::Message,
            })]);
        }
        store.apply(&persists).await?;
    }
    let elapsed = started.elapsed();
    let messages = batches * PER_BATCH;
    print!(
        "{messages} messages in batches of {PER_BATCH} ({durability:?}): {:.0} msgs/s",
        messages as f64 / elapsed.as_secs_f64()
    );
    if let (Some(before), Some(after)) = (cpu_before, cpu_millis()) {
        print!(
            ", {:.2} us CPU per message",
            (after - before) as f64 * 1000.0 / messages as f64
        );
    }
    println!();
    store.close().await;
    Ok(())
}
