//! The line the server binary prints on stdout once it listens, for programs that start it
//! (tests, the load generator): written and parsed here, nowhere else.
//!
//! ```text
//! CHAT-SERVER-READY tcp=127.0.0.1:7878 web=127.0.0.1:8080 db=/path/to/chat.db
//! ```
//!
//! `web=none` when the web listener is disabled.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

/// The first word of the ready line.
pub const READY_PREFIX: &str = "CHAT-SERVER-READY";

/// What a started server reports: where it listens and where its data is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ready {
    /// The TCP address it accepts connections on.
    pub tcp: SocketAddr,
    /// The web (HTTP and WebSocket) address, if that listener is on.
    pub web: Option<SocketAddr>,
    /// The database file.
    pub db: PathBuf,
}

impl fmt::Display for Ready {
    /// The ready line, without a newline.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let web = self
            .web
            .map_or_else(|| "none".to_owned(), |a| a.to_string());
        write!(
            f,
            "{READY_PREFIX} tcp={} web={web} db={}",
            self.tcp,
            self.db.display()
        )
    }
}

/// Why a line is not a ready line.
#[derive(Debug, thiserror::Error)]
#[error("not a {READY_PREFIX} line: {0:?}")]
pub struct NotReady(String);

impl FromStr for Ready {
    type Err = NotReady;

    /// Parses a ready line (the database path is the rest of the line, spaces included).
    fn from_str(line: &str) -> Result<Self, NotReady> {
        let parse = || {
            let rest = line.strip_prefix(READY_PREFIX)?.strip_prefix(" tcp=")?;
            let (tcp, rest) = rest.split_once(" web=")?;
            let (web, db) = rest.split_once(" db=")?;
            let web = match web {
                "none" => None,
                web => Some(web.parse().ok()?),
            };
            Some(Self {
                tcp: tcp.parse().ok()?,
                web,
                db: PathBuf::from(db),
            })
        };
        parse().ok_or_else(|| NotReady(line.to_owned()))
    }
}

/// Reads a starting server's stdout up to its ready line, skipping other lines.
///
/// # Errors
/// A message if the output ends (the server exited) or cannot be read first.
pub async fn wait_ready(stdout: impl AsyncRead + Unpin) -> Result<Ready, String> {
    let mut lines = BufReader::new(stdout).lines();
    loop {
        match lines.next_line().await {
            Ok(Some(line)) => {
                if let Ok(ready) = line.parse() {
                    return Ok(ready);
                }
            }
            Ok(None) => return Err("the server exited before it was ready".into()),
            Err(error) => return Err(format!("cannot read the server's output: {error}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ready_line_round_trips() {
        let ready = Ready {
            tcp: "127.0.0.1:40123".parse().expect("address"),
            web: Some("127.0.0.1:40124".parse().expect("address")),
            db: PathBuf::from("/tmp/a dir/chat.db"),
        };
        let line = ready.to_string();
        assert_eq!(
            line,
            "CHAT-SERVER-READY tcp=127.0.0.1:40123 web=127.0.0.1:40124 db=/tmp/a dir/chat.db"
        );
        assert_eq!(line.parse::<Ready>().expect("parses"), ready);
        let no_web = Ready { web: None, ..ready };
        assert_eq!(no_web.to_string().parse::<Ready>().expect("parses"), no_web);
        assert!("chat-server listening on 127.0.0.1:1"
            .parse::<Ready>()
            .is_err());
        assert!("CHAT-SERVER-READY tcp=nonsense db=x"
            .parse::<Ready>()
            .is_err());
    }
}
