//! `fanout`: S senders send M messages each to one room of R receivers. With `--cluster` the
//! receivers are spread over the two nodes (the first half on `a`, the rest on `b`) and the
//! senders are all on `a`, so every delivery on `b` crossed the bus.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chat_proto::{ServerMessage, Target as To};

use crate::clients::{connect_all, receive, send, Conn, SendPlan};
use crate::server::{cpu_seconds, Target};
use crate::stats::{histogram, Report, Windows};

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
    /// Messages per second over all senders (default: full speed), a steady stream: each
    /// sender sends at its share of the rate, the senders spread evenly over one period.
    #[arg(long)]
    pub(crate) rate: Option<u64>,
    /// Delivery latencies kept per window of this much send time (the soak's), not only in all.
    #[arg(skip)]
    pub(crate) windows: Option<Duration>,
}

/// What a fan-out delivered, for a scenario built on it: when sending started, and the
/// receivers' latencies by window of send time.
pub(crate) struct Delivered {
    pub(crate) epoch: Instant,
    pub(crate) latencies: Windows,
}

impl Fanout {
    /// Runs the fan-out; `label` prefixes the metrics (and names the phase's room and users).
    pub(crate) async fn run(
        &self,
        target: &Target,
        report: &mut Report,
        label: &str,
    ) -> Result<Delivered, String> {
        let Self {
            receivers,
            senders,
            messages,
            size,
            window,
            rate,
            windows,
        } = self.clone();
        // Names may not hold the label's spaces; each labelled phase gets its own room and users.
        let tag = label.trim();
        let room = format!("load{tag}");
        // The room is created on the first node; the second node's receivers join it there.
        let on_second = target.second.map_or(0, |_| receivers / 2);
        let mut readers = connect_all(
            target.addr,
            &format!("r{tag}"),
            receivers - on_second,
            Some(&room),
            1,
            false,
        )
        .await?;
        let on_first = readers.len();
        if let Some(second) = target.second {
            readers.extend(
                connect_all(
                    second.addr,
                    &format!("r{tag}b"),
                    on_second,
                    Some(&room),
                    1,
                    false,
                )
                .await?,
            );
        }
        let mut writers = connect_all(
            target.addr,
            &format!("s{tag}"),
            senders,
            Some(&room),
            1,
            false,
        )
        .await?;
        warm_up(&room, &mut writers, &mut readers).await?;
        let expected = (senders * messages) as u64;
        let period = rate.map(|r| Duration::from_secs_f64(senders as f64 / r.max(1) as f64));
        let epoch = Instant::now();
        let stop = Arc::new(AtomicU64::new(0));
        let nodes = target.node_pids();
        let nats_pid = target.nats.as_ref().and_then(|n| n.pid());
        let node_cpu: Vec<f64> = nodes.iter().map(|&pid| cpu_seconds(pid)).collect();
        let (nats_cpu, own_cpu) = (cpu_seconds(nats_pid), cpu_seconds(None));
        let started = Instant::now();
        let receiving: Vec<_> = readers
            .into_iter()
            .map(|conn| tokio::spawn(receive(conn, expected, epoch, stop.clone(), windows)))
            .collect();
        let plan = SendPlan {
            target: To::Room(room.clone()),
            count: messages,
            size,
            window,
            period,
            phase: Duration::ZERO,
            expect: ((senders - 1) * messages) as u64,
        };
        let sending: Vec<_> = writers
            .into_iter()
            .enumerate()
            .map(|(i, conn)| tokio::spawn(send(conn, plan.staggered(i, senders), epoch)))
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
        let mut windowed = Windows::new(windows);
        // Per node: receivers on the first, on the second.
        let mut by_node = [histogram(), histogram()];
        for (i, task) in receiving.into_iter().enumerate() {
            let (count, latencies) = task.await.map_err(|e| e.to_string())?;
            delivered += count;
            windowed.add(&latencies)?;
            by_node[usize::from(i >= on_first)]
                .add(latencies.total()?)
                .map_err(|e| e.to_string())?;
        }
        let latencies = windowed.total()?;
        let elapsed = started.elapsed().as_secs_f64();
        let node_cpu: Vec<f64> = nodes
            .iter()
            .zip(node_cpu)
            .map(|(&pid, before)| cpu_seconds(pid) - before)
            .collect();
        let server_cpu: f64 = node_cpu.iter().sum();
        let nats_cpu = cpu_seconds(nats_pid) - nats_cpu;
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
        if target.second.is_some() {
            report.add(format!("{label}receivers on node a"), on_first as f64, "");
            report.latency(&format!("{label}on a: delivery "), &by_node[0]);
            report.add(format!("{label}receivers on node b"), on_second as f64, "");
            report.latency(&format!("{label}on b: delivery "), &by_node[1]);
        }
        report.latency(&format!("{label}stored-ack "), &acks);
        // Every member gets each message: receivers and the other senders.
        let all_deliveries = (expected * (receivers + senders - 1) as u64) as f64;
        if target.second.is_some() {
            for (name, cpu) in ["a", "b"].iter().zip(&node_cpu) {
                report.add(format!("{label}node {name} CPU"), *cpu, "s");
            }
        }
        // With `--cluster`, the sum over both nodes.
        report.add(format!("{label}server CPU"), server_cpu, "s");
        report.add(
            format!("{label}server CPU per delivery"),
            server_cpu / all_deliveries * 1e9,
            "ns",
        );
        if nats_pid.is_some() {
            report.add(format!("{label}nats-server CPU"), nats_cpu, "s");
        }
        report.add(format!("{label}generator CPU"), own_cpu, "s");
        Ok(Delivered {
            epoch,
            latencies: windowed,
        })
    }
}

/// Before the measured run: the first sender writes one message to `room`, and every other
/// member waits for it, so each node has applied every join (the other node's too) before the
/// clock starts.
async fn warm_up(room: &str, writers: &mut [Conn], readers: &mut [Conn]) -> Result<(), String> {
    let Some((first, others)) = writers.split_first_mut() else {
        return Ok(());
    };
    // An id the measured sends (numbered from 0) never use.
    first
        .send_text(To::Room(room.into()), u64::MAX, "warm-up")
        .await
        .map_err(|e| format!("warm-up: {e}"))?;
    for conn in others.iter_mut().chain(readers.iter_mut()) {
        conn.until(|event| matches!(event, ServerMessage::Message(m) if m.text == "warm-up"))
            .await
            .map_err(|e| format!("warm-up not received: {e}"))?;
    }
    Ok(())
}
