//! `chat-load`: a load generator speaking the real protocol over TCP or WebSocket
//! (`--transport ws`) to a chat-server.
//!
//! By default it starts `chat-server` (from the same target directory: build it first with
//! `cargo build --release -p chat-server`) on 127.0.0.1 with a temporary database, so it knows
//! the server's PID and can report its CPU time and memory from /proc. Every run is bounded in
//! count and time (`--max-secs`), talks only to loopback addresses, and stops by itself.
//!
//! Scenarios: `fanout` (one room, many receivers), `dm` (pairs of users), `idle` (many logged-in
//! connections doing nothing), `soak` (a fixed-rate fan-out for long, reported per window),
//! `login-storm` (argon2id logins during a fixed-rate fan-out), `login-attack` (password
//! guessing against a real user's logins).
//!
//! # Layout
//! - `args`: the command line; each scenario's parameters are a struct in its module.
//! - `server`: the server under test (started here, or given) and its measurements from /proc.
//! - `clients`: connecting users in bulk, and the sending and receiving loops.
//! - `stats`: the report.
//! - `scenario/`: one file per scenario.

mod args;
mod clients;
mod scenario;
mod server;
mod stats;

use std::time::Duration;

use clap::Parser;
use tokio::time::timeout;

use crate::args::{Args, Scenario};
use crate::stats::Report;

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    // Pinned to one core, the generator runs on one thread: two workers on one core take
    // turns, and each wait for the other's time slice (up to 4 ms, `perf sched`) was counted
    // as the server's latency.
    let runtime = if args.pin {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Runtime::new()
    };
    let runtime = match runtime {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("chat-load: cannot start a tokio runtime: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let deadline = Duration::from_secs(args.max_secs.max(args.scenario.least_secs()));
    match runtime.block_on(async { timeout(deadline, run(args)).await }) {
        Ok(Ok(())) => std::process::ExitCode::SUCCESS,
        Ok(Err(error)) => {
            eprintln!("chat-load: {error}");
            std::process::ExitCode::FAILURE
        }
        Err(_) => {
            eprintln!("chat-load: stopped after --max-secs");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Runs the chosen scenario against the server under test and prints the report.
async fn run(args: Args) -> Result<(), String> {
    let owasp = matches!(
        args.scenario,
        Scenario::LoginStorm(_) | Scenario::LoginAttack(_)
    );
    let target = server::Target::new(&args, owasp).await?;
    let mut report = Report::default();
    match &args.scenario {
        Scenario::Fanout(params) => drop(params.run(&target, &mut report, "").await?),
        Scenario::Soak(params) => params.run(&target, &mut report).await?,
        Scenario::Dm(params) => params.run(&target, &mut report).await?,
        Scenario::Idle(params) => params.run(&target, &mut report).await?,
        Scenario::LoginStorm(params) => params.run(&target, &mut report).await?,
        Scenario::LoginAttack(params) => params.run(&target, &mut report).await?,
    }
    let mut label = args.scenario.label();
    if args.cluster {
        label.push_str(" on a cluster: nodes a and b, one nats-server");
    }
    report.print(&label, args.json);
    target.stop().await;
    Ok(())
}
