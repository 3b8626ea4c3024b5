//! `dm`: P pairs of users send M direct messages each to each other.

use std::time::{Duration, Instant};

use chat_proto::Target as To;

use crate::clients::{connect_all, send, SendPlan};
use crate::server::{cpu_seconds, Target};
use crate::stats::{histogram, Report};

/// The parameters of the direct-message scenario.
#[derive(Clone, Debug, clap::Args)]
pub(crate) struct Dm {
    #[arg(long, default_value_t = 100)]
    pub(crate) pairs: usize,
    #[arg(long, default_value_t = 500)]
    pub(crate) messages: usize,
    #[arg(long, default_value_t = 32)]
    pub(crate) size: usize,
    #[arg(long, default_value_t = 16)]
    pub(crate) window: usize,
    /// Messages per second over all users (default: full speed), a steady stream: each user
    /// sends at its share of the rate, the users spread evenly over one period.
    #[arg(long)]
    pub(crate) rate: Option<u64>,
}

impl Dm {
    /// Runs it.
    pub(crate) async fn run(&self, target: &Target, report: &mut Report) -> Result<(), String> {
        let Self {
            pairs,
            messages,
            size,
            window,
            rate,
        } = self.clone();
        let users = pairs * 2;
        let period = rate.map(|r| Duration::from_secs_f64(users as f64 / r.max(1) as f64));
        let conns = connect_all(target.addr, "p", users, None, 1, false).await?;
        let epoch = Instant::now();
        let (server_cpu, own_cpu) = (cpu_seconds(target.pid), cpu_seconds(None));
        let started = Instant::now();
        // Each user sends to its partner on the connection it receives the partner's messages on.
        let tasks: Vec<_> = conns
            .into_iter()
            .enumerate()
            .map(|(i, conn)| {
                let plan = SendPlan {
                    target: To::User(format!("p{}", i ^ 1)),
                    count: messages,
                    size,
                    window,
                    period,
                    phase: Duration::ZERO,
                    expect: messages as u64,
                };
                tokio::spawn(send(conn, plan.staggered(i, users), epoch))
            })
            .collect();
        let mut acks = histogram();
        let mut latencies = histogram();
        let mut delivered = 0;
        for task in tasks {
            let sent = task.await.map_err(|e| e.to_string())??;
            acks.add(sent.acks).map_err(|e| e.to_string())?;
            latencies.add(sent.latencies).map_err(|e| e.to_string())?;
            delivered += sent.received;
        }
        let elapsed = started.elapsed().as_secs_f64();
        let sent = (users * messages) as f64;
        report.add("messages sent", sent, "msgs");
        report.add("delivered", delivered as f64, "msgs");
        report.add("lost", sent - delivered as f64, "msgs");
        report.add("elapsed", elapsed, "s");
        report.add("stored-before-acknowledged rate", sent / elapsed, "msgs/s");
        report.latency("stored-ack ", &acks);
        report.latency("delivery ", &latencies);
        let server_cpu = cpu_seconds(target.pid) - server_cpu;
        report.add("server CPU", server_cpu, "s");
        report.add("server CPU per message", server_cpu / sent * 1e6, "µs");
        report.add("generator CPU", cpu_seconds(None) - own_cpu, "s");
        Ok(())
    }
}
