//! *(cluster)* One node of several on one PostgreSQL database: what the engine tells the other
//! nodes (its committed batches, its users' typing) goes out on the [`Bus`] and theirs comes
//! in; every loss the bus reports makes the engine read what it missed from the database.
//! Who is online here rides on the bus's heartbeats (checked every [`PRESENCE_EVERY`]), and a
//! node that goes down takes its users' presence with it.
//!
//! The bus is joined before the engine loads its state, so no batch committed after the load
//! can pass unseen: one committed before it and received after is applied once (the engine
//! skips what it has).

use std::time::Duration;

use bytes::Bytes;
use chat_core::{Config, Engine, EngineError, NodeMessage, Storage, UserId};
use tokio::task::JoinHandle;

use crate::bus::{Bus, BusConfig, BusError, BusEvent, BusStatsReader};

/// How often the users online here are compared with what the heartbeats carry.
pub const PRESENCE_EVERY: Duration = Duration::from_millis(500);

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
            let mut presence = tokio::time::interval(PRESENCE_EVERY);
            // None until the first look: then even an empty list is announced.
            let mut online: Option<Vec<UserId>> = None;
            loop {
                tokio::select! {
                    message = commits.recv() => match message {
                        Some(message) => publish(&bus, &message),
                        // The engine stopped.
                        None => break,
                    },
                    Some(event) = events.recv() => on_event(&link, event),
                    _ = presence.tick() => {
                        let mut now = link.online_users().await;
                        now.sort_unstable();
                        if online.as_ref() != Some(&now) {
                            match chat_proto::encode_value(&now) {
                                Ok(payload) => bus.set_presence(Bytes::from(payload)),
                                Err(error) => tracing::error!(%error, "cannot encode presence"),
                            }
                            online = Some(now);
                        }
                    }
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

fn publish(bus: &Bus, message: &NodeMessage) {
    match chat_proto::encode_value(message) {
        Ok(payload) => bus.publish(Bytes::from(payload)),
        // Cannot happen for these types; the others see the hole in the ids and read it.
        Err(error) => tracing::error!(%error, "cannot encode a message for the other nodes"),
    }
}

fn on_event(engine: &Engine, event: BusEvent) {
    match event {
        BusEvent::Batch { node, payload } => {
            match chat_proto::decode_value::<NodeMessage>(&payload) {
                Ok(message) => engine.handle_node_message(message),
                Err(error) => {
                    tracing::error!(%node, %error, "an undecodable message: reading from the database");
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
        BusEvent::NodeDown { node } => {
            tracing::warn!(%node, "node down: its users are offline");
            engine.handle_remote_presence(node, Vec::new());
        }
        // A node that has not announced its users yet has an empty payload: none.
        BusEvent::Presence { payload, .. } if payload.is_empty() => {}
        BusEvent::Presence { node, payload } => {
            match chat_proto::decode_value::<Vec<UserId>>(&payload) {
                Ok(users) => engine.handle_remote_presence(node, users),
                Err(error) => tracing::error!(%node, %error, "undecodable presence"),
            }
        }
    }
}
