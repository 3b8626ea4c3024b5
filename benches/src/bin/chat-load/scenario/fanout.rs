//! `fanout`: S senders send M messages each to one room of R receivers.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chat_proto::Target as To;

use crate::clients::{connect_all, receive, send, SendPlan};
use crate::server::{cpu_seconds, Target};
use crate::stats::{histogram, Report};

/// The parameters of a fan-out.
#[derive(Clone, Debug, clap::Args)]
pub(crate) struct Fanout {
    #[arg(long, default_value_t = 100)]
    pub(crate) receivers: usize,
    #[arg(long, default_value_t = 4)]
    pub(crate) senders: usize,
    /// Messages per sender.
    #[arg(long, default_value_t = 2000)]
    pub(crate) messages: usize,
    /// Text bytes per message (at least 24: the send time travels in the text).
    #[arg(long, default_value_t = 32)]
    pub(crate) size: usize,
    /// Unacknowledged sends per sender at full speed.
    #[arg(long, default_value_t = 64)]
    pub(crate) window: usize,
    /// Messages per second over all senders (default: full speed).
    #[arg(long)]
    pub(crate) rate: Option<u64>,
}

impl Fanout {
    /// Runs the fan-out; `label` prefixes the metrics (and names the phase's room and users).
    pub(crate) async fn run(
        &self,
        target: &Target,
        report: &mut Report,
        label: &str,
    ) -> Result<(), String> {
        let Self {
            receivers,
            senders,
            messages,
            size,
            window,
            rate,
        } = self.clone();
        // Names may not hold the label's spaces; each labelled phase gets its own room and users.
        let tag = label.trim();
        let room = format!("load{tag}");
        let readers = connect_all(
            target.addr,
            &format!("r{tag}"),
            receivers,
            Some(&room),
            1,
            false,
        )
        .await?;
        let writers = connect_all(
            target.addr,
            &format!("s{tag}"),
            senders,
            Some(&room),
            1,
            false,
        )
        .await?;
        let expected = (senders * messages) as u64;
        let period = rate.map(|r| Duration::from_secs_f64(senders as f64 / r.max(1) as f64));
        let epoch = Instant::now();
        let stop = Arc::new(AtomicU64::new(0));
        let (server_cpu, own_cpu) = (cpu_seconds(target.pid), cpu_seconds(None));
        let started = Instant::now();
        let receiving: Vec<_> = readers
            .into_iter()
            .map(|conn| tokio::spawn(receive(conn, expected, epoch, stop.clone())))
            .collect();
        let plan = SendPlan {
            target: To::Room(room.clone()),
            count: messages,
            size,
            window,
            period,
            expect: ((senders - 1) * messages) as u64,
        };
        let sending: Vec<_> = writers
            .into_iter()
            .map(|conn| tokio::spawn(send(conn, plan.clone(), epoch)))
            .collect();
        let mut acks = histogram();
        for task in sending {
            acks.add(task.await.map_err(|e| e.to_string())??.acks)
                .map_err(|e| e.to_string())?;
        }
        // Every message is stored now; give receivers 10 s to get what is left, then count losses.
        let deadline = stop.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(10)).await;
            deadline.store(1, Ordering::Relaxed);
        });
        let mut delivered = 0;
        let mut latencies = histogram();
        for task in receiving {
            let (count, h) = task.await.map_err(|e| e.to_string())?;
            delivered += count;
            latencies.add(h).map_err(|e| e.to_string())?;
        }
        let elapsed = started.elapsed().as_secs_f64();
        let server_cpu = cpu_seconds(target.pid) - server_cpu;
        let own_cpu = cpu_seconds(None) - own_cpu;
        let total = expected * receivers as u64;
        report.add(format!("{label}messages sent"), expected as f64, "msgs");
        report.add(
            format!("{label}deliveries to receivers"),
            delivered as f64,
            "msgs",
        );
        report.add(
            format!("{label}lost"),
            total.saturating_sub(delivered) as f64,
            "msgs",
        );
        report.add(format!("{label}elapsed"), elapsed, "s");
        report.add(
            format!("{label}delivered rate"),
            delivered as f64 / elapsed,
            "msgs/s",
        );
        report.add(
            format!("{label}stored rate"),
            expected as f64 / elapsed,
            "msgs/s",
        );
        report.latency(&format!("{label}delivery "), &latencies);
        report.latency(&format!("{label}stored-ack "), &acks);
        // Every member gets each message: receivers and the other senders.
        let all_deliveries = (expected * (receivers + senders - 1) as u64) as f64;
        report.add(format!("{label}server CPU"), server_cpu, "s");
        report.add(
            format!("{label}server CPU per delivery"),
            server_cpu / all_deliveries * 1e9,
            "ns",
        );
        report.add(format!("{label}generator CPU"), own_cpu, "s");
        Ok(())
    }
}
