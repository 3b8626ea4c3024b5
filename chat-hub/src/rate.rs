//! Rate limiting on a caller-supplied clock: a token bucket per connection.

use crate::types::Mono;

/// A token bucket's limit: `burst` tokens, refilled at `rate` per second. The same for every
/// bucket it applies to, so the buckets do not keep a copy.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limit {
    /// Tokens per second (thousandths per millisecond).
    rate: u64,
    /// The burst, in thousandths of a token.
    capacity: u64,
}

impl Limit {
    pub(crate) fn new(rate_per_sec: u32, burst: u32) -> Self {
        Self {
            rate: u64::from(rate_per_sec.max(1)),
            capacity: u64::from(burst.max(1)) * 1000,
        }
    }
}

/// A token bucket's state; its [`Limit`] is passed in.
#[derive(Clone, Debug)]
pub(crate) struct TokenBucket {
    /// Tokens in thousandths, so refill needs no floating point.
    milli_tokens: u64,
    last: Mono,
}

impl TokenBucket {
    /// A full bucket.
    pub(crate) fn new(limit: &Limit, now: Mono) -> Self {
        Self {
            milli_tokens: limit.capacity,
            last: now,
        }
    }

    /// Takes a token, or says how many milliseconds until one is available.
    pub(crate) fn take(&mut self, limit: &Limit, now: Mono) -> Result<(), u32> {
        let elapsed = now.since(self.last);
        self.last = self.last.max(now);
        self.milli_tokens = (self.milli_tokens + elapsed * limit.rate).min(limit.capacity);
        if self.milli_tokens >= 1000 {
            self.milli_tokens -= 1000;
            Ok(())
        } else {
            let wait = (1000 - self.milli_tokens).div_ceil(limit.rate);
            Err(u32::try_from(wait).unwrap_or(u32::MAX))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_burst_then_rate() {
        let limit = Limit::new(10, 3);
        let mut bucket = TokenBucket::new(&limit, Mono(0));
        let mut take = |at| bucket.take(&limit, Mono(at));
        assert!((0..3).all(|_| take(0).is_ok()));
        assert_eq!(take(0), Err(100));
        assert_eq!(take(99), Err(1));
        assert_eq!(take(100), Ok(()));
        assert!(take(100).is_err());
        assert!(
            (0..3).all(|_| take(10_000).is_ok()),
            "refills to the burst only"
        );
        assert!(take(10_000).is_err());
    }
}
