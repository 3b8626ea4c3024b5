//! [`Throttle`]: what bounds password guessing and password-hashing work, by source address.
//!
//! - **Guessing one account** is throttled per `(source, username)`: a few attempts are free,
//!   then each further attempt must wait twice as long as the last (exponential back-off).
//!   The real user, logging in from another address, is not slowed — an attacker cannot lock
//!   anyone out of their account — and a resumable token never goes through here.
//! - **Spraying** (one password over many names) is throttled per source across names, the
//!   same way with a larger free allowance.
//! - Attempts count **when they start**, not when their hash is checked, so attempts in flight
//!   count too: a burst of parallel guesses gets no more tries than a sequence.
//! - **Hashing work** is bounded per source (a few hashes in flight) and overall (a bounded
//!   queue): past either, a login or registration fails at once with `RateLimited` instead of
//!   waiting behind everyone else's hashes.
//!
//! Sources are IP addresses (`None` for in-process connections, which share one budget). The
//! maps are bounded: past [`MAX_TRACKED`] entries, those whose back-off has run out are
//! forgotten, and a new entry that still does not fit is refused.

use std::collections::HashMap;
use std::net::IpAddr;

use rustc_hash::FxHashMap;

use crate::types::{Mono, SessionId};
use crate::Config;

/// Where a connection comes from.
pub(super) type Source = Option<IpAddr>;

/// Entries kept per map at most.
pub(super) const MAX_TRACKED: usize = 100_000;

/// A retry-after for the hashing bounds: about one hash's time.
const HASH_RETRY_MS: u32 = 250;

/// Failures counted for one key, and when the last one started.
#[derive(Clone, Copy, Debug)]
struct Backoff {
    failures: u32,
    last: Mono,
}

impl Backoff {
    /// How long after `last` the next attempt must wait, past `free` failures.
    fn wait(self, free: u32, config: &Config) -> u64 {
        let Some(over) = self.failures.checked_sub(free) else {
            return 0;
        };
        let doubled = config
            .login_backoff_base_ms
            .saturating_mul(1u64.checked_shl(over.min(63)).unwrap_or(u64::MAX));
        doubled.min(config.login_backoff_max_ms)
    }

    /// Milliseconds from `now` until the next attempt is allowed (zero if it is).
    fn remaining(self, free: u32, config: &Config, now: Mono) -> u64 {
        self.last.plus(self.wait(free, config)).since(now)
    }

    /// Whether the entry carries nothing any more: its back-off ran out and a quiet period as
    /// long again has passed.
    fn expired(self, free: u32, config: &Config, now: Mono) -> bool {
        let quiet = self.wait(free, config).max(config.login_backoff_base_ms) * 2;
        now.since(self.last) >= quiet.max(config.login_backoff_max_ms)
    }
}

#[derive(Debug, Default)]
pub(super) struct Throttle {
    pairs: HashMap<(Source, String), Backoff>,
    sources: HashMap<Source, Backoff>,
    /// Hashes in flight per source.
    hashing: HashMap<Source, usize>,
    /// The source of each session with a hash in flight.
    hashing_sessions: FxHashMap<SessionId, Source>,
}

/// Why an attempt may not start now: retry after this many milliseconds.
pub(super) type RetryAfter = u32;

fn clamp(ms: u64) -> RetryAfter {
    u32::try_from(ms).unwrap_or(u32::MAX).max(1)
}

impl Throttle {
    /// Starts a password login for `key` from `source`: counted as a failure until
    /// [`succeeded`](Self::succeeded) says otherwise.
    ///
    /// # Errors
    /// The milliseconds to wait, if `source` must back off for `key` or for guessing overall.
    pub(super) fn begin_login(
        &mut self,
        source: Source,
        key: &str,
        config: &Config,
        now: Mono,
    ) -> Result<(), RetryAfter> {
        let pair_key = (source, key.to_owned());
        let pair = self.pairs.get(&pair_key).copied();
        let by_source = self.sources.get(&source).copied();
        let wait = pair
            .map_or(0, |b| b.remaining(config.login_free_attempts, config, now))
            .max(by_source.map_or(0, |b| {
                b.remaining(config.login_source_free_attempts, config, now)
            }));
        if wait > 0 {
            return Err(clamp(wait));
        }
        self.prune(config, now);
        if self.pairs.len() >= MAX_TRACKED && pair.is_none()
            || self.sources.len() >= MAX_TRACKED && by_source.is_none()
        {
            return Err(clamp(config.login_backoff_base_ms));
        }
        for backoff in [
            self.pairs.entry(pair_key).or_insert(Backoff {
                failures: 0,
                last: now,
            }),
            self.sources.entry(source).or_insert(Backoff {
                failures: 0,
                last: now,
            }),
        ] {
            backoff.failures = backoff.failures.saturating_add(1);
            backoff.last = now;
        }
        Ok(())
    }

    /// A login for `key` from `source` succeeded: its pair starts afresh, and the attempt no
    /// longer counts against the source.
    pub(super) fn succeeded(&mut self, source: Source, key: &str) {
        self.pairs.remove(&(source, key.to_owned()));
        if let Some(b) = self.sources.get_mut(&source) {
            b.failures = b.failures.saturating_sub(1);
        }
    }

    /// Takes a hashing slot for `session`, from `source`.
    ///
    /// # Errors
    /// The milliseconds to wait, if the source or the whole server has as many hashes in
    /// flight as it may.
    pub(super) fn begin_hash(
        &mut self,
        session: SessionId,
        source: Source,
        config: &Config,
    ) -> Result<(), RetryAfter> {
        let mine = self.hashing.get(&source).copied().unwrap_or(0);
        let total = self.hashing_sessions.len();
        if mine >= config.max_hashes_per_source || total >= config.max_pending_hashes {
            return Err(HASH_RETRY_MS);
        }
        if self.hashing_sessions.insert(session, source).is_none() {
            *self.hashing.entry(source).or_default() += 1;
        }
        Ok(())
    }

    /// The hash of `session` finished (or failed). Idempotent.
    pub(super) fn end_hash(&mut self, session: SessionId) {
        let Some(source) = self.hashing_sessions.remove(&session) else {
            return;
        };
        if let Some(count) = self.hashing.get_mut(&source) {
            *count -= 1;
            if *count == 0 {
                self.hashing.remove(&source);
            }
        }
    }

    /// Forgets entries that carry nothing any more, once a map is full.
    fn prune(&mut self, config: &Config, now: Mono) {
        if self.pairs.len() >= MAX_TRACKED {
            self.pairs
                .retain(|_, b| !b.expired(config.login_free_attempts, config, now));
        }
        if self.sources.len() >= MAX_TRACKED {
            self.sources
                .retain(|_, b| !b.expired(config.login_source_free_attempts, config, now));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        Config {
            login_free_attempts: 3,
            login_source_free_attempts: 5,
            login_backoff_base_ms: 1000,
            login_backoff_max_ms: 60_000,
            max_hashes_per_source: 2,
            max_pending_hashes: 3,
            ..Config::default()
        }
    }

    const A: Source = Some(IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1)));
    const B: Source = Some(IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2)));

    #[test]
    fn a_pair_backs_off_exponentially_and_other_sources_are_free() {
        let c = config();
        let mut t = Throttle::default();
        for _ in 0..3 {
            assert_eq!(t.begin_login(A, "alice", &c, Mono(0)), Ok(()));
        }
        // The fourth attempt from A must wait a second, then two, then four.
        assert_eq!(t.begin_login(A, "alice", &c, Mono(0)), Err(1000));
        assert_eq!(
            t.begin_login(B, "alice", &c, Mono(0)),
            Ok(()),
            "not locked out"
        );
        assert_eq!(t.begin_login(A, "alice", &c, Mono(1000)), Ok(()));
        assert_eq!(t.begin_login(A, "alice", &c, Mono(1000)), Err(2000));
        assert_eq!(t.begin_login(A, "alice", &c, Mono(3000)), Ok(()));
        assert_eq!(t.begin_login(A, "alice", &c, Mono(3000)), Err(4000));
        t.succeeded(A, "alice");
        assert_eq!(t.begin_login(A, "alice", &c, Mono(3000)), Ok(()));
    }

    #[test]
    fn spraying_one_password_over_many_names_backs_off_the_source() {
        let c = config();
        let mut t = Throttle::default();
        for name in ["a", "b", "c", "d", "e"] {
            assert_eq!(t.begin_login(A, name, &c, Mono(0)), Ok(()));
        }
        assert_eq!(t.begin_login(A, "f", &c, Mono(0)), Err(1000));
        assert_eq!(t.begin_login(B, "f", &c, Mono(0)), Ok(()));
    }

    #[test]
    fn the_back_off_is_capped() {
        let c = config();
        let b = Backoff {
            failures: 200,
            last: Mono(0),
        };
        assert_eq!(b.wait(3, &c), 60_000);
    }

    #[test]
    fn hashing_is_bounded_per_source_and_overall() {
        let c = config();
        let mut t = Throttle::default();
        let s = SessionId;
        assert!(t.begin_hash(s(1), A, &c).is_ok());
        assert!(t.begin_hash(s(2), A, &c).is_ok());
        assert!(t.begin_hash(s(3), A, &c).is_err(), "two per source");
        assert!(t.begin_hash(s(4), B, &c).is_ok());
        assert!(t.begin_hash(s(5), None, &c).is_err(), "three overall");
        t.end_hash(s(1));
        t.end_hash(s(1));
        assert!(t.begin_hash(s(5), None, &c).is_ok());
        assert!(t.begin_hash(s(6), A, &c).is_err(), "three overall again");
    }
}
