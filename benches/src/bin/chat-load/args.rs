//! The command line.

use std::net::SocketAddr;

use clap::{Parser, Subcommand};

use crate::scenario::{
    dm::Dm, fanout::Fanout, idle::Idle, login_attack::LoginAttack, login_storm::LoginStorm,
    soak::Soak,
};

/// Load generator for chat-server (loopback only).
#[derive(Debug, Parser)]
pub(crate) struct Args {
    #[command(subcommand)]
    pub(crate) scenario: Scenario,
    /// Connect the users over TCP or WebSocket.
    #[arg(long, global = true, value_enum, default_value = "tcp")]
    pub(crate) transport: crate::clients::Via,
    /// Use an already running server instead of starting one (must be a loopback address; its
    /// web listener's with `--transport ws`).
    #[arg(long, global = true)]
    pub(crate) server: Option<SocketAddr>,
    /// The PID of `--server`, to read its CPU time and memory.
    #[arg(long, global = true)]
    pub(crate) server_pid: Option<u32>,
    /// Stop after this many seconds whatever happens.
    #[arg(long, global = true, default_value_t = 120)]
    pub(crate) max_secs: u64,
    /// Print the results as JSON too.
    #[arg(long, global = true)]
    pub(crate) json: bool,
    /// The started server's `--durability` (`full` or `process`).
    #[arg(long, global = true, default_value = "full")]
    pub(crate) durability: String,
    /// The started server's storage: a `postgres://USER@HOST/DB` URL to run on PostgreSQL (a
    /// fresh database is created on that server for the run and dropped after it; the user
    /// needs CREATEDB). Default: a temporary SQLite file.
    #[arg(long, global = true)]
    pub(crate) db: Option<String>,
    /// Start two chat-server nodes (`a`, `b`) on the one PostgreSQL database of `--db`, joined
    /// through a nats-server started here (127.0.0.1, a free port), instead of one server.
    /// `fanout` only: half the receivers connect to each node, the senders to `a`.
    #[arg(long, global = true)]
    pub(crate) cluster: bool,
    /// Pin the started server to CPU 1 and this generator to CPU 0 (`taskset`), so each has a
    /// core of its own and the server's CPU per delivery is not shared with the generator's.
    #[arg(long, global = true)]
    pub(crate) pin: bool,
}

/// What to measure.
#[derive(Debug, Clone, Subcommand)]
pub(crate) enum Scenario {
    /// S senders send M messages each to one room of R receivers.
    Fanout(Fanout),
    /// P pairs of users send M direct messages each to each other.
    Dm(Dm),
    /// C logged-in connections that do nothing: server memory per connection.
    Idle(Idle),
    /// A fixed-rate fan-out for a long time: delivery latency, server memory and database size
    /// per window.
    Soak(Soak),
    /// N concurrent argon2id logins during a fixed-rate fan-out, against the same fan-out quiet.
    LoginStorm(LoginStorm),
    /// N connections guessing passwords while the real user logs in from elsewhere: the real
    /// user's login latency, and server memory after.
    LoginAttack(LoginAttack),
}

impl Scenario {
    /// The least `--max-secs` the scenario needs, whatever was given.
    pub(crate) fn least_secs(&self) -> u64 {
        match self {
            Self::Soak(p) => p.least_secs(),
            _ => 0,
        }
    }

    /// The scenario and its parameters, as the report's title.
    pub(crate) fn label(&self) -> String {
        match self {
            Self::Fanout(p) => format!("{p:?}"),
            Self::Dm(p) => format!("{p:?}"),
            Self::Idle(p) => format!("{p:?}"),
            Self::Soak(p) => format!("{p:?}"),
            Self::LoginStorm(p) => format!("{p:?}"),
            Self::LoginAttack(p) => format!("{p:?}"),
        }
    }
}
