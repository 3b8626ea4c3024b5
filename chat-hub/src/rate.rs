//! Rate limiting on a caller-supplied clock: a token bucket per connection and a failed-login
//! counter per username.

use std::collections::HashMap;

use crate::types::Mono;

/// A token bucket: `burst` tokens, refilled at `rate` per second.
#[derive(Clone, Debug)]
pub(crate) struct TokenBucket {
    /// Tokens in thousandths, so refill needs no floating point.
    milli_tokens: u64,
    last: Mono,
    rate: u64,
    capacity: u64,
}

impl TokenBucket {
    pub(crate) fn new(rate_per_sec: u32, burst: u32, now: Mono) -> Self {
        let capacity = u64::from(burst.max(1)) * 1000;
        Self {
            milli_tokens: capacity,
            last: now,
            rate: u64::from(rate_per_sec.max(1)),
            capacity,
        }
    }

    /// Takes a token, or says how many milliseconds until one is available.
    pub(crate) fn take(&mut self, now: Mono) -> Result<(), u32> {
        let elapsed = now.since(self.last);
        self.last = self.last.max(now);
        self.milli_tokens = (self.milli_tokens + elapsed * self.rate).min(self.capacity);
        if self.milli_tokens >= 1000 {
            self.milli_tokens -= 1000;
            Ok(())
        } else {
            let wait = (1000 - self.milli_tokens).div_ceil(self.rate);
            Err(u32::try_from(wait).unwrap_or(u32::MAX))
        }
    }
}

/// Failed logins per username over a fixed window.
#[derive(Debug, Default)]
pub(crate) struct LoginFailures {
    by_name: HashMap<String, (u32, Mono)>,
}

/// Usernames tracked at most; expired entries are pruned past this.
const MAX_TRACKED: usize = 100_000;

impl LoginFailures {
    /// `Err(retry_after_ms)` while `name` has `max` failures in the current window.
    pub(crate) fn check(&self, name: &str, max: u32, window: u64, now: Mono) -> Result<(), u32> {
        match self.by_name.get(name) {
            Some(&(count, start)) if count >= max && now < start.plus(window) => {
                Err(u32::try_from(start.plus(window).since(now)).unwrap_or(u32::MAX))
            }
            _ => Ok(()),
        }
    }

    pub(crate) fn record_failure(&mut self, name: &str, window: u64, now: Mono) {
        if self.by_name.len() >= MAX_TRACKED {
            self.by_name
                .retain(|_, &mut (_, start)| now < start.plus(window));
        }
        if self.by_name.len() >= MAX_TRACKED && !self.by_name.contains_key(name) {
            return;
        }
        let entry = self.by_name.entry(name.to_owned()).or_insert((0, now));
        if now >= entry.1.plus(window) {
            *entry = (0, now);
        }
        entry.0 += 1;
    }

    pub(crate) fn clear(&mut self, name: &str) {
        self.by_name.remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_burst_then_rate() {
        let mut bucket = TokenBucket::new(10, 3, Mono(0));
        assert!((0..3).all(|_| bucket.take(Mono(0)).is_ok()));
        assert_eq!(bucket.take(Mono(0)), Err(100));
        assert_eq!(bucket.take(Mono(99)), Err(1));
        assert_eq!(bucket.take(Mono(100)), Ok(()));
        assert!(bucket.take(Mono(100)).is_err());
        assert!(
            (0..3).all(|_| bucket.take(Mono(10_000)).is_ok()),
            "refills to the burst only"
        );
        assert!(bucket.take(Mono(10_000)).is_err());
    }

    #[test]
    fn failures_lock_a_name_for_the_window() {
        let mut failures = LoginFailures::default();
        for _ in 0..3 {
            assert!(failures.check("bob", 3, 1000, Mono(0)).is_ok());
            failures.record_failure("bob", 1000, Mono(0));
        }
        assert_eq!(failures.check("bob", 3, 1000, Mono(400)), Err(600));
        assert!(failures.check("alice", 3, 1000, Mono(400)).is_ok());
        assert!(failures.check("bob", 3, 1000, Mono(1000)).is_ok());
        failures.clear("bob");
        assert!(failures.check("bob", 3, 1000, Mono(500)).is_ok());
    }
}
