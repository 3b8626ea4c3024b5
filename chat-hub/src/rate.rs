//! Rate limiting on a caller-supplied clock: a token bucket per connection.

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
}
