//! [`TestNats`]: a real `nats-server` process on a free 127.0.0.1 port for one test, killed
//! by its PID when dropped, restartable on the same port.
//!
//! Without `nats-server` on `PATH` the NATS tests are skipped, with the reason printed once per
//! test binary; under `CI=true` a missing `nats-server` fails them instead (`.ci/run` installs
//! it).

use std::fs::File;
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Once;
use std::time::{Duration, Instant};

/// The program started.
pub const NATS_SERVER: &str = "nats-server";

/// How long `nats-server` may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// A `nats-server` for one test. Dropping it kills the process (by its PID).
#[derive(Debug)]
pub struct TestNats {
    port: u16,
    child: Option<Child>,
    /// Its stdout and stderr, shown when it fails to start.
    log: PathBuf,
    /// Holds the log until the server is dropped.
    _dir: tempfile::TempDir,
}

impl TestNats {
    /// Starts `nats-server` on a free 127.0.0.1 port and waits until it accepts connections;
    /// `None` (the test is skipped, said once on stderr) when `nats-server` is not on `PATH`.
    ///
    /// # Panics
    /// If `nats-server` is missing and `CI=true` (CI must run the NATS tests), or it does not
    /// start.
    pub async fn start() -> Option<Self> {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut nats = Self {
            port: 0,
            child: None,
            log: dir.path().join("nats-server.log"),
            _dir: dir,
        };
        for _attempt in 0..5 {
            nats.port = free_port();
            match spawn(nats.port, &nats.log) {
                Ok(child) => nats.child = Some(child),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return skip(),
                Err(e) => panic!("cannot start {NATS_SERVER}: {e}"),
            }
            if nats.wait_ready().await {
                return Some(nats);
            }
            // It exited: the port was taken meanwhile. Another one.
        }
        panic!(
            "{NATS_SERVER} exited at start:\n{}",
            std::fs::read_to_string(&nats.log).unwrap_or_default()
        )
    }

    /// The URL clients connect to: `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The server's PID, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills the server (SIGKILL to its PID) and waits for it to exit; its port is free
    /// until [`restart`](Self::restart).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills the server if it runs, then starts it again on the same port and waits until it
    /// accepts connections.
    ///
    /// # Panics
    /// If it does not start.
    pub async fn restart(&mut self) {
        self.kill();
        let child = spawn(self.port, &self.log)
            .unwrap_or_else(|e| panic!("cannot start {NATS_SERVER}: {e}"));
        self.child = Some(child);
        assert!(
            self.wait_ready().await,
            "{NATS_SERVER} did not start again on port {}:\n{}",
            self.port,
            std::fs::read_to_string(&self.log).unwrap_or_default()
        );
    }

    /// Waits until the port accepts connections (`true`) or the process exits (`false`).
    ///
    /// # Panics
    /// If neither happens within [`START_TIMEOUT`].
    async fn wait_ready(&mut self) -> bool {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                return true;
            }
            let child = self.child.as_mut().expect("started");
            if let Ok(Some(_status)) = child.try_wait() {
                self.child = None;
                return false;
            }
            assert!(
                Instant::now() < deadline,
                "{NATS_SERVER} did not listen on {addr} within {START_TIMEOUT:?}:\n{}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for TestNats {
    fn drop(&mut self) {
        self.kill();
    }
}

fn spawn(port: u16, log: &Path) -> std::io::Result<Child> {
    let out = File::options().create(true).append(true).open(log)?;
    let err = out.try_clone()?;
    Command::new(NATS_SERVER)
        .args(["-a", "127.0.0.1", "-p", &port.to_string()])
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
}

/// A port free now on 127.0.0.1 (the OS picks it).
fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("binds 127.0.0.1:0");
    listener.local_addr().expect("bound").port()
}

fn skip() -> Option<TestNats> {
    let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
    assert!(
        !ci,
        "CI=true but {NATS_SERVER} is not on PATH: CI must run the NATS tests"
    );
    static SKIP: Once = Once::new();
    SKIP.call_once(|| {
        // Straight to the stderr stream: the test harness captures `eprintln!`.
        let _ = writeln!(
            std::io::stderr(),
            "note: NATS tests skipped: {NATS_SERVER} is not on PATH \
             (apt-get install nats-server; .ci/run installs it)"
        );
    });
    None
}
