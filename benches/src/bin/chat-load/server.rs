//! The server under test: started here on a temporary database (so its PID is known), or an
//! already running one on a loopback address; and what /proc says about a process. With
//! `--cluster`, two nodes on one PostgreSQL database joined through a nats-server, all three
//! started here on 127.0.0.1 and ended by their PIDs.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use chat_testkit::{TestDb, TestNats};
use tokio::process::{Child, Command};

use crate::args::{Args, Scenario};
use crate::clients::{Endpoint, Via};

/// The server under test, and the means to measure it.
pub(crate) struct Target {
    /// Where the generator's users connect (the TCP or the web listener); with `--cluster`, the
    /// first node.
    pub(crate) addr: Endpoint,
    pub(crate) pid: Option<u32>,
    /// With `--cluster`: the second node, where half of a fan-out's receivers connect.
    pub(crate) second: Option<Node>,
    /// With `--cluster`: the nats-server between the nodes (killed by its PID when dropped).
    pub(crate) nats: Option<TestNats>,
    /// The processes started here, ended by [`stop`](Self::stop) (or killed when dropped).
    children: Vec<Child>,
    /// The temporary database (SQLite file or PostgreSQL database), deleted when dropped.
    db: Option<TestDb>,
}

/// One node of a cluster: where users connect, and its PID for /proc.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Node {
    pub(crate) addr: Endpoint,
    pub(crate) pid: Option<u32>,
}

impl Target {
    /// `--server` if given (loopback only), else a server started here (two nodes and a
    /// nats-server with `--cluster`); `owasp` keeps the production password hashing cost.
    pub(crate) async fn new(args: &Args, owasp: bool) -> Result<Self, String> {
        if args.cluster {
            if !matches!(args.scenario, Scenario::Fanout(_)) {
                return Err("--cluster: only the fanout scenario spreads its users".into());
            }
            if args.server.is_some() || args.pin {
                return Err("--cluster starts its own nodes, unpinned: no --server, --pin".into());
            }
            if args.db.is_none() {
                return Err(
                    "--cluster needs --db postgres://…: the nodes share one database".into(),
                );
            }
        }
        match args.server {
            Some(addr) if addr.ip().is_loopback() => Ok(Self {
                addr: Endpoint {
                    addr,
                    via: args.transport,
                },
                pid: args.server_pid,
                second: None,
                nats: None,
                children: Vec::new(),
                db: None,
            }),
            Some(addr) => Err(format!("{addr} is not a loopback address: refusing")),
            None => {
                if args.pin {
                    pin_self(0)?;
                }
                Self::spawn(owasp, args).await
            }
        }
    }

    /// Starts target/release/chat-server next to this binary, on a temporary database: a
    /// SQLite file, or a new database on the PostgreSQL server of `postgres`. With
    /// `--cluster`, starts a nats-server on a free loopback port and two nodes (`a`, `b`) on
    /// that one database, joined through it.
    async fn spawn(owasp: bool, args: &Args) -> Result<Self, String> {
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let server: PathBuf = exe.with_file_name("chat-server");
        if !server.exists() {
            return Err(format!(
                "{} not found: run `cargo build --release -p chat-server` first",
                server.display()
            ));
        }
        let db = match args.db.as_deref() {
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                TestDb::postgres_on(url).await
            }
            Some(other) => return Err(format!("--db {other}: expected a postgres:// URL")),
            None => TestDb::sqlite(),
        };
        let nats = if args.cluster {
            Some(
                TestNats::start()
                    .await
                    .ok_or("--cluster needs nats-server on PATH")?,
            )
        } else {
            None
        };
        let url = nats.as_ref().map(TestNats::url);
        let (first, addr) =
            spawn_node(&server, owasp, args, &db, url.as_deref().map(|u| (u, "a"))).await?;
        let pid = first.id();
        let mut children = vec![first];
        let second = match url.as_deref() {
            Some(url) => {
                let (child, addr) = spawn_node(&server, owasp, args, &db, Some((url, "b"))).await?;
                let pid = child.id();
                children.push(child);
                Some(Node { addr, pid })
            }
            None => None,
        };
        Ok(Self {
            addr,
            pid,
            second,
            nats,
            children,
            db: Some(db),
        })
    }

    /// The PIDs of the nodes under test (one, or two with `--cluster`), for their CPU time.
    pub(crate) fn node_pids(&self) -> Vec<Option<u32>> {
        std::iter::once(self.pid)
            .chain(self.second.map(|node| node.pid))
            .collect()
    }

    /// The database of the server started here (`None` with `--server`).
    pub(crate) fn database(&self) -> Option<TestDb> {
        self.db.clone()
    }

    /// Stops the servers (and the nats-server) started here, by their PIDs.
    pub(crate) async fn stop(self) {
        for mut child in self.children {
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
        drop(self.nats);
    }
}

/// Starts one chat-server (`server`) on `db`, joined to the nats-server at `cluster`'s URL
/// under its node name if given; returns it with the endpoint users connect to.
async fn spawn_node(
    server: &Path,
    owasp: bool,
    args: &Args,
    db: &TestDb,
    cluster: Option<(&str, &str)>,
) -> Result<(Child, Endpoint), String> {
    // `taskset` execs the server in its place: the child's PID is the server's.
    let mut command = if args.pin {
        let mut pinned = Command::new("taskset");
        pinned.args(["-c", "1"]).arg(server);
        pinned
    } else {
        Command::new(server)
    };
    command
        .args(["--listen", "127.0.0.1:0", "--web-listen", "127.0.0.1:0"])
        .args(["--max-connections", "30000"])
        // Set-up can leave early clients unread for a while: no keepalive closes during a run.
        .args(["--keepalive", "3600"])
        .args(["--durability", &args.durability])
        .args(["--rate", "1000000", "--burst", "1000000"])
        .args(["--login-timeout", "600"])
        .arg("--db")
        .arg(db.arg())
        .env("RUST_LOG", "warn")
        .stderr(Stdio::inherit());
    if let Some((url, name)) = cluster {
        command.args(["--nats", url, "--node-id", name]);
    }
    if !owasp {
        command.args(["--argon2-memory-kib", "8", "--argon2-iterations", "1"]);
    }
    let (child, ready) = chat_testkit::spawn_ready(&mut command).await?;
    let addr = match args.transport {
        Via::Tcp => ready.tcp,
        Via::Ws => ready.web.ok_or("the server has no web listener")?,
    };
    Ok((
        child,
        Endpoint {
            addr,
            via: args.transport,
        },
    ))
}

/// CPU seconds (user + system) of a process (`None`: this one), from /proc (assumes
/// USER_HZ = 100).
pub(crate) fn cpu_seconds(pid: Option<u32>) -> f64 {
    let path = pid.map_or("/proc/self/stat".to_string(), |p| format!("/proc/{p}/stat"));
    let Ok(stat) = std::fs::read_to_string(path) else {
        return f64::NAN;
    };
    // Fields after the parenthesised command name; utime and stime are the 14th and 15th.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(vec![], |(_, rest)| rest.split_whitespace().collect());
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// Resident memory of a process (`None`: this one) in bytes, from /proc.
pub(crate) fn rss_bytes(pid: Option<u32>) -> f64 {
    let path = pid.map_or("/proc/self/status".to_string(), |p| {
        format!("/proc/{p}/status")
    });
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kib| kib * 1024.0)
}

/// Pins every thread of this process to `cpu` (with `taskset`, which every Linux has).
fn pin_self(cpu: u32) -> Result<(), String> {
    let status = std::process::Command::new("taskset")
        .args([
            "-a",
            "-p",
            "-c",
            &cpu.to_string(),
            &std::process::id().to_string(),
        ])
        .stdout(Stdio::null())
        .status()
        .map_err(|e| format!("--pin needs taskset: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("taskset could not pin the generator to CPU {cpu}"))
    }
}
