//! `chat-cli`: a terminal chat client that reconnects by itself.
//!
//! Three modes, one client (`chat_client::Client`):
//! - on a terminal, a full-screen interface ([`tui`]): a buffer per room and conversation, an
//!   activity bar, a status line, a member list, scrollback and an input line;
//! - on a terminal with `--plain`, a line-oriented interface ([`plain`]);
//! - with stdin from a pipe or file, a script: the lines run in order, one line per event is
//!   printed, and the exit status is 0 if every command succeeded, 1 otherwise.
//!
//! # Layout
//! - [`render`]: events to text, every untrusted string escaped (pure).
//! - [`editor`]: the input line, its history file and tab completion (pure but for the file).
//! - [`terminal`]: raw mode, the key reader thread and the screen thread's loop.
//! - [`plain`], [`tui`]: the two interactive screens.

mod editor;
mod plain;
mod render;
mod terminal;
mod tui;

use std::io::IsTerminal;
use std::time::Duration;

use chat_client::{Client, Connector, Failover, Input, Settings, TcpConnector, TlsConnector};
use clap::Parser;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};

/// A terminal chat client. Type /help once connected.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// The server's address, `host:port`. Several (comma-separated, or the flag repeated) name
    /// nodes of one cluster: the client connects to the first that answers and, when its node
    /// dies, fails over to the next, resuming the session by token.
    #[arg(
        long,
        env = "CHAT_SERVER",
        value_delimiter = ',',
        default_value = "127.0.0.1:7878",
        value_name = "HOST:PORT[,HOST:PORT…]"
    )]
    server: Vec<String>,
    /// This device's stable id (delivery positions are per device).
    #[arg(long, env = "CHAT_DEVICE")]
    device: Option<String>,
    /// Connect with TLS, trusting the web's root certificates (or `--ca-file`).
    #[arg(long, env = "CHAT_TLS")]
    tls: bool,
    /// Trust the certificates in this PEM file instead (implies `--tls`); e.g. the one
    /// `chat-server --tls-self-signed` printed.
    #[arg(long, env = "CHAT_CA_FILE")]
    ca_file: Option<std::path::PathBuf>,
    /// The name the servers' certificates must carry (default: the host of each `--server`).
    #[arg(long, env = "CHAT_TLS_NAME")]
    tls_name: Option<String>,
    /// Without a terminal: seconds to keep printing events after the last reply.
    #[arg(long, default_value_t = 1.0)]
    linger: f64,
    /// On a terminal: a line-oriented interface instead of the full-screen one.
    #[arg(long, env = "CHAT_PLAIN", value_parser = clap::builder::BoolishValueParser::new())]
    plain: bool,
    /// Do not ring the terminal bell when someone mentions you or writes to you directly.
    #[arg(long, env = "CHAT_NO_BELL", value_parser = clap::builder::BoolishValueParser::new())]
    no_bell: bool,
}

/// The servers named by `--server` (and `CHAT_SERVER`), in order, without blanks.
fn servers(args: &Args) -> Vec<String> {
    let servers: Vec<String> = args
        .server
        .iter()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect();
    if servers.is_empty() {
        return vec!["127.0.0.1:7878".into()];
    }
    servers
}

/// The TLS connectors the flags ask for, one per server, after one handshake with each that
/// answers: an untrusted or mismatched certificate is reported at once rather than retried.
async fn tls_connectors(
    args: &Args,
    servers: &[String],
) -> Result<Vec<TlsConnector>, chat_client::Error> {
    let config = chat_client::tls_config(args.ca_file.as_deref())?;
    let mut connectors = Vec::new();
    for server in servers {
        let host = server
            .rsplit_once(':')
            .map_or(server.as_str(), |(host, _)| host)
            .trim_start_matches('[')
            .trim_end_matches(']');
        let connector = TlsConnector {
            addr: server.clone(),
            name: args.tls_name.clone().unwrap_or_else(|| host.to_owned()),
            config: config.clone(),
        };
        match chat_client::tls(&connector.addr, &connector.name, connector.config.clone()).await {
            Err(error @ chat_client::Error::Tls(_)) => return Err(error),
            // Unreachable servers are retried by the client as usual.
            _ => connectors.push(connector),
        }
    }
    Ok(connectors)
}

/// A stable default device id: `cli-` and the host name.
fn default_device() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| {
            h.trim()
                .chars()
                .filter(char::is_ascii_graphic)
                .take(40)
                .collect::<String>()
        })
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into());
    format!("cli-{host}")
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let servers = servers(&args);
    let tls = if args.tls || args.ca_file.is_some() {
        match tls_connectors(&args, &servers).await {
            Ok(connectors) => Failover::new(connectors),
            Err(error) => {
                eprintln!("chat-cli: {error}");
                std::process::exit(1);
            }
        }
    } else {
        None
    };
    let interactive = std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    let settings = Settings {
        servers: servers.clone(),
        device: args.device.clone().unwrap_or_else(default_device),
        password: std::env::var("CHAT_PASSWORD").ok(),
        client_name: concat!("chat-cli/", env!("CARGO_PKG_VERSION")).into(),
        linger: Duration::from_secs_f64(args.linger.clamp(0.0, 3600.0)),
        interactive,
    };
    let client = Client::new(settings);
    let code = match tls {
        Some(connector) => run(&args, interactive, client, connector).await,
        None => {
            let tcp = servers.iter().cloned().map(TcpConnector).collect();
            match Failover::new(tcp) {
                Some(connector) => run(&args, interactive, client, connector).await,
                None => unreachable!("`servers` names at least one"),
            }
        }
    };
    // The key reader thread may still be blocked reading the terminal: leave without waiting.
    std::process::exit(code);
}

/// Runs the client over `connector` on the terminal or as a script; returns the exit status.
async fn run<C>(args: &Args, interactive: bool, client: Client, connector: C) -> i32
where
    C: Connector + Clone + 'static,
{
    if !interactive {
        return script(client, connector).await;
    }
    match on_terminal(args, client, connector).await {
        Ok(code) => code,
        Err(error) => {
            eprintln!("chat-cli: cannot use the terminal: {error}");
            1
        }
    }
}

/// Top-level entry point of the interactive modes: the terminal in raw mode, the screen on its
/// own thread, the client on tokio.
async fn on_terminal<C>(args: &Args, client: Client, connector: C) -> std::io::Result<i32>
where
    C: Connector + Clone + 'static,
{
    let (screen_tx, screen_rx) = std::sync::mpsc::channel();
    let (input_tx, input_rx) = unbounded_channel();
    let raw = terminal::Raw::enter(!args.plain)?;
    let editor = editor::Editor::new(editor::history_path());
    let bell = !args.no_bell;
    let screen = if args.plain {
        Screens::Plain(plain::Plain::new(editor, bell))
    } else {
        let first = servers(args).swap_remove(0);
        Screens::Full(tui::Tui::on_stdout(tui::App::new(editor, first, bell))?)
    };
    terminal::read_keys(screen_tx.clone());
    let thread = std::thread::spawn(move || match screen {
        Screens::Plain(screen) => terminal::show(screen, &screen_rx, &input_tx),
        Screens::Full(screen) => terminal::show(screen, &screen_rx, &input_tx),
    });
    let events = screen_tx.clone();
    let code = chat_client::run(client, connector, input_rx, move |event| {
        let _ = events.send(terminal::Message::Client(event));
    })
    .await;
    let _ = screen_tx.send(terminal::Message::Exit);
    let _ = thread.join();
    drop(raw);
    Ok(code)
}

/// The two interactive screens.
enum Screens {
    Plain(plain::Plain),
    Full(tui::Tui<ratatui::backend::CrosstermBackend<std::io::Stdout>>),
}

/// Top-level entry point of script mode: stdin's lines in order, one output line per event
/// (no prompts, no escape sequences).
async fn script<C>(client: Client, connector: C) -> i32
where
    C: Connector + Clone + 'static,
{
    let (tx, rx) = unbounded_channel();
    tokio::spawn(read_lines(tx));
    chat_client::run(client, connector, rx, |event| {
        for line in render::lines(&event, render::now_ms()) {
            println!("{line}");
        }
    })
    .await
}

async fn read_lines(input: UnboundedSender<Input>) {
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if input.send(Input::Line(line)).is_err() {
            return;
        }
    }
    let _ = input.send(Input::End);
}
