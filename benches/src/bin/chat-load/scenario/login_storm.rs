//! `login-storm`: N concurrent argon2id logins during a fixed-rate fan-out, against the same
//! fan-out quiet.

use std::time::{Duration, Instant};

use crate::clients::{client, connect_all};
use crate::scenario::fanout::Fanout;
use crate::server::Target;
use crate::stats::Report;

/// The parameters of the login storm.
#[derive(Clone, Debug, clap::Args)]
pub(crate) struct LoginStorm {
    #[arg(long, default_value_t = 100)]
    pub(crate) logins: usize,
    #[arg(long, default_value_t = 100)]
    pub(crate) receivers: usize,
    /// Messages per second into the room.
    #[arg(long, default_value_t = 1000)]
    pub(crate) rate: u64,
    /// Seconds of each phase (quiet, then storm).
    #[arg(long, default_value_t = 5)]
    pub(crate) secs: u64,
}

impl LoginStorm {
    /// Runs it.
    pub(crate) async fn run(&self, target: &Target, report: &mut Report) -> Result<(), String> {
        let Self {
            logins,
            receivers,
            rate,
            secs,
        } = self.clone();
        // Accounts for the storm, registered up front (argon2id at OWASP cost).
        let started = Instant::now();
        drop(connect_all(target.addr, "l", logins, None, 1, false).await?);
        report.add(
            "storm accounts registered in",
            started.elapsed().as_secs_f64(),
            "s",
        );
        let phase = Fanout {
            receivers,
            senders: 1,
            messages: (rate * secs) as usize,
            size: 32,
            window: 1024,
            rate: Some(rate),
            windows: None,
        };
        phase.run(target, report, "quiet ").await?;

        let addr = target.addr;
        let storm = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let started = Instant::now();
            let tasks: Vec<_> = (0..logins)
                .map(|i| {
                    tokio::spawn(async move {
                        client(addr, &format!("l{i}"), None, true, "storm").await
                    })
                })
                .collect();
            let mut ok = 0;
            for task in tasks {
                ok += usize::from(matches!(task.await, Ok(Ok(_))));
            }
            (ok, started.elapsed().as_secs_f64())
        });
        phase.run(target, report, "storm ").await?;
        let (ok, took) = storm.await.map_err(|e| e.to_string())?;
        report.add("storm logins succeeded", ok as f64, "");
        report.add("storm logins/s", ok as f64 / took, "logins/s");
        Ok(())
    }
}
