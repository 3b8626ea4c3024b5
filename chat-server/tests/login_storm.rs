//! The real `chat-server` binary with production password hashing (argon2id, 19 MiB) under a
//! login storm from several addresses: the real user still logs in, and the memory used for
//! hashing does not grow with the storm. The process is started and ended here, by PID.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::Stdio;
use std::time::Instant;

use chat_client::{Error, Session};
use chat_proto::*;
use chat_testkit::*;
use tokio::process::{Child, Command};

async fn spawn_server(db: &Path) -> (Child, SocketAddr) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_chat-server"));
    command
        .args(["--listen", "127.0.0.1:0", "--db"])
        .arg(db)
        .env("RUST_LOG", "error")
        .stderr(Stdio::null());
    let (child, ready) = spawn_ready(&mut command)
        .await
        .expect("the server binary starts");
    (child, ready.tcp)
}

/// Resident memory of process `pid`, in bytes.
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Logs `name` in from `source`, waiting out `RateLimited` answers; returns how it ended.
async fn login_from(
    addr: SocketAddr,
    source: IpAddr,
    name: &str,
    password: &str,
) -> Result<(), Error> {
    let mut session = Session::connect_from(addr, Some(source), "storm").await?;
    loop {
        match session.login(name, password, "d").await {
            Err(Error::Refused(ErrorReply {
                code: ErrorCode::RateLimited { retry_after_ms },
                ..
            })) => {
                tokio::time::sleep(std::time::Duration::from_millis(retry_after_ms.into())).await;
            }
            other => return other.map(|_| ()),
        }
    }
}

#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_storm_neither_starves_real_logins_nor_grows_memory() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (server, addr) = spawn_server(&dir.path().join("chat.db")).await;
    let pid = server.id().expect("running");
    drop(logged_in(addr, "alice", true).await);
    let home = IpAddr::V4(Ipv4Addr::LOCALHOST);
    login_from(addr, home, "alice", PASSWORD)
        .await
        .expect("logs in");
    let baseline = rss(pid);

    // Eight attacking addresses, each trying names that do not exist.
    let attackers: Vec<_> = (2..10u8)
        .map(|n| {
            let source = IpAddr::V4(Ipv4Addr::new(127, 0, 0, n));
            tokio::spawn(async move {
                for i in 0..6 {
                    let name = format!("ghost{n}x{i}");
                    let result = login_from(addr, source, &name, "not the password").await;
                    assert!(
                        matches!(&result, Err(Error::Refused(e)) if e.code == ErrorCode::BadCredentials),
                        "{result:?}"
                    );
                }
            })
        })
        .collect();
    // Meanwhile the real user logs in, and is answered.
    let started = Instant::now();
    login_from(addr, home, "alice", PASSWORD)
        .await
        .expect("the real user logs in during the storm");
    let latency = started.elapsed();
    for attacker in attackers {
        attacker.await.expect("attacker finished");
    }
    let after = rss(pid);
    eprintln!(
        "login during the storm: {latency:?}; RSS {} MiB before the storm, {} MiB after",
        baseline >> 20,
        after >> 20
    );
    assert!(
        after <= baseline + 8 * 1024 * 1024,
        "hashing memory grew with the storm: {} MiB -> {} MiB",
        baseline >> 20,
        after >> 20
    );
    drop(server);
}
