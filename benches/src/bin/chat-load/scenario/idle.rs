//! `idle`: C logged-in connections that do nothing: server memory per user the way the peers
//! were measured (registered, in a room of `--room-size`, connected and idle: the RSS delta
//! over the whole set-up), then per connection alone (every user logs in again after all
//! left). With `--greeted-only`, the connection itself on a fresh server: connections that say
//! hello and never log in (no account, no membership, no device behind them).

use std::future::Future;
use std::time::{Duration, Instant};

use crate::clients::{connect_all, greet_all, Conn};
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
    /// Members per room: each account joins one room of this many (besides the default room).
    #[arg(long, default_value_t = 50)]
    pub(crate) room_size: usize,
    /// Only open connections that say hello and stay (no account, no login): the server's
    /// memory per connection itself — its task, socket registration, outbox and session
    /// record — measured from a server that has seen no other connection.
    #[arg(long)]
    pub(crate) greeted_only: bool,
    /// Seconds to wait after each set-up before reading the server's RSS: long enough for
    /// chat-server to park its idle connections (5 to 10 s after their last traffic, by
    /// default) and for its allocator to return what they freed (over 10 s).
    #[arg(long, default_value_t = 30)]
    pub(crate) settle_secs: u64,
}

impl Idle {
    /// Runs it.
    pub(crate) async fn run(&self, target: &Target, report: &mut Report) -> Result<(), String> {
        let Self {
            connections,
            sources,
            room_size,
            greeted_only,
            settle_secs,
        } = self.clone();
        let settle = Duration::from_secs(settle_secs);
        let start = rss_bytes(target.pid);
        if greeted_only {
            let greeting = greet_all(target.addr, connections, sources);
            let what = "connections greeted, not logged in";
            let (conns, after) = settled(target.pid, greeting, what, settle, start, report).await?;
            report.add("server RSS with every connection open", mib(after), "MiB");
            let per = (after - start) / conns.len() as f64;
            report.add("server RSS per connection, greeted, idle", per, "bytes");
            drop(conns);
            return Ok(());
        }
        // The peers' method first: each user registers, joins a room and stays, idle; the RSS
        // delta over the whole set-up, per user.
        let mut accounts = connect_all(target.addr, "i", connections, None, sources, false).await?;
        for (i, account) in accounts.iter_mut().enumerate() {
            let room = format!("idle{}", i / room_size.max(1));
            account
                .request(chat_proto::Request::Join { room })
                .await
                .map_err(|e| e.to_string())?;
        }
        tokio::time::sleep(settle).await;
        let registered = rss_bytes(target.pid);
        // Then the connections alone: all close, and log in again.
        drop(accounts);
        tokio::time::sleep(settle).await;
        let before = rss_bytes(target.pid);
        let logins = connect_all(target.addr, "i", connections, None, sources, true);
        let what = "connections logged in";
        let (conns, after) = settled(target.pid, logins, what, settle, start, report).await?;
        report.add(
            "server RSS with every user registered, in a room, connected",
            mib(registered),
            "MiB",
        );
        let all_in = (registered - start) / connections as f64;
        report.add(
            "server RSS per user: registered, in a room, connected, idle",
            all_in,
            "bytes",
        );
        report.add(
            "server RSS with the accounts, no connections",
            mib(before),
            "MiB",
        );
        report.add("server RSS after", mib(after), "MiB");
        let per = (after - before) / conns.len() as f64;
        report.add("server RSS per idle connection", per, "bytes");
        report.add(
            "server RSS per user, logged in again after all left",
            (after - start) / conns.len() as f64,
            "bytes",
        );
        for (label, users) in [("100k", 100_000.0), ("1M", 1_000_000.0)] {
            report.add(
                format!("projected RSS for {label} users, each connected"),
                mib(start + all_in * users),
                "MiB",
            );
        }
        drop(conns);
        Ok(())
    }
}

/// Opens connections with `connect` and reads the server's RSS `settle` later; reports how
/// many (`what`), the set-up's time and the RSS at `start`. The connections and the RSS.
async fn settled(
    pid: Option<u32>,
    connect: impl Future<Output = Result<Vec<Conn>, String>>,
    what: &str,
    settle: Duration,
    start: f64,
    report: &mut Report,
) -> Result<(Vec<Conn>, f64), String> {
    let started = Instant::now();
    let conns = connect.await?;
    let setup = started.elapsed().as_secs_f64();
    tokio::time::sleep(settle).await;
    report.add(what, conns.len() as f64, "");
    report.add("setup time", setup, "s");
    report.add("server RSS at start", mib(start), "MiB");
    Ok((conns, rss_bytes(pid)))
}

/// Bytes in MiB.
fn mib(bytes: f64) -> f64 {
    bytes / 1024.0 / 1024.0
}
