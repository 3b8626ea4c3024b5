//! The `chat-server` binary: parse flags, open the database, serve TCP and the web client until
//! SIGINT or SIGTERM (SIGHUP reloads the TLS certificate); or, with `migrate`, copy a SQLite
//! database into PostgreSQL.

use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use chat_core::{
    copy_to_postgres, Config, Database, Durability, Engine, IfNotEmpty, Location, PasswordParams,
    PgStore, Storage, Store, UserId,
};
use chat_server::bus::BusConfig;
use chat_server::cluster::Node;
use chat_server::ready::Ready;
use chat_server::{Server, ServerConfig, Tls};
use clap::{Parser, Subcommand};
use tokio::net::TcpListener;

/// jemalloc, not the C library's allocator (see docs/BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// A chat server: TCP and the browser client (HTTP + WebSocket) on one side, a SQLite file or
/// a PostgreSQL database on the other.
///
/// Every flag can also be set by the environment variable shown.
#[derive(Debug, Parser)]
#[command(version, args_conflicts_with_subcommands = true)]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    /// Address to listen on.
    #[arg(long, env = "CHAT_LISTEN", default_value = "127.0.0.1:7878")]
    listen: SocketAddr,
    /// Address of the web listener (the browser client, WebSocket, /healthz, /metrics), or
    /// `none`.
    #[arg(long, env = "CHAT_WEB_LISTEN", default_value = "127.0.0.1:8080")]
    web_listen: String,
    /// Another web origin (`https://chat.example.org`) allowed to open WebSockets; repeatable.
    /// The server's own origin is always allowed.
    #[arg(long = "web-origin", env = "CHAT_WEB_ORIGIN", value_delimiter = ',')]
    web_origins: Vec<String>,
    /// Another node's WebSocket URL (`wss://chat2.example.org/ws`) for the browser client to
    /// fail over to, after this node; repeatable. That node must allow this one's origin
    /// (its `--web-origin`).
    #[arg(long = "web-peer", env = "CHAT_WEB_PEER", value_delimiter = ',', value_parser = chat_server::web_peer)]
    web_peers: Vec<String>,
    /// TLS certificate chain (PEM): TLS on the TCP listener, HTTPS/WSS on the web listener.
    #[arg(long, env = "CHAT_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long, env = "CHAT_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Generate a self-signed development certificate for localhost (printed with its SHA-256
    /// fingerprint) instead of reading one.
    #[arg(long, conflicts_with = "tls_cert")]
    tls_self_signed: bool,
    /// Where the data is: a SQLite file (created if missing; also `sqlite://PATH`; beside it
    /// SQLite's `-wal` file, which steady load grows to 256 MiB before it is rewound) or a
    /// PostgreSQL database, `postgres://USER[:PASSWORD]@HOST[:PORT]/DB` (migrated at start).
    #[arg(long, env = "CHAT_DB", default_value = "chat.db", global = true)]
    db: String,
    /// Most simultaneous connections.
    #[arg(long, env = "CHAT_MAX_CONNECTIONS", default_value_t = 10_000)]
    max_connections: usize,
    /// Seconds `/healthz` answers 503 at shutdown before the listeners close, so a load
    /// balancer stops sending new clients first.
    #[arg(long, env = "CHAT_DRAIN_NOTICE", default_value_t = 0)]
    drain_notice: u64,
    /// Seconds a plain TCP connection may be idle (keepalive pings and pongs aside) before it
    /// is parked: its task and its registration with the I/O driver are freed until its next
    /// input or message (0: never).
    #[arg(long, env = "CHAT_PARK_AFTER", default_value_t = 5)]
    park_after: u64,
    /// Largest frame payload, in bytes.
    #[arg(long, env = "CHAT_MAX_FRAME_LEN", default_value_t = chat_proto::DEFAULT_MAX_FRAME_LEN)]
    max_frame_len: usize,
    /// Longest message text, in bytes.
    #[arg(long, env = "CHAT_MAX_TEXT_LEN", default_value_t = 4096)]
    max_text_len: usize,
    /// Most rooms per user.
    #[arg(long, env = "CHAT_MAX_ROOMS_PER_USER", default_value_t = 100)]
    max_rooms_per_user: usize,
    /// Sustained requests per second per connection.
    #[arg(long, env = "CHAT_RATE", default_value_t = 50)]
    rate: u32,
    /// Requests allowed in a burst per connection.
    #[arg(long, env = "CHAT_BURST", default_value_t = 100)]
    burst: u32,
    /// Seconds a connection may take to log in.
    #[arg(long, env = "CHAT_LOGIN_TIMEOUT", default_value_t = 30)]
    login_timeout: u64,
    /// Seconds of silence before a connection is pinged (it is closed if still silent after
    /// half as long again).
    #[arg(long, env = "CHAT_KEEPALIVE", default_value_t = 30)]
    keepalive: u64,
    /// The room every new user joins.
    #[arg(long, env = "CHAT_DEFAULT_ROOM", default_value = "general")]
    default_room: String,
    /// Rooms with more members than this get no presence broadcasts.
    #[arg(long, env = "CHAT_PRESENCE_ROOM_LIMIT", default_value_t = 100)]
    presence_room_limit: usize,
    /// Outbound bytes queued per connection: past three quarters of it live messages stop and
    /// the connection catches up from storage; replies and events past all of it close it.
    #[arg(long, env = "CHAT_OUTBOX_BYTES", default_value_t = 1024 * 1024)]
    outbox_bytes: usize,
    /// argon2id memory per password hash, in KiB (default: OWASP's 19 MiB). Lowering it weakens
    /// stored passwords; load tests use it to create many accounts quickly.
    #[arg(long, env = "CHAT_ARGON2_MEMORY_KIB", default_value_t = PasswordParams::OWASP.memory_kib)]
    argon2_memory_kib: u32,
    /// When a message counts as stored: `full` fsyncs every commit (survives power loss);
    /// `process` hands it to the OS (survives `kill -9` of the server, not a power loss; much
    /// cheaper).
    #[arg(long, env = "CHAT_DURABILITY", value_parser = ["full", "process"], default_value = "full")]
    durability: String,
    /// argon2id passes over memory (default: OWASP's 2).
    #[arg(long, env = "CHAT_ARGON2_ITERATIONS", default_value_t = PasswordParams::OWASP.iterations)]
    argon2_iterations: u32,
    /// Run as one node of several sharing the `--db postgres://…` database, joined through
    /// this NATS server (e.g. nats://127.0.0.1:4222).
    #[arg(long, env = "CHAT_NATS", requires = "node_id")]
    nats: Option<String>,
    /// This node's name in the cluster (unique among the nodes; with `--nats`).
    #[arg(long, env = "CHAT_NODE_ID")]
    node_id: Option<String>,
    /// How the server's work is spread over threads: `multi`, tokio's work-stealing
    /// runtime with a worker per core; or `current`, the connections on one thread and the
    /// engine (and its storage writer) on another, each a single-threaded runtime (no
    /// work stealing or cross-thread wake-ups among connections; at most about two cores).
    #[arg(long, env = "CHAT_RUNTIME", value_enum, default_value = "multi")]
    runtime: Threads,
}

/// [`Args::runtime`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Threads {
    /// tokio's multi-thread runtime, a worker per core.
    Multi,
    /// Connections on one single-threaded runtime, the engine on another.
    Current,
}

/// Account administration.
#[derive(Debug, clap::Subcommand)]
enum Admin {
    /// Make NAME a server operator: a moderator of every room.
    Op {
        /// The username.
        name: String,
    },
    /// Make NAME an ordinary user again.
    Deop {
        /// The username.
        name: String,
    },
    /// Disable the account NAME: it cannot log in or resume (a running server's operators
    /// can do this live with /disable).
    Disable {
        /// The username.
        name: String,
    },
    /// Enable the account NAME again.
    Enable {
        /// The username.
        name: String,
    },
}

/// What to do instead of serving.
#[derive(Debug, Subcommand)]
enum Command {
    /// Copy a SQLite database into an empty PostgreSQL database: users, rooms, memberships,
    /// devices, tokens and messages, in one transaction, checking every table's row count.
    /// Stop the server on the source first: what it writes during the copy is not copied.
    Migrate {
        /// The SQLite database: `sqlite://PATH` or a path.
        #[arg(long)]
        from: String,
        /// The PostgreSQL database: `postgres://USER[:PASSWORD]@HOST[:PORT]/DB`.
        #[arg(long)]
        to: String,
        /// Replace whatever the target holds. Without it a target that holds any row is
        /// refused and left unchanged, so running the command twice is safe.
        #[arg(long)]
        force: bool,
    },
    /// Change accounts in the database (`--db`). A running server sees the change at its next
    /// start.
    #[command(subcommand)]
    Admin(Admin),
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    // SAFETY: no thread exists yet but this one, and nothing has used SQLite.
    if !unsafe { chat_core::disable_sqlite_memory_statistics() } {
        tracing::warn!("SQLite was initialised already; its memory statistics stay on");
    }
    let args = Args::parse();
    let runtime = match args.runtime {
        Threads::Multi => tokio::runtime::Runtime::new(),
        Threads::Current => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
    };
    let runtime = match runtime {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("chat-server: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = match args.command {
        Some(Command::Migrate { from, to, force }) => runtime.block_on(migrate(&from, &to, force)),
        Some(Command::Admin(ref admin)) => runtime.block_on(administer(&args.db, admin)),
        None => runtime.block_on(serve(args)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("chat-server: {error}");
            ExitCode::FAILURE
        }
    }
}

/// `chat-server migrate`: copies `from` (SQLite) into `to` (PostgreSQL).
async fn migrate(from: &str, to: &str, force: bool) -> Result<(), String> {
    let Location::Sqlite(path) = Location::parse(from) else {
        return Err(format!("--from must be a SQLite database, not {from}"));
    };
    let target = Location::parse(to);
    let Location::Postgres(url) = &target else {
        return Err(format!("--to must be a postgres:// URL, not {target}"));
    };
    if !path.is_file() {
        return Err(format!("{}: no such database file", path.display()));
    }
    let source = Store::open(&path)
        .await
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let pg = PgStore::connect(url)
        .await
        .map_err(|e| format!("cannot connect to {target}: {e}"))?;
    let if_not_empty = if force {
        IfNotEmpty::Replace
    } else {
        IfNotEmpty::Refuse
    };
    let copied = copy_to_postgres(&source, &pg, if_not_empty)
        .await
        .map_err(|e| format!("nothing copied: {e}"))?;
    println!("copied {} to {target}: {copied}", path.display());
    Ok(())
}

async fn serve(args: Args) -> Result<(), String> {
    let config = Config {
        max_frame_len: args.max_frame_len,
        max_text_len: args.max_text_len,
        max_rooms_per_user: args.max_rooms_per_user,
        request_rate_per_sec: args.rate,
        request_burst: args.burst,
        login_timeout_ms: args.login_timeout.saturating_mul(1000),
        keepalive_interval_ms: args.keepalive.max(1).saturating_mul(1000),
        keepalive_timeout_ms: (args.keepalive / 2).max(1).saturating_mul(1000),
        default_room: args.default_room,
        presence_room_limit: args.presence_room_limit,
        outbox_soft_bytes: args.outbox_bytes / 4 * 3,
        outbox_hard_bytes: args.outbox_bytes,
        password: PasswordParams {
            memory_kib: args.argon2_memory_kib,
            iterations: args.argon2_iterations,
            parallelism: 1,
        },
        ..Config::default()
    };
    config
        .validate()
        .map_err(|e| format!("invalid limits: {e}"))?;
    let location = Location::parse(&args.db);
    let durability = if args.durability == "process" {
        Durability::Process
    } else {
        Durability::Full
    };
    let bus = match (&args.nats, &args.node_id) {
        (Some(url), Some(name)) => {
            if !matches!(location, Location::Postgres(_)) {
                return Err("--nats needs --db postgres://…: the nodes share one database".into());
            }
            Some(BusConfig::new(url, name))
        }
        _ => None,
    };
    let start = {
        let location = location.clone();
        move || async move {
            let storage = Database::open(&location, durability)
                .await
                .map_err(|e| e.to_string())?;
            match bus {
                Some(bus) => {
                    let (engine, node) = Node::start(storage, config, bus)
                        .await
                        .map_err(|e| e.to_string())?;
                    Ok((engine, Some(node)))
                }
                None => Ok((
                    Engine::start(storage, config)
                        .await
                        .map_err(|e| e.to_string())?,
                    None,
                )),
            }
        }
    };
    let (engine, node) = match args.runtime {
        Threads::Multi => start().await?,
        Threads::Current => on_own_thread(start).await?,
    };
    let web_addr: Option<SocketAddr> = match args.web_listen.as_str() {
        "none" => None,
        addr => Some(
            addr.parse()
                .map_err(|e| format!("--web-listen {addr}: {e}"))?,
        ),
    };
    let (tls, generated) = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => (
            Some(Arc::new(
                Tls::from_pem_files(cert, key).map_err(|e| e.to_string())?,
            )),
            None,
        ),
        _ if args.tls_self_signed => {
            let (tls, pem) = Tls::self_signed().map_err(|e| e.to_string())?;
            (Some(Arc::new(tls)), Some(pem))
        }
        _ => (None, None),
    };
    let listener = TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    let web_listener = match web_addr {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .map_err(|e| format!("cannot listen on {addr}: {e}"))?,
        ),
        None => None,
    };
    let web_local = match &web_listener {
        Some(listener) => Some(listener.local_addr().map_err(|e| e.to_string())?),
        None => None,
    };
    let data = match location {
        Location::Sqlite(path) => std::fs::canonicalize(&path).unwrap_or(path),
        Location::Postgres(_) => location.to_string().into(),
    };
    // Errors are ignored: a parent that stopped reading stdout must not stop the server.
    let mut stdout = std::io::stdout().lock();
    let secure = tls.is_some();
    let _ = writeln!(
        stdout,
        "chat-server: chat protocol on {}{local}, data in {}",
        if secure { "tls://" } else { "" },
        data.display()
    );
    if let Some(web) = web_local {
        let scheme = if secure { "https" } else { "http" };
        let host = if web.ip().is_unspecified() {
            format!("localhost:{}", web.port())
        } else {
            web.to_string()
        };
        let _ = writeln!(
            stdout,
            "chat-server: web client on {web}: open {scheme}://{host}/"
        );
    }
    if let (Some(tls), Some(pem)) = (&tls, &generated) {
        let _ = writeln!(
            stdout,
            "chat-server: self-signed development certificate, SHA-256 {}",
            tls.fingerprint()
        );
        let _ = writeln!(stdout, "{}", pem.trim_end());
    }
    let _ = writeln!(
        stdout,
        "{}",
        Ready {
            tcp: local,
            web: web_local,
            db: data
        }
    );
    let _ = stdout.flush();
    drop(stdout);
    let config = ServerConfig {
        max_connections: args.max_connections,
        drain_notice: std::time::Duration::from_secs(args.drain_notice),
        park_after: (args.park_after > 0).then(|| std::time::Duration::from_secs(args.park_after)),
        tls: tls.clone(),
        allowed_origins: args.web_origins,
        web_peers: args.web_peers,
        bus: node.as_ref().map(Node::stats),
        ..ServerConfig::default()
    };
    let server = Server::new(engine, config);
    server.serve_tcp(listener);
    if let Some(web_listener) = web_listener {
        server.serve_web(web_listener);
    }
    if generated.is_none() {
        if let Some(tls) = tls {
            tokio::spawn(reload_on_hangup(tls));
        }
    }
    let served = server
        .run(shutdown_signal())
        .await
        .map_err(|e| e.to_string());
    if let Some(node) = node {
        node.join().await;
    }
    served
}

/// Runs `start` (the engine's start) on a new thread with a single-threaded runtime of its
/// own, where the engine's tasks then run for the rest of the process; returns what it
/// started.
async fn on_own_thread<T, F, Fut>(start: F) -> Result<T, String>
where
    T: Send + 'static,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let (started, result) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("chat-engine".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(error) => {
                    let _ =
                        started.send(Err(format!("cannot start the engine's runtime: {error}")));
                    return;
                }
            };
            runtime.block_on(async move {
                let ok = match start().await {
                    Ok(value) => started.send(Ok(value)).is_ok(),
                    Err(error) => {
                        let _ = started.send(Err(error));
                        false
                    }
                };
                if ok {
                    // The engine's tasks run here until the process ends; the server shuts
                    // the engine down from its own thread.
                    std::future::pending::<()>().await;
                }
            });
        })
        .map_err(|e| format!("cannot start the engine's thread: {e}"))?;
    result
        .await
        .map_err(|_| "the engine's thread ended while starting".to_string())?
}

/// Reloads the certificate and key on each SIGHUP; a failed reload keeps the old ones.
async fn reload_on_hangup(tls: Arc<Tls>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut hangups) = signal(SignalKind::hangup()) else {
            return;
        };
        while hangups.recv().await.is_some() {
            match tls.reload() {
                Ok(()) => {
                    tracing::info!(fingerprint = %tls.fingerprint(), "TLS certificate reloaded")
                }
                Err(error) => {
                    tracing::error!(%error, "TLS reload failed; keeping the old certificate")
                }
            }
        }
    }
    #[cfg(not(unix))]
    let _ = tls;
}

/// Carries out an `admin` command on the database at `db`.
async fn administer(db: &str, admin: &Admin) -> Result<(), String> {
    let (name, write, done): (&str, fn(UserId) -> chat_core::Write, &str) = match admin {
        Admin::Op { name } => (
            name,
            |user| chat_core::Write::SetOperator {
                user,
                operator: true,
            },
            "a server operator",
        ),
        Admin::Deop { name } => (
            name,
            |user| chat_core::Write::SetOperator {
                user,
                operator: false,
            },
            "an ordinary user",
        ),
        Admin::Disable { name } => (
            name,
            |user| chat_core::Write::SetDisabled {
                user,
                disabled: true,
            },
            "disabled",
        ),
        Admin::Enable { name } => (
            name,
            |user| chat_core::Write::SetDisabled {
                user,
                disabled: false,
            },
            "enabled",
        ),
    };
    let location = Location::parse(db);
    if let Location::Sqlite(path) = &location {
        // Opening would create it: a mistyped path should not leave an empty database behind.
        if !path.exists() {
            return Err(format!("no database at {} (see --db)", path.display()));
        }
    }
    let store = Database::open(&location, Durability::Full)
        .await
        .map_err(|e| e.to_string())?;
    let result = async {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let snapshot = store.snapshot(now).await.map_err(|e| e.to_string())?;
        let user = snapshot
            .users
            .iter()
            .find(|u| u.name.eq_ignore_ascii_case(name))
            .ok_or_else(|| format!("no user {name} in {location}"))?
            .id;
        store
            .apply(&[vec![write(user)]])
            .await
            .map_err(|e| e.to_string())
    }
    .await;
    store.close().await;
    result?;
    println!("{name} is now {done} (a running server sees it at its next start)");
    Ok(())
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
