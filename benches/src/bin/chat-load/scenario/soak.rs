//! `soak`: a fixed-rate fan-out for a long time, its delivery latency reported per window of
//! send time next to the server's memory and the database's size at the window's end, so a
//! drift or a periodic stall (checkpoints, a growing index) shows as one window unlike the rest.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::scenario::fanout::Fanout;
use chat_testkit::TestDb;

use crate::server::{rss_bytes, Target};
use crate::stats::Report;

/// The parameters of the soak.
#[derive(Clone, Debug, clap::Args)]
pub(crate) struct Soak {
    #[arg(long, default_value_t = 100)]
    pub(crate) receivers: usize,
    #[arg(long, default_value_t = 4)]
    pub(crate) senders: usize,
    /// Messages per second over all senders.
    #[arg(long, default_value_t = 5000)]
    pub(crate) rate: u64,
    /// Minutes of sending.
    #[arg(long, default_value_t = 30)]
    pub(crate) minutes: u64,
    /// Seconds per reported window.
    #[arg(long, default_value_t = 300)]
    pub(crate) window_secs: u64,
    /// Text bytes per message.
    #[arg(long, default_value_t = 32)]
    pub(crate) size: usize,
}

/// How often the server's memory and database size are sampled.
const SAMPLE_EVERY: Duration = Duration::from_secs(1);

impl Soak {
    /// The least `--max-secs` the soak needs: its sending time and set-up to spare.
    pub(crate) fn least_secs(&self) -> u64 {
        self.minutes * 60 + 300
    }

    /// Runs it.
    pub(crate) async fn run(&self, target: &Target, report: &mut Report) -> Result<(), String> {
        let width = Duration::from_secs(self.window_secs.max(1));
        let messages = (self.rate * self.minutes * 60) as usize / self.senders.max(1);
        let fanout = Fanout {
            receivers: self.receivers,
            senders: self.senders,
            messages,
            size: self.size,
            window: 1024,
            rate: Some(self.rate),
            windows: Some(width),
        };
        let stop = Arc::new(AtomicBool::new(false));
        let sampler = {
            let (stop, pid, db) = (stop.clone(), target.pid, target.database());
            tokio::spawn(async move {
                let mut samples = Vec::new();
                let mut tick = tokio::time::interval(SAMPLE_EVERY);
                while !stop.load(Ordering::Relaxed) {
                    tick.tick().await;
                    samples.push((
                        Instant::now(),
                        rss_bytes(pid),
                        db.as_ref().and_then(TestDb::sqlite_bytes),
                    ));
                }
                samples
            })
        };
        let delivered = fanout.run(target, report, "").await;
        stop.store(true, Ordering::Relaxed);
        let samples = sampler.await.map_err(|e| e.to_string())?;
        let delivered = delivered?;
        let mut p99s = Vec::new();
        for (i, window) in delivered.latencies.windows().iter().enumerate() {
            let (from, to) = (
                i as u64 * self.window_secs,
                (i as u64 + 1) * self.window_secs,
            );
            let label = format!("{from}-{to} s: ");
            report.add(format!("{label}deliveries"), window.len() as f64, "msgs");
            report.latency(&format!("{label}delivery "), window);
            if !window.is_empty() {
                p99s.push(window.value_at_quantile(0.99) as f64);
            }
            // The last sample taken within the window.
            let end = delivered.epoch + Duration::from_secs(to);
            if let Some((_, rss, db)) = samples.iter().rev().find(|(at, ..)| *at <= end) {
                report.add(format!("{label}server RSS at end"), rss / 1e6, "MB");
                if let Some(db) = db {
                    report.add(format!("{label}database at end"), *db as f64 / 1e6, "MB");
                }
            }
        }
        // A last window shorter than the rest (minutes not a multiple of it) is not compared.
        let full = (self.minutes * 60 / self.window_secs.max(1)).max(1) as usize;
        let (low, high) = p99s[..full.min(p99s.len())]
            .iter()
            .fold((f64::INFINITY, 0.0f64), |(lo, hi), &p| {
                (lo.min(p), hi.max(p))
            });
        report.add("p99 highest / lowest window", high / low, "×");
        Ok(())
    }
}
