//! `login-attack`: N attacking connections log in with wrong passwords as fast as the server
//! answers (each to names that do not exist, so no per-account back-off slows them), while the
//! real user logs in again and again from another address; reports the real user's login
//! latency at rest and under attack, and the server's memory after the attack.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use chat_client::{Error, Session};
use chat_proto::{ErrorCode, ErrorReply};

use crate::clients::client;
use crate::server::{rss_bytes, Target};
use crate::stats::{histogram, Report};

/// The parameters of the attack.
#[derive(Clone, Debug, clap::Args)]
pub(crate) struct LoginAttack {
    /// Attacking connections.
    #[arg(long, default_value_t = 400)]
    pub(crate) attackers: usize,
    /// Addresses they come from (127.0.0.2 onwards).
    #[arg(long, default_value_t = 1)]
    pub(crate) sources: u8,
    /// Seconds of attack.
    #[arg(long, default_value_t = 10)]
    pub(crate) secs: u64,
}

/// The real user's login, timed; `RateLimited` answers are waited out and retried.
async fn timed_login(target: &Target) -> Result<Duration, String> {
    let started = Instant::now();
    loop {
        match client(target.addr, "real", None, true, "real-device").await {
            Ok(_) => return Ok(started.elapsed()),
            Err(e) if e.contains("RateLimited") => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

impl LoginAttack {
    /// Runs it.
    pub(crate) async fn run(&self, target: &Target, report: &mut Report) -> Result<(), String> {
        let Self {
            attackers,
            sources,
            secs,
        } = self.clone();
        drop(client(target.addr, "real", None, false, "real-device").await?);
        let mut quiet = histogram();
        for _ in 0..5 {
            let took = timed_login(target).await?;
            quiet
                .record(took.as_micros() as u64)
                .map_err(|e| e.to_string())?;
        }
        report.latency("real login at rest ", &quiet);
        let rss_before = rss_bytes(target.pid);

        let until = Instant::now() + Duration::from_secs(secs);
        let addr = target.addr.addr;
        let tasks: Vec<_> = (0..attackers)
            .map(|i| {
                let source = IpAddr::V4(Ipv4Addr::new(
                    127,
                    0,
                    0,
                    2 + (i % usize::from(sources.max(1))) as u8,
                ));
                tokio::spawn(async move {
                    let (mut tried, mut refused) = (0u64, 0u64);
                    let Ok(mut session) =
                        Session::connect_from(addr, Some(source), "attacker").await
                    else {
                        return (tried, refused);
                    };
                    let mut n = 0;
                    while Instant::now() < until {
                        n += 1;
                        let name = format!("ghost{i}x{n}");
                        match session.login(&name, "not the password", "d").await {
                            Err(Error::Refused(ErrorReply {
                                code: ErrorCode::RateLimited { retry_after_ms },
                                ..
                            })) => {
                                refused += 1;
                                let wait = Duration::from_millis(retry_after_ms.into());
                                tokio::time::sleep(wait.min(Duration::from_millis(250))).await;
                            }
                            Err(Error::Refused(_)) => tried += 1,
                            Err(_) | Ok(_) => break,
                        }
                    }
                    (tried, refused)
                })
            })
            .collect();
        let mut attacked = histogram();
        while Instant::now() + Duration::from_millis(500) < until {
            let took = timed_login(target).await?;
            attacked
                .record(took.as_micros() as u64)
                .map_err(|e| e.to_string())?;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let (mut tried, mut refused) = (0, 0);
        for task in tasks {
            let (t, r) = task.await.map_err(|e| e.to_string())?;
            tried += t;
            refused += r;
        }
        report.latency("real login under attack ", &attacked);
        report.add("attacker guesses checked", tried as f64, "");
        report.add("attacker attempts refused at once", refused as f64, "");
        report.add(
            "server RSS before the attack",
            rss_before / 1048576.0,
            "MiB",
        );
        report.add(
            "server RSS after the attack",
            rss_bytes(target.pid) / 1048576.0,
            "MiB",
        );
        Ok(())
    }
}
