//! *(cluster)* One node of several on one PostgreSQL database: the engine's committed batches
//! go out on the [`Bus`], the other nodes' come in and are applied in id order, and every
//! loss the bus reports makes the engine read what it missed from the database.
//!
//! The bus is joined before the engine loads its state, so no batch committed after the load
//! can pass unseen: one committed before it and received after is applied once (the engine
//! skips what it has).

use bytes::Bytes;
use chat_core::{CommittedBatch, Config, Engine, EngineError, Storage};
use tokio::task::JoinHandle;

use crate::bus::{Bus, BusConfig, BusError, BusEvent, BusStatsReader};

/// Why a node could not join its cluster.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The bus could not be joined.
    #[error(transparent)]
    Bus(#[from] BusError),
    /// The engine could not start.
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// The link between this node's engine and the bus; it ends when the engine stops.
#[derive(Debug)]
pub struct Node {
    stats: BusStatsReader,
    task: JoinHandle<()>,
}

impl Node {
    /// Joins the bus, then starts the engine on `storage` as one node of a cluster
    /// ([`Config::cluster`]).
    ///
    /// # Errors
    /// If NATS cannot be reached or the engine cannot start.
    pub async fn start(
        storage: impl Storage,
        config: Config,
        bus: BusConfig,
    ) -> Result<(Engine, Self), ClusterError> {
        let (bus, mut events) = Bus::connect(bus).await?;
        let (engine, mut commits) = Engine::start_clustered(storage, config).await?;
        let stats = bus.stats_reader();
        let link = engine.clone();
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    batch = commits.recv() => match batch {
                        Some(batch) => publish(&bus, &batch),
                        // The engine stopped.
                        None => break,
                    },
                    Some(event) = events.recv() => on_event(&link, event),
                }
            }
            bus.close().await;
        });
        Ok((engine, Self { stats, task }))
    }

    /// The bus's counters, for `/metrics` ([`ServerConfig::bus`](crate::ServerConfig)).
    pub fn stats(&self) -> BusStatsReader {
        self.stats.clone()
    }

    /// Waits until the link has ended (after the engine stopped) and the bus said goodbye.
    pub async fn join(self) {
        let _ = self.task.await;
    }
}

fn publish(bus: &Bus, batch: &CommittedBatch) {
    match chat_proto::encode_value(batch) {
        Ok(payload) => bus.publish(Bytes::from(payload)),
        // Cannot happen for these types; the others see the hole in the ids and read it.
        Err(error) => tracing::error!(%error, "cannot encode a committed batch"),
    }
}

fn on_event(engine: &Engine, event: BusEvent) {
    match event {
        BusEvent::Batch { node, payload } => {
            match chat_proto::decode_value::<CommittedBatch>(&payload) {
                Ok(batch) => engine.handle_committed(batch),
                Err(error) => {
                    tracing::error!(%node, %error, "an undecodable batch: reading from the database");
                    engine.handle_gap();
                }
            }
        }
        BusEvent::Gap { node } => {
            tracing::warn!(%node, "batches lost on the bus: reading from the database");
            engine.handle_gap();
        }
        BusEvent::Reconnected => {
            tracing::warn!("reconnected to NATS: reading what was missed from the database");
            engine.handle_gap();
        }
        BusEvent::NodeUp { node } => tracing::info!(%node, "node up"),
        BusEvent::NodeDown { node } => tracing::warn!(%node, "node down"),
        BusEvent::Presence { .. } => {}
    }
}
