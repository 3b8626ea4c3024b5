//! `chat-cli`: a line-oriented chat client that reconnects by itself.
//!
//! On a terminal it runs a line editor; with stdin from a pipe or file it runs the lines as a
//! script and exits with status 0 if every command succeeded, 1 otherwise.

mod input;
mod render;

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use chat_client::{Client, Settings, TcpConnector, TlsConnector};
use clap::Parser;

/// A terminal chat client. Type /help once connected.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// The server's address.
    #[arg(long, env = "CHAT_SERVER", default_value = "127.0.0.1:7878")]
    server: String,
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
    /// The name the server's certificate must carry (default: the host of `--server`).
    #[arg(long, env = "CHAT_TLS_NAME")]
    tls_name: Option<String>,
    /// Without a terminal: seconds to keep printing events after the last reply.
    #[arg(long, default_value_t = 1.0)]
    linger: f64,
}

/// The TLS connector the flags ask for, after one handshake: an untrusted or mismatched
/// certificate is reported at once rather than retried.
async fn tls_connector(args: &Args) -> Result<TlsConnector, chat_client::Error> {
    let config = chat_client::tls_config(args.ca_file.as_deref())?;
    let host = args
        .server
        .rsplit_once(':')
        .map_or(args.server.as_str(), |(host, _)| host)
        .trim_start_matches('[')
        .trim_end_matches(']');
    let connector = TlsConnector {
        addr: args.server.clone(),
        name: args.tls_name.clone().unwrap_or_else(|| host.to_owned()),
        config,
    };
    match chat_client::tls(&connector.addr, &connector.name, connector.config.clone()).await {
        Err(error @ chat_client::Error::Tls(_)) => Err(error),
        // Unreachable servers are retried by the client as usual.
        _ => Ok(connector),
    }
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
async fn main() -> ExitCode {
    let args = Args::parse();
    let tls = if args.tls || args.ca_file.is_some() {
        match tls_connector(&args).await {
            Ok(connector) => Some(connector),
            Err(error) => {
                eprintln!("chat-cli: {error}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        None
    };
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let output = if std::io::stdin().is_terminal() && std::io::stdout().is_terminal() {
        match input::terminal(tx) {
            Ok(output) => output,
            Err(error) => {
                eprintln!("chat-cli: cannot use the terminal: {error}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        input::script(tx)
    };
    let settings = Settings {
        server: args.server.clone(),
        device: args.device.unwrap_or_else(default_device),
        password: std::env::var("CHAT_PASSWORD").ok(),
        client_name: concat!("chat-cli/", env!("CARGO_PKG_VERSION")).into(),
        linger: Duration::from_secs_f64(args.linger.clamp(0.0, 3600.0)),
    };
    let show = |event: chat_client::Event| {
        for line in render::lines(&event, render::now_ms()) {
            output.line(line);
        }
    };
    let client = Client::new(settings);
    let code = match tls {
        Some(connector) => chat_client::run(client, connector, rx, show).await,
        None => chat_client::run(client, TcpConnector(args.server), rx, show).await,
    };
    // The editor thread may still be blocked reading the terminal: leave without waiting.
    std::process::exit(code);
}
