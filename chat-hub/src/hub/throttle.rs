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
//! - **Hashing work** waits in a queue of its own, bounded per source (a few hashes) and
//!   overall: past either, a login or registration fails at once with `RateLimited` instead
//!   of waiting behind everyone else's. The hub hands the driver only as many hashes as it
//!   has hashing threads, taking first from sources that have logged in successfully before
//!   and have no failed attempt since: under a storm of wrong guesses from many addresses, a
//!   returning user waits for at most the hashes already running, not for the attackers'
//!   queue.
//!
//! Sources are IP addresses (`None` for in-process connections, which share one budget). The
//! maps are bounded: past [`MAX_TRACKED`] entries, those whose back-off has run out are
//! forgotten, and a new entry that still does not fit is refused.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use std::collections::VecDeque;

use rustc_hash::FxHashMap;

use super::output::IoRequest;
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
    /// Sources a login has succeeded from.
    trusted: HashSet<Source>,
    /// Hashes queued or running per source.
    hashing: HashMap<Source, usize>,
    /// Each session with a hash queued or running.
    hashing_sessions: FxHashMap<SessionId, Hash>,
    /// Hashes waiting for a thread: `[0]` from sources with no recent failure, `[1]` others.
    queues: [VecDeque<(SessionId, IoRequest)>; 2],
    /// Hashes handed to the driver and not yet completed.
    running: usize,
}

/// A session's hash.
#[derive(Clone, Copy, Debug)]
struct Hash {
    source: Source,
    running: bool,
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
        if self.trusted.len() < MAX_TRACKED {
            self.trusted.insert(source);
        }
        self.pairs.remove(&(source, key.to_owned()));
        if let Some(b) = self.sources.get_mut(&source) {
            b.failures = b.failures.saturating_sub(1);
        }
    }

    /// Whether `source` has logged in successfully before and has no failed attempt counted
    /// against it since: its password work goes first.
    pub(super) fn is_clean(&self, source: Source) -> bool {
        self.trusted.contains(&source) && self.sources.get(&source).is_none_or(|b| b.failures == 0)
    }

    /// Whether `source` may queue another hash. A clean source finds room in a full queue
    /// as long as it holds work from sources with failures: that work is pushed out.
    ///
    /// # Errors
    /// The milliseconds to wait, if the source or the whole server has as many hashes queued
    /// or running as it may.
    pub(super) fn hash_room(
        &self,
        source: Source,
        clean: bool,
        config: &Config,
    ) -> Result<(), RetryAfter> {
        let mine = self.hashing.get(&source).copied().unwrap_or(0);
        let full = self.hashing_sessions.len() >= config.max_pending_hashes;
        if mine >= config.max_hashes_per_source || full && !(clean && self.can_push_out()) {
            return Err(HASH_RETRY_MS);
        }
        Ok(())
    }

    fn can_push_out(&self) -> bool {
        !self.queues[1].is_empty()
    }

    /// Makes room for a clean source's hash in a full queue: the newest waiting work of a
    /// source with failures is dropped; returns its session, whose login the hub refuses.
    pub(super) fn push_out(&mut self, config: &Config) -> Option<SessionId> {
        if self.hashing_sessions.len() < config.max_pending_hashes {
            return None;
        }
        let (session, _) = self.queues[1].back()?;
        let session = *session;
        self.end_hash(session, false);
        Some(session)
    }

    /// Queues the password work `request` of `session` (which has none queued), from
    /// `source`, after [`hash_room`](Self::hash_room) said there is room; `clean` sources go
    /// first. The work starts when [`next_hash`](Self::next_hash) hands it out.
    pub(super) fn queue_hash(
        &mut self,
        session: SessionId,
        source: Source,
        clean: bool,
        request: IoRequest,
    ) {
        self.hashing_sessions.insert(
            session,
            Hash {
                source,
                running: false,
            },
        );
        *self.hashing.entry(source).or_default() += 1;
        self.queues[usize::from(!clean)].push_back((session, request));
    }

    /// The next queued hash to start, if a hashing thread is free (`max_concurrent_hashes`).
    pub(super) fn next_hash(&mut self, config: &Config) -> Option<IoRequest> {
        if self.running >= config.max_concurrent_hashes {
            return None;
        }
        let (session, request) = match self.queues[0].pop_front() {
            Some(next) => next,
            None => self.queues[1].pop_front()?,
        };
        if let Some(hash) = self.hashing_sessions.get_mut(&session) {
            hash.running = true;
        }
        self.running += 1;
        Some(request)
    }

    /// The hash of `session` completed or failed, or the session went away: a running hash
    /// ends only when its completion comes; a waiting one leaves the queue at once, so the
    /// queues hold only work still wanted (never more than `max_pending_hashes`). Idempotent.
    pub(super) fn end_hash(&mut self, session: SessionId, completed: bool) {
        let Some(hash) = self.hashing_sessions.get(&session).copied() else {
            return;
        };
        if hash.running && !completed {
            return;
        }
        self.hashing_sessions.remove(&session);
        if hash.running {
            self.running -= 1;
        } else {
            for queue in &mut self.queues {
                queue.retain(|(waiting, _)| *waiting != session);
            }
        }
        if let Some(count) = self.hashing.get_mut(&hash.source) {
            *count -= 1;
            if *count == 0 {
                self.hashing.remove(&hash.source);
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

    fn verify(session: u64) -> IoRequest {
        IoRequest::VerifyPassword {
            session: SessionId(session),
            user: None,
            password: String::new(),
        }
    }

    #[test]
    fn hashing_is_bounded_per_source_and_overall() {
        let c = Config {
            max_concurrent_hashes: 1,
            ..config()
        };
        let mut t = Throttle::default();
        let queue = |t: &mut Throttle, n: u64, source: Source| {
            t.hash_room(source, true, &c)?;
            t.queue_hash(SessionId(n), source, true, verify(n));
            Ok::<(), RetryAfter>(())
        };
        assert!(queue(&mut t, 1, A).is_ok());
        assert!(queue(&mut t, 2, A).is_ok());
        assert!(queue(&mut t, 3, A).is_err(), "two per source");
        assert!(queue(&mut t, 4, B).is_ok());
        assert!(queue(&mut t, 5, None).is_err(), "three overall");
        assert!(matches!(
            t.next_hash(&c),
            Some(IoRequest::VerifyPassword {
                session: SessionId(1),
                ..
            })
        ));
        assert!(t.next_hash(&c).is_none(), "one thread");
        t.end_hash(SessionId(1), false);
        assert!(
            t.next_hash(&c).is_none(),
            "still running until it completes"
        );
        t.end_hash(SessionId(1), true);
        t.end_hash(SessionId(1), true);
        assert!(queue(&mut t, 5, None).is_ok());
        assert!(queue(&mut t, 6, A).is_err(), "three overall again");
        // A queued hash whose session went away leaves the queue.
        t.end_hash(SessionId(2), false);
        assert!(matches!(
            t.next_hash(&c),
            Some(IoRequest::VerifyPassword {
                session: SessionId(4),
                ..
            })
        ));
    }

    #[test]
    fn clean_sources_go_first() {
        let c = Config {
            max_concurrent_hashes: 1,
            ..config()
        };
        let mut t = Throttle::default();
        assert!(!t.is_clean(None), "not before a login succeeded from there");
        t.succeeded(None, "alice");
        assert!(t.is_clean(None));
        t.queue_hash(SessionId(1), A, false, verify(1));
        t.queue_hash(SessionId(2), A, false, verify(2));
        t.queue_hash(SessionId(3), B, true, verify(3));
        assert!(matches!(
            t.next_hash(&c),
            Some(IoRequest::VerifyPassword {
                session: SessionId(3),
                ..
            })
        ));
    }
}
