//! [`Metrics`]: the server's Prometheus metrics (prometheus-client), served at `GET /metrics`.
//!
//! The server counts what it sees (connections by transport, messages delivered, HTTP
//! requests); the engine's own counts ([`chat_core::EngineStats`]) and those of the bus to
//! other nodes ([`BusStats`], if there is one) are read at each scrape.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use chat_core::Engine;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabelSet, EncodeLabelValue, EncodeMetric, LabelValueEncoder,
};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::registry::Registry;

use crate::bus::{BusStats, BusStatsReader};

/// A transport, as a metric label.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub(crate) enum Transport {
    /// The binary protocol over TCP (with or without TLS).
    Tcp,
    /// WebSocket (with or without TLS).
    Ws,
}

impl Transport {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Ws => "ws",
        }
    }
}

impl EncodeLabelValue for Transport {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> std::fmt::Result {
        std::fmt::Write::write_str(encoder, self.name())
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ByTransport {
    pub(crate) transport: Transport,
}

/// The server's metrics and their registry.
#[derive(Debug)]
pub(crate) struct Metrics {
    registry: Registry,
    /// Connections open now, by transport.
    pub(crate) connections: Family<ByTransport, Gauge>,
    /// Connections accepted since start, by transport.
    pub(crate) accepted: Family<ByTransport, Counter>,
    /// Chat messages written to clients, by transport.
    pub(crate) delivered: Family<ByTransport, Counter>,
    /// Idle connections parked: open, without a task or a registration with the I/O driver.
    pub(crate) parked: Gauge,
    /// Times an idle connection was parked.
    pub(crate) parkings: Counter,
    /// Connections refused at the connection limit.
    pub(crate) refused: Counter,
    /// WebSocket upgrades refused for their `Origin`.
    pub(crate) bad_origins: Counter,
}

impl Metrics {
    pub(crate) fn new(engine: Engine, bus: Option<BusStatsReader>) -> Self {
        let mut registry = Registry::with_prefix("chat");
        let connections = Family::<ByTransport, Gauge>::default();
        let accepted = Family::<ByTransport, Counter>::default();
        let delivered = Family::<ByTransport, Counter>::default();
        let parked = Gauge::default();
        let parkings = Counter::default();
        let refused = Counter::default();
        let bad_origins = Counter::<u64, AtomicU64>::default();
        registry.register("connections", "Connections open now", connections.clone());
        registry.register(
            "connections_accepted",
            "Connections accepted",
            accepted.clone(),
        );
        registry.register(
            "messages_delivered",
            "Chat messages written to clients",
            delivered.clone(),
        );
        registry.register(
            "connections_parked",
            "Idle connections parked (open, with no task of their own)",
            parked.clone(),
        );
        registry.register(
            "parkings",
            "Times an idle connection was parked",
            parkings.clone(),
        );
        registry.register(
            "connections_refused",
            "Connections refused at the connection limit",
            refused.clone(),
        );
        registry.register(
            "websocket_bad_origin",
            "WebSocket upgrades refused for their Origin",
            bad_origins.clone(),
        );
        registry.register_collector(Box::new(EngineCollector(Arc::new(engine))));
        if let Some(bus) = bus {
            registry.register_collector(Box::new(BusCollector(bus)));
        }
        Self {
            registry,
            connections,
            accepted,
            delivered,
            parked,
            parkings,
            refused,
            bad_origins,
        }
    }

    /// The metrics in the Prometheus text format.
    pub(crate) fn render(&self) -> String {
        let mut text = String::new();
        if prometheus_client::encoding::text::encode(&mut text, &self.registry).is_err() {
            text.clear();
        }
        text
    }

    /// Counts a connection as open until the guard is dropped.
    pub(crate) fn open(self: &Arc<Self>, transport: Transport) -> OpenConnection {
        let labels = ByTransport { transport };
        self.accepted.get_or_create(&labels).inc();
        self.connections.get_or_create(&labels).inc();
        OpenConnection {
            metrics: self.clone(),
            delivered: self.delivered.get_or_create(&labels).clone(),
            labels,
        }
    }
}

/// One open connection in [`Metrics::connections`].
pub(crate) struct OpenConnection {
    metrics: Arc<Metrics>,
    labels: ByTransport,
    /// This transport's delivered-messages counter, looked up once (not per write).
    delivered: Counter,
}

impl OpenConnection {
    pub(crate) fn transport(&self) -> Transport {
        self.labels.transport
    }

    pub(crate) fn delivered(&self, messages: u64) {
        if messages > 0 {
            self.delivered.inc_by(messages);
        }
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.metrics.connections.get_or_create(&self.labels).dec();
    }
}

/// Reads the engine's counters at each scrape.
#[derive(Debug)]
struct EngineCollector(Arc<Engine>);

impl Collector for EngineCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let stats = self.0.stats();
        let gauges = [
            (
                "sessions_online",
                "Users logged in now (at least one session)",
                stats.online,
            ),
            (
                "storage_available",
                "1 while storage takes writes, 0 while failed writes are retried",
                u64::from(stats.storage_available),
            ),
        ];
        for (name, help, value) in gauges {
            let gauge = ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX));
            gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)?;
        }
        let counters = [
            (
                "messages_stored",
                "Messages accepted for storage",
                stats.messages_accepted,
            ),
            (
                "rate_limited",
                "Requests refused by the rate limit",
                stats.rate_limited,
            ),
            ("failed_logins", "Logins that failed", stats.failed_logins),
            (
                "cluster_batches_applied",
                "Batches committed by other nodes and applied here",
                stats.remote_batches,
            ),
            (
                "cluster_recoveries",
                "Reads from the database of what other nodes committed (lost on the bus)",
                stats.recoveries,
            ),
            (
                "outbox_drops",
                "Typing and presence events dropped under back-pressure",
                stats.outbox_drops,
            ),
            (
                "readers_behind",
                "Times a reader fell behind and switched to catching up from storage",
                stats.readers_behind,
            ),
            (
                "slow_consumer_disconnects",
                "Connections closed for a full outbox or for taking nothing while catching up",
                stats.slow_consumers,
            ),
            ("commits", "Storage transactions committed", stats.commits),
            (
                "commit_batch_persists",
                "Writes committed, over all transactions",
                stats.committed_persists,
            ),
        ];
        for (name, help, value) in counters {
            let counter = ConstCounter::new(value);
            counter.encode(encoder.encode_descriptor(
                name,
                help,
                None,
                counter.metric_type(),
            )?)?;
        }
        let seconds = ConstCounter::new(stats.commit_micros as f64 / 1e6);
        seconds.encode(encoder.encode_descriptor(
            "commit_seconds",
            "Time spent committing, over all transactions",
            None,
            seconds.metric_type(),
        )?)?;
        let largest = ConstGauge::new(i64::try_from(stats.max_commit_batch).unwrap_or(i64::MAX));
        largest.encode(encoder.encode_descriptor(
            "commit_batch_max",
            "The largest batch of writes committed in one transaction",
            None,
            largest.metric_type(),
        )?)?;
        Ok(())
    }
}

/// Reads the bus's counters at each scrape.
#[derive(Debug)]
struct BusCollector(BusStatsReader);

impl Collector for BusCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let BusStats {
            published,
            dropped,
            heartbeats_sent,
            received,
            heartbeats_received,
            gaps,
            reconnects,
            slow_consumers,
            malformed,
            lag_micros_total,
            lag_micros_max,
        } = self.0.stats();
        let counters = [
            ("bus_published", "Publications handed to NATS", published),
            (
                "bus_dropped",
                "Publications dropped (queue full, refused by NATS, or closing)",
                dropped,
            ),
            (
                "bus_heartbeats_sent",
                "Heartbeats handed to NATS",
                heartbeats_sent,
            ),
            (
                "bus_received",
                "Publications of other nodes received",
                received,
            ),
            (
                "bus_heartbeats_received",
                "Heartbeats of other nodes received",
                heartbeats_received,
            ),
            (
                "bus_gaps",
                "Gaps reported (recoveries from the database)",
                gaps,
            ),
            ("bus_reconnects", "Reconnections to NATS", reconnects),
            (
                "bus_slow_consumer_drops",
                "Messages the NATS client dropped for a slow consumer",
                slow_consumers,
            ),
            (
                "bus_malformed",
                "Messages on the subject that were not envelopes",
                malformed,
            ),
        ];
        for (name, help, value) in counters {
            let counter = ConstCounter::new(value);
            counter.encode(encoder.encode_descriptor(
                name,
                help,
                None,
                counter.metric_type(),
            )?)?;
        }
        let lag = ConstCounter::new(lag_micros_total as f64 / 1e6);
        lag.encode(encoder.encode_descriptor(
            "bus_lag_seconds",
            "From sending to receiving, over every publication received (wall clocks)",
            None,
            lag.metric_type(),
        )?)?;
        let max = ConstGauge::new(lag_micros_max as f64 / 1e6);
        max.encode(encoder.encode_descriptor(
            "bus_lag_max_seconds",
            "The longest time from sending to receiving of a publication",
            None,
            max.metric_type(),
        )?)?;
        Ok(())
    }
}
