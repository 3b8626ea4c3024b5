//! `idle`: C logged-in connections that do nothing: server memory per connection.

use std::time::{Duration, Instant};

use crate::clients::connect_all;
use crate::server::{rss_bytes, Target};
use crate::stats::Report;

/// The parameters of the idle-connections scenario.
#[derive(Clone, Debug, clap::Args)]
pub(crate) struct Idle {
    #[arg(long, default_value_t = 5000)]
    pub(crate) connections: usize,
    /// Source addresses 127.0.0.1.. to spread connections over (ephemeral port range).
    #[arg(long, default_value_t = 1)]
    pub(crate) sources: u8,
}

impl Idle {
    /// Runs it.
    pub(crate) async fn run(&self, target: &Target, report: &mut Report) -> Result<(), String> {
        let Self {
            connections,
            sources,
        } = self.clone();
        // Accounts first, so what follows measures connections, not users.
        drop(connect_all(target.addr, "i", connections, None, sources, false).await?);
        tokio::time::sleep(Duration::from_secs(3)).await;
        let before = rss_bytes(target.pid);
        let started = Instant::now();
        let conns = connect_all(target.addr, "i", connections, None, sources, true).await?;
        let setup = started.elapsed().as_secs_f64();
        tokio::time::sleep(Duration::from_secs(3)).await;
        let after = rss_bytes(target.pid);
        report.add("connections logged in", conns.len() as f64, "");
        report.add("setup time", setup, "s");
        report.add(
            "server RSS with the accounts, no connections",
            before / 1024.0 / 1024.0,
            "MiB",
        );
        report.add("server RSS after", after / 1024.0 / 1024.0, "MiB");
        let per = (after - before) / conns.len() as f64;
        report.add("server RSS per idle connection", per, "bytes");
        report.add(
            "projected RSS for 100k connections",
            (before + per * 100_000.0) / 1024.0 / 1024.0,
            "MiB",
        );
        drop(conns);
        Ok(())
    }
}
