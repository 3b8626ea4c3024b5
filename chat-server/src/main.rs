//! The `chat-server` binary: parse flags, open the database, serve until SIGINT or SIGTERM.

use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use chat_core::{Config, Durability, Engine, PasswordParams, Storage, Store};
use chat_server::ready::Ready;
use chat_server::ServerConfig;
use clap::Parser;
use tokio::net::TcpListener;

/// A chat server: TCP on one side, a SQLite file on the other.
///
/// Every flag can also be set by the environment variable shown.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Address to listen on.
    #[arg(long, env = "CHAT_LISTEN", default_value = "127.0.0.1:7878")]
    listen: SocketAddr,
    /// The SQLite database file (created if missing). A `postgres://` URL is reserved for a
    /// later release.
    #[arg(long, env = "CHAT_DB", default_value = "chat.db", global = true)]
    db: String,
    /// Most simultaneous connections.
    #[arg(long, env = "CHAT_MAX_CONNECTIONS", default_value_t = 10_000)]
    max_connections: usize,
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
    /// Outbound bytes queued per connection before it is closed as a slow consumer.
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
    /// Instead of serving, administer the database (`--db`).
    #[command(subcommand)]
    command: Option<Command>,
}

/// What to do instead of serving.
#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Change accounts in the database. A running server sees the change at its next start.
    #[command(subcommand)]
    Admin(Admin),
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
    let args = Args::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("chat-server: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = match args.command {
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

async fn serve(args: Args) -> Result<(), String> {
    if args.db.starts_with("postgres://") || args.db.starts_with("postgresql://") {
        return Err("PostgreSQL storage is not available yet; use a SQLite file path".into());
    }
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
    let path = PathBuf::from(&args.db);
    let durability = if args.durability == "process" {
        Durability::Process
    } else {
        Durability::Full
    };
    let store = Store::open_with(&path, durability)
        .await
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let engine = Engine::start(store, config)
        .await
        .map_err(|e| e.to_string())?;
    let listener = TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    let data = std::fs::canonicalize(&path).unwrap_or(path);
    // Errors are ignored: a parent that stopped reading stdout must not stop the server.
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(
        stdout,
        "chat-server listening on {local}, data in {}",
        data.display()
    );
    let _ = writeln!(
        stdout,
        "{}",
        Ready {
            tcp: local,
            db: data
        }
    );
    let _ = stdout.flush();
    drop(stdout);
    let server = ServerConfig {
        max_connections: args.max_connections,
        ..ServerConfig::default()
    };
    chat_server::run(listener, engine, server, shutdown_signal())
        .await
        .map_err(|e| e.to_string())
}

/// Carries out an `admin` command on the database at `db`.
async fn administer(db: &str, admin: &Admin) -> Result<(), String> {
    let (name, operator) = match admin {
        Admin::Op { name } => (name, true),
        Admin::Deop { name } => (name, false),
    };
    let store = Store::open(db)
        .await
        .map_err(|e| format!("cannot open {db}: {e}"))?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(0));
    let snapshot = store.snapshot(now).await.map_err(|e| e.to_string())?;
    let user = snapshot
        .users
        .iter()
        .find(|u| u.name.eq_ignore_ascii_case(name))
        .ok_or_else(|| format!("no user {name}"))?
        .id;
    store
        .apply(&[vec![chat_core::Write::SetOperator { user, operator }]])
        .await
        .map_err(|e| e.to_string())?;
    store.close().await;
    let what = if operator {
        "a server operator"
    } else {
        "an ordinary user"
    };
    println!("{name} is now {what} (a running server sees it at its next start)");
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
