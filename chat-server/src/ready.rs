//! The line the server binary prints on stdout once it listens, for programs that start it
//! (tests, the load generator): written and parsed here, nowhere else.
//!
//! ```text
//! CHAT-SERVER-READY tcp=127.0.0.1:7878 db=/path/to/chat.db
//! ```

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
    /// The database file.
    pub db: PathBuf,
}

impl fmt::Display for Ready {
    /// The ready line, without a newline.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{READY_PREFIX} tcp={} db={}",
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
            let (tcp, db) = rest.split_once(" db=")?;
            Some(Self {
                tcp: tcp.parse().ok()?,
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
            db: PathBuf::from("/tmp/a dir/chat.db"),
        };
        let line = ready.to_string();
        assert_eq!(
            line,
            "CHAT-SERVER-READY tcp=127.0.0.1:40123 db=/tmp/a dir/chat.db"
        );
        assert_eq!(line.parse::<Ready>().expect("parses"), ready);
        assert!("chat-server listening on 127.0.0.1:1"
            .parse::<Ready>()
            .is_err());
        assert!("CHAT-SERVER-READY tcp=nonsense db=x"
            .parse::<Ready>()
            .is_err());
    }
}
